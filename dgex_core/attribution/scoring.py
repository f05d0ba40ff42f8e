"""Scoring landmarks x targets attributions: their agreement with another attribution
(e.g. the linear weights; :func:`agreement`, :func:`summarize`) and, where the truth is
known (the demo), the precision at k of the top attributed landmarks
(:func:`precision_at_k`, :func:`random_precision`). Numpy and pandas only.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd
from scipy.stats import rankdata

from ..errors import ModelError

__all__ = [
    "agreement",
    "precision_at_k",
    "random_precision",
    "summarize",
]


def _aligned(attr: pd.DataFrame, other, what: str) -> np.ndarray:
    if isinstance(other, pd.DataFrame):
        try:
            other = other.loc[attr.index, attr.columns]
        except KeyError:
            raise ModelError(f"{what} lacks some landmarks or targets of the attributions") from None
        return other.to_numpy()
    other = np.asarray(other)
    if other.shape != attr.shape:
        raise ModelError(f"{what} must be landmarks x targets of shape {attr.shape}, got {other.shape}")
    return other


def _top_k(values: np.ndarray, k: int) -> np.ndarray:
    """Row positions of the k largest |values| of each column (k, n_columns); ties by position."""
    return np.argsort(-np.abs(values), axis=0, kind="stable")[:k]


def _check_k(k: int, n: int) -> int:
    if not 1 <= int(k) <= n:
        raise ModelError(f"k must be in [1, {n}] (the number of landmarks), got {k}")
    return int(k)


def agreement(attr: pd.DataFrame, reference: pd.DataFrame, k: int = 20) -> pd.DataFrame:
    """Per target, how well two landmarks x targets attributions agree (e.g. network vs ``coef_``).

    Parameters
    ----------
    attr, reference
        Landmarks x targets; ``reference`` is aligned to ``attr`` by ids (or is an array
        of the same shape).
    k
        Size of the top lists.

    Returns
    -------
    pandas.DataFrame
        Indexed by target: ``spearman`` (rank correlation of the signed values over
        landmarks; NaN for a constant column) and ``top_k_overlap``, the fraction
        ``|top_k(attr) & top_k(reference)| / k`` of landmarks shared by the two top-k
        lists by absolute value (1 = same set, in any order).
    """
    A = attr.to_numpy(np.float64)
    B = _aligned(attr, reference, "reference").astype(np.float64)
    k = _check_k(k, A.shape[0])
    ra, rb = rankdata(A, axis=0), rankdata(B, axis=0)
    ra -= ra.mean(axis=0)
    rb -= rb.mean(axis=0)
    den = np.sqrt((ra**2).sum(axis=0) * (rb**2).sum(axis=0))
    with np.errstate(invalid="ignore", divide="ignore"):
        rho = np.where(den > 0, (ra * rb).sum(axis=0) / np.where(den > 0, den, 1.0), np.nan)
    ta, tb = _top_k(A, k), _top_k(B, k)
    ma = np.zeros(A.shape, bool)
    mb = np.zeros(A.shape, bool)
    cols = np.arange(A.shape[1])
    ma[ta, cols] = True
    mb[tb, cols] = True
    overlap = (ma & mb).sum(axis=0) / k
    return pd.DataFrame({"spearman": rho, "top_k_overlap": overlap}, index=attr.columns)


def summarize(values: pd.Series | pd.DataFrame) -> pd.DataFrame | pd.Series:
    """Mean, median and quartiles over targets (NaN left out) of a per-target score or scores."""
    frame = values.to_frame() if isinstance(values, pd.Series) else values
    out = pd.DataFrame({"mean": frame.mean(), "q25": frame.quantile(0.25), "median": frame.median(),
                        "q75": frame.quantile(0.75), "n": frame.count()})
    return out.iloc[0] if isinstance(values, pd.Series) else out


def precision_at_k(attr: pd.DataFrame, truth, k: int) -> pd.Series:
    """Per target, the fraction of its k top attributed landmarks (by |value|) that are true drivers.

    Parameters
    ----------
    attr
        Landmarks x targets attributions.
    truth
        Bool landmarks x targets: a DataFrame (aligned by ids) or an array in
        ``attr``'s order, e.g. :attr:`~dgex_core.demo.DemoData.driver_matrix`.
    k
        Number of top landmarks; ties are broken by landmark position.

    Returns
    -------
    pandas.Series
        Precision in [0, 1] per target (indexed by target id). A random ranking scores
        :func:`random_precision` on average.
    """
    T = _aligned(attr, truth, "truth").astype(bool)
    k = _check_k(k, T.shape[0])
    top = _top_k(attr.to_numpy(np.float64), k)
    hits = np.take_along_axis(T, top, axis=0).sum(axis=0)
    return pd.Series(hits / k, index=attr.columns, name=f"precision_at_{k}")


def random_precision(truth: pd.DataFrame | np.ndarray, target_ids: Sequence[str] | None = None) -> pd.Series:
    """Expected precision at any k of a random ranking: each target's share of driver landmarks.

    Parameters
    ----------
    truth
        Bool landmarks x targets.
    target_ids
        Ids for the result when ``truth`` is an array.
    """
    if isinstance(truth, pd.DataFrame):
        return truth.astype(bool).mean(axis=0).rename("random_precision")
    T = np.asarray(truth, bool)
    return pd.Series(T.mean(axis=0), index=target_ids, name="random_precision")
