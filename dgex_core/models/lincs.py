"""The published LINCS linear model as a dgex linear run.

LINCS infers its 11,350 (of ~12k) genes from the 978 landmarks with an OLS model
trained on GEO microarrays and publishes its weights as a GCTX:
``GSE92743_Broad_OLS_WEIGHTS_n979x11350.gctx`` (978 landmarks + 1 intercept on one
axis, 11,350 inferred genes on the other, Entrez ids). :func:`import_linear_weights`
reads such a table (any format :func:`dgex_core.io.read` reads), finds which axis
holds the landmarks by the intercept's id — never by position or shape — and returns
a :class:`LinearModel` that predicts, evaluates, explains and exports like one
trained here.

The published weights are in the data's own units (log2 expression). With a
``reference`` dataset (for example the user's training set), the model's
standardization is taken from it, so per-gene errors come out in the same
standardized units as a model trained here and its coefficients can be shown in
standardized units; its predictions do not change.
"""

from __future__ import annotations

import os

import numpy as np
import pandas as pd

from ..dataset import Dataset
from ..errors import DataFormatError
from ..preprocess import Pipeline, Standardizer
from .linear import LinearModel

__all__ = ["INTERCEPT_IDS", "import_linear_weights", "linear_model_from_weights"]

#: Ids that name the intercept row/column of a published weight matrix (case-insensitive).
INTERCEPT_IDS = ("offset", "intercept", "(intercept)", "const", "constant", "bias", "b0", "_intercept")


def _identity(n: int) -> Standardizer:
    return Standardizer.from_state({"n_constant": 0}, {"mean": np.zeros(n), "scale": np.ones(n)})


def _find_intercept(ids: pd.Index) -> int | None:
    low = [str(i).strip().lower() for i in ids]
    hits = [i for i, v in enumerate(low) if v in INTERCEPT_IDS]
    return hits[0] if len(hits) == 1 else None


def linear_model_from_weights(
    weights: pd.DataFrame, intercept: pd.Series, reference: Dataset | None = None, source: str = "memory"
) -> LinearModel:
    """A fitted :class:`LinearModel` from weights in original units.

    Parameters
    ----------
    weights
        landmarks x targets, indexed by landmark id, columns target ids.
    intercept
        Per target (indexed by target id).
    reference
        Optional dataset whose landmark and target statistics set the model's
        standardized units (its landmarks must include the model's).
    """
    W = weights.to_numpy(np.float64)
    b = intercept.reindex(weights.columns).to_numpy(np.float64)
    m = LinearModel()
    m.landmark_ids_ = pd.Index([str(i) for i in weights.index], dtype=object)
    m.target_ids_ = pd.Index([str(i) for i in weights.columns], dtype=object)
    m.n_train_ = 0
    m.alpha_, m.alpha_scores_ = 0.0, {}
    if reference is None:
        xs, ys = _identity(W.shape[0]), _identity(W.shape[1])
    else:
        lpos = reference.landmark_ids.get_indexer(m.landmark_ids_)
        if (lpos < 0).any():
            raise DataFormatError(source, "landmark ids", f"{int((lpos < 0).sum())} landmarks of the weights are "
                                  "absent from the reference dataset", "a reference with every landmark")
        xs = Standardizer().fit(reference.landmarks[:, lpos])
        tpos = reference.target_ids.get_indexer(m.target_ids_)
        ys = _identity(W.shape[1])
        if (tpos >= 0).all():
            ys = Standardizer().fit(reference.targets[:, tpos])
    m.input_pipeline_ = Pipeline([xs])
    m.input_pipeline_.fitted_ = True
    m.target_scaler_ = ys
    # y = b + x W  ==  muy + sy * (b_z + ((x - mux)/sx) W_z)
    m.coef_ = W * xs.scale_[:, None] / ys.scale_[None, :]
    m.intercept_ = (b + xs.mean_ @ W - ys.mean_) / ys.scale_
    m.source_ = source
    return m


def import_linear_weights(path: str | os.PathLike, reference: Dataset | None = None) -> LinearModel:
    """Read a published linear model (e.g. the LINCS OLS weights GCTX) as a fitted :class:`LinearModel`.

    The axis holding an intercept id (:data:`INTERCEPT_IDS`, e.g. ``OFFSET``) is the
    landmark axis; the other holds the inferred genes.

    Raises
    ------
    DataFormatError
        If no axis, or both, carry exactly one intercept id.
    """
    from ..io import read

    m = read(path)
    # ExpressionMatrix rows = file columns ("samples"), columns = file rows ("genes")
    on_rows, on_cols = _find_intercept(m.sample_ids), _find_intercept(m.gene_ids)
    if (on_rows is None) == (on_cols is None):
        raise DataFormatError(
            path, "row and column ids",
            "cannot tell which axis holds the landmarks: " + ("no" if on_rows is None else "both") +
            " axes carry an intercept id",
            f"exactly one axis with one of {INTERCEPT_IDS} among landmark ids",
        )
    frame = m.to_frame("samples_x_genes")  # file columns x file rows
    if on_cols is not None:
        frame = frame.T
        icpt = on_cols
    else:
        icpt = on_rows
    intercept = frame.iloc[icpt]
    weights = frame.drop(index=frame.index[icpt])
    if weights.isna().to_numpy().any():
        raise DataFormatError(path, "matrix", "missing weights", "a weight for every landmark and gene")
    return linear_model_from_weights(weights, intercept, reference, str(path))
