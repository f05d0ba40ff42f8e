"""Reading a landmarks x targets weight matrix: its strongest entries, in clustered order."""

from __future__ import annotations

import numpy as np
import pandas as pd

__all__ = ["cluster_order", "strongest", "top_weights"]


def top_weights(coef: pd.DataFrame, n_rows: int = 40, n_cols: int = 40) -> pd.DataFrame:
    """The landmarks (rows) and targets (columns) with the largest absolute weights, in
    hierarchical-clustering order (intercept dropped)."""
    w = coef.drop(index="(intercept)", errors="ignore")
    a = w.abs().to_numpy()
    rows = np.argsort(-a.max(axis=1))[:n_rows]
    cols = np.argsort(-a[rows].max(axis=0))[:n_cols]
    sub = w.iloc[np.sort(rows), np.sort(cols)]
    return sub.iloc[cluster_order(sub.to_numpy()), cluster_order(sub.to_numpy().T)]


def cluster_order(x: np.ndarray) -> np.ndarray:
    """Row order of ``x`` from average-linkage hierarchical clustering (correlation distance
    when defined, else Euclidean)."""
    from scipy.cluster.hierarchy import leaves_list, linkage

    x = np.asarray(x, dtype=float)
    if x.shape[0] < 3:
        return np.arange(x.shape[0])
    metric = "correlation" if (x.std(axis=1) > 0).all() and x.shape[1] > 1 else "euclidean"
    return leaves_list(linkage(x, method="average", metric=metric))


def strongest(coef: pd.DataFrame, *, target: str | None = None, landmark: str | None = None, n: int = 20) -> pd.DataFrame:
    """The ``n`` largest absolute weights of one target (over landmarks: columns landmark, weight)
    or of one landmark (over targets: columns target, weight), strongest first."""
    w = coef.drop(index="(intercept)", errors="ignore")
    s = w[target] if target is not None else w.loc[landmark]
    s = s.loc[s.abs().sort_values(ascending=False).index[:n]]
    return pd.DataFrame({"landmark" if target is not None else "target": s.index.astype(str),
                         "weight": s.to_numpy()})
