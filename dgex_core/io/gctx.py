"""Reading GCTX files (the HDF5 flavour of GCT; LINCS / CMap) with h5py directly.

:class:`GCTXFile` opens a file and reads samples and genes on demand,
:func:`read_gctx` reads it (or part of it) whole, :func:`open_gctx` opens it as a
:class:`~dgex_core.lazy.LazyMatrix`. The layout (samples x genes on disk) is in
:mod:`dgex_core.io.gctx_layout`; writing is :mod:`dgex_core.io.gctx_write`.

Reading rules
-------------
- Strings are fixed-length (or variable-length) bytes, decoded as UTF-8 with
  replacement. Ids may be stored as integers (Entrez ids) and are turned into their
  decimal text: ids are always ``str``.
- Metadata keeps the type it is stored with (numbers stay numbers, strings stay
  strings); in string fields the missing markers (``-666``, ``na``, ``NaN``, empty...)
  become NaN. Numeric fields are returned as stored (no -666 conversion).
- Only what is asked is read: :meth:`GCTXFile.read` takes sample and gene selections
  (ids or integer positions), sorts the samples, reads them in bounded batches (a
  slice over neighbouring chunk bands that hold several wanted rows, one h5py point
  selection for scattered ones: see :func:`plan_reads`) and puts the rows back in the order asked;
  a range of samples is read straight into the result. Ids and metadata are read for
  the asked samples only. Genes are read as the span from the first to the last gene
  asked, then picked in memory: a few genes across all samples still read every
  sample's row (that is how the file is laid out, and chunks hold ~1,000 genes), so
  iterate with :meth:`GCTXFile.iter_sample_blocks` to bound memory.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator, Sequence
from pathlib import Path

import h5py
import numpy as np
import pandas as pd

from ..backends import Backend, _ReopensFile
from ..errors import DataFormatError, DatasetError
from ..lazy import LazyMatrix
from ..matrix import ExpressionMatrix, Provenance, as_id_index
from ._common import GZIP_MAGIC, HDF5_MAGIC, MISSING_TOKENS, head_bytes
from .gctx_layout import COL, MATRIX, ROW

__all__ = ["GCTXFile", "open_gctx", "plan_reads", "read_gctx"]

#: Most bytes of wanted rows one HDF5 read gathers when samples are not a plain range
#: (bounds the temporary buffer of :meth:`GCTXFile.read` besides its result).
READ_BLOCK_BYTES = 4 * 1024 * 1024
#: Most bytes one slice of neighbouring chunk bands may span (:func:`plan_reads`).
SPAN_BYTES = 64 * 1024 * 1024
#: Wanted rows per chunk band, on average over a run of bands, above which the run is read as a slice.
MIN_ROWS_PER_BAND = 2

Selector = slice | Sequence | np.ndarray | pd.Index | str | int | None


# ============================================================== pure helpers
def plan_reads(positions: np.ndarray, row_bytes: int, max_bytes: int = READ_BLOCK_BYTES,
               band: int | None = None) -> list[tuple[slice | np.ndarray, np.ndarray]]:
    """Split sorted sample positions into reads of bounded memory.

    Without ``band`` (contiguous storage), consecutive positions are taken in batches
    of at most ``max_bytes`` of rows. A dense batch (at least half the rows of its span
    wanted) is read as one slice and the rows picked in memory; a sparse one as one
    h5py point selection (sorted, unique indices, as h5py requires).

    With ``band`` (samples per storage chunk), HDF5 reads or decompresses whole chunks
    anyway, so runs of neighbouring chunk bands holding at least
    :data:`MIN_ROWS_PER_BAND` wanted rows each on average are read as one slice
    (from the first to the last wanted row, at most ``max(max_bytes, SPAN_BYTES)``
    of rows): a point selection there costs several times more (it copies row by
    row). Bands with a lone wanted row keep the point selection.

    Parameters
    ----------
    positions
        Sorted, unique sample positions.
    row_bytes
        Bytes read per sample.
    max_bytes
        Most bytes of wanted rows per read (a dense slice may span twice that).
    band
        Samples per storage chunk of the dataset, or ``None``.

    Returns
    -------
    list of (selection, index)
        ``selection`` is a ``slice`` or an array of positions to read along samples;
        ``index`` are the indices into ``positions`` it serves.
    """
    max_rows = max(1, max_bytes // max(row_bytes, 1))
    reads: list[tuple[slice | np.ndarray, np.ndarray]] = []
    if not band or band < 2 or positions.size == 0:
        for b in range(0, positions.size, max_rows):
            idx = np.arange(b, min(b + max_rows, positions.size))
            rows = positions[idx]
            start, stop = int(rows[0]), int(rows[-1]) + 1
            reads.append((slice(start, stop) if 2 * idx.size >= stop - start else rows, idx))
        return reads
    span_rows = max(max_rows, max(max_bytes, SPAN_BYTES) // max(row_bytes, 1), 1)
    bands = positions // band
    # runs of positions whose chunk bands are neighbours (no untouched band between them)
    cuts = np.flatnonzero(np.diff(bands) > 1) + 1
    sparse: list[np.ndarray] = []
    for run in np.split(np.arange(positions.size), cuts):
        n_bands = int(bands[run[-1]] - bands[run[0]]) + 1
        if run.size < MIN_ROWS_PER_BAND * n_bands:
            sparse.append(run)
            continue
        s = 0
        while s < run.size:  # slices of at most span_rows rows
            first = int(positions[run[s]])
            e = s + int(np.searchsorted(positions[run[s:]], first + span_rows, side="left"))
            idx = run[s:max(e, s + 1)]
            reads.append((slice(first, int(positions[idx[-1]]) + 1), idx))
            s = max(e, s + 1)
    if sparse:
        rest = np.concatenate(sparse)
        for b in range(0, rest.size, max_rows):
            idx = rest[b:b + max_rows]
            reads.append((positions[idx], idx))
    return reads


def decode_strings(raw: np.ndarray) -> np.ndarray:
    """Fixed- or variable-length bytes as an object array of ``str`` (UTF-8, replacement)."""
    return np.array([v.decode("utf-8", "replace") if isinstance(v, bytes) else str(v) for v in raw.tolist()],
                    dtype=object)


def meta_column(raw: np.ndarray) -> np.ndarray:
    """A metadata dataset's values as returned: strings decoded with missing -> NaN, numbers as stored."""
    if raw.dtype.kind in "SOUa":
        text = decode_strings(raw)
        missing = np.array([t.strip().lower() in MISSING_TOKENS for t in text], dtype=bool)
        text[missing] = np.nan
        return text
    return raw


# ============================================================== reading
class GCTXFile:
    """An open GCTX file: ids, metadata and lazy, block-wise access to the matrix.

    The matrix is **samples x genes** (the stored orientation). Nothing but the ids'
    shapes is read when the file is opened; ids and metadata are read on first use.

    Parameters
    ----------
    path
        The ``.gctx`` file.

    Attributes
    ----------
    path : pathlib.Path
    shape : tuple of int
        (n_samples, n_genes).
    dtype : numpy.dtype
        The stored value type (float32 or float64).

    Raises
    ------
    DataFormatError
        If the file is not HDF5 (e.g. a text GCT named ``.gctx``), lacks a GCTX node
        (named), or its id arrays disagree with the matrix shape.

    Examples
    --------
    >>> with GCTXFile("level3.gctx") as f:                               # doctest: +SKIP
    ...     lm = f.read(genes=landmark_ids)                              # all samples
    ...     for block in f.iter_sample_blocks(10_000, genes=landmark_ids):
    ...         ...
    """

    def __init__(self, path: str | os.PathLike) -> None:
        self.path = Path(path)
        self._h5 = _open_hdf5(self.path)
        try:
            self._ds = self._node(MATRIX, h5py.Dataset)
            self._id_ds = {"row": self._node(f"{ROW}/id", h5py.Dataset), "col": self._node(f"{COL}/id", h5py.Dataset)}
            self._check_shapes()
            self._check_written()
        except BaseException:
            self._h5.close()
            raise
        self._shape: tuple[int, int] = tuple(self._ds.shape)  # type: ignore[assignment]
        self._dtype = self._ds.dtype
        self._raw_ids: dict[str, np.ndarray] = {}
        self._ids: dict[str, pd.Index] = {}
        self._fields: dict[str, dict[str, h5py.Dataset]] = {}
        self._raw_meta: dict[tuple[str, str], np.ndarray] = {}

    # ----------------------------------------------------------- plumbing
    def __enter__(self) -> GCTXFile:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def close(self) -> None:
        """Close the HDF5 file (idempotent)."""
        self._h5.close()

    def __repr__(self) -> str:
        return f"<GCTXFile {self.path.name}: {self.shape[0]} samples x {self.shape[1]} genes, {self.dtype}>"

    def _node(self, name: str, kind: type) -> h5py.Dataset | h5py.Group:
        obj = self._h5.get(name)
        if not isinstance(obj, kind):
            found = "missing" if obj is None else f"a {type(obj).__name__}, not a {kind.__name__}"
            raise DataFormatError(self.path, name, f"GCTX node {name} is {found}",
                                  f"a GCTX file with {MATRIX}, {ROW}/id and {COL}/id")
        return obj

    def _check_shapes(self) -> None:
        ds = self._ds
        if ds.ndim != 2 or ds.dtype.kind not in "fiu":
            raise DataFormatError(self.path, MATRIX, f"a {ds.ndim}-D {ds.dtype} dataset",
                                  "a 2-D float matrix, samples x genes")
        n_s, n_g = ds.shape
        n_row, n_col = (self._id_ds["row"].shape, self._id_ds["col"].shape)
        if n_row != (n_g,) or n_col != (n_s,):
            hint = " (is the matrix stored untransposed, genes x samples?)" if n_row == (n_s,) and n_col == (n_g,) else ""
            raise DataFormatError(
                self.path, f"{ROW}/id, {COL}/id",
                f"{n_row[0] if n_row else '?'} row (gene) ids and {n_col[0] if n_col else '?'} column (sample) ids "
                f"for a {MATRIX} of shape {ds.shape}{hint}",
                f"{n_g} gene ids and {n_s} sample ids (the matrix is stored samples x genes)",
            )

    def _check_written(self) -> None:
        """Refuse a matrix whose declared size the file never stored: HDF5 reads chunks
        never written as zeros, so a 5 MB file declaring 3,000,000 samples would be
        read (and predicted) as millions of all-zero profiles."""
        ds = self._ds
        if ds.size == 0:
            return
        if ds.chunks is None:
            if ds.id.get_storage_size() == 0:
                raise DataFormatError(self.path, MATRIX, f"the {ds.shape[0]:,} x {ds.shape[1]:,} matrix was "
                                      "declared but never written (no storage allocated)",
                                      "a complete GCTX file (was its writer interrupted?)")
            return
        n_chunks = 1
        for n, c in zip(ds.shape, ds.chunks, strict=True):
            n_chunks *= -(-n // c)
        written = ds.id.get_num_chunks()
        if written < n_chunks:
            raise DataFormatError(
                self.path, MATRIX, f"{n_chunks - written:,} of the {n_chunks:,} chunks of the {ds.shape[0]:,} x "
                f"{ds.shape[1]:,} matrix were never written (HDF5 would read them as zeros)",
                "a complete GCTX file (was its writer interrupted?)")

    # ----------------------------------------------------------- ids, meta
    @property
    def shape(self) -> tuple[int, int]:
        """(n_samples, n_genes)."""
        return self._shape

    @property
    def dtype(self) -> np.dtype:
        """The stored value type."""
        return self._dtype

    @property
    def chunks(self) -> tuple[int, int] | None:
        """The stored chunk shape (samples, genes), ``None`` for contiguous storage."""
        return self._ds.chunks

    # Ids and metadata are read lazily. Genes: read whole once and cached. Samples: a range
    # reads only that slice of each 1-D dataset, a few scattered samples a point
    # selection, anything else reads (and caches) the whole dataset once.
    def _n(self, axis: str) -> int:
        return self.shape[1] if axis == "row" else self.shape[0]

    def _raw_id(self, axis: str) -> np.ndarray:
        """All ids of an axis as stored, checked for type and duplicates (cached)."""
        if axis not in self._raw_ids:
            node = f"{ROW if axis == 'row' else COL}/id"
            raw = _read_dataset(self._id_ds[axis], self.path, node)
            _check_raw_ids(raw, self.path, node)
            self._raw_ids[axis] = raw
        return self._raw_ids[axis]

    def _ids_at(self, axis: str, positions: np.ndarray | None) -> pd.Index:
        """The ids at ``positions`` (all when ``None``) as a ``str`` index."""
        name = "gene" if axis == "row" else "sample"
        if positions is None or axis in self._ids or axis == "row":  # gene ids: few, reused, cached
            full = self._id_index(axis)
            return full if positions is None else full[positions]
        if axis in self._raw_ids:
            return as_id_index(self._raw_ids[axis][positions], name)
        node = f"{ROW if axis == 'row' else COL}/id"
        raw = self._read_1d_at(self._id_ds[axis], node, positions)
        if raw is None:
            return as_id_index(self._raw_id(axis)[positions], name)
        _check_raw_ids(raw, self.path, node)
        return as_id_index(raw, name)

    def _read_1d_at(self, ds: h5py.Dataset, node: str, positions: np.ndarray) -> np.ndarray | None:
        """Values of a 1-D dataset at a few positions (a slice or a point selection),
        ``None`` when so many are asked that reading it whole is better."""
        if _is_range(positions):
            return _read_dataset(ds, self.path, node, np.s_[positions[0] : positions[-1] + 1]).reshape(-1)
        if 0 < positions.size * 4 <= ds.shape[0]:
            order = np.argsort(positions)
            raw = np.empty(positions.size, dtype=ds.dtype)
            raw[order] = _read_dataset(ds, self.path, node, positions[order]).reshape(-1)
            return raw
        return None

    def _id_index(self, axis: str) -> pd.Index:
        if axis not in self._ids:
            self._ids[axis] = as_id_index(self._raw_id(axis), "gene" if axis == "row" else "sample")
        return self._ids[axis]

    @property
    def row_ids(self) -> pd.Index:
        """Gene (row) ids, ``str``."""
        return self._id_index("row")

    @property
    def col_ids(self) -> pd.Index:
        """Sample (column) ids, ``str``."""
        return self._id_index("col")

    gene_ids = row_ids
    sample_ids = col_ids

    def _meta_fields(self, axis: str) -> dict[str, h5py.Dataset]:
        """The metadata datasets of an axis (``id`` excluded), shapes checked, nothing read."""
        if axis not in self._fields:
            group_name = ROW if axis == "row" else COL
            group = self._node(group_name, h5py.Group)
            n = self._n(axis)
            fields = {}
            for name, obj in group.items():
                if name == "id" or not isinstance(obj, h5py.Dataset):
                    continue
                if obj.shape not in ((n,), (n, 1)):
                    raise DataFormatError(self.path, f"{group_name}/{name}", f"a metadata field of shape {obj.shape}",
                                          f"one value per {'gene' if axis == 'row' else 'sample'}: shape ({n},)")
                fields[name] = obj
            self._fields[axis] = fields
        return self._fields[axis]

    def _field_at(self, axis: str, name: str, ds: h5py.Dataset, positions: np.ndarray | None) -> np.ndarray:
        key = (axis, name)
        raw = None
        if key not in self._raw_meta and positions is not None and axis == "col":  # gene metadata is cached whole
            raw = self._read_1d_at(ds, ds.name, positions)
        if raw is None:
            if key not in self._raw_meta:
                self._raw_meta[key] = _read_dataset(ds, self.path, ds.name).reshape(-1)
            full = self._raw_meta[key]
            raw = full if positions is None else full[positions]
        return meta_column(raw)

    def _meta(self, axis: str, positions: np.ndarray | None, ids: pd.Index | None = None) -> pd.DataFrame:
        """Metadata of the items at ``positions`` (all when ``None``), indexed by ``ids``."""
        if ids is None:
            ids = self._ids_at(axis, positions)
        data = {name: self._field_at(axis, name, ds, positions) for name, ds in self._meta_fields(axis).items()}
        return pd.DataFrame(data, index=ids)

    def row_meta(self) -> pd.DataFrame:
        """Gene metadata, one row per gene, indexed by gene id (``id`` itself excluded)."""
        return self._meta("row", None)

    def col_meta(self) -> pd.DataFrame:
        """Sample metadata, one row per sample, indexed by sample id (``id`` itself excluded)."""
        return self._meta("col", None)

    gene_meta = row_meta
    sample_meta = col_meta

    # ----------------------------------------------------------- selection
    def _positions(self, selector: Selector, axis: str) -> np.ndarray | None:
        """Positions asked by ``selector`` in its order; ``None`` for everything."""
        if selector is None:
            return None
        n = self.shape[1] if axis == "row" else self.shape[0]
        what = "gene" if axis == "row" else "sample"
        if isinstance(selector, slice):
            return np.arange(n)[selector]
        if isinstance(selector, (str, bytes, int, np.integer)):
            selector = [selector]
        arr = np.asarray(selector)
        if arr.size == 0:
            return np.arange(0)
        if arr.dtype.kind == "b":
            if arr.shape != (n,):
                raise DatasetError(f"{self.path.name}: a boolean {what} mask has {arr.size} values for {n} {what}s")
            return np.flatnonzero(arr)
        if arr.dtype.kind in "iu":
            pos = arr.astype(np.int64)
            bad = (pos < -n) | (pos >= n)
            if bad.any():
                raise DatasetError(f"{self.path.name}: {what} positions out of range 0..{n - 1}: "
                                   f"{pos[bad][:5].tolist()} (pass ids as strings, positions as integers)")
            pos = np.where(pos < 0, pos + n, pos)
        else:
            wanted = as_id_index(arr.ravel())
            pos = self._id_index(axis).get_indexer(wanted)
            if (pos < 0).any():
                raise DatasetError(f"{self.path.name}: {int((pos < 0).sum())} of {len(wanted)} requested {what} ids "
                                   f"are not in the file, e.g. {wanted[pos < 0][:5].tolist()}")
        if np.unique(pos).size != pos.size:
            dup = pd.Index(pos).duplicated()
            raise DatasetError(f"{self.path.name}: {what}s asked more than once (positions {pos[dup][:5].tolist()})")
        return pos

    # ----------------------------------------------------------- values
    def read(self, samples: Selector = None, genes: Selector = None, *,
             dtype: np.dtype | type | None = None, meta: bool = True) -> ExpressionMatrix:
        """Read the values of some samples and genes, in the order asked.

        Parameters
        ----------
        samples, genes
            What to read: ``None`` (all), a slice of positions, integer positions, a
            boolean mask, or ids (strings; an integer id such as an Entrez id must be
            given as text, since integers are positions).
        dtype
            Value type of the result (default: as stored).
        meta
            Whether to attach sample and gene metadata.

        Returns
        -------
        ExpressionMatrix
            Shape (len(samples), len(genes)), rows and columns in the order asked.

        Raises
        ------
        DatasetError
            If an id is not in the file, a position is out of range, or an item is
            asked twice.
        DataFormatError
            If the stored data cannot be read (damaged file).
        """
        si = self._positions(samples, "col")
        gi = self._positions(genes, "row")
        out_dtype = np.dtype(dtype) if dtype is not None else self.dtype
        values = self._read_values(si, gi, out_dtype)
        return self._matrix(values, si, gi, meta)

    def iter_sample_blocks(self, block_size: int = 10_000, genes: Selector = None, *,
                           dtype: np.dtype | type | None = None, meta: bool = True) -> Iterator[ExpressionMatrix]:
        """Yield consecutive blocks of samples (all samples, in file order).

        Parameters
        ----------
        block_size
            Samples per block (the last block may be smaller). Memory is
            ``block_size x len(genes)`` values.
        genes, dtype, meta
            As in :meth:`read`.

        Yields
        ------
        ExpressionMatrix
            Blocks of shape (<= block_size, n_genes asked); concatenated along samples
            they give ``read(genes=genes)``.
        """
        if block_size < 1:
            raise ValueError(f"block_size must be a positive number of samples, got {block_size}")
        gi = self._positions(genes, "row")
        for start in range(0, self.shape[0], block_size):
            si = np.arange(start, min(start + block_size, self.shape[0]))
            out_dtype = np.dtype(dtype) if dtype is not None else self.dtype
            yield self._matrix(self._read_values(si, gi, out_dtype), si, gi, meta)

    def _matrix(self, values: np.ndarray, si: np.ndarray | None, gi: np.ndarray | None, meta: bool) -> ExpressionMatrix:
        sample_ids = self._ids_at("col", si)
        gene_ids = self._ids_at("row", gi)
        smeta = self._meta("col", si, sample_ids) if meta else None
        gmeta = self._meta("row", gi, gene_ids) if meta else None
        prov = Provenance(str(self.path), "gctx")
        return ExpressionMatrix(values, sample_ids, gene_ids, smeta, gmeta, prov)

    def _read_values(self, si: np.ndarray | None, gi: np.ndarray | None, dtype: np.dtype) -> np.ndarray:
        n_s, n_g = self.shape
        rows = np.arange(n_s) if si is None else si
        out = np.empty((rows.size, n_g if gi is None else gi.size), dtype=dtype)
        if out.size == 0:
            return out
        try:
            if gi is None and _is_range(rows):
                self._ds.read_direct(out, source_sel=np.s_[rows[0] : rows[-1] + 1])
            else:
                self._gather(rows, gi, out)
        except OSError as e:
            raise DataFormatError(self.path, MATRIX, f"cannot read the stored values ({e})",
                                  "an undamaged file (download it again?)") from None
        return out

    def _gather(self, rows: np.ndarray, gi: np.ndarray | None, out: np.ndarray) -> None:
        """Fill ``out`` (rows asked x genes asked) reading sorted runs of samples."""
        order = np.argsort(rows, kind="stable")
        sorted_rows = rows[order]
        g0, g1 = (0, self.shape[1]) if gi is None else (int(gi.min()), int(gi.max()) + 1)
        local_genes = None if gi is None else gi - g0
        row_bytes = (g1 - g0) * self.dtype.itemsize
        band = self._ds.chunks[0] if self._ds.chunks else None
        for sel, idx in plan_reads(sorted_rows, row_bytes, READ_BLOCK_BYTES, band):
            if isinstance(sel, slice):
                picked = self._ds[sel, g0:g1][sorted_rows[idx] - sel.start]
            else:
                picked = self._ds[sel, g0:g1]
            out[order[idx]] = picked if local_genes is None else picked[:, local_genes]


def _is_range(rows: np.ndarray) -> bool:
    return rows.size > 0 and rows[-1] - rows[0] + 1 == rows.size and bool(np.all(np.diff(rows) == 1))


def _open_hdf5(path: Path) -> h5py.File:
    head_bytes(path, 8)  # a clear error for a missing or empty file
    with open(path, "rb") as fh:
        head = fh.read(8)
    if not head.startswith(HDF5_MAGIC):
        if head.startswith(GZIP_MAGIC):
            hint = "; it is gzip-compressed: decompress it first (gunzip)"
        elif head.startswith(b"#1.") or head[:1].isalpha():
            hint = "; it looks like a text file (a GCT?): read it with dgex_core.io.read"
        else:
            hint = ""
        raise DataFormatError(path, "byte 1", f"not an HDF5 file{hint}", "a GCTX file (HDF5)")
    try:
        return h5py.File(path, "r")  # reads are planned chunk by chunk: the default chunk cache suffices
    except OSError as e:
        raise DataFormatError(path, "HDF5 header", f"cannot open as HDF5 ({e})",
                              "a complete GCTX (HDF5) file") from None


def _read_dataset(ds: h5py.Dataset, path: Path, node: str, sel=()) -> np.ndarray:
    try:
        return ds[sel]
    except (OSError, TypeError) as e:
        raise DataFormatError(path, node, f"cannot read ({e})", "a readable HDF5 dataset") from None


def _check_raw_ids(raw: np.ndarray, path: Path, node: str) -> None:
    if raw.dtype.kind not in "SOUiuf":
        raise DataFormatError(path, node, f"ids of type {raw.dtype}", "strings or integers")
    uniq, counts = np.unique(raw, return_counts=True)
    if uniq.size != raw.size:
        dup = as_id_index(uniq[counts > 1][:5]).tolist()
        raise DataFormatError(path, node, f"duplicate ids, e.g. {dup}", "each id once")


def read_gctx(path: str | os.PathLike, *, samples: Selector = None, genes: Selector = None,
              rows: Selector = None, cols: Selector = None,
              dtype: np.dtype | type | None = None) -> ExpressionMatrix:
    """Read a GCTX file, or some of its samples and genes, as a samples x genes matrix.

    Parameters
    ----------
    path
        The ``.gctx`` file.
    samples, genes
        What to read (see :meth:`GCTXFile.read`); default everything.
    rows, cols
        GCT-vocabulary aliases: ``rows`` are genes, ``cols`` samples. Give either the
        alias or the name, not both.
    dtype
        Value type of the result (default: as stored).

    Returns
    -------
    ExpressionMatrix
        Shape (n_samples asked, n_genes asked), with metadata.

    Raises
    ------
    DataFormatError
        If the file is not a readable GCTX (see :class:`GCTXFile`).
    DatasetError
        If a requested id is not in the file.
    """
    if rows is not None:
        if genes is not None:
            raise ValueError("give genes= or its alias rows=, not both")
        genes = rows
    if cols is not None:
        if samples is not None:
            raise ValueError("give samples= or its alias cols=, not both")
        samples = cols
    with GCTXFile(path) as f:
        return f.read(samples, genes, dtype=dtype)


class GctxBackend(_ReopensFile, Backend):
    """The values of an open GCTX file, read through its own planned reads; pickled as
    its path, so a Dask worker that receives it opens the file itself."""

    def __init__(self, path: str | os.PathLike, _file: GCTXFile | None = None) -> None:
        self._args = (os.path.abspath(path),)  # reopened by that path on a worker, wherever it runs
        self.file = _file or GCTXFile(path)
        self.shape, self.dtype = tuple(self.file.shape), np.dtype(self.file.dtype)
        self.chunk_rows = self.file.chunks[0] if self.file.chunks else None
        self._lock = threading.Lock()

    def read(self, rows, cols):
        with self._lock:
            return self.file._read_values(np.asarray(rows, dtype=np.int64),
                                          None if cols is None else np.asarray(cols, np.int64), self.dtype)

    def close(self) -> None:
        self.file.close()


def open_gctx(path: str | os.PathLike) -> LazyMatrix:
    """A GCTX file as a :class:`~dgex_core.lazy.LazyMatrix`: ids and metadata read, values on demand.

    Reads go through :meth:`GCTXFile._read_values` (sorted, batched, bounded
    memory); the file stays open until the matrix is closed.
    """
    f = GCTXFile(path)
    try:
        backend = GctxBackend(path, f)
        return LazyMatrix(backend, f.col_ids, f.row_ids, f.col_meta(), f.row_meta(),
                          Provenance(str(f.path), "gctx"))
    except BaseException:
        f.close()
        raise
