"""Attributions of the network and the linear model, and the scores built on them."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch
from torch import nn

from dgex_core import attribution
from dgex_core.dataset import Dataset
from dgex_core.errors import ModelError
from dgex_core.models.linear import LinearModel
from dgex_core.models.mlp import MLPModel
from dgex_core.preprocess import Pipeline, Standardizer


def _identity_scaler(n: int) -> Standardizer:
    return Standardizer.from_state({"n_constant": 0}, {"mean": np.zeros(n), "scale": np.ones(n)})


def _hand_model(nets: list[nn.Sequential], groups: list[list[int]], n_in: int) -> MLPModel:
    """A 'fitted' MLPModel around given networks, with identity standardization (x_z = x)."""
    n_out = sum(len(g) for g in groups)
    model = MLPModel(hidden=(4,), device="cpu")
    model.landmark_ids_ = pd.Index([f"L{i}" for i in range(n_in)], dtype=object)
    model.target_ids_ = pd.Index([f"T{j}" for j in range(n_out)], dtype=object)
    model.input_pipeline_ = Pipeline([_identity_scaler(n_in)])
    model.input_pipeline_.fitted_ = True
    model.target_scaler_ = _identity_scaler(n_out)
    model.networks_ = [n.eval() for n in nets]
    model.target_groups_ = groups
    model.n_train_ = 0
    return model


def _net(n_in=9, hidden=(6,), n_out=5, act=nn.Tanh, seed=0, dtype=torch.float64) -> nn.Sequential:
    torch.manual_seed(seed)
    layers: list[nn.Module] = []
    width = n_in
    for h in hidden:
        layers += [nn.Linear(width, h), act(), nn.Dropout(0.5)]
        width = h
    layers.append(nn.Linear(width, n_out))
    return nn.Sequential(*layers).to(dtype).eval()


def _X(n=40, p=9, seed=1) -> np.ndarray:
    return np.random.default_rng(seed).normal(size=(n, p))


# ------------------------------------------------------------------ the network
@pytest.mark.parametrize("engine", ["closed_form", "autograd"])
@pytest.mark.parametrize("method", ["gradient", "integrated_gradients"])
def test_linear_network_attribution_is_its_effective_weight(engine, method):
    net = _net(act=nn.Identity, dtype=torch.float32)
    model = _hand_model([net], [list(range(5))], 9)
    X = _X()
    A = attribution.attributions(model, X, method, engine=engine)
    W = (net[3].weight @ net[0].weight).double().detach().numpy().T  # landmarks x targets
    assert A.shape == (9, 5)
    assert list(A.index) == list(model.landmark_ids_) and list(A.columns) == list(model.target_ids_)
    expected = W if method == "gradient" else X.mean(axis=0)[:, None] * W
    np.testing.assert_allclose(A.to_numpy(), expected, atol=1e-5)


def test_two_linear_layers_without_activation_give_their_product():
    torch.manual_seed(0)
    net = nn.Sequential(nn.Linear(9, 4), nn.Linear(4, 3)).double()
    W = (net[1].weight @ net[0].weight).detach().numpy().T
    for engine in ("closed_form", "autograd"):
        np.testing.assert_allclose(attribution.network_gradient(net, _X(), method=engine), W, atol=1e-12)


@pytest.mark.parametrize("act", [nn.Tanh, nn.Sigmoid, nn.GELU])
def test_integrated_gradients_are_complete(act):
    net = _net(act=act)
    X = _X(n=15)
    ig = attribution.network_integrated_gradients(net, X, steps=256, statistic="none")  # (n, p, out)
    with torch.no_grad():
        diff = (net(torch.from_numpy(X)) - net(torch.zeros(1, 9, dtype=torch.float64))).numpy()
    assert ig.shape == (15, 9, 5)
    np.testing.assert_allclose(ig.sum(axis=1), diff, rtol=1e-3, atol=1e-3 * np.abs(diff).max())


def test_integrated_gradients_are_complete_through_the_generic_path():
    net = _net(hidden=(6, 4), act=nn.Tanh)
    X = _X(n=6)
    ig = attribution.network_integrated_gradients(net, X, steps=128, statistic="none", method="autograd")
    with torch.no_grad():
        diff = (net(torch.from_numpy(X)) - net(torch.zeros(1, 9, dtype=torch.float64))).numpy()
    np.testing.assert_allclose(ig.sum(axis=1), diff, rtol=1e-3, atol=1e-3 * np.abs(diff).max())


@pytest.mark.parametrize("act", [nn.Tanh, nn.ReLU])
@pytest.mark.parametrize("hidden", [(6,), (6, 7)])
def test_closed_form_gradient_equals_torch_func(act, hidden):
    net = _net(hidden=hidden, act=act)
    X = _X(n=37)
    fast = attribution.network_gradient(net, X, method="closed_form", batch_size=10)
    generic = attribution.network_gradient(net, X, method="autograd", batch_size=8)
    # reference: the per-sample Jacobians of torch.func.jacrev, averaged
    jac = torch.func.vmap(torch.func.jacrev(net))(torch.from_numpy(X))  # (n, out, p)
    np.testing.assert_allclose(generic, jac.mean(dim=0).detach().numpy().T, atol=1e-12)
    np.testing.assert_allclose(fast, generic, atol=1e-12)
    sub = attribution.network_gradient(net, X, outputs=[4, 1], method="closed_form")
    np.testing.assert_allclose(sub, generic[:, [4, 1]], atol=1e-12)


@pytest.mark.parametrize("statistic", ["mean", "mean_abs", "none"])
def test_closed_form_integrated_gradients_equal_torch_func(statistic):
    net = _net(act=nn.ReLU)
    X = _X(n=21)
    kw = {"steps": 16, "statistic": statistic, "batch_size": 8}
    fast = attribution.network_integrated_gradients(net, X, method="closed_form", **kw)
    generic = attribution.network_integrated_gradients(net, X, method="autograd", **kw)
    np.testing.assert_allclose(fast, generic, atol=1e-12)
    if statistic == "none":  # the summaries are the mean and mean |.| of these
        per = fast
        for st, red in (("mean", per.mean(axis=0)), ("mean_abs", np.abs(per).mean(axis=0))):
            got = attribution.network_integrated_gradients(net, X, method="closed_form", steps=16, statistic=st)
            np.testing.assert_allclose(got, red, atol=1e-12)


def test_closed_form_is_refused_where_it_does_not_apply():
    net = _net(hidden=(6, 5), act=nn.Tanh)
    with pytest.raises(ModelError, match="closed form"):
        attribution.network_integrated_gradients(net, _X(), method="closed_form")
    with pytest.raises(ModelError, match="closed form"):
        attribution.network_gradient(nn.Sequential(nn.Linear(9, 3), nn.Softmax(dim=1)), _X(), method="closed_form")
    # but the generic path works on it, and on any module
    out = attribution.network_gradient(nn.Sequential(nn.Linear(9, 3), nn.Softmax(dim=1)).double(), _X())
    assert out.shape == (9, 3)

    class Wrapped(nn.Module):
        def __init__(self, inner):
            super().__init__()
            self.inner = inner

        def forward(self, x):
            return self.inner(x)

    net = _net(act=nn.Tanh)
    np.testing.assert_allclose(attribution.network_gradient(Wrapped(net), _X()), attribution.network_gradient(net, _X()),
                               atol=1e-12)
    with pytest.raises(ModelError, match="Xz must be"):
        attribution.network_gradient(net, _X()[:0])
    with pytest.raises(ModelError, match="output positions"):
        attribution.network_gradient(net, _X(), outputs=[5])


@pytest.mark.parametrize("method", ["gradient", "integrated_gradients"])
def test_target_groups_give_the_same_as_one_network(method):
    full = _net(n_out=5, act=nn.Tanh, dtype=torch.float32)
    groups = [[0, 3, 4], [1, 2]]
    parts = []
    for cols in groups:
        part = _net(n_out=len(cols), act=nn.Tanh, dtype=torch.float32)
        part.load_state_dict({**full.state_dict(), "3.weight": full[3].weight[cols], "3.bias": full[3].bias[cols]})
        parts.append(part)
    X = _X()
    one = attribution.attributions(_hand_model([full], [list(range(5))], 9), X, method)
    two = attribution.attributions(_hand_model(parts, groups, 9), X, method)
    pd.testing.assert_frame_equal(one, two, atol=1e-6)
    picked = attribution.attributions(_hand_model(parts, groups, 9), X, method, targets=["T4", "T1"])
    assert list(picked.columns) == ["T4", "T1"]
    pd.testing.assert_frame_equal(picked, one[["T4", "T1"]], atol=1e-6)


def _tiny_dataset(n=300, p=12, t=6, seed=0) -> Dataset:
    rng = np.random.default_rng(seed)
    X = rng.normal(5, 2, size=(n, p))
    Y = 3 + X @ rng.normal(size=(p, t)) / p + np.tanh(X[:, :t] - 5) + 0.1 * rng.normal(size=(n, t))
    return Dataset(X.astype(np.float32), Y.astype(np.float32), [f"L{i}" for i in range(p)],
                   [f"T{j}" for j in range(t)], [f"S{i}" for i in range(n)])


def test_fitted_mlp_attributions_are_standardized_and_match_finite_differences():
    ds = _tiny_dataset()
    sp = ds.split(0.2, 0.1, seed=0)
    mlp = MLPModel(hidden=(16,), max_epochs=3, device="cpu", target_groups=2).fit(sp.train, sp.val)
    X = sp.test.landmarks
    A = attribution.attributions(mlp, pd.DataFrame(X[:, ::-1], columns=ds.landmark_ids[::-1]), "gradient")
    assert A.index.tolist() == ds.landmark_ids.tolist() and A.columns.tolist() == ds.target_ids.tolist()
    # finite differences of the standardized prediction in standardized landmark units
    Xz = mlp.standardize_landmarks(X).astype(np.float64)
    eps, i = 1e-2, 3
    up, down = Xz.copy(), Xz.copy()
    up[:, i] += eps
    down[:, i] -= eps
    fd = (mlp._predict_standardized(up) - mlp._predict_standardized(down)).mean(axis=0) / (2 * eps)
    np.testing.assert_allclose(A.iloc[i].to_numpy(), fd, atol=2e-3)


# ------------------------------------------------------------ the linear model
def test_linear_model_attributions_are_its_coefficients():
    ds = _tiny_dataset()
    sp = ds.split(0.2, 0.1, seed=0)
    lin = LinearModel(alphas="auto").fit(sp.train, sp.val)
    X = sp.test.landmarks
    G = attribution.attributions(lin, X, "gradient")
    np.testing.assert_array_equal(G.to_numpy(), lin.coef_)
    pd.testing.assert_frame_equal(G, lin.coefficients().drop(index="(intercept)"), check_names=False)
    Xz = lin.standardize_landmarks(X).astype(np.float64)
    IG = attribution.attributions(lin, X, "integrated_gradients")
    np.testing.assert_allclose(IG.to_numpy(), lin.coef_ * Xz.mean(axis=0)[:, None], atol=1e-12)
    IGa = attribution.attributions(lin, X, "integrated_gradients", statistic="mean_abs")
    np.testing.assert_allclose(IGa.to_numpy(), np.abs(lin.coef_) * np.abs(Xz).mean(axis=0)[:, None], atol=1e-12)


def test_attributions_reject_bad_input():
    lin = LinearModel().fit(_tiny_dataset())
    with pytest.raises(ModelError, match="samples x 12 landmarks"):
        attribution.attributions(lin, np.zeros((3, 5)))
    with pytest.raises(ModelError, match="not the model's"):
        attribution.attributions(lin, np.zeros((3, 12)), targets=["nope"])
    with pytest.raises(ModelError, match="method"):
        attribution.attributions(lin, np.zeros((3, 12)), method="shap")
    with pytest.raises(ModelError, match="not fitted"):
        attribution.attributions(LinearModel(), np.zeros((3, 12)))


# ------------------------------------------------------------------- scores
def test_precision_at_k_on_a_hand_made_case():
    attr = pd.DataFrame({"a": [0.9, -0.8, 0.1, 0.05], "b": [0.0, 0.2, -0.3, 0.1]}, index=["L1", "L2", "L3", "L4"])
    truth = pd.DataFrame({"b": [True, False, True, False], "a": [True, False, False, True]},
                         index=["L4", "L3", "L2", "L1"])  # other order: aligned by ids
    p1 = attribution.precision_at_k(attr, truth, 1)
    p2 = attribution.precision_at_k(attr, truth, 2)
    # a: top-1 L1 (driver of a), top-2 L1, L2 (L2 is not); b: top-1 L3 (not of b), top-2 L3, L2 (L2 is)
    assert p1.to_dict() == {"a": 1.0, "b": 0.0}
    assert p2.to_dict() == {"a": 0.5, "b": 0.5}
    np.testing.assert_allclose(attribution.precision_at_k(attr, truth.loc[attr.index, attr.columns].to_numpy(), 2), p2)
    assert attribution.random_precision(truth).loc[["a", "b"]].tolist() == [0.5, 0.5]
    with pytest.raises(ModelError, match="k must be"):
        attribution.precision_at_k(attr, truth, 5)


def test_agreement_of_identical_attributions_is_perfect():
    rng = np.random.default_rng(0)
    A = pd.DataFrame(rng.normal(size=(50, 4)), columns=list("abcd"))
    tab = attribution.agreement(A, A.copy(), k=10)
    assert tab["spearman"].tolist() == pytest.approx([1.0] * 4)
    assert tab["top_k_overlap"].tolist() == [1.0] * 4
    flipped = attribution.agreement(A, -A, k=10)  # same magnitudes, opposite signs
    assert flipped["spearman"].tolist() == pytest.approx([-1.0] * 4)
    assert flipped["top_k_overlap"].tolist() == [1.0] * 4
    s = attribution.summarize(tab)
    assert s.loc["spearman", "median"] == pytest.approx(1.0) and s.loc["top_k_overlap", "n"] == 4


def test_agreement_counts_shared_top_landmarks_over_k():
    A = pd.DataFrame({"t": [5.0, 4.0, 3.0, 2.0, 1.0]})
    B = pd.DataFrame({"t": [5.0, 1.0, 2.0, 4.0, 3.0]})
    tab = attribution.agreement(A, B, k=2)  # top-2: {0, 1} vs {0, 3}
    assert tab.loc["t", "top_k_overlap"] == 0.5
    assert tab.loc["t", "spearman"] == pytest.approx(0.1)  # 1 - 6 * 18 / (5 * 24)


def _gated_model() -> MLPModel:
    """Target T0 = relu(x0 + 100) (always on: linear); T1 = relu(x1 + 10 x3) (on only where x3 = +1)."""
    net = nn.Sequential(nn.Linear(4, 2), nn.ReLU(), nn.Linear(2, 2)).double()
    with torch.no_grad():
        net[0].weight.copy_(torch.tensor([[1.0, 0, 0, 0], [0, 1.0, 0, 10.0]]))
        net[0].bias.copy_(torch.tensor([100.0, 0.0]))
        net[2].weight.copy_(torch.eye(2))
        net[2].bias.zero_()
    return _hand_model([net], [[0, 1]], 4)


def test_group_attributions_see_a_unit_active_in_one_group_only():
    model = _gated_model()
    rng = np.random.default_rng(0)
    X = rng.normal(size=(60, 4))
    X[:, 3] = np.where(np.arange(60) < 20, 1.0, -1.0)
    groups = pd.Series(np.where(np.arange(60) < 20, "on", "off"))
    per = attribution.group_attributions(model, X, groups, "gradient")
    assert sorted(per) == ["off", "on"]
    assert per["on"].attrs["n_samples"] == 20 and per["off"].attrs["n_samples"] == 40
    np.testing.assert_allclose(per["on"]["T1"], [0, 1, 0, 10])
    np.testing.assert_allclose(per["off"]["T1"], [0, 0, 0, 0])
    np.testing.assert_allclose(per["on"]["T0"], per["off"]["T0"])
    score = attribution.context_dependence(per)
    assert score["T0"] == pytest.approx(0.0, abs=1e-12)
    assert score["T1"] > 0.5
    # overall = size-weighted mean of the groups: the spread is sqrt(2) times the mean's norm
    assert score["T1"] == pytest.approx(np.sqrt(2.0))
    ig = attribution.context_dependence(attribution.group_attributions(model, X, groups, "integrated_gradients"))
    assert ig["T1"] > ig["T0"]


def test_context_dependence_of_a_linear_model_is_zero():
    lin = LinearModel().fit(_tiny_dataset())
    X = _tiny_dataset(seed=1).landmarks
    per = attribution.group_attributions(lin, X, np.repeat(["a", "b", "c"], 100), "gradient", min_size=50)
    assert attribution.context_dependence(per).abs().max() == pytest.approx(0.0, abs=1e-12)
    with pytest.raises(ModelError, match="labels for"):
        attribution.group_attributions(lin, X, ["a"] * 3)


def test_context_dependence_scores_in_blocks_equal_the_whole_and_report_progress():
    model = _hand_model([_net(n_in=9, hidden=(6,), n_out=7, act=nn.Tanh)], [list(range(7))], 9)
    X = _X(n=90)
    groups = np.repeat(["a", "b", "c"], 30)
    whole = attribution.context_dependence(attribution.group_attributions(model, X, groups, "gradient", min_size=5))
    seen = []
    blocks = attribution.context_dependence_scores(model, X, groups, "gradient", min_size=5, chunk_targets=3,
                                               progress=lambda done, total: seen.append((done, total)))
    pd.testing.assert_series_equal(blocks, whole)
    assert seen == [(3, 7), (6, 7), (7, 7)]
    assert blocks.attrs["n_groups"] == 3 and blocks.attrs["group_sizes"] == {"a": 30, "b": 30, "c": 30}
    some = attribution.context_dependence_scores(model, X, groups, targets=["T5", "T1"], min_size=5, chunk_targets=1)
    pd.testing.assert_series_equal(some, whole[["T5", "T1"]])
    with pytest.raises(ModelError, match="no group has at least 31"):
        attribution.context_dependence_scores(model, X, groups, min_size=31)


def test_progress_is_reported_per_sample_batch_on_the_generic_path():
    deep = _hand_model([_net(n_in=9, hidden=(5, 4, 3), n_out=4)], [list(range(4))], 9)
    shallow = _hand_model([_net(n_in=9, hidden=(6,), n_out=4)], [list(range(4))], 9)
    assert not attribution.closed_form_applies(deep) and attribution.closed_form_applies(shallow)
    seen = []
    A = attribution.attributions(deep, _X(n=25), "gradient", batch_size=10, progress=lambda d, n: seen.append((d, n)))
    assert seen == [(10, 25), (20, 25), (25, 25)]
    pd.testing.assert_frame_equal(A, attribution.attributions(deep, _X(n=25), "gradient"))
    seen.clear()
    attribution.attributions(shallow, _X(n=25), "gradient", progress=lambda d, n: seen.append((d, n)))
    assert seen == [(25, 25)]
