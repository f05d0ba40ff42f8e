"""The notebook front door: predict and evaluate on what a user holds.

:func:`predict` and :func:`evaluate` take a fitted model or a run, and samples as a
:class:`~dgex_core.dataset.Dataset`, an AnnData, a pandas DataFrame (samples x genes,
columns are gene ids, matched by id) or an array (columns in ``landmark_ids_`` order),
and answer in the same kind: an AnnData in, an AnnData out (``obs`` kept, ``var``
carrying ``role`` and ``well_inferred``).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from .errors import ModelError

__all__ = ["evaluate", "predict"]


def _model_and_run(model_or_run):
    from .store import Run

    if isinstance(model_or_run, Run):
        return model_or_run.model, model_or_run
    if not hasattr(model_or_run, "landmark_ids_"):
        raise ModelError(f"expected a fitted model or a run, got {type(model_or_run).__name__} (fit it first)")
    return model_or_run, None


def _anndata_landmarks(model, adata) -> pd.DataFrame:
    import scipy.sparse as sp

    pos = pd.Index(adata.var_names.astype(str)).get_indexer(model.landmark_ids_)
    if (pos < 0).any():
        miss = model.landmark_ids_[pos < 0]
        raise ModelError(f"{len(miss)} of the model's {len(pos)} landmarks are not in the AnnData's var_names, "
                         f"e.g. {miss[:5].tolist()}")
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
    (:class:`~dgex_core.evaluate.Evaluation`)."""
    from .dataset import Dataset
    from .evaluate import evaluate_model
    from .models.inputs import is_anndata

    model, _ = _model_and_run(model_or_run)
    if is_anndata(data):
        data = Dataset.from_anndata(data, list(model.landmark_ids_), allow_missing=False)
    if not isinstance(data, Dataset):
        raise ModelError(f"evaluate needs a Dataset or an AnnData with measured targets, got {type(data).__name__}")
    return evaluate_model(model, data, group_by=group_by, spearman=spearman)
