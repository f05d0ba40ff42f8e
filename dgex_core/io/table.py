"""Plain expression tables: CSV / TSV (gzip transparent) and Parquet, in either orientation.

A table has one id column (the first column, or a Parquet file's index) and a header
row of ids. Which axis holds the genes varies: GEO-style tables put genes in rows
and samples in columns (``genes_x_samples``), many exports do the reverse
(``samples_x_genes``). :func:`read_table` reads both, decides the orientation when
asked to (``orientation="auto"``) and records the choice and its reason in
``provenance.notes["orientation"]``.

Columns that hold text rather than numbers (a ``Description`` or ``symbol`` column
beside probe ids, a ``tissue`` column beside sample ids) are metadata of the row
axis: ``gene_meta`` in ``genes_x_samples`` layout, ``sample_meta`` in
``samples_x_genes`` layout. A column that is mostly numbers with a stray word is an
error, not metadata.
"""

from __future__ import annotations

import csv
import itertools
import json
import os
import re
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from .._atomic import atomic_path
from ..errors import DataFormatError, DatasetError
from ..matrix import ExpressionMatrix, Provenance, as_id_index
from ._common import MISSING_TOKENS, PARQUET_MAGIC, TextLines, head_bytes, parse_float_row

__all__ = ["ANNOTATION_COLUMNS", "ORIENTATIONS", "read_table", "write_table"]

#: Accepted values of ``orientation``.
ORIENTATIONS = ("auto", "genes_x_samples", "samples_x_genes")
_SEPARATORS = {"csv": ",", "tsv": "\t"}
_SUFFIX_FORMATS = {".csv": "csv", ".tsv": "tsv", ".tab": "tsv", ".txt": "tsv", ".parquet": "parquet", ".pq": "parquet"}
#: Missing-value markers of plain tables: those of the project less CMap's -666, which
#: in a plain table is a number like any other.
NUMBER_MISSING = frozenset(MISSING_TOKENS - {"-666", "-666.0"})
_PARQUET_KEY = b"dgex"
#: Header names (compared ignoring case, spaces, ``_`` and ``-``) of columns that are
#: always metadata, even when they hold numbers (Entrez ids) or only ``na`` (GCT's
#: Description column).
ANNOTATION_COLUMNS = frozenset({
    "description", "desc", "symbol", "genesymbol", "hgncsymbol", "genename", "name", "genetitle",
    "entrez", "entrezid", "entrezgene", "entrezgeneid", "ensembl", "ensemblid", "ensemblgene", "ensemblgeneid",
    "chromosome", "chr", "biotype", "genebiotype",
})


def _is_annotation_name(name: str) -> bool:
    return re.sub(r"[\s_\-]", "", str(name)).lower() in ANNOTATION_COLUMNS


# ------------------------------------------------------------------ parsing numbers
def parse_cells(
    cells: Sequence[str], path: str | os.PathLike, lineno: int, columns: Sequence[int],
    names: Sequence[str] | None = None, dtype=np.float32,
) -> np.ndarray:
    """Parse one row's numeric cells; missing markers (``NA``, ``NaN``, ``null``, empty) -> NaN.

    ``columns`` are the 1-based file columns of ``cells`` and ``names`` their header
    names, for the error message.

    Raises
    ------
    DataFormatError
        Naming the line, column (and header name) of the first cell that is not a number.
    """
    return parse_float_row(list(cells), path, lineno, columns[0] if len(columns) else 1, dtype,
                           columns=list(columns), names=None if names is None else list(names))


def _is_number(s: str) -> bool | None:
    """True for a number, False for text, None for a missing marker."""
    s = s.strip()
    if s.lower() in NUMBER_MISSING:
        return None
    if not s.isascii() or "_" in s:  # float() takes '7_5' and non-ASCII digits; a data file does not
        return False
    try:
        float(s)
    except ValueError:
        return False
    return True


# --------------------------------------------------------------------- raw tables
@dataclass
class _Raw:
    """A table as read, before orientation: rows x numeric columns, plus row metadata."""

    row_ids: pd.Index
    col_ids: pd.Index
    values: np.ndarray  # n_rows x n_numeric_columns
    meta: pd.DataFrame  # n_rows x n_meta_columns, indexed by row id
    id_column: str
    recorded: dict = field(default_factory=dict)  # what dgex's writer stored in a Parquet file
    decimal_comma: list[str] = field(default_factory=list)  # value columns written 7,25 for 7.25


def read_table(
    path: str | os.PathLike,
    *,
    format: str | None = None,
    orientation: str = "auto",
    landmark_ids: Iterable[str] | None = None,
    sep: str | None = None,
    meta_columns: Sequence[str] | None = None,
    dtype=np.float32,
) -> ExpressionMatrix:
    """Read a CSV, TSV or Parquet expression table.

    Parameters
    ----------
    path
        The file; ``.gz`` CSV/TSV are read transparently (by content, not by name).
    format
        ``"csv"``, ``"tsv"`` or ``"parquet"``; by default from the content (Parquet
        magic bytes, else a tab or a comma in the first line).
    orientation
        ``"genes_x_samples"`` (first column gene ids, header sample ids: GEO style),
        ``"samples_x_genes"``, or ``"auto"``: with ``landmark_ids``, the orientation
        whose gene axis holds more landmark ids; without, the axis whose ids look like
        gene ids (Ensembl ``ENSG...``, probe ``..._at``, RefSeq, Illumina, Entrez
        integers, symbols) versus sample ids (``GSM...``, ``SRR...``, ``TCGA-...``),
        and when that does not settle it, genes are the longer axis. The choice and
        its reason are recorded in ``provenance.notes["orientation"]``.
    landmark_ids
        Landmark gene ids (e.g. the 978 L1000 landmarks) to decide the orientation by.
    sep
        Field separator of a text table, overriding ``format``.
    meta_columns
        Header names of columns to keep as metadata even though they hold numbers.
        Text columns are metadata anyway, and so are columns named like annotation
        (``Description``, ``symbol``, ``gene_name``, ``entrez_id``, ``ensembl_gene_id``...;
        see :data:`ANNOTATION_COLUMNS`) whatever they hold.
    dtype
        Floating-point type of the values.

    Returns
    -------
    ExpressionMatrix
        ``n_samples x n_genes``. Text columns become ``gene_meta`` (genes x samples
        layout) or ``sample_meta`` (samples x genes layout).

    Raises
    ------
    DataFormatError
        On an empty file, a header without rows, ragged rows (line named), a
        non-numeric cell in a value column (line and column, or row id and column
        name for Parquet), repeated ids, or no numeric column at all.

    Examples
    --------
    >>> m = read_table("GSE2034_expr.csv.gz", landmark_ids=landmarks)  # doctest: +SKIP
    >>> m.provenance.notes["orientation"]  # doctest: +SKIP
    {'chosen': 'genes_x_samples', 'reason': '962 of 978 landmark ids are row ids, 0 are column ids'}
    """
    path = Path(path)
    dtype = np.dtype(dtype)
    if dtype.kind != "f":
        raise ValueError(f"dtype must be a floating-point type, got {dtype}")
    if orientation not in ORIENTATIONS:
        raise ValueError(f"orientation must be one of {ORIENTATIONS}, got {orientation!r}")
    head = head_bytes(path)
    fmt = _resolve_format(path, head, format, sep)
    if fmt == "parquet":
        raw = _read_parquet(path, meta_columns, dtype)
    else:
        raw = _read_text(path, sep or _SEPARATORS[fmt], meta_columns, dtype)
    chosen, reason = _choose_orientation(raw, orientation, landmark_ids)
    notes = {"orientation": {"chosen": chosen, "reason": reason}, "id_column": raw.id_column,
             "meta_columns": [str(c) for c in raw.meta.columns]}
    if raw.decimal_comma:
        notes["decimal_comma"] = (f"{len(raw.decimal_comma)} value columns written with a decimal comma "
                                  f"(e.g. {', '.join(raw.decimal_comma[:3])}): commas read as decimal points")
    prov = Provenance(str(path), fmt, tuple(raw.recorded.get("transforms", ())), notes)
    if chosen == "genes_x_samples":
        return ExpressionMatrix(np.ascontiguousarray(raw.values.T), raw.col_ids, raw.row_ids,
                                gene_meta=raw.meta, provenance=prov)
    return ExpressionMatrix(raw.values, raw.row_ids, raw.col_ids, sample_meta=raw.meta, provenance=prov)


def _resolve_format(path: Path, head: bytes, format: str | None, sep: str | None) -> str:
    is_parquet = head.startswith(PARQUET_MAGIC)
    if format is not None and format not in ("csv", "tsv", "parquet"):
        raise ValueError(f"format must be 'csv', 'tsv' or 'parquet', got {format!r}")
    if format == "parquet" and not is_parquet:
        raise DataFormatError(path, "byte 1", "not a Parquet file (no PAR1 magic bytes)",
                              "a Parquet file, or format='csv'/'tsv' for a text table")
    if format in ("csv", "tsv") and is_parquet:
        raise DataFormatError(path, "byte 1", f"a Parquet file read as {format}", "format='parquet' (or no format)")
    if format is not None:
        return format
    if is_parquet:
        return "parquet"
    if sep is not None:
        return "tsv" if sep == "\t" else "csv"
    text = head.decode("utf-8", "replace").lstrip("\ufeff")
    first = next((ln for ln in text.split("\n") if ln.strip()), None)
    if first is None:  # only blank lines: the reader says so
        return "csv"
    if "\t" in first:
        return "tsv"
    if "," in first:
        return "csv"
    raise DataFormatError(path, "line 1", "neither a tab nor a comma in the header line",
                          "a CSV or TSV table with a header row; pass sep= for another separator")


# --------------------------------------------------------------------- text tables
def _data_rows(reader: Iterator[list[str]], lines: TextLines) -> Iterator[tuple[int, list[str]]]:
    """(line number, cells) of the non-blank rows; the csv module's errors (a quote never
    closed, a cell over its 128 KB limit) become :class:`DataFormatError` naming the line."""
    start = 1
    while True:
        try:
            cells = next(reader)
        except StopIteration:
            return
        except csv.Error as e:
            raise DataFormatError(
                lines.path, f"line {start}" + (f"-{lines.lineno}" if lines.lineno > start else ""),
                f"cannot split the row into cells ({e}): a quote (\") that opens a cell and is never closed, "
                f"or a cell over {csv.field_size_limit():,} characters",
                "cells of numbers and ids; quotes only around whole cells, closed on the same line") from None
        if lines.lineno > start:  # lines reach csv without their newlines: a row of several is a quote left open
            raise DataFormatError(
                lines.path, f"line {start}", f"a quoted cell runs on to line {lines.lineno}: a quote (\") opens a "
                "cell and is not closed on its line", "one row per line; quotes only around whole cells")
        if any(c.strip() for c in cells):
            yield lines.lineno, cells
        start = lines.lineno + 1


def _read_text(path: Path, delim: str, meta_columns: Sequence[str] | None, dtype) -> _Raw:
    with TextLines(path) as lines:
        rows = _data_rows(csv.reader(lines, delimiter=delim), lines)
        first = next(rows, None)
        if first is None:
            raise DataFormatError(path, "line 1", "the file holds no table (only blank lines)",
                                  "a header row, then one row per gene or sample")
        header_line, header = first
        n_classify = max(10, min(200, 200_000 // max(len(header), 1)))
        buffered = list(itertools.islice(rows, n_classify))
        if not buffered:
            raise DataFormatError(path, f"line {header_line + 1}", "the table has a header but no data rows",
                                  "one row per gene or sample after the header")
        if len(header) == len(buffered[0][1]) - 1:  # R's write.table: no corner cell
            header = ["", *header]
        names = [h.strip() for h in header]
        _check_header(path, header_line, names, delim)
        comma = _decimal_comma_columns(names, buffered, meta_columns, path) if delim != "," else []
        if comma:  # European spreadsheets: 7,25 for 7.25 (a comma cannot mean that in a CSV)
            at = [names.index(c) for c in comma]

            def points(item):
                n, cells = item
                cells = list(cells)
                for j in at:
                    if j < len(cells):
                        cells[j] = cells[j].replace(",", ".")
                return n, cells

            rows = map(points, rows)
            buffered = [points(b) for b in buffered]
        numeric, meta = _classify_columns(path, header_line, names, buffered, meta_columns)
        raw = _parse_text_rows(path, names, numeric, meta, itertools.chain(buffered, rows), dtype)
        raw.decimal_comma = comma
        return raw


_DECIMAL_COMMA = re.compile(r"^[+-]?\d+,\d+(?:[eE][+-]?\d+)?$")
#: ``1,234``: a decimal comma or a thousands separator, the cell alone cannot tell
_THOUSANDS_LIKE = re.compile(r"^[+-]?[1-9]\d{0,2}(?:,\d{3})+$")


def _decimal_by_scale(names, buffered, comma_columns, forced) -> bool:
    """Whether the file's other value columns (numbers with a decimal point) say the
    commas are decimal: read so, the comma columns' median lies nearer theirs than
    read as thousands (1,000 times larger). Expression values of one file share a scale."""
    other, commas = [], []
    for j in range(1, len(names)):
        if names[j] in forced or _is_annotation_name(names[j]):
            continue
        for _, cells in buffered:
            c = cells[j].strip() if j < len(cells) else ""
            if names[j] in comma_columns and _DECIMAL_COMMA.match(c):
                commas.append(abs(float(c.replace(",", "."))))
            elif names[j] not in comma_columns and _is_number(c):
                other.append(abs(float(c)))
    if not other or not commas:
        return False
    m_other, m_dec = float(np.median(other)), float(np.median(commas))
    if m_other <= 0 or m_dec <= 0:
        return False
    return abs(np.log10(m_dec / m_other)) < abs(np.log10(1000 * m_dec / m_other))


def _decimal_comma_columns(names, buffered, meta_columns, path=None) -> list[str]:
    """Header names of the columns whose cells are mostly numbers with a decimal comma
    (``7,25``, ``-0,5``), from the first rows; empty when there are none.

    Raises
    ------
    DataFormatError
        If every such cell could also be a thousands separator (``1,234``, ``12,500``)
        and the file's other value columns do not settle it by their scale: reading it
        either way could be wrong by a factor of 1,000.
    """
    forced = set(meta_columns or ())
    found, ambiguous = [], []
    for j in range(1, len(names)):
        if names[j] in forced or _is_annotation_name(names[j]):
            continue
        cells = [cells[j].strip() for _, cells in buffered if j < len(cells)]
        cells = [c for c in cells if c and c.lower() not in NUMBER_MISSING]
        comma = [c for c in cells if _DECIMAL_COMMA.match(c)]
        if cells and len(comma) > len(cells) / 2:
            found.append(names[j])
            if all(_THOUSANDS_LIKE.match(c) for c in comma):
                ambiguous.append((names[j], comma[0]))
    if found and len(ambiguous) == len(found) and not _decimal_by_scale(names, buffered, found, forced):
        # nothing in the file rules thousands separators out
        name, example = ambiguous[0]
        raise DataFormatError(
            path, f"column {name!r}", f"numbers such as {example!r} could be decimal commas or thousands separators",
            "numbers written without thousands separators, with a decimal point (or a decimal comma in a "
            "column that also holds values such as 0,5)")
    return found


def _check_header(path: Path, header_line: int, names: list[str], delim: str) -> None:
    if len(names) < 2:
        raise DataFormatError(
            path, f"line {header_line}", f"only one column found with separator {delim!r}",
            "an id column and value columns; pass sep= (or format=) if the file uses another separator",
        )
    seen: dict[str, int] = {}
    for j, name in enumerate(names[1:], start=2):
        if name in seen:
            raise DataFormatError(path, f"line {header_line}, column {j}",
                                  f"duplicate column id {name!r} (also column {seen[name]})", "each column id once")
        seen[name] = j


def _classify_columns(path, header_line, names, buffered, meta_columns) -> tuple[list[int], list[int]]:
    """Split columns 2.. into value columns and text (metadata) columns, from the first rows."""
    forced = set(meta_columns or ())
    unknown = forced - set(names[1:])
    if unknown:
        raise DataFormatError(path, f"line {header_line}", f"meta_columns {sorted(unknown)} are not in the header",
                              f"header names among {names[1:6]}...")
    numeric: list[int] = []
    meta: list[int] = []
    for j in range(1, len(names)):
        if names[j] in forced or _is_annotation_name(names[j]):
            meta.append(j)
            continue
        kinds = [_is_number(cells[j]) for _, cells in buffered if j < len(cells)]
        (meta if kinds.count(False) > kinds.count(True) else numeric).append(j)
    if not numeric:
        raise DataFormatError(path, f"line {header_line}", "no column holds numbers (all look like text)",
                              "value columns of numbers beside the id column")
    return numeric, meta


def _parse_text_rows(path, names, numeric, meta, rows, dtype) -> _Raw:
    ncols = len(names)
    contiguous = numeric == list(range(numeric[0], numeric[-1] + 1))
    file_cols = [j + 1 for j in numeric]
    num_names = [names[j] for j in numeric]
    ids: list[str] = []
    linenos: list[int] = []
    values: list[np.ndarray] = []
    meta_cells: list[list[str]] = []
    for lineno, cells in rows:
        if len(cells) != ncols:
            raise DataFormatError(path, f"line {lineno}", f"{len(cells)} cells but the header has {ncols}",
                                  "the same number of cells on every row")
        rid = cells[0].strip()
        if not rid:
            raise DataFormatError(path, f"line {lineno}, column 1", "empty id", "an id in the first column")
        ids.append(rid)
        linenos.append(lineno)
        vals = cells[numeric[0]:numeric[-1] + 1] if contiguous else [cells[j] for j in numeric]
        values.append(parse_cells(vals, path, lineno, file_cols, num_names, dtype))
        if meta:
            meta_cells.append([cells[j].strip() or None for j in meta])
    row_ids = pd.Index(ids, dtype=object)
    if not row_ids.is_unique:
        k = int(np.flatnonzero(row_ids.duplicated())[0])
        raise DataFormatError(path, f"line {linenos[k]}, column 1",
                              f"duplicate id {ids[k]!r} (first on line {linenos[ids.index(ids[k])]})",
                              "each row id once")
    meta_df = pd.DataFrame(meta_cells, index=row_ids, columns=[names[j] for j in meta], dtype=object)
    return _Raw(row_ids, pd.Index(num_names, dtype=object), np.vstack(values), meta_df, names[0])


# ------------------------------------------------------------------------ Parquet
def _read_parquet(path: Path, meta_columns: Sequence[str] | None, dtype) -> _Raw:
    import pyarrow as pa
    import pyarrow.parquet as pq

    try:
        tbl = pq.read_table(path)
    except (OSError, pa.ArrowException) as e:
        raise DataFormatError(path, "Parquet footer", f"cannot read as Parquet ({e})", "a complete Parquet file") from None
    recorded = json.loads((tbl.schema.metadata or {}).get(_PARQUET_KEY, b"{}"))
    df = tbl.to_pandas()
    if isinstance(df.index, pd.MultiIndex):
        raise DataFormatError(path, "index", f"a multi-level index ({list(df.index.names)})",
                              "one id column or a single index")
    idx = df.index
    if isinstance(idx, pd.RangeIndex) and idx.start == 0 and idx.step == 1 and idx.name is None:
        if df.shape[1] == 0:
            raise DataFormatError(path, "schema", "the table has no columns", "an id column and value columns")
        id_column = str(df.columns[0])
        ids = df.pop(df.columns[0])
    else:
        id_column = str(idx.name) if idx.name is not None else "index"
        ids = idx.to_series()
    if len(df) == 0:
        raise DataFormatError(path, "row 1", "the table has columns but no rows", "one row per gene or sample")
    if ids.isna().any():
        k = int(np.flatnonzero(ids.isna().to_numpy())[0])
        raise DataFormatError(path, f"column {id_column!r}, row {k + 1}", "missing id", "an id on every row")
    row_ids = as_id_index(ids.to_numpy())
    if not row_ids.is_unique:
        dup = row_ids[row_ids.duplicated()][0]
        raise DataFormatError(path, f"column {id_column!r}", f"duplicate id {dup!r}", "each row id once")
    df.columns = [str(c) for c in df.columns]
    forced = set(meta_columns or ()) | set(recorded.get("meta_columns", ()))
    numeric: dict[str, np.ndarray] = {}
    meta: list[str] = []
    for name in df.columns:
        col = df[name]
        if name in forced or _is_annotation_name(name):
            meta.append(name)
            continue
        conv = _numeric_column(path, name, col, row_ids)
        if conv is None:
            meta.append(name)
        else:
            numeric[name] = conv
    if not numeric:
        raise DataFormatError(path, "schema", "no column holds numbers", "value columns of numbers beside the ids")
    values = np.empty((len(df), len(numeric)), dtype=dtype)
    for j, arr in enumerate(numeric.values()):
        values[:, j] = arr
    meta_df = df[meta].copy()
    meta_df.index = row_ids
    return _Raw(row_ids, pd.Index(list(numeric), dtype=object), values, meta_df, id_column, recorded)


def _numeric_column(path: Path, name: str, col: pd.Series, row_ids: pd.Index) -> np.ndarray | None:
    """A column's values as float64, or None when it is a text (metadata) column."""
    if pd.api.types.is_bool_dtype(col) or not (pd.api.types.is_numeric_dtype(col) or col.dtype == object
                                               or pd.api.types.is_string_dtype(col)):
        return None
    if pd.api.types.is_numeric_dtype(col):
        return col.to_numpy(dtype=np.float64, na_value=np.nan)
    conv = pd.to_numeric(col, errors="coerce")
    text = col.astype(str).str.strip().str.lower()
    bad = (col.notna() & conv.isna() & ~text.isin(NUMBER_MISSING)).to_numpy()
    n_num = int(conv.notna().sum())
    if not bad.any() and n_num:
        return conv.to_numpy(dtype=np.float64, na_value=np.nan)
    if n_num > int(bad.sum()):
        k = int(np.flatnonzero(bad)[0])
        raise DataFormatError(path, f"row {row_ids[k]!r}, column {name!r}", f"{str(col.iloc[k])[:40]!r} is not a number",
                              "numbers (or nulls) in every value column")
    return None


# ------------------------------------------------------------------- orientation
_STRONG_GENE = re.compile(
    r"^(ENS[A-Z]*G\d{6,}(\.\d+)?|ILMN_\d+|A_\d{2}_P\d+|[NX][MR]_\d+(\.\d+)?|[\w.-]+_(at|st))$"
)
_ENTREZ = re.compile(r"^\d+$")
_SYMBOL = re.compile(r"^[A-Za-z][A-Za-z0-9.\-]{0,19}$")
_SAMPLE = re.compile(r"^(GSM\d+|[SED]R[RXS]\d+|SAM[NDE][A-Z]?\d+|TCGA-.*|.*sample.*|.*rep\d+)$", re.IGNORECASE)
_ENSEMBL_VERSION = re.compile(r"^(ENS[A-Z]*G\d+)\.\d+$")


def _gene_score(ids: pd.Index, limit: int = 2000) -> float:
    """Mean gene-likeness of ids: 1 gene-like, 0.5 ambiguous (integer, symbol), -1 sample-like."""
    sample = ids[:limit]
    if len(sample) == 0:
        return 0.0
    total = 0.0
    for s in sample:
        if _SAMPLE.match(s):
            total -= 1
        elif _STRONG_GENE.match(s):
            total += 1
        elif _ENTREZ.match(s) or _SYMBOL.match(s):
            total += 0.5
    return total / len(sample)


def _strip_version(gene_id: str) -> str:
    return _ENSEMBL_VERSION.sub(r"\1", gene_id)


def _choose_orientation(raw: _Raw, orientation: str, landmark_ids: Iterable[str] | None) -> tuple[str, str]:
    """The orientation and a sentence saying why."""
    if orientation != "auto":
        return orientation, "given by the caller"
    if raw.recorded.get("orientation") in ORIENTATIONS[1:]:
        return raw.recorded["orientation"], "recorded in the file by dgex write_table"
    prefix = ""
    if landmark_ids is not None:
        marks = {_strip_version(str(x)) for x in landmark_ids}
        in_rows = sum(_strip_version(i) in marks for i in raw.row_ids)
        in_cols = sum(_strip_version(i) in marks for i in raw.col_ids)
        said = f"{in_rows} of {len(marks)} landmark ids are row ids, {in_cols} are column ids"
        if in_rows != in_cols:
            return ("genes_x_samples" if in_rows > in_cols else "samples_x_genes"), said
        prefix = f"{said}, so "
    rows, cols = _gene_score(raw.row_ids), _gene_score(raw.col_ids)
    if abs(rows - cols) >= 0.25:
        chosen = "genes_x_samples" if rows > cols else "samples_x_genes"
        axis = "row" if rows > cols else "column"
        return chosen, f"{prefix}{axis} ids look like gene ids (gene-likeness {rows:.2f} for rows, {cols:.2f} for columns)"
    n_rows, n_cols = len(raw.row_ids), len(raw.col_ids)
    chosen = "genes_x_samples" if n_rows >= n_cols else "samples_x_genes"
    return chosen, (f"{prefix}ids do not tell genes from samples; {n_rows} rows vs {n_cols} value columns, "
                    "genes taken as the longer axis; pass orientation= if this is wrong")


# ------------------------------------------------------------------------ writing
def _format_from_name(path: Path) -> str:
    name = path.name.lower()
    if name.endswith(".gz"):
        name = name[:-3]
    fmt = _SUFFIX_FORMATS.get(Path(name).suffix)
    if fmt is None:
        raise ValueError(f"cannot tell the table format from the name {path.name!r}; pass format='csv', 'tsv' or 'parquet'")
    return fmt


def write_table(
    matrix: ExpressionMatrix,
    path: str | os.PathLike,
    *,
    format: str | None = None,
    orientation: str = "genes_x_samples",
    meta: bool = True,
) -> Path:
    """Write a matrix as CSV, TSV or Parquet, atomically.

    Parameters
    ----------
    matrix
        ``n_samples x n_genes`` values with their ids.
    path
        Target file; a name ending in ``.gz`` gives a gzip-compressed CSV/TSV.
    format
        ``"csv"``, ``"tsv"`` or ``"parquet"``; by default from the suffix (``.csv``,
        ``.tsv``/``.txt``/``.tab``, ``.parquet``/``.pq``, optionally followed by ``.gz``).
    orientation
        ``"genes_x_samples"`` (default: first column gene ids, header sample ids) or
        ``"samples_x_genes"``.
    meta
        Write the row axis's metadata (``gene_meta`` for genes x samples,
        ``sample_meta`` for samples x genes) as columns between the ids and the
        values. A plain table holds one axis's metadata only.

    Returns
    -------
    Path
        ``path``.

    Notes
    -----
    Values are written as the shortest decimal that reads back to the same float32
    (or float64), so they round-trip bit for bit; NaN is an empty cell. Parquet files also record the
    orientation, the metadata column names and the transforms, so :func:`read_table`
    restores them exactly; in CSV/TSV, metadata columns holding only numbers read back
    as values unless named in ``read_table(meta_columns=...)``.
    """
    path = Path(path)
    fmt = format or _format_from_name(path)
    if fmt not in ("csv", "tsv", "parquet"):
        raise ValueError(f"format must be 'csv', 'tsv' or 'parquet', got {fmt!r}")
    if orientation not in ORIENTATIONS[1:]:
        raise ValueError(f"orientation must be 'genes_x_samples' or 'samples_x_genes', got {orientation!r}")
    genes_rows = orientation == "genes_x_samples"
    id_name = "gene" if genes_rows else "sample"
    values = matrix.to_frame(orientation)
    axis_meta = (matrix.gene_meta if genes_rows else matrix.sample_meta) if meta else None
    if axis_meta is not None and axis_meta.shape[1]:
        axis_meta = axis_meta.set_axis([str(c) for c in axis_meta.columns], axis=1)
        clash = set(axis_meta.columns) & {*values.columns, id_name}
        if clash:
            raise DatasetError(f"metadata columns {sorted(clash)[:5]} have the same names as "
                               f"{'samples' if genes_rows else 'genes'} or the id column; rename them or pass meta=False")
        frame = pd.concat([_meta_for_writing(axis_meta), values], axis=1)
    else:
        axis_meta = None
        frame = values
    frame = frame.rename_axis(id_name)  # never rename the matrix's own index
    with atomic_path(path) as tmp:
        if fmt == "parquet":
            _write_parquet(frame, tmp, orientation, axis_meta, matrix)
        else:
            _write_delimited(frame, tmp, _SEPARATORS[fmt], gz=path.name.lower().endswith(".gz"))
    return path


def _meta_for_writing(meta: pd.DataFrame) -> pd.DataFrame:
    """Metadata ready for Arrow: object columns of mixed types become text (missing stays missing)."""
    out = meta.copy()
    for c in out.columns:
        if out[c].dtype == object:
            out[c] = out[c].where(out[c].isna(), out[c].astype(str))
    return out


def _write_delimited(frame: pd.DataFrame, tmp: Path, sep: str, gz: bool) -> None:
    """CSV/TSV through Arrow: shortest round-trip decimal for every float, NaN as an empty cell."""
    import pyarrow as pa
    import pyarrow.csv as pacsv

    tbl = pa.Table.from_pandas(frame.reset_index(), preserve_index=False)
    opts = pacsv.WriteOptions(delimiter=sep, quoting_style="needed")
    if gz:
        with pa.CompressedOutputStream(str(tmp), "gzip") as out:
            pacsv.write_csv(tbl, out, opts)
    else:
        pacsv.write_csv(tbl, str(tmp), opts)


def _write_parquet(frame: pd.DataFrame, tmp: Path, orientation: str, axis_meta, matrix: ExpressionMatrix) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    tbl = pa.Table.from_pandas(frame, preserve_index=True)
    recorded = {"orientation": orientation,
                "meta_columns": [] if axis_meta is None else list(axis_meta.columns),
                "transforms": list(matrix.provenance.transforms)}
    schema_meta = dict(tbl.schema.metadata or {})
    schema_meta[_PARQUET_KEY] = json.dumps(recorded).encode()
    pq.write_table(tbl.replace_schema_metadata(schema_meta), tmp)
