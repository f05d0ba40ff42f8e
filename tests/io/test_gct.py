"""GCT 1.2 / 1.3: reading hand-made and real files, writing, round trips, malformed input."""

from __future__ import annotations

import gzip
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from dgex_core.errors import DataFormatError, DatasetError
from dgex_core.io import read
from dgex_core.io.gct import coerce_meta_column, read_gct
from dgex_core.io.gct_write import format_values, write_gct
from dgex_core.matrix import ExpressionMatrix

from ..helpers import ID_CHARS, assert_same

REAL = Path(__file__).resolve().parents[2].parent / "shared" / "data" / "real"
PLATE = REAL / "l1000_LJP009_A375_24H_qnorm_n371x978.gct"
BLADDER = REAL / "gpl96_bladder_n57x22283.gct.gz"
needs_real = pytest.mark.skipif(not REAL.is_dir(), reason=f"real data folder {REAL} is absent (it ships beside the project)")

GCT12 = (
    "#1.2\n"
    "3\t2\n"
    "Name\tDescription\tS1\tS2\n"
    "g1\tfirst gene\t1.5\t-2\n"
    "g2\tna\tNA\t3.25\n"
    "g3\tthird\t\t-666\n"
)

GCT13 = (
    "#1.3\n"
    "3\t4\t2\t3\n"
    "id\tsymbol\tpr_gene_id\tA\tB\tC\tD\n"
    "dose\tna\tna\t10\t-666\t0.5\t1\n"
    "cell\tna\tna\tA375\tA375\tMCF7\tna\n"
    "plate_id\t-666\t-666\t001\t002\t003\t004\n"
    "200814_at\tPSME1\t5720\t1\t2\t3\t4\n"
    "218597_s_at\tCISD1\t55847\tNaN\t#N/A\tnan\t1e-3\n"
    "217140_s_at\t-666\t7416\t5\t6\t7\t8\n"
)


def _write(path: Path, text: str | bytes) -> Path:
    path.write_bytes(text.encode() if isinstance(text, str) else text)
    return path


# ======================================================================== reading
def test_read_gct12_is_samples_by_genes_with_description_and_missing_values(tmp_path):
    m = read_gct(_write(tmp_path / "small.gct", GCT12))
    assert m.shape == (2, 3)
    assert list(m.sample_ids) == ["S1", "S2"] and list(m.gene_ids) == ["g1", "g2", "g3"]
    expected = np.array([[1.5, np.nan, np.nan], [-2, 3.25, np.nan]], dtype=np.float32)
    np.testing.assert_array_equal(m.values, expected)
    assert m.values.dtype == np.float32
    assert list(m.gene_meta.columns) == ["Description"]
    assert m.gene_meta["Description"].tolist()[0] == "first gene"
    assert pd.isna(m.gene_meta.loc["g2", "Description"])
    assert m.provenance.format == "gct" and m.provenance.notes["gct_version"] == "1.2"


def test_read_gct13_metadata_types_and_missing_markers(tmp_path):
    m = read_gct(_write(tmp_path / "small13.gct", GCT13), dtype=np.float64)
    assert m.shape == (4, 3) and m.values.dtype == np.float64
    assert list(m.gene_meta.columns) == ["symbol", "pr_gene_id"]
    assert list(m.sample_meta.columns) == ["dose", "cell", "plate_id"]
    # every missing marker in the data block is NaN
    assert np.isnan(m.values[:3, 1]).all()
    assert m.values[3, 1] == pytest.approx(1e-3)
    # numeric metadata becomes numbers (float with a missing value), text stays text
    assert m.sample_meta["dose"].dtype == np.float64
    assert np.isnan(m.sample_meta.loc["B", "dose"]) and m.sample_meta.loc["C", "dose"] == 0.5
    assert m.sample_meta["cell"].tolist()[:3] == ["A375", "A375", "MCF7"] and pd.isna(m.sample_meta.loc["D", "cell"])
    # identifier fields stay text, with their exact spelling
    assert m.sample_meta["plate_id"].tolist() == ["001", "002", "003", "004"]
    assert m.gene_meta["pr_gene_id"].tolist() == ["5720", "55847", "7416"]
    assert pd.isna(m.gene_meta.loc["217140_s_at", "symbol"])


def test_read_gct_strips_blanks_around_ids_and_reads_crlf(tmp_path):
    text = GCT12.replace("S1", " S1 ").replace("\n", "\r\n")
    m = read_gct(_write(tmp_path / "crlf.gct", text))
    assert list(m.sample_ids) == ["S1", "S2"] and m.shape == (2, 3)


def test_read_gct_reads_a_number_wrapped_in_other_whitespace_as_python_does(tmp_path):
    """numpy's bulk parser refuses '\x1c1.5' where float() reads 1.5; found by fuzzing: the
    reader raised a bare ValueError instead of reading the value or a DataFormatError."""
    m = read_gct(_write(tmp_path / "fs.gct", "#1.2\n1\t2\nName\tDescription\tS1\tS2\ng1\tx\t\x1c1.5\t2\n"))
    np.testing.assert_array_equal(m.values, np.array([[1.5], [2.0]], dtype=np.float32))
    with pytest.raises(DataFormatError, match="line 4, column 4: 'x' is not a number"):
        read_gct(_write(tmp_path / "fs2.gct", "#1.2\n1\t2\nName\tDescription\tS1\tS2\ng1\tx\t1.5\t\x1cx\n"))


def test_read_gct_reads_gzip_by_content(tmp_path):
    p = _write(tmp_path / "small.gct.gz", gzip.compress(GCT13.encode()))
    assert read_gct(p).equals(read_gct(_write(tmp_path / "plain.gct", GCT13)), meta=True)


def test_read_gct_tolerates_padding_tabs_on_the_first_lines(tmp_path):
    text = GCT12.replace("#1.2\n", "#1.2\t\t\t\n").replace("3\t2\n", "3\t2\t\t\n", 1)
    assert read_gct(_write(tmp_path / "pad.gct", text)).shape == (2, 3)


def test_read_gct_zero_metadata_fields(tmp_path):
    text = "#1.3\n1\t2\t0\t0\nid\tS1\tS2\ng1\t1\t2\n"
    m = read_gct(_write(tmp_path / "bare.gct", text))
    assert m.shape == (2, 1) and m.gene_meta.shape == (1, 0) and m.sample_meta.shape == (2, 0)


def test_dispatch_reads_gct(tmp_path):
    p = _write(tmp_path / "small.gct", GCT13)
    assert read(p).equals(read_gct(p))


@pytest.mark.parametrize(
    ("cells", "name", "dtype", "values"),
    [
        (["1", "2", "-666"], "count", "float64", [1.0, 2.0, np.nan]),
        (["1", "2", "3"], "count", "int64", [1, 2, 3]),
        (["1", "2.5", "NA"], "dose", "float64", [1.0, 2.5, np.nan]),
        (["1", "x", "3"], "mixed", "object", ["1", "x", "3"]),
        (["5720", "7416", "na"], "pr_gene_id", "object", ["5720", "7416", np.nan]),
        (["na", "", "#N/A"], "empty", "object", [np.nan, np.nan, np.nan]),
    ],
)
def test_coerce_meta_column(cells, name, dtype, values):
    s = coerce_meta_column(cells, name)
    assert str(s.dtype) == dtype
    for u, v in zip(s.tolist(), values, strict=True):
        assert (pd.isna(u) and pd.isna(v)) or u == v


# ======================================================================== writing
def _matrix(dtype=np.float32, n_samples=4, n_genes=5, seed=0) -> ExpressionMatrix:
    rng = np.random.default_rng(seed)
    values = rng.normal(8, 3, size=(n_samples, n_genes)).astype(dtype)
    values[0, 1] = np.nan
    values[1, 0] = np.float32(1 / 3) if dtype == np.float32 else 1 / 3
    samples = [f"S{i}" for i in range(n_samples)]
    genes = [f"{1000 + g}_at" for g in range(n_genes)]
    smeta = pd.DataFrame({"cell": ["A375", None, "MCF7", "PC3"][:n_samples],
                          "dose": [10.0, np.nan, 0.125, 1 / 3][:n_samples],
                          "count": np.arange(n_samples, dtype=np.int64)}, index=samples)
    gmeta = pd.DataFrame({"symbol": [f"G{g}" for g in range(n_genes)],
                          "pr_gene_id": [str(5720 + g) for g in range(n_genes)]}, index=genes)
    return ExpressionMatrix(values, samples, genes, smeta, gmeta)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("name", ["out.gct", "out.gct.gz"])
def test_gct13_roundtrip_is_exact_with_metadata_and_nan(tmp_path, dtype, name):
    m = _matrix(dtype)
    p = write_gct(m, tmp_path / name)
    back = read_gct(p, dtype=dtype)
    assert_same(m, back)
    assert (p.read_bytes()[:2] == b"\x1f\x8b") == name.endswith(".gz")
    assert [q.name for q in tmp_path.iterdir()] == [name]  # no temporary file left


def test_gct12_roundtrip_keeps_description(tmp_path):
    m = _matrix()
    m.gene_meta["Description"] = ["a", None, "c", "d", "e"]
    back = read_gct(write_gct(m, tmp_path / "v12.gct", version="1.2"))
    np.testing.assert_array_equal(back.values, m.values)
    assert back.gene_meta["Description"].tolist()[0] == "a" and pd.isna(back.gene_meta["Description"].iloc[1])
    assert back.provenance.notes["gct_version"] == "1.2"
    assert (tmp_path / "v12.gct").read_text().startswith("#1.2\n5\t4\nName\tDescription\tS0\t")


def test_written_gct13_has_the_cmap_layout(tmp_path):
    p = write_gct(_matrix(n_samples=2, n_genes=2), tmp_path / "x.gct")
    lines = p.read_text().splitlines()
    assert lines[0] == "#1.3"
    assert lines[1] == "2\t2\t2\t3"
    assert lines[2] == "id\tsymbol\tpr_gene_id\tS0\tS1"
    assert lines[3].startswith("cell\tna\tna\tA375\t-666")
    assert lines[6].split("\t")[:3] == ["1000_at", "G0", "5720"]
    # the one missing value, S0 of gene 1001_at (the second gene row), written as NaN
    assert lines[7].split("\t")[:4] == ["1001_at", "G1", "5721", "NaN"]
    assert "NaN" not in lines[6].split("\t") and lines[7].split("\t")[4] != "NaN"


def test_float32_values_are_written_short_and_exact():
    x = np.array([0.1, 10.1152, 1 / 3, 1e-42, -0.0, 3e38, np.nan, np.inf], dtype=np.float32)
    text = format_values(x)
    assert text[0] == "0.1" and text[1] == "10.1152" and text[6] == "NaN"
    back = np.array([float(t) for t in text], dtype=np.float64).astype(np.float32)
    np.testing.assert_array_equal(back, x)
    rng = np.random.default_rng(1)
    y = (rng.standard_normal(20_000) * 10.0 ** rng.integers(-8, 8, 20_000)).astype(np.float32)
    np.testing.assert_array_equal(np.array(format_values(y).tolist(), dtype=np.float64).astype(np.float32), y)


def test_write_gct_refuses_a_tab_in_an_id_and_leaves_no_file(tmp_path):
    m = _matrix()
    bad = ExpressionMatrix(m.values, ["a\tb", *m.sample_ids[1:]], m.gene_ids)
    with pytest.raises(DatasetError, match="tab"):
        write_gct(bad, tmp_path / "bad.gct")
    assert list(tmp_path.iterdir()) == []


def test_write_gct_rejects_unknown_version(tmp_path):
    with pytest.raises(ValueError, match=r"1\.2"):
        write_gct(_matrix(), tmp_path / "x.gct", version="1.4")


# --------------------------------------------------------------- property-based
_ids = st.text(ID_CHARS, min_size=1, max_size=8)


def not_cmap_null(v) -> bool:
    """-666 is the CMap missing marker: GCT reads it back as missing, by design."""
    return v != -666


@st.composite
def matrices(draw, dtype=np.float32) -> ExpressionMatrix:
    n_s = draw(st.integers(1, 6))
    n_g = draw(st.integers(1, 6))
    samples = draw(st.lists(_ids, min_size=n_s, max_size=n_s, unique=True))
    genes = draw(st.lists(_ids, min_size=n_g, max_size=n_g, unique=True))
    width = 32 if dtype == np.float32 else 64
    floats = st.floats(width=width, allow_nan=True, allow_infinity=True).filter(not_cmap_null)
    values = draw(hnp.arrays(dtype, (n_s, n_g), elements=floats))
    words = st.text("abcxyzé漢", min_size=1, max_size=5).map(lambda s: "w" + s)
    smeta = pd.DataFrame(
        {"label": draw(st.lists(st.one_of(st.none(), words), min_size=n_s, max_size=n_s)),
         "score": draw(st.lists(st.floats(allow_infinity=False).filter(not_cmap_null), min_size=n_s, max_size=n_s)),
         "n": draw(st.lists(st.integers(-10**12, 10**12).filter(not_cmap_null), min_size=n_s, max_size=n_s))},
        index=samples,
    )
    gmeta = pd.DataFrame({"gene_id": draw(st.lists(words, min_size=n_g, max_size=n_g))}, index=genes)
    return ExpressionMatrix(values, samples, genes, smeta, gmeta)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(m=matrices())
def test_gct_roundtrip_property_float32(tmp_path, m):
    assert_same(m, read_gct(write_gct(m, tmp_path / "h.gct")))


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(m=matrices(dtype=np.float64))
def test_gct_roundtrip_property_float64_gz(tmp_path, m):
    assert_same(m, read_gct(write_gct(m, tmp_path / "h.gct.gz"), dtype=np.float64))


# ======================================================================== malformed
GOOD = GCT13


def _truncated_gz(path: Path) -> Path:
    rows = "".join(f"g{i}\tS\t{i}\t{i}.5\t{i}.25\t{i}.125\t{i}.0625\n" for i in range(3000))
    body = GOOD.replace("3\t4\t2\t3", "3003\t4\t2\t3") + rows
    data = gzip.compress(body.encode())
    return _write(path, data[: len(data) // 2])


# (case, file name, content or builder, words the message must contain)
MALFORMED = [
    ("empty file", "empty.gct", "", ["empty"]),
    ("not a version line", "v.gct", GOOD.replace("#1.3", "#2.0"), ["line 1", "#1.2"]),
    ("dims not numbers", "dims.gct", GOOD.replace("3\t4\t2\t3", "3\tfour\t2\t3"), ["line 2", "integers"]),
    ("1.3 dims with 2 numbers", "dims2.gct", GOOD.replace("3\t4\t2\t3", "3\t4"), ["line 2", "4 non-negative"]),
    ("header counts disagree", "cols.gct", GOOD.replace("3\t4\t2\t3", "3\t5\t2\t3"), ["line 3", "5 samples"]),
    ("truncated rows", "trunc.gct", GOOD.replace("3\t4\t2\t3", "7\t4\t2\t3"), ["line 10", "3 of the 7"]),
    ("extra rows", "extra.gct", GOOD.replace("3\t4\t2\t3", "2\t4\t2\t3"), ["line 9", "beyond the 2"]),
    ("truncated in column metadata", "cm.gct", GOOD.replace("3\t4\t2\t3", "3\t4\t2\t9"), ["line 10"]),
    ("ragged data row", "ragged.gct", GOOD.replace("\t7\t8\n", "\t7\n"), ["line 9", "6 tab-separated cells", "7"]),
    ("ragged metadata line", "raggedm.gct", GOOD.replace("A375\tMCF7\tna", "A375\tMCF7"), ["line 5"]),
    ("non-numeric value", "text.gct", GOOD.replace("\t6\t", "\thigh\t"), ["line 9, column 5", "'high'"]),
    ("duplicate gene ids", "dupg.gct", GOOD.replace("217140_s_at", "200814_at"), ["line 9", "duplicate", "200814_at", "line 7"]),
    ("duplicate sample ids", "dups.gct", GOOD.replace("\tC\tD\n", "\tC\tA\n"), ["line 3, column 7", "duplicate", "'A'"]),
    ("empty sample id", "emptys.gct", GOOD.replace("\tC\tD\n", "\tC\t\n"), ["line 3", "empty sample id"]),
    ("truncated gzip", "cut.gct.gz", _truncated_gz, ["gzip", "line"]),
    ("binary named gct", "bin.gct", b"\x89HDF\r\n\x1a\n" + bytes(100), ["line 1", "version"]),
]


@pytest.mark.parametrize(("case", "fname", "content", "words"), MALFORMED, ids=[c[0] for c in MALFORMED])
def test_malformed_gct_raises_data_format_error_naming_file_and_place(tmp_path, case, fname, content, words):
    path = content(tmp_path / fname) if callable(content) else _write(tmp_path / fname, content)
    with pytest.raises(DataFormatError) as err:
        read_gct(path)
    msg = str(err.value)
    assert fname in msg, msg
    for w in words:
        assert w.lower() in msg.lower(), f"{case}: {w!r} not in {msg!r}"


def test_missing_file_is_named(tmp_path):
    with pytest.raises(DataFormatError, match=r"nothere\.gct.*not found"):
        read_gct(tmp_path / "nothere.gct")


# ======================================================================== real files
@needs_real
def test_real_l1000_plate_reads_as_371_samples_by_978_genes():
    m = read_gct(PLATE)
    assert m.shape == (371, 978)
    assert list(m.gene_meta.columns) == ["pr_analyte_id", "pr_analyte_num", "pr_bset_id", "pr_lua_id",
                                         "pr_pool_id", "pr_gene_id", "pr_gene_symbol", "pr_gene_title"]
    assert m.sample_meta.shape == (371, 34)
    assert m.gene_ids[0] == "200814_at" and m.sample_ids[0] == "LJP009_A375_24H_X1_B20:A03"
    assert m.values[0, 0] == np.float32(11.0060)
    assert m.gene_meta.loc["200814_at", "pr_gene_id"] == "5720"
    assert m.gene_meta.loc["200814_at", "pr_gene_symbol"] == "PSME1"
    assert m.sample_meta["pert_dose"].dtype == np.float64 and np.isnan(m.sample_meta["pert_dose"].iloc[2])
    assert m.sample_meta["pert_iname"].iloc[0] == "vorinostat"
    assert not np.isnan(m.values).any()


@needs_real
def test_real_gpl96_bladder_gz_reads_as_57_samples_by_22283_probes():
    m = read_gct(BLADDER)
    assert m.shape == (57, 22283)
    assert m.sample_ids[0] == "GSM71019" and m.gene_ids[0] == "1007_s_at"
    assert m.values[0, 0] == np.float32(10.1152) and m.values[1, 1] == np.float32(5.0636)
    assert list(m.gene_meta.columns) == ["Description"]


@needs_real
def test_real_plate_gct_roundtrip_is_exact(tmp_path):
    m = read_gct(PLATE)
    assert_same(m, read_gct(write_gct(m, tmp_path / "plate.gct.gz")))
