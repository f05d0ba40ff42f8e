"""Where a lazy matrix's values come from: read backends by blocks of samples.

Each backend reads the values of a samples x genes matrix at any sample positions
and gene positions (``read(rows, cols)``), merging nearby samples into one slice of
the file: memory (:class:`MemoryBackend`), an HDF5 dataset in either orientation
(:class:`H5Backend`), an HDF5 CSR matrix (:class:`CSRBackend`, AnnData's sparse ``X``),
some columns of another backend (:class:`ColumnsBackend`), a reader function
(:class:`DelegateBackend`, e.g. a GCTX file's planned reads) and dgex's own
sample-major cache file (:class:`NpyRows`). Block sizes are set in bytes
(:data:`BLOCK_BYTES`, ``$DGEX_BLOCK_MB``).
"""

from __future__ import annotations

import contextlib
import os
import threading
from collections.abc import Callable
from pathlib import Path

import numpy as np

from .errors import DataFormatError

__all__ = ["BLOCK_BYTES", "Backend", "CSRBackend", "ColumnsBackend", "DelegateBackend", "H5Backend",
           "MemoryBackend", "NpyRows", "block_rows"]


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



class Backend:
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


class MemoryBackend(Backend):
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


class _ReopensFile:
    """Pickled as the arguments it was opened with (``self._args``), so another process (a
    Dask worker) that receives it reopens the file itself."""

    _args: tuple

    def __getstate__(self):
        return {"args": self._args}

    def __setstate__(self, state):
        self.__init__(*state["args"])


class H5Backend(_ReopensFile, Backend):
    """An HDF5 dataset holding samples x genes, or genes x samples (``genes_first``)."""

    def __init__(self, path: Path, node: str, genes_first: bool = False, dtype=np.float32,
                 open_file: Callable | None = None) -> None:
        import h5py

        self.path, self.node, self.genes_first = Path(path), node, genes_first
        self._args = (path, node, genes_first, dtype, open_file)
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


class CSRBackend(_ReopensFile, Backend):
    """A compressed sparse row matrix in HDF5 (AnnData's ``X`` as CSR): rows are samples."""

    gap = 256

    def __init__(self, path: Path, node: str, dtype=np.float32) -> None:
        import h5py

        self.path, self.node = Path(path), node
        self._args = (path, node, dtype)
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


class ColumnsBackend(Backend):
    """Some genes (columns) of another backend, e.g. the first row of each duplicated symbol."""

    def __init__(self, inner: Backend, cols: np.ndarray) -> None:
        self.inner, self.cols = inner, np.asarray(cols, dtype=np.int64)
        self.chunk_rows = inner.chunk_rows
        self.shape = (inner.shape[0], self.cols.size)
        self.dtype = inner.dtype

    def read(self, rows, cols):
        return self.inner.read(rows, self.cols if cols is None else self.cols[np.asarray(cols, dtype=np.int64)])

    def close(self):
        self.inner.close()


class DelegateBackend(Backend):
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


class NpyRows(Backend):
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
