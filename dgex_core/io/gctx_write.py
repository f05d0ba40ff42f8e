"""Writing GCTX files (the HDF5 flavour of GCT) in the Broad layout with h5py directly.

:class:`GCTXWriter` writes a file block of samples by block of samples,
:func:`write_gctx` a whole matrix; the layout and chunk shapes are in
:mod:`dgex_core.io.gctx_layout`, reading is :mod:`dgex_core.io.gctx`.

Writing rules
-------------
- :func:`write_gctx` and :class:`GCTXWriter` write the Broad layout: ids and string
  metadata as fixed-length UTF-8 byte strings (``S{n}``; a missing string is ``-666``),
  numeric metadata as numeric datasets, the matrix deflate-compressed (level 6) in
  chunks chosen like cmapPy's ``set_data_matrix_chunk_size`` (see
  :func:`~dgex_core.io.gctx_layout.broad_chunks`).
- Ids are always written as strings, even when they look like integers.
- Files appear under their final name only once complete (write to a temporary file,
  then rename).
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Sequence
from pathlib import Path

import h5py
import numpy as np
import pandas as pd

from .._atomic import atomic_path
from ..errors import DatasetError
from ..matrix import ExpressionMatrix, as_id_index
from .gct_write import META_MISSING
from .gctx_layout import COL, MATRIX, ROW, VERSION, broad_chunks

__all__ = ["GCTXWriter", "refuse_written_again", "write_gctx"]


def encode_strings(values: Sequence, what: str) -> np.ndarray:
    """Text as a fixed-length UTF-8 byte-string array ``S{n}`` (the Broad's string type)."""
    data = [str(v).encode("utf-8") for v in values]
    if any(b.endswith(b"\x00") for b in data):
        raise DatasetError(f"a {what} ends with a NUL character, which fixed-length HDF5 strings cannot keep")
    width = max([len(b) for b in data], default=1) or 1
    return np.array(data, dtype=f"S{width}")


def meta_array(series: pd.Series, name: str) -> np.ndarray:
    """A metadata column as the array to store: numbers as numbers, anything else as ``S{n}``.

    Integers with missing values become float64 (NaN); booleans without missing values
    stay booleans; text, categories, dates and mixed columns become strings, a missing
    value ``-666``.
    """
    dt = series.dtype
    has_na = bool(series.isna().any())
    if pd.api.types.is_bool_dtype(dt) and not has_na:
        return series.to_numpy(dtype=bool)
    if pd.api.types.is_float_dtype(dt):
        return series.to_numpy(dtype=dt if isinstance(dt, np.dtype) else np.float64, na_value=np.nan)
    if pd.api.types.is_integer_dtype(dt):
        if has_na:
            return series.to_numpy(dtype=np.float64, na_value=np.nan)
        return series.to_numpy(dtype=dt if isinstance(dt, np.dtype) else np.int64)
    cells = [META_MISSING if _is_na(v) else str(v) for v in series.tolist()]
    return encode_strings(cells, f"value of metadata field {name!r}")


def _is_na(v) -> bool:
    try:
        return bool(pd.isna(v))
    except (TypeError, ValueError):
        return False


class GCTXWriter:
    """Write a GCTX file block of samples by block of samples (streaming).

    The matrix dataset grows along samples as blocks are appended; sample ids and
    sample metadata are kept in memory (small next to the values) and written at
    :meth:`close`, when the file is renamed to its final name. Until then the file
    only exists under a hidden temporary name; if the ``with`` block raises, or
    :meth:`discard` is called, nothing is left behind.

    Parameters
    ----------
    path
        The ``.gctx`` file to create (replaced if it exists).
    gene_ids
        The genes, in the column order of the matrix; every block must have them
        (blocks with the same genes in another order are reordered by id).
    gene_meta
        Gene metadata indexed by gene id (optional).
    dtype
        Stored value type, float32 (default) or float64.
    compression, compression_opts
        HDF5 filter for the matrix and metadata; ``None`` for none. Default deflate 6.
    chunks
        Matrix chunk shape (samples, genes); ``None`` for the Broad's rule
        (:func:`~dgex_core.io.gctx_layout.broad_chunks`), ``False`` for contiguous
        storage (only without compression and with ``n_samples`` given).
    n_samples
        The total number of samples, when known: the dataset is then created at its
        final size (not resizable) and :meth:`close` checks the count.

    Examples
    --------
    >>> with GCTXWriter("pred.gctx", target_ids) as w:    # doctest: +SKIP
    ...     for block in blocks:                           # ExpressionMatrix, samples x genes
    ...         w.append(block)
    """

    def __init__(self, path: str | os.PathLike, gene_ids: Sequence | pd.Index,
                 gene_meta: pd.DataFrame | None = None, dtype: np.dtype | type = np.float32, *,
                 compression: str | None = "gzip", compression_opts: int | None = 6,
                 chunks: tuple[int, int] | bool | None = None, n_samples: int | None = None) -> None:
        self.path = Path(path)
        self.dtype = np.dtype(dtype)
        if self.dtype.kind != "f":
            raise ValueError(f"dtype must be float32 or float64, got {self.dtype}")
        self.gene_ids = as_id_index(gene_ids, "gene")
        if not self.gene_ids.is_unique:
            raise DatasetError(f"duplicate gene ids: {self.gene_ids[self.gene_ids.duplicated()][:5].tolist()}")
        self._gene_meta = ExpressionMatrix._meta(gene_meta, self.gene_ids, "gene")
        self._n_expected = n_samples
        self._compression = (compression, compression_opts if compression else None)
        self._sample_ids: list[pd.Index] = []
        self._seen: set[str] = set()
        self._sample_meta: list[pd.DataFrame] = []
        self.n_samples = 0
        self._atomic = atomic_path(self.path)
        tmp = self._atomic.__enter__()
        self.closed = False
        try:
            self._h5 = h5py.File(tmp, "w")
        except BaseException as e:
            self.closed = True
            self._atomic.__exit__(type(e), e, e.__traceback__)
            raise
        try:
            self._ds = self._create_matrix(chunks)
        except BaseException as e:
            self._abort(type(e), e, e.__traceback__)
            raise

    def _create_matrix(self, chunks: tuple[int, int] | bool | None) -> h5py.Dataset:
        n_g = len(self.gene_ids)
        if n_g == 0:
            raise DatasetError(f"{self.path.name}: no genes to write; a GCTX needs at least one gene")
        n_s = self._n_expected
        compression, opts = self._compression
        if chunks is False:
            if compression or n_s is None:
                raise ValueError("contiguous storage (chunks=False) needs compression=None and n_samples")
            return self._h5.create_dataset(MATRIX, shape=(n_s, n_g), dtype=self.dtype)
        if chunks is None or chunks is True:
            chunks = broad_chunks(n_s, n_g, self.dtype.itemsize)
        chunks = (max(1, min(chunks[0], n_s or chunks[0])), max(1, min(chunks[1], n_g)))  # not beyond the data
        shape = (0, n_g) if n_s is None else (n_s, n_g)
        maxshape = (None, n_g) if n_s is None else None
        if n_s == 0:  # HDF5 cannot chunk an empty fixed-size extent
            chunks, compression, opts = None, None, None
        return self._h5.create_dataset(MATRIX, shape=shape, maxshape=maxshape, dtype=self.dtype, chunks=chunks,
                                       compression=compression, compression_opts=opts)

    def __enter__(self) -> GCTXWriter:
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is None:
            self.close()
        else:
            self._abort(exc_type, exc, tb)

    def append(self, block: ExpressionMatrix) -> None:
        """Append a block of samples (samples x genes) after those already written.

        Raises
        ------
        DatasetError
            If the block lacks some of the writer's genes, has others, repeats a sample
            id already written, or would exceed ``n_samples``.
        """
        self._check_open()
        block = self._aligned(block)
        ids = block.sample_ids
        refuse_written_again(self.path, ids, self._seen)
        start, stop = self.n_samples, self.n_samples + block.n_samples
        if self._n_expected is not None and stop > self._n_expected:
            raise DatasetError(f"{self.path.name}: {stop} samples appended but n_samples={self._n_expected}")
        if self._ds.maxshape[0] is None:
            self._ds.resize((stop, self._ds.shape[1]))
        if block.n_samples:
            self._ds[start:stop] = np.asarray(block.values, dtype=self.dtype)
        self._seen.update(ids)
        self._sample_ids.append(ids)
        self._sample_meta.append(block.sample_meta)
        self.n_samples = stop

    def _aligned(self, block: ExpressionMatrix) -> ExpressionMatrix:
        if block.gene_ids.equals(self.gene_ids):
            return block
        missing = self.gene_ids.difference(block.gene_ids)
        extra = block.gene_ids.difference(self.gene_ids)
        if len(missing) or len(extra):
            raise DatasetError(
                f"{self.path.name}: the block's genes differ from the writer's: {len(missing)} missing "
                f"(e.g. {missing[:5].tolist()}), {len(extra)} extra (e.g. {extra[:5].tolist()})"
            )
        return block.subset(genes=self.gene_ids)

    def close(self) -> Path:
        """Write ids and metadata, close, and move the file to its final name.

        Returns
        -------
        pathlib.Path
            The final path.
        """
        if self.closed:
            return self.path
        try:
            if self._n_expected is not None and self.n_samples != self._n_expected:
                raise DatasetError(f"{self.path.name}: {self.n_samples} samples written, n_samples={self._n_expected}")
            self._finish()
        except BaseException as e:
            self._abort(type(e), e, e.__traceback__)
            raise
        self.closed = True
        self._atomic.__exit__(None, None, None)
        return self.path

    def discard(self) -> None:
        """Drop everything written; no file is left."""
        if not self.closed:
            err = RuntimeError("discarded")
            self._abort(RuntimeError, err, None)

    def _abort(self, exc_type, exc, tb) -> None:
        if self.closed:
            return
        self.closed = True
        try:
            self._h5.close()
        finally:
            self._atomic.__exit__(exc_type, exc, tb)

    def __del__(self) -> None:  # a writer dropped without close() leaves no temporary file
        if not getattr(self, "closed", True):
            with contextlib.suppress(Exception):
                self.discard()

    def _check_open(self) -> None:
        if self.closed:
            raise ValueError(f"{self.path.name}: the writer is closed")

    def _finish(self) -> None:
        h5 = self._h5
        h5.attrs["version"] = np.bytes_(VERSION)
        h5.attrs["src"] = self.path.name
        sample_ids = _concat_index(self._sample_ids)
        sample_meta = _concat_meta(self._sample_meta, sample_ids)
        self._write_meta(ROW, self.gene_ids, self._gene_meta)
        self._write_meta(COL, sample_ids, sample_meta)
        h5.close()

    def _write_meta(self, group_name: str, ids: pd.Index, meta: pd.DataFrame) -> None:
        group = self._h5.create_group(group_name, track_order=True)  # fields read back in this order
        self._dataset(group, "id", encode_strings(ids, "id"))
        for name in meta.columns:
            key = str(name)
            if key == "id":
                if [str(v) for v in meta[name]] == list(ids):
                    continue  # a copy of the ids (CMap GCT 1.3 plates have one): the ids are already there
                raise DatasetError("a metadata field named 'id' differs from the ids; rename it before writing GCTX")
            if "/" in key or key == ".":
                raise DatasetError(f"metadata field name {key!r} cannot be an HDF5 dataset name (no '/'); rename it")
            self._dataset(group, key, meta_array(meta[name], key))

    def _dataset(self, group: h5py.Group, name: str, data: np.ndarray) -> None:
        compression, opts = self._compression
        if data.size == 0:
            compression, opts = None, None
        group.create_dataset(name, data=data, compression=compression, compression_opts=opts)


def _concat_index(parts: list[pd.Index]) -> pd.Index:
    if not parts:
        return pd.Index([], dtype=object, name="sample")
    return pd.Index(np.concatenate([p.to_numpy(dtype=object) for p in parts]), dtype=object, name="sample")


def _concat_meta(parts: list[pd.DataFrame], ids: pd.Index) -> pd.DataFrame:
    parts = [p for p in parts if len(p)]
    if not parts:
        return pd.DataFrame(index=ids)
    meta = pd.concat(parts, axis=0, sort=False)
    meta.index = ids
    return meta


def write_gctx(matrix: ExpressionMatrix, path: str | os.PathLike, *, compression: str | None = "gzip",
               compression_opts: int | None = 6, chunks: tuple[int, int] | bool | None = None,
               dtype: np.dtype | type | None = None) -> Path:
    """Write a samples x genes matrix as a GCTX file in the Broad layout, atomically.

    Parameters
    ----------
    matrix
        Values (n_samples, n_genes) with ids and metadata (stored under
        ``/0/META/COL`` for samples and ``/0/META/ROW`` for genes).
    path
        The file to create (replaced if it exists).
    compression, compression_opts
        HDF5 filter; default deflate level 6 as the Broad; ``None`` for none.
    chunks
        Matrix chunk shape (samples, genes); ``None`` for the Broad's rule
        (:func:`~dgex_core.io.gctx_layout.broad_chunks`); ``False`` for contiguous
        storage (with ``compression=None``).
    dtype
        Stored value type (default: the matrix's, float32 or float64).

    Returns
    -------
    pathlib.Path
        ``path``.

    Raises
    ------
    DatasetError
        If a metadata field name cannot be an HDF5 name, or a field named ``id``
        differs from the ids.
    """
    with GCTXWriter(path, matrix.gene_ids, matrix.gene_meta, dtype or matrix.values.dtype,
                    compression=compression, compression_opts=compression_opts, chunks=chunks,
                    n_samples=matrix.n_samples) as w:
        w.append(matrix)
    return Path(path)


def refuse_written_again(path: Path, ids, seen: set) -> None:
    """Refuse sample ``ids`` of which some are in ``seen`` (already written to ``path``).

    Raises
    ------
    DatasetError
        Naming the file and the first repeated ids.
    """
    again = [s for s in ids if s in seen]
    if again:
        raise DatasetError(f"{path.name}: sample ids already written: {again[:5]}")
