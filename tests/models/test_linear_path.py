"""The network's linear path and adaptive activations: a zero residual is exactly ridge,
the gates are chosen on validation, old runs still load, attributions add up."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from dgex_core import attribution
from dgex_core.dataset import Dataset
from dgex_core.errors import ModelError
from dgex_core.matrix import ExpressionMatrix
from dgex_core.models.layers import AdaptiveActivation, ResidualNet, build_network
from dgex_core.models.linear import LinearModel
from dgex_core.models.mlp import GATE_GRID, MLPModel
from dgex_core.models.persist import load_model

from ..helpers import mixed_data

NET = dict(hidden=(32,), max_epochs=25, batch_size=64, lr=3e-3, dropout=0.0, device="cpu", adaptive=False,
           input_dropout=0.0)


def test_zero_residual_predicts_exactly_the_ridge_solution():
    sp = mixed_data().split(seed=0)
    net = MLPModel(**{**NET, "max_epochs": 2}).fit(sp.train, sp.val)
    ridge = LinearModel(alphas="auto").fit(sp.train, sp.val)
    assert net.linear_alpha_ == ridge.alpha_
    for n in net.networks_:  # a zero residual: gates at 0
        n.gate.zero_()
    np.testing.assert_allclose(net.predict(sp.test.landmarks), ridge.predict(sp.test.landmarks), rtol=1e-4,
                               atol=1e-4)
    # and an untrained body adds exactly nothing: its output layer starts at zero
    body = build_network(10, 8, [16], "relu", 0.0, zero_output=True)
    assert torch.count_nonzero(body(torch.randn(5, 10))) == 0


def test_gates_keep_ridge_on_linear_targets_and_use_the_network_on_nonlinear_ones():
    sp = mixed_data(n=1500).split(seed=1)
    net = MLPModel(**NET).fit(sp.train, sp.val)
    gates = net.networks_[0].gate.numpy()
    assert np.abs(gates[:, None] - np.asarray(GATE_GRID)[None]).min(axis=1).max() < 1e-6  # values of the grid
    assert gates[4:].min() >= 0.75  # the non-linear half takes the residual
    ridge = LinearModel(alphas="auto").fit(sp.train, sp.val)
    err = np.abs(net.predict(sp.test.landmarks) - sp.test.targets).mean(axis=0)
    lin = np.abs(ridge.predict(sp.test.landmarks) - sp.test.targets).mean(axis=0)
    assert (err[4:] < 0.7 * lin[4:]).all()
    assert (err[:4] <= lin[:4] * 1.01).all()  # linear targets: no worse than ridge by 1%


def test_gates_are_chosen_on_validation_only():
    ds = mixed_data(n=700)
    sp = ds.split(seed=2)
    a = MLPModel(**{**NET, "max_epochs": 4}).fit(sp.train, sp.val)
    # the same train and validation samples, test samples changed: the same fitted model
    values = ds.to_matrix().values.copy()
    test_rows = ds.sample_ids.get_indexer(sp.test.sample_ids)
    values[test_rows] += np.random.default_rng(0).normal(0, 5, size=(len(test_rows), values.shape[1]))
    other = Dataset.from_matrix(ExpressionMatrix(values, ds.sample_ids, ds.landmark_ids.append(ds.target_ids)),
                                list(ds.landmark_ids))
    sp2 = other.split(seed=2)
    b = MLPModel(**{**NET, "max_epochs": 4}).fit(sp2.train, sp2.val)
    np.testing.assert_array_equal(a.networks_[0].gate.numpy(), b.networks_[0].gate.numpy())
    np.testing.assert_array_equal(a.predict(sp.val.landmarks), b.predict(sp.val.landmarks))


@pytest.mark.parametrize("path,adaptive", [("frozen", True), ("finetune", False), ("off", True)])
def test_save_load_round_trip(tmp_path, path, adaptive):
    sp = mixed_data(n=400).split(seed=3)
    net = MLPModel(**{**NET, "max_epochs": 2, "adaptive": adaptive}, linear_path=path).fit(sp.train, sp.val)
    back = load_model(net.save(tmp_path / "m"))
    assert (back.linear_path, back.adaptive) == (path, adaptive)
    np.testing.assert_array_equal(back.predict(sp.test.landmarks), net.predict(sp.test.landmarks))
    kinds = {type(m) for m in back.networks_[0].modules()}
    assert (ResidualNet in kinds) == (path != "off") and (AdaptiveActivation in kinds) == adaptive


def test_finetune_trains_the_ridge_weights_frozen_does_not():
    sp = mixed_data(n=400).split(seed=4)
    ridge = LinearModel(alphas="auto").fit(sp.train, sp.val)
    frozen = MLPModel(**{**NET, "max_epochs": 3}).fit(sp.train, sp.val)
    tuned = MLPModel(**{**NET, "max_epochs": 3}, linear_path="finetune").fit(sp.train, sp.val)
    w = ridge.coef_.T.astype(np.float32)
    np.testing.assert_allclose(frozen.networks_[0].linear.weight.detach().numpy(), w, rtol=1e-5, atol=1e-6)
    assert np.abs(tuned.networks_[0].linear.weight.detach().numpy() - w).max() > 1e-3


def test_a_run_from_before_the_linear_path_loads_as_the_plain_network(tmp_path):
    sp = mixed_data(n=400).split(seed=5)
    old = MLPModel(**{**NET, "max_epochs": 2}, linear_path="off").fit(sp.train, sp.val)
    folder = old.save(tmp_path / "old")
    meta = json.loads((folder / "model.json").read_text())
    for k in ("linear_path", "adaptive", "input_dropout"):  # settings an older dgex did not write
        del meta["params"][k]
    (folder / "model.json").write_text(json.dumps(meta))
    back = load_model(folder)
    assert back.linear_path == "off" and not back.adaptive and back.input_dropout == 0
    np.testing.assert_array_equal(back.predict(sp.test.landmarks), old.predict(sp.test.landmarks))


@pytest.mark.parametrize("method,statistic", [("gradient", "mean"), ("integrated_gradients", "mean"),
                                              ("integrated_gradients", "mean_abs")])
def test_attributions_of_the_linear_path_equal_autograd_on_the_whole_network(method, statistic):
    sp = mixed_data(n=500).split(seed=6)
    m = MLPModel(**{**NET, "max_epochs": 3, "adaptive": True}).fit(sp.train, sp.val)
    for n in m.networks_:
        n.gate.copy_(torch.linspace(0, 1, n.gate.numel()))  # every gate value, including 0 and 1
    A = attribution.attributions(m, sp.val.landmarks, method, statistic=statistic, steps=8).to_numpy()
    Xz = m.standardize_landmarks(np.asarray(sp.val.landmarks))
    net = m.networks_[0]
    B = (attribution.network_gradient(net, Xz, method="autograd") if method == "gradient" else
         attribution.network_integrated_gradients(net, Xz, steps=8, statistic=statistic, method="autograd"))
    np.testing.assert_allclose(A, B, rtol=1e-4, atol=1e-5)
    assert attribution.closed_form_applies(m)


def test_bad_linear_path_is_refused():
    with pytest.raises(ModelError, match="linear_path"):
        MLPModel(linear_path="sometimes").check_params()
