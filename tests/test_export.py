"""Block writers: the writer thread, compression, Parquet row groups, the CSV side file."""

from __future__ import annotations

import h5py
import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest

from dgex_core.export import (
    COMPRESSIONS,
    BackgroundWriter,
    ParallelGzipGCTXWriter,
    RawChunkGCTXWriter,
    gene_meta_path,
    open_block_writer,
    read_gene_meta_from_parquet,
)
from dgex_core.export import gctx as export_gctx
from dgex_core.export import rows as export_rows
from dgex_core.io import read
from dgex_core.io.gctx_layout import MATRIX
from dgex_core.io.gctx_write import GCTXWriter
from dgex_core.matrix import ExpressionMatrix

FORMATS = ["gctx", "parquet", "csv", "tsv", "gct"]
GENES = pd.Index([f"g{i}" for i in range(7)])
GENE_META = pd.DataFrame({"role": ["measured"] * 3 + ["inferred"] * 4,
                          "well_inferred": [True, True, True, True, False, True, False]}, index=GENES)


def _blocks(sizes=(5, 3, 9, 1, 4), seed=0):
    """Sample blocks (samples x 7 genes) with the sample metadata a prediction carries."""
    rng = np.random.default_rng(seed)
    out, k = [], 0
    for n in sizes:
        ids = [f"s{k + i}" for i in range(n)]
        meta = pd.DataFrame({"plate": [f"P{(k + i) % 2}" for i in range(n)], "n_imputed": np.arange(n) % 2,
                             "ood_score": rng.random(n), "ood_flag": rng.random(n) > 0.5}, index=ids)
        out.append(ExpressionMatrix(rng.normal(7, 2, (n, len(GENES))).astype(np.float32), ids, GENES, meta))
        k += n
    return out


def _write(path, blocks, **kw):
    with open_block_writer(path, GENES, GENE_META, **kw) as w:
        for b in blocks:
            w.append(b)
    return path


def _read_back(path, fmt):
    if fmt in ("gctx", "gct"):
        m = read(path)
        return pd.DataFrame(m.values, index=m.sample_ids, columns=m.gene_ids), m.sample_meta, m.gene_meta
    if fmt == "parquet":
        df = pd.read_parquet(path).set_index("sample")
        return df[list(GENES)], df.drop(columns=list(GENES)), read_gene_meta_from_parquet(path)
    df = pd.read_csv(path, sep="\t" if fmt == "tsv" else ",", index_col="sample")
    side = pd.read_csv(gene_meta_path(path), sep="\t" if fmt == "tsv" else ",", index_col="gene")
    return df[list(GENES)], df.drop(columns=list(GENES)), side


@pytest.mark.parametrize("fmt", FORMATS)
def test_the_writer_thread_writes_what_the_synchronous_writer_writes(tmp_path, fmt):
    blocks = _blocks()
    sync = _write(tmp_path / "sync" / f"out.{fmt}", blocks)
    threaded = _write(tmp_path / "thread" / f"out.{fmt}", blocks, background=True)
    a, b = _read_back(sync, fmt), _read_back(threaded, fmt)
    for x, y in zip(a, b, strict=True):
        pd.testing.assert_frame_equal(x, y, check_dtype=fmt != "gct")
    values = np.vstack([bl.values for bl in blocks])
    # text keeps each float32 in its shortest exact form: read back as float32 it is the same number
    np.testing.assert_allclose(a[0].to_numpy().astype(np.float32), values, rtol=1e-6 if fmt == "gct" else 0)
    assert a[0].index.tolist() == [s for bl in blocks for s in bl.sample_ids]
    assert a[2]["role"].tolist() == GENE_META["role"].tolist()
    if fmt in ("parquet", "csv", "tsv"):  # byte for byte
        assert sync.read_bytes() == threaded.read_bytes()


class _Boom(RuntimeError):
    pass


@pytest.mark.parametrize("fmt", ["gctx", "parquet", "csv"])
def test_an_error_in_the_writer_thread_surfaces_in_the_caller_and_leaves_no_output(tmp_path, fmt, monkeypatch):
    w = open_block_writer(tmp_path / f"out.{fmt}", GENES, GENE_META, background=True)
    assert isinstance(w, BackgroundWriter)
    calls = []

    def append(block):
        calls.append(block.n_samples)
        if len(calls) == 2:
            raise _Boom("disk full")
        type(w.inner).append(w.inner, block)

    monkeypatch.setattr(w.inner, "append", append)
    with pytest.raises(_Boom, match="disk full"), w:
        for b in _blocks(sizes=(3,) * 20):
            w.append(b)
    assert list(tmp_path.iterdir()) == []  # nor a temporary file, nor the CSV's side file
    assert len(calls) < 20  # the caller stopped soon after the failure, not at the end


def test_an_error_in_the_last_block_surfaces_at_close(tmp_path, monkeypatch):
    w = open_block_writer(tmp_path / "out.gctx", GENES, background=True)

    def append(block):
        raise _Boom("last block")

    monkeypatch.setattr(w.inner, "append", append)
    w.append(_blocks(sizes=(2,))[0])
    with pytest.raises(_Boom, match="last block"):
        w.close()
    assert list(tmp_path.iterdir()) == []


def test_discard_drops_queued_blocks_and_the_file(tmp_path):
    w = open_block_writer(tmp_path / "out.parquet", GENES, background=True, max_queued=2)
    for b in _blocks():
        w.append(b)
    w.discard()
    w.discard()  # twice is harmless
    assert list(tmp_path.iterdir()) == []
    with pytest.raises(ValueError, match="closed"):
        w.append(_blocks(sizes=(1,))[0])


@pytest.mark.parametrize("compression", COMPRESSIONS["gctx"])
def test_gctx_compression_round_trips_and_is_what_the_file_says(tmp_path, compression):
    blocks = _blocks(sizes=(5, 3, 9, 1, 0, 4))
    path = _write(tmp_path / "out.gctx", blocks, compression=compression, background=True)
    m = read(path)
    np.testing.assert_array_equal(m.values, np.vstack([b.values for b in blocks]))
    assert m.gene_meta["well_inferred"].tolist() == GENE_META["well_inferred"].tolist()
    with h5py.File(path) as f:
        ds = f[MATRIX]
        assert ds.compression == (None if compression == "none" else compression)
        assert ds.chunks is not None  # the Broad layout: chunked
        if compression == "gzip":
            assert ds.compression_opts == 6


def test_parallel_gzip_writes_the_file_hdf5s_own_filter_writes(tmp_path):
    """Chunks deflated in threads and stored directly read back as HDF5's gzip filter's:
    blocks that end inside a chunk, a last partial chunk, edge chunks along genes."""
    blocks = _blocks(sizes=(5, 3, 9, 1, 0, 6))
    for cls in (ParallelGzipGCTXWriter, GCTXWriter):
        kw = {} if cls is ParallelGzipGCTXWriter else {"compression": "gzip", "compression_opts": 6}
        with cls(tmp_path / f"{cls.__name__}.gctx", GENES, GENE_META, chunks=(4, 3), **kw) as w:
            for b in blocks:
                w.append(b)
    ours, ref = read(tmp_path / "ParallelGzipGCTXWriter.gctx"), read(tmp_path / "GCTXWriter.gctx")
    np.testing.assert_array_equal(ours.values, ref.values)
    assert ours.sample_ids.equals(ref.sample_ids)
    with h5py.File(tmp_path / "ParallelGzipGCTXWriter.gctx") as f:
        ds = f[MATRIX]
        assert (ds.chunks, ds.compression, ds.compression_opts) == ((4, 3), "gzip", 6)
        assert ds.id.get_num_chunks() == 6 * 3  # 24 samples / 4, 7 genes / 3 (padded)
        assert ds[5:7, 6].tolist() == ref.values[5:7, 6].tolist()  # a gene subset through the filter


def test_raw_chunk_writer_writes_the_file_h5py_writes(tmp_path):
    """Values stored with os.pwrite at HDF5's chunk offsets read back as h5py's own
    writes: blocks ending inside a chunk row, a block of one sample, an empty block,
    edge chunks along genes; the same chunk layout, no compression."""
    blocks = _blocks(sizes=(5, 3, 9, 1, 0, 6))
    for cls in (RawChunkGCTXWriter, GCTXWriter):
        kw = {} if cls is RawChunkGCTXWriter else {"compression": None}
        with cls(tmp_path / f"{cls.__name__}.gctx", GENES, GENE_META, chunks=(4, 3), **kw) as w:
            for b in blocks:
                w.append(b)
    ours, ref = read(tmp_path / "RawChunkGCTXWriter.gctx"), read(tmp_path / "GCTXWriter.gctx")
    np.testing.assert_array_equal(ours.values, np.vstack([b.values for b in blocks]))
    np.testing.assert_array_equal(ours.values, ref.values)
    assert ours.sample_ids.equals(ref.sample_ids)
    assert ours.sample_meta.equals(ref.sample_meta)
    with h5py.File(tmp_path / "RawChunkGCTXWriter.gctx") as f:
        ds = f[MATRIX]
        assert (ds.chunks, ds.compression, ds.shape) == ((4, 3), None, (24, 7))
        assert ds[5:7, 6].tolist() == ref.values[5:7, 6].tolist()  # a gene of an edge chunk, through HDF5
        assert ds.id.get_num_chunks() == 6 * 3


def test_raw_chunk_writer_is_the_default_gctx_writer_and_leaves_nothing_when_discarded(tmp_path):
    w = open_block_writer(tmp_path / "out.gctx", GENES, GENE_META)
    assert isinstance(w._w, RawChunkGCTXWriter)
    w.append(_blocks(sizes=(3,))[0])
    w.discard()
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("compression", COMPRESSIONS["parquet"])
def test_parquet_compression_round_trips(tmp_path, compression):
    blocks = _blocks()
    path = _write(tmp_path / "out.parquet", blocks, compression=compression)
    df = pd.read_parquet(path)
    np.testing.assert_array_equal(df[list(GENES)].to_numpy(), np.vstack([b.values for b in blocks]))
    col = pq.ParquetFile(path).metadata.row_group(0).column(len(df.columns) - 1)
    assert col.compression.lower() in (compression, "uncompressed" if compression == "none" else "lz4_raw")
    if compression != "none":
        assert "BYTE_STREAM_SPLIT" in col.encodings


def test_parquet_gathers_blocks_into_row_groups_with_statistics_only_on_sample_columns(tmp_path, monkeypatch):
    monkeypatch.setattr(export_rows, "PARQUET_ROW_GROUP_BYTES", 10 * 4 * len(GENES))  # 10 samples per row group
    path = _write(tmp_path / "out.parquet", _blocks(sizes=(4, 4, 4, 4, 4, 1)))
    md = pq.ParquetFile(path).metadata
    assert [md.row_group(i).num_rows for i in range(md.num_row_groups)] == [8, 8, 5]  # whole blocks, <= 10
    names = [md.schema.column(j).name for j in range(md.num_columns)]
    stats = {n: md.row_group(0).column(j).is_stats_set for j, n in enumerate(names)}
    assert stats["sample"] and stats["ood_score"] and not any(stats[g] for g in GENES)


def test_unknown_or_unsupported_compression_is_refused_with_the_choices(tmp_path):
    with pytest.raises(ValueError, match="gctx output takes compression none / gzip / lzf"):
        open_block_writer(tmp_path / "x.gctx", GENES, compression="zstd")
    with pytest.raises(ValueError, match="csv output takes compression none"):
        open_block_writer(tmp_path / "x.csv", GENES, compression="gzip")
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("fmt", ["csv", "tsv"])
def test_csv_gene_metadata_side_file_reads_back_with_pandas_defaults(tmp_path, fmt):
    path = _write(tmp_path / f"pred.{fmt}", _blocks())
    side = gene_meta_path(path)
    assert side.name == f"pred.genes.{fmt}"
    sep = "\t" if fmt == "tsv" else ","
    genes = pd.read_csv(side, sep=sep, index_col="gene")
    table = pd.read_csv(path, sep=sep, index_col="sample")
    assert genes.index.tolist() == [c for c in table.columns if c in set(GENES)] == GENES.tolist()
    assert genes["well_inferred"].dtype == bool and genes["role"].tolist() == GENE_META["role"].tolist()
    assert all(table[g].dtype == np.float64 for g in GENES)  # one header row: numbers stay numbers


def test_pwritev_resumes_short_writes_inside_a_piece(tmp_path, monkeypatch):
    """pwritev may write fewer bytes than asked (a signal, a full pipe of the kernel):
    the rest, which may start inside a piece, is written after it."""
    import os

    real = os.pwritev
    monkeypatch.setattr(os, "pwritev", lambda fd, bufs, off: real(fd, [bytes(b"".join(bufs)[:5])], off))
    path = tmp_path / "f.bin"
    fd = os.open(path, os.O_RDWR | os.O_CREAT)
    try:
        export_gctx._pwritev_all(fd, [memoryview(b"abc"), memoryview(b"defghij"), memoryview(b"kl")], 3)
    finally:
        os.close(fd)
    assert path.read_bytes() == b"\0\0\0abcdefghijkl"


@pytest.mark.timeout(60)
def test_a_signal_while_closing_the_writer_thread_still_discards_and_returns(tmp_path):
    """SIGTERM becomes an exception in the main thread; raised while ``close`` hands the
    writer thread its end marker, the ``discard`` that follows must not wait forever."""
    import threading

    w = open_block_writer(tmp_path / "out.gctx", GENES, GENE_META, background=True)
    for b in _blocks(sizes=(3, 3)):
        w.append(b)
    real_put, raised = w._put, []

    def put(item):
        if not raised:
            raised.append(item)
            raise KeyboardInterrupt  # the signal, before the marker is queued
        real_put(item)

    w._put = put
    with pytest.raises(KeyboardInterrupt):
        w.close()
    done = threading.Event()
    t = threading.Thread(target=lambda: (w.discard(), done.set()), daemon=True)
    t.start()
    assert done.wait(20), "discard waited forever for the writer thread"
    assert list(tmp_path.iterdir()) == []  # nothing left, not even the temporary
