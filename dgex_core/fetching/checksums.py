"""Checksums: reading a published checksum list (:func:`parse_checksum_list`), hashing
files and streams, and verifying a download against its size and published checksum.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path
from typing import IO, Any

from .catalogue import RemoteFile
from .errors import FetchError
from .manifest import _update_manifest
from .transfer import _Job

__all__ = ["parse_checksum_list"]

_DIGEST_LENGTHS = {32: "md5", 64: "sha256", 128: "sha512"}


def parse_checksum_list(text: str) -> dict[str, tuple[str, str]]:
    """Read a ``sha512sum`` / ``sha256sum`` / ``md5sum`` style list.

    Each line is ``<hex>  <name>`` (``*name`` in binary mode, possibly with a folder);
    the algorithm follows from the length of the hex digest. Other lines are skipped.

    Returns
    -------
    dict
        File base name -> ``(algorithm, hex)``.

    Examples
    --------
    >>> parse_checksum_list("d41d8cd98f00b204e9800998ecf8427e *data/a.txt\\n")
    {'a.txt': ('md5', 'd41d8cd98f00b204e9800998ecf8427e')}
    """
    out: dict[str, tuple[str, str]] = {}
    for line in text.splitlines():
        match = re.fullmatch(r"\s*([0-9a-fA-F]+)\s+\*?(.+?)\s*", line)
        if not match or len(match.group(1)) not in _DIGEST_LENGTHS:
            continue
        digest, name = match.group(1).lower(), match.group(2).replace("\\", "/").rsplit("/", 1)[-1]
        out[name] = (_DIGEST_LENGTHS[len(digest)], digest)
    return out


def _hash_file(path: Path, algorithms: Sequence[str]) -> dict[str, str]:
    hashers = {a: _new_hash(a) for a in algorithms}
    with open(path, "rb") as fh:
        while chunk := fh.read(1 << 20):
            for h in hashers.values():
                h.update(chunk)
    return {a: h.hexdigest() for a, h in hashers.items()}


def _new_hash(algorithm: str):
    return hashlib.new(algorithm, usedforsecurity=False)



def _prefix_hashers(fh: IO[bytes], remote: RemoteFile, offset: int) -> dict[str, Any]:
    """Hashers (SHA-256 plus the published algorithm) fed the first ``offset`` bytes of ``fh``."""
    algorithms = {"sha256"} | ({remote.checksum[0]} if remote.checksum else set())
    hashers = {a: _new_hash(a) for a in sorted(algorithms)}
    fh.seek(0)
    left = offset
    while left > 0 and (chunk := fh.read(min(1 << 20, left))):
        for h in hashers.values():
            h.update(chunk)
        left -= len(chunk)
    return hashers



def _verify(remote: RemoteFile, part: Path, size: int, digests: dict[str, str], job: _Job) -> None:
    """Check size and published checksum; on failure delete ``part`` and raise."""
    problem = None
    if remote.size is not None and size != remote.size:
        problem = f"size mismatch (expected {remote.size:,} bytes, got {size:,})"
    elif remote.checksum and digests[remote.checksum[0]] != remote.checksum[1]:
        algo, want = remote.checksum
        problem = f"{algo} checksum mismatch (expected {want}, got {digests[algo]})"
    if problem is None:
        return
    part.unlink(missing_ok=True)
    _update_manifest(job.folder, job.source.name, lambda m: m["partial"].pop(remote.filename, None))
    raise FetchError(
        f"{remote.filename}: {problem}. The download was corrupted or the file changed upstream; "
        "the partial file was deleted, run the command again to download it afresh."
    )



def _with_checksums(remotes: list[RemoteFile], published: dict[str, tuple[str, str]]) -> list[RemoteFile]:
    """``remotes`` with the published checksum added where they carry none."""
    out = []
    for remote in remotes:
        if remote.checksum is None and remote.filename in published:
            algo, digest = published[remote.filename]
            remote = replace(remote, **{algo: digest})
        out.append(remote)
    return out
