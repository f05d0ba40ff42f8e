"""Landmark gene lists and how well a dataset covers them.

A :class:`LandmarkList` is a table with one row per landmark gene and up to four id
columns: ``probe_id`` (GPL96 / L1000 probe ids such as ``200814_at``; a gene may have
several, comma separated), ``entrez_id``, ``symbol`` and ``ensembl_id``. It comes from

- a LINCS gene-info file (``GSE92742_Broad_LINCS_gene_info.txt``: ``pr_is_lm == 1``;
  or the 2020 ``geneinfo_beta.txt``: ``feature_space == "landmark"``),
- the row ids and row metadata of an L1000 GCT / GCTX (``pr_gene_id``, ``pr_gene_symbol``),
- a D-GEX gene map (``map_lm.txt``: symbol, Ensembl id, comma-separated probe ids),
- a plain file with one id per line (the id kind is guessed from the ids).

:func:`match_landmarks` finds the landmarks in a dataset by id, trying every id kind
of the list against the dataset's gene ids and its gene-metadata columns, and returns
a :class:`Coverage` report: which landmarks are present, which are missing, and the
dataset gene that stands for each present one. Matching is always by id, never by
position.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from .errors import DataFormatError
from .genes import SYMBOL_COLUMNS

__all__ = [
    "ID_KINDS",
    "Coverage",
    "LandmarkList",
    "guess_id_kind",
    "landmarks_from_matrix",
    "match_landmarks",
    "read_landmarks",
]

#: The id kinds a landmark list can carry, in the order they are tried.
ID_KINDS = ("probe_id", "entrez_id", "ensembl_id", "symbol")

_ENSEMBL = re.compile(r"^ENS[A-Z]*G\d+(\.\d+)?$")
_PROBE = re.compile(r"^\d+(_[a-z]+)*_(at|st)$|^AFFX-|^ILMN_\d+$|^A_\d+_P\d+$", re.IGNORECASE)
_ENTREZ = re.compile(r"^\d+$")

# gene-metadata columns that may hold each id kind (lower-cased names)
_META_COLUMNS = {
    "symbol": SYMBOL_COLUMNS,
    "entrez_id": ("entrez_id", "pr_gene_id", "entrez", "entrez_gene_id", "gene_id", "entrezid"),
    "ensembl_id": ("ensembl_id", "ensembl", "gene_ids", "ensembl_gene", "ensembl_gene_id"),
    "probe_id": ("probe_id", "id_ref", "probe"),
}


def guess_id_kind(ids: Iterable[str]) -> str:
    """Guess what kind of gene ids these are: ``probe_id``, ``entrez_id``, ``ensembl_id`` or ``symbol``.

    The kind matched by most ids wins; symbols are the fallback.
    """
    ids = [str(i) for i in ids][:5000]
    if not ids:
        return "symbol"
    counts = {
        "entrez_id": sum(bool(_ENTREZ.match(i)) for i in ids),
        "ensembl_id": sum(bool(_ENSEMBL.match(i)) for i in ids),
        "probe_id": sum(bool(_PROBE.match(i)) for i in ids),
    }
    kind, n = max(counts.items(), key=lambda kv: kv[1])
    return kind if n >= 0.5 * len(ids) else "symbol"


def _normalize(kind: str, value) -> str | None:
    """Canonical text of an id for matching: Ensembl versions dropped, symbols upper-cased."""
    if value is None or (isinstance(value, float) and np.isnan(value)):
        return None
    s = str(value).strip()
    if not s or s.lower() in ("na", "nan", "-666", "none", ""):
        return None
    if kind == "ensembl_id":
        return s.split(".", 1)[0].upper()
    if kind == "entrez_id":
        return s[:-2] if s.endswith(".0") else s
    if kind == "symbol":
        return s.upper()
    return s


@dataclass
class LandmarkList:
    """An ordered list of landmark genes with the ids each is known by.

    Attributes
    ----------
    table
        One row per landmark; columns among :data:`ID_KINDS` (``probe_id`` may hold
        several comma-separated probes of one gene). Missing ids are ``None``.
    source
        Where the list came from (file name or description).
    """

    table: pd.DataFrame
    source: str = "memory"
    notes: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        cols = [c for c in ID_KINDS if c in self.table.columns]
        if not cols:
            raise ValueError(f"a landmark table needs at least one of the columns {ID_KINDS}")
        table = self.table[cols].reset_index(drop=True)
        key = table[cols[0]]
        dup = key.notna() & key.astype(str).str.len().gt(0) & key.duplicated()
        if dup.any():  # the same gene listed twice is one landmark, not a missing one
            first = key[dup].astype(str).unique()
            self.notes.append(f"{int(dup.sum())} duplicate {cols[0]} entries collapsed (e.g. {', '.join(first[:3])})")
            table = table[~dup].reset_index(drop=True)
        self.table = table

    def __len__(self) -> int:
        return len(self.table)

    def __repr__(self) -> str:
        return f"<LandmarkList {len(self)} landmarks, ids: {', '.join(self.kinds)}, from {self.source}>"

    @property
    def kinds(self) -> list[str]:
        """The id kinds this list carries."""
        return [c for c in ID_KINDS if c in self.table.columns and self.table[c].notna().any()]

    @property
    def primary_kind(self) -> str:
        return self.kinds[0]

    def ids(self, kind: str | None = None) -> list[str]:
        """The landmarks' ids of one kind (the first kind available by default); missing as ''."""
        kind = kind or self.primary_kind
        return ["" if v is None or (isinstance(v, float) and np.isnan(v)) else str(v) for v in self.table[kind]]

    def all_ids(self) -> set[str]:
        """Every id of every kind the list carries (what a table's orientation is decided by)."""
        return {i for kind in self.kinds for i in self.ids(kind) if i}

    @property
    def labels(self) -> list[str]:
        """A readable label per landmark (symbol when known, else the primary id)."""
        prim = self.ids()
        if "symbol" in self.kinds:
            return [s or p for s, p in zip(self.ids("symbol"), prim, strict=True)]
        return prim

    @classmethod
    def from_ids(cls, ids: Sequence, kind: str | None = None, source: str = "memory") -> LandmarkList:
        """A list from plain ids; ``kind`` is guessed when not given."""
        ids = [str(i).strip() for i in ids if str(i).strip()]
        kind = kind or guess_id_kind(ids)
        if kind not in ID_KINDS:
            raise ValueError(f"kind must be one of {ID_KINDS}, got {kind!r}")
        return cls(pd.DataFrame({kind: ids}), source)


@dataclass
class Coverage:
    """How a dataset covers a landmark list.

    Attributes
    ----------
    n_requested
        Landmarks in the list.
    present
        Labels of the landmarks found, in list order.
    missing
        Labels of the landmarks not found, in list order.
    gene_ids
        For each present landmark (same order), the dataset gene id that stands for it.
    matched_on
        ``(list id kind, dataset field)`` that gave the best match, e.g.
        ``("probe_id", "gene id")`` or ``("symbol", "gene_meta:pr_gene_symbol")``.
    n_ambiguous
        Landmarks matching several dataset genes (the first was taken; collapse probes
        to genes first to avoid it).
    """

    n_requested: int
    present: list[str]
    missing: list[str]
    gene_ids: list[str]
    matched_on: tuple[str, str]
    n_ambiguous: int = 0
    notes: list[str] = field(default_factory=list)

    @property
    def n_present(self) -> int:
        return len(self.present)

    @property
    def fraction(self) -> float:
        return self.n_present / self.n_requested if self.n_requested else 0.0

    @property
    def complete(self) -> bool:
        return not self.missing

    def summary(self, max_missing: int = 10) -> str:
        """One line for people: ``"962 of 978 landmarks present (98.4%), matched on ...; missing: A, B, ..."``."""
        s = (f"{self.n_present} of {self.n_requested} landmarks present ({100 * self.fraction:.1f}%), "
             f"matched on list {self.matched_on[0]} = dataset {self.matched_on[1]}")
        if self.missing:
            more = f" and {len(self.missing) - max_missing} more" if len(self.missing) > max_missing else ""
            s += f"; missing: {', '.join(self.missing[:max_missing])}{more}"
        if self.n_ambiguous:
            s += f"; {self.n_ambiguous} matched several genes (collapse probes to genes to resolve)"
        return s

    def to_dict(self) -> dict:
        return {
            "n_requested": self.n_requested,
            "n_present": self.n_present,
            "present": self.present,
            "missing": self.missing,
            "gene_ids": self.gene_ids,
            "matched_on": list(self.matched_on),
            "n_ambiguous": self.n_ambiguous,
        }


_KIND_WORDS = {"probe_id": "array probe ids", "entrez_id": "Entrez gene ids", "ensembl_id": "Ensembl gene ids",
               "symbol": "gene symbols (or other names)"}


def id_mismatch(wanted: Sequence, have: Sequence, wanted_what: str = "the landmarks",
                have_what: str = "the file's genes") -> str:
    """Why two id lists do not meet, for a person: which kind of ids each side holds,
    with examples, e.g. ``"the file's genes are array probe ids (e.g. 200814_at, ...);
    the landmarks are gene symbols (or other names) (e.g. LM0001, ...)"``."""
    wanted, have = [str(i) for i in wanted], [str(i) for i in have]
    kw, kh = guess_id_kind(wanted), guess_id_kind(have)
    text = (f"{have_what} are {_KIND_WORDS[kh]} (e.g. {', '.join(have[:3])}); {wanted_what} are "
            f"{_KIND_WORDS[kw]} (e.g. {', '.join(wanted[:3])})")
    if kw != kh:
        text += ": another kind of id, so nothing can match by id"
    return text


def _dataset_keys(gene_ids: pd.Index, gene_meta: pd.DataFrame | None) -> list[tuple[str, list[str]]]:
    """Candidate dataset fields to match against: the gene ids and id-like metadata columns."""
    keys = [("gene id", [str(g) for g in gene_ids])]
    if gene_meta is not None:
        for col in gene_meta.columns:
            if any(str(col).lower() in names for names in _META_COLUMNS.values()):
                keys.append((f"gene_meta:{col}", ["" if pd.isna(v) else str(v) for v in gene_meta[col]]))
    return keys


def match_landmarks(
    landmarks: LandmarkList, gene_ids: Sequence | pd.Index, gene_meta: pd.DataFrame | None = None
) -> Coverage:
    """Find each landmark among a dataset's genes, by id.

    Every id kind of the list is tried against the dataset gene ids and each id-like
    gene-metadata column (``pr_gene_symbol``, ``Description``, ``pr_gene_id``...), with
    Ensembl versions ignored and symbols compared case-insensitively. The pair that
    finds the most landmarks wins. A landmark listed with several probe ids is present
    when any of its probes is (the first present one stands for it).

    Parameters
    ----------
    landmarks
        The landmark list.
    gene_ids
        The dataset's gene ids (n_genes,).
    gene_meta
        The dataset's gene metadata, indexed like ``gene_ids`` (optional).

    Returns
    -------
    Coverage
    """
    gene_ids = pd.Index([str(g) for g in gene_ids])
    labels = landmarks.labels
    best: Coverage | None = None
    for kind in landmarks.kinds:
        lm_ids = landmarks.ids(kind)
        for field_name, values in _dataset_keys(gene_ids, gene_meta):
            lookup: dict[str, list[int]] = {}
            for pos, v in enumerate(values):
                key = _normalize(kind, v)
                if key is not None:
                    lookup.setdefault(key, []).append(pos)
            present, missing, chosen, ambiguous, used = [], [], [], 0, set()
            for label, raw in zip(labels, lm_ids, strict=True):
                candidates = [c for c in (_normalize(kind, p) for p in raw.split(",")) if c]
                hits = [pos for c in candidates for pos in lookup.get(c, [])]
                hits = [h for h in hits if h not in used]
                if hits:
                    present.append(label)
                    chosen.append(gene_ids[hits[0]])
                    used.add(hits[0])
                    ambiguous += len(set(hits)) > 1 and len(candidates) == 1
                else:
                    missing.append(label)
            cov = Coverage(len(labels), present, missing, chosen, (kind, field_name), ambiguous)
            if best is None or cov.n_present > best.n_present:
                best = cov
    assert best is not None
    return best


# ----------------------------------------------------------------------- readers
def _read_text_table(path: Path, **kw) -> pd.DataFrame:
    try:
        return pd.read_csv(path, sep="\t", dtype=str, keep_default_na=False, **kw)
    except pd.errors.EmptyDataError:
        raise DataFormatError(path, "line 1", "the file is empty", "a landmark list") from None
    except pd.errors.ParserError as e:
        raise DataFormatError(path, None, f"cannot parse as a tab-separated table ({e})", "a landmark list") from None


def read_landmarks(path: str | os.PathLike, kind: str | None = None) -> LandmarkList:
    """Read a landmark list from a LINCS gene-info file, a D-GEX map, an L1000 GCT/GCTX or one id per line.

    Parameters
    ----------
    path
        The file; its kind is recognised from its content.
    kind
        For a one-id-per-line file, the id kind (guessed when not given).

    Raises
    ------
    DataFormatError
        If the file is empty or holds no landmark.
    """
    from .io._common import HDF5_MAGIC, TextLines, head_bytes

    p = Path(path)
    head = head_bytes(p, 16)
    if head.startswith(HDF5_MAGIC):
        return landmarks_from_matrix(p, "gctx")
    if head.startswith((b"#1.2", b"#1.3")):
        return landmarks_from_matrix(p, "gct")

    with TextLines(p) as lines:
        first = next(lines, "")
    header = [h.strip().lower() for h in first.split("\t")]
    if "pr_gene_id" in header and "pr_is_lm" in header:
        t = _read_text_table(p)
        t = t[t["pr_is_lm"].str.strip() == "1"]
        out = pd.DataFrame({"entrez_id": t["pr_gene_id"].str.strip(),
                            "symbol": t.get("pr_gene_symbol", pd.Series(dtype=str)).str.strip()})
    elif "feature_space" in header and "gene_id" in header:
        t = _read_text_table(p)
        t = t[t["feature_space"].str.strip().str.lower() == "landmark"]
        out = pd.DataFrame({"entrez_id": t["gene_id"].str.strip(), "symbol": t.get("gene_symbol").str.strip()})
        if "ensembl_id" in t:
            out["ensembl_id"] = t["ensembl_id"].str.strip()
    elif len(header) == 3 and _ENSEMBL.match(first.split("\t")[1].strip()):
        t = _read_text_table(p, header=None, names=["symbol", "ensembl_id", "probe_id"])
        out = t.apply(lambda c: c.str.strip())
    else:
        ids, first_line, notes = [], None, []
        with TextLines(p) as lines:
            for line in lines:
                if line.strip() and not line.lstrip().startswith("#"):
                    first_line = line if first_line is None else first_line
                    ids.append(line.split("\t")[0].split(",")[0].strip())  # one id per line: the first column
        if len(ids) == 1:  # the whole list on one line: ids separated by commas, tabs or spaces
            ids = [t for t in re.split(r"[,;\s]+", first_line.strip()) if t]
            if len(ids) > 1:
                notes.append(f"one line of {len(ids)} ids separated by commas / tabs / spaces read as {len(ids)} ids")
        ids = [i for i in ids if i]
        if ids and ids[0].lower() in ("id", "gene", "gene_id", "symbol", "probe_id", "entrez_id", "rid"):
            ids = ids[1:]
        if not ids:
            raise DataFormatError(p, "line 1", "no ids found", "one gene id per line")
        out = LandmarkList.from_ids(ids, kind, source=str(p))
        out.notes[:0] = notes
        _check_size(out, p)
        return out
    if out.empty:
        raise DataFormatError(p, None, "no landmark rows (no gene flagged as landmark)", "pr_is_lm = 1 or feature_space = landmark")
    out = out.replace("", None)
    lm = LandmarkList(out.reset_index(drop=True), source=str(p))
    _check_size(lm, p)
    return lm


#: Fewest landmarks a list may hold: one gene cannot stand for a transcriptome (and
#: the inputs' covariance, the out-of-distribution check, need more than one).
MIN_LANDMARKS = 2


def _check_size(lm: LandmarkList, path: Path) -> None:
    if len(lm) < MIN_LANDMARKS:
        raise DataFormatError(path, None, f"the list holds {len(lm)} landmark ({lm.ids()[0] if len(lm) else ''}), "
                              f"a model needs at least {MIN_LANDMARKS}",
                              "one gene id per line, e.g. the 978 L1000 landmarks")


def landmarks_from_matrix(path: str | os.PathLike, fmt: str | None = None) -> LandmarkList:
    """The landmark list of an L1000 GCT/GCTX: its row ids (probe or Entrez ids) and, when
    present, ``pr_gene_id`` (Entrez) and ``pr_gene_symbol`` row metadata."""
    from .io import sniff

    p = Path(path)
    fmt = fmt or sniff(p)
    if fmt == "gctx":
        from .io.gctx import GCTXFile

        with GCTXFile(p) as f:
            ids, meta = f.row_ids, f.row_meta()
    else:
        from .io import read

        m = read(p, format=fmt)
        ids, meta = m.gene_ids, m.gene_meta
    ids = [str(i) for i in ids]
    table = pd.DataFrame({guess_id_kind(ids): ids})
    cols = {c.lower(): c for c in meta.columns}
    if "pr_gene_id" in cols and "entrez_id" not in table:
        table["entrez_id"] = [_normalize("entrez_id", v) for v in meta[cols["pr_gene_id"]]]
    if "pr_gene_symbol" in cols:
        table["symbol"] = [None if pd.isna(v) else str(v) for v in meta[cols["pr_gene_symbol"]]]
    return LandmarkList(table, source=str(p))
