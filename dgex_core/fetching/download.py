"""Download the public data sets of the field into a cache folder: resumable, verified, atomic.

``fetch("gtex-tpm")`` downloads the GTEx v8 gene TPM table, ``fetch("geo:GSE10072")``
the series matrix of a GEO series (one file per platform). :data:`SOURCES` is the
registry of named data sets; :func:`list_sources` and :func:`resolve` read it.

The cache
---------
The cache root is ``cache_dir`` when given, else ``$DGEX_CACHE_DIR``, else
``$DGEX_DATA_DIR/fetch``, else ``<repo>/data/fetch`` (git-ignored). Each data set has
its own folder (``lincs-gene-info/``, ``geo-GSE10072/``) holding the files under their
published names and a small ``dgex-manifest.json`` (written atomically) that records,
per complete file, its size, its SHA-256 and the published checksum it was verified
against. A file is downloaded to ``<name>.part`` first and renamed only once its size
and checksum are right, so a crash, a kill or Ctrl-C leaves at most a ``.part`` file,
which never passes for a complete one and which the next call resumes with an HTTP
``Range`` request. A file already in the cache (size, and checksum when published,
as recorded in the manifest) is not downloaded again; one put there by hand is
checked against what is known (size, published checksum) and adopted.

Checksums
---------
Checked where the source publishes them: GEO's LINCS series GSE92742 publishes a
SHA-512 list beside its files (``GSE92742_SHA512SUMS.txt.gz``), which is fetched and
used. The other sources publish none that dgex could verify, so their files are
checked for size only (against the length the server announces). A file's SHA-256 is
recorded in the manifest either way, for provenance.

Mirrors and tests
-----------------
Every URL is an ``https://host/path`` address; ``mirror="http://127.0.0.1:8000"`` (or
the environment variable ``DGEX_FETCH_MIRROR``) fetches it from
``http://127.0.0.1:8000/host/path`` instead, so a local copy of the upstream trees, or
the loopback server of the tests, stands in for every host at once.

Progress
--------
``progress(done_bytes, total_bytes_or_None, info)`` is called as each file arrives,
``info`` naming the data set, the file, its URL, its position (``index`` of ``count``),
the byte it resumed from and whether it came from the cache. The CLI turns it into a
tqdm bar, the dashboard into ``st.progress``; this module imports neither. An exception
raised by the callback stops the download, keeping the ``.part`` for later.

Where things are
----------------
This module holds :func:`fetch` and its per-file steps (download, adopt a file put
there by hand, check the cache). Beside it: :mod:`.catalogue` (the named data sets),
:mod:`.transfer` (HTTP, resume, progress), :mod:`.checksums`, :mod:`.manifest` (the
cache on disk), :mod:`.mirrors`, :mod:`.listing` (folder indexes) and :mod:`.errors`.

Examples
--------
>>> from dgex_core import fetch
>>> paths = fetch("lincs-gene-info")  # doctest: +SKIP
>>> paths[0].name  # doctest: +SKIP
'GSE92742_Broad_LINCS_gene_info.txt.gz'
"""

from __future__ import annotations

import gzip
import os
from pathlib import Path
from typing import Any

from .catalogue import PART_SUFFIX, RemoteFile, Source, resolve
from .checksums import _hash_file, _prefix_hashers, _verify, _with_checksums, parse_checksum_list
from .errors import FetchError
from .listing import _list_index
from .manifest import _entry, _entry_is_complete, _update_manifest, cache_root, read_manifest
from .mirrors import _check_mirror, mirror_url
from .transfer import (
    ProgressCallback,
    _announced_total,
    _Job,
    _open_part,
    _record_partial,
    _request,
    _stream,
)

__all__ = ["fetch"]


def fetch(
    name_or_accession: str | Source,
    cache_dir: str | os.PathLike | None = None,
    *,
    progress: ProgressCallback | None = None,
    mirror: str | None = None,
    timeout: float = 60,
    force: bool = False,
) -> list[Path]:
    """Download a public data set into the cache, or find it there.

    Parameters
    ----------
    name_or_accession
        A registry name (see :func:`list_sources`), ``"geo:GSE12345"`` or a :class:`Source`.
    cache_dir
        The cache root (see :func:`cache_root`); the files go to its ``<name>/`` folder.
    progress
        ``progress(done_bytes, total_bytes_or_None, info)``, called as bytes arrive and
        once per file found in the cache (``info["cached"]`` true). ``info`` has
        ``source``, ``file``, ``url``, ``index``, ``count``, ``resumed_from``, ``cached``.
    mirror
        Fetch ``https://host/path`` from ``<mirror>/host/path``; default ``$DGEX_FETCH_MIRROR``.
    timeout
        Seconds to wait for a connection or for the next bytes (not for the whole file).
    force
        Download again even what is in the cache (a GEO series is listed again too).
        The cached copy is replaced only once the new one is complete.

    Returns
    -------
    list of Path
        The data files, in the source's order (a GEO series: sorted by platform).

    Raises
    ------
    NetworkError
        When a host cannot be reached; the message says which file to put where by hand.
    FetchError
        For an unknown name, a missing file (HTTP 404), an interrupted download (run
        again to resume) or a checksum mismatch (the partial file is deleted).
    """
    source = resolve(name_or_accession)
    job = _Job(source, cache_root(cache_dir) / source.folder, _check_mirror(mirror), timeout, progress)
    job.folder.mkdir(parents=True, exist_ok=True)
    remotes = list(source.files) if source.files else _list_index(job, force)
    job.count = len(remotes)
    job.index = {r.filename: i for i, r in enumerate(remotes, start=1)}
    pending = [r for r in remotes if force or not _is_cached(r, job)]
    wanted = [*pending, *([source.checksum_list] if pending and source.checksum_list else [])]
    urls = " and ".join(r.url for r in wanted)
    job.manual = f"download {urls} by hand and put {'them' if len(wanted) > 1 else 'it'} in {job.folder}"
    if pending and source.checksum_list is not None:
        pending = _with_checksums(pending, _published_checksums(job, force))
    for remote in pending:
        _download(remote, job, fresh=force)
    return [job.folder / r.filename for r in remotes]



def _download(remote: RemoteFile, job: _Job, *, fresh: bool = False) -> Path:
    """Download one file into the job's folder (resuming its ``.part``); returns the final path."""
    final = job.folder / remote.filename
    part = final.with_name(final.name + PART_SUFFIX)
    url = mirror_url(remote.url, job.mirror)
    with _open_part(part) as fh:
        offset = 0 if fresh else fh.seek(0, os.SEEK_END)
        partial = read_manifest(job.folder)["partial"].get(remote.filename)
        if partial and partial.get("url") != remote.url:
            offset, partial = 0, None
        resp, offset = _request(url, offset, partial, job)
        with resp:
            fh.truncate(offset)
            total = _announced_total(resp, offset)
            if remote.size is not None and total is not None and total != remote.size:
                raise FetchError(
                    f"{url} is {total:,} bytes but {remote.filename} should be {remote.size:,} bytes; the file "
                    "changed upstream or the mirror serves another file. Nothing was written."
                )
            if offset == 0:
                _record_partial(job, remote, resp, total)
            hashers = _prefix_hashers(fh, remote, offset)
            size = _stream(resp, fh, hashers, remote, offset, total, job)
        os.fsync(fh.fileno())
    digests = {a: h.hexdigest() for a, h in hashers.items()}
    _verify(remote, part, size, digests, job)
    os.replace(part, final)
    entry = _entry(remote, size, digests)

    def done(m: dict[str, Any]) -> None:
        m["files"][remote.filename] = entry
        m["partial"].pop(remote.filename, None)

    _update_manifest(job.folder, job.source.name, done)
    return final


def _adopt(remote: RemoteFile, job: _Job) -> bool:
    """Accept a file put in the folder by hand when it matches what is known of it."""
    path = job.folder / remote.filename
    if not path.is_file():
        return False
    size = path.stat().st_size
    want = remote.checksum
    digests = _hash_file(path, sorted({"sha256"} | ({want[0]} if want else set())))
    if (remote.size is not None and size != remote.size) or (want and digests[want[0]] != want[1]):
        raise FetchError(
            f"{path} is not the published {remote.filename} (its size or checksum differs); delete "
            "it, or run with force=True (`dgex fetch --force`) to download it again."
        )
    entry = _entry(remote, size, digests, by_hand=True)
    _update_manifest(job.folder, job.source.name, lambda m: m["files"].__setitem__(remote.filename, entry))
    return True


def _is_cached(remote: RemoteFile, job: _Job) -> bool:
    """Whether ``remote`` is complete in the cache (recorded, or adopted now); reports it if so."""
    path = job.folder / remote.filename
    entry = read_manifest(job.folder)["files"].get(remote.filename)
    ok = _entry_is_complete(path, entry, remote) if entry is not None else _adopt(remote, job)
    if ok:
        size = path.stat().st_size
        job.report(remote, size, size, cached=True)
    return ok



def _published_checksums(job: _Job, force: bool) -> dict[str, tuple[str, str]]:
    """Download (or reuse) the source's checksum list and read it."""
    listing = job.source.checksum_list
    assert listing is not None
    if force or not _is_cached(listing, job):
        _download(listing, job, fresh=force)
    raw = (job.folder / listing.filename).read_bytes()
    if listing.filename.endswith(".gz"):
        try:
            raw = gzip.decompress(raw)
        except (OSError, EOFError) as exc:
            raise FetchError(f"{job.folder / listing.filename} is not valid gzip; delete it and run again") from exc
    return parse_checksum_list(raw.decode("utf-8", errors="replace"))

