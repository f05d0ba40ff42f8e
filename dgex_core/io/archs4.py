"""ARCHS4 HDF5 gene-count matrices (``human_gene_v2.x.h5``, ``mouse_gene_v2.x.h5``).

Layout (read with h5py)::

    data/expression               uint32 counts, (genes, samples) in v2 files
    meta/genes/symbol             gene symbols (or gene_symbol; v1: genes)
    meta/genes/ensembl_gene, ...  other per-gene arrays
    meta/samples/geo_accession    GSM accessions
    meta/samples/series_id, title, characteristics_ch1, singlecellprobability, ...

The orientation of ``data/expression`` is found by comparing its shape with the
lengths of the gene and sample id arrays, so files stored either way are read.
A human v2 file holds ~67,000 genes x ~900,000 samples (over 200 GB as floats), so
:func:`read_archs4` reads only the samples and genes asked for, in blocks of at most
~64 MB, never the whole matrix.
"""

from __future__ import annotations

import os
from collections import Counter
from collections.abc import Sequence
from pathlib import Path

import h5py
import numpy as np
import pandas as pd

from ..errors import DataFormatError, DatasetError
from ..matrix import ExpressionMatrix, Provenance

__all__ = ["DEFAULT_SAMPLE_FIELDS", "read_archs4"]

EXPRESSION = "data/expression"
ACCESSIONS = "meta/samples/geo_accession"
SYMBOL_NODES = ("meta/genes/symbol", "meta/genes/gene_symbol", "meta/genes/genes")
#: ``meta/samples`` arrays read into ``sample_meta`` by default (those present).
DEFAULT_SAMPLE_FIELDS = ("series_id", "title", "characteristics_ch1", "source_name_ch1", "singlecellprobability")
_BLOCK_BYTES = 64 * 2**20
_BULK_THRESHOLD = 0.5


def read_archs4(
    path: str | os.PathLike,
    *,
    samples: Sequence[str] | Sequence[int] | None = None,
    genes: Sequence[str] | Sequence[int] | None = None,
    bulk_only: bool = False,
    sample_fields: Sequence[str] | None = None,
    dtype=np.float32,
) -> ExpressionMatrix:
    """Read (a subset of) an ARCHS4 gene-count file as raw counts.

    Parameters
    ----------
    path
        ``human_gene_v2.x.h5`` or a file with the same layout.
    samples
        GSM accessions, or positions along the sample axis; the matrix follows this
        order. All samples by default (mind the size of a full file).
    genes
        Gene symbols, or positions along the gene axis; the matrix follows this
        order. Symbols absent from the file are skipped and listed in
        ``provenance.notes["genes_not_found"]`` (landmark lists rarely match a
        dataset exactly; the dataset layer reports coverage). All genes by default.
    bulk_only
        Keep only samples with ``singlecellprobability < 0.5`` (bulk RNA-seq); the
        number dropped is in ``provenance.notes["non_bulk_samples_dropped"]``.
    sample_fields
        ``meta/samples`` arrays to put in ``sample_meta``; by default those of
        :data:`DEFAULT_SAMPLE_FIELDS` that the file has.
    dtype
        Floating-point type of the values. float32 holds counts exactly up to 2**24.

    Returns
    -------
    ExpressionMatrix
        ``n_samples x n_genes`` raw counts (no transform: the preprocessing step
        applies log2(1 + x)); sample ids are GSM accessions, gene ids are symbols;
        ``gene_meta`` holds the other ``meta/genes`` arrays (``ensembl_gene``...).

    Notes
    -----
    **Duplicate symbols.** ARCHS4 lists some symbols more than once (several Ensembl
    genes share a symbol). Gene ids must be unique and landmark lists match by
    symbol, so the **first** row of each symbol is kept and later ones are dropped:
    ``provenance.notes["duplicate_symbols_dropped"]`` says how many rows, and
    ``notes["duplicate_symbol_examples"]`` names a few symbols. The kept row's Ensembl
    id is in ``gene_meta["ensembl_gene"]`` when the file has it. Selecting by symbol
    gives that first row; selecting two positions that share a symbol is an error.

    Raises
    ------
    DataFormatError
        If a required node is missing (named), or ``data/expression``'s shape matches
        neither (genes, samples) nor (samples, genes), or a metadata array has the
        wrong length.
    DatasetError
        If a requested sample is not in the file, a position is out of range, or a
        selection repeats itself.
    """
    path = Path(path)
    dtype = np.dtype(dtype)
    if dtype.kind != "f":
        raise ValueError(f"dtype must be a floating-point type, got {dtype}")
    try:
        f = h5py.File(path, "r")
    except OSError as e:
        raise DataFormatError(path, "HDF5 header", f"cannot open as HDF5 ({e})", "an ARCHS4 .h5 file") from None
    with f:
        expr, symbol_node, symbols, accessions, genes_first, first_of, notes = _index(f, path)
        gene_pos = _select_genes(genes, symbols, first_of, notes)
        sample_pos = _select_samples(samples, accessions)
        if bulk_only:
            sample_pos = _bulk(f, path, sample_pos, len(accessions), notes)
        sample_ids = pd.Index([accessions[i] for i in sample_pos], dtype=object)
        gene_ids = pd.Index([symbols[i] for i in gene_pos], dtype=object)
        values = _read_values(expr, gene_pos, sample_pos, genes_first, dtype)
        sample_meta = _sample_meta(f, path, sample_pos, sample_ids, sample_fields)
        gene_meta = _gene_meta(f, path, gene_pos, gene_ids, len(symbols), symbol_node)
        if "meta/info/version" in f:
            notes["archs4_version"] = _text(np.atleast_1d(f["meta/info/version"][()]))[0]
    notes["values"] = "raw counts"
    return ExpressionMatrix(
        values, sample_ids, gene_ids, sample_meta=sample_meta, gene_meta=gene_meta,
        provenance=Provenance(str(path), "archs4", notes=notes),
    )


# ----------------------------------------------------------------------- helpers
def _index(f: h5py.File, path: Path):
    """The expression dataset, gene symbols and accessions, the layout and the duplicate-symbol notes."""
    expr = _dataset(f, EXPRESSION, path)
    symbol_node = next((n for n in SYMBOL_NODES if n in f), None)
    if symbol_node is None:
        raise DataFormatError(path, "/meta/genes", f"no gene symbol array (looked for {', '.join(SYMBOL_NODES)})",
                              "an ARCHS4 gene matrix with meta/genes/symbol")
    symbols = _text(_dataset(f, symbol_node, path)[()])
    accessions = _text(_dataset(f, ACCESSIONS, path)[()])
    seen: dict[str, int] = {}
    for i, a in enumerate(accessions):
        if a in seen:
            raise DataFormatError(path, f"/{ACCESSIONS}, entries {seen[a] + 1} and {i + 1}",
                                  f"the sample accession {a!r} appears twice (a merged or repeated download?)",
                                  "each sample (GSM accession) once")
        seen[a] = i
    genes_first = _layout(expr, len(symbols), len(accessions), path, symbol_node)
    first_of = _first_occurrences(symbols)
    notes = _duplicate_notes(symbols, first_of, symbol_node)
    notes["layout"] = "genes x samples" if genes_first else "samples x genes"
    return expr, symbol_node, symbols, accessions, genes_first, first_of, notes


def _dataset(f: h5py.File, node: str, path: Path) -> h5py.Dataset:
    obj = f.get(node)
    if not isinstance(obj, h5py.Dataset):
        problem = "missing" if obj is None else "is a group, not a dataset"
        raise DataFormatError(path, f"/{node}", problem, "an ARCHS4 gene matrix (data/expression, meta/genes, meta/samples)")
    return obj


def _text(arr) -> list[str]:
    """An id array as str (fixed-length or variable-length bytes decoded as UTF-8)."""
    arr = np.asarray(arr)
    if arr.dtype.kind == "S" or arr.dtype == object:
        return [v.decode("utf-8", "replace") if isinstance(v, bytes) else str(v) for v in arr.tolist()]
    return [str(v) for v in arr.tolist()]


def _column(arr) -> np.ndarray:
    """A metadata array as a column: text decoded, numbers kept."""
    arr = np.asarray(arr)
    if arr.dtype.kind in "SO":
        return np.array(_text(arr), dtype=object)
    return arr


def _layout(expr: h5py.Dataset, n_genes: int, n_samples: int, path: Path, symbol_node: str) -> bool:
    """True when data/expression is (genes, samples), the v2 layout."""
    if expr.ndim != 2:
        raise DataFormatError(path, f"/{EXPRESSION}", f"has {expr.ndim} dimensions", "a 2-D genes x samples matrix")
    if expr.shape == (n_genes, n_samples):
        return True
    if expr.shape == (n_samples, n_genes):
        return False
    raise DataFormatError(
        path, f"/{EXPRESSION}",
        f"shape {expr.shape} matches neither (genes, samples) nor (samples, genes): /{symbol_node} has "
        f"{n_genes} entries and /{ACCESSIONS} {n_samples}", "the matrix and its id arrays to agree",
    )


def _first_occurrences(symbols: list[str]) -> dict[str, int]:
    first: dict[str, int] = {}
    for i, s in enumerate(symbols):
        first.setdefault(s, i)
    return first


def _duplicate_notes(symbols: list[str], first_of: dict[str, int], symbol_node: str) -> dict:
    dropped = len(symbols) - len(first_of)
    notes: dict = {"gene_symbol_node": symbol_node, "duplicate_symbols_dropped": dropped}
    if dropped:
        notes["duplicate_symbol_examples"] = [s for s, n in Counter(symbols).most_common(10) if n > 1]
    return notes


def _as_selection(sel, what: str) -> tuple[np.ndarray, bool]:
    """(values, are_positions) for a selection of ids or integer positions."""
    arr = np.asarray(list(sel) if not isinstance(sel, np.ndarray) else sel)
    if arr.size == 0:
        raise DatasetError(f"{what}= is empty; pass at least one {what[:-1]}, or None for all")
    if arr.dtype.kind == "b":
        raise DatasetError(f"{what}= must be ids or integer positions, not booleans")
    return arr, arr.dtype.kind in "iu"


def _check_positions(pos: np.ndarray, n: int, what: str) -> np.ndarray:
    pos = pos.astype(np.int64)
    bad = pos[(pos < 0) | (pos >= n)]
    if bad.size:
        raise DatasetError(f"{what} positions {bad[:5].tolist()} are out of range (the file has {n} {what})")
    if len(np.unique(pos)) != len(pos):
        raise DatasetError(f"{what}= repeats positions; pass each once")
    return pos


def _select_genes(genes, symbols: list[str], first_of: dict[str, int], notes: dict) -> np.ndarray:
    if genes is None:
        return np.fromiter(first_of.values(), dtype=np.int64, count=len(first_of))
    arr, positional = _as_selection(genes, "genes")
    if positional:
        pos = _check_positions(arr, len(symbols), "genes")
        chosen = [symbols[i] for i in pos]
        if len(set(chosen)) != len(chosen):
            dup = [s for s, n in Counter(chosen).items() if n > 1][:5]
            raise DatasetError(f"gene positions given share symbols {dup}; gene ids must be unique, pick one row each")
        return pos
    wanted = _text(arr)
    if len(set(wanted)) != len(wanted):
        raise DatasetError("genes= repeats symbols; pass each once")
    missing = [g for g in wanted if g not in first_of]
    if missing:
        notes["n_genes_not_found"] = len(missing)
        notes["genes_not_found"] = missing[:100]
    pos = [first_of[g] for g in wanted if g in first_of]
    if not pos:
        raise DatasetError(f"none of the {len(wanted)} genes asked for is in the file (e.g. {wanted[:5]})")
    return np.asarray(pos, dtype=np.int64)


def _select_samples(samples, accessions: list[str]) -> np.ndarray:
    if samples is None:
        return np.arange(len(accessions), dtype=np.int64)
    arr, positional = _as_selection(samples, "samples")
    if positional:
        return _check_positions(arr, len(accessions), "samples")
    wanted = _text(arr)
    if len(set(wanted)) != len(wanted):
        raise DatasetError("samples= repeats accessions; pass each once")
    index = pd.Index(accessions)
    pos = index.get_indexer(wanted) if index.is_unique else np.array([accessions.index(w) if w in index else -1
                                                                      for w in wanted])
    if (pos < 0).any():
        missing = [w for w, p in zip(wanted, pos, strict=True) if p < 0]
        raise DatasetError(f"{len(missing)} samples not in the file, e.g. {missing[:5]}")
    return pos.astype(np.int64)


def _take(ds: h5py.Dataset, pos: np.ndarray) -> np.ndarray:
    """``ds[pos]`` for a 1-D dataset, reading sorted positions (or all of it when many)."""
    if len(pos) > 1000 or len(pos) * 10 > ds.shape[0]:
        return ds[()][pos]
    order = np.argsort(pos)
    part = ds[pos[order]]
    out = np.empty_like(part)
    out[order] = part
    return out


def _checked_1d(f: h5py.File, node: str, path: Path, n: int, what: str) -> h5py.Dataset:
    ds = _dataset(f, node, path)
    if ds.ndim != 1 or ds.shape[0] != n:
        raise DataFormatError(path, f"/{node}", f"has shape {ds.shape}", f"one entry per {what} ({n})")
    return ds


def _bulk(f: h5py.File, path: Path, pos: np.ndarray, n: int, notes: dict) -> np.ndarray:
    node = "meta/samples/singlecellprobability"
    if node not in f:
        raise DataFormatError(path, f"/{node}", "missing, so bulk_only=True cannot tell bulk samples",
                              "an ARCHS4 v2 file, or bulk_only=False")
    prob = _take(_checked_1d(f, node, path, n, "sample"), pos).astype(np.float64)
    keep = prob < _BULK_THRESHOLD  # unknown (NaN) counts as not bulk
    notes["bulk_only"] = True
    notes["non_bulk_samples_dropped"] = int((~keep).sum())
    if not keep.any():
        raise DatasetError(f"bulk_only=True left no sample: all {len(pos)} selected have singlecellprobability >= 0.5")
    return pos[keep]


def _read_values(ds: h5py.Dataset, gene_pos: np.ndarray, sample_pos: np.ndarray, genes_first: bool,
                 dtype) -> np.ndarray:
    """Counts at (sample_pos, gene_pos) as a samples x genes array, read in sample blocks."""
    out = np.empty((len(sample_pos), len(gene_pos)), dtype=dtype)
    s_order = np.argsort(sample_pos, kind="stable")
    s_sorted = sample_pos[s_order]
    g_order = np.argsort(gene_pos, kind="stable")
    g_sorted = gene_pos[g_order]
    g_lo, g_hi = int(g_sorted[0]), int(g_sorted[-1]) + 1
    dense_genes = len(g_sorted) * 4 >= g_hi - g_lo  # read a covering slice, not a point list
    g_sel = slice(g_lo, g_hi) if dense_genes else g_sorted
    g_pick = g_sorted - g_lo if dense_genes else slice(None)
    n_read = (g_hi - g_lo) if dense_genes else len(g_sorted)
    width = max(1, _BLOCK_BYTES // (n_read * ds.dtype.itemsize))
    start = 0
    while start < len(s_sorted):
        lo = int(s_sorted[start])
        end = int(np.searchsorted(s_sorted, lo + width, side="left"))
        hi = int(s_sorted[end - 1]) + 1
        cols = s_sorted[start:end] - lo
        if genes_first:
            block = ds[g_sel, lo:hi][g_pick][:, cols].T
        else:
            block = ds[lo:hi, g_sel][cols][:, g_pick]
        out[np.ix_(s_order[start:end], g_order)] = block
        start = end
    return out


def _sample_meta(f: h5py.File, path: Path, pos: np.ndarray, ids: pd.Index,
                 fields: Sequence[str] | None) -> pd.DataFrame:
    n = f[ACCESSIONS].shape[0]
    data = {}
    for name in DEFAULT_SAMPLE_FIELDS if fields is None else fields:
        node = f"meta/samples/{name}"
        if node not in f and fields is None:
            continue  # a default field this file lacks
        data[name] = _column(_take(_checked_1d(f, node, path, n, "sample"), pos))
    return pd.DataFrame(data, index=ids)


def _gene_meta(f: h5py.File, path: Path, pos: np.ndarray, ids: pd.Index, n: int, symbol_node: str) -> pd.DataFrame:
    data = {}
    group = f.get("meta/genes")
    for name, ds in (group.items() if isinstance(group, h5py.Group) else ()):
        node = f"meta/genes/{name}"
        if node == symbol_node or not isinstance(ds, h5py.Dataset) or ds.ndim != 1:
            continue
        if ds.shape[0] != n:
            raise DataFormatError(path, f"/{node}", f"has {ds.shape[0]} entries", f"one per gene ({n})")
        data[name] = _column(ds[()][pos])
    return pd.DataFrame(data, index=ids)


def open_archs4(path: str | os.PathLike, *, sample_fields: Sequence[str] | None = None):
    """An ARCHS4 file as a :class:`~dgex_core.lazy.LazyMatrix` of raw counts, read by sample blocks.

    The same genes and ids as :func:`read_archs4` (first row of a duplicated symbol);
    a block of samples reads ``data/expression[:, s0:s1]`` in the v2 genes x samples
    layout, so memory is bounded by the block, not by the ~10^5-10^6 samples.
    """
    from ..backends import ColumnsBackend, H5Backend
    from ..lazy import LazyMatrix

    path = Path(path)
    try:
        f = h5py.File(path, "r")
    except OSError as e:
        raise DataFormatError(path, "HDF5 header", f"cannot open as HDF5 ({e})", "an ARCHS4 .h5 file") from None
    with f:
        _expr, symbol_node, symbols, accessions, genes_first, first_of, notes = _index(f, path)
        gene_pos = _select_genes(None, symbols, first_of, notes)
        sample_pos = np.arange(len(accessions), dtype=np.int64)
        sample_ids = pd.Index(accessions, dtype=object)
        gene_ids = pd.Index([symbols[i] for i in gene_pos], dtype=object)
        sample_meta = _sample_meta(f, path, sample_pos, sample_ids, sample_fields)
        gene_meta = _gene_meta(f, path, gene_pos, gene_ids, len(symbols), symbol_node)
        if "meta/info/version" in f:
            notes["archs4_version"] = _text(np.atleast_1d(f["meta/info/version"][()]))[0]
    notes["values"] = "raw counts"
    inner = H5Backend(path, EXPRESSION, genes_first=genes_first)
    backend = inner if gene_pos.size == inner.shape[1] and np.array_equal(gene_pos, np.arange(gene_pos.size)) \
        else ColumnsBackend(inner, gene_pos)
    return LazyMatrix(backend, sample_ids, gene_ids, sample_meta, gene_meta,
                      Provenance(str(path), "archs4", notes=notes))
