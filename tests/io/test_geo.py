"""GEO series matrix and SOFT family files, written the way GEO writes them."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from dgex_core.errors import DataFormatError
from dgex_core.io import read, sniff
from dgex_core.io.geo_series import read_series_matrix
from dgex_core.io.geo_soft import read_soft, read_soft_matrix

from .geo_files import GPL570_ROWS, sample_section, soft_lines, write_lines

# ------------------------------------------------------------------ series matrix
SAMPLES = ["GSM1001", "GSM1002", "GSM1003"]
PROBES = ["1007_s_at", "1053_at", "117_at", "121_at"]
# probes x samples as in the file; None is written as GEO's "null"
TABLE = [
    [3848.9, 2456.1, None],
    [151.7, 92.0, 88.25],
    [120.1, 2600.0, 67.0],
    [1517.0, 1322.5, 1755.75],
]


def _q(*cells: str) -> str:
    return "\t".join(f'"{c}"' for c in cells)


def series_matrix_lines(table: list | None = None) -> list[str]:
    """The lines of a small GPL96 series matrix, as GEO writes it."""
    table = TABLE if table is None else table
    lines = [
        "!Series_title\t" + _q("Expression profiles of liver and brain"),
        "!Series_geo_accession\t" + _q("GSE9999"),
        "!Series_status\t" + _q("Public on Jan 01 2010"),
        "!Series_summary\t" + _q("Liver and brain biopsies."),
        "!Series_summary\t" + _q("Keywords: tissue comparison"),
        "!Series_type\t" + _q("Expression profiling by array"),
        "!Series_platform_id\t" + _q("GPL96"),
        "!Series_sample_id\t" + _q("GSM1001 GSM1002 GSM1003 "),
        "!Series_supplementary_file\t" + _q("ftp://ftp.ncbi.nlm.nih.gov/geo/series/GSE9nnn/GSE9999/suppl/GSE9999_RAW.tar"),
        "",
        "!Sample_title\t" + _q("liver rep1", "liver rep2", "brain rep1"),
        "!Sample_geo_accession\t" + _q(*SAMPLES),
        "!Sample_status\t" + _q(*["Public on Jan 01 2010"] * 3),
        "!Sample_source_name_ch1\t" + _q("liver", "liver", "brain"),
        "!Sample_organism_ch1\t" + _q(*["Homo sapiens"] * 3),
        "!Sample_characteristics_ch1\t" + _q("tissue: liver", "tissue: liver", "tissue: brain"),
        "!Sample_characteristics_ch1\t" + _q("age: 52", "age: 61", ""),
        "!Sample_data_processing\t" + _q(*["MAS5 signal"] * 3),
        "!Sample_data_processing\t" + _q(*["scaled to 500"] * 3),
        "!Sample_platform_id\t" + _q(*["GPL96"] * 3),
        "!series_matrix_table_begin",
        _q("ID_REF", *SAMPLES),
    ]
    for probe, row in zip(PROBES, table, strict=True):
        cells = ["null" if v is None else repr(v) for v in row]
        lines.append(f'"{probe}"\t' + "\t".join(cells))
    lines.append("!series_matrix_table_end")
    return lines


def line_of(lines: list[str], startswith: str) -> int:
    """1-based number of the first line starting with ``startswith``."""
    return next(i for i, ln in enumerate(lines, 1) if ln.startswith(startswith))


@pytest.fixture
def series_matrix(tmp_path) -> Path:
    return write_lines(tmp_path / "GSE9999_series_matrix.txt.gz", series_matrix_lines())


def test_series_matrix_values_are_samples_x_probes(series_matrix):
    m = read_series_matrix(series_matrix)
    assert m.shape == (3, 4)
    assert m.sample_ids.tolist() == SAMPLES
    assert m.gene_ids.tolist() == PROBES
    assert m.values.dtype == np.float32
    expected = np.array([[np.nan if v is None else v for v in row] for row in TABLE], dtype=np.float32).T
    np.testing.assert_array_equal(m.values, expected)
    assert np.isnan(m.values[2, 0])  # "null" -> NaN
    assert m.provenance.format == "geo_series_matrix"


def test_series_matrix_sample_meta_has_one_column_per_characteristic(series_matrix):
    meta = read_series_matrix(series_matrix).sample_meta
    assert meta["title"].tolist() == ["liver rep1", "liver rep2", "brain rep1"]
    assert meta["geo_accession"].tolist() == SAMPLES
    assert meta["source_name_ch1"].tolist() == ["liver", "liver", "brain"]
    assert meta["tissue"].tolist() == ["liver", "liver", "brain"]
    assert meta["age"].tolist()[:2] == ["52", "61"]
    assert pd.isna(meta.loc["GSM1003", "age"])  # empty characteristic -> missing
    assert meta["platform_id"].tolist() == ["GPL96"] * 3
    assert meta.loc["GSM1001", "data_processing"] == "MAS5 signal; scaled to 500"
    assert "characteristics_ch1" not in meta.columns


def test_series_matrix_keeps_series_title_accession_platform(series_matrix):
    notes = read_series_matrix(series_matrix).provenance.notes
    assert notes["title"] == "Expression profiles of liver and brain"
    assert notes["geo_accession"] == "GSE9999"
    assert notes["platform_id"] == "GPL96"


def test_series_matrix_float64_dtype(series_matrix):
    m = read_series_matrix(series_matrix, dtype=np.float64)
    assert m.values.dtype == np.float64
    assert m.values[0, 0] == 3848.9


def test_series_matrix_table_order_differs_from_accession_order(tmp_path):
    lines = series_matrix_lines()
    h = line_of(lines, '"ID_REF"') - 1
    lines[h] = _q("ID_REF", "GSM1003", "GSM1001", "GSM1002")
    m = read_series_matrix(write_lines(tmp_path / "s.txt", lines))
    assert m.sample_ids.tolist() == ["GSM1003", "GSM1001", "GSM1002"]
    assert m.sample_meta["title"].tolist() == ["brain rep1", "liver rep1", "liver rep2"]


# ------------------------------------------------------------------- SOFT family
@pytest.fixture
def soft_file(tmp_path) -> Path:
    return write_lines(tmp_path / "GSE8888_family.soft.gz", soft_lines())


def test_soft_gives_one_matrix_per_platform(soft_file):
    mats = read_soft(soft_file)
    assert list(mats) == ["GPL96", "GPL570"]
    m96, m570 = mats["GPL96"], mats["GPL570"]
    assert m96.sample_ids.tolist() == ["GSM1", "GSM2"]
    assert m96.gene_ids.tolist() == ["1007_s_at", "1053_at", "117_at"]  # the platform's order
    np.testing.assert_array_equal(m96.values, np.array([[10.5, 7.25, np.nan], [11, 8.5, np.nan]], np.float32))
    assert m570.sample_ids.tolist() == ["GSM3", "GSM4"]
    assert m570.gene_ids.tolist() == [r[0] for r in GPL570_ROWS]
    np.testing.assert_array_equal(m570.values, np.array([[0.5, 1.5, 2.5, 3.5], [0, -1, -2, -3]], np.float32))


def test_soft_platform_table_becomes_gene_meta(soft_file):
    m = read_soft(soft_file)["GPL96"]
    assert m.gene_meta.loc["1053_at", "Gene Symbol"] == "RFC2"
    assert m.gene_meta.loc["1007_s_at", "ENTREZ_GENE_ID"] == "780 /// 100616237"
    assert m.provenance.notes["gene_symbol_column"] == "Gene Symbol"
    assert m.provenance.notes["entrez_column"] == "ENTREZ_GENE_ID"


def test_soft_sample_meta_and_notes(soft_file):
    m = read_soft(soft_file)["GPL570"]
    assert m.sample_meta["tissue"].tolist() == ["liver", "lung"]
    assert m.sample_meta["sex"].tolist() == ["female", "female"]
    assert m.sample_meta["platform_id"].tolist() == ["GPL570", "GPL570"]
    notes = m.provenance.notes
    assert notes["geo_accession"] == "GSE8888"
    assert notes["platform_id"] == "GPL570"
    assert notes["platform_title"].startswith("[HG-U133_Plus_2]")
    assert notes["value_description"] == "MAS5-calculated signal intensity"
    assert notes["samples_without_table"] == ["GSM5"]


def test_soft_matrix_needs_platform_when_several(soft_file):
    with pytest.raises(DataFormatError, match=r"GPL96 \(2 samples\), GPL570 \(2 samples\).*platform="):
        read_soft_matrix(soft_file)
    m = read_soft_matrix(soft_file, platform="GPL570")
    assert m.shape == (2, 4)
    with pytest.raises(DataFormatError, match="GPL1234"):
        read_soft_matrix(soft_file, platform="GPL1234")


def test_soft_matrix_single_platform_without_platform_table(tmp_path):
    lines = ["^SERIES = GSE7", "!Series_title = t"]
    lines += sample_section("GSM1", "GPL96", "liver", [("b", "1"), ("a", "2")])
    lines += sample_section("GSM2", "GPL96", "liver", [("a", "3"), ("c", "4")])
    m = read_soft_matrix(write_lines(tmp_path / "one.soft", lines))
    assert m.gene_ids.tolist() == ["b", "a", "c"]  # order of first appearance
    np.testing.assert_array_equal(m.values, np.array([[1, 2, np.nan], [np.nan, 3, 4]], np.float32))
    assert m.gene_meta.shape == (3, 0)


# ------------------------------------------------------------------ malformed files
def _sm_cut_before_end(lines):
    return lines[: line_of(lines, "!series_matrix_table_end") - 1], len(lines) - 1, "series_matrix_table_end"


def _sm_no_begin(lines):
    n = line_of(lines, "!series_matrix_table_begin") - 1
    return lines[:n], n, "series_matrix_table_begin"


def _sm_header_count(lines):
    lines[line_of(lines, '"ID_REF"') - 1] = _q("ID_REF", "GSM1001", "GSM1002")
    for i in range(line_of(lines, '"1007_s_at"') - 1, len(lines) - 1):
        lines[i] = lines[i].rsplit("\t", 1)[0]
    return lines, line_of(lines, '"ID_REF"'), "!Sample_geo_accession"


def _sm_ragged(lines):
    n = line_of(lines, '"1053_at"')
    lines[n - 1] = lines[n - 1].rsplit("\t", 1)[0]
    return lines, n, "cells"


def _sm_not_a_number(lines):
    n = line_of(lines, '"117_at"')
    lines[n - 1] = '"117_at"\t120.1\tabc\t67.0'
    return lines, f"{n}, column 3", "'abc' is not a number"


def _sm_duplicate_probe(lines):
    n = line_of(lines, '"121_at"')
    lines[n - 1] = lines[n - 1].replace("121_at", "1053_at")
    return lines, n, "duplicate probe id '1053_at'"


def _sm_empty_table(lines):
    begin = line_of(lines, "!series_matrix_table_begin")
    return [*lines[: begin + 1], "!series_matrix_table_end"], begin, "supplementary files"


def _sm_sample_line_count(lines):
    n = line_of(lines, "!Sample_source_name_ch1")
    lines[n - 1] = "!Sample_source_name_ch1\t" + _q("liver", "liver")
    return lines, n, "2 values for 3 samples"


@pytest.mark.parametrize("break_it", [
    _sm_cut_before_end, _sm_no_begin, _sm_header_count, _sm_ragged, _sm_not_a_number,
    _sm_duplicate_probe, _sm_empty_table, _sm_sample_line_count,
], ids=lambda f: f.__name__[4:])
def test_series_matrix_malformed(tmp_path, break_it):
    lines, line, words = break_it(series_matrix_lines())
    path = write_lines(tmp_path / "GSE9999_series_matrix.txt.gz", lines)
    with pytest.raises(DataFormatError) as err:
        read_series_matrix(path)
    msg = str(err.value)
    assert "GSE9999_series_matrix.txt.gz" in msg
    assert f"line {line}" in msg
    assert words in msg


def _soft_cut_sample_table(lines):
    n = len(lines) - lines[::-1].index("!sample_table_end")  # the last sample table's end
    return lines[: n - 1], f"{n - 1} (end of file)", "!sample_table_end"


def _soft_cut_platform_table(lines):
    n = line_of(lines, "!platform_table_end")
    return lines[: n - 1], f"{n - 1} (end of file)", "platform GPL96"


def _soft_ragged(lines):
    n = line_of(lines, "1053_at\t7.25")
    lines[n - 1] = "1053_at\t7.25"
    return lines, n, "2 tab-separated cells"


def _soft_not_a_number(lines):
    n = line_of(lines, "1053_at\t7.25")
    lines[n - 1] = "1053_at\t7,25\tP"
    return lines, f"{n}, column 2", "'7,25' is not a number"


def _soft_duplicate_probe(lines):
    n = line_of(lines, "117_at\tnull")
    lines[n - 1] = "1053_at\t1.0\tP"
    return lines, f"{n}, column 1", "duplicate probe id '1053_at' in the table of sample GSM1"


def _soft_no_value_column(lines):
    n = line_of(lines, "ID_REF\tVALUE")
    lines[n - 1] = "ID_REF\tSIGNAL\tABS_CALL"
    return lines, n, "no VALUE column"


def _soft_no_tables(lines):
    out, skip = [], False
    for ln in lines:
        if ln == "!sample_table_begin":
            skip = True
        if not skip:
            out.append(ln)
        if ln == "!sample_table_end":
            skip = False
    return out, None, "supplementary files"


@pytest.mark.parametrize("break_it", [
    _soft_cut_sample_table, _soft_cut_platform_table, _soft_ragged, _soft_not_a_number,
    _soft_duplicate_probe, _soft_no_value_column, _soft_no_tables,
], ids=lambda f: f.__name__[6:])
def test_soft_malformed(tmp_path, break_it):
    lines, line, words = break_it(soft_lines())
    path = write_lines(tmp_path / "GSE8888_family.soft.gz", lines)
    with pytest.raises(DataFormatError) as err:
        read_soft(path)
    msg = str(err.value)
    assert "GSE8888_family.soft.gz" in msg
    if line is not None:
        assert f"line {line}" in msg
    else:
        assert "^SAMPLE sections" in msg
    assert words in msg


# ----------------------------------------------------------------- sniff and read
@pytest.mark.parametrize(("name", "gz"), [("GSE9999_series_matrix.txt", False), ("matrix.txt", True),
                                          ("download.tsv", False)])
def test_sniff_and_read_series_matrix_whatever_the_name(tmp_path, name, gz):
    path = write_lines(tmp_path / name, series_matrix_lines(), gz=gz)
    assert sniff(path) == "geo_series_matrix"
    m = read(path)
    assert m.shape == (3, 4)
    assert m.sample_meta["tissue"].tolist() == ["liver", "liver", "brain"]


@pytest.mark.parametrize(("name", "gz"), [("GSE8888_family.soft.gz", True), ("family.txt", False)])
def test_sniff_and_read_soft_whatever_the_name(tmp_path, name, gz):
    path = write_lines(tmp_path / name, soft_lines(), gz=gz)
    assert sniff(path) == "geo_soft"
    m = read(path, platform="GPL96")
    assert m.sample_ids.tolist() == ["GSM1", "GSM2"]
    assert m.values[0, 0] == np.float32(10.5)


def test_two_series_matrices_concatenated_are_refused_not_half_read(tmp_path):
    """`cat GSE1_series_matrix.txt GSE2_series_matrix.txt > both.txt`: the second series
    was dropped without a word; now the place where it starts is named."""
    one = series_matrix_lines()
    p = write_lines(tmp_path / "both_series_matrix.txt", [*one, "", *one])
    with pytest.raises(DataFormatError, match=rf"line {len(one) + 2}: a second series matrix starts after"):
        read(p)
    ok = write_lines(tmp_path / "trailing_series_matrix.txt", [*one, "", "  "])
    assert read(ok).n_samples == read(write_lines(tmp_path / "one_series_matrix.txt", one)).n_samples
