"""Evaluation on a Dask cluster: each block of samples predicted and scored on a worker.

A worker reads its block of landmarks and measured targets (from the file itself when
the dataset is lazy: the file must be on a filesystem every worker sees; shipped by the
client when the data are in memory), predicts it with the model (sent to each worker
once) and returns the block's per-gene sums (:class:`GeneErrorAccumulator`: absolute and
squared errors, the sums behind Pearson r) and per-sample MAE: a few vectors of genes,
not samples x genes. Only Spearman's r, which ranks each gene over all samples, needs
the block's measured and predicted values back at the client (into the gene-block
scratch file, as on one machine); ``spearman=False`` skips it. The client adds the
partial sums in block order, the same additions one machine makes, so the per-gene
metrics equal the one-process ones to rounding.
"""

from __future__ import annotations

import collections
import pickle
from collections.abc import Iterator

import numpy as np

from ..evaluation.metrics import GeneErrorAccumulator, block_scores
from ..lazy import read_pair

__all__ = ["score_block", "score_on_cluster"]


def score_block(model, XY: tuple, rows: slice, positions: np.ndarray, cols: np.ndarray, pcols: np.ndarray,
                scale: np.ndarray, keep: bool):
    """Predict samples ``rows`` of ``XY`` = (landmarks, targets) and score them (runs on a worker).

    Returns ``(sums, per_sample_mae_z, (targets, predictions) or None)``: the block's
    per-gene sums over the ``cols`` of Y against the ``pcols`` of the predictions,
    each sample's MAE in standardized units (``scale``: the targets' training sd), and,
    with ``keep``, the two (n_block, genes) arrays for Spearman's ranks.
    """
    x, y = read_pair(*XY, rows)  # one read of each sample when both view one file
    pred = model.predict_landmarks(x[:, positions]).astype(np.float32, copy=False)
    t, p, per_sample = block_scores(y, pred, cols, pcols, scale)
    return GeneErrorAccumulator(len(cols)).update(t, p), per_sample, ((t, p) if keep else None)


def score_on_cluster(client, model, data, block_size: int, cols: np.ndarray, pcols: np.ndarray,
                     scale: np.ndarray, keep: bool) -> Iterator[tuple[slice, GeneErrorAccumulator, np.ndarray, tuple | None]]:
    """``(rows, sums, per_sample, kept)`` for consecutive blocks of ``data``, in order,
    each computed by :func:`score_block` on ``client``'s workers (two blocks in flight
    per worker, so the client holds a bounded number of results)."""
    positions = model.landmark_positions(data)
    remote_model = client.scatter(model, broadcast=True, hash=False)
    lazy = data.is_lazy
    if lazy:  # the workers open the file themselves (a reader that cannot travel: the client reads)
        try:  # as one object, so that on the worker both views still share their file
            remote_xy = client.scatter([(data.landmarks, data.targets)], broadcast=True, hash=False)[0]
        except (TypeError, AttributeError, pickle.PicklingError):
            lazy = False
    window = 2 * max(1, len(client.scheduler_info().get("workers", {})))
    pending: collections.deque = collections.deque()

    def submit(sl: slice):
        if lazy:
            args = (remote_xy, sl)
        else:
            x, y = data.read_block(sl)
            args = ((x, y), slice(0, x.shape[0]))
        return sl, client.submit(score_block, remote_model, *args, positions, cols, pcols, scale, keep, pure=False)

    try:
        for start in range(0, data.n_samples, block_size):
            pending.append(submit(slice(start, min(start + block_size, data.n_samples))))
            while len(pending) > window:
                sl, fut = pending.popleft()
                yield (sl, *fut.result())
        while pending:
            sl, fut = pending.popleft()
            yield (sl, *fut.result())
    finally:
        for _, fut in pending:
            fut.cancel()
