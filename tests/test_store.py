"""Runs on disk: the whole train -> save -> load cycle, integrity checks, listing."""

from __future__ import annotations

import json

import numpy as np
import pytest

from dgex_core.errors import ModelError
from dgex_core.models.knn import KNNModel
from dgex_core.models.linear import LinearModel
from dgex_core.store import list_runs, load_run, save_run
from dgex_core.training import predict_with_run, train_run

from .helpers import linear_data as _data


@pytest.fixture
def dataset():
    return _data(n=400, seed=11, nonlinear=True)


def test_train_save_load_predict(tmp_path, dataset):
    run = train_run(dataset, LinearModel(alphas="auto"), "lin1", keep_predictions=True)
    assert run.metrics["test"]["n_genes"] == dataset.n_targets
    assert {"mae", "mae_z", "pearson", "spearman", "well_inferred"} <= set(run.per_gene.columns)
    assert "ood_score" in run.per_sample
    path = save_run(run, tmp_path)
    back = load_run(path)
    assert back.config["split"]["n_test"] == 40
    np.testing.assert_array_equal(back.model.coef_, run.model.coef_)
    assert back.per_gene.equals(run.per_gene)
    preds, ood = predict_with_run(back, dataset)
    np.testing.assert_allclose(preds.to_numpy(), run.model.predict(dataset.landmarks), rtol=1e-6)
    assert ood.shape == (dataset.n_samples,)


def test_test_samples_never_reach_training(dataset):
    """The model trained by train_run equals one fitted on the train split alone."""
    run = train_run(dataset, LinearModel(alphas="auto"), "leak", seed=3)
    sp = dataset.split(seed=3)
    ref = LinearModel(alphas="auto").fit(sp.train, sp.val)
    np.testing.assert_array_equal(run.model.coef_, ref.coef_)
    assert run.model.n_train_ == sp.train.n_samples


def test_altered_run_is_refused(tmp_path, dataset):
    path = save_run(train_run(dataset, KNNModel(k=3), "knn"), tmp_path)
    w = path / "weights.safetensors"
    data = bytearray(w.read_bytes())
    data[-5] ^= 0xFF
    w.write_bytes(bytes(data))
    with pytest.raises(ModelError, match="altered"):
        load_run(path)


def test_incomplete_run_is_refused(tmp_path, dataset):
    path = save_run(train_run(dataset, LinearModel(), "lin"), tmp_path)
    (path / "genes.json").unlink()
    with pytest.raises(ModelError, match=r"genes\.json is missing"):
        load_run(path)
    (path / "checksums.json").unlink()
    with pytest.raises(ModelError, match="incomplete"):
        load_run(path)


def test_mismatched_gene_lists_are_refused(tmp_path, dataset):
    path = save_run(train_run(dataset, LinearModel(), "lin"), tmp_path)
    genes = json.loads((path / "genes.json").read_text())
    genes["targets"] = genes["targets"][::-1]
    (path / "genes.json").write_text(json.dumps(genes))
    with pytest.raises(ModelError, match="disagrees"):
        load_run(path, verify=False)


def test_crash_mid_save_leaves_nothing(tmp_path, dataset, monkeypatch):
    run = train_run(dataset, LinearModel(), "crash")

    def boom(*a, **k):
        raise RuntimeError("disk full")

    monkeypatch.setattr(run.model, "save", boom)
    with pytest.raises(RuntimeError):
        save_run(run, tmp_path)
    assert list(tmp_path.iterdir()) == []


def test_existing_name_and_bad_name(tmp_path, dataset):
    run = train_run(dataset, LinearModel(), "same")
    save_run(run, tmp_path)
    with pytest.raises(ModelError, match="already exists"):
        save_run(run, tmp_path)
    save_run(run, tmp_path, overwrite=True)
    run.name = "../escape"
    with pytest.raises(ModelError, match="run name"):
        save_run(run, tmp_path)


def test_list_runs(tmp_path, dataset):
    save_run(train_run(dataset, LinearModel(), "a"), tmp_path)
    save_run(train_run(dataset, KNNModel(k=5), "b"), tmp_path)
    (tmp_path / ".b.partial.tmp").mkdir()
    df = list_runs(tmp_path)
    assert df["name"].tolist() == ["a", "b"]
    assert df["family"].tolist() == ["linear", "knn"]
    assert (df["test_mae"] > 0).all()


def test_ood_score_flags_shifted_profiles():
    dataset = _data(n=3000, seed=12)
    run = train_run(dataset, LinearModel(), "ood")
    sp = dataset.split()
    z = run.model.standardize_landmarks(sp.test.landmarks)
    inside = run.trust.score(z)
    outside = run.trust.score(z + 4.0)
    assert np.mean(inside > 1) < 0.05
    assert np.all(outside > 1)


def test_external_evaluation_with_quantile_normalization(dataset):
    """A platform shift (another scale) is undone by quantile normalization to the training distribution."""
    from dgex_core.dataset import Dataset
    from dgex_core.training import evaluate_external

    run = train_run(dataset, LinearModel(), "ext")
    sp = dataset.split()
    shifted = Dataset(np.exp2(sp.test.landmarks / 4), np.exp2(sp.test.targets / 4), sp.test.landmark_ids,
                      sp.test.target_ids, sp.test.sample_ids)
    raw = evaluate_external(run, shifted)
    fixed = evaluate_external(run, shifted, quantile=True)
    same = evaluate_external(run, sp.test)
    assert fixed.summary["mean_mae"] < 0.5 * raw.summary["mean_mae"]
    assert fixed.summary["mean_mae"] < 2 * same.summary["mean_mae"]
    assert fixed.summary["quantile_normalized"] is True
