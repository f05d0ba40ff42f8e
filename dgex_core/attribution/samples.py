"""The samples a run is explained on: a part of its own split, or every sample of a dataset."""

from __future__ import annotations

import numpy as np
import pandas as pd

from ..dataset import Dataset
from ..errors import DatasetError
from ..store import Run
from ..training import run_split

__all__ = ["SAMPLE_SETS", "explain_samples"]


#: The sample sets a run can be explained on, with their labels.
SAMPLE_SETS = {"test": "test samples (held out)", "val": "validation samples", "train": "training samples",
               "all": "all samples of the current dataset"}


def explain_samples(run: Run, data: Dataset, which: str = "test", max_samples: int | None = 2000,
                    seed: int = 0) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Landmarks of the samples to explain ``run`` on, and their metadata.

    Parameters
    ----------
    which
        ``"test"``, ``"val"`` or ``"train"``: that part of the run's own split of
        ``data`` (checked to be the run's, see :func:`run_split`); ``"all"``: every
        sample of ``data``, which may be another dataset with the run's landmarks.
    max_samples
        At most this many samples, a seeded random subset (None: all).

    Samples with a missing or infinite value in one of the run's landmarks are left
    out (attributions are defined on measured profiles); ``landmarks.attrs["n_incomplete"]``
    says how many.

    Returns
    -------
    landmarks
        Samples x the run's landmarks (``landmark_ids_`` order, matched by id), original units.
    sample_meta
        Their metadata (same index).

    Raises
    ------
    DatasetError
        If ``data`` is not the run's dataset (for a split part) or lacks its landmarks.
    """
    if which not in SAMPLE_SETS:
        raise ValueError(f"which must be one of {list(SAMPLE_SETS)}, got {which!r}")
    part = data if which == "all" else getattr(run_split(run, data), which)
    want = run.model.landmark_ids_
    pos = part.landmark_ids.get_indexer(want)
    if (pos < 0).any():
        raise DatasetError(f"the current dataset lacks {int((pos < 0).sum())} of run {run.name!r}'s landmarks, "
                           f"e.g. {want[pos < 0][:5].tolist()}: load the run's dataset (the Data page; "
                           "--data on the command line)")
    if part.n_samples == 0:
        raise DatasetError(f"run {run.name!r} has no {SAMPLE_SETS[which]}: choose another sample set")
    complete = np.isfinite(part.landmarks[:, pos]).all(axis=1)
    rows = np.flatnonzero(complete)
    if not rows.size:
        raise DatasetError(f"every one of the {SAMPLE_SETS[which]} misses some of run {run.name!r}'s landmark values")
    if max_samples is not None and rows.size > max_samples:
        rows = np.sort(np.random.default_rng(seed).choice(rows, int(max_samples), replace=False))
    X = pd.DataFrame(part.landmarks[rows][:, pos], index=part.sample_ids[rows], columns=want)
    X.attrs["n_incomplete"] = int((~complete).sum())
    return X, part.sample_meta.iloc[rows]
