"""Interpreting the D-GEX network on the demo: cost of the attributions, agreement with the
linear weights, precision at k against the true drivers, context dependence by target kind.

    .venv/bin/python bench/bench_explain.py                 # trains both models (~1.5 min on 2 cores)
    .venv/bin/python bench/bench_explain.py --cache /tmp/x  # keep / reuse the trained models there

Writes ``bench/results/attribution.json`` and prints small tables.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import write_results

from dgex_core import attribution
from dgex_core.demo import load_demo
from dgex_core.models.linear import LinearModel
from dgex_core.models.mlp import MLPModel
from dgex_core.models.persist import load_model

KS = (10, 20, 50)


def _models(split, cache: Path | None):
    if cache is not None and (cache / "mlp" / "model.json").exists():
        return load_model(cache / "linear"), load_model(cache / "mlp"), {"loaded_from": str(cache)}
    info = {}
    t0 = time.perf_counter()
    lin = LinearModel(alphas="auto").fit(split.train, split.val)
    info["linear_fit_s"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    mlp = MLPModel(device="cpu").fit(split.train, split.val)
    info["mlp_fit_s"] = time.perf_counter() - t0
    if cache is not None:
        lin.save(cache / "linear")
        mlp.save(cache / "mlp")
    return lin, mlp, info


def _timed(fn):
    t0 = time.perf_counter()
    out = fn()
    return out, time.perf_counter() - t0


def _naive_loop_seconds(mlp, Xz: np.ndarray, n_targets: int) -> float:
    """One backward pass per target (forward once, graph kept), on ``n_targets`` targets."""
    net = mlp.networks_[0].eval()
    x = torch.from_numpy(np.ascontiguousarray(Xz, dtype=np.float32)).requires_grad_(True)
    t0 = time.perf_counter()
    y = net(x)
    out = np.empty((Xz.shape[1], n_targets))
    for j in range(n_targets):
        (g,) = torch.autograd.grad(y[:, j].sum(), x, retain_graph=True)
        out[:, j] = g.mean(dim=0).numpy()
    return time.perf_counter() - t0


def _precision_table(attrs: dict[str, pd.DataFrame], truth: pd.DataFrame, kinds: dict[str, pd.Index]) -> dict:
    rows = {}
    for name, A in attrs.items():
        cols = A.columns
        for k in KS:
            p = attribution.precision_at_k(A, truth[cols], k)
            rows[f"{name} @{k}"] = {kind: float(p.reindex(ids.intersection(cols)).mean()) for kind, ids in kinds.items()}
    base = attribution.random_precision(truth)
    rows["random (any k)"] = {kind: float(base.reindex(ids).mean()) for kind, ids in kinds.items()}
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--cache", type=Path, default=None, help="folder to save / reuse the trained models")
    ap.add_argument("--n-explain", type=int, default=1000, help="test samples to explain")
    ap.add_argument("--n-abs", type=int, default=1000, help="samples for mean |IG| (costs ~0.1 s a sample)")
    args = ap.parse_args()

    data = load_demo()
    split = data.dataset().split(0.1, 0.1, seed=0)
    lin, mlp, fit_info = _models(split, args.cache)
    X = split.test.landmarks[: args.n_explain]
    test_tissue = data.matrix.sample_meta["tissue"].reindex(split.test.sample_ids[: args.n_explain]).to_numpy()
    Xz = mlp.standardize_landmarks(X)
    n_targets = len(mlp.target_ids_)
    res: dict = {"demo": data.config.to_dict(), "n_explained_samples": int(X.shape[0]),
                 "mlp": mlp.get_params(), "linear_alpha": lin.alpha_, **fit_info, "torch_threads": torch.get_num_threads()}

    # ------------------------------------------------------------------ cost
    cost = {}
    grad, cost["gradient_closed_form_s"] = _timed(lambda: attribution.attributions(mlp, X, "gradient"))
    ig, cost["ig_mean_closed_form_s"] = _timed(lambda: attribution.attributions(mlp, X, "integrated_gradients"))
    n_abs = min(args.n_abs, X.shape[0])
    ig_abs, cost["ig_mean_abs_closed_form_s"] = _timed(
        lambda: attribution.attributions(mlp, X[:n_abs], "integrated_gradients", statistic="mean_abs"))
    cost["ig_mean_abs_samples"] = n_abs
    sub = list(mlp.target_ids_[:200])
    g_sub, t = _timed(lambda: attribution.attributions(mlp, X, "gradient", targets=sub, engine="autograd"))
    cost["gradient_autograd_200_targets_s"] = t
    cost["gradient_autograd_all_targets_extrapolated_s"] = t * n_targets / len(sub)
    cost["max_abs_diff_closed_form_vs_autograd"] = float(np.abs(g_sub.to_numpy() - grad[sub].to_numpy()).max())
    ig_sub, t = _timed(lambda: attribution.attributions(mlp, X[:100], "integrated_gradients", targets=sub[:50],
                                                   engine="autograd"))
    cost["ig_autograd_100_samples_50_targets_s"] = t
    cost["ig_autograd_all_extrapolated_s"] = t * (X.shape[0] / 100) * (n_targets / 50)
    ref = attribution.attributions(mlp, X[:100], "integrated_gradients", targets=sub[:50])
    cost["max_abs_diff_ig_closed_form_vs_autograd"] = float(np.abs(ig_sub.to_numpy() - ref.to_numpy()).max())
    n_naive = 40
    t = _naive_loop_seconds(mlp, Xz, n_naive)
    cost["naive_loop_targets_timed"] = n_naive
    cost["naive_loop_s_per_target"] = t / n_naive
    cost["naive_loop_all_targets_extrapolated_s"] = t / n_naive * n_targets
    cost["speedup_closed_form_gradient_vs_naive"] = cost["naive_loop_all_targets_extrapolated_s"] / cost["gradient_closed_form_s"]
    res["cost"] = cost

    # ------------------------------------------------------------ agreement
    coef = pd.DataFrame(lin.coef_, index=lin.landmark_ids_, columns=lin.target_ids_)
    meta = data.target_meta
    nonlin = meta["nonlinear"].to_numpy(bool)
    kinds = {"all": data.target_ids, "linear": data.target_ids[~nonlin], "nonlinear": data.target_ids[nonlin]}
    agree = {}
    for name, A in {"gradient": grad, "ig_mean": ig, "ig_mean_abs": ig_abs}.items():
        ref_coef = coef.abs() if name == "ig_mean_abs" else coef
        tab = attribution.agreement(A, ref_coef, k=20)
        agree[name] = {kind: attribution.summarize(tab.loc[ids]).to_dict() for kind, ids in kinds.items()}
    res["agreement_with_linear_k20"] = agree
    res["agreement_note"] = ("spearman of signed values over landmarks; top_k_overlap = |top20(a) & top20(b)| / 20 "
                             "by |value|; ig_mean_abs is compared with |coef_|")

    # ------------------------------------------------------------- truth
    truth = pd.DataFrame(data.driver_matrix, index=data.landmark_ids, columns=data.target_ids)
    prec = _precision_table({"network gradient": grad, "network IG mean": ig, "network IG mean|.|": ig_abs,
                             "linear |coef|": coef}, truth, kinds)
    res["precision_at_k"] = prec
    res["drivers_per_target"] = attribution.summarize(truth.sum(axis=0).astype(float)).to_dict()

    # --------------------------------------------------------- context
    groups, t = _timed(lambda: attribution.group_attributions(mlp, X, test_tissue, "gradient", min_size=20))
    ctx = attribution.context_dependence(groups)
    lin_groups = attribution.group_attributions(lin, X, test_tissue, "gradient", min_size=20)
    ctx_lin = attribution.context_dependence(lin_groups)
    by_kind = {kind: attribution.summarize(ctx.loc[ids]).to_dict() for kind, ids in kinds.items()}
    for k in sorted(meta["kind"].unique()):
        by_kind[f"kind={k}"] = attribution.summarize(ctx.loc[meta.index[meta["kind"] == k]]).to_dict()
    res["context_dependence"] = {"groups": "tissue", "n_groups": len(groups), "seconds": t,
                                 "network_gradient": by_kind,
                                 "linear_model_max": float(np.nanmax(ctx_lin.to_numpy()))}

    res["notes"] = [
        "all attributions in standardized units; network = MLPModel defaults (978 -> 1000 ReLU -> 4000)",
        "gradient: mean over the explained samples of d yhat_j / d x_i (closed form W2 diag(mean relu') W1)",
        "IG: integrated gradients against the training mean (0 in standardized units), 32 midpoint steps; "
        "'IG mean' is the signed mean over samples, which cancels for landmarks centred on the baseline "
        "(for a linear map it is coef * mean(x) ~ 0), so it mostly ranks non-linear effects; "
        "'IG mean|.|' (mean absolute IG) is the importance to rank drivers with",
        "precision_at_k: share of the k landmarks with the largest |attribution| that are true drivers "
        "(DemoData.driver_matrix); random baseline = share of drivers among the 978 landmarks",
        "naive loop: forward once, then one autograd backward pass per target (graph retained), "
        "timed on 40 targets and extrapolated to all",
        "context dependence: size-weighted RMS distance of per-tissue mean-gradient vectors from the "
        "overall one, over its norm (0 for any linear model); tissues with >= 20 explained samples",
    ]
    path = write_results("explain", res)

    print(f"{X.shape[0]} test samples x {X.shape[1]} landmarks -> {n_targets} targets")
    print(pd.Series({k: v for k, v in cost.items()}).to_string(float_format=lambda v: f"{v:.4g}"))
    print("\nprecision at k (mean over targets)")
    print(pd.DataFrame(prec).T.to_string(float_format=lambda v: f"{v:.3f}"))
    print("\nagreement with linear coef_ (median spearman / median top-20 overlap)")
    print(pd.DataFrame({n: {kind: f"{d[kind]['median']['spearman']:.3f} / {d[kind]['median']['top_k_overlap']:.3f}"
                            for kind in d} for n, d in agree.items()}).to_string())
    print("\ncontext dependence across tissues (median)")
    print(pd.Series({k: v["median"] for k, v in by_kind.items()}).to_string(float_format=lambda v: f"{v:.3f}"))
    print(f"\nwrote {path}")


if __name__ == "__main__":
    main()
