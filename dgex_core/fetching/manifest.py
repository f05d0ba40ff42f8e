"""The fetch cache on disk: where it is (:func:`cache_root`), the per-data-set manifest
that records each complete file's size and checksums (:func:`read_manifest`, its atomic
update and entries), and what the cache holds (:func:`cached`).
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .._atomic import atomic_path
from .catalogue import PART_SUFFIX, RemoteFile

if TYPE_CHECKING:
    import pandas as pd

__all__ = ["CACHE_ENV", "DATA_ENV", "MANIFEST_NAME", "cache_root", "cached", "read_manifest"]

CACHE_ENV = "DGEX_CACHE_DIR"
DATA_ENV = "DGEX_DATA_DIR"
MANIFEST_NAME = "dgex-manifest.json"


def cache_root(cache_dir: str | os.PathLike | None = None) -> Path:
    """The cache root: ``cache_dir``, ``$DGEX_CACHE_DIR``, ``$DGEX_DATA_DIR/fetch`` or ``<repo>/data/fetch``."""
    if cache_dir is not None:
        return Path(cache_dir).expanduser()
    if os.environ.get(CACHE_ENV):
        return Path(os.environ[CACHE_ENV]).expanduser()
    if os.environ.get(DATA_ENV):
        return Path(os.environ[DATA_ENV]).expanduser() / "fetch"
    return Path(__file__).resolve().parents[2] / "data" / "fetch"


def read_manifest(folder: Path) -> dict[str, Any]:
    """The manifest of a data set's folder (empty when absent or unreadable)."""
    try:
        data = json.loads((folder / MANIFEST_NAME).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        data = {}
    if not isinstance(data, dict):
        data = {}
    data.setdefault("files", {})
    data.setdefault("partial", {})
    return data


def _update_manifest(folder: Path, source: str, change: Callable[[dict[str, Any]], None]) -> None:
    """Re-read the manifest, apply ``change``, write it back atomically."""
    data = read_manifest(folder)
    data["source"] = source
    change(data)
    with atomic_path(folder / MANIFEST_NAME) as tmp:
        tmp.write_text(json.dumps(data, indent=1, sort_keys=True) + "\n", encoding="utf-8")


def _entry_is_complete(path: Path, entry: dict | None, remote: RemoteFile) -> bool:
    """Whether ``path`` is the complete file the manifest ``entry`` recorded for ``remote``."""
    if entry is None or not path.is_file():
        return False
    size = path.stat().st_size
    if size != entry.get("size") or (remote.size is not None and size != remote.size):
        return False
    want = remote.checksum
    return want is None or entry.get(want[0]) == want[1]



def _entry(remote: RemoteFile, size: int, digests: dict[str, str], *, by_hand: bool = False) -> dict:
    want = remote.checksum
    entry: dict[str, Any] = {
        "url": remote.url,
        "size": size,
        "verified": want[0] if want else None,
        "fetched": datetime.now(UTC).isoformat(timespec="seconds"),
        **digests,
    }
    if by_hand:
        entry["placed_by_hand"] = True
    return entry



def cached(cache_dir: str | os.PathLike | None = None) -> pd.DataFrame:
    """What the cache holds, one row per file.

    Returns
    -------
    pandas.DataFrame
        Columns ``source``, ``file``, ``bytes``, ``status`` (``"complete"``: recorded and
        intact; ``"partial"``: a ``.part`` download, resumable; ``"unverified"``: not
        recorded, e.g. put there by hand), ``complete`` (bool), ``verified`` (the
        published checksum it was checked against, or ``""``) and ``path``.
    """
    import pandas as pd

    columns = ["source", "file", "bytes", "status", "complete", "verified", "path"]
    root = cache_root(cache_dir)
    rows = []
    folders = sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith(".")) if root.is_dir() else []
    for folder in folders:
        manifest = read_manifest(folder)
        name = manifest.get("source", folder.name)
        for path in sorted(folder.iterdir()):
            if path.is_file() and not path.name.startswith(".") and path.name != MANIFEST_NAME:
                rows.append(_cache_row(name, path, manifest["files"]))
    return pd.DataFrame(rows, columns=columns)


def _cache_row(source: str, path: Path, entries: dict[str, dict]) -> dict[str, Any]:
    size = path.stat().st_size
    entry = entries.get(path.name)
    if path.name.endswith(PART_SUFFIX):
        status = "partial"
    elif entry is not None and entry.get("size") == size:
        status = "complete"
    else:
        status = "unverified"
    return {
        "source": source,
        "file": path.name,
        "bytes": size,
        "status": status,
        "complete": status == "complete",
        "verified": ((entry or {}).get("verified") or "") if status == "complete" else "",
        "path": str(path),
    }
