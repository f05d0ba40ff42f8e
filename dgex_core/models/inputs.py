"""What a model's ``fit`` and ``predict`` accept, turned into what they work on.

``fit`` takes a :class:`~dgex_core.dataset.Dataset`; an AnnData (with ``var["role"]``
saying ``landmark`` / ``target``, as :meth:`Dataset.to_anndata` writes, or a second
AnnData of targets); or scikit-learn style ``X`` (samples x landmarks) and ``Y``
(samples x targets, or one target as a 1-D array), as arrays, scipy-sparse matrices or
DataFrames whose columns are gene ids. Arrays are checked as scikit-learn checks them
(:func:`sklearn.utils.validation.validate_data`: numbers, finite, 2-D, at least one
sample), which also sets ``n_features_in_`` and ``feature_names_in_``.

When a family needs validation samples (early stopping, a grid of settings) and none are
given, a seeded tenth of the training samples is held out for it.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from ..errors import ModelError

__all__ = ["VALIDATION_FRACTION", "as_training_data", "is_anndata"]

#: Share of the training samples held out when validation samples are needed and none given.
VALIDATION_FRACTION = 0.1


def is_anndata(x) -> bool:
    return type(x).__name__ == "AnnData" and hasattr(x, "obs") and hasattr(x, "var_names")


def _dense(a) -> np.ndarray:
    from ..adata import dense_values

    return dense_values(a, "X")


def _from_arrays(model, X, Y):
    """(Dataset, y_was_1d) from scikit-learn style X and Y, validated as scikit-learn does."""
    from sklearn.utils.validation import validate_data

    from ..dataset import Dataset

    index = X.index.astype(str) if isinstance(X, pd.DataFrame) else None
    tnames = ([str(c) for c in Y.columns] if isinstance(Y, pd.DataFrame)
              else [str(Y.name)] if isinstance(Y, pd.Series) and Y.name is not None else None)
    Xa, Ya = validate_data(model, X, Y, accept_sparse=("csr", "csc"), multi_output=True, y_numeric=True,
                           dtype=(np.float64, np.float32))
    Xa, Ya = _dense(Xa), np.asarray(Ya)
    one_d = Ya.ndim == 1
    Ya = Ya.reshape(-1, 1) if one_d else Ya
    lnames = [str(c) for c in getattr(model, "feature_names_in_", [f"x{i}" for i in range(Xa.shape[1])])]
    if tnames is None or len(tnames) != Ya.shape[1]:
        tnames = [f"y{j}" for j in range(Ya.shape[1])]
    if set(lnames) & set(tnames):  # a target may share a landmark's column name: keep them apart
        tnames = [f"target:{t}" for t in tnames]
    samples = index if index is not None else pd.Index([f"s{i}" for i in range(Xa.shape[0])])
    ds = Dataset(Xa, np.asarray(Ya, Xa.dtype), lnames, tnames, samples)
    return ds, one_d


def _from_anndata(adata, Y):
    from ..dataset import Dataset

    if Y is not None:
        if not is_anndata(Y):
            raise ModelError("with an AnnData of landmarks, give the targets as an AnnData too")
        if not adata.obs_names.equals(Y.obs_names):
            raise ModelError("the landmark and target AnnData objects must list the same samples (obs_names), "
                             "in the same order")
        import anndata as ad

        both = ad.concat([adata, Y], axis=1, merge="first")
        both.var["role"] = ["landmark"] * adata.n_vars + ["target"] * Y.n_vars
        adata = both
    if "role" not in adata.var:
        raise ModelError("the AnnData does not say which genes are landmarks: give var['role'] ('landmark' / "
                         "'target'), fit(X_landmarks, Y_targets), or Dataset.from_anndata(adata, landmarks)")
    role = adata.var["role"].astype(str)
    lm, tg = adata.var_names[role == "landmark"], adata.var_names[role == "target"]
    if not len(lm) or not len(tg):
        raise ModelError(f"var['role'] names {len(lm)} landmarks and {len(tg)} targets; both are needed")
    return Dataset.from_anndata(adata, list(lm), targets=list(tg))


def as_training_data(model, X, Y=None, val=None):
    """(train Dataset, validation Dataset or None, y_was_1d) for ``model.fit(X, Y, val)``."""
    from ..dataset import Dataset

    one_d = False
    if isinstance(X, Dataset):
        if Y is not None:
            raise ModelError("a Dataset holds its targets: call fit(dataset, val=...) without Y")
        train = X
    elif is_anndata(X):
        train = _from_anndata(X, Y)
    else:
        train, one_d = _from_arrays(model, X, Y)
        if val is not None and not isinstance(val, Dataset):
            Xv, Yv = val
            Xv = _dense(Xv.to_numpy() if isinstance(Xv, pd.DataFrame) else Xv)
            Yv = np.asarray(Yv.to_numpy() if isinstance(Yv, (pd.DataFrame, pd.Series)) else Yv)
            Yv = Yv.reshape(-1, 1) if Yv.ndim == 1 else Yv
            val = Dataset(np.asarray(Xv, train.landmarks.dtype), np.asarray(Yv, train.landmarks.dtype),
                          train.landmark_ids, train.target_ids, [f"v{i}" for i in range(len(Xv))])
    if is_anndata(val):
        val = Dataset.from_anndata(val, list(train.landmark_ids), targets=list(train.target_ids))
    if val is None and model._needs_validation():
        train, val = hold_out(train, getattr(model, "seed", 0))
    return train, val, one_d


def hold_out(train, seed: int = 0):
    """Split a seeded :data:`VALIDATION_FRACTION` of ``train`` off as validation samples."""
    n = train.n_samples
    if n < 2:
        raise ModelError(f"{n} sample given: choosing settings on validation samples needs at least 2 "
                         "(n_samples = 1 cannot be split); give more samples or val=")
    n_val = max(1, round(VALIDATION_FRACTION * n))
    perm = np.random.default_rng(seed).permutation(n)
    return train.subset(np.sort(perm[n_val:])), train.subset(np.sort(perm[:n_val]))
