"""Writing predictions sample block by sample block, so a huge input never sits whole in memory.

:func:`open_block_writer` returns a writer with ``append(block)`` (an
:class:`~dgex_core.matrix.ExpressionMatrix` of some samples x all output genes),
``close()`` and ``discard()``; used as a context manager it discards on an exception.
The output appears under its final name only when complete (atomic rename), so an
interrupted prediction never leaves a file that looks finished. With
``background=True`` the blocks are written by a thread of their own (see
:class:`BackgroundWriter`), so computing the next block and writing this one overlap.

One module per idea: :mod:`~dgex_core.export.formats` (formats and compressions),
:mod:`~dgex_core.export.gctx` (GCTX), :mod:`~dgex_core.export.rows` (Parquet, CSV,
TSV), :mod:`~dgex_core.export.gct` (GCT, written whole), :mod:`~dgex_core.export.background`
(the writer thread) and :mod:`~dgex_core.export.base` (what they share).

============  ===========  ==========================================================
format        streamed     where gene / sample metadata go
============  ===========  ==========================================================
``gctx``      yes          ``/0/META/ROW`` (genes) and ``/0/META/COL`` (samples)
``parquet``   yes          rows = samples, sample metadata as leading columns; gene
                           metadata as JSON in the file's key-value metadata
                           (``dgex:gene_meta``, :func:`read_gene_meta_from_parquet`)
``csv/tsv``   yes          rows = samples, sample metadata as leading columns; gene
                           metadata (``role``, ``well_inferred``...) in a side file
                           ``<name>.genes.<csv|tsv>``, one row per gene column, in
                           the same order (:func:`gene_meta_path`)
``gct``       no (whole)   GCT 1.3 row / column metadata; held in memory until close
``zarr``      yes          an AnnData store (a ``.zarr`` folder, zarr format 2): ``var``
                           (genes), ``obs`` (samples, written at close); ``X``
                           chunked by blocks, so Dask workers write their own blocks
============  ===========  ==========================================================

Why a side file for CSV / TSV rather than extra header rows: a CSV with one header
row of sample metadata + gene ids and one row per sample stays a plain numeric
table that ``pandas.read_csv(path, index_col="sample")``, R's ``read.csv`` or
``data.table::fread`` read with their defaults and the right column types; two more
header rows would turn every gene column into text for all of them (pandas needs
``header=[0, 1, 2]`` and a MultiIndex, R has no equivalent). The side file is a
tidy table ``gene, role, well_inferred`` to join on the column names, and it is
written (atomically) before the main file appears.

Compression (``compression=``; measured on a 2-core machine with 22,283 float32
genes of predicted values, see ``bench/bench_predict.py``):

- GCTX: ``"none"`` (default: chunked in the Broad layout, uncompressed; the chunks
  are allocated when the matrix is created and the values written with
  ``os.pwritev`` at the chunks' file offsets, :class:`RawChunkGCTXWriter`, so the
  writer thread does not hold the GIL while the disk catches up, and the page cache
  of the blocks already written is dropped (write-behind) so dirty pages never fill
  memory; h5py writes the same file where ``os.pwritev`` is missing), ``"gzip"`` (deflate level 6, what cmapPy and the
  Broad's files use: the file is only ~17% smaller, since the mantissas of predicted
  values are noise, and deflate runs at ~220 profiles/s per core; dgex compresses
  the chunks on every core in parallel), ``"lzf"`` (fast, but saves nothing on
  such values).
- Parquet: ``"lz4"`` (default) with the byte-stream-split encoding of the float
  columns: ~19% smaller than raw float32 at the speed of no compression;
  ``"zstd"`` ~22% smaller at ~60% of the speed; ``"snappy"``, ``"gzip"``,
  ``"none"``. pyarrow's Parquet writer encodes columns on one thread (it has no
  ``use_threads`` option, apache/arrow#50866), so the encoding runs on the
  background writer thread, overlapped with the prediction. Rows are grouped into
  row groups of at most :data:`PARQUET_ROW_GROUP_BYTES` (the footer holds metadata
  for every column of every row group: ~1.3 MB per row group at 22,283 columns,
  ~18 MB in the writer's memory until it closes, so memory grows by ~0.45 GB per
  200,000 samples).
- CSV / TSV / GCT: uncompressed only. Text is format-bound: every float32 value is
  written in its shortest exact form (~9.4 bytes), which pyarrow does at ~230
  profiles/s per core; pieces of each block are formatted on every core in parallel.
"""

from __future__ import annotations

import os
from pathlib import Path

import pandas as pd

from .background import BackgroundWriter
from .formats import COMPRESSIONS, EXPORT_FORMATS, resolve_compression
from .gct import _Whole
from .gctx import _GCTX, ParallelGzipGCTXWriter, RawChunkGCTXWriter
from .rows import _Rows, gene_meta_path, read_gene_meta_from_parquet
from .zarr import ZarrWriter, write_rows


def workers_write(fmt: str, codec: str) -> bool:
    """Whether Dask workers can write an output of this format and compression themselves
    (an uncompressed GCTX through ``os.pwritev``, a zarr store): each block's place comes
    from the writer's ``reserve``, its values go there with :func:`write_planned`."""
    return fmt == "zarr" or (fmt == "gctx" and codec == "none" and hasattr(os, "pwritev"))


def write_planned(plan, values) -> None:
    """Write a block's values (samples x genes) at the place a writer's ``reserve`` gave
    (a GCTX's allocated chunks, or rows of a zarr store): what a Dask worker calls."""
    plan.write(values)

__all__ = ["COMPRESSIONS", "EXPORT_FORMATS", "BackgroundWriter", "ParallelGzipGCTXWriter", "RawChunkGCTXWriter",
           "ZarrWriter", "gene_meta_path", "open_block_writer", "read_gene_meta_from_parquet", "resolve_compression",
           "workers_write", "write_planned", "write_rows"]


def open_block_writer(path: str | os.PathLike, gene_ids, gene_meta: pd.DataFrame | None = None,
                      format: str | None = None, *, compression: str | None = None, background: bool = False,
                      max_queued: int = 1, on_written=None, n_samples: int | None = None,
                      chunk_rows: int | None = None):
    """A writer of sample blocks to ``path`` in ``format`` (or the one its suffix names).

    Parameters
    ----------
    gene_ids
        The output genes, in column order of every appended block (samples x genes).
    gene_meta
        Per-gene metadata (e.g. ``role``, ``well_inferred``), indexed by gene id.
    compression
        One of :data:`COMPRESSIONS` for the format; ``None`` or ``"default"`` for its
        default (GCTX: ``"none"``; Parquet: ``"lz4"``). ``"gzip"`` on a GCTX is what
        cmapPy and the Broad's files use (deflate level 6): ~17% smaller for ~100x the
        CPU time of writing uncompressed (see the module notes).
    background
        Write on a thread of its own (:class:`BackgroundWriter`), so the caller computes
        the next block meanwhile.
    max_queued
        With ``background``, blocks that may wait to be written (memory bound).
    on_written
        With ``background``, called with each block once written (see :class:`BackgroundWriter`).
    n_samples, chunk_rows
        (zarr) The number of samples to come and the samples per block (a chunk row of ``X``).

    Raises
    ------
    ValueError
        For an unknown format or a compression the format does not take.
    """
    path = Path(path)
    fmt, codec = resolve_compression(path, format, compression)
    gene_ids = pd.Index([str(g) for g in gene_ids], dtype=object)
    gene_meta = gene_meta if gene_meta is not None else pd.DataFrame(index=gene_ids)
    if fmt == "gctx":
        writer = _GCTX(path, gene_ids, gene_meta, codec)
    elif fmt == "zarr":
        if n_samples is None:
            raise ValueError("an AnnData-zarr output needs n_samples (the number of samples to come)")
        writer = ZarrWriter(path, gene_ids, gene_meta, codec, n_samples, chunk_rows or 1024)
    elif fmt == "gct":
        writer = _Whole(path, gene_ids, gene_meta, fmt)
    else:
        writer = _Rows(path, gene_ids, gene_meta, fmt, codec)
    return BackgroundWriter(writer, max_queued, on_written) if background else writer
