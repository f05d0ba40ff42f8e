"""Per-gene error tables of finished runs, for plots and downloads: runs side by side,
errors long-form with gene symbols, the noise floor, one run against another."""

from __future__ import annotations

import numpy as np
import pandas as pd

from ..dataset import Dataset
from ..genes import symbols_of
from ..store import Run
from .metrics import compare

__all__ = ["error_long_table", "floor_long_table", "held_out_predictions", "noise_floor", "runs_table", "wins"]


def runs_table(runs: dict[str, Run]) -> pd.DataFrame:
    """One row per run: test error (mean ± sd over genes), Pearson r, noise floor and the
    ratio to it (demo), by linear / non-linear targets when known, well-inferred genes, fit time."""
    rows = []
    for name, run in runs.items():
        m, t = run.metrics, run.metrics.get("test", {})
        row = {"run": name, "family": run.family, "test MAE": t.get("mean_mae"), "sd over genes": t.get("sd_mae"),
               "mean Pearson r": t.get("mean_pearson"), "noise floor": t.get("mean_floor"),
               "x floor": t.get("ratio_to_floor")}
        groups = t.get("groups", {})
        for key, label in (("False", "x floor, linear targets"), ("True", "x floor, non-linear targets")):
            if key in groups:
                row[label] = groups[key].get("ratio_to_floor")
        row["well inferred"] = m.get("n_well_inferred")
        row["fit s"] = m.get("fit_seconds")
        rows.append(row)
    return pd.DataFrame(rows).dropna(axis=1, how="all")


def held_out_predictions(run: Run, data: Dataset) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Measured and predicted test-set targets of ``run`` (samples x targets, original units)."""
    from ..training import run_split  # training imports this package

    split = run_split(run, data)
    pred = run.model.predict_dataset(split.test)
    measured = pd.DataFrame(split.test.targets, index=split.test.sample_ids, columns=split.test.target_ids)
    return measured[pred.columns], pred


def error_long_table(runs: dict[str, Run], metric: str = "mae_z", gene_meta: pd.DataFrame | None = None) -> pd.DataFrame:
    """Per-gene errors of several runs, one row per (run, gene): columns run, gene, error, symbol."""
    parts = []
    for name, run in runs.items():
        pg = run.per_gene
        if pg is None:
            continue
        m = metric if metric in pg else "mae"
        df = pd.DataFrame({"run": name, "gene": pg.index.astype(str), "error": pg[m].to_numpy()})
        parts.append(df)
    out = pd.concat(parts, ignore_index=True) if parts else pd.DataFrame(columns=["run", "gene", "error"])
    out["symbol"] = symbols_of(out["gene"], gene_meta)
    return out


def noise_floor(run: Run, metric: str = "mae_z") -> pd.Series | None:
    """The run's per-gene noise floor in the units of ``metric`` (demo only), else None."""
    pg = run.per_gene
    col = "floor_z" if metric == "mae_z" else "floor"
    return None if pg is None or col not in pg else pg[col].dropna()


def floor_long_table(floor: pd.Series, gene_meta: pd.DataFrame | None = None) -> pd.DataFrame:
    """The noise floor as rows of :func:`error_long_table` (run ``"noise floor"``)."""
    out = pd.DataFrame({"run": "noise floor", "gene": floor.index.astype(str), "error": floor.to_numpy()})
    out["symbol"] = symbols_of(out["gene"], gene_meta)
    return out


def wins(per_gene_a: pd.DataFrame, per_gene_b: pd.DataFrame, metric: str = "mae_z",
         gene_meta: pd.DataFrame | None = None) -> tuple[pd.DataFrame, dict]:
    """Per-gene errors of A and B side by side (genes both scored) and the comparison summary.

    Returns
    -------
    table
        Columns gene, symbol, a, b, winner ("A", "B" or "tie").
    summary
        :func:`~dgex_core.evaluation.metrics.compare` of A (baseline) vs B plus ``share_a`` / ``share_b``.
    """
    summary = compare(per_gene_a, per_gene_b, metric)
    m = summary["metric"]
    common = per_gene_a.index.intersection(per_gene_b.index)
    a, b = per_gene_a.loc[common, m].to_numpy(), per_gene_b.loc[common, m].to_numpy()
    winner = np.where(a < b, "A", np.where(b < a, "B", "tie"))
    t = pd.DataFrame({"gene": common.astype(str), "a": a, "b": b, "winner": winner})
    t["symbol"] = symbols_of(t["gene"], gene_meta)
    n = max(len(t), 1)
    summary["share_a"] = float((winner == "A").sum() / n)
    summary["share_b"] = float((winner == "B").sum() / n)
    return t, summary
