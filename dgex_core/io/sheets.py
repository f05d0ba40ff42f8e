"""Side tables that travel with an expression file: sample sheets and probe -> gene maps."""

from __future__ import annotations

import os
from pathlib import Path

import pandas as pd

from ..errors import DataFormatError
from ._common import head_bytes

__all__ = ["read_gene_map", "read_sample_sheet", "sheet_for_samples"]


def _sep(path: Path) -> str:
    first = head_bytes(path).decode("utf-8", "replace").split("\n", 1)[0]
    return "\t" if first.count("\t") >= first.count(",") else ","


def read_sample_sheet(path: str | os.PathLike, id_column: str | None = None) -> pd.DataFrame:
    """A per-sample annotation table (CSV/TSV, gz transparent) indexed by sample id.

    The id column is ``id_column`` or else the first column. Values stay text except
    columns that are entirely numeric.

    Raises
    ------
    DataFormatError
        If the file is empty, the id column is absent, or ids repeat.
    """
    p = Path(path)
    try:
        df = pd.read_csv(p, sep=_sep(p), dtype=str, keep_default_na=False, na_values=["", "NA", "NaN", "na"])
    except pd.errors.EmptyDataError:
        raise DataFormatError(p, "line 1", "the file is empty", "a header line, then one row per sample") from None
    except pd.errors.ParserError as e:
        raise DataFormatError(p, None, f"cannot parse the table ({e})", "one row per sample, same number of cells") from None
    col = id_column or df.columns[0]
    if col not in df:
        raise DataFormatError(p, "header", f"no column {col!r} (columns: {list(df.columns)})", "a sample-id column")
    dup = df[col][df[col].duplicated()]
    if len(dup):
        raise DataFormatError(p, f"column {col!r}", f"duplicate sample ids, e.g. {dup.unique()[:5].tolist()}",
                              "each sample once")
    df = df.set_index(col)
    df.index = df.index.astype(str)
    for c in df.columns:
        num = pd.to_numeric(df[c], errors="coerce")
        if num.notna().sum() == df[c].notna().sum():
            df[c] = num
    return df


def read_gene_map(path: str | os.PathLike, gene_key: str = "symbol") -> pd.Series:
    """A probe id -> gene map, for :func:`dgex_core.preprocess.collapse_probes`.

    Accepted layouts (tab or comma separated):

    - the D-GEX gene maps (``map_lm.txt`` / ``map_tg.txt``): ``symbol``, Ensembl id,
      comma-separated probe ids, no header -> probe -> symbol;
    - a GEO platform (GPL) annotation table with ``ID`` and ``Gene Symbol`` (or
      ``GENE_SYMBOL``, ``Symbol``) columns;
    - any two-column table ``probe<TAB>gene`` (a header is optional).

    Parameters
    ----------
    gene_key
        For D-GEX maps, ``"symbol"`` or ``"ensembl"``: which id names the gene.

    Returns
    -------
    pandas.Series
        Index: probe ids; values: gene ids. A probe listed twice keeps its first gene.

    Notes
    -----
    D-GEX's two maps share 445 genes: a landmark gene's chosen probe is the landmark,
    and its *other* probes make the same gene a target. Collapse the landmark and
    target probes with their own maps, not with the two maps merged.
    """
    p = Path(path)
    sep = _sep(p)
    try:
        raw = pd.read_csv(p, sep=sep, dtype=str, header=None, keep_default_na=False, comment=None)
    except pd.errors.EmptyDataError:
        raise DataFormatError(p, "line 1", "the file is empty", "a probe -> gene table") from None
    except pd.errors.ParserError as e:
        raise DataFormatError(p, None, f"cannot parse the table ({e})", "a probe -> gene table") from None
    header = [h.strip().lower() for h in raw.iloc[0]]
    sym_cols = [i for i, h in enumerate(header) if h in ("gene symbol", "gene_symbol", "symbol", "gene")]
    if "id" in header and sym_cols:
        probes, genes = raw.iloc[1:, header.index("id")], raw.iloc[1:, sym_cols[0]]
    elif raw.shape[1] == 3 and raw.iloc[:, 1].str.match(r"^ENS[A-Z]*G\d+").mean() > 0.5:
        if gene_key not in ("symbol", "ensembl"):
            raise ValueError(f"gene_key must be 'symbol' or 'ensembl', got {gene_key!r}")
        names = raw[0] if gene_key == "symbol" else raw[1]
        pairs = [(pr.strip(), g.strip()) for g, probes in zip(names, raw[2], strict=True)
                 for pr in probes.split(",") if pr.strip()]
        probes, genes = pd.Series([a for a, _ in pairs]), pd.Series([b for _, b in pairs])
    elif raw.shape[1] >= 2:
        probes, genes = raw.iloc[:, 0], raw.iloc[:, 1]
    else:
        raise DataFormatError(p, "line 1", f"{raw.shape[1]} column(s)",
                              "a D-GEX map (symbol, Ensembl id, probes), a GPL table (ID, Gene Symbol) or probe<TAB>gene")
    s = pd.Series(genes.str.strip().to_numpy(), index=probes.str.strip().to_numpy(), dtype=object)
    return s[~s.index.duplicated()]


def sheet_for_samples(sheet: pd.DataFrame, sample_ids: pd.Index, path: str | os.PathLike = "the sample sheet"
                      ) -> tuple[pd.DataFrame, str | None]:
    """The sheet's rows for ``sample_ids`` (in that order; samples it lacks get missing
    values) and a note when it covers only some of them.

    Raises
    ------
    DataFormatError
        If no sample id of the data is in the sheet (the wrong sheet, or ids written
        differently), naming a few ids of each.
    """
    rows = sheet.reindex(sample_ids)
    found = int(sheet.index.isin(sample_ids).sum())
    if found == 0:
        raise DataFormatError(path, "id column", f"none of its {len(sheet):,} sample ids (e.g. "
                              f"{', '.join(map(str, sheet.index[:3]))}) is a sample of the data (e.g. "
                              f"{', '.join(map(str, sample_ids[:3]))})",
                              "a sheet whose first (or id) column holds the data's sample ids")
    missing = len(sample_ids) - int(pd.Index(sample_ids).isin(sheet.index).sum())
    note = (f"{path}: {missing:,} of the {len(sample_ids):,} samples are not in the sheet (their metadata are "
            "missing)") if missing else None
    return rows, note
