"""Which landmarks drive which targets, models side by side: the tables behind the
dashboard's Interpret page and its downloads (no Streamlit here, no I/O).

Inputs are attributions from :mod:`dgex_core.attribution`: landmarks x targets DataFrames
in standardized units (the change in a target's z-score per unit z-score of a
landmark), one per model, e.g. ``{"network": A_mlp, "linear": A_lin}``. Genes are
matched by id, never by position: :func:`common_genes` gives the landmarks and targets
two models share.

Where the truth is known (the demo's driver matrix), tables mark the true drivers.
"""

from __future__ import annotations

from collections.abc import Hashable, Mapping

import numpy as np
import pandas as pd

from ..errors import ModelError
from ..genes import gene_labels
from .scoring import agreement, precision_at_k, random_precision

__all__ = [
    "agreement_table",
    "common_genes",
    "group_matrix",
    "groupable_columns",
    "landmark_targets",
    "side_by_side",
    "target_table",
]


def common_genes(a: pd.DataFrame, b: pd.DataFrame) -> tuple[pd.Index, pd.Index]:
    """Landmarks and targets (in ``a``'s order) that two landmarks x targets frames share.

    Raises
    ------
    ModelError
        If they share no landmark or no target (models of different data).
    """
    lms = a.index[a.index.isin(b.index)]
    tgs = a.columns[a.columns.isin(b.columns)]
    if not len(lms) or not len(tgs):
        raise ModelError(f"the two models share {len(lms)} landmarks and {len(tgs)} targets: they were trained on "
                         "different genes and cannot be compared")
    return lms, tgs


def _abs_rank(s: pd.Series) -> pd.Series:
    """1 for the largest |value|, ties by position."""
    order = np.argsort(-np.abs(s.to_numpy(np.float64)), kind="stable")
    rank = np.empty(len(s), dtype=np.int64)
    rank[order] = np.arange(1, len(s) + 1)
    return pd.Series(rank, index=s.index)


def _union_top(series: Mapping[str, pd.Series], n: int) -> pd.Index:
    """The union of each series' ``n`` largest |values|, ordered by the best rank in any of them."""
    if not series:
        raise ModelError("no attributions given")
    ranks = pd.DataFrame({m: _abs_rank(s) for m, s in series.items()})
    best = ranks.min(axis=1)
    keep = best[best <= n]
    # order: best rank, then the first model's rank
    first = ranks.iloc[:, 0].reindex(keep.index)
    return pd.DataFrame({"best": keep, "first": first}).sort_values(["best", "first"], kind="stable").index


def side_by_side(
    attrs: Mapping[str, pd.Series],
    n: int = 20,
    *,
    symbols: pd.Series | None = None,
    truth: pd.Series | None = None,
) -> pd.DataFrame:
    """One target's attributions in several models, on a shared landmark axis.

    Parameters
    ----------
    attrs
        Model name -> attributions of one target over landmarks (Series indexed by
        landmark id), all on the same landmarks.
    n
        Each model's ``n`` strongest landmarks (by |value|) are shown; the axis is their
        union, strongest first.
    symbols
        Landmark id -> symbol, for labels.
    truth
        Landmark id -> bool, True where the landmark truly drives the target (demo).

    Returns
    -------
    pandas.DataFrame
        Long table, one row per (landmark, model): ``landmark``, ``label`` (id and
        symbol, ``*`` marking a true driver), ``model``, ``value``, ``rank`` (1 = the
        model's strongest landmark over all landmarks), ``true_driver`` (when known).
    """
    lms = _union_top(attrs, n)
    labels = gene_labels(lms, symbols)
    if truth is not None:
        is_driver = truth.astype(bool).reindex(lms, fill_value=False).to_numpy(dtype=bool)
        labels = np.array([f"{lab} *" if d else lab for lab, d in zip(labels, is_driver, strict=True)], dtype=object)
    parts = []
    for model, s in attrs.items():
        part = pd.DataFrame({"landmark": lms.astype(str), "label": labels, "model": model,
                             "value": s.reindex(lms).to_numpy(np.float64), "rank": _abs_rank(s).reindex(lms).to_numpy()})
        if truth is not None:
            part["true_driver"] = is_driver
        parts.append(part)
    return pd.concat(parts, ignore_index=True)


def target_table(
    attrs: Mapping[str, pd.Series],
    *,
    groups: Mapping[Hashable, pd.Series] | None = None,
    group_field: str = "group",
    symbols: pd.Series | None = None,
    truth: pd.Series | None = None,
) -> pd.DataFrame:
    """Every landmark's attribution to one target in each model (the download).

    Returns
    -------
    pandas.DataFrame
        Indexed by landmark id, strongest (first model, by |value|) first: ``symbol``
        (when known), ``<model>`` and ``<model>_rank`` per model, ``true_driver`` (when
        known), and ``<group_field>=<label>`` per group (the first model's attribution
        restricted to that group's samples).
    """
    first = next(iter(attrs.values()))
    out = pd.DataFrame(index=pd.Index(first.index.astype(str), name="landmark"))
    if symbols is not None:
        out["symbol"] = symbols.reindex(out.index).to_numpy()
    for model, s in attrs.items():
        out[model] = s.reindex(out.index).to_numpy(np.float64)
        out[f"{model}_rank"] = _abs_rank(s).reindex(out.index).to_numpy()
    if truth is not None:
        out["true_driver"] = truth.astype(bool).reindex(out.index, fill_value=False).to_numpy(dtype=bool)
    for label, s in (groups or {}).items():
        out[f"{group_field}={label}"] = s.reindex(out.index).to_numpy(np.float64)
    return out.iloc[np.argsort(out[f"{next(iter(attrs))}_rank"].to_numpy(), kind="stable")]


def landmark_targets(
    attrs: Mapping[str, pd.DataFrame],
    landmark: str,
    n: int = 20,
    *,
    symbols: pd.Series | None = None,
    truth: pd.DataFrame | None = None,
) -> pd.DataFrame:
    """The targets one landmark drives most in each model, on a shared target axis.

    Parameters
    ----------
    attrs
        Model name -> landmarks x targets attributions (the same targets).
    landmark
        A landmark id.
    n, symbols, truth
        As :func:`side_by_side`, over targets (``truth``: landmarks x targets bool).

    Returns
    -------
    pandas.DataFrame
        Long table: ``target``, ``label``, ``model``, ``value``, ``rank`` and
        ``true_driver`` (when known), as :func:`side_by_side`.
    """
    rows = {}
    for model, A in attrs.items():
        if landmark not in A.index:
            raise ModelError(f"landmark {landmark!r} is not an input of the {model} model")
        rows[model] = A.loc[landmark]
    t = side_by_side(rows, n, symbols=symbols,
                     truth=None if truth is None or landmark not in truth.index else truth.loc[landmark])
    return t.rename(columns={"landmark": "target"})


def agreement_table(
    attrs: Mapping[str, pd.DataFrame],
    k: int = 20,
    *,
    truth: pd.DataFrame | None = None,
    target_meta: pd.DataFrame | None = None,
) -> pd.DataFrame:
    """Per target: how two models' attributions agree, and (demo) how often each finds the true drivers.

    Parameters
    ----------
    attrs
        Exactly two models: name -> landmarks x targets, matched by id (only the shared
        landmarks and targets are compared). The first is compared with the second.
    k
        Size of the top lists (overlap, precision).
    truth
        Bool landmarks x targets (demo): adds ``precision_at_k`` per model.
    target_meta
        Target metadata; its ``symbol``, ``kind`` and ``nonlinear`` columns are carried.

    Returns
    -------
    pandas.DataFrame
        Indexed by target id: ``spearman`` and ``top_k_overlap`` (see
        :func:`~dgex_core.attribution.agreement`), ``precision_at_k_<model>`` and
        ``precision_at_k_random`` when ``truth`` is given, and the metadata columns.
    """
    if len(attrs) != 2:
        raise ModelError(f"agreement compares two models, got {len(attrs)}")
    (na, A), (nb, B) = attrs.items()
    lms, tgs = common_genes(A, B)
    A, B = A.loc[lms, tgs], B.loc[lms, tgs]
    out = agreement(A, B, k=min(k, len(lms)))
    if truth is not None:
        T = truth.astype(bool).reindex(index=lms, columns=tgs, fill_value=False)
        for name, M in ((na, A), (nb, B)):
            out[f"precision_at_k_{name}"] = precision_at_k(M, T, min(k, len(lms))).to_numpy()
        out["precision_at_k_random"] = random_precision(T).to_numpy()
    if target_meta is not None:
        for c in ("symbol", "kind", "nonlinear"):
            if c in target_meta:
                out[c] = target_meta[c].reindex(out.index).to_numpy()
    out.index.name = "target"
    out.attrs["k"] = min(k, len(lms))
    return out


def group_matrix(by: Mapping[Hashable, pd.DataFrame], target: str, landmarks: pd.Index) -> pd.DataFrame:
    """One target's attributions per group of samples: ``landmarks`` x groups.

    Parameters
    ----------
    by
        Output of :func:`~dgex_core.attribution.group_attributions` (label -> landmarks x targets, with
        ``attrs["n_samples"]``).
    target
        The target id.
    landmarks
        The landmarks to show (rows), e.g. the strongest overall.

    Returns
    -------
    pandas.DataFrame
        Columns ``"<label> (n=<samples>)"``, in the order of ``by``.
    """
    cols = {f"{label} (n={f.attrs.get('n_samples', '?')})": f[target].reindex(landmarks) for label, f in by.items()}
    return pd.DataFrame(cols, index=pd.Index(landmarks, name="landmark"))


def groupable_columns(sample_meta: pd.DataFrame, max_groups: int = 50, min_size: int = 2) -> list[str]:
    """Sample-metadata columns that split samples into 2..``max_groups`` groups, at least
    two of them with ``min_size`` samples (tissue, batch, cluster: not sample names)."""
    out = []
    for c in sample_meta.columns:
        counts = sample_meta[c].dropna().astype(str).value_counts()
        if 2 <= len(counts) <= max_groups and (counts >= min_size).sum() >= 2:
            out.append(str(c))
    return out
