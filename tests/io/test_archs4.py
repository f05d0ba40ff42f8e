"""ARCHS4-like HDF5 gene matrices: v2 layout (genes x samples uint32), byte-string ids,
duplicate symbols."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

import dgex_core.io.archs4 as archs4
from dgex_core.errors import DataFormatError, DatasetError
from dgex_core.io import read, sniff
from dgex_core.io.archs4 import read_archs4

from ..helpers import ACC, COUNTS, ENSEMBL, FIRST, SC_PROB, make_archs4


@pytest.fixture
def archs4_file(tmp_path) -> Path:
    return make_archs4(tmp_path / "human_gene_v2.2.h5")


def test_read_all_keeps_first_of_duplicate_symbols(archs4_file):
    m = read_archs4(archs4_file)
    assert m.shape == (12, 6)
    assert m.sample_ids.tolist() == ACC
    assert m.gene_ids.tolist() == ["TP53", "EGFR", "GAPDH", "ACTB", "MYC", "AR"]
    assert m.values.dtype == np.float32
    np.testing.assert_array_equal(m.values, COUNTS[FIRST].T)  # raw counts, no transform
    notes = m.provenance.notes
    assert notes["duplicate_symbols_dropped"] == 2
    assert set(notes["duplicate_symbol_examples"]) == {"TP53", "EGFR"}
    assert notes["layout"] == "genes x samples"
    assert notes["archs4_version"] == "2.2"
    assert m.gene_meta["ensembl_gene"].tolist() == [ENSEMBL[i] for i in FIRST]
    assert m.gene_meta["biotype"].iloc[0] == "protein_coding"
    assert m.sample_meta["series_id"].tolist() == ["GSE1"] * 6 + ["GSE2"] * 6
    assert m.sample_meta.loc["GSM1003", "characteristics_ch1"] == "tissue: liver,age: 33"
    assert m.sample_meta.loc["GSM1004", "singlecellprobability"] == pytest.approx(0.97)


def test_subset_by_accession_and_symbol_follows_the_order_asked(archs4_file):
    m = read_archs4(archs4_file, samples=["GSM1009", "GSM1002", "GSM1005"], genes=["AR", "TP53", "NOPE", "EGFR"])
    assert m.sample_ids.tolist() == ["GSM1009", "GSM1002", "GSM1005"]
    assert m.gene_ids.tolist() == ["AR", "TP53", "EGFR"]
    np.testing.assert_array_equal(m.values, COUNTS[np.ix_([7, 0, 1], [9, 2, 5])].T)
    assert m.provenance.notes["genes_not_found"] == ["NOPE"]
    assert m.sample_meta["title"].tolist() == ["sample 9", "sample 2", "sample 5"]


def test_subset_by_positions(archs4_file):
    m = read_archs4(archs4_file, samples=np.array([11, 0]), genes=[6, 2])
    assert m.sample_ids.tolist() == ["GSM1011", "GSM1000"]
    assert m.gene_ids.tolist() == ["TP53", "GAPDH"]
    np.testing.assert_array_equal(m.values, COUNTS[np.ix_([6, 2], [11, 0])].T)


def test_bulk_only_drops_single_cell_and_unknown_samples(archs4_file):
    m = read_archs4(archs4_file, bulk_only=True)
    keep = [a for a, p in zip(ACC, SC_PROB, strict=True) if p < 0.5]
    assert m.sample_ids.tolist() == keep
    assert m.provenance.notes["non_bulk_samples_dropped"] == 4
    np.testing.assert_array_equal(m.values[:, 0], COUNTS[0, [ACC.index(a) for a in keep]])


def test_samples_x_genes_layout_is_detected(tmp_path, archs4_file):
    m = read_archs4(make_archs4(tmp_path / "v1.h5", transposed=True), samples=["GSM1003", "GSM1001"])
    assert m.provenance.notes["layout"] == "samples x genes"
    assert m.equals(read_archs4(archs4_file, samples=["GSM1003", "GSM1001"]), meta=False)


@pytest.mark.parametrize("genes", [None, ["AR", "TP53"]])  # a covering slice, and a point list
def test_small_blocks_give_the_same_values(archs4_file, monkeypatch, genes):
    whole = read_archs4(archs4_file, genes=genes)
    monkeypatch.setattr(archs4, "_BLOCK_BYTES", 8)  # one or two samples per read
    samples = ["GSM1011", "GSM1000", "GSM1006", "GSM1001", "GSM1007"]
    part = read_archs4(archs4_file, samples=samples, genes=genes)
    assert part.equals(whole.subset(samples), meta=False)


def test_float64(archs4_file):
    assert read_archs4(archs4_file, dtype=np.float64).values.dtype == np.float64


# ------------------------------------------------------------------ malformed input
def _shape_mismatch(f):
    del f["meta/samples/geo_accession"]
    f["meta/samples/geo_accession"] = np.array(ACC[:10], dtype="S")


def _short_meta(f):
    del f["meta/samples/series_id"]
    f["meta/samples/series_id"] = np.array(["GSE1"] * 5, dtype="S")


MALFORMED = {
    "no_expression": ({"drop": ("data/expression",)}, {}, "/data/expression: missing"),
    "no_symbols": ({"drop": ("meta/genes/symbol",)}, {}, "/meta/genes: no gene symbol array"),
    "no_accessions": ({"drop": ("meta/samples/geo_accession",)}, {}, "/meta/samples/geo_accession: missing"),
    "shape_mismatch": ({"edit": _shape_mismatch}, {}, "/data/expression: shape (8, 12) matches neither"),
    "short_sample_meta": ({"edit": _short_meta}, {}, "/meta/samples/series_id: has shape (5,)"),
    "bulk_without_probability": ({"drop": ("meta/samples/singlecellprobability",)}, {"bulk_only": True},
                                 "/meta/samples/singlecellprobability: missing"),
}


@pytest.mark.parametrize("case", list(MALFORMED))
def test_archs4_malformed(tmp_path, case):
    make_kw, read_kw, words = MALFORMED[case]
    path = make_archs4(tmp_path / "bad_archs4.h5", **make_kw)
    with pytest.raises(DataFormatError) as err:
        read_archs4(path, **read_kw)
    msg = str(err.value)
    assert "bad_archs4.h5" in msg
    assert words in msg


def test_not_hdf5(tmp_path):
    path = tmp_path / "bad_archs4.h5"
    path.write_bytes(b"not an hdf5 file\n" * 10)
    with pytest.raises(DataFormatError, match=r"bad_archs4\.h5: HDF5 header"):
        read_archs4(path)


@pytest.mark.parametrize(("kwargs", "words"), [
    ({"samples": ["GSM1000", "GSM9999"]}, "1 samples not in the file, e.g. ['GSM9999']"),
    ({"samples": ["GSM1000", "GSM1000"]}, "repeats"),
    ({"samples": [0, 12]}, "out of range"),
    ({"samples": []}, "empty"),
    ({"genes": [0, 6]}, "share symbols ['TP53']"),
    ({"genes": ["NOPE"]}, "none of the 1 genes"),
])
def test_bad_selections(archs4_file, kwargs, words):
    with pytest.raises(DatasetError) as err:
        read_archs4(archs4_file, **kwargs)
    assert words in str(err.value)


# ----------------------------------------------------------------- sniff and read
@pytest.mark.parametrize("name", ["human_gene_v2.2.h5", "counts.hdf5", "download.dat"])
def test_sniff_and_read_archs4_whatever_the_name(tmp_path, name):
    path = make_archs4(tmp_path / name)
    assert sniff(path) == "archs4"
    m = read(path, samples=["GSM1001"], genes=["MYC"])
    assert m.values.tolist() == [[501.0]]
