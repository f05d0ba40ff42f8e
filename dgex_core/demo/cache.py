"""The on-disk cache of demo compendia: :func:`load_demo` reads a checked copy or generates
and writes one (a folder per :meth:`~.config.DemoConfig.key`, no pickle),
:func:`default_cache_dir` says where, :func:`clear_cache` removes copies.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import time
import warnings
from pathlib import Path

import numpy as np
import pandas as pd

from .._atomic import atomic_dir
from ..errors import DatasetError
from .config import GENERATOR_VERSION, DemoConfig
from .data import DemoData
from .sampling import _assemble, _draw_samples
from .truth import DemoTruth, build_truth

__all__ = ["clear_cache", "default_cache_dir", "load_demo"]

_VALUES_FILE = "values.npz"
_GENES_FILE = "genes.parquet"
_SAMPLES_FILE = "samples.parquet"
_MANIFEST_FILE = "manifest.json"
_CACHE_NAME = re.compile(r"n\d+-t\d+-v\d+-[0-9a-f]{10}")


def default_cache_dir() -> Path:
    """Where :func:`load_demo` caches: ``$DGEX_DATA_DIR/demo``, else ``<repo>/data/demo``."""
    root = os.environ.get("DGEX_DATA_DIR")
    base = Path(root).expanduser() if root else Path(__file__).resolve().parents[2] / "data"
    return base / "demo"


def load_demo(config: DemoConfig | None = None, cache_dir: str | os.PathLike | None = None) -> DemoData:
    """The demo compendium of ``config``, from the cache when a valid copy is there.

    The cache is a folder per config (:meth:`DemoConfig.key`) holding ``values.npz``
    (read with ``allow_pickle=False``), ``genes.parquet``, ``samples.parquet`` and
    ``manifest.json`` (config, generator version, a SHA-256 of the values). It is written
    atomically; a copy that fails any check (unreadable, checksum, shape, ids,
    metadata) is regenerated and replaced, with a warning. When the cache cannot be
    written (read-only folder) the generated data is returned anyway, with a warning.

    Parameters
    ----------
    config
        Size and seed; default :class:`DemoConfig` ().
    cache_dir
        The folder that holds the per-config folders; default :func:`default_cache_dir`.

    Returns
    -------
    DemoData
        With ``from_cache`` True when it was read from the cache.
    """
    config = config or DemoConfig()
    folder = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    path = folder / config.key()
    truth = build_truth(config)
    if path.exists():
        try:
            return _read_cache(path, config, truth)
        except Exception as e:  # a bad cache is never trusted: regenerate it
            warnings.warn(f"demo cache {path} is unusable ({e}); regenerating it", RuntimeWarning, stacklevel=2)
    values, tissue = _draw_samples(config, truth)
    data = _assemble(config, truth, values, tissue, from_cache=False)
    try:
        _write_cache(path, data)
    except OSError as e:
        if not _cache_is_valid(path, config, truth):
            warnings.warn(f"could not write the demo cache {path} ({e}); using the data uncached", RuntimeWarning, stacklevel=2)
    return data


def _sha256(values: np.ndarray) -> str:
    return hashlib.sha256(np.ascontiguousarray(values).data).hexdigest()


def _write_cache(path: Path, data: DemoData) -> None:
    m = data.matrix
    with atomic_dir(path, overwrite=True) as tmp:
        np.savez(tmp / _VALUES_FILE, values=m.values)
        m.gene_meta.to_parquet(tmp / _GENES_FILE)
        m.sample_meta.to_parquet(tmp / _SAMPLES_FILE)
        manifest = {
            "what": "dgex demo compendium (SYNTHETIC data); see dgex_core/demo/",
            "config": data.config.to_dict(),
            "generator_version": GENERATOR_VERSION,
            "shape": list(m.values.shape),
            "dtype": str(m.values.dtype),
            "values_sha256": _sha256(m.values),
            "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        }
        (tmp / _MANIFEST_FILE).write_text(json.dumps(manifest, indent=2))


def _cache_is_valid(path: Path, config: DemoConfig, truth: DemoTruth) -> bool:
    try:
        _read_cache(path, config, truth)
    except Exception:
        return False
    return True


def _read_cache(path: Path, config: DemoConfig, truth: DemoTruth) -> DemoData:
    """Read and check a cached compendium; raises on any mismatch."""
    manifest = json.loads((path / _MANIFEST_FILE).read_text())
    if manifest.get("config") != config.to_dict() or manifest.get("generator_version") != GENERATOR_VERSION:
        raise DatasetError("it was made from another config or generator version")
    with np.load(path / _VALUES_FILE, allow_pickle=False) as npz:
        values = npz["values"]
    expected = (config.n_samples, config.n_landmarks + config.n_targets)
    if values.shape != expected or values.dtype != np.float32:
        raise DatasetError(f"values are {values.shape} {values.dtype}, expected {expected} float32")
    if _sha256(values) != manifest.get("values_sha256"):
        raise DatasetError("the values do not match their checksum")
    gene_meta = pd.read_parquet(path / _GENES_FILE)
    sample_meta = pd.read_parquet(path / _SAMPLES_FILE)
    tissue_names = sample_meta["tissue"].astype(str)
    tissue = tissue_names.str.removeprefix("tissue-").astype(int).to_numpy() - 1
    data = _assemble(config, truth, values, tissue, from_cache=True)
    if not data.matrix.sample_ids.equals(pd.Index(sample_meta.index.astype(str))):
        raise DatasetError("sample ids differ from the generator's")
    expected_meta = data.matrix.gene_meta
    if list(gene_meta.index.astype(str)) != list(expected_meta.index) or not np.allclose(
        gene_meta["noise_sd"].to_numpy(), expected_meta["noise_sd"].to_numpy()
    ):
        raise DatasetError("gene metadata differ from the generator's (stale cache?)")
    return data


def clear_cache(config: DemoConfig | None = None, cache_dir: str | os.PathLike | None = None) -> list[Path]:
    """Remove the cached copy of ``config``, or every cached demo when ``config`` is None.

    Only folders named like a :meth:`DemoConfig.key` are touched, never anything else in
    ``cache_dir``.

    Returns
    -------
    list of pathlib.Path
        The folders removed.
    """
    folder = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    if config is not None:
        doomed = [folder / config.key()]
    else:
        doomed = [p for p in folder.glob("n*-t*-v*-*") if _CACHE_NAME.fullmatch(p.name)] if folder.is_dir() else []
    removed = []
    for path in doomed:
        if path.is_dir():
            shutil.rmtree(path, ignore_errors=True)
            removed.append(path)
    return removed
