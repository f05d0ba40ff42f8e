"""Matrices that stay on disk and are read by blocks of samples: the streaming layer.

A :class:`LazyMatrix` is a **samples x genes** matrix whose ids and metadata sit in
memory (small) while the values stay in their file (a GCTX, an HDF5 dataset, an
h5ad ``X``, an ARCHS4 count matrix, or dgex's own sample-major cache). It reads any
set of samples and genes on demand (``read(rows, cols)``), so memory is bounded by
the block asked for, never by the number of samples in the file.

:class:`LazyRows` is a view of some samples x some genes of a lazy matrix (what a
:class:`~dgex_core.dataset.Dataset` holds for its landmarks and targets once built
from a lazy matrix): subsetting and splitting compose index arrays and read nothing;
``view[rows]`` reads. :func:`read_pair` reads the landmarks and targets of the same
samples in one pass over the file.

Block sizes are set in bytes (:data:`BLOCK_BYTES`, ``$DGEX_BLOCK_MB``), so a block of
a 22,000-gene file holds ~1,500 samples and one of a 978-landmark file ~34,000.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

import numpy as np
import pandas as pd

from .backends import BLOCK_BYTES, Backend, MemoryBackend, NpyRows, block_rows
from .errors import DatasetError
from .matrix import ExpressionMatrix, Provenance

__all__ = [
    "BLOCK_BYTES",
    "LazyMatrix",
    "LazyRows",
    "NpyRows",
    "block_rows",
    "is_lazy",
    "read_pair",
    "sample_positions",
]


def sample_positions(n: int, k: int) -> np.ndarray:
    """At most ``k`` evenly spaced positions in ``range(n)`` (sorted, unique)."""
    if n <= k:
        return np.arange(n)
    return np.unique(np.linspace(0, n - 1, k).round().astype(np.int64))


# ====================================================================== matrix
class LazyMatrix:
    """A samples x genes matrix read from disk on demand, with ids and metadata in memory.

    Parameters
    ----------
    backend
        What reads the values (see the ``Backend`` classes).
    sample_ids, gene_ids
        Unique ids along each axis.
    sample_meta, gene_meta
        Metadata frames indexed by the ids (optional).
    provenance
        Where the values come from.
    row_transform
        Optional function applied to every block of **whole rows** (all genes) after
        reading, e.g. counts -> log2(CPM + 1), which needs each sample's total.
    """

    def __init__(self, backend: Backend, sample_ids, gene_ids, sample_meta: pd.DataFrame | None = None,
                 gene_meta: pd.DataFrame | None = None, provenance: Provenance | None = None,
                 row_transform: Callable[[np.ndarray], np.ndarray] | None = None) -> None:
        # ids and metadata validated by ExpressionMatrix on a zero-memory stand-in for the values
        shape = backend.shape
        em = ExpressionMatrix(np.broadcast_to(np.zeros((), np.float32), shape), sample_ids, gene_ids,
                              sample_meta, gene_meta, provenance)
        self.backend = backend
        self.sample_ids, self.gene_ids = em.sample_ids, em.gene_ids
        self.sample_meta, self.gene_meta = em.sample_meta, em.gene_meta
        self.provenance = em.provenance
        self.row_transform = row_transform

    # ------------------------------------------------------------- shape
    @property
    def shape(self) -> tuple[int, int]:
        return self.backend.shape

    @property
    def n_samples(self) -> int:
        return self.backend.shape[0]

    @property
    def n_genes(self) -> int:
        return self.backend.shape[1]

    @property
    def dtype(self) -> np.dtype:
        return np.dtype(np.float32) if self.row_transform is not None else self.backend.dtype

    @property
    def in_memory(self) -> bool:
        return self.backend.in_memory and self.row_transform is None

    def __repr__(self) -> str:
        src = self.provenance.path or self.provenance.format
        return f"<LazyMatrix {self.n_samples} samples x {self.n_genes} genes, {self.dtype}, from {src}>"

    # ------------------------------------------------------------- values
    def read(self, rows: np.ndarray | slice | None = None, cols: np.ndarray | None = None) -> np.ndarray:
        """Values (len(rows), len(cols)) at sample and gene positions (None: all)."""
        if rows is None:
            rows = np.arange(self.n_samples)
        elif isinstance(rows, slice):
            rows = np.arange(self.n_samples)[rows]
        cols = None if cols is None else np.asarray(cols, dtype=np.int64)
        if self.row_transform is None:
            return self.backend.read(rows, cols)
        # the transform needs whole rows (all genes): read, transform and select them by blocks,
        # so a few genes of many samples never hold many samples x all genes at once
        step = block_rows(max(self.n_genes, 1), itemsize=8)  # transforms work in float64
        if rows.size <= step:  # one block: no copy into a result
            full = self.row_transform(self.backend.read(rows, None))
            return full if cols is None else full[:, cols]
        out = None
        for s in range(0, rows.size, step):
            part = self.row_transform(self.backend.read(rows[s:s + step], None))
            part = part if cols is None else part[:, cols]
            if out is None:
                out = np.empty((rows.size, part.shape[1]), dtype=part.dtype)
            out[s:s + part.shape[0]] = part
        return out

    def iter_blocks(self, block_size: int | None = None, cols: np.ndarray | None = None
                    ) -> Iterator[tuple[slice, np.ndarray]]:
        """``(sample_slice, values)`` for consecutive blocks of samples."""
        n_cols = self.n_genes if cols is None else len(cols)
        bs = block_size or block_rows(max(n_cols, 1))
        for s in range(0, self.n_samples, bs):
            sl = slice(s, min(s + bs, self.n_samples))
            yield sl, self.read(sl, cols)

    def with_row_transform(self, fn: Callable[[np.ndarray], np.ndarray], description: str) -> LazyMatrix:
        """The same matrix with ``fn`` applied to whole sample rows on reading (recorded)."""
        prev = self.row_transform
        chained = fn if prev is None else (lambda x: fn(prev(x)))
        return LazyMatrix(self.backend, self.sample_ids, self.gene_ids, self.sample_meta, self.gene_meta,
                          self.provenance.with_transform(description), chained)

    def with_recorded(self, description: str) -> LazyMatrix:
        """The same values with ``description`` recorded in the provenance: a choice that
        changes nothing, such as values taken as they are (``AS_GIVEN``)."""
        return LazyMatrix(self.backend, self.sample_ids, self.gene_ids, self.sample_meta, self.gene_meta,
                          self.provenance.with_transform(description), self.row_transform)

    def with_sample_meta(self, meta: pd.DataFrame) -> LazyMatrix:
        return LazyMatrix(self.backend, self.sample_ids, self.gene_ids, meta, self.gene_meta, self.provenance,
                          self.row_transform)

    def to_memory(self) -> ExpressionMatrix:
        """Everything read into an :class:`ExpressionMatrix` (mind the size)."""
        return ExpressionMatrix(self.read(), self.sample_ids, self.gene_ids, self.sample_meta, self.gene_meta,
                                self.provenance)

    def close(self) -> None:
        self.backend.close()

    @classmethod
    def from_matrix(cls, m: ExpressionMatrix) -> LazyMatrix:
        """An in-memory matrix behind the same interface (no copy)."""
        return cls(MemoryBackend(m.values), m.sample_ids, m.gene_ids, m.sample_meta, m.gene_meta, m.provenance)


def is_lazy(a) -> bool:
    return isinstance(a, LazyRows)


# ====================================================================== views
class LazyRows:
    """Some samples x some genes of a :class:`LazyMatrix`; reading happens on indexing.

    Behaves like a read-only 2-D array for what dgex needs: ``shape``, ``dtype``,
    ``view[rows]`` / ``view[rows, cols]`` (slices, integer or boolean arrays) return
    numpy arrays; :meth:`take` and :meth:`select` return new views without reading;
    ``np.asarray(view)`` reads everything.
    """

    ndim = 2

    def __init__(self, matrix: LazyMatrix, rows: np.ndarray | None = None, cols: np.ndarray | None = None) -> None:
        self.matrix = matrix
        self.rows = None if rows is None else np.asarray(rows, dtype=np.int64)
        self.cols = None if cols is None else np.asarray(cols, dtype=np.int64)

    @property
    def shape(self) -> tuple[int, int]:
        return (self.matrix.n_samples if self.rows is None else self.rows.size,
                self.matrix.n_genes if self.cols is None else self.cols.size)

    @property
    def dtype(self) -> np.dtype:
        return self.matrix.dtype

    @property
    def nbytes(self) -> int:
        return self.shape[0] * self.shape[1] * self.dtype.itemsize

    def __len__(self) -> int:
        return self.shape[0]

    def __repr__(self) -> str:
        return f"<LazyRows {self.shape[0]} x {self.shape[1]} of {self.matrix!r}>"

    def _abs_rows(self, key) -> np.ndarray:
        n = self.shape[0]
        if isinstance(key, slice):
            rel = np.arange(n)[key]
        else:
            key = np.asarray(key)
            if key.dtype == bool:
                if key.shape != (n,):
                    raise DatasetError(f"a row mask needs {n} entries, got {key.shape}")
                rel = np.flatnonzero(key)
            else:
                rel = key.astype(np.int64).reshape(-1)
                if rel.size and (rel.min() < -n or rel.max() >= n):
                    raise IndexError(f"row positions out of range 0..{n - 1}")
                rel = np.where(rel < 0, rel + n, rel)
        return rel if self.rows is None else self.rows[rel]

    def _abs_cols(self, key) -> np.ndarray | None:
        if key is None or (isinstance(key, slice) and key == slice(None)):
            return self.cols
        n = self.shape[1]
        if isinstance(key, slice):
            rel = np.arange(n)[key]
        else:
            key = np.asarray(key)
            rel = np.flatnonzero(key) if key.dtype == bool else key.astype(np.int64).reshape(-1)
        return rel if self.cols is None else self.cols[rel]

    def __getitem__(self, key) -> np.ndarray:
        if isinstance(key, tuple):
            rk, ck = key
        else:
            rk, ck = key, None
        scalar_row = isinstance(rk, (int, np.integer))
        rows = self._abs_rows([rk] if scalar_row else rk)
        out = self.matrix.read(rows, self._abs_cols(ck))
        return out[0] if scalar_row else out

    def __array__(self, dtype=None, copy=None):
        out = self.matrix.read(self.rows, self.cols)
        return out if dtype is None else out.astype(dtype, copy=False)

    def take(self, rows: np.ndarray) -> LazyRows:
        """A view of some of these samples (positions relative to this view)."""
        return LazyRows(self.matrix, self._abs_rows(rows), self.cols)

    def select(self, cols: np.ndarray) -> LazyRows:
        """A view of some of these genes (positions relative to this view)."""
        return LazyRows(self.matrix, self.rows, self._abs_cols(np.asarray(cols, dtype=np.int64)))

    def astype(self, dtype, copy: bool = True) -> np.ndarray:
        return np.asarray(self, dtype=dtype)


def read_pair(a, b, key) -> tuple[np.ndarray, np.ndarray]:
    """``(a[key], b[key])``, reading each sample once when both view the same samples of one file."""
    if (isinstance(a, LazyRows) and isinstance(b, LazyRows) and a.matrix is b.matrix
            and (a.rows is b.rows or (a.rows is not None and b.rows is not None and np.array_equal(a.rows, b.rows))
                 or (a.rows is None and b.rows is None))):
        rows = a._abs_rows(key)
        m = a.matrix
        ca = np.arange(m.n_genes) if a.cols is None else a.cols
        cb = np.arange(m.n_genes) if b.cols is None else b.cols
        if cb.size == 0:
            return m.read(rows, ca), np.empty((rows.size, 0), m.dtype)
        both = np.concatenate([ca, cb])
        if both.size >= 0.6 * m.n_genes:  # most of each row: read whole rows, pick in memory
            full = m.read(rows, None)
            return full[:, ca], full[:, cb]
        vals = m.read(rows, both)
        return vals[:, :ca.size], vals[:, ca.size:]
    return np.asarray(a[key]), np.asarray(b[key])


def chunk_starts(a, chunk: int = 256) -> np.ndarray:
    """Start positions of runs of rows of ``a`` that are cheap to read one run at a time.

    For a lazy view of a chunked file, the rows of the view that fall in one storage
    chunk of samples form a run (so a run never reads a chunk another run reads too);
    otherwise runs of ``chunk`` rows. Returns increasing positions into ``a``, starting at 0.
    """
    n = int(a.shape[0])
    per = a.matrix.backend.chunk_rows if isinstance(a, LazyRows) else None
    if not per or n == 0:
        return np.arange(0, n, max(1, chunk), dtype=np.int64)
    band = (np.arange(n) if a.rows is None else a.rows) // int(per)
    return np.flatnonzero(np.r_[True, band[1:] != band[:-1]]).astype(np.int64)


def take_rows(a, rows: np.ndarray):
    """Rows of an array or a lazy view (a view stays lazy)."""
    return a.take(rows) if isinstance(a, LazyRows) else a[rows]


def select_cols(a, cols: np.ndarray):
    """Columns of an array or a lazy view (a view stays lazy)."""
    return a.select(cols) if isinstance(a, LazyRows) else a[:, cols]

