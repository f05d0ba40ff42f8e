"""The noise floor of a demo compendium in D-GEX evaluation units: each target's best
achievable MAE divided by its training-set sd (:func:`noise_floor_standardized`).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

from ..errors import DatasetError
from ..matrix import ExpressionMatrix
from .data import DemoData

__all__ = ["noise_floor_standardized"]


def noise_floor_standardized(
    data: DemoData, train_samples: Sequence | np.ndarray | pd.Index, *, ddof: int = 0
) -> pd.Series:
    """Each target's noise floor in D-GEX units: ``noise_floor_mae / sd_train``.

    The D-GEX evaluation standardizes every gene with the mean and sd of the training
    samples; an MAE in those units is the original-unit MAE divided by that sd, and so
    is the floor.

    Parameters
    ----------
    data
        The demo compendium.
    train_samples
        The training samples: a boolean mask of length n_samples, integer row
        positions, or sample ids.
    ddof
        Delta degrees of freedom of the sd (0, as :class:`sklearn.preprocessing.StandardScaler`).

    Returns
    -------
    pandas.Series
        The floor of each target (indexed by target id), in standardized units.

    Raises
    ------
    DatasetError
        If the mask has the wrong length, an id is unknown, or fewer than two
        training samples are given.
    """
    rows = _rows(data.matrix, train_samples)
    if rows.size < 2:
        raise DatasetError(f"need at least 2 training samples to compute a standard deviation, got {rows.size}")
    sd = data.target_values[rows].astype(np.float64).std(axis=0, ddof=ddof)
    return pd.Series(data.noise_floor.to_numpy() / sd, index=data.target_ids, name="noise_floor_std")


def _rows(matrix: ExpressionMatrix, samples: Sequence | np.ndarray | pd.Index) -> np.ndarray:
    arr = np.asarray(samples)
    if arr.dtype == bool:
        if arr.shape != (matrix.n_samples,):
            raise DatasetError(f"a boolean sample mask must have length {matrix.n_samples}, got shape {arr.shape}")
        return np.flatnonzero(arr)
    if arr.dtype.kind in "iu":
        if arr.size and (arr.min() < 0 or arr.max() >= matrix.n_samples):
            raise DatasetError(f"sample positions must be in [0, {matrix.n_samples}), got {arr.min()}..{arr.max()}")
        return arr.astype(np.int64)
    return matrix._positions(matrix.sample_ids, list(arr), "sample")
