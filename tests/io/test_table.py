"""CSV / TSV / Parquet expression tables in both orientations."""

from __future__ import annotations

import gzip
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from dgex_core.errors import DataFormatError
from dgex_core.io import read, sniff, write
from dgex_core.io.table import read_table, write_table
from dgex_core.matrix import ExpressionMatrix, Provenance

PROBES = ["1007_s_at", "1053_at", "117_at", "121_at", "1255_g_at"]
SYMBOLS = ["DDR1", "RFC2", "HSPA6", "PAX8", "GUCA1A"]
GSMS = ["GSM71019", "GSM71020", "GSM71021"]
# genes x samples, as in a GEO-style file
VALUES = np.array([[8.5, 9.25, 7.0], [5.125, np.nan, 6.5], [4.0, 4.5, np.nan],
                   [10.0, 11.0, 12.0], [3.25, 3.5, 3.75]], dtype=np.float32)


def _fmt(v) -> str:
    return "NA" if np.isnan(v) else repr(float(v))


def geo_style_lines(sep: str = "\t") -> list[str]:
    """Genes x samples: probe ids, a Description column, one column per GSM; NA and empty cells."""
    lines = [sep.join(["ID_REF", "Description", *GSMS])]
    for i, (p, s) in enumerate(zip(PROBES, SYMBOLS, strict=True)):
        cells = [_fmt(v) for v in VALUES[i]]
        if i == 2:
            cells[2] = ""  # an empty cell is missing too
        lines.append(sep.join([p, s, *cells]))
    return lines


def samples_rows_lines(sep: str = ",") -> list[str]:
    """Samples x genes: sample ids, a tissue column, symbols as header."""
    lines = [sep.join(["sample", "tissue", *SYMBOLS])]
    for j, g in enumerate(GSMS):
        lines.append(sep.join([g, ["liver", "brain", "lung"][j], *[_fmt(v) for v in VALUES[:, j]]]))
    return lines


def write_text(path: Path, lines: list[str], gz: bool = False) -> Path:
    text = "\n".join(lines) + "\n"
    if gz:
        with gzip.open(path, "wt") as fh:
            fh.write(text)
    else:
        path.write_text(text)
    return path


def assert_geo_matrix(m: ExpressionMatrix) -> None:
    assert m.shape == (3, 5)
    assert m.sample_ids.tolist() == GSMS
    assert m.gene_ids.tolist() == PROBES
    np.testing.assert_array_equal(m.values, VALUES.T)
    assert m.gene_meta["Description"].tolist() == SYMBOLS


# ------------------------------------------------------------------------ reading
def test_geo_style_tsv_gz_reads_genes_as_rows(tmp_path):
    m = read_table(write_text(tmp_path / "expr.tsv.gz", geo_style_lines(), gz=True))
    assert_geo_matrix(m)
    assert m.provenance.notes["orientation"]["chosen"] == "genes_x_samples"
    assert "row ids look like gene ids" in m.provenance.notes["orientation"]["reason"]
    assert m.provenance.notes["id_column"] == "ID_REF"
    assert m.provenance.format == "tsv"


def test_samples_x_genes_csv_text_column_is_sample_meta(tmp_path):
    m = read_table(write_text(tmp_path / "expr.csv", samples_rows_lines()))
    assert m.sample_ids.tolist() == GSMS
    assert m.gene_ids.tolist() == SYMBOLS
    np.testing.assert_array_equal(m.values, VALUES.T)
    assert m.sample_meta["tissue"].tolist() == ["liver", "brain", "lung"]
    assert m.provenance.notes["orientation"]["chosen"] == "samples_x_genes"


def test_landmark_ids_decide_the_orientation(tmp_path):
    # neutral ids and more rows than columns: shape alone would say genes x samples
    lines = ["id,A1,A2", "x1,1,2", "x2,3,4", "x3,5,6"]
    path = write_text(tmp_path / "t.csv", lines)
    assert read_table(path).provenance.notes["orientation"]["chosen"] == "genes_x_samples"
    m = read_table(path, landmark_ids=["A1", "A2", "TP53"])
    assert m.provenance.notes["orientation"] == {
        "chosen": "samples_x_genes", "reason": "0 of 3 landmark ids are row ids, 2 are column ids"}
    assert m.gene_ids.tolist() == ["A1", "A2"]
    np.testing.assert_array_equal(m.values, [[1, 2], [3, 4], [5, 6]])


def test_landmarks_match_versioned_ensembl_ids(tmp_path):
    lines = ["gene_id,S1,S2", "ENSG00000141510.16,1,2", "ENSG00000146648.17,3,4"]
    m = read_table(write_text(tmp_path / "t.csv", lines), landmark_ids=["ENSG00000141510"])
    assert m.provenance.notes["orientation"]["chosen"] == "genes_x_samples"
    assert m.gene_ids.tolist() == ["ENSG00000141510.16", "ENSG00000146648.17"]


def test_explicit_orientation_wins(tmp_path):
    m = read_table(write_text(tmp_path / "t.tsv", geo_style_lines()), orientation="samples_x_genes")
    assert m.sample_ids.tolist() == PROBES
    assert m.provenance.notes["orientation"] == {"chosen": "samples_x_genes", "reason": "given by the caller"}


def test_r_write_table_header_without_corner_cell(tmp_path):
    lines = ["\t".join(f'"{g}"' for g in GSMS)]
    lines += ["\t".join([f'"{p}"', *[_fmt(v) for v in VALUES[i]]]) for i, p in enumerate(PROBES)]
    m = read_table(write_text(tmp_path / "r.txt", lines))
    assert m.sample_ids.tolist() == GSMS
    assert m.gene_ids.tolist() == PROBES
    np.testing.assert_array_equal(m.values, VALUES.T)


def test_numeric_meta_column_kept_with_meta_columns(tmp_path):
    lines = ["symbol,batch_code,S1,S2", "TP53,7157,1.5,2.5", "EGFR,1956,3.5,4.5"]
    path = write_text(tmp_path / "t.csv", lines)
    m = read_table(path, meta_columns=["batch_code"], orientation="genes_x_samples")
    assert m.sample_ids.tolist() == ["S1", "S2"]
    assert m.gene_meta["batch_code"].tolist() == ["7157", "1956"]
    assert read_table(path, orientation="genes_x_samples").n_samples == 3  # else it is a sample


@pytest.mark.parametrize("layout", ["csv", "parquet"])
def test_annotation_named_columns_are_meta_whatever_they_hold(tmp_path, layout):
    df = pd.DataFrame({"Name": ["200814_at", "202954_at"], "Description": ["na", "na"],
                       "Entrez_ID": [5720, 11065], "S1": [1.5, 2.5], "S2": [3.5, 4.5]})
    path = tmp_path / f"t.{layout}"
    df.to_csv(path, index=False) if layout == "csv" else df.to_parquet(path, index=False)
    m = read_table(path)
    assert m.sample_ids.tolist() == ["S1", "S2"]
    assert m.gene_meta.columns.tolist() == ["Description", "Entrez_ID"]
    np.testing.assert_array_equal(m.values, [[1.5, 2.5], [3.5, 4.5]])


def test_entrez_row_ids_keep_their_text(tmp_path):
    lines = ["id,GSM1,GSM2", "00780,1,2", "5982,3,4"]
    m = read_table(write_text(tmp_path / "t.csv", lines), orientation="genes_x_samples")
    assert m.gene_ids.tolist() == ["00780", "5982"]


def _pandas_frame() -> pd.DataFrame:
    df = pd.DataFrame(VALUES, index=pd.Index(PROBES, name="probe"), columns=GSMS)
    df.insert(0, "symbol", SYMBOLS)
    return df


def test_parquet_written_by_pandas_with_index(tmp_path):
    path = tmp_path / "expr.parquet"
    _pandas_frame().to_parquet(path)
    m = read_table(path)
    assert m.gene_ids.tolist() == PROBES
    assert m.sample_ids.tolist() == GSMS
    np.testing.assert_array_equal(m.values, VALUES.T)
    assert m.gene_meta["symbol"].tolist() == SYMBOLS
    assert m.provenance.notes["id_column"] == "probe"


def test_parquet_written_by_pandas_without_index(tmp_path):
    path = tmp_path / "expr.parquet"
    df = pd.DataFrame(VALUES.T.astype(np.float64), columns=SYMBOLS)
    df.insert(0, "sample", GSMS)
    df.to_parquet(path, index=False)
    m = read_table(path)
    assert m.sample_ids.tolist() == GSMS
    assert m.gene_ids.tolist() == SYMBOLS
    assert m.values.dtype == np.float32
    np.testing.assert_array_equal(m.values, VALUES.T)
    assert m.provenance.notes["orientation"]["chosen"] == "samples_x_genes"


def test_parquet_integer_counts_and_integer_ids(tmp_path):
    path = tmp_path / "counts.parquet"
    pd.DataFrame({"entrez": [7157, 1956], "S1": [10, 0], "S2": [3, 250]}).to_parquet(path, index=False)
    m = read_table(path, orientation="genes_x_samples")
    assert m.gene_ids.tolist() == ["7157", "1956"]
    np.testing.assert_array_equal(m.values, [[10, 0], [3, 250]])


# ---------------------------------------------------------------------- round trips
def _matrix(dtype=np.float32) -> ExpressionMatrix:
    rng = np.random.default_rng(0)
    values = (rng.standard_normal((4, 6)) * 10.0 ** rng.integers(-6, 6, (4, 6))).astype(dtype)
    values[1, 2] = np.nan
    values[0, 0] = np.float32(1 / 3)
    genes = ["ENSG00000141510", "ENSG00000146648", "ENSG00000111640", "ENSG00000075624",
             "ENSG00000169083", "ENSG00000136997"]
    gene_meta = pd.DataFrame({"symbol": ["TP53", "EGFR", "GAPDH", "ACTB", "AR", "MYC"],
                              "biotype": ["protein_coding"] * 5 + [None]}, index=genes)
    sample_meta = pd.DataFrame({"tissue": ["liver", "brain", "lung", "skin"]}, index=[*GSMS, "GSM71022"])
    prov = Provenance(None, "memory", ("log2(x+1)",))
    return ExpressionMatrix(values, [*GSMS, "GSM71022"], genes, sample_meta, gene_meta, prov)


@pytest.mark.parametrize("orientation", ["genes_x_samples", "samples_x_genes"])
@pytest.mark.parametrize("name", ["out.csv", "out.tsv", "out.csv.gz", "out.txt", "out.parquet"])
def test_write_table_round_trips_exactly(tmp_path, name, orientation):
    m = _matrix()
    path = write_table(m, tmp_path / name, orientation=orientation)
    back = read_table(path, orientation=orientation)
    assert back.sample_ids.equals(m.sample_ids)
    assert back.gene_ids.equals(m.gene_ids)
    assert back.values.dtype == np.float32
    np.testing.assert_array_equal(back.values, m.values)  # bit for bit, NaN included
    axis = "gene_meta" if orientation == "genes_x_samples" else "sample_meta"
    pd.testing.assert_frame_equal(getattr(back, axis), getattr(m, axis), check_dtype=False,
                                  check_index_type=False)
    assert not list(tmp_path.glob(".*.tmp"))


@pytest.mark.parametrize("orientation", ["genes_x_samples", "samples_x_genes"])
def test_parquet_records_orientation_meta_and_transforms(tmp_path, orientation):
    m = _matrix()
    m = ExpressionMatrix(m.values, m.sample_ids, m.gene_ids, m.sample_meta.assign(batch=[1, 2, 1, 2]),
                         m.gene_meta.assign(entrez=[7157, 1956, 2597, 60, 367, 4609]), m.provenance)
    back = read_table(write_table(m, tmp_path / "x.parquet", orientation=orientation))  # auto
    assert back.provenance.notes["orientation"]["reason"] == "recorded in the file by dgex write_table"
    assert back.provenance.transforms == ("log2(x+1)",)
    np.testing.assert_array_equal(back.values, m.values)
    axis = "gene_meta" if orientation == "genes_x_samples" else "sample_meta"
    assert getattr(back, axis).columns.tolist() == getattr(m, axis).columns.tolist()


def test_write_table_float64_round_trips(tmp_path):
    m = _matrix(np.float64)
    back = read_table(write_table(m, tmp_path / "x.csv"), orientation="genes_x_samples", dtype=np.float64)
    np.testing.assert_array_equal(back.values, m.values)


def test_write_dispatch_and_gzip(tmp_path):
    m = _matrix()
    path = write(m, tmp_path / "x.tsv.gz")
    assert path.read_bytes()[:2] == b"\x1f\x8b"
    assert read_table(path, orientation="genes_x_samples").equals(m, meta=False)


def test_write_table_does_not_rename_the_matrix_ids(tmp_path):
    m = _matrix()
    write_table(m, tmp_path / "x.csv", meta=False)
    assert m.gene_ids.name == "gene" and m.sample_ids.name == "sample"


def test_write_table_rejects_meta_named_like_a_sample(tmp_path):
    m = _matrix()
    m.gene_meta["GSM71019"] = "x"
    with pytest.raises(ValueError, match="GSM71019"):
        write_table(m, tmp_path / "x.csv")
    assert not (tmp_path / "x.csv").exists()


# ------------------------------------------------------------------ malformed input
def _lines_case(lines, line, words):
    return lines, line, words


MALFORMED_TEXT = {
    "blank_only": (["", "   ", ""], "line 1", "no table"),
    "header_only": (["ID_REF\tGSM1\tGSM2"], "line 2", "no data rows"),
    "ragged_short": (["id\tS1\tS2", "g1\t1\t2", "g2\t3"], "line 3", "2 cells but the header has 3"),
    "ragged_long": (["id\tS1\tS2", "g1\t1\t2", "g2\t3\t4\t5"], "line 3", "4 cells"),
    "not_a_number": (["id\tS1\tS2", "g1\t1\t2", "g2\t3\t4", "g3\t5\tfive"], "line 4, column 3",
                     "'five' is not a number (column 'S2')"),
    "duplicate_row_id": (["id\tS1\tS2", "g1\t1\t2", "g2\t3\t4", "g1\t5\t6"], "line 4, column 1",
                         "duplicate id 'g1' (first on line 2)"),
    "duplicate_column_id": (["id\tS1\tS1", "g1\t1\t2"], "line 1, column 3", "duplicate column id 'S1'"),
    "no_numeric_column": (["id\tsymbol\tname", "g1\tTP53\ttumor protein", "g2\tEGFR\treceptor"], "line 1",
                          "no column holds numbers"),
    "one_column": (["id", "g1", "g2"], "line 1", "neither a tab nor a comma"),
}


@pytest.mark.parametrize("case", list(MALFORMED_TEXT))
def test_text_table_malformed(tmp_path, case):
    lines, where, words = MALFORMED_TEXT[case]
    path = write_text(tmp_path / "bad_table.tsv", lines)
    with pytest.raises(DataFormatError) as err:
        read_table(path)
    msg = str(err.value)
    assert "bad_table.tsv" in msg
    assert where in msg
    assert words in msg


def test_empty_file(tmp_path):
    path = tmp_path / "empty.csv"
    path.write_bytes(b"")
    with pytest.raises(DataFormatError, match=r"empty\.csv: line 1: the file is empty"):
        read_table(path)


def test_csv_forced_on_a_tsv_says_to_pass_sep(tmp_path):
    path = write_text(tmp_path / "t.tsv", geo_style_lines())
    with pytest.raises(DataFormatError, match="pass sep="):
        read_table(path, format="csv")


def _parquet_bad_cell(path):
    pd.DataFrame({"gene": ["g1", "g2", "g3"], "S1": ["1.5", "2.5", "3.5"], "S2": ["1", "oops", "3"]}).to_parquet(
        path, index=False)
    return "row 'g2', column 'S2'", "'oops' is not a number"


def _parquet_duplicate_ids(path):
    pd.DataFrame({"S1": [1.0, 2.0]}, index=pd.Index(["g1", "g1"], name="gene")).to_parquet(path)
    return "column 'gene'", "duplicate id 'g1'"


def _parquet_no_rows(path):
    pd.DataFrame({"gene": pd.Series([], dtype=str), "S1": pd.Series([], dtype=float)}).to_parquet(path, index=False)
    return "row 1", "no rows"


def _parquet_no_numbers(path):
    pd.DataFrame({"gene": ["g1", "g2"], "symbol": ["TP53", "EGFR"]}).to_parquet(path, index=False)
    return "schema", "no column holds numbers"


def _parquet_truncated(path):
    _pandas_frame().to_parquet(path)
    path.write_bytes(path.read_bytes()[:-40])
    return "Parquet footer", "cannot read as Parquet"


@pytest.mark.parametrize("make", [_parquet_bad_cell, _parquet_duplicate_ids, _parquet_no_rows,
                                  _parquet_no_numbers, _parquet_truncated], ids=lambda f: f.__name__[9:])
def test_parquet_malformed(tmp_path, make):
    path = tmp_path / "bad_table.parquet"
    where, words = make(path)
    with pytest.raises(DataFormatError) as err:
        read_table(path)
    msg = str(err.value)
    assert "bad_table.parquet" in msg
    assert where in msg
    assert words in msg


# ----------------------------------------------------------------- sniff and read
def _csv_named_dat(tmp_path):
    return write_text(tmp_path / "export.dat", samples_rows_lines(",")), "csv"


def _tsv_gz_named_txt(tmp_path):
    return write_text(tmp_path / "expr.txt", geo_style_lines(), gz=True), "tsv"


def _tsv_gz(tmp_path):
    return write_text(tmp_path / "expr.tsv.gz", geo_style_lines(), gz=True), "tsv"


def _parquet_named_bin(tmp_path):
    path = tmp_path / "expr.bin"
    _pandas_frame().to_parquet(path)
    return path, "parquet"


@pytest.mark.parametrize("make", [_csv_named_dat, _tsv_gz_named_txt, _tsv_gz, _parquet_named_bin],
                         ids=lambda f: f.__name__[1:])
def test_sniff_and_read_tables_whatever_the_name(tmp_path, make):
    path, fmt = make(tmp_path)
    assert sniff(path) == fmt
    m = read(path)
    assert m.provenance.format == fmt
    assert set(m.sample_ids) == set(GSMS)
    assert m.shape == (3, 5)
    np.testing.assert_array_equal(m.subset(GSMS).values[:, :1], VALUES.T[:, :1])


def test_minus_666_is_a_number_in_plain_tables_whatever_else_is_on_the_row(tmp_path):
    lines = ["id,S1,S2", "g1,-666,NA", "g2,-666,1"]
    m = read_table(write_text(tmp_path / "t.csv", lines), orientation="genes_x_samples")
    np.testing.assert_array_equal(m.values, [[-666, -666], [np.nan, 1]])


def test_decimal_commas_are_read_as_decimal_points_with_a_note(tmp_path):
    """A TSV column written by a European spreadsheet (7,25) was read as text and the
    sample vanished into the metadata; now its numbers are read, and the file says so.
    Text columns keep their commas."""
    p = tmp_path / "dc.tsv"
    p.write_text("gene\tDescription\tS1\tS2\tS3\n"
                 "L0\tkinase, putative\t7.25\t7,5\t1.0\n"
                 "L1\tx\t6.1\t-0,25\t2\n"
                 "L2\ty\t1\t2,0e1\t3\n")
    m = read(p)
    assert m.sample_ids.tolist() == ["S1", "S2", "S3"]
    np.testing.assert_allclose(m.values[1], [7.5, -0.25, 20.0])
    assert m.gene_meta["Description"].tolist() == ["kinase, putative", "x", "y"]
    assert "decimal comma (e.g. S2)" in m.provenance.notes["decimal_comma"]
    every = tmp_path / "all.tsv"
    every.write_text("gene\tS1\tS2\nL0\t7,25\t7,5\nL1\t6,1\t-0,25\n")
    np.testing.assert_allclose(read(every).values, [[7.25, 6.1], [7.5, -0.25]], rtol=1e-6)


@pytest.mark.parametrize("cell", ["7_5", "\u0667", "\uff17", "1_000"])
def test_numbers_pythons_float_takes_but_a_file_does_not_mean_are_refused(tmp_path, cell):
    p = tmp_path / "odd.csv"
    p.write_text(f"gene,S0,S1\nL0,1,2\nL1,{cell},3\nL2,4,5\n")
    with pytest.raises(DataFormatError, match="line 3, column 2"):
        read(p, orientation="genes_x_samples")


def test_a_value_beyond_float32_is_refused_not_turned_into_infinity(tmp_path):
    p = tmp_path / "big.csv"
    p.write_text("gene,S0,S1\nL0,1,2\nL1,1e39,3\nL2,inf,-inf\n")
    with pytest.raises(DataFormatError, match=r"line 3, column 2.*beyond float32"):
        read(p)
    m = read(p, dtype=np.float64)
    assert m.values[0, 1] == 1e39 and np.isinf(m.values[1, 2])


def test_commas_that_could_be_thousands_separators_are_refused_not_guessed(tmp_path):
    p = tmp_path / "th.tsv"
    p.write_text("gene\tS1\tS2\nL0\t1,234\t2,345\nL1\t5,678\t912\n")
    with pytest.raises(DataFormatError, match=r"column 'S1': numbers such as '1,234' could be decimal commas or "
                                              r"thousands separators"):
        read(p)
    q = tmp_path / "mixed.tsv"  # 0,5 elsewhere in the file settles it: decimal commas
    q.write_text("gene\tS1\tS2\nL0\t1,234\t0,5\nL1\t5,678\t7,25\n")
    np.testing.assert_allclose(read(q).values, [[1.234, 5.678], [0.5, 7.25]], rtol=1e-6)


def test_three_decimal_commas_beside_decimal_point_columns_are_read_by_their_scale(tmp_path):
    p = tmp_path / "scale.tsv"  # 8,947 beside 8.126: the file's values are ~8, so the comma is decimal
    p.write_text("gene\tS1\tS2\nL0\t8.126\t8,947\nL1\t7.868\t7,296\nL2\t6.5\t6,735\n")
    np.testing.assert_allclose(read(p).values[1], [8.947, 7.296, 6.735], rtol=1e-6)
    q = tmp_path / "counts.tsv"  # 1,234 beside 1500: thousands, which dgex will not guess
    q.write_text("gene\tS1\tS2\nL0\t1500\t1,234\nL1\t2210\t2,345\n")
    with pytest.raises(DataFormatError, match="thousands separators"):
        read(q)
