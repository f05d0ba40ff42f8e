"""GCTX block writers: the Broad layout written block by block, fast.

:class:`ParallelGzipGCTXWriter` (``compression="gzip"``) deflates the chunks on every
core and stores them with HDF5's direct chunk write; :class:`RawChunkGCTXWriter`
(``"none"``, where ``os.pwritev`` exists) writes uncompressed chunks with
``os.pwritev`` at their file offsets so the writer thread releases the GIL; anything
else goes through :class:`~dgex_core.io.gctx_write.GCTXWriter` itself. All write the
file :class:`~dgex_core.io.gctx_write.GCTXWriter` would write.
"""

from __future__ import annotations

import collections
import os
import zlib
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import NamedTuple

import numpy as np

from ..errors import DatasetError, OutputError
from ..io.gctx_write import GCTXWriter, refuse_written_again
from ..matrix import ExpressionMatrix
from .base import BlockWriter, n_threads

__all__ = ["GZIP_LEVEL", "ParallelGzipGCTXWriter", "RawChunkGCTXWriter", "RowsPlan", "store_rows"]

#: Deflate level of ``compression="gzip"`` (cmapPy's).
GZIP_LEVEL = 6


class _GCTX(BlockWriter):
    def __init__(self, path: Path, gene_ids, gene_meta, compression: str) -> None:
        if compression == "gzip":
            self._w = ParallelGzipGCTXWriter(path, gene_ids, gene_meta)
        elif compression == "none" and hasattr(os, "pwritev"):
            self._w = RawChunkGCTXWriter(path, gene_ids, gene_meta)
        else:
            self._w = GCTXWriter(path, gene_ids, gene_meta, compression="lzf" if compression == "lzf" else None,
                                 compression_opts=None)

    def append(self, block: ExpressionMatrix) -> None:
        self._w.append(block)

    def reserve(self, n_rows: int) -> RowsPlan:
        """(uncompressed, :func:`~dgex_core.export.workers_write`) See :meth:`RawChunkGCTXWriter.reserve`."""
        return self._w.reserve(n_rows)

    def record(self, block: ExpressionMatrix) -> None:
        self._w.record(block)

    def close(self) -> Path:
        return self._w.close()

    def discard(self) -> None:
        self._w.discard()


class _ChunkStoringGCTXWriter(GCTXWriter):
    """A :class:`~dgex_core.io.gctx_write.GCTXWriter` in the Broad layout that stores the
    matrix's chunks itself (:meth:`_store`) instead of through ``Dataset.__setitem__``.
    It keeps the sample bookkeeping of the base class: ids checked once, the dataset
    grown by each block."""

    def append(self, block: ExpressionMatrix) -> None:
        self._check_open()
        block = self._aligned(block)
        ids = block.sample_ids
        refuse_written_again(self.path, ids, self._seen)
        start, stop = self.n_samples, self.n_samples + block.n_samples
        self._ds.resize((stop, self._ds.shape[1]))
        if block.n_samples:
            self._store(start, np.asarray(block.values, dtype=self.dtype))
        self._seen.update(ids)
        self._sample_ids.append(ids)
        self._sample_meta.append(block.sample_meta)
        self.n_samples = stop

    def _store(self, start: int, values: np.ndarray) -> None:
        raise NotImplementedError

    def _padded(self, piece: np.ndarray, rows: int, cols: int) -> np.ndarray:
        """``piece`` as a C-contiguous ``rows x cols`` chunk, zero-padded at the edges
        (HDF5 stores edge chunks at full size)."""
        if piece.shape != (rows, cols):
            full = np.zeros((rows, cols), self.dtype)
            full[:piece.shape[0], :piece.shape[1]] = piece
            return full
        return np.ascontiguousarray(piece)


class ParallelGzipGCTXWriter(_ChunkStoringGCTXWriter):
    """A :class:`~dgex_core.io.gctx_write.GCTXWriter` in the Broad layout with deflate level 6
    whose chunks are compressed on every core, then stored with HDF5's direct chunk
    write: the file is the one HDF5's own (single-threaded) filter would write.

    Samples of a chunk row not complete at the end of a block are kept back and
    written with the next block (or at close), so every chunk is compressed once, whole.
    """

    def __init__(self, path, gene_ids, gene_meta=None, *, chunks: tuple[int, int] | None = None,
                 threads: int | None = None) -> None:
        super().__init__(path, gene_ids, gene_meta, compression="gzip", compression_opts=GZIP_LEVEL, chunks=chunks)
        self._carry: np.ndarray | None = None  # the samples of a chunk row not written yet
        self._pool = ThreadPoolExecutor(threads or n_threads(), thread_name_prefix="dgex-gzip")

    def _store(self, start: int, values: np.ndarray) -> None:
        stop = start + len(values)
        pending = values if self._carry is None else np.concatenate([self._carry, values])
        whole = (len(pending) // self._ds.chunks[0]) * self._ds.chunks[0]
        self._write_chunks(stop - len(pending), pending[:whole])  # stop - len(pending) is on a chunk boundary
        self._carry = pending[whole:].copy() if whole < len(pending) else None

    def _write_chunks(self, first: int, values: np.ndarray) -> None:
        if not len(values):
            return
        rows, cols = self._ds.chunks
        tasks = [(r, c) for r in range(0, len(values), rows) for c in range(0, values.shape[1], cols)]

        def deflate(rc: tuple[int, int]) -> bytes:
            r, c = rc
            chunk = self._padded(values[r:r + rows, c:c + cols], rows, cols)
            return zlib.compress(chunk.data, GZIP_LEVEL)  # zlib releases the GIL

        for (r, c), data in zip(tasks, self._pool.map(deflate, tasks), strict=True):
            self._ds.id.write_direct_chunk((first + r, c), data)

    def close(self) -> Path:
        if not self.closed and self._carry is not None:
            try:
                self._write_chunks(self.n_samples - len(self._carry), self._carry)
            except BaseException as e:
                self._abort(type(e), e, e.__traceback__)
                raise
            self._carry = None
        self._pool.shutdown(wait=True)
        return super().close()

    def discard(self) -> None:
        self._pool.shutdown(wait=True)
        self._carry = None
        super().discard()


class RawChunkGCTXWriter(_ChunkStoringGCTXWriter):
    """An uncompressed :class:`~dgex_core.io.gctx_write.GCTXWriter` in the Broad layout
    (chunked, as cmapPy writes it) whose values go to disk with ``os.pwrite``.

    Why: h5py keeps Python's global interpreter lock while HDF5 writes, and once the
    page cache is full a write waits for the disk. A writer thread in h5py then stops
    the thread computing the next block, and computing and writing run one after the
    other (measured: 2,185 predicted profiles/s of 22,268 genes against 4,402 for the
    GEMM alone). ``os.pwrite`` releases the lock while it waits.

    How: the matrix is created with its chunks allocated when the dataset is created or
    grown (``H5D_ALLOC_TIME_EARLY``) and never filled by HDF5 (``H5D_FILL_TIME_NEVER``);
    each block's rows are written, chunk by chunk, at the file offset HDF5 gives for
    that chunk (``H5Dget_chunk_info_by_coord``). A chunk is stored row-major, so a
    block's rows of a chunk are one contiguous run of bytes: a chunk row split between
    two blocks needs no carrying over. The file is the one ``Dataset.__setitem__``
    would write (the test suite reads both back with h5py and compares bytes).
    """

    def __init__(self, path, gene_ids, gene_meta=None, *, chunks: tuple[int, int] | None = None) -> None:
        self._fd: int | None = None
        super().__init__(path, gene_ids, gene_meta, compression=None, compression_opts=None, chunks=chunks)
        self._ranges: collections.deque[tuple[int, int]] = collections.deque()  # file bytes of recent blocks
        self._planned: collections.deque[tuple[int, int]] = collections.deque()  # bytes of reserved blocks

    def _create_matrix(self, chunks):
        import h5py

        from ..io.gctx_layout import MATRIX, broad_chunks

        n_g = len(self.gene_ids)
        if n_g == 0:
            raise DatasetError(f"{self.path.name}: no genes to write; a GCTX needs at least one gene")
        chunks = broad_chunks(None, n_g, self.dtype.itemsize) if chunks is None else chunks
        chunks = (max(1, chunks[0]), max(1, min(chunks[1], n_g)))
        dcpl = h5py.h5p.create(h5py.h5p.DATASET_CREATE)
        dcpl.set_alloc_time(h5py.h5d.ALLOC_TIME_EARLY)
        dcpl.set_fill_time(h5py.h5d.FILL_TIME_NEVER)
        ds = self._h5.create_dataset(MATRIX, shape=(0, n_g), maxshape=(None, n_g), dtype=self.dtype, chunks=chunks,
                                     dcpl=dcpl)
        self._fd = os.open(self._h5.filename, os.O_WRONLY)
        return ds

    def _store(self, start: int, values: np.ndarray) -> None:
        offsets = self._chunk_offsets(start - start % self._ds.chunks[0])
        span = store_rows(self._fd, np.ascontiguousarray(values, dtype=self.dtype), start, self._ds.chunks, offsets)
        if span is not None:
            self._write_behind(*span)

    def reserve(self, n_rows: int) -> RowsPlan:
        """Grow the matrix by ``n_rows`` samples whose values another process (a Dask
        worker) writes with :meth:`RowsPlan.write`; their ids and metadata follow, in the
        same order, through :meth:`record`."""
        self._check_open()
        start = self._reserved
        self._ds.resize((start + n_rows, self._ds.shape[1]))
        self._reserved = start + n_rows
        rows = self._ds.chunks[0]
        offsets = {k: v for k, v in self._chunk_offsets(start - start % rows).items() if k[0] < start + n_rows}
        plan = RowsPlan(os.path.abspath(self._h5.filename), start, n_rows, tuple(self._ds.chunks), self.dtype.str,
                        offsets)
        self._planned.append(plan.span())
        return plan

    def record(self, block: ExpressionMatrix) -> None:
        """The ids and metadata of the next reserved samples, their values already written."""
        self._check_open()
        ids = block.sample_ids
        refuse_written_again(self.path, ids, self._seen)
        span = self._planned.popleft() if self._planned else None
        if span is not None:  # its bytes are on their way to disk (the worker started the writeback)
            self._write_behind(*span)
        self._seen.update(ids)
        self._sample_ids.append(ids)
        self._sample_meta.append(block.sample_meta)
        self.n_samples += block.n_samples

    @property
    def _reserved(self) -> int:
        return max(getattr(self, "_reserved_rows", 0), self.n_samples)

    @_reserved.setter
    def _reserved(self, value: int) -> None:
        self._reserved_rows = value

    def _write_behind(self, lo: int, hi: int) -> None:
        """Hand the bytes of earlier blocks to the disk and out of the page cache.

        A prediction writes far more than memory holds (17 GB for 200,000 profiles);
        left to itself the kernel fills the page cache with dirty pages and then
        spends a core reclaiming them, taken from the prediction (measured on an 8 GiB
        sequential write here: 7.6-25.5 s of kernel time without, 5.9-6.6 s with).
        ``POSIX_FADV_DONTNEED`` on a range starts its writeback and drops the pages
        already written out: each block's range is advised after the next block
        (starting writeback) and after the one after (dropping it), so the bytes in the
        page cache stay at about two blocks.
        """
        if not hasattr(os, "posix_fadvise"):
            return
        self._ranges.append((lo, hi))
        for a, b in list(self._ranges)[:-1]:
            os.posix_fadvise(self._fd, a, b - a, os.POSIX_FADV_DONTNEED)
        if len(self._ranges) > 2:
            self._ranges.popleft()

    def _chunk_offsets(self, first_row: int) -> dict[tuple[int, int], int]:
        """File offsets of the allocated chunks from sample ``first_row`` on, by chunk
        corner ``(sample, gene)``. One pass over HDF5's chunk index (``H5Dchunk_iter``):
        a lookup by coordinate (``H5Dget_chunk_info_by_coord``) walks the index each
        time, which made the lookups of 200,000 samples cost ~20 s."""
        found: dict[tuple[int, int], int] = {}

        def keep(info) -> None:
            if info.chunk_offset[0] >= first_row:
                found[tuple(info.chunk_offset)] = info.byte_offset

        self._ds.id.chunk_iter(keep)
        return found

    def _finish(self) -> None:
        self._close_fd()
        super()._finish()

    def _abort(self, exc_type, exc, tb) -> None:
        self._close_fd()
        super()._abort(exc_type, exc, tb)

    def _close_fd(self) -> None:
        fd, self._fd = self._fd, None
        if fd is not None:
            os.close(fd)


class RowsPlan(NamedTuple):
    """Where the values of samples ``start..start + n_rows`` go in a GCTX being written:
    the temporary file and the byte offset of each allocated chunk (by its corner)."""

    file: str
    start: int
    n_rows: int
    chunks: tuple[int, int]
    dtype: str
    offsets: dict

    def span(self) -> tuple[int, int] | None:
        """The file bytes of the chunks the block's rows go to (None for no rows)."""
        if not self.offsets:
            return None
        rows, cols = self.chunks
        return min(self.offsets.values()), max(self.offsets.values()) + rows * cols * np.dtype(self.dtype).itemsize

    def write(self, values: np.ndarray) -> None:
        """Write a block's values (``n_rows`` x genes) there (on a Dask worker: the file
        must be on a filesystem it shares with the writer), and start their writeback
        (the writer drops them from the page cache later, as it does its own blocks)."""
        if values.shape[0] != self.n_rows:
            raise ValueError(f"{values.shape[0]} rows for a plan of {self.n_rows}")
        try:
            fd = os.open(self.file, os.O_WRONLY)  # never O_CREAT: a file not shared with the writer is an error
        except FileNotFoundError:
            raise OutputError(f"{self.file}: the file being written is not visible here (a Dask worker on another "
                              "machine?): write the output on a filesystem the workers share, or gather it in one "
                              "process (dgex predict --gather)") from None
        try:
            span = store_rows(fd, np.ascontiguousarray(values, dtype=np.dtype(self.dtype)), self.start, self.chunks,
                              self.offsets)
            if span is not None and hasattr(os, "posix_fadvise"):
                os.posix_fadvise(fd, span[0], span[1] - span[0], os.POSIX_FADV_DONTNEED)
        finally:
            os.close(fd)


def store_rows(fd: int, values: np.ndarray, start: int, chunks: tuple[int, int],
               offsets: dict) -> tuple[int, int] | None:
    """Write C-contiguous ``values`` (samples ``start..`` x genes) into their allocated,
    uncompressed chunks (``offsets``: file offset by chunk corner) with ``os.pwritev``;
    returns the range of file bytes written. A chunk is stored row-major, so a block's
    rows of one chunk are one contiguous run of bytes: blocks that share a chunk write
    disjoint bytes of it."""
    rows, cols = chunks
    itemsize = values.dtype.itemsize
    row_bytes, chunk_row_bytes = values.shape[1] * itemsize, cols * itemsize
    flat = memoryview(values).cast("B")
    pad = memoryview(bytes(chunk_row_bytes))  # zeros for the genes an edge chunk lacks
    stop = start + len(values)
    lo, hi = None, None
    for band in range(start - start % rows, stop, rows):
        r0, r1 = max(start, band), min(stop, band + rows)  # the block's rows of this chunk row
        for c in range(0, values.shape[1], cols):
            width = min(cols, values.shape[1] - c) * itemsize
            pieces = []  # the chunk's rows straight from the block: no copy in Python
            for r in range(r0 - start, r1 - start):
                a = r * row_bytes + c * itemsize
                pieces.append(flat[a:a + width])
                if width < chunk_row_bytes:
                    pieces.append(pad[:chunk_row_bytes - width])
            at = offsets[band, c] + (r0 - band) * chunk_row_bytes
            _pwritev_all(fd, pieces, at)
            lo, hi = (at if lo is None else min(lo, at)), max(hi or 0, at + (r1 - r0) * chunk_row_bytes)
    return None if lo is None else (lo, hi)


def _pwritev_all(fd: int, pieces: list[memoryview], offset: int) -> None:
    """Write the byte ``pieces`` one after the other from ``offset``: one ``pwritev``
    per at most ``IOV_MAX`` pieces, a short write resumed where it stopped. ``pwritev``
    releases the GIL while it copies and waits."""
    limit = getattr(os, "IOV_MAX", 1024)
    i = 0
    while i < len(pieces):
        n = os.pwritev(fd, pieces[i:i + limit], offset)
        if n <= 0:
            raise OSError(f"pwritev wrote nothing at byte {offset}")
        offset += n
        while i < len(pieces) and n >= len(pieces[i]):
            n -= len(pieces[i])
            i += 1
        if n:
            pieces[i] = pieces[i][n:]
