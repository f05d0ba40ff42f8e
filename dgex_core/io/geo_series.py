"""Reading NCBI GEO series matrix files (``GSE..._series_matrix.txt.gz``, or
``GSE...-GPL..._series_matrix`` when a series spans platforms).

The file is text (gzip handled transparently), read line by line: ``!Series_*``
lines, ``!Sample_*`` lines with one quoted value per sample, then the probes x
samples table between ``!series_matrix_table_begin`` and
``!series_matrix_table_end``. :func:`read_series_matrix` returns it **samples x
probes**, the sample attributes as ``sample_meta`` (see
:mod:`dgex_core.io.geo_common`).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from ..errors import DataFormatError
from ..matrix import ExpressionMatrix, Provenance
from ._common import TextLines
from .geo_common import MetaBuilder, check_dtype, first_duplicate, single_or_list
from .table import parse_cells

__all__ = ["read_series_matrix"]

_TABLE_BEGIN = "!series_matrix_table_begin"
_TABLE_END = "!series_matrix_table_end"
#: Series attributes kept in ``provenance.notes`` (under these names).
_SERIES_NOTES = ("title", "geo_accession", "platform_id")


def _unquote(cell: str) -> str:
    """A cell without the double quotes GEO puts around text values."""
    cell = cell.strip()
    if len(cell) >= 2 and cell[0] == '"' and cell[-1] == '"':
        return cell[1:-1]
    return cell


@dataclass
class _SeriesHead:
    series: dict[str, list[str]]
    sample_lines: list[tuple[int, str, list[str]]]  # (line number, field, one value per sample)
    begin_line: int


@dataclass
class _SeriesTable:
    header_line: int
    sample_ids: list[str]
    probe_ids: list[str]
    linenos: list[int]
    values: np.ndarray  # probes x samples


def read_series_matrix(path: str | os.PathLike, *, dtype=np.float32) -> ExpressionMatrix:
    """Read a GEO series matrix file (``GSE..._series_matrix.txt[.gz]``).

    Parameters
    ----------
    path
        The file, plain or gzip-compressed.
    dtype
        Floating-point type of the values.

    Returns
    -------
    ExpressionMatrix
        ``n_samples x n_probes`` values (the file's table transposed); sample ids are
        the GSM accessions of the table header; ``sample_meta`` holds the ``!Sample_*``
        attributes (one column per characteristic key); ``provenance.notes`` keeps the
        series ``title``, ``geo_accession`` and ``platform_id``. ``null`` and empty
        cells are NaN.

    Raises
    ------
    DataFormatError
        If the table is missing or cut off (no ``!series_matrix_table_begin`` /
        ``_end``), empty (an RNA-seq series: the data are in the supplementary files),
        ragged, has non-numeric cells (line and column named) or repeated probe ids,
        or if its header names a different number of samples than
        ``!Sample_geo_accession``.

    Examples
    --------
    >>> m = read_series_matrix("GSE2034_series_matrix.txt.gz")  # doctest: +SKIP
    >>> m.shape, m.sample_meta["tissue"].iloc[0]  # doctest: +SKIP
    ((286, 22283), 'breast')
    """
    path = Path(path)
    dtype = check_dtype(dtype)
    with TextLines(path) as lines:
        head = _read_series_head(lines, path)
        table = _read_series_table(lines, path, head, dtype)
        _check_nothing_after(lines, path)
    sample_meta = _series_sample_meta(head, table, path)
    notes = {k: single_or_list(head.series[k]) for k in _SERIES_NOTES if head.series.get(k)}
    return ExpressionMatrix(
        np.ascontiguousarray(table.values.T),
        table.sample_ids,
        table.probe_ids,
        sample_meta=sample_meta,
        provenance=Provenance(str(path), "geo_series_matrix", notes=notes),
    )


def _read_series_head(lines: TextLines, path: Path) -> _SeriesHead:
    """Consume the ``!Series_*`` / ``!Sample_*`` lines up to the table start."""
    series: dict[str, list[str]] = {}
    sample_lines: list[tuple[int, str, list[str]]] = []
    for line in lines:
        if not line.strip():
            continue
        if line.strip().lower() == _TABLE_BEGIN:
            return _SeriesHead(series, sample_lines, lines.lineno)
        cells = line.split("\t")
        key = _unquote(cells[0])
        values = [_unquote(c) for c in cells[1:]]
        if key.startswith("!Series_"):
            series.setdefault(key[len("!Series_"):], []).extend(values)
        elif key.startswith("!Sample_"):
            sample_lines.append((lines.lineno, key[len("!Sample_"):], values))
        elif not key.startswith("!"):
            raise DataFormatError(
                path, f"line {lines.lineno}", f"unexpected line {line[:40]!r} before the expression table",
                "'!Series_...' and '!Sample_...' lines, then '!series_matrix_table_begin'",
            )
    if not series and not sample_lines:
        raise DataFormatError(path, "line 1", "no '!Series_' or '!Sample_' lines: not a GEO series matrix",
                              "a GSE..._series_matrix.txt file as downloaded from GEO")
    raise DataFormatError(
        path, f"line {lines.lineno} (end of file)",
        "the file ends before '!series_matrix_table_begin' (truncated download?)",
        "the expression table between !series_matrix_table_begin and !series_matrix_table_end",
    )


def _read_series_table(lines: TextLines, path: Path, head: _SeriesHead, dtype) -> _SeriesTable:
    """Consume the table up to ``!series_matrix_table_end``; values are probes x samples."""
    header = next((ln for ln in lines if ln.strip()), None)
    if header is None:
        _raise_unterminated(path, lines, head.begin_line)
    if header.strip().lower() == _TABLE_END:
        _raise_empty_series(path, head)
    header_line = lines.lineno
    cols = [_unquote(c) for c in header.split("\t")]
    if len(cols) < 2:
        raise DataFormatError(path, f"line {header_line}", "the table header names no sample",
                              '"ID_REF" then one GSM accession per sample, tab-separated')
    ncols = len(cols)
    columns = range(2, ncols + 1)  # file columns of the values, for error messages
    probe_ids: list[str] = []
    linenos: list[int] = []
    rows: list[np.ndarray] = []
    for line in lines:
        if not line.strip():
            continue
        if line.startswith("!"):
            if line.strip().lower() == _TABLE_END:
                break
            raise DataFormatError(path, f"line {lines.lineno}", f"unexpected {line[:40]!r} inside the table",
                                  "data rows, then !series_matrix_table_end")
        cells = line.split("\t")
        if len(cells) != ncols:
            raise DataFormatError(
                path, f"line {lines.lineno}", f"{len(cells)} tab-separated cells but the header (line "
                f"{header_line}) has {ncols}", "one probe id and one value per sample on every row",
            )
        if '"' in line:
            cells = [_unquote(c) for c in cells]
        probe_ids.append(cells[0].strip())
        linenos.append(lines.lineno)
        rows.append(parse_cells(cells[1:], path, lines.lineno, columns, dtype=dtype))
    else:
        _raise_unterminated(path, lines, head.begin_line)
    if not rows:
        _raise_empty_series(path, head)
    dup = first_duplicate(probe_ids)
    if dup is not None:
        first = linenos[probe_ids.index(probe_ids[dup])]
        raise DataFormatError(path, f"line {linenos[dup]}, column 1",
                              f"duplicate probe id {probe_ids[dup]!r} (first on line {first})", "each probe id once")
    return _SeriesTable(header_line, cols[1:], probe_ids, linenos, np.vstack(rows))


def _check_nothing_after(lines: TextLines, path: Path) -> None:
    """After ``!series_matrix_table_end`` only blank lines may follow: a second series
    (two files concatenated, ``cat a b > c``) would otherwise be dropped without a word."""
    end_line = lines.lineno
    for line in lines:
        text = line.strip()
        if not text:
            continue
        kind = ("a second series matrix" if text.startswith(("!Series_", "!Sample_", _TABLE_BEGIN))
                else "more content")
        raise DataFormatError(
            path, f"line {lines.lineno}", f"{kind} starts after the table ended on line {end_line} "
            "(several series matrices concatenated in one file?)",
            "one series matrix per file: split the file, or read each series' own download")


def _raise_unterminated(path: Path, lines: TextLines, begin_line: int):
    raise DataFormatError(
        path, f"line {lines.lineno} (end of file)",
        f"the file ends inside the expression table begun on line {begin_line}, without "
        "'!series_matrix_table_end' (truncated download?); download the file again",
        "the table to end with !series_matrix_table_end",
    )


def _raise_empty_series(path: Path, head: _SeriesHead):
    supp = head.series.get("supplementary_file", [])
    where = f" ({', '.join(supp[:3])})" if supp else ""
    raise DataFormatError(
        path, f"line {head.begin_line}",
        "the series has no expression table (typical of RNA-seq series): the data are in the "
        f"supplementary files{where}; download them from GEO and read them with "
        "dgex_core.io.read_table (or read the series' ARCHS4 counts)",
        "probe rows between !series_matrix_table_begin and !series_matrix_table_end",
    )


def _series_sample_meta(head: _SeriesHead, table: _SeriesTable, path: Path) -> pd.DataFrame:
    """``!Sample_*`` lines as a DataFrame indexed like the table's sample columns."""
    acc_line = next(((ln, v) for ln, f, v in head.sample_lines if f == "geo_accession"), None)
    ids = table.sample_ids
    if acc_line is not None:
        ln, accessions = acc_line
        if len(accessions) != len(ids):
            raise DataFormatError(
                path, f"line {table.header_line}",
                f"the table header names {len(ids)} samples but !Sample_geo_accession (line {ln}) "
                f"lists {len(accessions)}", "one table column per sample accession",
            )
        if accessions != ids and sorted(accessions) != sorted(ids):
            bad = next(h for h, a in zip(ids, accessions, strict=True) if h != a)
            raise DataFormatError(
                path, f"line {table.header_line}",
                f"table column {bad!r} is not among the !Sample_geo_accession values (line {ln})",
                "the same GSM accessions in the table header and in !Sample_geo_accession",
            )
        ids_meta = accessions
    else:
        ids_meta = ids
    builder = MetaBuilder()
    for ln, name, values in head.sample_lines:
        if len(values) != len(ids_meta):
            raise DataFormatError(path, f"line {ln}", f"!Sample_{name} has {len(values)} values for "
                                  f"{len(ids_meta)} samples", "one quoted value per sample")
        for i, v in enumerate(values):
            builder.add(i, name, v)
    return builder.frame(list(ids_meta)).reindex(pd.Index(ids, dtype=object))
