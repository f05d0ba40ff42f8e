"""GCT 1.2 and 1.3 text files (GenePattern, GTEx, LINCS / CMap), read and written.

A GCT file is **genes x samples** (one row per gene or probe); the
:class:`~dgex_core.matrix.ExpressionMatrix` it becomes is **samples x genes**.

GCT 1.2::

    #1.2
    <n_genes>\\t<n_samples>
    Name\\tDescription\\t<sample ids...>
    <gene id>\\t<description>\\t<values...>

GCT 1.3 (counts exclude the id row and column)::

    #1.3
    <n_genes>\\t<n_samples>\\t<n_row_meta>\\t<n_col_meta>
    id\\t<row-meta names...>\\t<sample ids...>
    <col-meta name>\\t<filler x n_row_meta>\\t<one value per sample>   (n_col_meta lines)
    <gene id>\\t<row-meta values...>\\t<values...>

Reading rules
-------------
- ``.gz`` files are read transparently (by content, not by name).
- Missing values (``-666``, ``na``, ``NA``, ``NaN``, ``#N/A``, empty, ... see
  :data:`~dgex_core.io._common.MISSING_TOKENS`, case-insensitive) become NaN in the
  matrix and a missing value (NaN) in the metadata. A data value of exactly -666 is
  the CMap missing marker and is read as NaN.
- Gene and sample ids are text with surrounding blanks removed.
- A metadata column becomes numeric (int64, or float64 when it has missing values or
  decimals) when every non-missing value parses as a number; otherwise it stays text.
  Columns that name identifiers stay text whatever they hold, so ids keep their exact
  spelling (``"00123"``) and match as strings: ``id``, ``Description``, and any name
  ending in ``_id`` or ``_ids`` (``pr_gene_id``, Entrez ids; ``pert_id``...).
  See :func:`coerce_meta_column`.

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
import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

import numpy as np
import pandas as pd

from .._atomic import atomic_path
from ..errors import DataFormatError, DatasetError
from ..matrix import ExpressionMatrix, Provenance
from ._common import MISSING_TOKENS, TextLines, head_bytes, parse_float_row, text_size_bound

__all__ = ["coerce_meta_column", "format_values", "read_gct", "write_gct"]

#: Metadata written for a missing value, and the filler of the column-metadata lines.
META_MISSING = "-666"
FILLER = "na"

#: Metadata field names (case-insensitive) kept as text, besides names ending in _id(s).
TEXT_FIELDS = frozenset({"id", "name", "description"})

#: Characters of text a data block is parsed in at once (bounds the parsing memory).
_BATCH_CHARS = 16_000_000


# ============================================================== pure helpers
def is_missing_token(cell: str) -> bool:
    """Whether a text cell is a missing-value marker (case-insensitive, blanks ignored)."""
    return cell.strip().lower() in MISSING_TOKENS


def is_text_field(name: str) -> bool:
    """Whether a metadata field names identifiers and must stay text (see module doc)."""
    n = str(name).strip().lower()
    return n in TEXT_FIELDS or n.endswith(("_id", "_ids"))


def coerce_meta_column(cells: Sequence[str | None], name: str) -> pd.Series:
    """One metadata column from its text cells: missing markers -> NaN, numbers -> numeric.

    Parameters
    ----------
    cells
        The cells as read (``None`` counts as missing).
    name
        The field name; identifier fields (:func:`is_text_field`) always stay text.

    Returns
    -------
    pandas.Series
        int64 when every cell is an integer, float64 when numeric with decimals or
        missing values, else object (``str`` values, NaN where missing).
    """
    text = pd.Series(
        [np.nan if c is None or is_missing_token(c) else c for c in cells], dtype=object, name=name
    )
    present = text.dropna().tolist()
    if is_text_field(name) or not present:
        return text
    if len(present) == len(text) and all(_INT_TEXT.fullmatch(c) for c in present):
        as_int = [int(c) for c in present]
        if all(-(2**63) <= v < 2**63 for v in as_int):
            return pd.Series(as_int, dtype=np.int64, name=name)
    if any("_" in c for c in present):  # Python's float() would read "1_000" as 1000
        return text
    try:  # Python's correctly rounded parser: numbers written with repr() come back exactly
        return pd.Series(np.array(text.fillna("nan").tolist(), dtype=np.float64), name=name)
    except ValueError:
        return text


_INT_TEXT = re.compile(r"\s*[+-]?[0-9]+\s*")


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


# ============================================================== reading
@dataclass
class _Header:
    """What lines 1-3 (and the column-metadata lines of 1.3) say."""

    version: str
    n_genes: int
    n_samples: int
    row_meta_names: list[str]
    sample_ids: list[str]
    col_meta: dict[str, list[str]] = field(default_factory=dict)

    @property
    def n_text(self) -> int:
        """Cells before the values in a data row (id + row metadata, or Name + Description)."""
        return 1 + len(self.row_meta_names)

    @property
    def n_cells(self) -> int:
        return self.n_text + self.n_samples


def read_gct(path: str | os.PathLike, *, dtype: np.dtype | type = np.float32) -> ExpressionMatrix:
    """Read a GCT 1.2 or 1.3 file (``.gz`` transparent) into a samples x genes matrix.

    Parameters
    ----------
    path
        The GCT file.
    dtype
        Float dtype of the values (float32 by default; float64 to keep every digit of
        a float64 file).

    Returns
    -------
    ExpressionMatrix
        ``values`` of shape (n_samples, n_genes); ``gene_meta`` holds the row metadata
        (1.3) or the ``Description`` column (1.2), ``sample_meta`` the column metadata
        (1.3). Missing values are NaN.

    Raises
    ------
    DataFormatError
        On an empty file, a bad version or dimensions line, a header whose cell count
        disagrees with line 2, a ragged row, a non-numeric value, fewer or more data
        rows than declared, duplicate ids, or a damaged gzip stream; the message names
        the file and the line (and column).

    Examples
    --------
    >>> m = read_gct("l1000_LJP009_A375_24H_qnorm_n371x978.gct")  # doctest: +SKIP
    >>> m.shape                                                    # doctest: +SKIP
    (371, 978)
    """
    p = Path(path)
    dtype = np.dtype(dtype)
    head_bytes(p, 16)  # a clear error for a missing, empty or undecompressable file
    with TextLines(p) as lines:
        header = _read_header(lines, p)
        first_data_line = lines.lineno + 1
        text, values = _read_data_rows(lines, p, header, dtype)
        _check_no_extra_rows(lines, p, header)
    gene_ids = [c.strip() for c in text[0]]
    _check_ids(gene_ids, p, "gene", lambda i: f"line {first_data_line + i}, column 1")
    gene_meta = _meta_frame(zip(header.row_meta_names, text[1:], strict=True), gene_ids)
    sample_meta = _meta_frame(header.col_meta.items(), header.sample_ids)
    prov = Provenance(str(p), "gct", notes={"gct_version": header.version})
    return ExpressionMatrix(values, header.sample_ids, gene_ids, sample_meta, gene_meta, prov)


def _meta_frame(columns, ids: list[str]) -> pd.DataFrame:
    """Metadata indexed by ``ids`` from (field name, text cells) pairs."""
    data = {name: coerce_meta_column(cells, name).to_numpy() for name, cells in columns}
    return pd.DataFrame(data, index=pd.Index(ids, dtype=object))


# ---------------------------------------------------------------- header
def _read_header(lines: TextLines, p: Path) -> _Header:
    version = _parse_version(lines.next_line("#1.2 or #1.3"), p)
    dims = _parse_dims(lines.next_line("the dimensions line"), p, version)
    n_genes, n_samples = dims[0], dims[1]
    n_row_meta, n_col_meta = (dims[2], dims[3]) if version == "1.3" else (1, 0)
    cells = lines.next_line("the header line (id, metadata names, sample ids)").split("\t")
    expected = 1 + n_row_meta + n_samples
    if len(cells) != expected:
        what = ("Name, Description and" if version == "1.2" else f"id, {n_row_meta} row-metadata names and")
        raise DataFormatError(
            p, "line 3",
            f"the header has {len(cells)} cells but line 2 declares {n_samples} samples",
            f"{expected} tab-separated cells: {what} {n_samples} sample ids (fix line 2 or the header)",
        )
    names = [c.strip() for c in cells[1 : 1 + n_row_meta]]
    if version == "1.2":
        names = ["Description"]
    _check_names(names, p, "line 3", "row-metadata field")
    sample_ids = [c.strip() for c in cells[1 + n_row_meta :]]
    _check_ids(sample_ids, p, "sample", lambda j: f"line 3, column {2 + n_row_meta + j}")
    # a row holds at least its id's character, a tab between cells (empty cells are
    # missing values) and a newline: the file's (decompressed) size bounds how many rows
    # it can have, whatever line 2 claims
    most = text_size_bound(p) // (expected + 1) + 1
    if n_genes > most:
        raise DataFormatError(
            p, "line 2", f"declares {n_genes:,} rows, but this file can hold at most {most:,} rows of "
            f"{expected} cells", "the number of data rows on line 2 (fix it, or the file is cut off)")
    header = _Header(version, n_genes, n_samples, names, sample_ids)
    header.col_meta = _read_col_meta(lines, p, header, n_col_meta)
    return header


def _parse_version(line: str, p: Path) -> str:
    cells = line.lstrip("\ufeff").split("\t")
    tag = cells[0].strip()
    if tag not in ("#1.2", "#1.3") or any(c.strip() for c in cells[1:]):
        raise DataFormatError(p, "line 1", f"{line[:40]!r} is not a GCT version line",
                              "'#1.2' or '#1.3' (is this a GCT file?)")
    return tag[1:]


def _parse_dims(line: str, p: Path, version: str) -> list[int]:
    cells = [c.strip() for c in line.split("\t")]
    while cells and not cells[-1]:
        cells.pop()
    n = 2 if version == "1.2" else 4
    names = ("rows (genes)", "columns (samples)", "row-metadata fields", "column-metadata fields")[:n]
    if len(cells) != n or not all(c.isdigit() for c in cells):
        raise DataFormatError(
            p, "line 2", f"{line[:60]!r} is not a GCT {version} dimensions line",
            f"{n} non-negative integers separated by tabs: " + ", ".join(names),
        )
    return [int(c) for c in cells]


def _read_col_meta(lines: TextLines, p: Path, header: _Header, n_col_meta: int) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for k in range(n_col_meta):
        line = _next_or_truncated(lines, p, f"column-metadata line {k + 1} of {n_col_meta}",
                                  f"{n_col_meta} column-metadata lines, as line 2 declares")
        cells = line.split("\t")
        _check_cell_count(cells, header.n_cells, p, lines.lineno)
        name = cells[0].strip()
        if not name or name in out:
            problem = "an empty column-metadata name" if not name else f"column-metadata field {name!r} repeated"
            raise DataFormatError(p, f"line {lines.lineno}, column 1", problem, "a unique field name")
        out[name] = cells[header.n_text :]
    return out


def _check_names(names: list[str], p: Path, where: str, what: str) -> None:
    seen: set[str] = set()
    for name in names:
        if not name or name in seen:
            problem = f"an empty {what} name" if not name else f"{what} {name!r} repeated"
            raise DataFormatError(p, where, problem, f"unique, non-empty {what} names")
        seen.add(name)


def _check_ids(ids: list[str], p: Path, what: str, place) -> None:
    """Raise naming the place of the first empty or repeated id; ``place(i)`` locates id i."""
    first: dict[str, int] = {}
    for i, x in enumerate(ids):
        if not x:
            raise DataFormatError(p, place(i), f"an empty {what} id", f"a non-empty {what} id")
        if x in first:
            raise DataFormatError(p, place(i), f"duplicate {what} id {x!r} (first at {place(first[x])})",
                                  f"each {what} id once")
        first[x] = i


# ------------------------------------------------------------ data rows
def _next_or_truncated(lines: TextLines, p: Path, what: str, expected: str) -> str:
    line = next(lines, None)
    if line is None:
        raise DataFormatError(p, f"line {lines.lineno + 1}", f"the file ends before {what} (truncated?)", expected)
    return line


def _check_cell_count(cells: list[str], n: int, p: Path, lineno: int) -> None:
    if len(cells) != n:
        raise DataFormatError(p, f"line {lineno}", f"{len(cells)} tab-separated cells, but the header (line 3) has {n}",
                              f"{n} cells in every row (is the row cut short or does a value hold a tab?)")


def _read_data_rows(lines: TextLines, p: Path, header: _Header, dtype: np.dtype) -> tuple[list[list[str]], np.ndarray]:
    """Text columns (id + row metadata) and values, **samples x genes**, of all data rows."""
    values = np.empty((header.n_samples, header.n_genes), dtype=dtype)
    text: list[list[str]] = [[] for _ in range(header.n_text)]
    for g0, first_line, batch in _batches(lines, p, header):
        cells = [line.split("\t") for line in batch]
        for k, row in enumerate(cells):
            _check_cell_count(row, header.n_cells, p, first_line + k)
        for j in range(header.n_text):
            text[j].extend(row[j] for row in cells)
        block = _parse_block(cells, header.n_text, p, first_line, dtype)
        values[:, g0 : g0 + len(batch)] = block.T
    return text, values


def _batches(lines: TextLines, p: Path, header: _Header) -> Iterator[tuple[int, int, list[str]]]:
    """(first gene index, first line number, lines) of about :data:`_BATCH_CHARS` each."""
    batch: list[str] = []
    size, g0, first_line = 0, 0, lines.lineno + 1
    for g in range(header.n_genes):
        line = next(lines, None)
        if line is None:
            raise DataFormatError(
                p, f"line {lines.lineno + 1}",
                f"the file ends after {g} of the {header.n_genes} data rows declared on line 2 (truncated?)",
                f"{header.n_genes} data rows (a complete file, or fix the row count on line 2)",
            )
        batch.append(line)
        size += len(line)
        if size >= _BATCH_CHARS:
            yield g0, first_line, batch
            batch, size, g0, first_line = [], 0, g + 1, lines.lineno + 1
    if batch:
        yield g0, first_line, batch


def _parse_block(cells: list[list[str]], n_text: int, p: Path, first_line: int, dtype: np.dtype) -> np.ndarray:
    """Values of a batch of split rows, genes x values; missing markers -> NaN."""
    flat = [c for row in cells for c in row[n_text:]]
    n = len(cells[0]) - n_text if cells else 0

    def cell_by_cell():
        # names the first bad cell, or reads what numpy's bulk parser does not (a number
        # wrapped in other whitespace, e.g. '\x1c8.2'); checks float32's range per row
        return np.concatenate([parse_float_row(row[n_text:], p, first_line + k, n_text + 1, dtype=dtype)
                               for k, row in enumerate(cells)]).astype(np.float64)

    joined = "".join(flat)
    if not joined.isascii() or "_" in joined:  # float() would take '7_5' and non-ASCII digits
        out = cell_by_cell()
    else:
        try:
            out = np.array(flat, dtype=np.float64)
        except ValueError:
            flat = ["nan" if is_missing_token(c) else c for c in flat]
            try:
                out = np.array(flat, dtype=np.float64)
            except ValueError:
                out = cell_by_cell()
    out[out == -666] = np.nan
    if dtype == np.float32:
        with np.errstate(over="ignore"):
            cast = out.astype(np.float32)
        if (np.isinf(cast) & np.isfinite(out)).any():  # a finite value float32 cannot hold
            cell_by_cell()  # raises, naming the line and column
        return cast.reshape(len(cells), n)
    return out.reshape(len(cells), n).astype(dtype, copy=False)


def _check_no_extra_rows(lines: TextLines, p: Path, header: _Header) -> None:
    for line in lines:
        if line.strip():
            raise DataFormatError(
                p, f"line {lines.lineno}",
                f"a data row beyond the {header.n_genes} declared on line 2",
                f"exactly {header.n_genes} data rows (fix the row count on line 2)",
            )


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
