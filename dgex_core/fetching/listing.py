"""Data sets listed in a folder index (a GEO series matrix folder): the file names an HTML
index links to (:func:`parse_index`), and a source's files from its last listing, from
files put there by hand, or listed now.
"""

from __future__ import annotations

import http.client
import re
import urllib.parse

from .catalogue import RemoteFile, _url_basename
from .errors import FetchError
from .manifest import _update_manifest, read_manifest
from .mirrors import mirror_url
from .transfer import _Job, _network_error, _open

__all__ = ["parse_index"]

def parse_index(html: str, pattern: str) -> list[str]:
    """The file names an HTML folder index links to whose base name fully matches ``pattern``.

    Links are read from ``href`` attributes; sorting links (``?C=M;O=A``), parent
    folders and other files are skipped. Returns sorted, distinct names.

    Examples
    --------
    >>> parse_index('<a href="GSE1-GPL9_series_matrix.txt.gz">x</a> <a href="../">up</a>',
    ...             r"GSE1(-GPL\\d+)?_series_matrix\\.txt\\.gz")
    ['GSE1-GPL9_series_matrix.txt.gz']
    """
    regex = re.compile(pattern)
    names = set()
    for href in re.findall(r"""href\s*=\s*["']?([^"'\s>]+)""", html, flags=re.IGNORECASE):
        base = _url_basename(href.split("?", 1)[0].split("#", 1)[0])
        if regex.fullmatch(base):
            names.add(base)
    return sorted(names)



def _list_index(job: _Job, force: bool) -> list[RemoteFile]:
    """The files of an index source: from the manifest's last listing, or listed now."""
    source = job.source
    assert source.index_url is not None and source.index_pattern is not None
    listing = read_manifest(job.folder).get("listing")
    if listing and not force:
        return [RemoteFile(urllib.parse.urljoin(source.index_url, n)) for n in listing]
    if not force:  # files put there by hand, for a machine without network
        regex = re.compile(source.index_pattern)
        by_hand = sorted(p.name for p in job.folder.glob("*") if regex.fullmatch(p.name))
        if by_hand:
            return [RemoteFile(urllib.parse.urljoin(source.index_url, n)) for n in by_hand]
    url = mirror_url(source.index_url, job.mirror)
    wanted = source.index_glob or source.index_pattern
    job.manual = f"download the {wanted} files listed at {source.index_url} by hand and put them in {job.folder}"
    with _open(url, {}, job) as resp:
        try:
            html = resp.read().decode("utf-8", errors="replace")
        except (OSError, http.client.HTTPException) as exc:
            raise _network_error(url, exc, job) from exc
    names = parse_index(html, source.index_pattern)
    if not names:
        raise FetchError(
            f"{url} lists no file matching {source.index_pattern}; check the accession "
            f"{source.name!r} (does the series have a series matrix?)."
        )
    _update_manifest(job.folder, source.name, lambda m: m.__setitem__("listing", names))
    return [RemoteFile(urllib.parse.urljoin(source.index_url, n)) for n in names]
