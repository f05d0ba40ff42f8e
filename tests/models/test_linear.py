"""Linear regression against scikit-learn on the same data, streaming, grids, coefficients."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.linear_model import LinearRegression, Ridge

from dgex_core.models.linear import DEFAULT_ALPHA_GRID, GramAccumulator, LinearModel
from dgex_core.models.persist import load_model

from ..helpers import linear_data as _data


def _rel(a, b):
    return np.max(np.abs(a - b)) / np.max(np.abs(b))


def test_ols_equals_sklearn_linear_regression():
    sp = _data().split(seed=0)
    ours = LinearModel().fit(sp.train)
    ref = LinearRegression().fit(sp.train.landmarks, sp.train.targets)
    assert _rel(ours.predict(sp.test.landmarks), ref.predict(sp.test.landmarks)) < 1e-6
    coef = ours.coefficients("original")
    assert _rel(coef.drop(index="(intercept)").to_numpy(), ref.coef_.T) < 1e-6
    assert _rel(coef.loc["(intercept)"].to_numpy(), ref.intercept_) < 1e-6


def test_every_alpha_of_the_grid_equals_sklearn_ridge():
    sp = _data(seed=1).split(seed=1)
    model = LinearModel(alphas="auto").fit(sp.train, sp.val)
    Xz_tr = model.input_pipeline_.transform(sp.train.landmarks)
    Xz_te = model.input_pipeline_.transform(sp.test.landmarks)
    grid = [a * sp.train.n_samples for a in DEFAULT_ALPHA_GRID]
    assert sorted(model.alpha_scores_) == sorted(grid)
    for a in grid:
        single = LinearModel(alpha=a).fit(sp.train)
        ref = (Ridge(alpha=a, solver="cholesky") if a > 0 else LinearRegression()).fit(Xz_tr, sp.train.targets)
        assert _rel(single.predict(sp.test.landmarks), ref.predict(Xz_te)) < 1e-6, a
    # the grid's choice is the alpha with the lowest validation MAE, recomputed independently
    def val_mae(a):
        m = LinearModel(alpha=a).fit(sp.train)
        return np.mean(np.abs(m.predict_standardized(sp.val.landmarks)
                              - m.target_scaler_.transform(sp.val.targets)))
    best = min(grid, key=val_mae)
    assert model.alpha_ == pytest.approx(best)
    assert model.alpha_scores_[model.alpha_] == pytest.approx(val_mae(best), rel=1e-6)


def test_streaming_in_blocks_gives_the_same_result():
    sp = _data(n=1000).split(seed=2)
    whole = LinearModel(alpha=3.0, block_size=10**6).fit(sp.train)
    blocks = LinearModel(alpha=3.0, block_size=37).fit(sp.train)
    assert _rel(blocks.coef_, whole.coef_) < 1e-9


def test_accumulator_is_exact_for_large_means():
    rng = np.random.default_rng(3)
    X = rng.normal(1e4, 1, size=(500, 5))
    Y = rng.normal(-1e4, 1, size=(500, 2))
    acc = GramAccumulator()
    for s in range(0, 500, 64):
        acc.update(X[s:s + 64], Y[s:s + 64])
    Sxx, Sxy, mx, _ = acc.finalize()
    Xc, Yc = X - X.mean(0), Y - Y.mean(0)
    np.testing.assert_allclose(Sxx, Xc.T @ Xc, rtol=1e-9, atol=1e-9)
    np.testing.assert_allclose(Sxy, Xc.T @ Yc, rtol=1e-9, atol=1e-9)
    np.testing.assert_allclose(mx, X.mean(0), rtol=1e-12)


def test_collinear_landmarks_give_min_norm_solution_like_sklearn():
    ds = _data(n=200, p=10, t=3, seed=4)
    ds.landmarks[:, 1] = ds.landmarks[:, 0] * 2 + 1  # exactly collinear
    ours = LinearModel().fit(ds)
    ref = LinearRegression().fit(ds.landmarks, ds.targets)
    assert _rel(ours.predict(ds.landmarks), ref.predict(ds.landmarks)) < 1e-6


def test_save_load_round_trip(tmp_path):
    sp = _data().split(seed=5)
    m = LinearModel(alphas="auto").fit(sp.train, sp.val)
    m.save(tmp_path / "lin")
    back = load_model(tmp_path / "lin")
    assert isinstance(back, LinearModel) and back.alpha_ == m.alpha_
    np.testing.assert_array_equal(back.predict(sp.test.landmarks), m.predict(sp.test.landmarks))
    assert back.target_ids_.tolist() == m.target_ids_.tolist()


def test_grid_without_validation_holds_out_a_seeded_tenth():
    from dgex_core.models.inputs import hold_out

    data = _data()
    auto = LinearModel(alphas="auto").fit(data)
    train, val = hold_out(data)
    assert (train.n_samples, val.n_samples) == (data.n_samples - round(0.1 * data.n_samples),
                                               round(0.1 * data.n_samples))
    explicit = LinearModel(alphas="auto").fit(train, val)
    assert auto.alpha_ == explicit.alpha_ and auto.n_train_ == train.n_samples
    np.testing.assert_array_equal(auto.coef_, explicit.coef_)


def test_predict_dataset_matches_by_id():
    sp = _data().split(seed=6)
    m = LinearModel().fit(sp.train)
    shuffled = sp.test.subset(landmarks=sp.test.landmark_ids[::-1])
    np.testing.assert_allclose(m.predict_dataset(shuffled).to_numpy(), m.predict(sp.test.landmarks), rtol=1e-5)


@pytest.mark.parametrize("store", ["memmap", "hdf5"])
def test_fit_from_disk_in_blocks_equals_in_memory_fit(tmp_path, store):
    import h5py

    from dgex_core.models.sources import ArraySource

    sp = _data(n=900, seed=7).split(seed=7)
    X, Y = sp.train.landmarks.astype(np.float32), sp.train.targets.astype(np.float32)
    if store == "memmap":
        Xd = np.lib.format.open_memmap(tmp_path / "x.npy", "w+", np.float32, X.shape)
        Yd = np.lib.format.open_memmap(tmp_path / "y.npy", "w+", np.float32, Y.shape)
        Xd[:], Yd[:] = X, Y
        Xd.flush(), Yd.flush()
        Xd, Yd = np.load(tmp_path / "x.npy", mmap_mode="r"), np.load(tmp_path / "y.npy", mmap_mode="r")
    else:
        f = h5py.File(tmp_path / "d.h5", "w")
        Xd, Yd = f.create_dataset("x", data=X), f.create_dataset("y", data=Y)
    disk = LinearModel(alphas="auto", input_transform="quantile").fit_source(
        ArraySource(Xd, Yd, block_size=64), sp.train.landmark_ids, sp.train.target_ids,
        (sp.val.landmarks, sp.val.targets))
    mem = LinearModel(alphas="auto", input_transform="quantile", block_size=10**6).fit(
        sp.train.subset(), sp.val)
    assert disk.alpha_ == mem.alpha_
    assert _rel(disk.predict(sp.test.landmarks), mem.predict(sp.test.landmarks)) < 1e-5
