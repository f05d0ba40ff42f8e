"""The per-gene choice: never worse than its better part on validation, chosen on
validation only, predicts / saves / explains like any run, shows which family each gene uses."""

from __future__ import annotations

import numpy as np
import pytest

from dgex_core import attribution
from dgex_core.cli import main
from dgex_core.dataset import Dataset
from dgex_core.errors import ModelError
from dgex_core.matrix import ExpressionMatrix
from dgex_core.models.choice import ChoiceModel, blend_grid
from dgex_core.models.persist import load_model
from dgex_core.store import load_run, save_run
from dgex_core.training import train_run

from ..helpers import mixed_data

NET = {"hidden": [32], "max_epochs": 30, "batch_size": 64, "lr": 3e-3, "dropout": 0.0, "device": "cpu",
       "adaptive": False, "input_dropout": 0.0,
       "linear_path": "off"}


def _choice(**kw) -> ChoiceModel:
    return ChoiceModel(mlp=NET, **kw)


def test_blend_grid_puts_the_pure_parts_first():
    g = blend_grid(3, 0.25)
    np.testing.assert_array_equal(g[:3], np.eye(3))
    assert len(g) == 15 and np.allclose(g.sum(axis=1), 1) and (g >= 0).all()
    assert len(blend_grid(2, 1.0)) == 2
    with pytest.raises(ModelError, match="blend_step"):
        blend_grid(2, 0.3)


def test_never_worse_than_the_better_part_on_validation():
    sp = mixed_data(n=900).split(seed=0)
    m = _choice(parts=("linear", "knn", "mlp")).fit(sp.train, sp.val)
    best = np.min(np.vstack(list(m.part_validation_mae_.values())), axis=0)
    assert (m.validation_mae_ <= best).all()
    # the recorded validation errors are the model's own: recompute them from its predictions
    z = m.target_scaler_.transform(np.asarray(sp.val.targets, np.float64))
    own = np.abs(m.predict_standardized(np.asarray(sp.val.landmarks)) - z).mean(axis=0)
    np.testing.assert_allclose(own, m.validation_mae_, rtol=1e-5)
    for name, part in m.parts_.items():
        pz = np.abs(part.predict_standardized(np.asarray(sp.val.landmarks)) - z).mean(axis=0)
        np.testing.assert_allclose(pz, m.part_validation_mae_[name], rtol=1e-5)
    table = m.choice_table()
    # linear targets keep ridge, the non-linear ones lean on the non-linear parts
    assert (table["weight_linear"].iloc[:4] == 1).all() and (table["weight_linear"].iloc[4:] < 1).all()
    assert (table.filter(like="weight_").sum(axis=1) == 1).all()


def test_the_choice_uses_validation_only_changing_test_samples_changes_nothing():
    ds = mixed_data(n=700)
    sp = ds.split(seed=1)
    a = train_run(ds, _choice(), "a", split=sp)
    values = ds.to_matrix().values.copy()
    rows = ds.sample_ids.get_indexer(sp.test.sample_ids)
    values[rows] += np.random.default_rng(0).normal(0, 2, size=(len(rows), values.shape[1]))  # other test samples
    other = Dataset.from_matrix(ExpressionMatrix(values, ds.sample_ids, ds.landmark_ids.append(ds.target_ids)),
                                list(ds.landmark_ids))
    b = train_run(other, _choice(), "b", split=other.split(seed=1))
    np.testing.assert_array_equal(a.model.weights_, b.model.weights_)
    np.testing.assert_array_equal(a.model.validation_mae_, b.model.validation_mae_)
    assert not np.allclose(a.per_gene["mae"], b.per_gene["mae"])  # the test scores did change


def test_predicts_the_blend_of_its_parts_and_round_trips(tmp_path):
    ds = mixed_data(n=600)
    run = train_run(ds, _choice(parts=("linear", "knn", "mlp"), blend_step=0.5), "pick", split=ds.split(seed=2))
    m = run.model
    X = np.asarray(ds.landmarks[:50])
    blend = sum(m.weights_[:, m.part_names_.index(f)] * p.predict_standardized(X) for f, p in m.parts_.items())
    np.testing.assert_allclose(m.predict_standardized(X), blend, rtol=1e-5, atol=1e-6)
    assert "uses" in run.per_gene and run.per_gene["uses"].notna().all()
    back = load_run(save_run(run, tmp_path))
    np.testing.assert_array_equal(back.model.predict(X), m.predict(X))
    assert back.per_gene["uses"].tolist() == run.per_gene["uses"].tolist()
    assert load_model(back.path).choice_summary() == m.choice_summary()


def test_explains_each_gene_by_its_chosen_part():
    sp = mixed_data(n=700).split(seed=3)
    m = _choice().fit(sp.train, sp.val)
    A = attribution.attributions(m, sp.val.landmarks, "gradient")
    lin = attribution.attributions(m.parts_["linear"], sp.val.landmarks, "gradient") if "linear" in m.parts_ else 0
    net = attribution.attributions(m.parts_["mlp"], sp.val.landmarks, "gradient") if "mlp" in m.parts_ else 0
    w = m.choice_table()
    expect = lin * w["weight_linear"].to_numpy() + net * w["weight_mlp"].to_numpy()
    np.testing.assert_allclose(A.to_numpy(), np.asarray(expect), rtol=1e-6, atol=1e-9)


def test_knn_genes_have_no_attributions_and_say_so():
    sp = mixed_data(n=600).split(seed=4)
    m = _choice(parts=("knn",)).fit(sp.train, sp.val)
    with pytest.raises(ModelError, match=r"knn.*no landmark attributions"):
        attribution.attributions(m, sp.val.landmarks, "gradient")


def test_bad_parts_are_refused_before_any_fit(tmp_path, capsys):
    sp = mixed_data(n=200).split(seed=0)
    with pytest.raises(ModelError, match="distinct families"):
        _choice(parts=("linear", "forest")).fit(sp.train, sp.val)
    rc = main(["train", "--data", "demo:300x40", "--model", "choice", "--parts", "linear,linear",
               "--runs-dir", str(tmp_path)])
    assert rc != 0 and "distinct families" in capsys.readouterr().err


def test_cli_trains_a_choice_run(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("DGEX_DATA_DIR", str(tmp_path / "data"))
    cfg = tmp_path / "c.json"
    cfg.write_text('{"choice": {"mlp": {"hidden": [16], "max_epochs": 2}}}')
    rc = main(["train", "--data", "demo:300x40", "--model", "choice", "--config", str(cfg), "--name", "c",
               "--runs-dir", str(tmp_path / "runs")])
    assert rc == 0, capsys.readouterr().err
    run = load_run(tmp_path / "runs" / "c")
    assert run.family == "choice" and run.per_gene["uses"].isin(
        ["linear", "mlp", "linear 0.75 + mlp 0.25", "linear 0.5 + mlp 0.5", "linear 0.25 + mlp 0.75"]).all()
    # and `dgex predict` applies it to a landmark-only file, like any run
    from dgex_core.demo import DemoConfig, load_demo
    from dgex_core.io import read, write

    ds = load_demo(DemoConfig(n_samples=300, n_targets=40)).dataset()
    plate = ExpressionMatrix(np.asarray(ds.landmarks[:20], np.float32), ds.sample_ids[:20], ds.landmark_ids)
    write(plate, tmp_path / "plate.gct")
    assert main(["predict", "c", str(tmp_path / "plate.gct"), "-o", str(tmp_path / "out.gctx"),
                 "--runs-dir", str(tmp_path / "runs"), "--no-clip"]) == 0
    out = read(tmp_path / "out.gctx")
    got = out.values[:, out.gene_ids.get_indexer(run.model.target_ids_)]
    np.testing.assert_allclose(got, run.model.predict(np.asarray(ds.landmarks[:20])), rtol=1e-5, atol=1e-5)
