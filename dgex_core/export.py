"""Writing predictions sample block by sample block, so a huge input never sits whole in memory.

:func:`open_block_writer` returns a writer with ``append(block)`` (an
:class:`~dgex_core.matrix.ExpressionMatrix` of some samples x all output genes),
``close()`` and ``discard()``; used as a context manager it discards on an exception.
The output appears under its final name only when complete (atomic rename), so an
interrupted prediction never leaves a file that looks finished.

============  ===========  ==========================================================
format        streamed     where gene / sample metadata go
============  ===========  ==========================================================
``gctx``      yes          ``/0/META/ROW`` (genes) and ``/0/META/COL`` (samples)
``parquet``   yes          rows = samples, sample metadata as leading columns; gene
                           metadata as JSON in the file's key-value metadata
                           (``dgex:gene_meta``)
``csv/tsv``   yes          rows = samples, sample metadata as leading columns; gene
                           metadata in a side file ``<name>.genes.<csv|tsv>``
``gct``       no (whole)   GCT 1.3 row / column metadata; held in memory until close
============  ===========  ==========================================================
"""

from __future__ import annotations

import contextlib
import json
import os
from pathlib import Path

import numpy as np
import pandas as pd

from ._atomic import atomic_path
from .matrix import ExpressionMatrix

__all__ = ["EXPORT_FORMATS", "open_block_writer"]

EXPORT_FORMATS = ("gctx", "gct", "parquet", "csv", "tsv")


class _Base:
    def __enter__(self):
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is None:
            self.close()
        else:
            self.discard()


class _GCTX(_Base):
    def __init__(self, path: Path, gene_ids, gene_meta) -> None:
        from .io.gctx import GCTXWriter

        self._w = GCTXWriter(path, gene_ids, gene_meta)

    def append(self, block: ExpressionMatrix) -> None:
        self._w.append(block)

    def close(self) -> Path:
        return self._w.close()

    def discard(self) -> None:
        self._w.discard()


class _Whole(_Base):
    """Formats written in one go (GCT): blocks are kept until close."""

    def __init__(self, path: Path, gene_ids, gene_meta, fmt: str) -> None:
        self.path, self.gene_ids, self.gene_meta, self.fmt = path, gene_ids, gene_meta, fmt
        self.blocks: list[ExpressionMatrix] = []

    def append(self, block: ExpressionMatrix) -> None:
        self.blocks.append(block)

    def close(self) -> Path:
        from .io import write

        values = np.vstack([b.values for b in self.blocks])
        sids = pd.Index([s for b in self.blocks for s in b.sample_ids], dtype=object)
        smeta = pd.concat([b.sample_meta for b in self.blocks])
        m = ExpressionMatrix(values, sids, self.gene_ids, smeta, self.gene_meta, self.blocks[0].provenance)
        write(m, self.path, format=self.fmt)
        return self.path

    def discard(self) -> None:
        self.blocks = []


class _Rows(_Base):
    """Row-wise formats (Parquet, CSV, TSV): one row per sample, appended block by block."""

    def __init__(self, path: Path, gene_ids, gene_meta, fmt: str) -> None:
        self.path, self.fmt = path, fmt
        self.gene_ids = [str(g) for g in gene_ids]
        self.gene_meta = gene_meta
        self._stack = contextlib.ExitStack()
        self._tmp = self._stack.enter_context(atomic_path(path))
        self._writer = None
        self._meta_cols: list[str] | None = None

    def _table(self, block: ExpressionMatrix):
        import pyarrow as pa

        if self._meta_cols is None:
            self._meta_cols = [str(c) for c in block.sample_meta.columns]
        cols = {"sample": pa.array(block.sample_ids.astype(str).tolist())}
        for c in self._meta_cols:
            v = block.sample_meta[c] if c in block.sample_meta else pd.Series([None] * block.n_samples)
            cols[c] = pa.array(v.astype(str).where(v.notna(), None).tolist() if v.dtype == object else v.to_numpy())
        for j, g in enumerate(self.gene_ids):
            cols[g] = pa.array(block.values[:, j])
        return pa.table(cols)

    def append(self, block: ExpressionMatrix) -> None:
        import pyarrow.csv as pacsv
        import pyarrow.parquet as pq

        table = self._table(block)
        if self._writer is None:
            if self.fmt == "parquet":
                meta = {**(table.schema.metadata or {}),
                        b"dgex:gene_meta": self.gene_meta.reset_index(names="gene").to_json(orient="records").encode()}
                self._writer = pq.ParquetWriter(self._tmp, table.schema.with_metadata(meta))
            else:
                opts = pacsv.WriteOptions(delimiter="\t" if self.fmt == "tsv" else ",")
                self._writer = pacsv.CSVWriter(self._tmp, table.schema, write_options=opts)
        self._writer.write_table(table.replace_schema_metadata(self._writer.schema.metadata)
                                 if self.fmt == "parquet" else table)

    def close(self) -> Path:
        if self._writer is not None:
            self._writer.close()
        if self.fmt in ("csv", "tsv"):
            side = self.path.with_name(self.path.name.rsplit(".", 1)[0] + f".genes.{self.fmt}")
            with atomic_path(side) as tmp:
                self.gene_meta.reset_index(names="gene").to_csv(tmp, sep="\t" if self.fmt == "tsv" else ",",
                                                               index=False)
        self._stack.close()  # renames the temporary file onto the final name
        return self.path

    def discard(self) -> None:
        with contextlib.suppress(Exception):
            if self._writer is not None:
                self._writer.close()
        self._stack.__exit__(RuntimeError, RuntimeError("discarded"), None)


def open_block_writer(path: str | os.PathLike, gene_ids, gene_meta: pd.DataFrame | None = None,
                      format: str | None = None):
    """A writer of sample blocks to ``path`` in ``format`` (or the one its suffix names).

    Parameters
    ----------
    gene_ids
        The output genes, in column order of every appended block.
    gene_meta
        Per-gene metadata (e.g. ``role``, ``well_inferred``), indexed by gene id.
    """
    from .io import format_from_suffix

    path = Path(path)
    fmt = format or format_from_suffix(path)
    if fmt not in EXPORT_FORMATS:
        raise ValueError(f"cannot write predictions to {path.name}: use one of {EXPORT_FORMATS} (or a matching suffix)")
    gene_ids = pd.Index([str(g) for g in gene_ids], dtype=object)
    gene_meta = gene_meta if gene_meta is not None else pd.DataFrame(index=gene_ids)
    if fmt == "gctx":
        return _GCTX(path, gene_ids, gene_meta)
    if fmt == "gct":
        return _Whole(path, gene_ids, gene_meta, fmt)
    return _Rows(path, gene_ids, gene_meta, fmt)


def read_gene_meta_from_parquet(path: str | os.PathLike) -> pd.DataFrame:
    """The gene metadata a Parquet prediction file carries (``dgex:gene_meta``)."""
    import pyarrow.parquet as pq

    meta = pq.read_schema(path).metadata or {}
    raw = meta.get(b"dgex:gene_meta")
    if raw is None:
        return pd.DataFrame()
    return pd.DataFrame(json.loads(raw)).set_index("gene")
