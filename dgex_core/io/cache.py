"""A sample-major on-disk cache for formats that cannot be read by blocks of samples.

Text formats (GCT, CSV/TSV, GEO series matrix and SOFT), Parquet tables and CSC
sparse h5ad files store genes along rows or compress whole columns, so reading 1,000
samples means reading the whole file. The first use reads such a file once and
writes its values as a C-ordered ``values.npy`` (samples x genes, float32) with its
ids and metadata beside it; every later use opens that folder as a
:class:`~dgex_core.lazy.LazyMatrix` in well under a second, whatever the size.

The cache folder is keyed by the file's resolved path, size, modification time and a
hash of sampled content (its first and last MiB and 16 MiB-spaced probes), plus the
reader options; the full SHA-256 of the file is recorded in ``manifest.json``. A file
that changes gets a new entry. Folders are written under a temporary name and renamed
(an interrupted build leaves nothing that looks complete).

Where: ``$DGEX_MATRIX_CACHE``, else ``$DGEX_CACHE_DIR/matrices``, else
``~/.cache/dgex/matrices``. Files below ``$DGEX_CACHE_MIN_MB`` (64 MB) on disk are
simply read into memory.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd

from .._atomic import atomic_dir
from ..lazy import LazyMatrix, NpyRows, block_rows
from ..matrix import ExpressionMatrix, Provenance

__all__ = ["cache_dir", "cache_key", "min_cache_bytes", "open_cached"]

CACHE_VERSION = 1
_PROBE = 1 << 20


def cache_dir() -> Path:
    """The folder holding matrix caches (see the module docstring)."""
    if os.environ.get("DGEX_MATRIX_CACHE"):
        return Path(os.environ["DGEX_MATRIX_CACHE"])
    if os.environ.get("DGEX_CACHE_DIR"):
        return Path(os.environ["DGEX_CACHE_DIR"]) / "matrices"
    return Path.home() / ".cache" / "dgex" / "matrices"


def min_cache_bytes() -> int:
    """Files smaller than this on disk are read into memory instead of cached."""
    try:
        return int(float(os.environ.get("DGEX_CACHE_MIN_MB", "64")) * 2**20)
    except ValueError:
        return 64 * 2**20


def cache_key(path: str | os.PathLike, options: dict | None = None) -> str:
    """A key that changes when the file (size, mtime, sampled content) or the reader options change."""
    p = Path(path).resolve()
    st = p.stat()
    h = hashlib.sha256()
    h.update(f"{CACHE_VERSION}|{p}|{st.st_size}|{st.st_mtime_ns}|".encode())
    h.update(json.dumps(options or {}, sort_keys=True, default=str).encode())
    with open(p, "rb") as fh:
        offsets = {0, max(0, st.st_size - _PROBE)} | set(range(0, st.st_size, max(_PROBE, st.st_size // 16)))
        for off in sorted(offsets):
            fh.seek(off)
            h.update(fh.read(min(_PROBE, 4096)))
    return h.hexdigest()[:24]


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 22), b""):
            h.update(chunk)
    return h.hexdigest()


def _frame_to_parquet(frame: pd.DataFrame, ids: pd.Index, dest: Path) -> None:
    out = frame.copy()
    out.columns = [str(c) for c in out.columns]
    for c in out.columns:
        if out[c].dtype == object:  # mixed objects: text, missing kept missing
            out[c] = out[c].map(lambda v: None if v is None or (isinstance(v, float) and np.isnan(v)) else str(v))
    out.insert(0, "__id__", ids.to_numpy(dtype=object))
    out.reset_index(drop=True).to_parquet(dest)


def _frame_from_parquet(src: Path) -> tuple[pd.Index, pd.DataFrame]:
    df = pd.read_parquet(src)
    ids = pd.Index(df.pop("__id__").astype(str).to_numpy(dtype=object), dtype=object)
    df.index = ids
    return ids, df


def _write(folder: Path, m: ExpressionMatrix, source: Path, progress: Callable | None) -> None:
    store = NpyRows.create(folder / "values.npy", m.shape, np.float32)
    try:
        bs = block_rows(max(1, m.n_genes))
        for s in range(0, m.n_samples, bs):
            store.write_rows(s, m.values[s:s + bs])
            if progress:
                progress(min(s + bs, m.n_samples), m.n_samples, {"stage": "writing the cache"})
    finally:
        store.close()
    _frame_to_parquet(m.sample_meta, m.sample_ids, folder / "samples.parquet")
    _frame_to_parquet(m.gene_meta, m.gene_ids, folder / "genes.parquet")
    manifest = {"version": CACHE_VERSION, "source": str(source), "size": source.stat().st_size,
                "mtime_ns": source.stat().st_mtime_ns, "sha256": _sha256(source),
                "shape": list(m.shape), "provenance": m.provenance.to_dict()}
    (folder / "manifest.json").write_text(json.dumps(manifest, indent=1, default=str))


def _open(folder: Path) -> LazyMatrix:
    manifest = json.loads((folder / "manifest.json").read_text())
    sample_ids, sample_meta = _frame_from_parquet(folder / "samples.parquet")
    gene_ids, gene_meta = _frame_from_parquet(folder / "genes.parquet")
    prov = Provenance.from_dict(manifest["provenance"])
    prov = Provenance(prov.path, prov.format, prov.transforms, {**prov.notes, "cache": str(folder)})
    return LazyMatrix(NpyRows(folder / "values.npy"), sample_ids, gene_ids, sample_meta, gene_meta, prov)


def open_cached(path: str | os.PathLike, reader: Callable[[], ExpressionMatrix], options: dict | None = None,
                *, progress: Callable | None = None, root: str | os.PathLike | None = None) -> LazyMatrix:
    """The cached sample-major copy of ``path`` (built with ``reader()`` on first use).

    Parameters
    ----------
    path
        The source file.
    reader
        Reads the whole file into an :class:`ExpressionMatrix` (called once, on a miss).
    options
        Reader options that change the result (part of the key).
    progress
        ``progress(step, total, info)`` while the cache is written.
    root
        Cache folder (default :func:`cache_dir`).
    """
    source = Path(path)
    root = Path(root) if root is not None else cache_dir()
    folder = root / f"{source.name[:60]}-{cache_key(source, options)}"
    if (folder / "manifest.json").exists():
        try:
            return _open(folder)
        except (OSError, ValueError, KeyError, json.JSONDecodeError):
            pass  # a damaged entry: rebuild it
    if progress:
        progress(0, None, {"stage": f"reading {source.name} (first use: cached for next time)"})
    m = reader()
    root.mkdir(parents=True, exist_ok=True)
    with atomic_dir(folder, overwrite=True) as tmp:
        _write(tmp, m, source, progress)
    return _open(folder)
