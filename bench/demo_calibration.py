"""Calibrate the demo compendium: is the gap between linear regression, a network and
the noise floor what the demo promises?

A script, not a test (a few minutes of CPU). At the demo's default size it

1. generates the compendium (timed) and times a cache write + read in a temporary folder;
2. splits the samples 80/10/10 (train / validation / test) by a seeded permutation and
   standardizes every gene with the *training* mean and sd (the D-GEX protocol);
3. fits ridge regression on all landmarks (scikit-learn ``Ridge``, one alpha for all
   targets, picked on validation MAE) and a fully connected network (PyTorch, one ReLU
   hidden layer, dropout, Adam with a one-cycle learning-rate schedule, MSE loss, the
   epoch with the best validation MAE kept);
4. reports on the test samples each model's mean per-gene MAE (standardized units) for
   all / linear / non-linear targets and each kind, the noise floor of each group and
   their ratio, and the share of non-linear targets on which the network beats ridge;
5. writes everything, with versions and machine info, to
   ``bench/results/demo_calibration.json``.

The demo promises (checked at the end, exit status 1 if broken):

* ridge's mean MAE on the non-linear targets is at least 1.15x their floor;
* the network's mean MAE over all targets is within 10% of the floor;
* no model's mean MAE is below the floor (the floor is exact: beating it means a bug).

Run from the repository root::

    .venv/bin/python bench/demo_calibration.py            # default size, ~3-5 minutes on 2 cores
    .venv/bin/python bench/demo_calibration.py --quick    # small and fast, to check it runs
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import numpy as np
import sklearn
import torch
from sklearn.linear_model import Ridge

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from dgex_core._atomic import atomic_path  # noqa: E402
from dgex_core.demo import (  # noqa: E402
    NONLINEAR_KINDS,
    TARGET_KINDS,
    DemoConfig,
    DemoData,
    generate_demo,
    load_demo,
    noise_floor_standardized,
)

RIDGE_ALPHAS = (100.0, 300.0, 1_000.0, 3_000.0, 10_000.0, 30_000.0)
LINEAR_GAP_MIN = 1.15  # ridge / floor on the non-linear targets, at least
NETWORK_GAP_MAX = 1.10  # network / floor over all targets, at most


@dataclass(frozen=True)
class MLPSettings:
    """The network that reaches the floor on the demo (the models' suggested defaults)."""

    hidden: tuple[int, ...] = (1000,)
    activation: str = "relu"
    dropout: float = 0.3
    max_lr: float = 2e-3
    schedule: str = "one-cycle (15% warm-up, cosine decay)"
    epochs: int = 30
    batch_size: int = 200
    loss: str = "mse"
    optimizer: str = "adam"
    weight_decay: float = 0.0
    keep: str = "the epoch with the best validation MAE"
    seed: int = 0


# ---------------------------------------------------------------------------- data
def split(n: int, seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Row positions of train / validation / test (80 / 10 / 10), from a seeded permutation."""
    perm = np.random.default_rng(seed).permutation(n)
    a, b = int(0.8 * n), int(0.9 * n)
    return np.sort(perm[:a]), np.sort(perm[a:b]), np.sort(perm[b:])


def standardize(values: np.ndarray, train: np.ndarray) -> np.ndarray:
    """Each column (gene) scaled by its training mean and sd; float32, samples x genes."""
    v = values.astype(np.float64)
    mean, sd = v[train].mean(axis=0), v[train].std(axis=0)
    return ((v - mean) / sd).astype(np.float32)


def per_gene_mae(pred: np.ndarray, truth: np.ndarray) -> np.ndarray:
    """MAE of each gene (column) over samples; (n_genes,)."""
    return np.abs(pred.astype(np.float64) - truth).mean(axis=0)


# -------------------------------------------------------------------------- models
def fit_ridge(x: np.ndarray, y: np.ndarray, tr: np.ndarray, va: np.ndarray) -> tuple[Ridge, dict]:
    """Ridge on the training rows, alpha with the lowest mean validation MAE."""
    scores = {}
    best: tuple[float, Ridge] | None = None
    for alpha in RIDGE_ALPHAS:
        model = Ridge(alpha=alpha).fit(x[tr], y[tr])
        mae = float(per_gene_mae(model.predict(x[va]), y[va]).mean())
        scores[alpha] = mae
        if best is None or mae < best[0]:
            best = (mae, model)
    assert best is not None
    return best[1], {"alpha": float(best[1].alpha), "validation_mae_by_alpha": {str(k): v for k, v in scores.items()}}


class MLP(torch.nn.Module):
    """landmarks -> hidden layer(s) with dropout -> targets, all standardized."""

    def __init__(self, n_in: int, n_out: int, s: MLPSettings) -> None:
        super().__init__()
        act = {"relu": torch.nn.ReLU, "tanh": torch.nn.Tanh}[s.activation]
        layers: list[torch.nn.Module] = []
        width = n_in
        for h in s.hidden:
            layers += [torch.nn.Linear(width, h), act(), torch.nn.Dropout(s.dropout)]
            width = h
        layers.append(torch.nn.Linear(width, n_out))
        self.net = torch.nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


def fit_mlp(
    x: np.ndarray, y: np.ndarray, tr: np.ndarray, va: np.ndarray, s: MLPSettings
) -> tuple[MLP, list[dict]]:
    """Train on ``tr``, keep the weights of the epoch with the lowest validation MAE."""
    torch.manual_seed(s.seed)
    gen = torch.Generator().manual_seed(s.seed)
    xt, yt = torch.from_numpy(x[tr]), torch.from_numpy(y[tr])
    xv, yv = torch.from_numpy(x[va]), torch.from_numpy(y[va])
    model = MLP(x.shape[1], y.shape[1], s)
    opt = torch.optim.Adam(model.parameters(), lr=s.max_lr, weight_decay=s.weight_decay)
    steps = s.epochs * ((len(tr) + s.batch_size - 1) // s.batch_size)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=s.max_lr, total_steps=steps, pct_start=0.15)
    loss_fn = torch.nn.MSELoss() if s.loss == "mse" else torch.nn.L1Loss()
    best_mae, best_state, history = np.inf, None, []
    t0 = time.perf_counter()
    for epoch in range(s.epochs):
        model.train()
        for idx in torch.randperm(len(tr), generator=gen).split(s.batch_size):
            opt.zero_grad()
            loss_fn(model(xt[idx]), yt[idx]).backward()
            opt.step()
            sched.step()
        model.eval()
        with torch.no_grad():
            val_mae = float((model(xv) - yv).abs().mean())
        history.append({"epoch": epoch, "val_mae": val_mae, "seconds": round(time.perf_counter() - t0, 1)})
        print(f"  epoch {epoch:3d}  validation MAE {val_mae:.4f}", flush=True)
        if val_mae < best_mae:
            best_mae, best_state = val_mae, {k: v.clone() for k, v in model.state_dict().items()}
    model.load_state_dict(best_state)
    model.eval()
    return model, history


def predict_mlp(model: MLP, x: np.ndarray) -> np.ndarray:
    with torch.no_grad():
        return model(torch.from_numpy(x)).numpy()


# ------------------------------------------------------------------------- summary
def groups(data: DemoData) -> dict[str, np.ndarray]:
    """Boolean masks over targets: all, linear, nonlinear and each kind."""
    meta = data.target_meta
    nonlinear = meta["nonlinear"].to_numpy(dtype=bool)
    out = {"all": np.ones(len(meta), dtype=bool), "linear": ~nonlinear, "nonlinear": nonlinear}
    for kind in NONLINEAR_KINDS:
        out[kind] = (meta["kind"] == kind).to_numpy()
    return out


def summarize(mae: np.ndarray, floor: np.ndarray, masks: dict[str, np.ndarray]) -> dict:
    """Mean MAE, mean floor and their ratio for every group of targets."""
    out = {}
    for name, m in masks.items():
        out[name] = {
            "n_targets": int(m.sum()),
            "mae": float(mae[m].mean()),
            "floor": float(floor[m].mean()),
            "ratio_to_floor": float(mae[m].mean() / floor[m].mean()),
            "median_gene_ratio": float(np.median(mae[m] / floor[m])),
        }
    return out


def machine() -> dict:
    return {
        "platform": platform.platform(),
        "processor": platform.processor() or platform.machine(),
        "cpu_count": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "python": platform.python_version(),
        "numpy": np.__version__,
        "torch": torch.__version__,
        "scikit_learn": sklearn.__version__,
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help="small config and few epochs (a smoke run)")
    ap.add_argument("--seed", type=int, default=0, help="demo seed (the split and the network use 0)")
    ap.add_argument("--epochs", type=int, default=MLPSettings.epochs)
    ap.add_argument("--hidden", type=int, nargs="+", default=list(MLPSettings.hidden), help="hidden layer widths")
    ap.add_argument("--activation", choices=("relu", "tanh"), default=MLPSettings.activation)
    ap.add_argument("--dropout", type=float, default=MLPSettings.dropout)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--out", type=Path, default=REPO / "bench" / "results" / "demo_calibration.json")
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)

    config = DemoConfig(seed=args.seed)
    settings = MLPSettings(
        hidden=tuple(args.hidden), activation=args.activation, dropout=args.dropout, epochs=args.epochs
    )
    if args.quick:
        config = DemoConfig(n_samples=2_000, n_targets=400, seed=args.seed)
        settings = replace(settings, epochs=min(args.epochs, 5))

    print(f"generating {config} ...", flush=True)
    t0 = time.perf_counter()
    data = generate_demo(config)
    gen_s = time.perf_counter() - t0
    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.perf_counter()
        load_demo(config, cache_dir=tmp)
        first_load_s = time.perf_counter() - t0
        t0 = time.perf_counter()
        cached = load_demo(config, cache_dir=tmp)
        cached_load_s = time.perf_counter() - t0
        assert cached.from_cache and cached.matrix.equals(data.matrix, meta=False)
    print(f"  generated in {gen_s:.1f} s; cache write+read {first_load_s:.1f} s, cached read {cached_load_s:.1f} s")

    tr, va, te = split(config.n_samples, seed=0)
    x = standardize(data.landmark_values, tr)
    y = standardize(data.target_values, tr)
    floor = noise_floor_standardized(data, tr).to_numpy()
    masks = groups(data)

    # the true function on the test samples, scaled like the targets: should sit on the floor
    raw = data.target_values[tr].astype(np.float64)
    oracle = (data.true_targets(data.landmark_values[te]) - raw.mean(axis=0)) / raw.std(axis=0)
    oracle_mae = per_gene_mae(oracle, y[te])

    print("ridge ...", flush=True)
    t0 = time.perf_counter()
    ridge, ridge_info = fit_ridge(x, y, tr, va)
    ridge_s = time.perf_counter() - t0
    ridge_mae = per_gene_mae(ridge.predict(x[te]), y[te])

    print(f"network {settings} ...", flush=True)
    t0 = time.perf_counter()
    net, history = fit_mlp(x, y, tr, va, settings)
    net_s = time.perf_counter() - t0
    net_mae = per_gene_mae(predict_mlp(net, x[te]), y[te])

    nl = masks["nonlinear"]
    results = {
        "what": "demo calibration: test-set mean per-gene MAE (standardized by training sd) vs the exact noise floor",
        "command": " ".join(["python bench/demo_calibration.py", *(sys.argv[1:] if argv is None else argv)]),
        "config": config.to_dict(),
        "split": {"train": len(tr), "validation": len(va), "test": len(te), "seed": 0},
        "timing_s": {
            "generate": round(gen_s, 2),
            "load_demo_generate_and_write_cache": round(first_load_s, 2),
            "load_demo_from_cache": round(cached_load_s, 2),
            "ridge_fit_with_alpha_search": round(ridge_s, 1),
            "network_fit": round(net_s, 1),
        },
        "oracle_true_function": summarize(oracle_mae, floor, masks),
        "ridge": {**ridge_info, "test": summarize(ridge_mae, floor, masks)},
        "network": {
            "settings": asdict(settings),
            "best_epoch": int(np.argmin([h["val_mae"] for h in history])),
            "history": history,
            "test": summarize(net_mae, floor, masks),
        },
        "network_beats_ridge_share": {
            "nonlinear": float((net_mae[nl] < ridge_mae[nl]).mean()),
            "linear": float((net_mae[~nl] < ridge_mae[~nl]).mean()),
            "all": float((net_mae < ridge_mae).mean()),
        },
        "machine": machine(),
        "target_kinds": list(TARGET_KINDS),
    }
    checks = {
        f"ridge nonlinear >= {LINEAR_GAP_MIN} x floor": results["ridge"]["test"]["nonlinear"]["ratio_to_floor"] >= LINEAR_GAP_MIN,
        f"network all <= {NETWORK_GAP_MAX} x floor": results["network"]["test"]["all"]["ratio_to_floor"] <= NETWORK_GAP_MAX,
        "no model below the floor on average": min(
            results["ridge"]["test"]["all"]["ratio_to_floor"], results["network"]["test"]["all"]["ratio_to_floor"]
        ) >= 1.0,
        "true function on the floor (within 1%)": abs(results["oracle_true_function"]["all"]["ratio_to_floor"] - 1) < 0.01,
    }
    results["checks"] = checks

    args.out.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(args.out) as tmp:
        tmp.write_text(json.dumps(results, indent=2) + "\n")

    print(f"\n{'group':<12} {'floor':>7} {'ridge':>7} {'x floor':>8} {'network':>8} {'x floor':>8}")
    for name in masks:
        r, n = results["ridge"]["test"][name], results["network"]["test"][name]
        print(f"{name:<12} {r['floor']:7.4f} {r['mae']:7.4f} {r['ratio_to_floor']:8.3f} {n['mae']:8.4f} {n['ratio_to_floor']:8.3f}")
    print(f"network beats ridge on {results['network_beats_ridge_share']['nonlinear']:.1%} of the non-linear targets")
    for name, ok in checks.items():
        print(f"{'ok  ' if ok else 'FAIL'} {name}")
    print(f"written to {args.out}")
    return 0 if all(checks.values()) or args.quick else 1


if __name__ == "__main__":
    raise SystemExit(main())
