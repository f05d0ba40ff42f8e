"""Writing GCT 1.2 and 1.3 text files: the file layout is described in
:mod:`dgex_core.io.gct` (the reader); this module turns a samples x genes matrix into
those genes x samples lines, values and metadata as text that reads back the same.

Writing rules
-------------
- :func:`write_gct` writes GCT 1.3 (gene and sample metadata) or 1.2 (``Description``
  only), atomically, gzip-compressed when the name ends in ``.gz``.
- float32 values are written with the fewest digits that read back to the same
  float32; float64 with Python's shortest round-trip ``repr``. NaN is ``NaN``.
- Missing metadata is written ``-666`` (the CMap convention), the filler of the
  column-metadata lines ``na``.
"""

from __future__ import annotations

import gzip
import io
import os
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import IO

import numpy as np
import pandas as pd

from .._atomic import atomic_path
from ..errors import DatasetError
from ..matrix import ExpressionMatrix

__all__ = ["format_values", "write_gct"]

#: Metadata written for a missing value, and the filler of the column-metadata lines.
META_MISSING = "-666"
FILLER = "na"


# ============================================================== pure helpers
def format_values(values: np.ndarray) -> np.ndarray:
    """Text of each value that reads back to exactly the same number.

    Parameters
    ----------
    values
        1-D or 2-D float array (float32 or float64).

    Returns
    -------
    numpy.ndarray
        Object array of ``str`` of the same shape: float64 in Python's shortest
        round-trip ``repr``; float32 with the fewest significant digits (6 to 9) that
        parse back to the same float32. NaN is ``"NaN"``, infinities ``"inf"``/``"-inf"``.
    """
    arr = np.asarray(values)
    flat = arr.ravel()
    if arr.dtype == np.float32:
        out = _format_float32(flat)
    else:
        out = np.array([repr(v) for v in flat.astype(np.float64).tolist()], dtype=object)
    out[np.isnan(flat)] = "NaN"
    return out.reshape(arr.shape)


def _format_float32(flat: np.ndarray) -> np.ndarray:
    out = np.empty(flat.size, dtype=object)
    todo = np.flatnonzero(np.isfinite(flat))
    out[~np.isfinite(flat)] = [repr(v) for v in flat[~np.isfinite(flat)].astype(np.float64).tolist()]
    for digits in (6, 7, 8, 9):  # 9 significant digits always round-trip a float32
        if todo.size == 0:
            break
        fmt = f"%.{digits}g"
        text = [fmt % v for v in flat[todo].astype(np.float64).tolist()]
        back = np.array(text, dtype=np.float64).astype(np.float32)
        ok = back == flat[todo]
        out[todo[ok]] = np.array(text, dtype=object)[ok]
        todo = todo[~ok]
    return out


def format_meta(series: pd.Series) -> list[str]:
    """Text of one metadata column for a GCT cell: numbers round-trip, missing -> ``-666``."""
    if pd.api.types.is_float_dtype(series.dtype):
        as_float = series.dtype if isinstance(series.dtype, np.dtype) else np.float64  # nullable Float64 too
        text = format_values(series.to_numpy(dtype=as_float, na_value=np.nan)).tolist()
        return [META_MISSING if t == "NaN" else t for t in text]
    return [META_MISSING if _is_na(v) else str(v) for v in series.tolist()]


def _is_na(v) -> bool:
    try:
        return bool(pd.isna(v))
    except (TypeError, ValueError):  # array-like cell
        return False


# ============================================================== writing
def write_gct(matrix: ExpressionMatrix, path: str | os.PathLike, *, version: str = "1.3") -> Path:
    """Write a samples x genes matrix as a GCT file (genes as rows), atomically.

    Parameters
    ----------
    matrix
        The matrix, shape (n_samples, n_genes). For 1.3 its ``gene_meta`` columns
        become row metadata and its ``sample_meta`` columns column metadata; for 1.2
        only ``gene_meta["Description"]`` is kept (``na`` when absent).
    path
        The file to write; gzip-compressed when the name ends in ``.gz``.
    version
        ``"1.3"`` (default) or ``"1.2"``.

    Returns
    -------
    pathlib.Path
        ``path``.

    Raises
    ------
    ValueError
        If ``version`` is neither "1.2" nor "1.3".
    DatasetError
        If an id, a field name or a metadata value holds a tab or a line break (GCT
        cannot store it), or an id is empty.
    """
    if version not in ("1.2", "1.3"):
        raise ValueError(f"version must be '1.2' or '1.3', got {version!r}")
    p = Path(path)
    header = _header_lines(matrix, version)
    row_meta = _row_meta_cells(matrix, version)
    with atomic_path(p) as tmp, _open_out(tmp, p) as fh:
        fh.writelines(line + "\n" for line in header)
        for block in _data_lines(matrix, row_meta):
            fh.write(block)
    return p


def _open_out(tmp: Path, final: Path) -> IO[str]:
    if final.name.lower().endswith(".gz"):
        raw = open(tmp, "wb")  # noqa: SIM115 - closed through the wrappers
        gz = gzip.GzipFile(filename=final.name[:-3], mode="wb", fileobj=raw, compresslevel=6, mtime=0)
        return _Closing(io.TextIOWrapper(gz, encoding="utf-8", newline="\n"), raw)
    return open(tmp, "w", encoding="utf-8", newline="\n")


class _Closing:
    """A text wrapper over gzip that also closes the underlying raw file."""

    def __init__(self, text: io.TextIOWrapper, raw: IO[bytes]) -> None:
        self._text, self._raw = text, raw

    def __enter__(self) -> io.TextIOWrapper:
        return self._text

    def __exit__(self, *exc) -> None:
        try:
            self._text.close()
        finally:
            self._raw.close()


def _check_cells(cells: Sequence[str], what: str, *, allow_empty: bool = True) -> None:
    for c in cells:
        if any(ch in c for ch in "\t\n\r"):
            raise DatasetError(f"{what} {c[:40]!r} holds a tab or line break, which GCT cannot store; "
                               "replace it before writing")
        if not allow_empty and not c.strip():
            raise DatasetError(f"an empty {what} cannot be written to GCT")


def _header_lines(matrix: ExpressionMatrix, version: str) -> list[str]:
    samples = [str(s) for s in matrix.sample_ids]
    _check_cells(samples, "sample id", allow_empty=False)
    if version == "1.2":
        return ["#1.2", f"{matrix.n_genes}\t{matrix.n_samples}", "\t".join(["Name", "Description", *samples])]
    row_names = [str(c) for c in matrix.gene_meta.columns]
    col_names = [str(c) for c in matrix.sample_meta.columns]
    _check_cells(row_names + col_names, "metadata field name", allow_empty=False)
    lines = [
        "#1.3",
        f"{matrix.n_genes}\t{matrix.n_samples}\t{len(row_names)}\t{len(col_names)}",
        "\t".join(["id", *row_names, *samples]),
    ]
    filler = [FILLER] * len(row_names)
    for name in matrix.sample_meta.columns:
        cells = format_meta(matrix.sample_meta[name])
        _check_cells(cells, f"sample metadata value of {name!r}")
        lines.append("\t".join([str(name), *filler, *cells]))
    return lines


def _row_meta_cells(matrix: ExpressionMatrix, version: str) -> list[list[str]]:
    """Per text column of the data rows (gene id first), its cells."""
    ids = [str(g) for g in matrix.gene_ids]
    _check_cells(ids, "gene id", allow_empty=False)
    if version == "1.2":
        desc = matrix.gene_meta.get("Description")
        cells = [FILLER] * matrix.n_genes if desc is None else format_meta(desc)
        meta = {"Description": [FILLER if c == META_MISSING else c for c in cells]}
    else:
        meta = {str(c): format_meta(matrix.gene_meta[c]) for c in matrix.gene_meta.columns}
    for name, cells in meta.items():
        _check_cells(cells, f"gene metadata value of {name!r}")
    return [ids, *meta.values()]


def _data_lines(matrix: ExpressionMatrix, row_meta: list[list[str]], genes_per_block: int = 2000) -> Iterator[str]:
    """The data rows as text, a block of genes at a time (values transposed to genes x samples)."""
    for g0 in range(0, matrix.n_genes, genes_per_block):
        g1 = min(g0 + genes_per_block, matrix.n_genes)
        cells = format_values(matrix.values[:, g0:g1].T)
        yield "".join(
            "\t".join([*(col[g] for col in row_meta), *cells[g - g0]]) + "\n" for g in range(g0, g1)
        )
