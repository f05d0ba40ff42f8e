"""AnnData in and out: the scanpy world's samples x genes object as a :class:`Dataset`,
and predictions back as an AnnData.

* :func:`dataset_from_anndata`: ``X`` (or a layer) dense, scipy-sparse CSR / CSC, or
  **backed** (``anndata.read_h5ad(path, backed="r")``: then read by blocks from the file,
  never whole); ``obs`` becomes the sample metadata, ``var`` the gene metadata; gene ids
  are ``var_names`` (or a ``var`` column), sample ids ``obs_names``.
* :func:`dataset_to_anndata`: landmarks and targets side by side, ``var["role"]``.
* :func:`predictions_to_anndata`: measured landmarks + inferred targets of each sample,
  ``obs`` kept, ``var`` carrying ``role`` (``measured`` / ``inferred``) and
  ``well_inferred`` (as ``dgex predict`` writes files).

anndata is imported only here, and only when called.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

from .errors import DatasetError
from .matrix import ExpressionMatrix, Provenance

__all__ = ["dataset_from_anndata", "dataset_to_anndata", "predictions_to_anndata"]


def dense_values(X, what: str) -> np.ndarray:
    """A samples x genes float32 array from a dense or scipy-sparse (CSR / CSC) matrix."""
    import scipy.sparse as sp

    if sp.issparse(X):
        X = X.tocsr() if X.format not in ("csr", "csc") else X
        out = np.empty(X.shape, np.float32)
        step = max(1, 2**24 // max(1, X.shape[1]))  # ~64 MB of float32 a block
        for s in range(0, X.shape[0], step):
            out[s:s + step] = X[s:s + step].toarray()
        return out
    X = np.asarray(X)
    if X.ndim != 2:
        raise DatasetError(f"{what} must be a samples x genes matrix, got shape {X.shape}")
    if X.dtype.kind not in "fiub":
        raise DatasetError(f"{what} holds {X.dtype} values, not numbers")
    return X.astype(np.float32, copy=False)


def matrix_from_anndata(adata, *, layer: str | None = None, gene_id_column: str | None = None) -> ExpressionMatrix:
    """The AnnData's ``X`` (or ``layers[layer]``) as an :class:`ExpressionMatrix` (lazy when backed)."""
    if getattr(adata, "isbacked", False):
        from .io import open_matrix

        return open_matrix(adata.filename, layer=layer, gene_id_column=gene_id_column)
    if layer is not None:
        if layer not in adata.layers:
            raise DatasetError(f"the AnnData has no layer {layer!r}; its layers: {sorted(adata.layers)}")
        X = adata.layers[layer]
    else:
        X = adata.X
    if X is None:
        raise DatasetError("the AnnData has no X; give layer= to read one of its layers")
    var = adata.var.copy()
    genes = adata.var_names
    if gene_id_column is not None:
        if gene_id_column not in var:
            raise DatasetError(f"var has no column {gene_id_column!r}; its columns: {list(var.columns)}")
        var["var_names"] = np.asarray(genes)
        genes = pd.Index(var[gene_id_column].astype(str))
        var.index = genes
    what = f"layers[{layer!r}]" if layer else "X"
    return ExpressionMatrix(dense_values(X, what), adata.obs_names, genes, sample_meta=adata.obs.copy(), gene_meta=var,
                            provenance=Provenance(None, "anndata", notes={"layer": layer} if layer else {}))


def dataset_from_anndata(adata, landmarks, *, layer: str | None = None, targets: Sequence[str] | None = None,
                         gene_id_column: str | None = None, allow_missing: bool = False):
    """A :class:`~dgex_core.dataset.Dataset` from an AnnData (samples x genes).

    ``landmarks`` is a :class:`~dgex_core.landmarks.LandmarkList` or plain ids, matched
    against the gene ids as :meth:`Dataset.from_matrix` does; by default every other
    gene is a target.
    """
    from .dataset import Dataset

    m = matrix_from_anndata(adata, layer=layer, gene_id_column=gene_id_column)
    return Dataset.from_matrix(m, landmarks, targets=targets, allow_missing=allow_missing)


def _writable(frame: pd.DataFrame) -> pd.DataFrame:
    """``frame`` with each object column (strings mixed with missing values or numbers, which
    ``write_h5ad`` refuses) as a categorical of strings, missing values kept missing."""
    out = frame.copy()
    for c in out.columns:
        if out[c].dtype == object:
            col = out[c]
            out[c] = pd.Categorical(col.where(col.isna(), col.astype(str)))
    return out


def dataset_to_anndata(data):
    """A Dataset as an AnnData: ``X`` landmarks then targets (float32), ``obs`` its sample
    metadata, ``var["role"]`` ``landmark`` / ``target`` plus its gene metadata (text columns
    as categoricals, so ``write_h5ad`` takes it)."""
    import anndata as ad

    X = np.hstack([np.asarray(data.landmarks[:], np.float32), np.asarray(data.targets[:], np.float32)])
    genes = data.landmark_ids.append(data.target_ids)
    var = pd.DataFrame({"role": ["landmark"] * data.n_landmarks + ["target"] * data.n_targets},
                       index=pd.Index(genes.astype(str), name=None))
    meta = pd.concat([data.landmark_meta, data.target_meta])
    if len(meta.columns):
        var = var.join(meta.reindex(genes).set_axis(var.index), rsuffix="_meta")
    obs = data.sample_meta.reindex(data.sample_ids).set_axis(pd.Index(data.sample_ids.astype(str)))
    return ad.AnnData(X=X, obs=_writable(obs), var=_writable(var))


def predictions_to_anndata(landmarks: pd.DataFrame, predictions: pd.DataFrame, obs: pd.DataFrame | None,
                           well_inferred: pd.Series | None = None):
    """Measured landmarks and inferred targets (samples x genes, original units) as an
    AnnData with ``var["role"]`` and ``var["well_inferred"]``; ``obs`` kept."""
    import anndata as ad

    X = np.hstack([landmarks.to_numpy(np.float32), predictions.to_numpy(np.float32)])
    genes = landmarks.columns.append(predictions.columns).astype(str)
    well = (pd.Series(False, index=predictions.columns) if well_inferred is None
            else well_inferred.reindex(predictions.columns).fillna(False).astype(bool))
    var = pd.DataFrame({"role": ["measured"] * landmarks.shape[1] + ["inferred"] * predictions.shape[1],
                        "well_inferred": [True] * landmarks.shape[1] + well.tolist()}, index=genes)
    obs = (pd.DataFrame(index=predictions.index.astype(str)) if obs is None
           else obs.reindex(predictions.index).set_axis(predictions.index.astype(str)))
    return ad.AnnData(X=X, obs=_writable(obs), var=var)
