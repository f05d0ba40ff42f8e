"""The notebook front door: the package's public names, AnnData in (dense, CSR, CSC,
backed, a layer) and out, predict / evaluate on a Dataset, AnnData, DataFrame or array."""

from __future__ import annotations

import subprocess
import sys

import anndata as ad
import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp

import dgex_core as dg
from dgex_core.api import evaluate, predict
from dgex_core.demo import DemoConfig
from dgex_core.errors import DatasetError, ModelError


@pytest.fixture(scope="module")
def demo():
    return dg.load_demo(DemoConfig(n_samples=300, n_targets=40))


@pytest.fixture(scope="module")
def adata(demo):
    m = demo.matrix
    obs = m.sample_meta.copy()
    obs.index = obs.index.astype(str)
    var = pd.DataFrame({"symbol": [f"S{i}" for i in range(m.values.shape[1])]}, index=m.gene_ids.astype(str))
    return ad.AnnData(X=m.values.astype(np.float32), obs=obs, var=var)


def test_public_names_import_lazily_and_resolve():
    code = ("import sys, dgex_core as dg; assert 'torch' not in sys.modules; "
            "assert dg.MLPModel.__name__ == 'MLPModel' and dg.Dataset.__name__ == 'Dataset'; "
            "assert {'read', 'train_run', 'save_run', 'load_run', 'list_runs', 'load_demo', 'ChoiceModel'} "
            "<= set(dg.__all__) <= set(dir(dg))")
    subprocess.run([sys.executable, "-c", code], check=True)
    with pytest.raises(AttributeError, match="no attribute 'nothing'"):
        dg.nothing  # noqa: B018


@pytest.mark.parametrize("kind", ["dense", "csr", "csc", "layer"])
def test_dataset_from_anndata(demo, adata, kind):
    a = adata.copy()
    if kind == "csr":
        a.X = sp.csr_matrix(a.X)
    elif kind == "csc":
        a.X = sp.csc_matrix(a.X)
    elif kind == "layer":
        a.layers["counts"] = a.X.copy()
        a.X = np.zeros_like(a.X)
    ds = dg.Dataset.from_anndata(a, list(demo.landmark_ids), layer="counts" if kind == "layer" else None)
    ref = demo.dataset()
    assert list(ds.landmark_ids) == list(ref.landmark_ids) and list(ds.target_ids) == list(ref.target_ids)
    np.testing.assert_array_equal(np.asarray(ds.landmarks), np.asarray(ref.landmarks, np.float32))
    np.testing.assert_array_equal(np.asarray(ds.targets), np.asarray(ref.targets, np.float32))
    assert list(ds.sample_meta.columns) == list(adata.obs.columns)
    assert ds.target_meta["symbol"].tolist()[:2] == adata.var.loc[ds.target_ids[:2], "symbol"].tolist()


def test_backed_anndata_is_read_by_blocks_from_its_file(tmp_path, demo, adata):
    adata.write_h5ad(tmp_path / "d.h5ad")
    backed = ad.read_h5ad(tmp_path / "d.h5ad", backed="r")
    ds = dg.Dataset.from_anndata(backed, list(demo.landmark_ids))
    assert ds.is_lazy
    np.testing.assert_array_equal(np.asarray(ds.landmarks[:]), np.asarray(demo.dataset().landmarks, np.float32))
    backed.file.close()


def test_bad_anndata_inputs_say_what_to_do(demo, adata):
    with pytest.raises(DatasetError, match="no layer 'raw'"):
        dg.Dataset.from_anndata(adata, list(demo.landmark_ids), layer="raw")
    with pytest.raises(DatasetError, match="var has no column 'ensembl'"):
        dg.Dataset.from_anndata(adata, list(demo.landmark_ids), gene_id_column="ensembl")


def test_to_anndata_round_trips(demo):
    ds = demo.dataset()
    a = ds.to_anndata()
    assert a.shape == (ds.n_samples, ds.n_landmarks + ds.n_targets)
    assert a.var["role"].value_counts().to_dict() == {"landmark": ds.n_landmarks, "target": ds.n_targets}
    back = dg.Dataset.from_anndata(a, list(ds.landmark_ids))
    np.testing.assert_array_equal(np.asarray(back.targets), np.asarray(ds.targets, np.float32))


def test_predict_answers_in_the_kind_it_was_given(tmp_path, demo, adata):
    ds = demo.dataset()
    run = dg.train_run(ds, dg.LinearModel(alphas="auto"), "lin")
    expect = run.model.predict(np.asarray(ds.landmarks)).astype(np.float32)
    lo, hi = run.target_range()
    clipped = np.clip(expect, lo, hi)
    # an AnnData: measured landmarks + inferred targets, obs kept, var role / well_inferred
    out = predict(run, adata)
    assert isinstance(out, ad.AnnData) and out.obs.equals(adata.obs)
    assert out.var["role"].value_counts().to_dict() == {"measured": ds.n_landmarks, "inferred": ds.n_targets}
    assert out.var.loc[ds.target_ids, "well_inferred"].tolist() == run.well_inferred().tolist()
    np.testing.assert_allclose(out[:, list(ds.target_ids)].X, clipped, rtol=1e-5)
    np.testing.assert_array_equal(out[:, list(ds.landmark_ids)].X, adata[:, list(ds.landmark_ids)].X)
    # a sparse AnnData gives the same
    sparse = adata.copy()
    sparse.X = sp.csr_matrix(sparse.X)
    np.testing.assert_allclose(predict(run, sparse).X, out.X, rtol=1e-6)
    # a DataFrame (columns matched by id, in any order), a Dataset, an array
    df = pd.DataFrame(np.asarray(ds.landmarks), index=ds.sample_ids, columns=ds.landmark_ids).iloc[:, ::-1]
    np.testing.assert_allclose(predict(run, df).to_numpy(), clipped, rtol=1e-5)
    np.testing.assert_allclose(predict(run, ds).to_numpy(), clipped, rtol=1e-5)
    np.testing.assert_allclose(predict(run.model, np.asarray(ds.landmarks)), expect, rtol=1e-5)  # a model: no clip
    with pytest.raises(ModelError, match="not columns of the data"):
        predict(run, df.iloc[:, 1:])
    with pytest.raises(ModelError, match="fit it first"):
        predict(dg.LinearModel(), df)


def test_evaluate_takes_an_anndata(demo, adata):
    ds = demo.dataset()
    run = dg.train_run(ds, dg.LinearModel(alphas="auto"), "lin")
    a = evaluate(run, adata).per_gene
    b = evaluate(run, ds).per_gene
    pd.testing.assert_series_equal(a["mae"], b["mae"], rtol=1e-5)


def test_models_fit_dataframes_anndata_and_clone(demo, tmp_path):
    from sklearn.base import clone

    ds = demo.dataset()
    X = pd.DataFrame(np.asarray(ds.landmarks), index=ds.sample_ids, columns=ds.landmark_ids)
    Y = pd.DataFrame(np.asarray(ds.targets), index=ds.sample_ids, columns=ds.target_ids)
    m = dg.LinearModel(alphas="auto").fit(X, Y)  # validation: a seeded tenth held out
    assert m.n_features_in_ == ds.n_landmarks and list(m.feature_names_in_) == list(ds.landmark_ids)
    assert list(m.target_ids_) == list(ds.target_ids)
    out = m.predict(X.iloc[:, ::-1])  # columns matched by id
    assert isinstance(out, pd.DataFrame) and list(out.columns) == list(ds.target_ids)
    np.testing.assert_allclose(out.to_numpy(), m.predict_landmarks(X.to_numpy()), rtol=1e-10)
    # the same from an AnnData whose var["role"] says which genes are landmarks
    a = dg.LinearModel(alphas="auto").fit(ds.to_anndata())
    np.testing.assert_allclose(a.coef_, m.coef_, rtol=1e-8, atol=1e-10)
    # clone: same settings, not fitted; fits the same
    c = clone(m)
    assert c.get_params() == m.get_params() and not c.is_fitted
    np.testing.assert_array_equal(c.fit(X, Y).coef_, m.coef_)
    # one target as a 1-D y: 1-D predictions
    y = Y.iloc[:, 0]
    one = dg.LinearModel().fit(X.to_numpy(), y.to_numpy())
    assert one.predict(X.to_numpy()).shape == (ds.n_samples,)
    assert dg.load_model(one.save(tmp_path / "one")).predict(X.to_numpy()).shape == (ds.n_samples,)  # kept on disk
    with pytest.raises(ValueError, match=f"X has 5 features, but LinearModel is expecting {ds.n_landmarks} features"):
        one.predict(X.to_numpy()[:, :5])
