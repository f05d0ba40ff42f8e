"""GEO DataSet (GDS) SOFT files: ``GDSxxx.soft.gz``, the curated datasets GEOquery reads.

Layout (as GEO publishes it)::

    ^DATABASE = Geo                       database header (ignored)
    ^DATASET = GDS507
    !dataset_title = ...                  -> provenance.notes
    !dataset_platform = GPL97
    !dataset_value_type = count
    ^SUBSET = GDS507_1                    one per group of samples
    !subset_description = RCC             the group's label
    !subset_sample_id = GSM11815,GSM11832 its samples
    !subset_type = disease state          -> a sample-metadata column of that name
    ^DATASET = GDS507
    #ID_REF = Platform reference identifier
    #IDENTIFIER = identifier              the gene symbol
    #GSM11815 = Value for GSM11815: ...   -> sample metadata ``description``
    !dataset_table_begin
    ID_REF  IDENTIFIER  GSM11815  GSM11832 ...
    200000_s_at  TPT1  4254.0  17996.0 ...
    !dataset_table_end

One platform per dataset, one table: :func:`read_gds` returns it **samples x probes**,
``IDENTIFIER`` as gene metadata ``symbol``, each subset type as a sample-metadata
column (samples in no subset of that type: missing). ``null`` and empty cells are NaN.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pandas as pd

from ..errors import DataFormatError
from ..matrix import ExpressionMatrix, Provenance
from ._common import TextLines, parse_float_row

__all__ = ["read_gds"]

_BEGIN, _END = "!dataset_table_begin", "!dataset_table_end"
#: ``!dataset_*`` attributes kept in ``provenance.notes``.
_NOTES = ("title", "platform", "value_type", "sample_organism", "type", "pubmed_id", "update_date")


def read_gds(path: str | os.PathLike, *, platform: str | None = None, dtype=np.float32) -> ExpressionMatrix:
    """Read a GEO DataSet SOFT file.

    Parameters
    ----------
    platform
        The platform expected (``"GPL96"``); a GDS holds one, so this only checks it.
    dtype
        Floating-point type of the values.

    Raises
    ------
    DataFormatError
        No ``^DATASET`` or no table, a cut-off table, ragged or non-numeric rows, repeated
        probe or sample ids (line named), or a dataset of another platform than asked.
    """
    path = Path(path)
    dataset: dict[str, str] = {}
    ident = None
    subsets: list[dict[str, str]] = []
    described: dict[str, str] = {}
    table = None
    section = None
    with TextLines(path) as lines:
        for line in lines:
            if not line.strip():
                continue
            if line.startswith("^"):
                kind, _, value = line[1:].partition("=")
                section = kind.strip().upper()
                if section == "DATASET":
                    ident = value.strip()
                elif section == "SUBSET":
                    subsets.append({"id": value.strip(), "line": str(lines.lineno)})
            elif line.startswith("#"):
                name, _, desc = line[1:].partition("=")
                described[name.strip()] = desc.strip()
            elif line.strip().lower() == _BEGIN:
                if table is not None:
                    raise DataFormatError(path, f"line {lines.lineno}", "a second data table",
                                          "one !dataset_table_begin ... !dataset_table_end table")
                table = _read_table(lines, path, dtype)
            elif line.startswith("!"):
                key, _, value = line[1:].partition("=")
                key, value = key.strip().lower(), value.strip()
                if section == "DATASET" and key.startswith("dataset_"):
                    dataset[key[len("dataset_"):]] = value
                elif section == "SUBSET" and key.startswith("subset_"):
                    subsets[-1][key[len("subset_"):]] = value
            elif section != "DATABASE":
                raise DataFormatError(path, f"line {lines.lineno}", f"unexpected line {line[:40]!r} outside the "
                                      "data table", "'^ENTITY = id', '!attribute = value' or '#column = description'")
    if ident is None:
        raise DataFormatError(path, "line 1", "no '^DATASET' section", "a GEO DataSet file (GDSxxx.soft)")
    if table is None:
        raise DataFormatError(path, f"line {lines.lineno} (end of file)", "no data table",
                              f"{_BEGIN}, the table, then {_END}")
    probes, symbols, samples, values = table
    have = dataset.get("platform")
    if platform is not None and have is not None and have != platform:
        raise DataFormatError(path, "!dataset_platform", f"the dataset is on {have}, not {platform}",
                              f"--platform {have} (a GDS holds one platform), or no --platform")
    meta = _sample_meta(subsets, samples, described, path)
    notes = {"geo_accession": ident, **{k: dataset[k] for k in _NOTES if k in dataset}}
    return ExpressionMatrix(np.ascontiguousarray(values.T), pd.Index(samples, dtype=object),
                            pd.Index(probes, dtype=object), sample_meta=meta,
                            gene_meta=pd.DataFrame({"symbol": symbols}, index=pd.Index(probes, dtype=object)),
                            provenance=Provenance(str(path), "geo_gds", notes=notes))


def _read_table(lines: TextLines, path: Path, dtype):
    """(probe ids, identifiers, sample ids, probes x samples values) up to the table's end."""
    header = next((ln for ln in lines if ln.strip()), None)
    if header is None or header.strip().lower() == _END:
        raise DataFormatError(path, f"line {lines.lineno}", "the data table is empty",
                              "ID_REF, IDENTIFIER and one column per GSM sample, then probe rows")
    header_line = lines.lineno
    cols = [c.strip() for c in header.split("\t")]
    if len(cols) < 3 or cols[0].upper() != "ID_REF" or cols[1].upper() != "IDENTIFIER":
        raise DataFormatError(path, f"line {header_line}", f"the table header starts {cols[:3]}",
                              "ID_REF, IDENTIFIER, then one GSM column per sample")
    samples = cols[2:]
    _unique(samples, path, f"line {header_line}", "sample")
    columns = list(range(3, len(cols) + 1))
    probes, symbols, rows = [], [], []
    for line in lines:
        if not line.strip():
            continue
        if line.strip().lower() == _END:
            break
        cells = line.split("\t")
        if len(cells) != len(cols):
            raise DataFormatError(path, f"line {lines.lineno}", f"{len(cells)} cells but the header (line "
                                  f"{header_line}) has {len(cols)}", "the same number of cells on every row")
        probes.append(cells[0].strip())
        symbols.append(cells[1].strip() or None)
        rows.append(parse_float_row(cells[2:], path, lines.lineno, 3, dtype, columns=columns, names=samples))
    else:
        raise DataFormatError(path, f"line {lines.lineno} (end of file)", f"the table begun on line {header_line} "
                              f"has no '{_END}' (truncated download?)", f"the table to end with {_END}")
    if not rows:
        raise DataFormatError(path, f"line {header_line}", "the data table has no rows", "one row per probe")
    _unique(probes, path, "column 1 (ID_REF)", "probe")
    return probes, symbols, samples, np.vstack(rows)


def _unique(ids: list[str], path: Path, where: str, what: str) -> None:
    idx = pd.Index(ids)
    if not idx.is_unique:
        raise DataFormatError(path, where, f"duplicate {what} ids, e.g. {idx[idx.duplicated()].unique()[:3].tolist()}",
                              f"each {what} id once")


def _sample_meta(subsets: list[dict[str, str]], samples: list[str], described: dict[str, str],
                 path: Path) -> pd.DataFrame:
    meta = pd.DataFrame(index=pd.Index(samples, dtype=object))
    known = set(samples)
    for sub in subsets:
        kind = sub.get("type") or "subset"
        if kind not in meta:
            meta[kind] = pd.Series(None, index=meta.index, dtype=object)
        members = [s.strip() for s in sub.get("sample_id", "").split(",") if s.strip()]
        stray = [s for s in members if s not in known]
        if stray:
            raise DataFormatError(path, f"line {sub['line']} (^SUBSET {sub['id']})",
                                  f"lists samples not in the table: {stray[:3]}", "sample ids of the data table")
        meta.loc[members, kind] = sub.get("description")
    desc = [described.get(s) for s in samples]
    if any(desc):
        meta["description"] = desc
    return meta
