"""What the dashboard's Interpret page costs on the demo it opens on (4,000 x 1,500), with
the default network and a ridge regression, step by step as the page runs them.

    .venv/bin/python bench/bench_interpret_page.py            # trains both (~1 min on 2 cores)

Writes ``bench/results/interpret_page.json`` and prints the table. The page computes the
all-target matrices once per (runs, sample set) and caches them; a new target or
landmark only re-slices them (integrated gradients and the group view recompute for
that one target).
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import peak_rss_gb, write_results

from dgex_core import attribution
from dgex_core.attribution import explain_samples
from dgex_core.demo import app_demo_config, load_demo
from dgex_core.models.linear import LinearModel
from dgex_core.models.mlp import MLPModel
from dgex_core.training import train_run


def main() -> None:
    demo = load_demo(app_demo_config("4000x1500"))
    data = demo.dataset()
    t0 = time.perf_counter()
    lin = train_run(data, LinearModel(alphas="auto"), "linear")
    net = train_run(data, MLPModel(device="cpu"), "mlp")
    fit_s = time.perf_counter() - t0
    truth = pd.DataFrame(demo.driver_matrix, index=demo.landmark_ids, columns=demo.target_ids)

    steps: dict[str, float] = {}

    def timed(name, fn):
        t = time.perf_counter()
        out = fn()
        steps[name] = time.perf_counter() - t
        return out

    X, meta = timed("samples (run's test split)", lambda: explain_samples(net, data, "test"))
    A_net = timed("network mean gradient, all targets", lambda: attribution.attributions(net.model, X, "gradient"))
    A_lin = timed("linear weights, all targets", lambda: attribution.attributions(lin.model, X, "gradient"))
    agree = timed("agreement + precision at 20, all targets",
                  lambda: attribution.agreement_table({"network": A_net, "linear": A_lin}, 20, truth=truth,
                                                  target_meta=data.target_meta))
    labels = meta["tissue"].astype(str)
    ctx = timed("context dependence by tissue, all targets",
                lambda: attribution.context_dependence_scores(net.model, X, labels, min_size=10))
    target = demo.nonlinear_targets[0]
    timed("one target: mean |IG|, both models",
          lambda: [attribution.attributions(m.model, X, "integrated_gradients", [target], statistic="mean_abs")
                   for m in (net, lin)])
    timed("one target: group attributions", lambda: attribution.group_attributions(net.model, X, labels, "gradient",
                                                                               [target], min_size=10))
    timed("full matrix CSV for download", lambda: A_net.to_csv().encode())

    nonlin = data.target_meta["nonlinear"].astype(bool)
    res = {
        "demo": demo.config.to_dict(), "n_explained_samples": len(X), "fit_both_s": fit_s,
        "network": net.model.get_params(), "steps_s": steps, "peak_rss_gb": peak_rss_gb(),
        "median_spearman": float(agree["spearman"].median()),
        "median_top20_overlap": float(agree["top_k_overlap"].median()),
        "precision_at_20": {m: {"all": float(agree[f"precision_at_k_{m}"].mean()),
                                "nonlinear": float(agree.loc[nonlin, f"precision_at_k_{m}"].mean())}
                            for m in ("network", "linear", "random")},
        "context_dependence_median": {k: float(ctx.reindex(ids).median()) for k, ids in
                                      {"linear targets": data.target_ids[~nonlin.to_numpy()],
                                       "non-linear targets": data.target_ids[nonlin.to_numpy()]}.items()},
        "test_mae": {"network": net.metrics["test"]["mean_mae"], "linear": lin.metrics["test"]["mean_mae"]},
    }
    path = write_results("interpret_page", res)
    print(pd.Series(steps).to_string(float_format=lambda v: f"{v:.3f} s"))
    print({k: res[k] for k in ("median_spearman", "median_top20_overlap", "precision_at_20",
                               "context_dependence_median", "test_mae")})
    print(f"peak RSS {res['peak_rss_gb']:.2f} GB; wrote {path}")
    assert np.isfinite(agree["spearman"]).all()


if __name__ == "__main__":
    main()
