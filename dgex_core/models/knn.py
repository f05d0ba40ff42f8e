"""KNN-GE, the D-GEX paper's other baseline: the mean target profile of the k nearest
training samples in standardized landmark space.

Distances are computed in blocks by matrix products (``|q|^2 - 2 q.x + |x|^2``), for a
block of query samples against a block of training samples at a time, keeping a
running top-``k`` per query: no query x training matrix is ever held whole. Choosing
k from a grid takes one pass: the nearest ``k_max`` neighbours are found once, sorted
by distance, and the predictions for every k of the grid come from running sums of
their target profiles.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
import weakref
from collections.abc import Iterator, Sequence
from pathlib import Path

import numpy as np

from ..errors import ModelError
from ..lazy import NpyRows
from .base import Model, Progress
from .persist import register

#: The file a saved KNN-GE model keeps its standardized training targets in when they
#: were streamed from disk (samples x targets, float32, read by rows, never loaded whole).
TARGETS_FILE = "Y_train.npy"
#: Likewise for the training landmarks (samples x landmarks, float32), read a block at a
#: time by the neighbour search, so that memory does not grow with the training set.
LANDMARKS_FILE = "X_train.npy"

#: Training rows per distance block when the landmarks are read from disk (each block is
#: read once per query block, so query blocks are larger there to amortize the reads).
DISK_TRAIN_BLOCK, DISK_QUERY_BLOCK = 8192, 2048

#: Validation queries whose neighbour sums are held at once while k is chosen.
SCORE_ROWS = 256


def _scratch_dir() -> Path:
    """Where training targets wait until the model is saved (beside the matrix caches, not in /tmp,
    which is memory on some systems)."""
    from ..io.cache import cache_dir

    root = Path(os.environ.get("DGEX_TMPDIR") or cache_dir().parent / "tmp")
    root.mkdir(parents=True, exist_ok=True)
    return root

__all__ = ["DEFAULT_K_GRID", "KNNModel", "nearest_neighbours"]

#: Default grid of k chosen from on the validation set.
DEFAULT_K_GRID = (1, 3, 5, 10, 20, 40)


def _row_standardize(X: np.ndarray) -> np.ndarray:
    """Center and scale each sample (row) so Euclidean distance is 2 - 2 Pearson r."""
    Xc = X - X.mean(axis=1, keepdims=True)
    norm = np.sqrt((Xc * Xc).sum(axis=1, keepdims=True))
    return Xc / np.where(norm > 0, norm, 1)


def _rows(X, start: int, stop: int) -> np.ndarray:
    """Rows ``start..stop`` of an array or an on-disk :class:`NpyRows` (read, not mapped)."""
    if isinstance(X, np.ndarray):
        return X[start:stop]
    return X._slice(start, min(stop, X.shape[0]), None)


def nearest_neighbours(
    Q: np.ndarray,
    X,
    k: int,
    query_block: int = 1024,
    train_block: int = 32768,
) -> Iterator[tuple[slice, np.ndarray, np.ndarray]]:
    """The ``k`` nearest rows of ``X`` for each row of ``Q`` (squared Euclidean), by blocks.

    ``X`` (n_train, n_landmarks) is an array or a sample-major :class:`NpyRows` file,
    read one training block at a time. Yields ``(query_slice, indices, sq_distances)``
    per query block, both (n_block, k), sorted by distance (ties by training index, so
    results are deterministic). Memory: one (query_block x train_block) float distance
    block and the running (query_block x k) best, never a query x training matrix.
    """
    n = X.shape[0]
    k = min(k, n)
    x_sq = np.empty(n, dtype=X.dtype)
    for ts in range(0, n, train_block):
        xb = _rows(X, ts, ts + train_block)
        x_sq[ts:ts + xb.shape[0]] = np.einsum("ij,ij->i", xb, xb)
    for qs in range(0, Q.shape[0], query_block):
        q = Q[qs:qs + query_block]
        best_d = best_i = None
        for ts in range(0, n, train_block):
            xb = _rows(X, ts, ts + train_block)
            # |x|^2 - 2 q.x ranks neighbours like the full distance (|q|^2 is added at the end)
            d = q @ xb.T
            d *= -2
            d += x_sq[None, ts:ts + xb.shape[0]]
            kb = 0 if best_d is None else best_d.shape[1]
            cand = d if best_d is None else np.concatenate([best_d, d], axis=1)
            if cand.shape[1] > k:
                pos = np.argpartition(cand, k - 1, axis=1)[:, :k]
            else:
                pos = np.broadcast_to(np.arange(cand.shape[1]), cand.shape)
            # positions < kb are the running best, the others this block's (training index ts + pos - kb)
            new_i = pos + (ts - kb)
            if kb:
                old = pos < kb
                new_i = np.where(old, np.take_along_axis(best_i, np.minimum(pos, kb - 1), axis=1), new_i)
            best_d = np.take_along_axis(cand, pos, axis=1)
            best_i = np.ascontiguousarray(new_i)
        order = np.lexsort((best_i, best_d), axis=1)
        q_sq = np.einsum("ij,ij->i", q, q)
        dist = np.take_along_axis(best_d, order, axis=1) + q_sq[:, None]
        yield slice(qs, qs + q.shape[0]), np.take_along_axis(best_i, order, axis=1), np.maximum(dist, 0)


@register
class KNNModel(Model):
    """KNN-GE: average the targets of the k training samples nearest in landmark space.

    Parameters
    ----------
    k
        Neighbours to average. Ignored when ``k_grid`` is given.
    k_grid
        Values of k to choose from on the validation set (lowest mean per-gene MAE);
        ``"auto"`` uses :data:`DEFAULT_K_GRID`.
    metric
        ``"euclidean"`` in standardized landmark space, or ``"correlation"``
        (1 - Pearson r between samples' landmark profiles).
    input_transform
        Landmark preprocessing before standardization.
    query_block, train_block
        Block sizes of the distance computation (memory ~ query_block x train_block).

    Attributes
    ----------
    k_ : int
        The k used.
    k_scores_ : dict
        Validation mean per-gene MAE (standardized units) for each k of the grid.
    """

    family = "knn"

    def __init__(
        self,
        k: int = 10,
        k_grid: Sequence[int] | str | None = None,
        metric: str = "euclidean",
        input_transform: str = "none",
        query_block: int = 512,
        train_block: int = 32768,
    ) -> None:
        super().__init__(input_transform)
        self.k = k
        self.k_grid = k_grid
        self.metric = metric
        self.query_block = query_block
        self.train_block = train_block

    def check_params(self) -> None:
        super().check_params()
        if self.metric not in ("euclidean", "correlation"):
            raise ModelError(f"metric must be 'euclidean' or 'correlation', got {self.metric!r}")
        self._grid()

    def _needs_validation(self) -> bool:
        return self.k_grid is not None

    def _space(self, Xz: np.ndarray) -> np.ndarray:
        return _row_standardize(Xz) if self.metric == "correlation" else Xz

    def _fit_standardized(self, source, Xv, Yv, progress: Progress) -> None:
        if getattr(source.source, "in_memory", True):
            Xz, Yz = source.materialize()
            self.X_train_ = np.ascontiguousarray(self._space(Xz))
            self.Y_train_ = np.ascontiguousarray(Yz)
        else:  # streamed: landmarks and targets to sample-major files, read by blocks / neighbour rows
            self.X_train_, self.Y_train_ = self._stream_training(source, progress)
            Xz = self.X_train_
        grid = self._grid()
        if grid is None:
            self.k_, self.k_scores_ = int(min(self.k, Xz.shape[0])), {}
            progress(1, 1, {"k": self.k_})
            return
        if Xv is None or Yv is None:
            raise ModelError("choosing k from a grid needs a validation set; pass val= or a single k")
        grid = sorted({min(int(k), Xz.shape[0]) for k in grid})
        abs_err = {k: np.zeros(self.Y_train_.shape[1]) for k in grid}
        n_blocks = -(-Xv.shape[0] // self.query_block)
        for b, (sl, idx) in enumerate(self._neighbours(Xv, grid[-1])):
            # running neighbour sums by sub-blocks of queries: memory ~ SCORE_ROWS x targets
            for r0 in range(0, idx.shape[0], SCORE_ROWS):
                ii = idx[r0:r0 + SCORE_ROWS]
                acc = np.zeros((ii.shape[0], self.Y_train_.shape[1]), dtype=np.float64)
                yv = np.asarray(Yv[sl.start + r0:sl.start + r0 + ii.shape[0]], dtype=np.float64)
                for j in range(grid[-1]):
                    acc += self.Y_train_[ii[:, j]]
                    if j + 1 in abs_err:
                        abs_err[j + 1] += np.abs(acc / (j + 1) - yv).sum(axis=0)
            progress(b + 1, n_blocks, {"stage": "scoring k on validation"})
        self.k_scores_ = {k: float((abs_err[k] / Xv.shape[0]).mean()) for k in grid}
        self.k_ = min(self.k_scores_, key=self.k_scores_.get)

    def _stream_training(self, source, progress: Progress) -> tuple[NpyRows, NpyRows]:
        stores = []
        for name, width in (("landmarks", source.n_landmarks), ("targets", source.n_targets)):
            fd, tmp = tempfile.mkstemp(prefix=f"knn-{name}-", suffix=".npy", dir=_scratch_dir())
            os.close(fd)
            store = NpyRows.create(tmp, (source.n_samples, width), np.float32)
            # a scratch file: removed when the model goes, or at exit, unless the model is saved first
            store.cleanup = weakref.finalize(self, _remove_file, tmp)
            stores.append(store)
        X, Y = stores
        start = 0
        for b, (xb, yb) in enumerate(source.blocks()):
            X.write_rows(start, self._space(xb))
            Y.write_rows(start, yb)
            start += xb.shape[0]
            progress(b + 1, source.n_blocks, {"stage": "storing training landmarks and targets"})
        return X, Y

    def _save_files(self, folder: Path) -> None:
        for store, name in ((self.X_train_, LANDMARKS_FILE), (self.Y_train_, TARGETS_FILE)):
            if isinstance(store, NpyRows):
                _store_into(store, Path(folder) / name)

    def _grid(self) -> list[int] | None:
        if self.k_grid is None:
            return None
        if isinstance(self.k_grid, str):
            if self.k_grid != "auto":
                raise ModelError(f"k_grid must be a list of integers or 'auto', got {self.k_grid!r}")
            return list(DEFAULT_K_GRID)
        if len(self.k_grid) == 0 or min(self.k_grid) < 1:
            raise ModelError(f"k_grid must hold positive integers, got {self.k_grid!r}")
        return [int(k) for k in self.k_grid]

    def _blocks(self) -> tuple[int, int]:
        """(query_block, train_block) of the neighbour search for where the landmarks are."""
        if isinstance(self.X_train_, NpyRows):
            return max(self.query_block, DISK_QUERY_BLOCK), min(self.train_block, DISK_TRAIN_BLOCK)
        return self.query_block, self.train_block

    def _neighbours(self, Xz_query: np.ndarray, k: int):
        """``(query_slice, indices)`` of the ``k`` nearest training samples, per block of
        queries: here, or per partition of the training samples on the current Dask cluster."""
        from ..distributed import current_client

        Q = self._space(np.asarray(Xz_query, dtype=self.X_train_.dtype))
        client = current_client()
        if client is not None:
            from ..distributed.neighbours import neighbours_on_cluster

            search = neighbours_on_cluster(client, Q, self.X_train_, k, *self._blocks())
        else:
            search = nearest_neighbours(Q, self.X_train_, k, *self._blocks())
        for sl, idx, _ in search:
            yield sl, idx

    def _predict_standardized(self, Xz: np.ndarray) -> np.ndarray:
        out = np.empty((Xz.shape[0], self.Y_train_.shape[1]), dtype=self.Y_train_.dtype)
        for sl, idx in self._neighbours(Xz, self.k_):
            acc = self.Y_train_[idx[:, 0]].copy()
            for j in range(1, self.k_):
                acc += self.Y_train_[idx[:, j]]
            acc /= self.k_
            out[sl] = acc
        return out

    def kneighbors(self, landmarks: np.ndarray, k: int | None = None) -> tuple[np.ndarray, np.ndarray]:
        """Indices into the training set and distances of the nearest ``k`` (default ``k_``)
        training samples, each (n_samples, k), for landmarks in original units."""
        self._check_fitted()
        k = k or self.k_
        Q = self._space(self.standardize_landmarks(landmarks).astype(self.X_train_.dtype, copy=False))
        idx, dist = [], []
        for _, i, d in nearest_neighbours(Q, self.X_train_, k, *self._blocks()):
            idx.append(i)
            dist.append(np.sqrt(d))
        return np.vstack(idx), np.vstack(dist)

    def _state(self):
        arrays = {}
        if not isinstance(self.X_train_, NpyRows):
            arrays["X_train"] = self.X_train_
        if not isinstance(self.Y_train_, NpyRows):
            arrays["Y_train"] = self.Y_train_
        return ({"k": self.k_, "k_scores": {str(k): v for k, v in self.k_scores_.items()},
                 "landmarks_file": LANDMARKS_FILE if isinstance(self.X_train_, NpyRows) else None,
                 "targets_file": TARGETS_FILE if isinstance(self.Y_train_, NpyRows) else None}, arrays)

    def _set_state(self, params, arrays):
        self.k_ = int(params["k"])
        self.k_scores_ = {int(k): v for k, v in params.get("k_scores", {}).items()}
        self.X_train_ = self._saved(params, arrays, "landmarks_file", "X_train")
        self.Y_train_ = self._saved(params, arrays, "targets_file", "Y_train")
        if self.Y_train_.shape[1] != len(self.target_ids_) or self.X_train_.shape[1] != len(self.landmark_ids_):
            raise ModelError("saved training arrays do not match the saved gene lists")

    def _saved(self, params: dict, arrays: dict, file_key: str, array_key: str):
        """A saved training array: in the model's arrays, or a file of its own in the run folder."""
        name = params.get(file_key)
        if not name:
            return arrays[array_key]
        path = Path(getattr(self, "_folder", ".")) / str(name)
        if Path(name).name != name or not path.exists():
            raise ModelError(f"the saved KNN-GE model's file {name!r} is missing from {path.parent}; "
                             "the run folder is incomplete: train the model again")
        return NpyRows(path)


def _store_into(store: NpyRows, dest: Path) -> None:
    """Put an on-disk training array into a run folder: move the model's own scratch
    file there, or copy another (through the open descriptor: its folder may have moved)."""
    cleanup = getattr(store, "cleanup", None)
    if cleanup is not None and cleanup.alive:  # the model's own scratch file: move it into the run
        os.replace(store.path, dest)
        store.path = dest
        cleanup.detach()
        return
    with open(dest, "wb") as out:
        size, off = os.fstat(store._fd).st_size, 0
        while off < size:
            chunk = os.pread(store._fd, min(1 << 24, size - off), off)
            if not chunk:
                break
            out.write(chunk)
            off += len(chunk)


def _remove_file(path: str) -> None:
    with contextlib.suppress(OSError):
        os.unlink(path)
