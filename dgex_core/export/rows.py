"""Row-wise block writers (Parquet, CSV, TSV): one row per sample, sample metadata as
leading columns; gene metadata in the Parquet file's key-value metadata
(:func:`read_gene_meta_from_parquet`) or, for CSV / TSV, in a side file
(:func:`gene_meta_path`).
"""

from __future__ import annotations

import contextlib
import io
import json
import os
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pandas as pd

from .._atomic import atomic_path
from ..matrix import ExpressionMatrix
from .base import BlockWriter, n_threads

__all__ = ["PARQUET_ROW_GROUP_BYTES", "gene_meta_path", "read_gene_meta_from_parquet"]

#: Most bytes of values in a Parquet row group (whole blocks are gathered into it). The
#: writer also keeps ~18 MB of metadata per row group at 22,283 columns until it
#: closes, so fewer, larger row groups bound memory better: at 768 MiB (7,860 samples
#: of 1,310-sample blocks), 200,000 samples make 26 row groups.
PARQUET_ROW_GROUP_BYTES = 768 * 2**20

_CSV_PIECE_BYTES = 32 * 2**20  # text formatted per task (~9.4 bytes per value)


def gene_meta_path(path: str | os.PathLike, fmt: str | None = None) -> Path:
    """The side file holding the gene metadata of a CSV / TSV output: ``<name>.genes.<csv|tsv>``.

    Read it with ``pandas.read_csv(gene_meta_path(p), index_col="gene")``: one row per
    gene column of the main file, in the same order, with ``role`` and
    ``well_inferred`` for predictions.
    """
    from ..io import format_from_suffix

    path = Path(path)
    fmt = fmt or format_from_suffix(path)
    return path.with_name(path.name.rsplit(".", 1)[0] + f".genes.{fmt}")


class _Rows(BlockWriter):
    """Row-wise formats (Parquet, CSV, TSV): one row per sample, appended block by block.

    Values are copied once, transposed, into a gene-major buffer that is reused (each
    gene's values contiguous, as Arrow wants a column) and handed to Arrow without
    another copy. Parquet gathers blocks into row groups of about
    :data:`PARQUET_ROW_GROUP_BYTES`; CSV / TSV write each block as it comes.
    """

    def __init__(self, path: Path, gene_ids, gene_meta, fmt: str, compression: str) -> None:
        self.path, self.fmt, self.compression = path, fmt, compression
        self.gene_ids = [str(g) for g in gene_ids]
        self.gene_meta = gene_meta
        self._stack = contextlib.ExitStack()
        self._tmp = self._stack.enter_context(atomic_path(path))
        self._writer = None
        self._fh = None
        self._pool: ThreadPoolExecutor | None = None
        self._meta_cols: list[str] | None = None
        self._meta_types = None
        self._schema = None
        self._buf: np.ndarray | None = None   # genes x samples of the current row group
        self._fill = 0
        self._pending: list[list] = []          # per block: sample id and metadata arrays
        self._rg_rows = max(1, PARQUET_ROW_GROUP_BYTES // (4 * max(1, len(self.gene_ids))))

    def _meta_arrays(self, block: ExpressionMatrix) -> list:
        import pyarrow as pa

        if self._meta_cols is None:
            self._meta_cols = [str(c) for c in block.sample_meta.columns]
        n = block.n_samples
        cols = [pa.array(block.sample_ids.astype(str).tolist(), pa.string())]
        for c in self._meta_cols:
            v = block.sample_meta[c] if c in block.sample_meta else pd.Series([None] * n, dtype=object)
            cols.append(pa.array(v.astype(str).where(v.notna(), None).tolist() if v.dtype == object else v.to_numpy()))
        if self._meta_types is None:
            self._meta_types = [a.type for a in cols]
        return [a if a.type == t else a.cast(t) for a, t in zip(cols, self._meta_types, strict=True)]

    def append(self, block: ExpressionMatrix) -> None:
        n = block.n_samples
        if self._buf is not None and self._fill + n > self._buf.shape[1]:
            self._flush()
        if self._buf is None or self._buf.shape[1] < n:
            dtype = np.float64 if block.values.dtype == np.float64 else np.float32
            if self._buf is not None:
                dtype = self._buf.dtype
            rows = max(n, self._rg_rows) if self.fmt == "parquet" else n
            self._buf = np.empty((len(self.gene_ids), rows), dtype)
        self._pending.append(self._meta_arrays(block))
        np.copyto(self._buf[:, self._fill:self._fill + n], block.values.T, casting="same_kind")
        self._fill += n
        if self.fmt != "parquet":
            self._flush()

    def _table(self):
        """The pending rows as an Arrow table: sample, sample metadata, then one column per gene."""
        import pyarrow as pa

        meta = [pa.concat_arrays(list(parts)) for parts in zip(*self._pending, strict=True)]
        n, buf = self._fill, self._buf
        data, typ, stride = pa.py_buffer(buf), pa.from_numpy_dtype(buf.dtype), buf.strides[0]
        genes = [pa.Array.from_buffers(typ, n, [None, data.slice(j * stride, n * buf.itemsize)])
                 for j in range(buf.shape[0])]
        if self._schema is None:
            names = ["sample", *self._meta_cols, *self.gene_ids]
            self._schema = pa.schema([pa.field(k, a.type) for k, a in zip(names, meta + genes[:1] * len(genes),
                                                                           strict=True)])
        return pa.Table.from_arrays(meta + genes, schema=self._schema)

    def _flush(self) -> None:
        if not self._fill:
            return
        table = self._table()
        if self.fmt == "parquet":
            if self._writer is None:
                self._writer = self._open_parquet()
            self._writer.write_table(table.replace_schema_metadata(self._schema.metadata), row_group_size=self._fill)
        else:
            self._write_text(table)
        del table  # the buffer is reused: nothing may still point at it
        self._pending, self._fill = [], 0

    # ---- parquet
    def _open_parquet(self):
        import pyarrow.parquet as pq

        # the orientation and the sample metadata columns as dgex's write_table records them,
        # so dgex (read / open_matrix) reads its own predictions back as samples x genes
        recorded = {"orientation": "samples_x_genes", "meta_columns": list(self._meta_cols), "transforms": []}
        meta = {**(self._schema.metadata or {}),
                b"dgex": json.dumps(recorded).encode(),
                b"dgex:gene_meta": self.gene_meta.reset_index(names="gene").to_json(orient="records").encode()}
        self._schema = self._schema.with_metadata(meta)
        first = ["sample", *self._meta_cols]
        text = [f.name for f in self._schema if f.name in first and str(f.type) == "string"]
        codec = self.compression
        return pq.ParquetWriter(
            self._tmp, self._schema, compression=codec,
            use_dictionary=text or False,               # floats are never worth a dictionary
            write_statistics=first,                     # stats for 22,000 gene columns would bloat the footer
            use_byte_stream_split=self.gene_ids if codec != "none" else False,
        )

    # ---- csv / tsv
    def _write_text(self, table) -> None:
        import pyarrow.csv as pacsv

        delim = "\t" if self.fmt == "tsv" else ","
        if self._fh is None:
            self._fh = open(self._tmp, "wb")  # noqa: SIM115  (closed in close or discard)
            self._pool = ThreadPoolExecutor(n_threads(), thread_name_prefix="dgex-csv")
            header = io.BytesIO()
            pacsv.write_csv(table.slice(0, 0), header, write_options=pacsv.WriteOptions(delimiter=delim))
            self._fh.write(header.getvalue())
        step = max(1, _CSV_PIECE_BYTES // (10 * table.num_columns))
        opts = pacsv.WriteOptions(include_header=False, delimiter=delim)

        def fmt(start):
            out = io.BytesIO()
            pacsv.write_csv(table.slice(start, step), out, write_options=opts)
            return out.getvalue()

        for text in self._pool.map(fmt, range(0, table.num_rows, step)):
            self._fh.write(text)

    def close(self) -> Path:
        self._flush()
        if self._writer is not None:
            self._writer.close()
        if self._fh is not None:
            self._pool.shutdown()
            self._fh.close()
        if self.fmt in ("csv", "tsv"):
            with atomic_path(gene_meta_path(self.path, self.fmt)) as tmp:
                self.gene_meta.reset_index(names="gene").to_csv(tmp, sep="\t" if self.fmt == "tsv" else ",",
                                                               index=False)
        self._stack.close()  # renames the temporary file onto the final name
        return self.path

    def discard(self) -> None:
        self._pending, self._fill, self._buf = [], 0, None
        with contextlib.suppress(Exception):
            if self._pool is not None:
                self._pool.shutdown(cancel_futures=True)
            if self._writer is not None:
                self._writer.close()
            if self._fh is not None:
                self._fh.close()
        self._stack.__exit__(RuntimeError, RuntimeError("discarded"), None)


def read_gene_meta_from_parquet(path: str | os.PathLike) -> pd.DataFrame:
    """The gene metadata a Parquet prediction file carries (``dgex:gene_meta``)."""
    import pyarrow.parquet as pq

    meta = pq.read_schema(path).metadata or {}
    raw = meta.get(b"dgex:gene_meta")
    if raw is None:
        return pd.DataFrame()
    return pd.DataFrame(json.loads(raw)).set_index("gene")
