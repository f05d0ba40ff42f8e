"""KNN-GE against scikit-learn's brute-force KNeighborsRegressor on the same data."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.neighbors import KNeighborsRegressor

from dgex_core.models.knn import KNNModel, nearest_neighbours
from dgex_core.models.persist import load_model

from ..helpers import linear_data as _data


def _sk(train, k, model, metric="euclidean"):
    Xz = model.input_pipeline_.transform(train.landmarks)
    return KNeighborsRegressor(n_neighbors=k, algorithm="brute", metric=metric).fit(Xz, train.targets)


@pytest.mark.parametrize("k", [1, 4, 15])
def test_single_k_equals_sklearn(k):
    sp = _data(n=500, seed=1, nonlinear=True).split(seed=1)
    ours = KNNModel(k=k, query_block=13, train_block=50).fit(sp.train)
    ref = _sk(sp.train, k, ours)
    Xz_te = ours.input_pipeline_.transform(sp.test.landmarks)
    np.testing.assert_allclose(ours.predict(sp.test.landmarks), ref.predict(Xz_te), rtol=1e-4, atol=1e-4)
    idx, dist = ours.kneighbors(sp.test.landmarks, k)
    ref_d, ref_i = ref.kneighbors(Xz_te)
    np.testing.assert_array_equal(idx, ref_i)
    np.testing.assert_allclose(dist, ref_d, rtol=1e-4, atol=1e-4)


def test_correlation_metric_equals_sklearn():
    sp = _data(n=300, seed=2).split(seed=2)
    ours = KNNModel(k=5, metric="correlation").fit(sp.train)
    ref = _sk(sp.train, 5, ours, metric="correlation")
    Xz_te = ours.input_pipeline_.transform(sp.test.landmarks)
    np.testing.assert_allclose(ours.predict(sp.test.landmarks), ref.predict(Xz_te), rtol=1e-4, atol=1e-4)


def test_grid_scores_equal_refitting_per_k():
    sp = _data(n=400, seed=3, nonlinear=True).split(seed=3)
    grid = [1, 2, 5, 9]
    model = KNNModel(k_grid=grid, query_block=7).fit(sp.train, sp.val)
    for k in grid:
        single = KNNModel(k=k).fit(sp.train)
        err = np.abs(single.predict_standardized(sp.val.landmarks) - single.target_scaler_.transform(sp.val.targets))
        assert model.k_scores_[k] == pytest.approx(err.mean(axis=0).mean(), rel=1e-5)
    assert model.k_ == min(model.k_scores_, key=model.k_scores_.get)


def test_blocked_search_finds_the_true_nearest():
    rng = np.random.default_rng(4)
    X, Q = rng.normal(size=(257, 9)), rng.normal(size=(31, 9))
    d_full = ((Q[:, None, :] - X[None]) ** 2).sum(-1)
    want = np.argsort(d_full, axis=1)[:, :6]
    got = np.vstack([i for _, i, _ in nearest_neighbours(Q, X, 6, query_block=5, train_block=17)])
    np.testing.assert_array_equal(got, want)


def test_save_load(tmp_path):
    sp = _data(n=200, seed=5).split(seed=5)
    m = KNNModel(k_grid="auto").fit(sp.train, sp.val)
    back = load_model(m.save(tmp_path / "knn"))
    assert back.k_ == m.k_
    np.testing.assert_array_equal(back.predict(sp.test.landmarks), m.predict(sp.test.landmarks))
