"""Reading GCT 1.2 and 1.3 text files (GenePattern, GTEx, LINCS / CMap); writing them
is :mod:`dgex_core.io.gct_write`.

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
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from ..errors import DataFormatError
from ..matrix import ExpressionMatrix, Provenance
from ._common import MISSING_TOKENS, TextLines, head_bytes, parse_float_row, text_size_bound

__all__ = ["coerce_meta_column", "read_gct"]

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

