"""Writing predictions sample block by sample block, so a huge input never sits whole in memory.

:func:`open_block_writer` returns a writer with ``append(block)`` (an
:class:`~dgex_core.matrix.ExpressionMatrix` of some samples x all output genes),
``close()`` and ``discard()``; used as a context manager it discards on an exception.
The output appears under its final name only when complete (atomic rename), so an
interrupted prediction never leaves a file that looks finished. With
``background=True`` the blocks are written by a thread of their own (see
:class:`BackgroundWriter`), so computing the next block and writing this one overlap.

============  ===========  ==========================================================
format        streamed     where gene / sample metadata go
============  ===========  ==========================================================
``gctx``      yes          ``/0/META/ROW`` (genes) and ``/0/META/COL`` (samples)
``parquet``   yes          rows = samples, sample metadata as leading columns; gene
                           metadata as JSON in the file's key-value metadata
                           (``dgex:gene_meta``, :func:`read_gene_meta_from_parquet`)
``csv/tsv``   yes          rows = samples, sample metadata as leading columns; gene
                           metadata (``role``, ``well_inferred``...) in a side file
                           ``<name>.genes.<csv|tsv>``, one row per gene column, in
                           the same order (:func:`gene_meta_path`)
``gct``       no (whole)   GCT 1.3 row / column metadata; held in memory until close
============  ===========  ==========================================================

Why a side file for CSV / TSV rather than extra header rows: a CSV with one header
row of sample metadata + gene ids and one row per sample stays a plain numeric
table that ``pandas.read_csv(path, index_col="sample")``, R's ``read.csv`` or
``data.table::fread`` read with their defaults and the right column types; two more
header rows would turn every gene column into text for all of them (pandas needs
``header=[0, 1, 2]`` and a MultiIndex, R has no equivalent). The side file is a
tidy table ``gene, role, well_inferred`` to join on the column names, and it is
written (atomically) before the main file appears.

Compression (``compression=``; measured on a 2-core machine with 22,283 float32
genes of predicted values, see ``bench/bench_predict.py``):

- GCTX: ``"none"`` (default: chunked in the Broad layout, uncompressed; the chunks
  are allocated when the matrix is created and the values written with
  ``os.pwritev`` at the chunks' file offsets, :class:`RawChunkGCTXWriter`, so the
  writer thread does not hold the GIL while the disk catches up, and the page cache
  of the blocks already written is dropped (write-behind) so dirty pages never fill
  memory; h5py writes the same file where ``os.pwritev`` is missing), ``"gzip"`` (deflate level 6, what cmapPy and the
  Broad's files use: the file is only ~17% smaller, since the mantissas of predicted
  values are noise, and deflate runs at ~220 profiles/s per core; dgex compresses
  the chunks on every core in parallel), ``"lzf"`` (fast, but saves nothing on
  such values).
- Parquet: ``"lz4"`` (default) with the byte-stream-split encoding of the float
  columns: ~19% smaller than raw float32 at the speed of no compression;
  ``"zstd"`` ~22% smaller at ~60% of the speed; ``"snappy"``, ``"gzip"``,
  ``"none"``. pyarrow's Parquet writer encodes columns on one thread (it has no
  ``use_threads`` option, apache/arrow#50866), so the encoding runs on the
  background writer thread, overlapped with the prediction. Rows are grouped into
  row groups of at most :data:`PARQUET_ROW_GROUP_BYTES` (the footer holds metadata
  for every column of every row group: ~1.3 MB per row group at 22,283 columns,
  ~18 MB in the writer's memory until it closes, so memory grows by ~0.45 GB per
  200,000 samples).
- CSV / TSV / GCT: uncompressed only. Text is format-bound: every float32 value is
  written in its shortest exact form (~9.4 bytes), which pyarrow does at ~230
  profiles/s per core; pieces of each block are formatted on every core in parallel.
"""

from __future__ import annotations

import collections
import contextlib
import io
import json
import os
import queue
import threading
import zlib
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pandas as pd

from ._atomic import atomic_path
from .errors import DatasetError
from .io.gctx import GCTXWriter
from .matrix import ExpressionMatrix

__all__ = ["COMPRESSIONS", "EXPORT_FORMATS", "BackgroundWriter", "ParallelGzipGCTXWriter", "RawChunkGCTXWriter", "gene_meta_path",
           "open_block_writer", "read_gene_meta_from_parquet", "resolve_compression"]

EXPORT_FORMATS = ("gctx", "gct", "parquet", "csv", "tsv")

#: Compressions each format accepts; the first is the default.
COMPRESSIONS = {
    "gctx": ("none", "gzip", "lzf"),
    "parquet": ("lz4", "zstd", "snappy", "gzip", "none"),
    "csv": ("none",),
    "tsv": ("none",),
    "gct": ("none",),
}

#: Most bytes of values in a Parquet row group (whole blocks are gathered into it). The
#: writer also keeps ~18 MB of metadata per row group at 22,283 columns until it
#: closes, so fewer, larger row groups bound memory better: at 768 MiB (7,860 samples
#: of 1,310-sample blocks), 200,000 samples make 26 row groups.
PARQUET_ROW_GROUP_BYTES = 768 * 2**20

#: Deflate level of ``compression="gzip"`` (cmapPy's).
GZIP_LEVEL = 6

_CSV_PIECE_BYTES = 32 * 2**20  # text formatted per task (~9.4 bytes per value)


def _threads() -> int:
    return max(1, len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1))


class _Base:
    #: Whether appended blocks are kept until close (their arrays must not be reused).
    retains_blocks = False

    def __enter__(self):
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is None:
            self.close()
        else:
            self.discard()


# --------------------------------------------------------------------------- GCTX
class _GCTX(_Base):
    def __init__(self, path: Path, gene_ids, gene_meta, compression: str) -> None:
        if compression == "gzip":
            self._w = ParallelGzipGCTXWriter(path, gene_ids, gene_meta)
        elif compression == "none" and hasattr(os, "pwritev"):
            self._w = RawChunkGCTXWriter(path, gene_ids, gene_meta)
        else:
            self._w = GCTXWriter(path, gene_ids, gene_meta, compression="lzf" if compression == "lzf" else None,
                                 compression_opts=None)

    def append(self, block: ExpressionMatrix) -> None:
        self._w.append(block)

    def close(self) -> Path:
        return self._w.close()

    def discard(self) -> None:
        self._w.discard()


class _ChunkStoringGCTXWriter(GCTXWriter):
    """A :class:`~dgex_core.io.gctx.GCTXWriter` in the Broad layout that stores the
    matrix's chunks itself (:meth:`_store`) instead of through ``Dataset.__setitem__``.
    It keeps the sample bookkeeping of the base class: ids checked once, the dataset
    grown by each block."""

    def append(self, block: ExpressionMatrix) -> None:
        self._check_open()
        block = self._aligned(block)
        ids = block.sample_ids
        again = [s for s in ids if s in self._seen]
        if again:
            raise DatasetError(f"{self.path.name}: sample ids already written: {again[:5]}")
        start, stop = self.n_samples, self.n_samples + block.n_samples
        self._ds.resize((stop, self._ds.shape[1]))
        if block.n_samples:
            self._store(start, np.asarray(block.values, dtype=self.dtype))
        self._seen.update(ids)
        self._sample_ids.append(ids)
        self._sample_meta.append(block.sample_meta)
        self.n_samples = stop

    def _store(self, start: int, values: np.ndarray) -> None:
        raise NotImplementedError

    def _padded(self, piece: np.ndarray, rows: int, cols: int) -> np.ndarray:
        """``piece`` as a C-contiguous ``rows x cols`` chunk, zero-padded at the edges
        (HDF5 stores edge chunks at full size)."""
        if piece.shape != (rows, cols):
            full = np.zeros((rows, cols), self.dtype)
            full[:piece.shape[0], :piece.shape[1]] = piece
            return full
        return np.ascontiguousarray(piece)


class ParallelGzipGCTXWriter(_ChunkStoringGCTXWriter):
    """A :class:`~dgex_core.io.gctx.GCTXWriter` in the Broad layout with deflate level 6
    whose chunks are compressed on every core, then stored with HDF5's direct chunk
    write: the file is the one HDF5's own (single-threaded) filter would write.

    Samples of a chunk row not complete at the end of a block are kept back and
    written with the next block (or at close), so every chunk is compressed once, whole.
    """

    def __init__(self, path, gene_ids, gene_meta=None, *, chunks: tuple[int, int] | None = None,
                 threads: int | None = None) -> None:
        super().__init__(path, gene_ids, gene_meta, compression="gzip", compression_opts=GZIP_LEVEL, chunks=chunks)
        self._carry: np.ndarray | None = None  # the samples of a chunk row not written yet
        self._pool = ThreadPoolExecutor(threads or _threads(), thread_name_prefix="dgex-gzip")

    def _store(self, start: int, values: np.ndarray) -> None:
        stop = start + len(values)
        pending = values if self._carry is None else np.concatenate([self._carry, values])
        whole = (len(pending) // self._ds.chunks[0]) * self._ds.chunks[0]
        self._write_chunks(stop - len(pending), pending[:whole])  # stop - len(pending) is on a chunk boundary
        self._carry = pending[whole:].copy() if whole < len(pending) else None

    def _write_chunks(self, first: int, values: np.ndarray) -> None:
        if not len(values):
            return
        rows, cols = self._ds.chunks
        tasks = [(r, c) for r in range(0, len(values), rows) for c in range(0, values.shape[1], cols)]

        def deflate(rc: tuple[int, int]) -> bytes:
            r, c = rc
            chunk = self._padded(values[r:r + rows, c:c + cols], rows, cols)
            return zlib.compress(chunk.data, GZIP_LEVEL)  # zlib releases the GIL

        for (r, c), data in zip(tasks, self._pool.map(deflate, tasks), strict=True):
            self._ds.id.write_direct_chunk((first + r, c), data)

    def close(self) -> Path:
        if not self.closed and self._carry is not None:
            try:
                self._write_chunks(self.n_samples - len(self._carry), self._carry)
            except BaseException as e:
                self._abort(type(e), e, e.__traceback__)
                raise
            self._carry = None
        self._pool.shutdown(wait=True)
        return super().close()

    def discard(self) -> None:
        self._pool.shutdown(wait=True)
        self._carry = None
        super().discard()


class RawChunkGCTXWriter(_ChunkStoringGCTXWriter):
    """An uncompressed :class:`~dgex_core.io.gctx.GCTXWriter` in the Broad layout
    (chunked, as cmapPy writes it) whose values go to disk with ``os.pwrite``.

    Why: h5py keeps Python's global interpreter lock while HDF5 writes, and once the
    page cache is full a write waits for the disk. A writer thread in h5py then stops
    the thread computing the next block, and computing and writing run one after the
    other (measured: 2,185 predicted profiles/s of 22,268 genes against 4,402 for the
    GEMM alone). ``os.pwrite`` releases the lock while it waits.

    How: the matrix is created with its chunks allocated when the dataset is created or
    grown (``H5D_ALLOC_TIME_EARLY``) and never filled by HDF5 (``H5D_FILL_TIME_NEVER``);
    each block's rows are written, chunk by chunk, at the file offset HDF5 gives for
    that chunk (``H5Dget_chunk_info_by_coord``). A chunk is stored row-major, so a
    block's rows of a chunk are one contiguous run of bytes: a chunk row split between
    two blocks needs no carrying over. The file is the one ``Dataset.__setitem__``
    would write (the test suite reads both back with h5py and compares bytes).
    """

    def __init__(self, path, gene_ids, gene_meta=None, *, chunks: tuple[int, int] | None = None) -> None:
        self._fd: int | None = None
        super().__init__(path, gene_ids, gene_meta, compression=None, compression_opts=None, chunks=chunks)
        self._ranges: collections.deque[tuple[int, int]] = collections.deque()  # file bytes of recent blocks

    def _create_matrix(self, chunks):
        import h5py

        from .io.gctx import MATRIX, broad_chunks

        n_g = len(self.gene_ids)
        if n_g == 0:
            raise DatasetError(f"{self.path.name}: no genes to write; a GCTX needs at least one gene")
        chunks = broad_chunks(None, n_g, self.dtype.itemsize) if chunks is None else chunks
        chunks = (max(1, chunks[0]), max(1, min(chunks[1], n_g)))
        dcpl = h5py.h5p.create(h5py.h5p.DATASET_CREATE)
        dcpl.set_alloc_time(h5py.h5d.ALLOC_TIME_EARLY)
        dcpl.set_fill_time(h5py.h5d.FILL_TIME_NEVER)
        ds = self._h5.create_dataset(MATRIX, shape=(0, n_g), maxshape=(None, n_g), dtype=self.dtype, chunks=chunks,
                                     dcpl=dcpl)
        self._fd = os.open(self._h5.filename, os.O_WRONLY)
        return ds

    def _store(self, start: int, values: np.ndarray) -> None:
        rows, cols = self._ds.chunks
        itemsize = self.dtype.itemsize
        values = np.ascontiguousarray(values)
        row_bytes, chunk_row_bytes = values.shape[1] * itemsize, cols * itemsize
        flat = memoryview(values).cast("B")
        pad = memoryview(bytes(chunk_row_bytes))  # zeros for the genes an edge chunk lacks
        stop = start + len(values)
        offsets = self._chunk_offsets(start - start % rows)
        lo, hi = None, None
        for band in range(start - start % rows, stop, rows):
            r0, r1 = max(start, band), min(stop, band + rows)  # the block's rows of this chunk row
            for c in range(0, values.shape[1], cols):
                width = min(cols, values.shape[1] - c) * itemsize
                pieces = []  # the chunk's rows straight from the block: no copy in Python
                for r in range(r0 - start, r1 - start):
                    a = r * row_bytes + c * itemsize
                    pieces.append(flat[a:a + width])
                    if width < chunk_row_bytes:
                        pieces.append(pad[:chunk_row_bytes - width])
                at = offsets[band, c] + (r0 - band) * chunk_row_bytes
                _pwritev_all(self._fd, pieces, at)
                lo, hi = (at if lo is None else min(lo, at)), max(hi or 0, at + (r1 - r0) * chunk_row_bytes)
        if lo is not None:
            self._write_behind(lo, hi)

    def _write_behind(self, lo: int, hi: int) -> None:
        """Hand the bytes of earlier blocks to the disk and out of the page cache.

        A prediction writes far more than memory holds (17 GB for 200,000 profiles);
        left to itself the kernel fills the page cache with dirty pages and then
        spends a core reclaiming them, taken from the prediction (measured on an 8 GiB
        sequential write here: 7.6-25.5 s of kernel time without, 5.9-6.6 s with).
        ``POSIX_FADV_DONTNEED`` on a range starts its writeback and drops the pages
        already written out: each block's range is advised after the next block
        (starting writeback) and after the one after (dropping it), so the bytes in the
        page cache stay at about two blocks.
        """
        if not hasattr(os, "posix_fadvise"):
            return
        self._ranges.append((lo, hi))
        for a, b in list(self._ranges)[:-1]:
            os.posix_fadvise(self._fd, a, b - a, os.POSIX_FADV_DONTNEED)
        if len(self._ranges) > 2:
            self._ranges.popleft()

    def _chunk_offsets(self, first_row: int) -> dict[tuple[int, int], int]:
        """File offsets of the allocated chunks from sample ``first_row`` on, by chunk
        corner ``(sample, gene)``. One pass over HDF5's chunk index (``H5Dchunk_iter``):
        a lookup by coordinate (``H5Dget_chunk_info_by_coord``) walks the index each
        time, which made the lookups of 200,000 samples cost ~20 s."""
        found: dict[tuple[int, int], int] = {}

        def keep(info) -> None:
            if info.chunk_offset[0] >= first_row:
                found[tuple(info.chunk_offset)] = info.byte_offset

        self._ds.id.chunk_iter(keep)
        return found

    def _finish(self) -> None:
        self._close_fd()
        super()._finish()

    def _abort(self, exc_type, exc, tb) -> None:
        self._close_fd()
        super()._abort(exc_type, exc, tb)

    def _close_fd(self) -> None:
        fd, self._fd = self._fd, None
        if fd is not None:
            os.close(fd)


def _pwritev_all(fd: int, pieces: list[memoryview], offset: int) -> None:
    """Write the byte ``pieces`` one after the other from ``offset``: one ``pwritev``
    per at most ``IOV_MAX`` pieces, a short write resumed where it stopped. ``pwritev``
    releases the GIL while it copies and waits."""
    limit = getattr(os, "IOV_MAX", 1024)
    i = 0
    while i < len(pieces):
        n = os.pwritev(fd, pieces[i:i + limit], offset)
        if n <= 0:
            raise OSError(f"pwritev wrote nothing at byte {offset}")
        offset += n
        while i < len(pieces) and n >= len(pieces[i]):
            n -= len(pieces[i])
            i += 1
        if n:
            pieces[i] = pieces[i][n:]


# --------------------------------------------------------------------------- GCT (whole)
class _Whole(_Base):
    """Formats written in one go (GCT): blocks are kept until close."""

    retains_blocks = True

    def __init__(self, path: Path, gene_ids, gene_meta, fmt: str) -> None:
        self.path, self.gene_ids, self.gene_meta, self.fmt = path, gene_ids, gene_meta, fmt
        self.blocks: list[ExpressionMatrix] = []

    def append(self, block: ExpressionMatrix) -> None:
        self.blocks.append(block)

    def close(self) -> Path:
        from .io import write

        values = np.vstack([b.values for b in self.blocks])
        sids = pd.Index([s for b in self.blocks for s in b.sample_ids], dtype=object)
        smeta = pd.concat([b.sample_meta for b in self.blocks])
        m = ExpressionMatrix(values, sids, self.gene_ids, smeta, self.gene_meta, self.blocks[0].provenance)
        write(m, self.path, format=self.fmt)
        return self.path

    def discard(self) -> None:
        self.blocks = []


# --------------------------------------------------------------------------- Parquet, CSV, TSV
def gene_meta_path(path: str | os.PathLike, fmt: str | None = None) -> Path:
    """The side file holding the gene metadata of a CSV / TSV output: ``<name>.genes.<csv|tsv>``.

    Read it with ``pandas.read_csv(gene_meta_path(p), index_col="gene")``: one row per
    gene column of the main file, in the same order, with ``role`` and
    ``well_inferred`` for predictions.
    """
    from .io import format_from_suffix

    path = Path(path)
    fmt = fmt or format_from_suffix(path)
    return path.with_name(path.name.rsplit(".", 1)[0] + f".genes.{fmt}")


class _Rows(_Base):
    """Row-wise formats (Parquet, CSV, TSV): one row per sample, appended block by block.

    Values are copied once, transposed, into a gene-major buffer that is reused (each
    gene's values contiguous, as Arrow wants a column) and handed to Arrow without
    another copy. Parquet gathers blocks into row groups of about
    :data:`PARQUET_ROW_GROUP_BYTES`; CSV / TSV write each block as it comes.
    """

    def __init__(self, path: Path, gene_ids, gene_meta, fmt: str, compression: str) -> None:
        self.path, self.fmt, self.compression = path, fmt, compression
        self.gene_ids = [str(g) for g in gene_ids]
        self.gene_meta = gene_meta
        self._stack = contextlib.ExitStack()
        self._tmp = self._stack.enter_context(atomic_path(path))
        self._writer = None
        self._fh = None
        self._pool: ThreadPoolExecutor | None = None
        self._meta_cols: list[str] | None = None
        self._meta_types = None
        self._schema = None
        self._buf: np.ndarray | None = None   # genes x samples of the current row group
        self._fill = 0
        self._pending: list[list] = []          # per block: sample id and metadata arrays
        self._rg_rows = max(1, PARQUET_ROW_GROUP_BYTES // (4 * max(1, len(self.gene_ids))))

    def _meta_arrays(self, block: ExpressionMatrix) -> list:
        import pyarrow as pa

        if self._meta_cols is None:
            self._meta_cols = [str(c) for c in block.sample_meta.columns]
        n = block.n_samples
        cols = [pa.array(block.sample_ids.astype(str).tolist(), pa.string())]
        for c in self._meta_cols:
            v = block.sample_meta[c] if c in block.sample_meta else pd.Series([None] * n, dtype=object)
            cols.append(pa.array(v.astype(str).where(v.notna(), None).tolist() if v.dtype == object else v.to_numpy()))
        if self._meta_types is None:
            self._meta_types = [a.type for a in cols]
        return [a if a.type == t else a.cast(t) for a, t in zip(cols, self._meta_types, strict=True)]

    def append(self, block: ExpressionMatrix) -> None:
        n = block.n_samples
        if self._buf is not None and self._fill + n > self._buf.shape[1]:
            self._flush()
        if self._buf is None or self._buf.shape[1] < n:
            dtype = np.float64 if block.values.dtype == np.float64 else np.float32
            if self._buf is not None:
                dtype = self._buf.dtype
            rows = max(n, self._rg_rows) if self.fmt == "parquet" else n
            self._buf = np.empty((len(self.gene_ids), rows), dtype)
        self._pending.append(self._meta_arrays(block))
        np.copyto(self._buf[:, self._fill:self._fill + n], block.values.T, casting="same_kind")
        self._fill += n
        if self.fmt != "parquet":
            self._flush()

    def _table(self):
        """The pending rows as an Arrow table: sample, sample metadata, then one column per gene."""
        import pyarrow as pa

        meta = [pa.concat_arrays(list(parts)) for parts in zip(*self._pending, strict=True)]
        n, buf = self._fill, self._buf
        data, typ, stride = pa.py_buffer(buf), pa.from_numpy_dtype(buf.dtype), buf.strides[0]
        genes = [pa.Array.from_buffers(typ, n, [None, data.slice(j * stride, n * buf.itemsize)])
                 for j in range(buf.shape[0])]
        if self._schema is None:
            names = ["sample", *self._meta_cols, *self.gene_ids]
            self._schema = pa.schema([pa.field(k, a.type) for k, a in zip(names, meta + genes[:1] * len(genes),
                                                                           strict=True)])
        return pa.Table.from_arrays(meta + genes, schema=self._schema)

    def _flush(self) -> None:
        if not self._fill:
            return
        table = self._table()
        if self.fmt == "parquet":
            if self._writer is None:
                self._writer = self._open_parquet()
            self._writer.write_table(table.replace_schema_metadata(self._schema.metadata), row_group_size=self._fill)
        else:
            self._write_text(table)
        del table  # the buffer is reused: nothing may still point at it
        self._pending, self._fill = [], 0

    # ---- parquet
    def _open_parquet(self):
        import pyarrow.parquet as pq

        # the orientation and the sample metadata columns as dgex's write_table records them,
        # so dgex (read / open_matrix) reads its own predictions back as samples x genes
        recorded = {"orientation": "samples_x_genes", "meta_columns": list(self._meta_cols), "transforms": []}
        meta = {**(self._schema.metadata or {}),
                b"dgex": json.dumps(recorded).encode(),
                b"dgex:gene_meta": self.gene_meta.reset_index(names="gene").to_json(orient="records").encode()}
        self._schema = self._schema.with_metadata(meta)
        first = ["sample", *self._meta_cols]
        text = [f.name for f in self._schema if f.name in first and str(f.type) == "string"]
        codec = self.compression
        return pq.ParquetWriter(
            self._tmp, self._schema, compression=codec,
            use_dictionary=text or False,               # floats are never worth a dictionary
            write_statistics=first,                     # stats for 22,000 gene columns would bloat the footer
            use_byte_stream_split=self.gene_ids if codec != "none" else False,
        )

    # ---- csv / tsv
    def _write_text(self, table) -> None:
        import pyarrow.csv as pacsv

        delim = "\t" if self.fmt == "tsv" else ","
        if self._fh is None:
            self._fh = open(self._tmp, "wb")  # noqa: SIM115  (closed in close or discard)
            self._pool = ThreadPoolExecutor(_threads(), thread_name_prefix="dgex-csv")
            header = io.BytesIO()
            pacsv.write_csv(table.slice(0, 0), header, write_options=pacsv.WriteOptions(delimiter=delim))
            self._fh.write(header.getvalue())
        step = max(1, _CSV_PIECE_BYTES // (10 * table.num_columns))
        opts = pacsv.WriteOptions(include_header=False, delimiter=delim)

        def fmt(start):
            out = io.BytesIO()
            pacsv.write_csv(table.slice(start, step), out, write_options=opts)
            return out.getvalue()

        for text in self._pool.map(fmt, range(0, table.num_rows, step)):
            self._fh.write(text)

    def close(self) -> Path:
        self._flush()
        if self._writer is not None:
            self._writer.close()
        if self._fh is not None:
            self._pool.shutdown()
            self._fh.close()
        if self.fmt in ("csv", "tsv"):
            with atomic_path(gene_meta_path(self.path, self.fmt)) as tmp:
                self.gene_meta.reset_index(names="gene").to_csv(tmp, sep="\t" if self.fmt == "tsv" else ",",
                                                               index=False)
        self._stack.close()  # renames the temporary file onto the final name
        return self.path

    def discard(self) -> None:
        self._pending, self._fill, self._buf = [], 0, None
        with contextlib.suppress(Exception):
            if self._pool is not None:
                self._pool.shutdown(cancel_futures=True)
            if self._writer is not None:
                self._writer.close()
            if self._fh is not None:
                self._fh.close()
        self._stack.__exit__(RuntimeError, RuntimeError("discarded"), None)


# --------------------------------------------------------------------------- writer thread
_DONE = object()


class BackgroundWriter(_Base):
    """Runs another block writer's ``append`` on a thread of its own.

    ``append`` hands the block over and returns at once, unless ``max_queued`` blocks
    already wait (then it waits: memory stays bounded at about ``max_queued + 2``
    blocks, the one being computed, those queued and the one being written). The
    caller must not modify a block after handing it over.

    An exception raised while writing is re-raised in the caller, by the next
    ``append`` or by ``close``; the output is then discarded (nothing under the final
    name). ``discard`` drops the queued blocks, waits for the block being written, and
    discards the output. ``on_written(block)``, if given, is called on the writer
    thread after each block is written (e.g. to reuse its array). Because ``close`` and ``discard`` run in the caller's thread
    after the writer thread has finished, the atomic rename behaves as without a thread.
    """

    def __init__(self, inner, max_queued: int = 1, on_written=None) -> None:
        self.inner = inner
        self.retains_blocks = inner.retains_blocks
        self._on_written = on_written
        self._q: queue.Queue = queue.Queue(maxsize=max(1, max_queued))
        self._error: BaseException | None = None
        self._dropping = False
        self._finished = False
        self._discarded = False
        self._thread = threading.Thread(target=self._run, name="dgex-block-writer", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while True:
            block = self._q.get()
            if block is _DONE:
                return
            if self._error is not None or self._dropping:
                continue  # keep draining so the caller never blocks on a full queue
            try:
                self.inner.append(block)
                if self._on_written is not None:
                    self._on_written(block)
            except BaseException as e:  # re-raised in the caller's thread
                self._error = e

    def _put(self, item) -> None:
        while True:
            try:
                self._q.put(item, timeout=0.05)
                return
            except queue.Full:
                if not self._thread.is_alive():
                    return
                if self._error is not None and item is not _DONE:
                    self._fail()

    def _fail(self):
        err = self._error
        self.discard()
        raise err

    def append(self, block: ExpressionMatrix) -> None:
        if self._finished:
            raise ValueError("the writer is closed")
        if self._error is not None:
            self._fail()
        self._put(block)

    def _stop(self) -> None:
        if not self._finished:
            self._finished = True
            self._put(_DONE)
            self._thread.join()

    def close(self) -> Path:
        self._stop()
        if self._error is not None:
            with contextlib.suppress(Exception):
                self.inner.discard()
            raise self._error
        return self.inner.close()

    def discard(self) -> None:
        self._dropping = True
        self._stop()
        if not self._discarded:
            self._discarded = True
            self.inner.discard()


def resolve_compression(path: str | os.PathLike, format: str | None = None,
                        compression: str | None = None) -> tuple[str, str]:
    """``(format, compression)`` an output would be written with: the format from the
    suffix when not given, the format's default compression for ``None`` / ``"default"``.

    Raises
    ------
    ValueError
        For an unknown format or a compression the format does not take.
    """
    from .io import format_from_suffix

    path = Path(path)
    fmt = format or format_from_suffix(path)
    if fmt not in EXPORT_FORMATS:
        raise ValueError(f"cannot write predictions to {path.name}: use one of {EXPORT_FORMATS} (or a matching suffix)")
    codec = COMPRESSIONS[fmt][0] if compression in (None, "default") else str(compression).lower()
    if codec not in COMPRESSIONS[fmt]:
        raise ValueError(f"{fmt} output takes compression {' / '.join(COMPRESSIONS[fmt])}, not {compression!r}")
    return fmt, codec


def open_block_writer(path: str | os.PathLike, gene_ids, gene_meta: pd.DataFrame | None = None,
                      format: str | None = None, *, compression: str | None = None, background: bool = False,
                      max_queued: int = 1, on_written=None):
    """A writer of sample blocks to ``path`` in ``format`` (or the one its suffix names).

    Parameters
    ----------
    gene_ids
        The output genes, in column order of every appended block (samples x genes).
    gene_meta
        Per-gene metadata (e.g. ``role``, ``well_inferred``), indexed by gene id.
    compression
        One of :data:`COMPRESSIONS` for the format; ``None`` or ``"default"`` for its
        default (GCTX: ``"none"``; Parquet: ``"lz4"``). ``"gzip"`` on a GCTX is what
        cmapPy and the Broad's files use (deflate level 6): ~17% smaller for ~100x the
        CPU time of writing uncompressed (see the module notes).
    background
        Write on a thread of its own (:class:`BackgroundWriter`), so the caller computes
        the next block meanwhile.
    max_queued
        With ``background``, blocks that may wait to be written (memory bound).
    on_written
        With ``background``, called with each block once written (see :class:`BackgroundWriter`).

    Raises
    ------
    ValueError
        For an unknown format or a compression the format does not take.
    """
    path = Path(path)
    fmt, codec = resolve_compression(path, format, compression)
    gene_ids = pd.Index([str(g) for g in gene_ids], dtype=object)
    gene_meta = gene_meta if gene_meta is not None else pd.DataFrame(index=gene_ids)
    if fmt == "gctx":
        writer = _GCTX(path, gene_ids, gene_meta, codec)
    elif fmt == "gct":
        writer = _Whole(path, gene_ids, gene_meta, fmt)
    else:
        writer = _Rows(path, gene_ids, gene_meta, fmt, codec)
    return BackgroundWriter(writer, max_queued, on_written) if background else writer


def read_gene_meta_from_parquet(path: str | os.PathLike) -> pd.DataFrame:
    """The gene metadata a Parquet prediction file carries (``dgex:gene_meta``)."""
    import pyarrow.parquet as pq

    meta = pq.read_schema(path).metadata or {}
    raw = meta.get(b"dgex:gene_meta")
    if raw is None:
        return pd.DataFrame()
    return pd.DataFrame(json.loads(raw)).set_index("gene")
