"""AnnData .h5ad files written by anndata itself: dense and sparse X, layers, categorical obs."""

from __future__ import annotations

from pathlib import Path

import anndata as ad
import h5py
import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp

from dgex_core.errors import DataFormatError
from dgex_core.io import read, sniff
from dgex_core.io.h5ad import read_h5ad, write_h5ad
from dgex_core.matrix import ExpressionMatrix, Provenance

SAMPLES = ["GSM1", "GSM2", "GSM3", "GSM4"]
SYMBOLS = ["TP53", "EGFR", "GAPDH"]
ENSEMBL = ["ENSG00000141510", "ENSG00000146648", "ENSG00000111640"]
COUNTS = np.array([[0, 5, 120], [3, 0, 98], [0, 0, 143], [7, 2, 0]], dtype=np.int32)


def make_adata(x) -> ad.AnnData:
    obs = pd.DataFrame({"tissue": pd.Categorical(["liver", "brain", "liver", "lung"]),
                        "age": [52, 61, 47, 33]}, index=SAMPLES)
    var = pd.DataFrame({"gene_ids": ENSEMBL, "feature_types": pd.Categorical(["Gene Expression"] * 3)},
                       index=SYMBOLS)
    a = ad.AnnData(X=x, obs=obs, var=var)
    a.layers["counts"] = sp.csr_matrix(COUNTS)
    return a


@pytest.fixture(params=["dense", "csr", "csc"])
def h5ad_file(request, tmp_path) -> Path:
    x = np.log2(1 + COUNTS.astype(np.float32))
    x = {"dense": x, "csr": sp.csr_matrix(x), "csc": sp.csc_matrix(x)}[request.param]
    path = tmp_path / f"{request.param}.h5ad"
    make_adata(x).write_h5ad(path)
    return path


def test_read_h5ad_x_obs_var(h5ad_file):
    m = read_h5ad(h5ad_file)
    assert m.shape == (4, 3)
    assert m.sample_ids.tolist() == SAMPLES
    assert m.gene_ids.tolist() == SYMBOLS
    assert m.values.dtype == np.float32
    np.testing.assert_allclose(m.values, np.log2(1 + COUNTS.astype(np.float32)))
    assert m.sample_meta["tissue"].tolist() == ["liver", "brain", "liver", "lung"]
    assert isinstance(m.sample_meta["tissue"].dtype, pd.CategoricalDtype)
    assert m.sample_meta["age"].tolist() == [52, 61, 47, 33]
    assert m.gene_meta["gene_ids"].tolist() == ENSEMBL
    assert m.provenance.format == "h5ad"


def test_read_h5ad_layer_and_gene_id_column(h5ad_file):
    m = read_h5ad(h5ad_file, layer="counts", gene_id_column="gene_ids")
    np.testing.assert_array_equal(m.values, COUNTS)
    assert m.gene_ids.tolist() == ENSEMBL
    assert m.gene_meta["var_names"].tolist() == SYMBOLS
    assert "gene_ids" not in m.gene_meta.columns
    assert m.provenance.notes == {"layer": "counts", "gene_id_column": "gene_ids"}


def _matrix() -> ExpressionMatrix:
    rng = np.random.default_rng(1)
    values = rng.standard_normal((4, 3)).astype(np.float32)
    values[2, 1] = np.nan
    sample_meta = pd.DataFrame({"tissue": ["liver", None, "lung", "skin"], "batch": [1, 2, 1, 2],
                                "mixed": [1, "a", 2.5, None]}, index=SAMPLES)
    gene_meta = pd.DataFrame({"symbol": SYMBOLS}, index=ENSEMBL)
    return ExpressionMatrix(values, SAMPLES, ENSEMBL, sample_meta, gene_meta,
                            Provenance("x.gct", "gct", ("log2(x+1)", "quantile normalize")))


def test_write_h5ad_round_trips(tmp_path):
    m = _matrix()
    path = write_h5ad(m, tmp_path / "out.h5ad")
    back = read_h5ad(path)
    assert back.sample_ids.equals(m.sample_ids) and back.gene_ids.equals(m.gene_ids)
    np.testing.assert_array_equal(back.values, m.values)  # NaN included
    assert back.sample_meta["tissue"].tolist()[:1] == ["liver"] and pd.isna(back.sample_meta["tissue"].iloc[1])
    assert back.sample_meta["batch"].tolist() == [1, 2, 1, 2]
    assert back.sample_meta["mixed"].astype(object).tolist()[:3] == ["1", "a", "2.5"]
    assert back.gene_meta["symbol"].tolist() == SYMBOLS
    assert back.provenance.transforms == ("log2(x+1)", "quantile normalize")
    # a file anndata itself can open
    assert ad.read_h5ad(path).shape == (4, 3)
    assert not list(tmp_path.glob(".*.tmp"))


def test_write_h5ad_float64(tmp_path):
    m = _matrix().with_values(_matrix().values.astype(np.float64))
    back = read_h5ad(write_h5ad(m, tmp_path / "out.h5ad"), dtype=np.float64)
    np.testing.assert_array_equal(back.values, m.values)


# ------------------------------------------------------------------ malformed input
def _write(tmp_path, x=None) -> Path:
    path = tmp_path / "bad.h5ad"
    make_adata(sp.csr_matrix(COUNTS.astype(np.float32)) if x is None else x).write_h5ad(path)
    return path


def _not_hdf5(tmp_path):
    path = tmp_path / "bad.h5ad"
    path.write_text("gene,S1\nTP53,1\n")
    return path, {}, "HDF5 header"


def _missing_obs(tmp_path):
    path = _write(tmp_path)
    with h5py.File(path, "a") as f:
        del f["obs"]
    return path, {}, "/obs: missing"


def _damaged_sparse_x(tmp_path):
    path = _write(tmp_path)
    with h5py.File(path, "a") as f:
        del f["X/indptr"]
    return path, {}, "/X: cannot be read"


def _no_such_layer(tmp_path):
    return _write(tmp_path), {"layer": "raw"}, "/layers/raw: no layer 'raw' (layers: ['counts'])"


def _obs_length(tmp_path):
    path = _write(tmp_path)
    ad.AnnData(X=np.zeros((2, 3), np.float32), obs=pd.DataFrame(index=["a", "b"])).write_h5ad(tmp_path / "o.h5ad")
    with h5py.File(path, "a") as f, h5py.File(tmp_path / "o.h5ad") as g:
        del f["obs"]
        g.copy(g["obs"], f, "obs")
    return path, {}, "/obs: 2 rows but /X has 4"


def _duplicate_obs_names(tmp_path):
    a = make_adata(COUNTS.astype(np.float32))
    a.obs_names = ["GSM1", "GSM1", "GSM3", "GSM4"]
    path = tmp_path / "bad.h5ad"
    a.write_h5ad(path)
    return path, {}, "/obs (obs_names): duplicate sample ids, e.g. ['GSM1']"


def _unknown_gene_id_column(tmp_path):
    return _write(tmp_path), {"gene_id_column": "ensembl"}, "/var/ensembl: no var column 'ensembl'"


def _duplicate_gene_id_column(tmp_path):
    return _write(tmp_path), {"gene_id_column": "feature_types"}, "/var/feature_types: duplicate gene ids"


def _no_x(tmp_path):
    path = _write(tmp_path)
    with h5py.File(path, "a") as f:
        del f["X"]
    return path, {}, "/X: no X matrix in this file; pass layer= one of ['counts']"


@pytest.mark.parametrize("make", [_not_hdf5, _missing_obs, _damaged_sparse_x, _no_such_layer, _obs_length,
                                  _duplicate_obs_names, _unknown_gene_id_column, _duplicate_gene_id_column, _no_x],
                         ids=lambda f: f.__name__[1:])
def test_h5ad_malformed(tmp_path, make):
    path, kwargs, words = make(tmp_path)
    with pytest.raises(DataFormatError) as err:
        read_h5ad(path, **kwargs)
    msg = str(err.value)
    assert "bad.h5ad" in msg
    assert words in msg


# ----------------------------------------------------------------- sniff and read
@pytest.mark.parametrize("name", ["data.h5ad", "data.h5", "download.bin"])
def test_sniff_and_read_h5ad_whatever_the_name(tmp_path, name):
    path = tmp_path / name
    make_adata(sp.csr_matrix(COUNTS.astype(np.float32))).write_h5ad(path)
    assert sniff(path) == "h5ad"
    m = read(path, layer="counts")
    np.testing.assert_array_equal(m.values, COUNTS)
