"""The notebook front door: predict and evaluate on what a user holds.

:func:`predict`, :func:`evaluate` and :func:`explain` take a fitted model or a run, and samples as a
:class:`~dgex_core.dataset.Dataset`, an AnnData, a pandas DataFrame (samples x genes,
columns are gene ids, matched by id) or an array (columns in ``landmark_ids_`` order),
and answer in the same kind: an AnnData in, an AnnData out (``obs`` kept, ``var``
carrying ``role`` and ``well_inferred``).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from .errors import ModelError

__all__ = ["evaluate", "explain", "predict"]


def _model_and_run(model_or_run):
    from .store import Run

    if isinstance(model_or_run, Run):
        return model_or_run.model, model_or_run
    if not hasattr(model_or_run, "landmark_ids_"):
        raise ModelError(f"expected a fitted model or a run, got {type(model_or_run).__name__} (fit it first)")
    return model_or_run, None


def _anndata_landmarks(model, adata) -> pd.DataFrame:
    import scipy.sparse as sp

    pos = model.positions_in(adata.var_names, "are not in the AnnData's var_names")
    X = adata[:, pos].X
    X = X.toarray() if sp.issparse(X) else np.asarray(X[:] if hasattr(X, "shape") else X)
    return pd.DataFrame(np.asarray(X, np.float32), index=adata.obs_names.astype(str), columns=model.landmark_ids_)


def _clip(pred: np.ndarray, run, clip: bool) -> np.ndarray:
    rng = run.target_range() if (run is not None and clip) else None
    return pred if rng is None else np.clip(pred, rng[0], rng[1], out=pred)


def predict(model_or_run, data, *, missing: str = "refuse", clip: bool = True):
    """Infer every target of ``model_or_run`` for the samples of ``data``.

    Parameters
    ----------
    model_or_run
        A fitted model (any family) or a :class:`~dgex_core.store.Run`.
    data
        A Dataset or AnnData (landmarks matched by gene id), a DataFrame (samples x
        genes, columns gene ids), or an array (samples x landmarks, in
        ``landmark_ids_`` order).
    missing
        ``"refuse"`` missing landmark values, or ``"impute"`` them with training means.
    clip
        With a run: clip inferred values to the training targets' range (as
        ``dgex predict`` does); a bare model is never clipped.

    Returns
    -------
    Inferred targets in original units: a samples x targets DataFrame (for a Dataset or
    DataFrame), an array (for an array), or an AnnData holding the measured landmarks
    and the inferred targets (``var["role"]``: ``measured`` / ``inferred``,
    ``var["well_inferred"]``; ``obs`` kept) for an AnnData.
    """
    from .dataset import Dataset
    from .models.inputs import is_anndata

    model, run = _model_and_run(model_or_run)
    if is_anndata(data):
        from .adata import predictions_to_anndata

        lm = _anndata_landmarks(model, data)
        pred = _clip(model.predict_landmarks(lm.to_numpy(), missing=missing).astype(np.float32, copy=False), run, clip)
        out = pd.DataFrame(pred, index=lm.index, columns=model.target_ids_)
        return predictions_to_anndata(lm, out, data.obs, None if run is None else run.well_inferred())
    if isinstance(data, Dataset):
        lm = data.landmarks[:, model.landmark_positions(data)]
        pred = _clip(model.predict_landmarks(np.asarray(lm), missing=missing).astype(np.float32, copy=False), run, clip)
        return pd.DataFrame(pred, index=data.sample_ids, columns=model.target_ids_)
    if isinstance(data, pd.DataFrame):
        lm = model.landmarks_of(data)
        pred = _clip(model.predict_landmarks(lm.to_numpy(np.float64), missing=missing).astype(np.float32, copy=False), run,
                     clip)
        return pd.DataFrame(pred, index=data.index, columns=model.target_ids_)
    return _clip(np.asarray(model.predict_landmarks(np.asarray(data), missing=missing)), run, clip)


def evaluate(model_or_run, data, *, group_by: str | None = "auto", spearman: bool = True):
    """Score ``model_or_run`` on samples with measured targets (a Dataset or an AnnData,
    genes matched by id): per-gene and per-sample errors and their summary
    (:class:`~dgex_core.evaluation.Evaluation`)."""
    from .dataset import Dataset
    from .evaluation import evaluate_model
    from .models.inputs import is_anndata

    model, _ = _model_and_run(model_or_run)
    if is_anndata(data):
        data = Dataset.from_anndata(data, list(model.landmark_ids_), allow_missing=False)
    if not isinstance(data, Dataset):
        raise ModelError(f"evaluate needs a Dataset or an AnnData with measured targets, got {type(data).__name__}")
    return evaluate_model(model, data, group_by=group_by, spearman=spearman)


def explain(model_or_run, data, method: str = "gradient", targets=None, *, statistic: str = "mean",
            max_samples: int | None = 2000, seed: int = 0, **options) -> pd.DataFrame:
    """Which landmarks drive which targets: attributions of ``model_or_run`` over the samples of ``data``.

    Parameters
    ----------
    model_or_run
        A fitted model (linear, network, or a per-gene choice of them) or a run.
    data
        The samples to explain: a Dataset or AnnData (landmarks matched by gene id), a
        DataFrame (samples x genes, columns gene ids) or an array (samples x landmarks in
        ``landmark_ids_`` order), original units. Samples missing a landmark value are
        left out.
    method
        ``"gradient"`` (mean input gradient) or ``"integrated_gradients"``.
    targets
        Target ids to explain (default all).
    statistic
        Integrated gradients over samples: ``"mean"`` (signed) or ``"mean_abs"``.
    max_samples
        At most this many samples, a seeded random subset (None: all).
    options
        Passed to :func:`dgex_core.attribution.attributions` (``steps``, ``batch_size``, ``engine``, ``progress``).

    Returns
    -------
    Landmarks x targets DataFrame in standardized units (change of a target's z-score per
    unit z-score of a landmark), float64.
    """
    from .attribution import attributions
    from .dataset import Dataset
    from .models.inputs import is_anndata

    model, _ = _model_and_run(model_or_run)
    if is_anndata(data):
        X = _anndata_landmarks(model, data).to_numpy(np.float64)
    elif isinstance(data, Dataset):
        X = np.asarray(data.landmarks[:, model.landmark_positions(data)], dtype=np.float64)
    elif isinstance(data, pd.DataFrame):
        X = model.landmarks_of(data).to_numpy(np.float64)
    else:
        X = np.asarray(data, dtype=np.float64)
    X = X[np.isfinite(X).all(axis=1)] if X.ndim == 2 else X
    if max_samples is not None and X.ndim == 2 and len(X) > max_samples:
        X = X[np.sort(np.random.default_rng(seed).choice(len(X), int(max_samples), replace=False))]
    return attributions(model, X, method, targets, statistic=statistic, **options)
