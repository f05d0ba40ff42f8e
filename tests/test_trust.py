"""Flags that mean what they say, on small data too: the out-of-distribution check
(held-out calibration, a run's own training data not flagged, mostly imputed samples
flagged) and the well-inferred flag (significant, and not computed on too few samples)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from dgex_core.dataset import Dataset
from dgex_core.demo import DemoConfig, load_demo
from dgex_core.io import read
from dgex_core.landmarks import read_landmarks
from dgex_core.matrix import ExpressionMatrix
from dgex_core.models.linear import LinearModel
from dgex_core.prediction import MAX_IMPUTED_SHARE, predict_file, predict_matrix_block
from dgex_core.store import load_run, save_run
from dgex_core.training import train_run, well_inferred_flags
from dgex_core.trust import DistributionCheck


def _flagged(run, part) -> np.ndarray:
    return run.trust.flag(run.model.standardize_landmarks(np.asarray(part.landmarks)))


@pytest.fixture(scope="module")
def demo():
    return load_demo(DemoConfig(n_samples=2000, n_targets=40)).dataset()


def test_demo_training_samples_are_not_flagged_and_held_out_ones_about_one_percent(demo):
    run = train_run(demo, LinearModel(), "ood-demo")
    sp = demo.split()
    assert _flagged(run, sp.train).mean() <= 0.01  # its own training data
    test = _flagged(run, sp.test)
    assert test.mean() <= 0.04  # held out, never seen by the fit or the calibration: ~1%
    assert run.trust.n_calibration_ == sp.train.n_samples + sp.val.n_samples
    shifted = run.model.standardize_landmarks(np.asarray(sp.test.landmarks)) + 2.0
    assert run.trust.flag(shifted).all()


@pytest.mark.slow
def test_real_57_arrays_predicting_the_training_file_flags_few_and_a_foreign_plate_all(
        tmp_path, gpl96_bladder, l1000_plate):
    """The README's workflow: 45 training arrays, 978 landmarks (more landmarks than
    samples). The run's own file must not come back mostly flagged (it was 47 of 57);
    the A375 L1000 plate, another platform and tissue, must."""
    data = read(gpl96_bladder)
    ds = Dataset.from_matrix(data, read_landmarks(l1000_plate))
    run = train_run(ds, LinearModel(), "bladder")
    save_run(run, tmp_path)
    run = load_run(tmp_path / "bladder")  # as `dgex predict` sees it
    own = predict_file(run, gpl96_bladder, tmp_path / "own.parquet")
    assert own["ood_flagged"] <= 3, own  # of 57
    train_ids = set(ds.split().train.sample_ids)
    meta = pd.read_parquet(tmp_path / "own.parquet", columns=["ood_flag"])
    assert meta["ood_flag"][meta.index.isin(train_ids)].sum() <= 1
    plate = predict_file(run, l1000_plate, tmp_path / "plate.parquet")
    assert plate["ood_flagged"] == plate["samples"] == 371


def test_a_sample_mostly_imputed_is_flagged_whatever_its_score(demo):
    run = train_run(demo, LinearModel(), "ood-impute")
    sp = demo.split()
    x = np.array(sp.test.landmarks[:4], np.float32)
    n = x.shape[1]
    x[1, : int(0.05 * n)] = np.nan  # a few missing: judged by its score
    x[2, : int(MAX_IMPUTED_SHARE * n) + 1] = np.nan  # just over the share
    x[3, :] = np.nan  # every landmark missing: the training mean, the most "typical" profile
    block = ExpressionMatrix(x, sp.test.sample_ids[:4], run.model.landmark_ids_)
    out = predict_matrix_block(run, block, np.arange(n), missing="impute")
    meta = out.sample_meta
    assert meta["n_imputed"].tolist() == [0, int(0.05 * n), int(MAX_IMPUTED_SHARE * n) + 1, n]
    assert meta["ood_score"].iloc[3] < 1  # the check alone would pass it
    assert meta["ood_flag"].tolist() == [False, False, True, True]


def test_check_without_validation_samples_is_calibrated_out_of_fold():
    rng = np.random.default_rng(3)
    X = rng.normal(size=(300, 50)) @ rng.normal(size=(50, 50))
    check = DistributionCheck().fit(X, None)
    assert check.n_calibration_ == 300
    new = rng.normal(size=(2000, 50)) @ rng.normal(size=(50, 50))
    assert check.flag(X).mean() <= 0.01
    assert check.flag(new).mean() > 0.5  # another covariance
    with pytest.raises(Exception, match="at least 3 training samples"):
        DistributionCheck().fit(X[:2])


def _noise_targets(n: int, seed: int = 0) -> Dataset:
    """12 landmarks predicting 10 real targets; 400 targets of pure noise."""
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, 12))
    real = X[:, :10] + 0.3 * rng.normal(size=(n, 10))
    noise = rng.normal(size=(n, 400))
    genes = [f"L{i}" for i in range(12)] + [f"R{i}" for i in range(10)] + [f"N{i}" for i in range(400)]
    m = ExpressionMatrix(np.hstack([X, real, noise]), [f"S{i}" for i in range(n)], genes)
    return Dataset.from_matrix(m, genes[:12])


@pytest.mark.parametrize("n", [60, 80, 300])
def test_pure_noise_targets_are_rarely_well_inferred_on_few_validation_samples(n):
    ds = _noise_targets(n)
    run = train_run(ds, LinearModel(), "noise")
    well = run.well_inferred()
    noise = well[well.index.str.startswith("N")]
    assert noise.mean() <= 0.03, (run.config["split"]["n_val"], noise.mean())  # was ~1/2 on tiny validation
    assert well[well.index.str.startswith("R")].mean() >= 0.8  # the real ones (r ~ 0.95) mostly still are


def test_too_few_validation_samples_gives_no_flag_and_says_so():
    run = train_run(_noise_targets(40), LinearModel(), "tiny", val=0.05)  # 2 validation samples
    assert run.config["split"]["n_val"] == 2
    assert not run.well_inferred().any()
    assert "n_well_inferred" not in run.metrics
    assert "not computed: 2 validation samples" in run.metrics["well_inferred_note"]


def test_well_inferred_flags_need_r_and_its_significance():
    r = pd.Series([0.9, 0.6, 0.95, np.nan, -0.9], index=list("abcde"))
    assert well_inferred_flags(r, 6).tolist() == [True, False, True, False, False]  # 0.6 on 6: p ~ 0.1
    assert well_inferred_flags(r, 200).tolist() == [True, True, True, False, False]
    assert well_inferred_flags(pd.Series([0.49]), 10_000).tolist() == [False]  # below r however significant


def test_check_settings_and_sizes_it_cannot_work_with_are_refused():
    with pytest.raises(Exception, match="n_folds must be at least 2"):
        DistributionCheck(n_folds=1)
    with pytest.raises(Exception, match="at least 2 landmarks"):
        DistributionCheck().fit(np.random.default_rng(0).normal(size=(50, 1)))


def test_a_legacy_check_is_written_back_as_it_was_read():
    params = {"n_components": None, "variance": 0.9, "quantile": 0.99, "t2_threshold": 3.0, "q_threshold": 5.0}
    arrays = {"mean": np.zeros(4), "components": np.eye(4)[:, :2], "explained_variance": np.ones(2)}
    old = DistributionCheck.from_state(params, arrays)
    back, _ = old.get_state()
    assert back == params
    x = np.array([[3.0, 0.0, 0.0, 0.0]])
    assert old.score(x)[0] == pytest.approx(3.0)  # T^2 = 9 over its threshold 3
