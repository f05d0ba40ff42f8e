"""Models against scikit-learn: speed (same process, same data, same dtype), the roofline,
accuracy on the demo against its noise floor, and scale to the D-GEX paper's size.

    .venv/bin/python bench/bench_models.py            # everything but the paper-size run
    .venv/bin/python bench/bench_models.py --scale    # also 111,000 x 943 -> 9,520 from disk
    .venv/bin/python bench/bench_models.py --only linear,knn

Writes ``bench/results/models.json`` (and ``models_scale.json`` for ``--scale``).
"""

from __future__ import annotations

import argparse
import sys
import time
import warnings
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import best_of, matmul_rate, peak_rss_gb, run_isolated, write_results

from dgex_core.dataset import Dataset
from dgex_core.models.knn import KNNModel
from dgex_core.models.linear import LinearModel
from dgex_core.models.mlp import MLPModel


def _ids(prefix, n):
    return [f"{prefix}{i}" for i in range(n)]


def _synthetic(n, p, t, seed=0, dtype=np.float64):
    rng = np.random.default_rng(seed)
    X = rng.normal(8, 1.5, size=(n, p))
    W = rng.normal(0, 1, size=(p, t)) / np.sqrt(p)
    Y = 6 + X @ W + rng.normal(0, 0.5, size=(n, t))
    return X.astype(dtype), Y.astype(dtype)


def _ds(X, Y):
    return Dataset(X, Y, _ids("L", X.shape[1]), _ids("T", Y.shape[1]), _ids("S", X.shape[0]))


def _rel(a, b):
    return float(np.max(np.abs(a - b)) / np.max(np.abs(b)))


# ----------------------------------------------------------------------------- linear
def bench_linear(out: dict) -> None:
    from sklearn.linear_model import LinearRegression, Ridge

    n, p, t = 20_000, 978, 5_000
    X, Y = _synthetic(n, p, t)
    Xte, _ = _synthetic(2_000, p, t, seed=1)
    ds = _ds(X, Y)
    r = {"shape": [n, p, t], "dtype": "float64"}
    r["ours_s"] = best_of(lambda: LinearModel().fit(ds), 2)
    r["sklearn_linear_regression_s"] = best_of(lambda: LinearRegression().fit(X, Y), 1)
    r["sklearn_ridge_cholesky_s"] = best_of(lambda: Ridge(alpha=1.0, solver="cholesky").fit(X, Y), 2)
    r["xtx_s"] = best_of(lambda: X.T @ X, 2)
    r["xty_s"] = best_of(lambda: X.T @ Y, 2)
    ours = LinearModel().fit(ds)
    ref = LinearRegression().fit(X, Y)
    r["max_rel_diff_predictions_vs_sklearn"] = _rel(ours.predict(Xte), ref.predict(Xte))
    r["speedup_vs_linear_regression"] = r["sklearn_linear_regression_s"] / r["ours_s"]
    r["speedup_vs_ridge_cholesky"] = r["sklearn_ridge_cholesky_s"] / r["ours_s"]
    r["ratio_to_own_matmuls"] = r["ours_s"] / (r["xtx_s"] + r["xty_s"])
    flops = 2 * n * p * p + 2 * n * p * t
    r["achieved_gflops"] = flops / r["ours_s"] / 1e9
    r["machine_float64_matmul_gflops"] = matmul_rate(np.float64)
    r["roofline_fraction"] = r["achieved_gflops"] / r["machine_float64_matmul_gflops"]
    out["linear"] = r

    # ridge: 8 alphas chosen on validation, against refitting scikit-learn once per alpha
    Xv, Yv = _synthetic(2_000, p, t, seed=2)
    dv = _ds(Xv, Yv)
    g = {"n_alphas": 8}
    t0 = time.perf_counter()
    grid_model = LinearModel(alphas="auto").fit(ds, dv)
    g["ours_grid_s"] = time.perf_counter() - t0
    alphas = sorted(grid_model.alpha_scores_)
    Z, Zv = grid_model.standardize_landmarks(X), grid_model.standardize_landmarks(Xv)

    def sk_grid():
        scores = {}
        for a in alphas:
            m = (Ridge(alpha=a, solver="cholesky") if a > 0 else LinearRegression()).fit(Z, Y)
            scores[a] = float((np.abs(m.predict(Zv) - Yv) / Y.std(0)).mean())
        return scores

    t0 = time.perf_counter()
    sk_scores = sk_grid()
    g["sklearn_loop_s"] = time.perf_counter() - t0
    g["speedup"] = g["sklearn_loop_s"] / g["ours_grid_s"]
    g["same_alpha_chosen"] = bool(min(sk_scores, key=sk_scores.get) == grid_model.alpha_)
    g["alpha"] = grid_model.alpha_
    out["ridge_grid"] = g


# -------------------------------------------------------------------------------- knn
def bench_knn(out: dict) -> None:
    from sklearn.neighbors import KNeighborsRegressor

    n, p, t, nq = 10_000, 978, 2_000, 2_000
    X, Y = _synthetic(n, p, t, dtype=np.float32)
    Xq, Yq = _synthetic(nq, p, t, seed=3, dtype=np.float32)
    ds, dq = _ds(X, Y), _ds(Xq, Yq)
    r = {"shape": [n, p, t], "queries": nq, "dtype": "float32"}
    m = KNNModel(k=10).fit(ds)
    Z, Zq = m.standardize_landmarks(X), m.standardize_landmarks(Xq)
    r["ours_k10_s"] = best_of(lambda: KNNModel(k=10).fit(ds).predict(Xq), 2)
    r["sklearn_brute_k10_s"] = best_of(
        lambda: KNeighborsRegressor(10, algorithm="brute").fit(Z, Y).predict(Zq), 2)
    ref = KNeighborsRegressor(10, algorithm="brute").fit(Z, Y).predict(Zq)
    r["max_rel_diff_predictions_vs_sklearn"] = _rel(m.predict(Xq), ref)
    r["speedup_single_k"] = r["sklearn_brute_k10_s"] / r["ours_k10_s"]
    grid = [1, 3, 5, 10, 20, 40]
    t0 = time.perf_counter()
    gm = KNNModel(k_grid=grid).fit(ds, dq)
    r["ours_grid6_s"] = time.perf_counter() - t0
    Yqz = gm.target_scaler_.transform(Yq)

    def sk_loop():
        s = {}
        for k in grid:
            pred = KNeighborsRegressor(k, algorithm="brute").fit(Z, Y).predict(Zq)
            s[k] = float(np.abs(gm.target_scaler_.transform(pred) - Yqz).mean())
        return s

    t0 = time.perf_counter()
    sk = sk_loop()
    r["sklearn_grid6_loop_s"] = time.perf_counter() - t0
    r["speedup_grid"] = r["sklearn_grid6_loop_s"] / r["ours_grid6_s"]
    r["same_k_chosen"] = bool(min(sk, key=sk.get) == gm.k_)
    out["knn"] = r


# -------------------------------------------------------------------------------- mlp
def bench_mlp_epoch(out: dict) -> None:
    import torch
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.neural_network import MLPRegressor

    n, p, h, t, bs = 8_000, 978, 1_000, 4_000, 200
    X, Y = _synthetic(n, p, t, dtype=np.float32)
    Xv, Yv = _synthetic(500, p, t, seed=4, dtype=np.float32)
    ds, dv = _ds(X, Y), _ds(Xv, Yv)
    r = {"shape": [n, p, h, t], "batch_size": bs, "dtype": "float32", "torch_threads": torch.get_num_threads()}
    m = MLPModel(hidden=(h,), max_epochs=3, batch_size=bs, dropout=0.0, device="cpu").fit(ds, dv)
    r["ours_epoch_s"] = min(e["seconds"] for e in m.history_)
    Z = m.standardize_landmarks(X)
    Yz = m.target_scaler_.transform(Y).astype(np.float32)
    sk = MLPRegressor(hidden_layer_sizes=(h,), activation="relu", solver="adam", batch_size=bs, max_iter=1,
                      alpha=0.0, shuffle=True, random_state=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        r["sklearn_mlp_epoch_s"] = best_of(lambda: sk.fit(Z, Yz), 2)
    r["sklearn_dtype_kept"] = str(sk.coefs_[0].dtype)
    r["speedup"] = r["sklearn_mlp_epoch_s"] / r["ours_epoch_s"]
    flops = 3 * 2 * n * (p * h + h * t)  # forward + backward (2x forward)
    r["achieved_gflops"] = flops / r["ours_epoch_s"] / 1e9
    r["machine_float32_matmul_gflops"] = matmul_rate(np.float32, lib="torch")
    r["roofline_fraction"] = r["achieved_gflops"] / r["machine_float32_matmul_gflops"]
    out["mlp_epoch"] = r


# ------------------------------------------------------------------------- demo accuracy
def _demo():
    from dgex_core.demo import DemoConfig, load_demo

    data = load_demo(DemoConfig())
    return data, Dataset.from_matrix(data.matrix, list(data.landmark_ids))


def bench_demo_accuracy(out: dict) -> None:
    from dgex_core.evaluation import compare, evaluate_model

    _data, ds = _demo()
    sp = ds.split(seed=0)
    res = {"n_samples": ds.n_samples, "n_landmarks": ds.n_landmarks, "n_targets": ds.n_targets}
    models = {"linear": LinearModel(alphas="auto"), "knn": KNNModel(k_grid="auto"), "mlp": MLPModel()}
    per_gene = {}
    for name, model in models.items():
        t0 = time.perf_counter()
        model.fit(sp.train, sp.val)
        secs = time.perf_counter() - t0
        ev = evaluate_model(model, sp.test)
        per_gene[name] = ev.per_gene
        s = ev.summary
        res[name] = {"fit_s": secs, "mean_mae_z": s["mean_mae"], "sd_mae_z": s["sd_mae"], "floor": s["mean_floor"],
                     "ratio_to_floor": s["ratio_to_floor"], "mean_pearson": s["mean_pearson"],
                     "groups": {g: {"mean_mae_z": v["mean_mae"], "floor": v["mean_floor"],
                                    "ratio_to_floor": v["ratio_to_floor"]} for g, v in s["groups"].items()}}
        if name == "mlp":
            res[name]["epochs"] = len(model.history_)
            res[name]["best_epoch"] = model.best_epochs_[0]
            res[name]["settings"] = model.get_params()
        print(name, res[name]["mean_mae_z"], res[name]["ratio_to_floor"], flush=True)
    nl = ds.target_meta["nonlinear"].astype(bool)
    nl_ids = ds.target_ids[nl.to_numpy()]
    res["mlp_vs_linear"] = compare(per_gene["linear"], per_gene["mlp"])
    res["mlp_vs_linear_nonlinear_targets"] = compare(per_gene["linear"].loc[nl_ids], per_gene["mlp"].loc[nl_ids])
    res["knn_vs_linear"] = compare(per_gene["linear"], per_gene["knn"])
    out["demo_accuracy"] = res


def bench_accuracy_for_time(out: dict) -> None:
    from sklearn.neural_network import MLPRegressor

    from dgex_core.evaluation import evaluate_model

    _data, ds = _demo()
    sp = ds.split(seed=0)
    ours = MLPModel()
    h = ours.hidden
    probe = LinearModel().fit(sp.train)  # only for its standardizers (fitted on train)
    Z, Yz = probe.standardize_landmarks(sp.train.landmarks), probe.target_scaler_.transform(sp.train.targets)
    Zv = np.vstack([Z, probe.standardize_landmarks(sp.val.landmarks)])
    Yzv = np.vstack([Yz, probe.target_scaler_.transform(sp.val.targets)]).astype(np.float32)
    frac = sp.val.n_samples / (sp.train.n_samples + sp.val.n_samples)
    sk = MLPRegressor(hidden_layer_sizes=tuple(h), activation=ours.activation, solver="adam", batch_size=ours.batch_size,
                      early_stopping=True, validation_fraction=frac, n_iter_no_change=ours.patience,
                      max_iter=ours.max_epochs, random_state=0, alpha=0.0)
    t0 = time.perf_counter()
    sk.fit(Zv.astype(np.float32), Yzv)
    t_sk = time.perf_counter() - t0
    pred = probe.target_scaler_.inverse_transform(sk.predict(probe.standardize_landmarks(sp.test.landmarks)))
    sk_mae = float((np.abs(pred - sp.test.targets) / probe.target_scaler_.scale_).mean())
    ours = MLPModel(max_seconds=t_sk).fit(sp.train, sp.val)
    ev = evaluate_model(ours, sp.test)
    out["accuracy_for_time"] = {
        "sklearn_seconds": t_sk, "sklearn_epochs": sk.n_iter_, "sklearn_test_mae_z": sk_mae,
        "ours_epochs_in_same_time": len(ours.history_), "ours_test_mae_z": ev.summary["mean_mae"],
        "relative_improvement": (sk_mae - ev.summary["mean_mae"]) / sk_mae,
        "floor": ev.summary["mean_floor"],
    }


# ------------------------------------------------------------------------------ scale
SCALE_CODE = r'''
import json, sys, time, numpy as np
sys.path.insert(0, "bench"); sys.path.insert(0, ".")
from pathlib import Path
from _common import peak_rss_gb
from dgex_core.models.sources import ArraySource
from dgex_core.models.{family} import {cls}
d = Path("bench/tmp")
X = np.load(d / "x.npy", mmap_mode="r"); Y = np.load(d / "y.npy", mmap_mode="r")
Xv = np.load(d / "xv.npy"); Yv = np.load(d / "yv.npy")
src = ArraySource(X, Y, block_size=8192)
t0 = time.perf_counter()
m = {cls}({kw}).fit_source(src, [f"L{{i}}" for i in range(X.shape[1])], [f"T{{j}}" for j in range(Y.shape[1])], (Xv, Yv))
out = {{"seconds": time.perf_counter() - t0, "peak_rss_gb": peak_rss_gb()}}
if hasattr(m, "history_"): out["epoch_seconds"] = m.history_[0]["seconds"]
print(json.dumps(out))
'''


def bench_scale(out: dict) -> None:
    """The paper's size (111,000 x 943 -> 9,520), float32 on disk, streamed."""
    n, p, t = 111_000, 943, 9_520
    d = Path(__file__).resolve().parent / "tmp"
    d.mkdir(exist_ok=True)
    rng = np.random.default_rng(0)
    W = (rng.normal(0, 1, size=(p, t)) / np.sqrt(p)).astype(np.float32)
    t0 = time.perf_counter()
    X = np.lib.format.open_memmap(d / "x.npy", "w+", np.float32, (n, p))
    Y = np.lib.format.open_memmap(d / "y.npy", "w+", np.float32, (n, t))
    for s in range(0, n, 8192):
        xb = rng.normal(8, 1.5, size=(min(8192, n - s), p)).astype(np.float32)
        X[s:s + len(xb)] = xb
        Y[s:s + len(xb)] = 6 + xb @ W + rng.normal(0, 0.5, size=(len(xb), t)).astype(np.float32)
    X.flush(), Y.flush()
    del X, Y
    xv = rng.normal(8, 1.5, size=(2000, p)).astype(np.float32)
    np.save(d / "xv.npy", xv)
    np.save(d / "yv.npy", 6 + xv @ W + rng.normal(0, 0.5, size=(2000, t)).astype(np.float32))
    res = {"shape": [n, p, t], "on_disk_gb": n * (p + t) * 4 / 2**30, "generate_s": time.perf_counter() - t0}
    res["linear"] = run_isolated(SCALE_CODE.format(family="linear", cls="LinearModel", kw=""))
    res["mlp_one_epoch"] = run_isolated(SCALE_CODE.format(
        family="mlp", cls="MLPModel", kw="max_epochs=1, device='cpu'"))
    for f in d.iterdir():
        f.unlink()
    d.rmdir()
    out["scale"] = res


SECTIONS = {"linear": bench_linear, "knn": bench_knn, "mlp": bench_mlp_epoch, "demo": bench_demo_accuracy,
            "time": bench_accuracy_for_time}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--only", help="comma-separated sections: " + ",".join(SECTIONS))
    ap.add_argument("--scale", action="store_true", help="also the paper-size streamed run (4.6 GB on disk)")
    args = ap.parse_args()
    out: dict = {}
    names = args.only.split(",") if args.only else list(SECTIONS)
    for name in names:
        t0 = time.perf_counter()
        SECTIONS[name](out)
        print(f"[{name}] {time.perf_counter() - t0:.0f} s", flush=True)
    out["peak_rss_gb"] = peak_rss_gb()
    path = write_results("models" if not args.only else "models_" + "_".join(names), out)
    print(path)
    if args.scale:
        scale: dict = {}
        bench_scale(scale)
        print(write_results("models_scale", scale))


if __name__ == "__main__":
    main()
