"""Reading and writing expression files.

:func:`read` chooses the reader by sniffing the content (magic bytes, HDF5 layout,
the first text line), not only the suffix, and reads through gzip transparently.
Every reader returns an :class:`~dgex_core.matrix.ExpressionMatrix` (samples x
genes) and raises :class:`~dgex_core.errors.DataFormatError` (file, place, what was
expected) on malformed input.

=====================  =================================  =========  ======
format name            what                               read       write
=====================  =================================  =========  ======
``gct``                GCT 1.2 / 1.3 (GenePattern, CMap)  yes        yes
``gctx``               GCTX (HDF5; LINCS / CMap)          yes        yes
``geo_series_matrix``  GEO ``GSE..._series_matrix.txt``   yes
``geo_soft``           GEO SOFT family file (GSE)         yes
``geo_gds``            GEO DataSet SOFT file (GDS)        yes
``csv`` / ``tsv``      delimited table, either orientation yes       yes
``parquet``            Parquet table, either orientation  yes        yes
``h5ad``               AnnData                            yes        yes
``archs4``             ARCHS4 HDF5 gene matrix            yes
=====================  =================================  =========  ======
"""

from __future__ import annotations

import os
import re
import zlib
from pathlib import Path

import h5py

from ..errors import DataFormatError, DgexError
from ..matrix import ExpressionMatrix
from ._common import HDF5_MAGIC, PARQUET_MAGIC, head_bytes

__all__ = ["FORMATS", "WRITE_FORMATS", "open_matrix", "read", "sniff", "write"]

FORMATS = ("gct", "gctx", "geo_series_matrix", "geo_soft", "geo_gds", "csv", "tsv", "parquet", "h5ad", "archs4")
WRITE_FORMATS = ("gct", "gctx", "csv", "tsv", "parquet", "h5ad")

_SUFFIX_FORMAT = {".gct": "gct", ".gctx": "gctx", ".csv": "csv", ".tsv": "tsv", ".txt": "tsv",
                  ".parquet": "parquet", ".pq": "parquet", ".h5ad": "h5ad"}


def sniff(path: str | os.PathLike) -> str:
    """Name the format of a file from its content.

    Returns
    -------
    str
        One of :data:`FORMATS`.

    Raises
    ------
    DataFormatError
        If the file is empty, missing, binary but of no known layout, or text of no
        known kind.
    """
    p = Path(path)
    head = head_bytes(p)
    if head.startswith(HDF5_MAGIC):
        return _sniff_hdf5(p)
    if head.startswith(PARQUET_MAGIC):
        return "parquet"
    if b"\x00" in head[:1024]:
        raise DataFormatError(p, "byte 1", "binary content of no known format",
                              "a text table, GCT, GEO file, or an HDF5 / Parquet file")
    text = head.decode("utf-8", "replace").lstrip("\ufeff")
    first = text.split("\n", 1)[0].strip()
    if first.startswith(("#1.2", "#1.3")):
        return "gct"
    stripped = text.lstrip()
    if stripped.startswith(("!Series_", '"!Series_')):
        return "geo_series_matrix"
    if stripped.startswith("^"):  # a DataSet (GDS) or a series family file (GSE)
        return "geo_gds" if re.search(r"^\^DATASET\b", text, re.MULTILINE | re.IGNORECASE) else "geo_soft"
    if _looks_binary(text):
        raise DataFormatError(p, "byte 1", "binary content of no known format",
                              "a text table, GCT, GEO file, or an HDF5 / Parquet file")
    if first.count("\t") >= 1:
        return "tsv"
    if first.count(",") >= 1:
        return "csv"
    raise DataFormatError(p, "line 1", "not a recognised expression format (no tab or comma in the first line)",
                          "GCT (#1.2/#1.3), GEO series matrix or SOFT, a CSV/TSV table, Parquet, GCTX, h5ad or ARCHS4 HDF5")


def _looks_binary(text: str) -> bool:
    if not text:
        return False
    bad = sum(1 for ch in text[:2048] if ch == "\ufffd" or (ord(ch) < 32 and ch not in "\t\n\r\f"))
    return bad > max(8, len(text[:2048]) // 50)


def _sniff_hdf5(p: Path) -> str:
    try:
        with h5py.File(p, "r") as f:
            if "0/DATA/0/matrix" in f:
                return "gctx"
            if ("X" in f and ("obs" in f or "var" in f)) or f.attrs.get("encoding-type") in ("anndata", b"anndata"):
                return "h5ad"
            if "data/expression" in f and "meta" in f:
                return "archs4"
            top = sorted(f.keys())[:8]
    except (OSError, RuntimeError, KeyError, ValueError) as e:
        raise DataFormatError(p, "HDF5 structure", f"cannot read as HDF5, the file is damaged or truncated ({e})",
                              "a complete HDF5 file") from None
    raise DataFormatError(
        p, "/", f"an HDF5 file of no known layout (top-level nodes: {top})",
        "GCTX (/0/DATA/0/matrix), AnnData h5ad (/X, /obs, /var) or ARCHS4 (/data/expression, /meta)",
    )


def read(path: str | os.PathLike, format: str | None = None, **kwargs) -> ExpressionMatrix:
    """Read an expression file into an :class:`ExpressionMatrix` (samples x genes).

    Parameters
    ----------
    path
        The file; ``.gz`` compression of text formats is handled transparently.
    format
        Force a format (one of :data:`FORMATS`); by default it is sniffed from the content.
    **kwargs
        Passed to the format's reader (e.g. ``rows=``/``cols=`` for GCTX,
        ``orientation=`` for tables, ``platform=`` for a multi-platform SOFT file).

    Raises
    ------
    DataFormatError
        On a malformed file, naming the file, the place and what was expected.
    """
    fmt = format or sniff(path)
    try:
        return _read_as(fmt, path, **kwargs)
    except DgexError:
        raise
    except (OSError, RuntimeError, KeyError, ValueError, EOFError, zlib.error) as e:
        # a damaged file surfacing as a library error deep in h5py / gzip / pyarrow
        if fmt in _BINARY_FORMATS or isinstance(e, (OSError, EOFError, zlib.error, UnicodeError)):
            raise DataFormatError(path, f"{fmt} structure", f"the file is damaged or truncated ({e})",
                                  f"a complete {fmt} file") from None
        raise


_BINARY_FORMATS = ("gctx", "h5ad", "archs4", "parquet")

#: Formats whose orientation (genes as rows or as columns) is read from the data.
TABLE_FORMATS = ("csv", "tsv", "parquet")

#: Formats a platform is chosen in (a series may span several; a GDS names its one).
PLATFORM_FORMATS = ("geo_soft", "geo_gds")


def open_matrix(path: str | os.PathLike, format: str | None = None, *, progress=None, cache: bool | None = None,
                landmark_ids=None, **kwargs):
    """Open an expression file as a lazy, block-addressable samples x genes matrix.

    Nothing but ids and metadata is read: values are read by blocks of samples when
    asked (:class:`~dgex_core.lazy.LazyMatrix`), so memory does not grow with the
    number of samples.

    - GCTX: the matrix dataset itself (already samples x genes on disk).
    - h5ad: ``X`` (or ``layer=``) backed, dense or CSR sparse.
    - ARCHS4: ``data/expression`` (genes x samples) read by sample blocks.
    - text formats (GCT, CSV/TSV, GEO), Parquet, CSC h5ad: read once into the
      sample-major on-disk cache (:mod:`dgex_core.io.cache`), instant afterwards;
      files under ``$DGEX_CACHE_MIN_MB`` (64 MB) are read into memory instead.

    Parameters
    ----------
    format
        Force a format (default: sniffed from the content).
    progress
        ``progress(step, total, info)`` while a cache is built.
    cache
        ``True`` to cache whatever the size, ``False`` never (read into memory);
        default by size.
    platform
        With ``platform=`` (a GEO SOFT family file spanning platforms: which one;
        a GDS: checked); other formats refuse it.
    landmark_ids
        The landmark ids the caller will use: they decide a table's orientation (CSV,
        TSV, Parquet: genes are the axis holding more of them), as in every command;
        ignored by formats whose orientation is fixed.
    **kwargs
        Reader options, as :func:`read` takes them.
    """
    from ..lazy import LazyMatrix

    fmt = format or sniff(path)
    if landmark_ids is not None and fmt in TABLE_FORMATS:
        kwargs["landmark_ids"] = {str(i) for i in landmark_ids}
    if kwargs.get("platform") is not None and fmt not in PLATFORM_FORMATS:
        raise DataFormatError(path, None, f"platform {kwargs['platform']!r} asked of a {fmt} file, which holds one "
                              "platform", "--platform (platform=) only with a GEO SOFT family or DataSet file")
    if "platform" in kwargs and kwargs["platform"] is None:
        del kwargs["platform"]  # not asked: the readers' own default
    try:
        if fmt == "gctx" and not kwargs:
            from .gctx import open_gctx
            return open_gctx(path)
        if fmt == "h5ad" and set(kwargs) <= {"layer", "gene_id_column"}:
            from .h5ad import open_h5ad
            return open_h5ad(path, **kwargs)
        if fmt == "archs4" and set(kwargs) <= {"sample_fields"}:
            from .archs4 import open_archs4
            return open_archs4(path, **kwargs)
    except DgexError:
        raise
    except (OSError, RuntimeError, KeyError, ValueError) as e:
        raise DataFormatError(path, f"{fmt} structure", f"the file is damaged or truncated ({e})",
                              f"a complete {fmt} file") from None
    use_cache = cache if cache is not None else Path(path).stat().st_size >= _min_cache_bytes()
    if not use_cache:
        return LazyMatrix.from_matrix(read(path, fmt, **kwargs))
    from .cache import open_cached

    options = {"format": fmt, **{k: (sorted(v) if isinstance(v, (set, frozenset)) else v) for k, v in kwargs.items()}}
    return open_cached(path, lambda: read(path, fmt, **kwargs), options, progress=progress)


def _min_cache_bytes() -> int:
    from .cache import min_cache_bytes

    return min_cache_bytes()


def _read_as(fmt: str, path, **kwargs) -> ExpressionMatrix:
    if fmt == "gct":
        from .gct import read_gct
        return read_gct(path, **kwargs)
    if fmt == "gctx":
        from .gctx import read_gctx
        return read_gctx(path, **kwargs)
    if fmt == "geo_series_matrix":
        from .geo_series import read_series_matrix
        return read_series_matrix(path, **kwargs)
    if fmt == "geo_soft":
        from .geo_soft import read_soft_matrix
        return read_soft_matrix(path, **kwargs)
    if fmt == "geo_gds":
        from .gds import read_gds
        return read_gds(path, **kwargs)
    if fmt in ("csv", "tsv", "parquet"):
        from .table import read_table
        return read_table(path, format=fmt, **kwargs)
    if fmt == "h5ad":
        from .h5ad import read_h5ad
        return read_h5ad(path, **kwargs)
    if fmt == "archs4":
        from .archs4 import read_archs4
        return read_archs4(path, **kwargs)
    raise DgexError(f"unknown format {fmt!r}; choose one of {FORMATS}")


def format_from_suffix(path: str | os.PathLike) -> str | None:
    """The write format implied by a file name (``.gct``, ``.gctx``, ``.csv``...), ignoring ``.gz``."""
    name = Path(path).name.lower()
    if name.endswith(".gz"):
        name = name[:-3]
    return _SUFFIX_FORMAT.get(Path(name).suffix)


def write(matrix: ExpressionMatrix, path: str | os.PathLike, format: str | None = None, **kwargs) -> Path:
    """Write a matrix atomically (temporary file, then rename) in a format of :data:`WRITE_FORMATS`.

    The format comes from ``format`` or else from the suffix. Returns the path written.
    """
    fmt = format or format_from_suffix(path)
    if fmt not in WRITE_FORMATS:
        raise ValueError(f"cannot write {path}: choose a format among {WRITE_FORMATS} (or a matching suffix)")
    if fmt == "gct":
        from .gct_write import write_gct
        write_gct(matrix, path, **kwargs)
    elif fmt == "gctx":
        from .gctx_write import write_gctx
        write_gctx(matrix, path, **kwargs)
    elif fmt == "h5ad":
        from .h5ad import write_h5ad
        write_h5ad(matrix, path, **kwargs)
    else:
        from .table import write_table
        write_table(matrix, path, format=fmt, **kwargs)
    return Path(path)
