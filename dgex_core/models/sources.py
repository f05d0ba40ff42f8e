"""Training data fed in sample blocks, from memory, a memory map or an HDF5 file.

A compendium of the D-GEX paper's size (111k samples x 10.5k genes, 4.6 GB as
float32) and beyond need not sit in memory: models read it one block of samples at a
time. :class:`ArraySource` wraps any pair of 2-D arrays that slice by sample range —
numpy arrays, ``np.memmap`` files, ``h5py`` datasets, and the
:class:`~dgex_core.lazy.LazyRows` views of a dataset opened with
``dgex_core.io.open_matrix`` (landmarks and targets of a block are then read in one
pass over the file) — so the same training code runs on all of them.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import numpy as np

from ..errors import ModelError
from ..lazy import LazyRows, block_rows, chunk_starts, read_pair

__all__ = ["ArraySource", "StandardizedRows", "StandardizedSource"]


class ArraySource:
    """Landmarks X (n_samples, n_landmarks) and targets Y (n_samples, n_targets), by blocks.

    Parameters
    ----------
    X, Y
        Arrays, memory maps or h5py datasets with the same number of rows.
    block_size
        Samples per block read at once (contiguous rows, so reads from disk are sequential).
    """

    def __init__(self, X, Y, block_size: int = 8192) -> None:
        if X.shape[0] != Y.shape[0]:
            raise ModelError(f"landmarks have {X.shape[0]} samples but targets have {Y.shape[0]}")
        if X.shape[0] == 0:
            raise ModelError("the training data have no samples")
        self.X, self.Y = X, Y
        self.block_size = int(block_size)
        if not self.in_memory:  # blocks from disk: bounded in bytes, whatever the block_size asked
            self.block_size = max(1, min(self.block_size, block_rows(self.n_landmarks + self.n_targets)))

    @property
    def n_samples(self) -> int:
        return int(self.X.shape[0])

    @property
    def n_landmarks(self) -> int:
        return int(self.X.shape[1])

    @property
    def n_targets(self) -> int:
        return int(self.Y.shape[1])

    @property
    def n_blocks(self) -> int:
        return -(-self.n_samples // self.block_size)

    @property
    def in_memory(self) -> bool:
        return isinstance(self.X, np.ndarray) and not isinstance(self.X, np.memmap)

    @property
    def lazy(self) -> bool:
        return isinstance(self.X, LazyRows)

    def read(self, rows: slice | np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(X, Y) of some samples (a slice or positions), each sample read once."""
        return read_pair(self.X, self.Y, rows)

    def chunk_starts(self, chunk: int) -> np.ndarray:
        """Starts of the runs of samples a shuffled loader reads as units (see :func:`~dgex_core.lazy.chunk_starts`)."""
        return chunk_starts(self.X, chunk)

    def blocks(self, order: Sequence[int] | None = None) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        """Yield (X_block, Y_block) as numpy arrays, blocks in ``order`` (default: in turn)."""
        for b in range(self.n_blocks) if order is None else order:
            sl = slice(b * self.block_size, min((b + 1) * self.block_size, self.n_samples))
            yield self.read(sl)


class StandardizedSource:
    """A view of an :class:`ArraySource` through fitted landmark and target transforms."""

    def __init__(self, source: ArraySource, to_z_landmarks, to_z_targets, dtype=np.float32) -> None:
        self.source = source
        self._fx, self._fy = to_z_landmarks, to_z_targets
        self.dtype = dtype

    n_samples = property(lambda self: self.source.n_samples)
    n_landmarks = property(lambda self: self.source.n_landmarks)
    n_targets = property(lambda self: self.source.n_targets)
    n_blocks = property(lambda self: self.source.n_blocks)
    block_size = property(lambda self: self.source.block_size)

    def chunk_starts(self, chunk: int) -> np.ndarray:
        return self.source.chunk_starts(chunk)

    def blocks(self, order: Sequence[int] | None = None) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        for x, y in self.source.blocks(order):
            yield self._standardize(x, y)

    def read(self, rows: slice | np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Standardized (X, Y) of some samples."""
        return self._standardize(*self.source.read(rows))

    def _standardize(self, x, y):
        if not (np.isfinite(x).all() and np.isfinite(y).all()):
            raise ModelError(
                "the training data have missing (NaN) or infinite values; impute or drop them before training"
            )
        return (np.asarray(self._fx(x), dtype=self.dtype), np.asarray(self._fy(y), dtype=self.dtype))

    def materialize(self) -> tuple[np.ndarray, np.ndarray]:
        """All blocks stacked in memory (for models that need every sample at once, like KNN)."""
        xs, ys = zip(*self.blocks(), strict=True)
        return np.vstack(xs), np.vstack(ys)


class StandardizedRows:
    """Rows of an array (or a lazy view) through a transform, computed when sliced.

    What a model sees as validation targets when they stay on disk: ``rows[a:b]``
    reads those samples and returns them standardized; ``shape`` is that of the source.
    """

    ndim = 2

    def __init__(self, values, transform, dtype=np.float32) -> None:
        self.values, self._f, self.dtype = values, transform, np.dtype(dtype)

    @property
    def shape(self) -> tuple[int, int]:
        return tuple(self.values.shape)  # type: ignore[return-value]

    def __len__(self) -> int:
        return self.shape[0]

    def __getitem__(self, key) -> np.ndarray:
        if isinstance(key, tuple):
            rows, cols = key
            return self[rows][:, cols]
        v = np.asarray(self.values[key])
        if not np.isfinite(v).all():
            raise ModelError("the validation data have missing values (NaN); impute or drop them first")
        return np.asarray(self._f(v), dtype=self.dtype)
