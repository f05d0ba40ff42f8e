"""Beyond D-GEX accuracy: does the network lose to linear regression on any gene?

A script, not a test (about an hour of CPU at the demo's default size on two cores).
For each variant it trains a run exactly as ``dgex train`` does (:func:`train_run`,
the CLI's split: 80/10/10, seed 0; settings chosen on validation only) and scores it
per gene on the test samples in D-GEX's standardized units:

* on the demo at its default size (10,000 samples, 978 landmarks, 4,000 targets, the
  noise floor of every gene known): mean MAE / floor over all targets, the linear and
  the non-linear ones; the share of genes better than linear regression, and worse than
  it by more than 1%; wall time of the fit;
* on the real GPL96 arrays (57 bladder samples, the 978 L1000 landmark probes -> the
  other 21,305 probes; 5-fold cross-validation, each fold's validation samples taken
  from its training part): the same shares on the pooled out-of-fold predictions.

The default network is also trained through the CLI itself (``dgex train --data demo
--model mlp``, a subprocess, peak RSS recorded), which is what the issue's promise is
about. Each variant's per-gene errors are kept under ``bench/tmp/accuracy/`` so an
interrupted run resumes; the summary goes to ``bench/results/accuracy.json``.

Run from the repository root::

    .venv/bin/python bench/bench_accuracy.py                       # everything
    .venv/bin/python bench/bench_accuracy.py --variants dgex,default --part demo
    .venv/bin/python bench/bench_accuracy.py --quick               # small, to check it runs
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from bench._common import RESULTS, machine  # noqa: E402
from dgex_core._atomic import atomic_path  # noqa: E402
from dgex_core.dataset import Split  # noqa: E402
from dgex_core.models.knn import KNNModel  # noqa: E402
from dgex_core.models.linear import LinearModel  # noqa: E402
from dgex_core.models.mlp import MLPModel  # noqa: E402
from dgex_core.training import train_run  # noqa: E402

CACHE = REPO / "bench" / "tmp" / "accuracy"
REAL = REPO.parent / "shared" / "data" / "real"
WORSE_BY = 0.01  # "worse than linear regression by more than 1%"

#: The network's settings before the linear path (dgex 0.x's default: plain D-GEX).
PREVIOUS = {"linear_path": "off", "adaptive": False, "dropout": 0.3, "input_dropout": 0.0, "lr": 2e-3}


def _net(**kw):
    return lambda: MLPModel(**kw)


#: name -> (what it is, factory); "default" is trained through the CLI itself
VARIANTS: dict[str, tuple[str, Callable[[], object] | None]] = {
    "linear": ("ridge regression, alpha chosen on validation (the LINCS baseline)", lambda: LinearModel(alphas="auto")),
    "knn": ("KNN-GE, k chosen on validation", lambda: KNNModel(k_grid="auto")),
    "dgex": ("plain D-GEX network, the previous default (978 -> 1,000 ReLU -> targets, 30% dropout)",
             _net(**PREVIOUS)),
    "dgex-tanh": ("plain D-GEX network with the paper's tanh", _net(**{**PREVIOUS, "activation": "tanh"})),
    "dgex-sigmoid": ("plain D-GEX network with sigmoid", _net(**{**PREVIOUS, "activation": "sigmoid"})),
    "linpath": ("the previous default plus the linear path (frozen ridge + residual, per-gene gates)",
                _net(**{**PREVIOUS, "linear_path": "frozen"})),
    "adaptive": ("the previous default plus adaptive activations (TAAF), no linear path",
                 _net(**{**PREVIOUS, "adaptive": True})),
    "default": ("the default network, trained through `dgex train --data demo --model mlp`", None),
    "default-finetune": ("the default with the ridge weights fine-tuned", _net(linear_path="finetune")),
    "default-no-linear-path": ("the default without the linear path", _net(linear_path="off")),
    "default-no-adaptive": ("the default without adaptive activations", _net(adaptive=False)),
    "default-sigmoid": ("the default with adaptive sigmoid (TAAF's choice)", _net(activation="sigmoid")),
    "default-tanh": ("the default with adaptive tanh", _net(activation="tanh")),
    "choice": ("per-gene choice on validation between ridge and the default network (convex blends, step 0.25)",
               lambda: _choice()),
    "choice-knn": ("per-gene choice among ridge, KNN-GE and the default network",
                   lambda: _choice(parts=("linear", "knn", "mlp"))),
}
DEMO_VARIANTS = list(VARIANTS)
GPL96_VARIANTS = ["linear", "knn", "dgex", "default", "choice"]


def _choice(**kw):
    from dgex_core.models.choice import ChoiceModel

    return ChoiceModel(**kw)


# ------------------------------------------------------------------ the demo
def demo_dataset(spec: str):
    from dgex_core.demo import DemoConfig, load_demo

    if spec == "demo":
        cfg = DemoConfig()
    else:
        n, t = (int(v) for v in spec.split(":")[1].split("x"))
        cfg = DemoConfig(n_samples=n, n_targets=t)
    data = load_demo(cfg)
    return data, data.dataset()


def per_gene_val(model, split: Split) -> np.ndarray:
    """Validation MAE per target (standardized), in target order."""
    from dgex_core.evaluation import evaluate_model

    return evaluate_model(model, split.val, spearman=False).per_gene["mae_z"].reindex(model.target_ids_).to_numpy()


def run_demo_variant(name: str, spec: str, out: Path) -> dict:
    """Train one variant on the demo as ``dgex train`` does; per-gene test/validation errors to ``out``."""
    _, ds = demo_dataset(spec)
    split = ds.split(val=0.1, test=0.1, seed=0)
    extra: dict = {}
    if name == "default":
        res = _cli_default(spec)
        pg, fit_s, extra = res["per_gene"], res["fit_seconds"], res["extra"]
        val = np.full(len(pg), np.nan)
    else:
        model = VARIANTS[name][1]()
        t0 = time.perf_counter()
        run = train_run(ds, model, f"bench-{name}", split=split)
        wall = time.perf_counter() - t0
        fit_s = run.metrics["fit_seconds"]
        extra = {"wall_seconds_train_run": wall, "params": model.get_params()}
        pg = run.per_gene
        val = per_gene_val(model, split)
        if getattr(model, "linear_path", "off") != "off":
            extra.update(_gate_report(model, split))
        if model.family == "choice":
            extra["choice"] = model.choice_summary()
            extra["validation_by_part"] = {k: v.tolist() for k, v in model.part_validation_mae_.items()}
            extra["validation_choice"] = model.validation_mae_.tolist()
    np.savez(out.with_suffix(".npz"), gene=np.asarray(pg.index, dtype=str), mae_z=pg["mae_z"].to_numpy(),
             floor_z=pg["floor_z"].to_numpy(), val_mae_z=val)
    meta = {"variant": name, "fit_seconds": fit_s, **extra}
    out.write_text(json.dumps(meta, default=float))
    return meta


def _gate_report(model, split: Split) -> dict:
    """How the per-gene gates came out, and the test error the network would have without them."""
    import torch

    gates = np.concatenate([net.gate.numpy() for net in model.networks_])
    saved = [net.gate.clone() for net in model.networks_]
    from dgex_core.evaluation import evaluate_model

    try:
        for net in model.networks_:
            net.gate.fill_(1.0)
        ungated = evaluate_model(model, split.test, spearman=False).per_gene["mae_z"]
    finally:
        with torch.no_grad():
            for net, g in zip(model.networks_, saved, strict=True):
                net.gate.copy_(g)
    return {"gate_counts": {str(g): int((gates == g).sum()) for g in np.unique(gates)},
            "ungated_test_mae_z": ungated.reindex(model.target_ids_).tolist(),
            "linear_alpha": model.linear_alpha_}


def _cli_default(spec: str) -> dict:
    """``dgex train --data demo --model mlp`` as a subprocess (peak RSS), read back from its run folder."""
    from dgex_core.store import load_run

    with tempfile.TemporaryDirectory(dir=REPO / "bench" / "tmp") as tmp:
        cmd = [sys.executable, "-m", "dgex_core.cli", "train", "--data", spec, "--model", "mlp", "--name", "default",
               "--runs-dir", tmp]
        t0 = time.perf_counter()
        proc = subprocess.run(["/usr/bin/time", "-v", *cmd], capture_output=True, text=True, cwd=REPO,
                              env={**os.environ, "PYTHONPATH": str(REPO)})
        wall = time.perf_counter() - t0
        if proc.returncode:
            raise RuntimeError(f"{' '.join(cmd)} failed:\n{proc.stderr[-3000:]}")
        rss = next((int(ln.split(":")[1]) for ln in proc.stderr.splitlines() if "Maximum resident" in ln), 0)
        run = load_run(Path(tmp) / "default")
        return {"per_gene": run.per_gene, "fit_seconds": run.metrics["fit_seconds"],
                "extra": {"command": "dgex " + " ".join(cmd[3:7]), "wall_seconds_command": wall,
                          "peak_rss_gb": rss / 2**20, "params": run.model.get_params(),
                          "stdout": proc.stdout.strip().splitlines()[-6:]}}


def summarize_demo(spec: str, names: list[str]) -> dict:
    data, _ = demo_dataset(spec)
    nonlinear = data.target_meta["nonlinear"].reindex(data.target_ids).to_numpy(bool)
    loaded = {}
    for n in names:
        f = CACHE / f"{_slug(spec)}-{n}.npz"
        if f.exists():
            z = np.load(f)
            meta = json.loads(f.with_suffix(".json").read_text())
            s = pd.DataFrame({"mae_z": z["mae_z"], "floor_z": z["floor_z"], "val": z["val_mae_z"]}, index=z["gene"])
            loaded[n] = (s.reindex(data.target_ids), meta)
    if "linear" not in loaded:
        raise SystemExit("run the linear variant first: it is the reference")
    lin = loaded["linear"][0]["mae_z"].to_numpy()
    out = {}
    for n, (s, meta) in loaded.items():
        mae, floor = s["mae_z"].to_numpy(), s["floor_z"].to_numpy()
        row = {"what": VARIANTS[n][0], "fit_seconds": round(meta["fit_seconds"], 1)}
        for g, m in (("all", np.ones_like(nonlinear)), ("linear", ~nonlinear), ("nonlinear", nonlinear)):
            row[f"mae_{g}"] = float(mae[m].mean())
            row[f"ratio_to_floor_{g}"] = float(mae[m].mean() / floor[m].mean())
        row["share_better_than_linear"] = float((mae < lin).mean())
        row["share_worse_than_linear_by_1pct"] = float((mae > lin * (1 + WORSE_BY)).mean())
        row["share_worse_than_linear_by_2pct"] = float((mae > lin * 1.02).mean())
        if "ungated_test_mae_z" in meta:
            ug = np.asarray(meta["ungated_test_mae_z"])
            row["without_gates"] = {"ratio_to_floor_all": float(ug.mean() / floor.mean()),
                                    "ratio_to_floor_linear": float(ug[~nonlinear].mean() / floor[~nonlinear].mean()),
                                    "share_worse_than_linear_by_1pct": float((ug > lin * (1 + WORSE_BY)).mean())}
            row["gate_counts"] = meta["gate_counts"]
        for k in ("wall_seconds_command", "peak_rss_gb", "command", "params", "choice"):
            if k in meta:
                row[k] = meta[k]
        if "validation_by_part" in meta:
            parts = {k: np.asarray(v) for k, v in meta["validation_by_part"].items()}
            best = np.min(np.vstack(list(parts.values())), axis=0)
            chosen = np.asarray(meta["validation_choice"])
            row["validation"] = {"choice_mean": float(chosen.mean()),
                                 **{f"{k}_mean": float(v.mean()) for k, v in parts.items()},
                                 "best_part_per_gene_mean": float(best.mean()),
                                 "max_excess_over_best_part": float((chosen - best).max()),
                                 "genes_worse_than_best_part": int((chosen > best + 1e-12).sum())}
            row["test_by_part"] = {}
            for k in parts:  # each part's own run: the network part is the default network
                src = "default" if k == "mlp" else k
                if src in loaded:
                    row["test_by_part"][k] = {"mae": float(loaded[src][0]["mae_z"].mean()),
                                              "ratio_to_floor_all": float(loaded[src][0]["mae_z"].mean()
                                                                          / loaded[src][0]["floor_z"].mean())}
        out[n] = row
    return out


# ---------------------------------------------------------------- GPL96 real
def gpl96_dataset():
    from dgex_core.cli import _load_dataset

    arrays, plate = REAL / "gpl96_bladder_n57x22283.gct.gz", REAL / "l1000_LJP009_A375_24H_qnorm_n371x978.gct"
    if not arrays.exists():
        raise SystemExit(f"{arrays} is absent: the GPL96 part needs ../shared/data/real")
    ds, _ = _load_dataset(str(arrays), str(plate), False)
    return ds


def gpl96_folds(n: int, k: int = 5, seed: int = 0) -> list[tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """(train, validation, test) positions per fold: each sample tested once; validation
    samples (a fifth of the rest) from the fold's training part."""
    perm = np.random.default_rng(seed).permutation(n)
    out = []
    for test in np.array_split(perm, k):
        rest = np.setdiff1d(perm, test)
        rest = np.random.default_rng(seed + 1).permutation(rest)
        n_val = max(5, len(rest) // 5)
        out.append((np.sort(rest[n_val:]), np.sort(rest[:n_val]), np.sort(test)))
    return out


def run_gpl96_variant(name: str, out: Path) -> dict:
    ds = gpl96_dataset()
    pred = np.zeros((ds.n_samples, ds.n_targets), np.float32)
    fit_s = 0.0
    for tr, va, te in gpl96_folds(ds.n_samples):
        split = Split(ds.subset(tr), ds.subset(va), ds.subset(te), seed=0)
        model = MLPModel() if name == "default" else VARIANTS[name][1]()
        run = train_run(ds, model, f"gpl96-{name}", split=split, keep_predictions=True)
        fit_s += run.metrics["fit_seconds"]
        pred[te] = run.predictions.reindex(columns=ds.target_ids).to_numpy()
    truth = np.asarray(ds.targets[:], np.float32)
    mae = np.abs(pred - truth).mean(axis=0)
    np.savez(out.with_suffix(".npz"), gene=np.asarray(ds.target_ids, dtype=str), mae=mae)
    meta = {"variant": name, "fit_seconds": fit_s}
    out.write_text(json.dumps(meta))
    return meta


def summarize_gpl96(names: list[str]) -> dict:
    loaded = {n: np.load(CACHE / f"gpl96-{n}.npz")["mae"] for n in names if (CACHE / f"gpl96-{n}.npz").exists()}
    if "linear" not in loaded:
        return {}
    lin = loaded["linear"]
    what = {**{n: VARIANTS[n][0] for n in VARIANTS}, "default": "the default network (MLPModel())"}
    return {n: {"what": what[n], "mean_mae_original_units": float(m.mean()),
                "relative_improvement_over_linear": float((lin.mean() - m.mean()) / lin.mean()),
                "share_better_than_linear": float((m < lin).mean()),
                "share_worse_than_linear_by_1pct": float((m > lin * (1 + WORSE_BY)).mean()),
                "fit_seconds_all_folds": json.loads((CACHE / f"gpl96-{n}.json").read_text())["fit_seconds"]}
            for n, m in loaded.items()}


def _slug(spec: str) -> str:
    return spec.replace(":", "-")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--part", choices=["demo", "gpl96", "all"], default="all")
    ap.add_argument("--variants", help="comma-separated (default: all of the part's)")
    ap.add_argument("--quick", action="store_true", help="a small demo (demo:2000x500), results not written")
    ap.add_argument("--demo", default="demo", help="demo size to use, e.g. demo:10000x1000 (results not written)")
    ap.add_argument("--rerun", action="store_true", help="train again even when a variant's errors are cached")
    a = ap.parse_args(argv)
    spec = "demo:2000x500" if a.quick else a.demo
    a.quick = a.quick or spec != "demo"
    CACHE.mkdir(parents=True, exist_ok=True)
    chosen = a.variants.split(",") if a.variants else None
    if a.part in ("demo", "all"):
        for n in chosen or DEMO_VARIANTS:
            f = CACHE / f"{_slug(spec)}-{n}.json"
            if a.rerun or not f.exists() or not f.with_suffix(".npz").exists():
                t0 = time.perf_counter()
                meta = run_demo_variant(n, spec, f)
                print(f"demo {n}: fit {meta['fit_seconds']:.1f} s (total {time.perf_counter() - t0:.0f} s)", flush=True)
    if a.part in ("gpl96", "all") and not a.quick:
        for n in [v for v in (chosen or GPL96_VARIANTS) if v in GPL96_VARIANTS]:
            f = CACHE / f"gpl96-{n}.json"
            if a.rerun or not f.exists():
                meta = run_gpl96_variant(n, f)
                print(f"gpl96 {n}: fit {meta['fit_seconds']:.1f} s over 5 folds", flush=True)
    demo = summarize_demo(spec, DEMO_VARIANTS)
    for n, r in demo.items():
        print(f"{n:26s} all {r['ratio_to_floor_all']:.4f}  lin {r['ratio_to_floor_linear']:.4f}  "
              f"nonlin {r['ratio_to_floor_nonlinear']:.4f}  better {r['share_better_than_linear']:.2%}  "
              f"worse>1% {r['share_worse_than_linear_by_1pct']:.2%}  fit {r['fit_seconds']:.0f} s")
    gpl = {} if a.quick else summarize_gpl96(GPL96_VARIANTS)
    for n, r in gpl.items():
        print(f"gpl96 {n:20s} better {r['share_better_than_linear']:.2%}  "
              f"worse>1% {r['share_worse_than_linear_by_1pct']:.2%}  gain {r['relative_improvement_over_linear']:.2%}")
    if a.quick:
        return 0
    result = {"what": "per-gene accuracy against linear regression: demo (default size) and GPL96 (5-fold CV)",
              "command": "python bench/bench_accuracy.py", "demo": demo, "gpl96": gpl, "machine": machine(),
              "units": "MAE in D-GEX standardized units (training sd) for the demo; original units (log2) for GPL96",
              "worse_by": WORSE_BY}
    with atomic_path(RESULTS / "accuracy.json") as tmp:
        Path(tmp).write_text(json.dumps(result, indent=1, default=float))
    return 0


if __name__ == "__main__":
    sys.exit(main())
