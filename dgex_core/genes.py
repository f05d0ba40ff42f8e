"""Gene labels: which metadata column holds a gene's symbol, and how a gene is shown.

One place for the symbol-column names the readers produce (``symbol`` from the
landmark lists and tables, ``pr_gene_symbol`` from L1000 GCT/GCTX row metadata,
``gene_symbol`` from ARCHS4, a GCT ``Description``), so the CLI, the pages and the
attribution tables find the same symbol for a gene.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

__all__ = ["SYMBOL_COLUMNS", "find_genes", "gene_label", "gene_labels", "symbol_column", "symbols",
           "symbols_of"]

#: Gene-metadata columns that hold a gene symbol, the preferred first (matched case-insensitively).
SYMBOL_COLUMNS = ("symbol", "pr_gene_symbol", "gene_symbol", "gene symbol", "genesymbol", "gene_name",
                  "description")


def symbol_column(gene_meta: pd.DataFrame | None) -> str | None:
    """The first column of ``gene_meta`` named like a symbol column (:data:`SYMBOL_COLUMNS`), or None."""
    if gene_meta is None:
        return None
    by_lower = {}
    for c in gene_meta.columns:
        by_lower.setdefault(str(c).lower(), c)
    return next((by_lower[name] for name in SYMBOL_COLUMNS if name in by_lower), None)


def symbols(gene_meta: pd.DataFrame | None) -> pd.Series | None:
    """Gene symbols (indexed by gene id, ``""`` where unknown) from ``gene_meta``'s symbol
    column (:func:`symbol_column`), or None when it has none."""
    col = symbol_column(gene_meta)
    return None if col is None else gene_meta[col].fillna("").astype(str)


def symbols_of(genes, gene_meta: pd.DataFrame | None) -> np.ndarray:
    """The symbol of each id in ``genes`` (``""`` where unknown), an object array."""
    genes = np.asarray(pd.Index(genes).astype(str))
    sym = symbols(gene_meta)
    if sym is None:
        return np.full(len(genes), "", dtype=object)
    return sym.reindex(genes).fillna("").to_numpy(dtype=object)


def gene_label(gene_id: str, symbols: pd.Series | None) -> str:
    """``id (symbol)`` where ``symbols`` (from :func:`symbols`) knows a symbol other than the id, else the id."""
    s = "" if symbols is None else symbols.get(gene_id, "")
    s = "" if pd.isna(s) else str(s)
    return f"{gene_id} ({s})" if s and s != gene_id else str(gene_id)


def gene_labels(ids, symbols: pd.Series | None) -> np.ndarray:
    """:func:`gene_label` of each id, an object array."""
    return np.array([gene_label(i, symbols) for i in pd.Index(ids).astype(str)], dtype=object)


def find_genes(query: str, ids, gene_meta: pd.DataFrame | None, limit: int = 50) -> list[str]:
    """The ids among ``ids`` whose id or symbol contains ``query`` (case-insensitive),
    exact matches first, at most ``limit``."""
    q = query.strip().lower()
    if not q:
        return []
    ids = pd.Index(pd.Index(ids).astype(str))
    idl = ids.str.lower()
    syml = pd.Series(symbols_of(ids, gene_meta)).str.lower().to_numpy()
    exact = [g for g, a, b in zip(ids, idl, syml, strict=True) if a == q or b == q]
    hit = np.asarray(idl.str.contains(q, regex=False)) | pd.Series(syml).str.contains(q, regex=False).to_numpy()
    seen = set(exact)
    return (exact + [g for g in ids[hit] if g not in seen])[:limit]
