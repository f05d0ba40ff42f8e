"""GCTX: Broad layout, round trips, subsets read in blocks, streaming writer, malformed files."""

from __future__ import annotations

from pathlib import Path

import h5py
import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from dgex_core.errors import DataFormatError, DatasetError
from dgex_core.io import gctx as gctx_module
from dgex_core.io import read, sniff
from dgex_core.io.gct import read_gct
from dgex_core.io.gct_write import write_gct
from dgex_core.io.gctx import GCTXFile, plan_reads, read_gctx
from dgex_core.io.gctx_layout import broad_chunks
from dgex_core.io.gctx_write import GCTXWriter, write_gctx
from dgex_core.matrix import ExpressionMatrix

from ..helpers import ID_CHARS, assert_meta_equal, assert_same

REAL = Path(__file__).resolve().parents[2].parent / "shared" / "data" / "real"
PLATE = REAL / "l1000_LJP009_A375_24H_qnorm_n371x978.gct"
needs_real = pytest.mark.skipif(not REAL.is_dir(), reason=f"real data folder {REAL} is absent (it ships beside the project)")


def _matrix(n_samples=6, n_genes=4, dtype=np.float32, seed=0) -> ExpressionMatrix:
    rng = np.random.default_rng(seed)
    values = rng.normal(8, 3, size=(n_samples, n_genes)).astype(dtype)
    values[0, 1] = np.nan
    samples = [f"CPC{i:04d}:A{i}" for i in range(n_samples)]
    genes = [str(5720 + 7 * g) for g in range(n_genes)]  # Entrez-like ids, as text
    smeta = pd.DataFrame({
        "pert_iname": [None if i == 2 else f"drug-{i % 3}" for i in range(n_samples)],
        "pert_dose": [np.nan if i == 1 else i / 3 for i in range(n_samples)],
        "pert_time": np.full(n_samples, 24, dtype=np.int64),
    }, index=samples)
    gmeta = pd.DataFrame({"pr_gene_symbol": [f"SYM{g}é" for g in range(n_genes)],
                          "pr_is_lm": np.ones(n_genes, dtype=np.int64)}, index=genes)
    return ExpressionMatrix(values, samples, genes, smeta, gmeta)


def _big(n_samples=700, n_genes=30, seed=3) -> ExpressionMatrix:
    rng = np.random.default_rng(seed)
    values = rng.normal(size=(n_samples, n_genes)).astype(np.float32)
    samples = [f"s{i}" for i in range(n_samples)]
    smeta = pd.DataFrame({"well": [f"w{i % 384}" for i in range(n_samples)], "i": np.arange(n_samples)}, index=samples)
    return ExpressionMatrix(values, samples, [f"g{j}" for j in range(n_genes)], smeta)


# ======================================================================== round trips
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_gctx_roundtrip_is_exact_with_metadata_and_nan(tmp_path, dtype):
    m = _matrix(dtype=dtype)
    back = read_gctx(write_gctx(m, tmp_path / "m.gctx"))
    assert_same(m, back)
    assert back.sample_meta["pert_time"].dtype == np.int64
    assert back.provenance.format == "gctx"
    assert [p.name for p in tmp_path.iterdir()] == ["m.gctx"]  # no temporary file left


def test_gctx_roundtrip_keeps_integer_ids_as_text(tmp_path):
    """A hand-made GCTX with Entrez ids stored as integers reads back with str ids."""
    p = tmp_path / "int_ids.gctx"
    with h5py.File(p, "w") as f:
        f.attrs["version"] = "GCTX1.0"
        f.create_dataset("0/DATA/0/matrix", data=np.arange(6, dtype=np.float32).reshape(2, 3))
        f.create_dataset("0/META/ROW/id", data=np.array([5720, 55847, 7416], dtype=np.int64))
        f.create_dataset("0/META/COL/id", data=np.array([b"S1", b"S2"]))
        f.create_dataset("0/META/ROW/pr_gene_symbol", data=np.array([b"PSME1", b"CISD1", b"-666"]))
        f.create_dataset("0/META/COL/pert_idose", data=np.array(["10 \u00b5M", "na"], dtype=h5py.string_dtype()))  # variable-length
    m = read_gctx(p)
    assert list(m.gene_ids) == ["5720", "55847", "7416"] and all(isinstance(g, str) for g in m.gene_ids)
    assert list(m.sample_ids) == ["S1", "S2"]
    np.testing.assert_array_equal(m.values, np.arange(6, dtype=np.float32).reshape(2, 3))
    assert m.gene_meta["pr_gene_symbol"].tolist()[:2] == ["PSME1", "CISD1"]
    assert pd.isna(m.gene_meta["pr_gene_symbol"].iloc[2])
    assert m.sample_meta["pert_idose"].iloc[0] == "10 µM" and pd.isna(m.sample_meta["pert_idose"].iloc[1])
    # integer gene ids can be asked as text; integers are positions
    assert read_gctx(p, genes=["7416", "5720"]).values.tolist() == [[2, 0], [5, 3]]
    assert read_gctx(p, genes=[2, 0]).values.tolist() == [[2, 0], [5, 3]]
    # and writing them back stores text
    write_gctx(m, tmp_path / "again.gctx")
    with h5py.File(tmp_path / "again.gctx") as f:
        assert f["0/META/ROW/id"].dtype.kind == "S"


def test_gctx_reads_invalid_utf8_with_replacement(tmp_path):
    p = tmp_path / "latin1.gctx"
    with h5py.File(p, "w") as f:
        f.create_dataset("0/DATA/0/matrix", data=np.zeros((1, 1), np.float32))
        f.create_dataset("0/META/ROW/id", data=np.array([b"g\xe91"]))
        f.create_dataset("0/META/COL/id", data=np.array([b"s1"]))
    assert read_gctx(p).gene_ids[0] == "g\ufffd1"


_ids = st.text(ID_CHARS, min_size=1, max_size=8)


@st.composite
def matrices(draw) -> ExpressionMatrix:
    dtype = draw(st.sampled_from([np.float32, np.float64]))
    n_s = draw(st.integers(1, 7))
    n_g = draw(st.integers(1, 7))
    samples = draw(st.lists(_ids, min_size=n_s, max_size=n_s, unique=True))
    genes = draw(st.lists(_ids, min_size=n_g, max_size=n_g, unique=True))
    floats = st.floats(width=32 if dtype == np.float32 else 64)
    values = draw(hnp.arrays(dtype, (n_s, n_g), elements=floats))
    label = st.one_of(st.none(), st.text("abcé漢 -", min_size=1, max_size=6).map(lambda s: "x" + s))
    smeta = pd.DataFrame({"label": draw(st.lists(label, min_size=n_s, max_size=n_s)),
                          "dose": draw(st.lists(st.floats(), min_size=n_s, max_size=n_s)),
                          "n": draw(st.lists(st.integers(-2**62, 2**62), min_size=n_s, max_size=n_s))},
                         index=samples)
    return ExpressionMatrix(values, samples, genes, smeta)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(m=matrices(), compressed=st.booleans())
def test_gctx_roundtrip_property(tmp_path, m, compressed):
    kw = {} if compressed else {"compression": None, "chunks": False}
    assert_same(m, read_gctx(write_gctx(m, tmp_path / "h.gctx", **kw)))


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(m=matrices(), data=st.data())
def test_gctx_subset_property_equals_subset_of_full_read(tmp_path, m, data):
    p = write_gctx(m, tmp_path / "s.gctx", chunks=(2, 2))
    si = data.draw(st.permutations(range(m.n_samples)).flatmap(lambda p: st.just(p[: max(1, len(p) // 2)])))
    gi = data.draw(st.permutations(range(m.n_genes)))
    got = read_gctx(p, samples=[m.sample_ids[i] for i in si], genes=list(gi))
    assert_same(m.subset(samples=m.sample_ids[si], genes=m.gene_ids[list(gi)]), got)


# ======================================================================== Broad layout
def test_written_gctx_has_the_broad_layout(tmp_path):
    m = _matrix(n_samples=5, n_genes=3)
    p = write_gctx(m, tmp_path / "layout_n5x3.gctx")
    with h5py.File(p, "r") as f:
        assert f.attrs["version"] == b"GCTX1.0"
        assert f.attrs["src"] == "layout_n5x3.gctx"
        nodes = set()
        f.visit(nodes.add)
        assert {"0/DATA/0/matrix", "0/META/ROW/id", "0/META/COL/id", "0/META/COL/pert_iname",
                "0/META/COL/pert_dose", "0/META/COL/pert_time", "0/META/ROW/pr_gene_symbol"} <= nodes
        ds = f["0/DATA/0/matrix"]
        assert ds.shape == (5, 3) and ds.dtype == np.float32  # transposed: samples x genes
        np.testing.assert_array_equal(ds[()], m.values)
        assert ds.compression == "gzip" and ds.compression_opts == 6
        assert ds.chunks == broad_chunks(5, 3, 4) == (5, 3)
        assert f["0/META/ROW/id"].dtype == np.dtype("S4") and f["0/META/ROW/id"][0] == b"5720"
        assert f["0/META/COL/id"].dtype.kind == "S"
        assert f["0/META/COL/pert_iname"].dtype.kind == "S" and f["0/META/COL/pert_iname"][2] == b"-666"
        assert f["0/META/COL/pert_dose"].dtype == np.float64
        assert f["0/META/COL/pert_time"].dtype == np.int64
        assert f["0/META/ROW/pr_gene_symbol"][0].decode() == "SYM0é"
        assert list(f["0/META/COL"].keys()) == ["id", "pert_iname", "pert_dose", "pert_time"]


@pytest.mark.parametrize(("n_samples", "n_genes", "itemsize", "chunks"), [
    (371, 978, 4, (268, 978)),       # an L1000 plate: 1 MiB chunks of all landmarks
    (1_300_000, 12328, 4, (262, 1000)),
    (1_300_000, 978, 8, (134, 978)),
    (10, 978, 4, (10, 978)),
    (None, 978, 4, (268, 978)),
    (1, 1, 4, (1, 1)),
])
def test_broad_chunk_rule(n_samples, n_genes, itemsize, chunks):
    assert broad_chunks(n_samples, n_genes, itemsize) == chunks


def test_write_gctx_contiguous_and_custom_chunks(tmp_path):
    m = _big(50, 8)
    flat = write_gctx(m, tmp_path / "flat.gctx", compression=None, chunks=False)
    custom = write_gctx(m, tmp_path / "custom.gctx", chunks=(7, 8), compression_opts=1)
    with h5py.File(flat) as f, h5py.File(custom) as g:
        assert f["0/DATA/0/matrix"].chunks is None and f["0/DATA/0/matrix"].compression is None
        assert g["0/DATA/0/matrix"].chunks == (7, 8)
    for p in (flat, custom):
        assert_same(m, read_gctx(p))
    with pytest.raises(ValueError, match="chunks=False"):
        write_gctx(m, tmp_path / "bad.gctx", chunks=False)


def test_gctx_file_accessors(tmp_path):
    m = _matrix()
    p = write_gctx(m, tmp_path / "acc.gctx")
    with GCTXFile(p) as f:
        assert f.shape == (6, 4) and f.dtype == np.float32
        assert list(f.col_ids) == list(m.sample_ids) and list(f.row_ids) == list(m.gene_ids)
        assert isinstance(f.row_ids, pd.Index) and f.row_ids.dtype == object
        assert_meta_equal(f.col_meta(), m.sample_meta)
        assert_meta_equal(f.row_meta(), m.gene_meta)
        assert "6 samples x 4 genes" in repr(f)
    assert sniff(p) == "gctx"
    assert_same(m, read(p))


# ======================================================================== subsets
@pytest.fixture(params=["chunked", "contiguous"])
def big_file(request, tmp_path) -> tuple[ExpressionMatrix, Path]:
    m = _big()
    kw = {"chunks": (32, 30)} if request.param == "chunked" else {"compression": None, "chunks": False}
    return m, write_gctx(m, tmp_path / f"big_{request.param}.gctx", **kw)


SUBSETS = {
    "ids in scrambled order": lambda m: ([m.sample_ids[i] for i in (650, 3, 64, 65, 31, 32, 400)], None),
    "positions and gene ids": lambda m: ([699, 0, 350], ["g29", "g0", "g7"]),
    "contiguous slice": lambda m: (slice(100, 260), None),
    "slice with step, genes by position": lambda m: (slice(5, 600, 7), [3, 1, 2]),
    "boolean mask": lambda m: (np.arange(700) % 5 == 0, np.arange(30) % 2 == 1),
    "one sample one gene": lambda m: (["s123"], ["g4"]),
    "scattered 300": lambda m: (np.random.default_rng(0).permutation(700)[:300], None),
    "negative positions": lambda m: ([-1, -700], [-1]),
    "nothing": lambda m: ([], None),
}


@pytest.mark.parametrize("case", list(SUBSETS))
def test_subset_in_requested_order_equals_same_subset_of_full_read(big_file, case):
    m, p = big_file
    samples, genes = SUBSETS[case](m)
    with GCTXFile(p) as f:
        got = f.read(samples, genes)
    pos_s = np.arange(700)[samples] if isinstance(samples, slice | np.ndarray) else samples
    pos_s = [m.sample_ids.get_loc(s) if isinstance(s, str) else s for s in pos_s]
    pos_g = range(30) if genes is None else (np.flatnonzero(genes) if isinstance(genes, np.ndarray) else genes)
    pos_g = [m.gene_ids.get_loc(g) if isinstance(g, str) else g for g in pos_g]
    expected = m.subset(samples=m.sample_ids[pos_s], genes=m.gene_ids[pos_g])
    assert_same(expected, got)


def test_read_gctx_rows_cols_aliases(big_file):
    _, p = big_file
    a = read_gctx(p, rows=["g1", "g2"], cols=["s5", "s4"])
    assert list(a.gene_ids) == ["g1", "g2"] and list(a.sample_ids) == ["s5", "s4"]
    assert_same(a, read_gctx(p, genes=["g1", "g2"], samples=["s5", "s4"]))
    with pytest.raises(ValueError, match="not both"):
        read_gctx(p, rows=["g1"], genes=["g1"])


def test_read_gctx_dtype_conversion(big_file):
    m, p = big_file
    got = read_gctx(p, dtype=np.float64, samples=slice(0, 10))
    assert got.values.dtype == np.float64
    np.testing.assert_array_equal(got.values, m.values[:10].astype(np.float64))


def test_iter_sample_blocks_concatenate_to_full_matrix(big_file):
    m, p = big_file
    with GCTXFile(p) as f:
        blocks = list(f.iter_sample_blocks(block_size=128))
        sub = list(f.iter_sample_blocks(block_size=300, genes=["g3", "g1"]))
    assert [b.n_samples for b in blocks] == [128] * 5 + [60]
    np.testing.assert_array_equal(np.concatenate([b.values for b in blocks]), m.values)
    assert [s for b in blocks for s in b.sample_ids] == list(m.sample_ids)
    assert_meta_equal(pd.concat([b.sample_meta for b in blocks]), m.sample_meta)
    np.testing.assert_array_equal(np.concatenate([b.values for b in sub]), m.values[:, [3, 1]])
    assert list(sub[0].gene_ids) == ["g3", "g1"]


class _SpyDataset:
    """Wraps the matrix dataset and records how many stored rows each read touches."""

    def __init__(self, ds):
        self._ds, self.rows_read, self.calls = ds, 0, 0
        self.shape, self.dtype, self.chunks = ds.shape, ds.dtype, ds.chunks

    def __getitem__(self, sel):
        rows = sel[0] if isinstance(sel, tuple) else sel
        if isinstance(rows, slice):
            self.rows_read += len(range(*rows.indices(self.shape[0])))
        else:
            assert np.all(np.diff(rows) > 0), "h5py wants sorted, unique indices"
            self.rows_read += len(rows)
        self.calls += 1
        return self._ds[sel]

    def read_direct(self, out, source_sel=None, dest_sel=None):
        self.rows_read += out.shape[0]
        self.calls += 1
        return self._ds.read_direct(out, source_sel=source_sel)


def test_subset_reads_only_the_samples_it_needs(tmp_path, monkeypatch):
    m = _big()
    p = write_gctx(m, tmp_path / "spy.gctx", chunks=(32, 30))
    with GCTXFile(p) as f:
        spy = _SpyDataset(f._ds)
        f._ds = spy
        got = f.read(samples=[690, 5, 6, 40])  # sparse: one point selection of 4 rows
        assert spy.rows_read == 4 and spy.calls == 1
        np.testing.assert_array_equal(got.values, m.values[[690, 5, 6, 40]])
        spy.rows_read = spy.calls = 0
        got = f.read(samples=np.arange(100, 164)[::-1], genes=["g3", "g1"])  # dense: one slice
        assert spy.rows_read == 64 and spy.calls == 1
        np.testing.assert_array_equal(got.values, m.values[np.arange(100, 164)[::-1]][:, [3, 1]])
        spy.rows_read = 0
        f.read(samples=slice(100, 110))
        assert spy.rows_read == 10
        # a small read budget splits the reads without changing the answer
        monkeypatch.setattr(gctx_module, "READ_BLOCK_BYTES", 32 * 30 * 4)
        monkeypatch.setattr(gctx_module, "SPAN_BYTES", 32 * 30 * 4)
        spy.calls = spy.rows_read = 0
        got = f.read(samples=np.arange(0, 700, 2)[::-1])
        assert spy.calls == 22  # slices spanning 32 rows (16 wanted): every chunk band holds 16
        assert spy.rows_read == 21 * 31 + 27
        np.testing.assert_array_equal(got.values, m.values[np.arange(0, 700, 2)[::-1]])


def test_plan_reads_serves_each_position_once_within_the_memory_bound():
    pos = np.array([0, 1, 5, 31, 32, 33, 34, 35, 36, 100, 101, 500, 699])
    for max_rows in (1, 2, 4, 64):
        reads = plan_reads(pos, row_bytes=120, max_bytes=120 * max_rows)
        served = np.concatenate([idx for _, idx in reads])
        np.testing.assert_array_equal(served, np.arange(pos.size))
        for sel, idx in reads:
            assert idx.size <= max_rows
            if isinstance(sel, slice):  # dense: a slice at most twice the wanted rows
                assert sel.start == pos[idx[0]] and sel.stop == pos[idx[-1]] + 1
                assert sel.stop - sel.start <= 2 * idx.size
            else:  # sparse: exactly the wanted rows, sorted as h5py requires
                np.testing.assert_array_equal(sel, pos[idx])
    assert isinstance(plan_reads(np.arange(10, 20), 4)[0][0], slice)
    assert plan_reads(np.array([], dtype=np.int64), 4) == []


def test_plan_reads_by_chunk_bands_slices_where_chunks_hold_several_wanted_rows():
    # bands of 10 samples: 0-9 holds 4 wanted rows, 30-49 hold 6 (a run of two bands),
    # 100 and 699 are alone in theirs, 500-501 make two in one band
    pos = np.array([0, 1, 5, 9, 31, 32, 33, 34, 41, 48, 100, 500, 501, 699])
    for span in (1, 3, 64):
        reads = plan_reads(pos, row_bytes=120, max_bytes=120 * span, band=10)
        served = np.sort(np.concatenate([idx for _, idx in reads]))
        np.testing.assert_array_equal(served, np.arange(pos.size))
        slices = [(sel, idx) for sel, idx in reads if isinstance(sel, slice)]
        points = np.concatenate([pos[idx] for sel, idx in reads if not isinstance(sel, slice)])
        np.testing.assert_array_equal(np.sort(points), [100, 699])  # lone rows: point selections
        for sel, idx in slices:  # a slice covers exactly its rows' span
            assert sel.start == pos[idx[0]] and sel.stop == pos[idx[-1]] + 1
    reads = plan_reads(pos, row_bytes=120, max_bytes=120, band=10)
    assert [(s.start, s.stop) for s, _ in reads if isinstance(s, slice)][:2] == [(0, 10), (31, 49)]


@pytest.mark.parametrize(("samples", "words"), [
    (["s1", "nope", "nada"], ["2 of 3", "nope"]),
    ([700], ["out of range"]),
    (["s1", "s1"], ["more than once"]),
    (np.ones(3, dtype=bool), ["boolean"]),
])
def test_bad_selections_are_dataset_errors(big_file, samples, words):
    _, p = big_file
    with pytest.raises(DatasetError) as err:
        read_gctx(p, samples=samples)
    for w in words:
        assert w in str(err.value)
    assert p.name in str(err.value)


# ======================================================================== streaming writer
def test_streaming_writer_equals_write_gctx(tmp_path):
    m = _big(n_samples=650, n_genes=12)
    gmeta = pd.DataFrame({"sym": [f"S{g}" for g in range(12)]}, index=m.gene_ids)
    m = ExpressionMatrix(m.values, m.sample_ids, m.gene_ids, m.sample_meta, gmeta)
    ref = write_gctx(m, tmp_path / "ref.gctx")
    with GCTXWriter(tmp_path / "stream.gctx", m.gene_ids, gmeta) as w:
        for a, b in [(0, 100), (100, 100), (100, 357), (357, 650)]:  # includes an empty block
            block = m.subset(samples=m.sample_ids[a:b])
            if a == 100 and b == 357:  # genes in another order are matched by id
                block = block.subset(genes=m.gene_ids[::-1])
            w.append(block)
        assert not (tmp_path / "stream.gctx").exists()  # only the temporary file so far
    assert_same(read_gctx(ref), read_gctx(tmp_path / "stream.gctx"))
    with h5py.File(tmp_path / "stream.gctx") as f:
        ds = f["0/DATA/0/matrix"]
        assert ds.maxshape == (None, 12) and ds.chunks == broad_chunks(None, 12) and ds.compression == "gzip"
        assert f.attrs["version"] == b"GCTX1.0" and f.attrs["src"] == "stream.gctx"
    assert sorted(q.name for q in tmp_path.iterdir()) == ["ref.gctx", "stream.gctx"]


def test_streaming_writer_leaves_nothing_on_error(tmp_path):
    m = _big(n_samples=20, n_genes=5)
    with pytest.raises(RuntimeError, match="boom"), GCTXWriter(tmp_path / "x.gctx", m.gene_ids) as w:
        w.append(m.subset(samples=m.sample_ids[:10]))
        raise RuntimeError("boom")
    w2 = GCTXWriter(tmp_path / "y.gctx", m.gene_ids)
    w2.append(m)
    w2.discard()
    assert list(tmp_path.iterdir()) == []


def test_streaming_writer_rejects_bad_blocks(tmp_path):
    m = _big(n_samples=20, n_genes=5)
    with GCTXWriter(tmp_path / "x.gctx", m.gene_ids, n_samples=20) as w:
        w.append(m.subset(samples=m.sample_ids[:10]))
        with pytest.raises(DatasetError, match="already written"):
            w.append(m.subset(samples=m.sample_ids[5:12]))
        with pytest.raises(DatasetError, match="1 missing"):
            w.append(m.subset(samples=m.sample_ids[10:], genes=m.gene_ids[1:]))
        w.append(m.subset(samples=m.sample_ids[10:]))
    assert_same(m, read_gctx(tmp_path / "x.gctx"))
    with pytest.raises(DatasetError, match="n_samples=20"), GCTXWriter(tmp_path / "z.gctx", m.gene_ids, n_samples=20) as w:
        w.append(m.subset(samples=m.sample_ids[:3]))
    assert not (tmp_path / "z.gctx").exists()


def test_write_gctx_drops_an_id_field_equal_to_the_ids_and_rejects_others(tmp_path):
    m = _matrix()
    meta = m.sample_meta.assign(id=list(m.sample_ids))
    ok = ExpressionMatrix(m.values, m.sample_ids, m.gene_ids, meta, m.gene_meta)
    assert "id" not in read_gctx(write_gctx(ok, tmp_path / "ok.gctx")).sample_meta
    bad = ExpressionMatrix(m.values, m.sample_ids, m.gene_ids, meta.assign(id="x"), m.gene_meta)
    with pytest.raises(DatasetError, match="'id'"):
        write_gctx(bad, tmp_path / "bad.gctx")
    assert not (tmp_path / "bad.gctx").exists()


# ======================================================================== malformed
def _bytes(data: bytes):
    def build(path: Path) -> Path:
        path.write_bytes(data)
        return path
    return build


GOOD_GCT = "#1.2\n2\t3\nName\tDescription\tS1\tS2\tS3\ng1\tna\t1\t2\t3\ng2\tna\t4\t5\t6\n"


def _h5(path: Path, matrix=(3, 2), row_ids=(b"g1", b"g2"), col_ids=(b"s1", b"s2", b"s3"), extra=None) -> Path:
    with h5py.File(path, "w") as f:
        f.attrs["version"] = "GCTX1.0"
        if matrix is not None:
            f.create_dataset("0/DATA/0/matrix", data=np.ones(matrix, np.float32))
        if row_ids is not None:
            f.create_dataset("0/META/ROW/id", data=np.array(row_ids))
        if col_ids is not None:
            f.create_dataset("0/META/COL/id", data=np.array(col_ids))
        for name, data in (extra or {}).items():
            f.create_dataset(name, data=data)
    return path


MALFORMED = [
    ("text GCT named .gctx", "plain.gctx", _bytes(GOOD_GCT.encode()), ["not an HDF5 file", "GCT"]),
    ("empty file", "empty.gctx", _bytes(b""), ["empty"]),
    ("gzipped gctx", "packed.gctx", _bytes(b"\x1f\x8b" + bytes(50)), ["gzip"]),
    ("truncated HDF5", "cut.gctx", _bytes(b"\x89HDF\r\n\x1a\n" + bytes(40)), ["HDF5"]),
    ("HDF5 without GCTX nodes", "other.gctx", lambda p: _h5(p, matrix=None, row_ids=None, col_ids=None,
                                                            extra={"some/matrix": np.ones(3)}), ["/0/DATA/0/matrix", "missing"]),
    ("no row ids", "norow.gctx", lambda p: _h5(p, row_ids=None), ["/0/META/ROW/id"]),
    ("no column ids", "nocol.gctx", lambda p: _h5(p, col_ids=None), ["/0/META/COL/id"]),
    ("id length mismatch", "len.gctx", lambda p: _h5(p, row_ids=(b"g1", b"g2", b"g3")), ["/0/META/ROW/id", "3 row (gene) ids", "(3, 2)"]),
    ("untransposed matrix", "untr.gctx", lambda p: _h5(p, matrix=(2, 3)), ["untransposed"]),
    ("1-D matrix", "flat.gctx", lambda p: _h5(p, matrix=(3,)), ["/0/DATA/0/matrix", "2-D"]),
    ("duplicate ids", "dup.gctx", lambda p: _h5(p, col_ids=(b"s1", b"s2", b"s1")), ["/0/META/COL/id", "duplicate", "s1"]),
    ("metadata of wrong length", "meta.gctx", lambda p: _h5(p, extra={"0/META/COL/dose": np.ones(4)}), ["/0/META/COL/dose", "(3,)"]),
]


@pytest.mark.parametrize(("case", "fname", "build", "words"), MALFORMED, ids=[c[0] for c in MALFORMED])
def test_malformed_gctx_raises_data_format_error_naming_file_and_node(tmp_path, case, fname, build, words):
    path = build(tmp_path / fname)
    with pytest.raises(DataFormatError) as err:
        read_gctx(path)
    msg = str(err.value)
    assert fname in msg, msg
    for w in words:
        assert w.lower() in msg.lower(), f"{case}: {w!r} not in {msg!r}"


def test_text_gct_named_gctx_reads_as_gct_through_dispatch(tmp_path):
    p = tmp_path / "plain.gctx"
    p.write_text(GOOD_GCT)
    assert read(p).shape == (3, 2)


# ======================================================================== real plate
@needs_real
def test_real_plate_to_gctx_and_back_is_exact(tmp_path):
    m = read_gct(PLATE)
    p = write_gctx(m, tmp_path / "LJP009_n371x978.gctx")
    back = read_gctx(p)
    np.testing.assert_array_equal(back.values, m.values)
    assert list(back.sample_ids) == list(m.sample_ids) and list(back.gene_ids) == list(m.gene_ids)
    assert_meta_equal(back.gene_meta, m.gene_meta)
    # the plate's column-metadata field "id" repeats the sample ids: GCTX keeps them once, in /0/META/COL/id
    assert (m.sample_meta["id"] == m.sample_ids).all()
    assert_meta_equal(back.sample_meta, m.sample_meta.drop(columns="id"))
    with h5py.File(p) as f:
        assert f["0/DATA/0/matrix"].chunks == (268, 978)
    # and through GCTX to GCT again
    assert_same(back, read_gct(write_gct(back, tmp_path / "again.gct")))
    with GCTXFile(p) as f:
        sub = f.read(samples=["LJP009_A375_24H_X1_B20:A05", "LJP009_A375_24H_X1_B20:A03"], genes=["217140_s_at"])
    np.testing.assert_array_equal(sub.values[:, 0], m.values[[2, 0], 2])
