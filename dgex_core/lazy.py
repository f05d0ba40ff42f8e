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

import contextlib
import os
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import pandas as pd

from .errors import DataFormatError, DatasetError
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


def _block_bytes() -> int:
    try:
        return max(1, int(float(os.environ.get("DGEX_BLOCK_MB", "128")) * 2**20))
    except ValueError:
        return 128 * 2**20


#: Bytes of float32 values a block of samples holds by default (``$DGEX_BLOCK_MB``, 128 MB).
BLOCK_BYTES = _block_bytes()


def block_rows(n_cols: int, budget: int | None = None, itemsize: int = 4, *, minimum: int = 16,
               maximum: int = 1 << 20) -> int:
    """Samples per block so that a block of ``n_cols`` values per sample fits ``budget`` bytes."""
    budget = BLOCK_BYTES if budget is None else budget
    return int(max(minimum, min(maximum, budget // max(1, n_cols * itemsize))))


def sample_positions(n: int, k: int) -> np.ndarray:
    """At most ``k`` evenly spaced positions in ``range(n)`` (sorted, unique)."""
    if n <= k:
        return np.arange(n)
    return np.unique(np.linspace(0, n - 1, k).round().astype(np.int64))


def _runs(sorted_rows: np.ndarray, max_gap: int, max_span: int) -> list[tuple[int, int, np.ndarray]]:
    """Group sorted row positions into spans ``[start, stop)`` worth reading as one slice.

    Rows closer than ``max_gap`` join a span, and a span covers at most ``max_span``
    rows. Returns ``(start, stop, index into sorted_rows)`` per span.
    """
    out = []
    if sorted_rows.size == 0:
        return out
    begin = 0
    for i in range(1, sorted_rows.size + 1):
        if (i == sorted_rows.size or sorted_rows[i] - sorted_rows[i - 1] > max_gap
                or sorted_rows[i] - sorted_rows[begin] >= max_span):
            out.append((int(sorted_rows[begin]), int(sorted_rows[i - 1]) + 1, np.arange(begin, i)))
            begin = i
    return out


# ====================================================================== backends
class _Backend:
    """Reads values of a samples x genes matrix: ``read(rows, cols)`` -> ndarray."""

    shape: tuple[int, int]
    dtype: np.dtype
    in_memory = False
    #: Most samples worth reading as one slice when a few scattered ones are asked.
    gap = 64
    #: Samples per storage chunk along the sample axis (HDF5 chunking), None when rows
    #: can be read one by one at no extra cost; loaders align their reads to it.
    chunk_rows: int | None = None

    def read(self, rows: np.ndarray, cols: np.ndarray | None) -> np.ndarray:
        """Values at sample positions ``rows`` (any order) and gene positions ``cols`` (None: all)."""
        rows = np.asarray(rows, dtype=np.int64)
        n_cols = self.shape[1] if cols is None else len(cols)
        out = np.empty((rows.size, n_cols), dtype=self.dtype)
        if rows.size == 0 or n_cols == 0:
            return out
        if rows.size > 1 and np.all(np.diff(rows) == 1):
            out[:] = self._slice(int(rows[0]), int(rows[-1]) + 1, cols)
            return out
        order = np.argsort(rows, kind="stable")
        srt = rows[order]
        span = max(1, BLOCK_BYTES // max(1, self.shape[1] * self.dtype.itemsize))
        # a storage chunk of one sample (ARCHS4's layout) makes a lone sample cheap to read
        # alone: only neighbours join a slice, which would otherwise decompress every sample between
        gap = self.gap if not self.chunk_rows else min(self.gap, max(1, int(self.chunk_rows)))
        for start, stop, idx in _runs(srt, gap, span):
            block = self._slice(start, stop, cols)
            out[order[idx]] = block[srt[idx] - start]
        return out

    def _slice(self, start: int, stop: int, cols: np.ndarray | None) -> np.ndarray:
        raise NotImplementedError

    def close(self) -> None:
        return None


class _Memory(_Backend):
    in_memory = True

    def __init__(self, values: np.ndarray) -> None:
        self.values = values
        self.shape = values.shape
        self.dtype = values.dtype

    def read(self, rows, cols):
        rows = np.asarray(rows, dtype=np.int64)
        if rows.size and rows[-1] - rows[0] + 1 == rows.size and np.all(np.diff(rows) == 1):
            v = self.values[int(rows[0]):int(rows[-1]) + 1]
            return np.array(v if cols is None else v[:, cols])
        return self.values[rows] if cols is None else self.values[np.ix_(rows, cols)]


class _H5(_Backend):
    """An HDF5 dataset holding samples x genes, or genes x samples (``genes_first``)."""

    def __init__(self, path: Path, node: str, genes_first: bool = False, dtype=np.float32,
                 open_file: Callable | None = None) -> None:
        import h5py

        self.path, self.node, self.genes_first = Path(path), node, genes_first
        self._h5 = open_file() if open_file else h5py.File(path, "r")
        self._ds = self._h5[node]
        s = self._ds.shape
        self.shape = (s[1], s[0]) if genes_first else (s[0], s[1])
        self.dtype = np.dtype(dtype)
        if self._ds.chunks:
            self.chunk_rows = int(self._ds.chunks[1] if genes_first else self._ds.chunks[0])
        self._lock = threading.Lock()

    def _slice(self, start, stop, cols):
        try:
            with self._lock:
                if self.genes_first:
                    if cols is not None and len(cols) and cols.max() - cols.min() + 1 <= max(1, len(cols)) * 2:
                        g0, g1 = int(cols.min()), int(cols.max()) + 1
                        raw = self._ds[g0:g1, start:stop].T
                        cols = cols - g0
                    else:
                        raw = self._ds[:, start:stop].T
                else:
                    if cols is not None and len(cols):
                        g0, g1 = int(cols.min()), int(cols.max()) + 1
                        raw = self._ds[start:stop, g0:g1]
                        cols = cols - g0
                    else:
                        raw = self._ds[start:stop]
        except (OSError, RuntimeError) as e:
            raise DataFormatError(self.path, f"/{self.node.lstrip('/')}", f"cannot read the stored values ({e})",
                                  "an undamaged file (download it again?)") from None
        raw = raw if cols is None else raw[:, cols]
        return np.asarray(raw, dtype=self.dtype)

    def close(self):
        self._h5.close()


class _CSR(_Backend):
    """A compressed sparse row matrix in HDF5 (AnnData's ``X`` as CSR): rows are samples."""

    gap = 256

    def __init__(self, path: Path, node: str, dtype=np.float32) -> None:
        import h5py

        self.path, self.node = Path(path), node
        self._h5 = h5py.File(path, "r")
        g = self._h5[node]
        self._data, self._indices = g["data"], g["indices"]
        self._indptr = np.asarray(g["indptr"][:], dtype=np.int64)
        shape = tuple(int(v) for v in g.attrs["shape"])
        self.shape = (shape[0], shape[1])
        self.dtype = np.dtype(dtype)
        if self._indptr.shape != (self.shape[0] + 1,) or self._indptr[-1] > self._data.shape[0]:
            raise DataFormatError(path, f"/{node}/indptr", f"{self._indptr.shape[0]} row pointers (last "
                                  f"{int(self._indptr[-1]) if self._indptr.size else '?'}) for {self.shape[0]} rows "
                                  f"and {self._data.shape[0]} stored values",
                                  "n_obs + 1 non-decreasing row pointers within the stored values")
        self._lock = threading.Lock()

    def _slice(self, start, stop, cols):
        from scipy import sparse

        a, b = int(self._indptr[start]), int(self._indptr[stop])
        with self._lock:
            data = np.asarray(self._data[a:b], dtype=self.dtype)
            idx = np.asarray(self._indices[a:b], dtype=np.int64)
        if idx.size and (idx.min() < 0 or idx.max() >= self.shape[1]):
            raise DataFormatError(self.path, f"/{self.node}/indices", "column indices out of range",
                                  f"indices in 0..{self.shape[1] - 1}")
        m = sparse.csr_matrix((data, idx, self._indptr[start:stop + 1] - a), shape=(stop - start, self.shape[1]))
        if cols is not None:
            m = m[:, cols]
        return m.toarray()

    def close(self):
        self._h5.close()


class _Columns(_Backend):
    """Some genes (columns) of another backend, e.g. the first row of each duplicated symbol."""

    def __init__(self, inner: _Backend, cols: np.ndarray) -> None:
        self.inner, self.cols = inner, np.asarray(cols, dtype=np.int64)
        self.chunk_rows = inner.chunk_rows
        self.shape = (inner.shape[0], self.cols.size)
        self.dtype = inner.dtype

    def read(self, rows, cols):
        return self.inner.read(rows, self.cols if cols is None else self.cols[np.asarray(cols, dtype=np.int64)])

    def close(self):
        self.inner.close()


class _Delegate(_Backend):
    """Reads through a function ``read(rows, cols)`` (e.g. a GCTX file's own planned reads)."""

    def __init__(self, shape, dtype, read: Callable, close: Callable | None = None,
                 chunk_rows: int | None = None) -> None:
        self.shape, self.dtype = tuple(shape), np.dtype(dtype)
        self._read, self._close = read, close
        self.chunk_rows = chunk_rows
        self._lock = threading.Lock()

    def read(self, rows, cols):
        with self._lock:
            return self._read(np.asarray(rows, dtype=np.int64), None if cols is None else np.asarray(cols, np.int64))

    def close(self):
        if self._close:
            self._close()


class NpyRows(_Backend):
    """A sample-major ``.npy`` file read (and written) with positioned reads, never mapped.

    Memory maps would count every page touched in the process's resident memory;
    ``os.pread`` of whole rows keeps it at the block asked for. Used for dgex's
    on-disk caches and for the KNN-GE model's training targets.
    """

    gap = 8

    def __init__(self, path: str | os.PathLike) -> None:
        self.path = Path(path)
        with open(self.path, "rb") as fh:
            version = np.lib.format.read_magic(fh)
            read_header = (np.lib.format.read_array_header_1_0 if version == (1, 0)
                           else np.lib.format.read_array_header_2_0)
            shape, fortran, dtype = read_header(fh)
            self._offset = fh.tell()
        if fortran or len(shape) != 2:
            raise DataFormatError(self.path, "header", f"an array of shape {shape} (fortran={fortran})",
                                  "a C-ordered 2-D samples x genes array")
        self.shape = (int(shape[0]), int(shape[1]))
        self.dtype = np.dtype(dtype)
        self._row_bytes = self.shape[1] * self.dtype.itemsize
        expected = self._offset + self.shape[0] * self._row_bytes
        if self.path.stat().st_size < expected:
            raise DataFormatError(self.path, "data", f"{self.path.stat().st_size} bytes",
                                  f"{expected} bytes for {self.shape} {self.dtype}: the cache is truncated")
        self._fd = os.open(self.path, os.O_RDONLY)

    @classmethod
    def create(cls, path: str | os.PathLike, shape: tuple[int, int], dtype=np.float32) -> NpyRows:
        """An empty file of ``shape`` (filled with :meth:`write_rows`), then opened for reading."""
        path = Path(path)
        with open(path, "wb") as fh:
            np.lib.format.write_array_header_1_0(fh, {"descr": np.lib.format.dtype_to_descr(np.dtype(dtype)),
                                                      "fortran_order": False, "shape": tuple(shape)})
            fh.truncate(fh.tell() + int(shape[0]) * int(shape[1]) * np.dtype(dtype).itemsize)
        return cls(path)

    def write_rows(self, start: int, values: np.ndarray) -> None:
        """Write ``values`` (n, n_genes) at sample rows ``start..start+n``."""
        values = np.ascontiguousarray(values, dtype=self.dtype)
        if values.ndim != 2 or values.shape[1] != self.shape[1] or start + values.shape[0] > self.shape[0]:
            raise ValueError(f"cannot write {values.shape} at row {start} of {self.shape}")
        fd = os.open(self.path, os.O_WRONLY)
        try:
            os.pwrite(fd, values.data, self._offset + start * self._row_bytes)
        finally:
            os.close(fd)

    def _slice(self, start, stop, cols):
        n = stop - start
        buf = bytearray(n * self._row_bytes)
        got = os.preadv(self._fd, [buf], self._offset + start * self._row_bytes)
        if got != len(buf):
            raise DataFormatError(self.path, f"rows {start}..{stop}", f"only {got} of {len(buf)} bytes",
                                  "a complete cache file (delete it to rebuild)")
        arr = np.frombuffer(buf, dtype=self.dtype).reshape(n, self.shape[1])
        return arr if cols is None else arr[:, cols]

    def __getitem__(self, rows) -> np.ndarray:
        """Rows by integer positions (the KNN model gathers neighbours' targets this way)."""
        if isinstance(rows, slice):
            rows = np.arange(self.shape[0])[rows]
        return self.read(np.asarray(rows), None)

    def close(self):
        if getattr(self, "_fd", None) is not None:
            os.close(self._fd)
            self._fd = None

    def __del__(self):
        with contextlib.suppress(Exception):
            self.close()

    def __getstate__(self):  # pragma: no cover - only for multiprocessing users
        return {"path": str(self.path)}

    def __setstate__(self, state):  # pragma: no cover
        self.__init__(state["path"])


# ====================================================================== matrix
class LazyMatrix:
    """A samples x genes matrix read from disk on demand, with ids and metadata in memory.

    Parameters
    ----------
    backend
        What reads the values (see the ``_Backend`` classes).
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

    def __init__(self, backend: _Backend, sample_ids, gene_ids, sample_meta: pd.DataFrame | None = None,
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
        return cls(_Memory(m.values), m.sample_ids, m.gene_ids, m.sample_meta, m.gene_meta, m.provenance)


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

