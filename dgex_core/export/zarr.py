"""AnnData-zarr output: predictions as an AnnData store (zarr format 2), written by sample blocks.

The store is what ``anndata.AnnData.write_zarr`` writes and ``anndata.read_zarr`` (or
scanpy, or R's anndata readers) opens: ``X`` samples x genes (the measured landmarks,
then the inferred targets; float32), ``var`` the per-gene ``role`` and
``well_inferred``, ``obs`` the samples with their ``n_imputed``, ``n_clipped``,
``ood_score`` and ``ood_flag``. ``X`` is chunked by whole prediction blocks of samples
(times 4,096 genes), so each block of samples is its own row of chunks: Dask workers
write their blocks into the store themselves, side by side, without ever touching the
same chunk (:func:`write_rows`), and only the per-sample metadata travels back. The
store is built under a hidden temporary folder beside the output and renamed into
place when complete; an interrupted prediction leaves nothing under the output's name.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from pathlib import Path
from typing import NamedTuple

import numpy as np
import pandas as pd

from .._atomic import _tmp_prefix, sweep_stale
from ..errors import OutputError
from .base import BlockWriter

__all__ = ["GENE_CHUNK", "ZarrRows", "ZarrWriter", "is_zarr_store", "write_rows"]

#: Genes per chunk of ``X`` (a reader of a few genes reads a few chunks, not whole rows).
GENE_CHUNK = 4096


def is_zarr_store(path: str | os.PathLike) -> bool:
    """Whether ``path`` is a folder holding a zarr group (format 2 or 3)."""
    p = Path(path)
    return p.is_dir() and any((p / f).exists() for f in (".zgroup", "zarr.json"))


def _compressor(codec: str):
    if codec == "none":
        return None
    from numcodecs import Blosc

    return Blosc(cname=codec, clevel=5, shuffle=Blosc.SHUFFLE)


class ZarrRows(NamedTuple):
    """Where a block's values go: rows ``start..`` of the store's ``X``."""

    store: str
    start: int

    def write(self, values: np.ndarray) -> None:
        """Write a block's values there (on a Dask worker)."""
        write_rows(self.store, self.start, values)


def write_rows(store: str | os.PathLike, start: int, values: np.ndarray) -> None:
    """Write ``values`` (samples x genes) into rows ``start..`` of the store's ``X`` (on a worker).
    ``start`` must be a multiple of the chunk rows, so no other writer shares a chunk."""
    import zarr

    if not (Path(store) / "X" / ".zarray").is_file():
        raise OutputError(f"{store}: the store being written is not visible here (a Dask worker on another "
                          "machine?): write the output on a filesystem the workers share, or gather it in one "
                          "process (dgex predict --gather)")
    x = zarr.open_array(str(Path(store) / "X"), mode="r+")
    if start % x.chunks[0]:
        raise ValueError(f"rows from {start} do not start a chunk of {x.chunks[0]} rows")
    x[start:start + values.shape[0]] = values


class ZarrWriter(BlockWriter):
    """Sample blocks into an AnnData-zarr store at ``path``.

    Parameters
    ----------
    path
        The store (a folder, ``.zarr``); an existing zarr store there is replaced when
        the new one is complete, anything else is refused.
    gene_ids, gene_meta
        The output genes (columns of every block) and their metadata (``var``).
    codec
        ``"lz4"`` (Blosc LZ4 with byte shuffle, anndata's default), ``"zstd"`` or ``"none"``.
    n_samples
        Rows of ``X`` (the whole input's samples).
    chunk_rows
        Samples per chunk row: the prediction block size.
    """

    def __init__(self, path: str | os.PathLike, gene_ids: pd.Index, gene_meta: pd.DataFrame, codec: str,
                 n_samples: int, chunk_rows: int) -> None:
        import zarr
        from anndata.io import write_elem

        self.path = Path(path)
        if self.path.exists() and not is_zarr_store(self.path):
            raise OutputError(f"{path}: exists and is not a zarr store; it is left as it is: give another name")
        self.path.parent.mkdir(parents=True, exist_ok=True)
        sweep_stale(self.path)
        self.tmp = Path(os.path.abspath(tempfile.mkdtemp(prefix=_tmp_prefix(self.path), suffix=".tmp",
                                                         dir=self.path.parent)))  # workers find it from anywhere
        self.n_samples, self.chunk_rows = int(n_samples), max(1, int(chunk_rows))
        self._ids: list[pd.Index] = []
        self._meta: list[pd.DataFrame] = []
        self.row = self._reserved = 0
        try:
            group = zarr.open_group(str(self.tmp), mode="w", zarr_format=2)
            group.attrs.update({"encoding-type": "anndata", "encoding-version": "0.1.0"})
            x = group.create_array("X", shape=(self.n_samples, len(gene_ids)), dtype=np.float32,
                                   chunks=(self.chunk_rows, min(GENE_CHUNK, max(1, len(gene_ids)))),
                                   compressors=_compressor(codec), fill_value=np.float32(np.nan))
            x.attrs.update({"encoding-type": "array", "encoding-version": "0.2.0"})
            self._x = x
            var = gene_meta.reindex(gene_ids).copy()
            var.index = pd.Index([str(g) for g in gene_ids], name=None)
            write_elem(group, "var", var)
            for name in ("obsm", "varm", "obsp", "varp", "layers", "uns"):
                write_elem(group, name, {})
        except BaseException:
            self.discard()
            raise

    def reserve(self, n_rows: int) -> ZarrRows:
        """The place of the next ``n_rows`` samples, for a worker to write with
        :meth:`ZarrRows.write`; their ids and metadata follow, in order, through :meth:`record`."""
        start = self._reserved
        self._reserved += n_rows
        return ZarrRows(str(self.tmp), start)

    def append(self, block) -> None:
        """Write a block (an :class:`~dgex_core.matrix.ExpressionMatrix` of the next samples)."""
        self._x[self.row:self.row + block.n_samples] = np.asarray(block.values, np.float32)
        self.record(block)

    def record(self, block) -> None:
        """Count a block whose values are already in the store (written by a worker): its
        samples and their metadata, in order."""
        self._ids.append(pd.Index([str(s) for s in block.sample_ids]))
        self._meta.append(block.sample_meta)
        self.row += block.n_samples

    def close(self) -> None:
        import zarr
        from anndata.io import write_elem

        try:
            if self.row != self.n_samples:
                raise OutputError(f"{self.path}: {self.row} of {self.n_samples} samples were written")
            obs = pd.concat(self._meta) if self._meta else pd.DataFrame()
            obs.index = pd.Index(np.concatenate([i.to_numpy() for i in self._ids]) if self._ids else [], dtype=object)
            obs.index.name = None
            group = zarr.open_group(str(self.tmp), mode="r+", zarr_format=2)
            write_elem(group, "obs", obs)
            zarr.consolidate_metadata(str(self.tmp), zarr_format=2)
            old = None
            if self.path.exists():  # a previous store: set aside, replaced, then removed
                old = Path(tempfile.mkdtemp(prefix=_tmp_prefix(self.path), suffix=".tmp", dir=self.path.parent))
                os.replace(self.path, old / "previous")
            os.replace(self.tmp, self.path)
            if old is not None:
                shutil.rmtree(old, ignore_errors=True)
        except BaseException:
            self.discard()
            raise

    def discard(self) -> None:
        with contextlib.suppress(OSError):
            shutil.rmtree(self.tmp)
