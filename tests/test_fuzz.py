"""Fuzzing the text and HDF5 readers: valid files round-trip, corrupted ones raise the documented
DataFormatError (or read as something valid) and nothing else — never a raw IndexError,
UnicodeError, KeyError or a crash."""

from __future__ import annotations

import contextlib
import gzip

import h5py
import numpy as np
import pandas as pd
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from dgex_core.errors import DataFormatError, DatasetError
from dgex_core.io import read, write
from dgex_core.matrix import ExpressionMatrix

FUZZ = settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
ALLOWED = (DataFormatError,)



def _matrix(n_samples=4, n_genes=5, seed=0):
    rng = np.random.default_rng(seed)
    return ExpressionMatrix(
        rng.normal(8, 2, size=(n_samples, n_genes)).astype(np.float32), [f"GSM{i}" for i in range(n_samples)],
        [f"{200 + j}_at" for j in range(n_genes)],
        sample_meta=pd.DataFrame({"tissue": [f"t{i % 2}" for i in range(n_samples)]},
                                 index=[f"GSM{i}" for i in range(n_samples)]),
        gene_meta=pd.DataFrame({"pr_gene_symbol": [f"G{j}" for j in range(n_genes)]},
                               index=[f"{200 + j}_at" for j in range(n_genes)]),
    )


def _series_matrix(m: ExpressionMatrix) -> bytes:
    ids = "\t".join(f'"{s}"' for s in m.sample_ids)
    lines = ['!Series_title\t"fuzz"', '!Series_geo_accession\t"GSE1"',
             f"!Sample_geo_accession\t{ids}",
             "!Sample_characteristics_ch1\t" + "\t".join(f'"tissue: {t}"' for t in m.sample_meta["tissue"]),
             "!series_matrix_table_begin", '"ID_REF"\t' + ids]
    for j, g in enumerate(m.gene_ids):
        lines.append(f'"{g}"\t' + "\t".join(f"{v:.4f}" for v in m.values[:, j]))
    lines.append("!series_matrix_table_end")
    return ("\n".join(lines) + "\n").encode()


def _valid_bytes(kind: str, tmp_path) -> bytes:
    m = _matrix()
    if kind == "series":
        return _series_matrix(m)
    path = tmp_path / f"valid.{kind}"
    write(m, path)
    return path.read_bytes()


def _mutate(data: bytes, ops) -> bytes:
    b = bytearray(data)
    for op, pos, val in ops:
        if not b:
            break
        i = pos % len(b)
        if op == "flip":
            b[i] ^= val or 1
        elif op == "cut":
            del b[i:]
        elif op == "insert":
            b[i:i] = bytes([val]) * (1 + val % 7)
        elif op == "delete":
            del b[i:i + 1 + val % 40]
        elif op == "dup_line":
            start = b.rfind(b"\n", 0, i) + 1
            end = b.find(b"\n", i)
            end = len(b) if end < 0 else end + 1
            b[end:end] = b[start:end]
    return bytes(b)


OPS = st.lists(st.tuples(st.sampled_from(["flip", "cut", "insert", "delete", "dup_line"]),
                         st.integers(0, 10**6), st.integers(0, 255)), min_size=1, max_size=4)


def _read_or_documented_error(path, **kw):
    try:
        m = read(path, **kw)
    except ALLOWED:
        return None
    assert isinstance(m, ExpressionMatrix)
    return m


@FUZZ
@given(ops=OPS)
def test_corrupted_gct_raises_only_the_documented_error(tmp_path_factory, ops):
    tmp = tmp_path_factory.mktemp("gct")
    p = tmp / "f.gct"
    p.write_bytes(_mutate(_valid_bytes("gct", tmp), ops))
    _read_or_documented_error(p, format="gct")


@FUZZ
@given(ops=OPS)
def test_corrupted_series_matrix_raises_only_the_documented_error(tmp_path_factory, ops):
    tmp = tmp_path_factory.mktemp("sm")
    p = tmp / "f_series_matrix.txt"
    p.write_bytes(_mutate(_series_matrix(_matrix()), ops))
    _read_or_documented_error(p, format="geo_series_matrix")


@FUZZ
@given(ops=OPS)
def test_corrupted_gzip_gct_raises_only_the_documented_error(tmp_path_factory, ops):
    tmp = tmp_path_factory.mktemp("gz")
    p = tmp / "f.gct.gz"
    p.write_bytes(_mutate(gzip.compress(_valid_bytes("gct", tmp)), ops))
    with contextlib.suppress(ALLOWED):
        read(p)


@FUZZ
@given(ops=OPS)
def test_corrupted_gctx_raises_only_the_documented_error(tmp_path_factory, ops):
    tmp = tmp_path_factory.mktemp("gctx")
    p = tmp / "f.gctx"
    p.write_bytes(_mutate(_valid_bytes("gctx", tmp), ops))
    with contextlib.suppress(ALLOWED):
        read(p)


@FUZZ
@given(data=st.data())
def test_gctx_with_wrong_node_shapes_raises_only_the_documented_error(tmp_path_factory, data):
    tmp = tmp_path_factory.mktemp("nodes")
    p = tmp / "f.gctx"
    n_s, n_g = data.draw(st.integers(0, 4)), data.draw(st.integers(0, 4))
    with h5py.File(p, "w") as f:
        f.attrs["version"] = "GCTX1.0"
        f.create_dataset("0/DATA/0/matrix", data=np.ones((n_s, n_g), np.float32))
        f.create_dataset("0/META/ROW/id", data=np.array([f"g{i}".encode() for i in range(data.draw(st.integers(0, 4)))],
                                                        dtype="S4"))
        f.create_dataset("0/META/COL/id", data=np.array([f"s{i}".encode() for i in range(data.draw(st.integers(0, 4)))],
                                                        dtype="S4"))
    try:
        m = read(p)
        assert m.shape == (n_s, n_g)
    except (DataFormatError, DatasetError):
        pass


@FUZZ
@given(values=st.lists(st.one_of(st.floats(allow_nan=True, allow_infinity=True, width=32),
                                 st.sampled_from(["NA", "nan", "", "-666", "#N/A", "null"])), min_size=6, max_size=6))
def test_valid_gct_cells_round_trip(tmp_path_factory, values):
    tmp = tmp_path_factory.mktemp("cells")
    p = tmp / "c.gct"
    cells = ["NaN" if isinstance(v, float) and np.isnan(v) else str(v) for v in values]
    p.write_text("#1.2\n2\t3\nName\tDescription\tA\tB\tC\n"
                 f"g1\tna\t{cells[0]}\t{cells[1]}\t{cells[2]}\ng2\tna\t{cells[3]}\t{cells[4]}\t{cells[5]}\n")
    m = read(p)
    want = [np.nan if (isinstance(v, str) or np.isnan(v) or v == -666) else v for v in values]
    np.testing.assert_array_equal(m.values.T.ravel(), np.asarray(want, np.float32))


@FUZZ
@given(n_samples=st.integers(1, 6), n_genes=st.integers(1, 8), seed=st.integers(0, 10**6))
def test_valid_series_matrix_reads_back_exactly(tmp_path_factory, n_samples, n_genes, seed):
    m = _matrix(n_samples, n_genes, seed)
    m = ExpressionMatrix(np.round(m.values.astype(np.float64), 4), m.sample_ids, m.gene_ids, m.sample_meta)
    p = tmp_path_factory.mktemp("smv") / "GSE1_series_matrix.txt.gz"
    p.write_bytes(gzip.compress(_series_matrix(m)))
    back = read(p, dtype=np.float64)
    assert back.sample_ids.tolist() == m.sample_ids.tolist() and back.gene_ids.tolist() == m.gene_ids.tolist()
    np.testing.assert_array_equal(back.values, m.values)
    assert back.sample_meta["tissue"].tolist() == m.sample_meta["tissue"].tolist()
