"""Reading NCBI GEO SOFT family files (``GSE..._family.soft.gz``).

The file is text (gzip handled transparently), streamed line by line so a
multi-gigabyte file never sits in memory as text: ``^DATABASE``, ``^SERIES``,
``^PLATFORM = GPL...`` and ``^SAMPLE = GSM...`` sections; each sample carries its own
``ID_REF``/``VALUE`` table, each platform its annotation table. :func:`read_soft`
returns one **samples x probes** matrix per platform, :func:`read_soft_matrix` the
one asked for, :func:`soft_platforms` counts the samples per platform; sample
attributes become ``sample_meta`` (see :mod:`dgex_core.io.geo_common`).
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from ..errors import DataFormatError
from ..matrix import ExpressionMatrix, Provenance
from ._common import TextLines, parse_float_row
from .geo_common import MetaBuilder, check_dtype, first_duplicate, single_or_list
from .table import NUMBER_MISSING

__all__ = ["read_soft", "read_soft_matrix", "soft_platforms"]

#: Platform-table columns that hold gene symbols / Entrez ids, most common first
#: (compared ignoring case, spaces and underscores).
_SYMBOL_COLUMNS = ("Gene Symbol", "GENE_SYMBOL", "Symbol", "ILMN_Gene", "Gene_Symbol", "GENE")
_ENTREZ_COLUMNS = ("ENTREZ_GENE_ID", "Entrez_Gene_ID", "Entrez Gene", "GENE_ID")


def _parse_values(cells: list[str], linenos: list[int], column: int, path: Path, dtype) -> np.ndarray:
    """Parse one column of numeric text (missing markers -> NaN); errors name line and column."""
    try:
        return np.asarray(cells, dtype=np.float64).astype(dtype, copy=False)
    except ValueError:
        pass
    conv = pd.to_numeric(pd.Series(cells, dtype=object), errors="coerce").to_numpy(np.float64)
    for k in np.flatnonzero(np.isnan(conv)):
        s = cells[k].strip()
        if s.lower() in NUMBER_MISSING:
            continue
        conv[k] = parse_float_row([s], path, linenos[k], column, np.float64)[0]
    return conv.astype(dtype, copy=False)


@dataclass
class _Entity:
    """One ``^KIND = id`` section of a SOFT file."""

    kind: str
    ident: str
    lineno: int
    attrs: list[tuple[str, str]] = field(default_factory=list)  # (name without 'Kind_', value)
    columns: dict[str, str] = field(default_factory=dict)  # '#NAME = description'
    probe_ids: list[str] | None = None  # samples: their table's ID_REF
    values: np.ndarray | None = None  # samples: their table's VALUE
    table: pd.DataFrame | None = None  # platforms: the annotation table, indexed by ID
    has_table: bool = False  # samples: a non-empty data table was seen (kept or skipped)

    def first(self, name: str) -> str | None:
        return next((v for k, v in self.attrs if k == name), None)

    @property
    def platform(self) -> str | None:
        return self.first("platform_id")


@dataclass
class _SoftFile:
    series: _Entity | None
    platforms: dict[str, _Entity]
    samples: list[_Entity]


def read_soft(path: str | os.PathLike, *, dtype=np.float32) -> dict[str, ExpressionMatrix]:
    """Read a GEO SOFT family file into one matrix per platform.

    Samples are grouped by ``!Sample_platform_id``. Each matrix is **samples x
    probes**: the probe order is the platform table's when the file has one (probes
    found only in sample tables follow, in order of first appearance), else the order
    of first appearance across samples. A probe missing from one sample's table is NaN
    for that sample. Samples without a data table are left out and listed in
    ``provenance.notes["samples_without_table"]``.

    Parameters
    ----------
    path
        ``GSE..._family.soft[.gz]``; streamed line by line.
    dtype
        Floating-point type of the values.

    Returns
    -------
    dict[str, ExpressionMatrix]
        Platform id (``"GPL96"``) -> matrix, in the order the platforms appear. Each
        matrix's ``gene_meta`` is that platform's annotation table (``Gene Symbol``,
        ``ENTREZ_GENE_ID``...; the column holding symbols is named in
        ``provenance.notes["gene_symbol_column"]``); ``sample_meta`` holds the
        ``!Sample_*`` attributes, one column per characteristic key; ``notes`` keep the
        series ``title`` and ``geo_accession``, the ``platform_id``, the
        ``platform_title`` and the ``#VALUE`` description.

    Raises
    ------
    DataFormatError
        On a cut-off table (no ``!sample_table_end``), ragged or non-numeric rows (line
        and column named), repeated probe ids, a table without ``ID_REF``/``VALUE``
        columns, or a file in which no sample has a data table (RNA-seq series).
    """
    path = Path(path)
    dtype = check_dtype(dtype)
    soft = _parse_soft(path, dtype, wanted=None)
    groups = _group_samples(soft, path)
    order = [p for p in soft.platforms if p in groups] + [p for p in groups if p not in soft.platforms]
    return {pid: _platform_matrix(soft, pid, groups[pid], path, dtype) for pid in order}


def soft_platforms(path: str | os.PathLike) -> dict[str, int]:
    """Platform id -> number of samples of a GEO SOFT family file, in file order, from
    its ``!Sample_platform_id`` lines alone (the tables are skipped, not parsed)."""
    counts: dict[str, int] = {}
    with TextLines(Path(path)) as lines:
        for line in lines:
            if line[:19].lower() == "!sample_platform_id":
                pid = line.partition("=")[2].strip()
                counts[pid] = counts.get(pid, 0) + 1
    return counts


def read_soft_matrix(
    path: str | os.PathLike, *, platform: str | None = None, dtype=np.float32
) -> ExpressionMatrix:
    """Read the samples of one platform from a GEO SOFT family file.

    Parameters
    ----------
    path
        ``GSE..._family.soft[.gz]``.
    platform
        The platform to read (``"GPL96"``). Needed when the series spans several
        platforms; other platforms' tables are then skipped while streaming.
    dtype
        Floating-point type of the values.

    Returns
    -------
    ExpressionMatrix
        ``n_samples x n_probes``, as described in :func:`read_soft`.

    Raises
    ------
    DataFormatError
        If the file holds data of several platforms and ``platform`` is not given (the
        message lists the platforms and their sample counts), if ``platform`` is not in
        the file, or on any error listed in :func:`read_soft`.
    """
    path = Path(path)
    dtype = check_dtype(dtype)
    soft = _parse_soft(path, dtype, wanted=platform)
    groups = _group_samples(soft, path)
    if platform is None:
        if len(groups) > 1:
            listing = ", ".join(f"{p} ({len(s)} samples)" for p, s in groups.items())
            raise DataFormatError(
                path, "!Sample_platform_id",
                f"the series spans {len(groups)} platforms: {listing}; choose one with --platform "
                f"{next(iter(groups))} (the Data page's Platform, platform= in Python), or read them all with "
                "dgex_core.io.geo_soft.read_soft",
                "a single platform, or --platform naming one",
            )
        platform = next(iter(groups))
    if platform not in groups:
        counts = _platform_counts(soft)
        listing = ", ".join(f"{p} ({n} samples)" for p, n in counts.items()) or "none"
        raise DataFormatError(path, "!Sample_platform_id",
                              f"no sample with a data table on platform {platform!r}; platforms with data: {listing}",
                              "platform= naming one of them")
    return _platform_matrix(soft, platform, groups[platform], path, dtype)


def _parse_soft(path: Path, dtype, wanted: str | None) -> _SoftFile:
    """Stream the file once; keep sample tables only for platform ``wanted`` (all if None)."""
    series: _Entity | None = None
    platforms: dict[str, _Entity] = {}
    samples: list[_Entity] = []
    current: _Entity | None = None
    last_ids: dict[str | None, list[str]] = {}  # share identical probe-id lists across samples
    with TextLines(path) as lines:
        for line in lines:
            if not line.strip():
                continue
            lead = line[0]
            if lead == "^":
                kind, _, ident = line[1:].partition("=")
                current = _Entity(kind.strip().upper(), ident.strip(), lines.lineno)
                if current.kind == "SAMPLE":
                    samples.append(current)
                elif current.kind == "PLATFORM":
                    platforms[current.ident] = current
                elif current.kind == "SERIES" and series is None:
                    series = current
            elif lead == "!":
                key, eq, value = line[1:].partition("=")
                key = key.strip()
                low = key.lower()
                if low == "sample_table_begin" and not eq:
                    keep = current is not None and (wanted is None or current.platform in (wanted, None))
                    _read_sample_table(lines, path, current, dtype, keep)
                    if keep and current.probe_ids is not None:
                        prev = last_ids.get(current.platform)
                        if prev is not None and prev == current.probe_ids:
                            current.probe_ids = prev
                        else:
                            last_ids[current.platform] = current.probe_ids
                elif low == "platform_table_begin" and not eq:
                    keep = current is not None and (wanted is None or current.ident == wanted)
                    _read_platform_table(lines, path, current, keep)
                elif low.endswith("_table_end"):
                    raise DataFormatError(path, f"line {lines.lineno}", f"'!{key}' without a table begun before it",
                                          "!..._table_begin, the table, then !..._table_end")
                elif current is not None:
                    prefix = current.kind.capitalize() + "_"
                    name = key[len(prefix):] if key.startswith(prefix) else key
                    current.attrs.append((name, value.strip()))
            elif lead == "#":
                name, _, desc = line[1:].partition("=")
                if current is not None:
                    current.columns[name.strip()] = desc.strip()
            else:
                raise DataFormatError(
                    path, f"line {lines.lineno}", f"unexpected line {line[:40]!r} outside a data table",
                    "'^ENTITY = id', '!attribute = value' or '#column = description' lines",
                )
    if not samples:
        raise DataFormatError(path, f"line {lines.lineno} (end of file)", "no '^SAMPLE' section in the file",
                              "a GSE..._family.soft file with ^SAMPLE sections")
    return _SoftFile(series, platforms, samples)


def _table_header(lines: TextLines, path: Path, owner: _Entity, end: str) -> list[str] | None:
    """The column names of a table, or None when the table is empty."""
    for line in lines:
        if not line.strip():
            continue
        if line.strip().lower() == end:
            return None
        return [c.strip() for c in line.split("\t")]
    _raise_cut_table(lines, path, owner, end)


def _raise_cut_table(lines: TextLines, path: Path, owner: _Entity, end: str):
    raise DataFormatError(
        path, f"line {lines.lineno} (end of file)",
        f"the file ends inside the table of {owner.kind.lower()} {owner.ident} (section on line {owner.lineno}) "
        f"without '{end}' (truncated download?); download the file again",
        f"the table to end with {end}",
    )


def _table_rows(lines: TextLines, path: Path, owner: _Entity, end: str, ncols: int, header_line: int):
    """Yield (line number, cells) of a table's rows, checking their width, up to ``end``."""
    for line in lines:
        if not line.strip():
            continue
        if line[0] == "!" and line.strip().lower() == end:
            return
        cells = line.split("\t")
        if len(cells) != ncols:
            raise DataFormatError(
                path, f"line {lines.lineno}", f"{len(cells)} tab-separated cells but the table header "
                f"(line {header_line}) has {ncols}", "the same number of cells on every row of the table",
            )
        yield lines.lineno, cells
    _raise_cut_table(lines, path, owner, end)


def _read_sample_table(lines: TextLines, path: Path, sample: _Entity, dtype, keep: bool) -> None:
    end = "!sample_table_end"
    cols = _table_header(lines, path, sample, end)
    if cols is None:
        return
    header_line = lines.lineno
    upper = [c.upper() for c in cols]
    for need in ("ID_REF", "VALUE"):
        if need not in upper:
            raise DataFormatError(path, f"line {header_line}", f"the table of sample {sample.ident} has no "
                                  f"{need} column (columns: {cols[:6]})", "ID_REF and VALUE columns")
    id_col, val_col = upper.index("ID_REF"), upper.index("VALUE")
    ids: list[str] = []
    cells_v: list[str] = []
    linenos: list[int] = []
    for lineno, cells in _table_rows(lines, path, sample, end, len(cols), header_line):
        sample.has_table = True
        if keep:
            ids.append(cells[id_col].strip())
            cells_v.append(cells[val_col])
            linenos.append(lineno)
    if not keep or not ids:
        return
    dup = first_duplicate(ids)
    if dup is not None:
        raise DataFormatError(path, f"line {linenos[dup]}, column {id_col + 1}",
                              f"duplicate probe id {ids[dup]!r} in the table of sample {sample.ident}",
                              "each probe id once per sample")
    sample.values = _parse_values(cells_v, linenos, val_col + 1, path, dtype)
    sample.probe_ids = ids


def _read_platform_table(lines: TextLines, path: Path, platform: _Entity, keep: bool) -> None:
    end = "!platform_table_end"
    cols = _table_header(lines, path, platform, end)
    if cols is None:
        return
    header_line = lines.lineno
    id_col = next((j for j, c in enumerate(cols) if c.upper() == "ID"), 0)
    rows: list[list[str]] = []
    linenos: list[int] = []
    for lineno, cells in _table_rows(lines, path, platform, end, len(cols), header_line):
        if keep:
            rows.append([c.strip() for c in cells])
            linenos.append(lineno)
    if not keep:
        return
    df = pd.DataFrame(rows, columns=cols, dtype=object)
    ids = df.pop(cols[id_col]).tolist()
    dup = first_duplicate(ids)
    if dup is not None:
        raise DataFormatError(path, f"line {linenos[dup]}, column {id_col + 1}",
                              f"duplicate probe id {ids[dup]!r} in the table of platform {platform.ident}",
                              "each probe id once")
    df.index = pd.Index(ids, dtype=object)
    platform.table = df.mask(df == "")


def _group_samples(soft: _SoftFile, path: Path) -> dict[str, list[_Entity]]:
    """Samples that have a data table, grouped by platform id (order of first appearance)."""
    only = next(iter(soft.platforms)) if len(soft.platforms) == 1 else None
    groups: dict[str, list[_Entity]] = {}
    for s in soft.samples:
        pid = s.platform or only
        if pid is None:
            raise DataFormatError(path, f"line {s.lineno}", f"sample {s.ident} has no !Sample_platform_id and "
                                  "the file describes several platforms", "!Sample_platform_id = GPL...")
        if s.probe_ids is not None:
            groups.setdefault(pid, []).append(s)
    if not any(s.has_table for s in soft.samples):
        _raise_no_soft_tables(soft, path)
    return groups


def _platform_counts(soft: _SoftFile) -> dict[str, int]:
    """Platform id -> number of samples with a data table (kept or skipped)."""
    only = next(iter(soft.platforms)) if len(soft.platforms) == 1 else None
    counts: dict[str, int] = {}
    for s in soft.samples:
        pid = s.platform or only
        if pid and s.has_table:
            counts[pid] = counts.get(pid, 0) + 1
    return counts


def _raise_no_soft_tables(soft: _SoftFile, path: Path):
    supp = [v for s in soft.samples[:2] for k, v in s.attrs if k.startswith("supplementary_file") and v]
    hint = f" ({', '.join(supp[:2])}, ...)" if supp else ""
    raise DataFormatError(
        path, f"{len(soft.samples)} ^SAMPLE sections",
        "no sample has an expression table (typical of RNA-seq series): the data are in the "
        f"supplementary files{hint}; download them from GEO and read them with dgex_core.io.read_table",
        "an ID_REF/VALUE table between !sample_table_begin and !sample_table_end",
    )


def _platform_matrix(soft: _SoftFile, pid: str, samples: list[_Entity], path: Path, dtype) -> ExpressionMatrix:
    """Assemble one platform's samples into a samples x probes matrix."""
    plat = soft.platforms.get(pid)
    table = plat.table if plat is not None else None
    order: dict[str, None] = dict.fromkeys(table.index) if table is not None else {}
    n_annotated = len(order)
    distinct = {id(s.probe_ids): s.probe_ids for s in samples}
    for ids in distinct.values():
        for i in ids:
            order.setdefault(i)
    probes = pd.Index(list(order), dtype=object)
    values = np.full((len(samples), len(probes)), np.nan, dtype=dtype)
    positions: dict[int, np.ndarray] = {}
    for r, s in enumerate(samples):
        key = id(s.probe_ids)
        if key not in positions:
            positions[key] = probes.get_indexer(s.probe_ids)
        values[r, positions[key]] = s.values
    builder = MetaBuilder()
    for i, s in enumerate(samples):
        for name, value in s.attrs:
            builder.add(i, name, value)
    notes = _soft_notes(soft, pid, plat, samples, table, n_annotated, len(probes))
    return ExpressionMatrix(
        values, [s.ident for s in samples], probes,
        sample_meta=builder.frame([s.ident for s in samples]),
        gene_meta=table.reindex(probes) if table is not None else None,
        provenance=Provenance(str(path), "geo_soft", notes=notes),
    )


def _soft_notes(soft, pid, plat, samples, table, n_annotated, n_probes) -> dict:
    notes: dict = {}
    if soft.series is not None:
        for k in ("title", "geo_accession"):
            v = [val for name, val in soft.series.attrs if name == k]
            if v:
                notes[k] = single_or_list(v)
    notes["platform_id"] = pid
    if plat is not None and plat.first("title"):
        notes["platform_title"] = plat.first("title")
    desc = list(dict.fromkeys(s.columns["VALUE"] for s in samples if s.columns.get("VALUE")))
    if desc:
        notes["value_description"] = single_or_list(desc)
    missing = [s.ident for s in soft.samples if (s.platform or pid) == pid and not s.has_table]
    if missing:
        notes["samples_without_table"] = missing
    if table is not None:
        notes["probes_not_in_platform_table"] = n_probes - n_annotated
        for key, names in (("gene_symbol_column", _SYMBOL_COLUMNS), ("entrez_column", _ENTREZ_COLUMNS)):
            col = _find_column(table.columns, names)
            if col is not None:
                notes[key] = col
    return notes


def _find_column(columns, names) -> str | None:
    def norm(s: str) -> str:
        return s.lower().replace(" ", "").replace("_", "")

    by_norm = {norm(str(c)): c for c in columns}
    return next((by_norm[norm(n)] for n in names if norm(n) in by_norm), None)
