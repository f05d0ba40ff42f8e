"""Mirrors: every ``https://host/path`` address fetched from ``<mirror>/host/path`` instead
(:func:`mirror_url`), the mirror given or read from ``$DGEX_FETCH_MIRROR``.
"""

from __future__ import annotations

import os
import urllib.parse

from .errors import FetchError

__all__ = ["MIRROR_ENV", "mirror_url"]

MIRROR_ENV = "DGEX_FETCH_MIRROR"


def mirror_url(url: str, mirror: str | None) -> str:
    """The address of ``url`` on ``mirror``: ``https://host/p`` -> ``<mirror>/host/p``.

    Examples
    --------
    >>> mirror_url("https://ftp.ncbi.nlm.nih.gov/geo/x.gz", "http://127.0.0.1:8000")
    'http://127.0.0.1:8000/ftp.ncbi.nlm.nih.gov/geo/x.gz'
    >>> mirror_url("https://ftp.ncbi.nlm.nih.gov/geo/x.gz", None)
    'https://ftp.ncbi.nlm.nih.gov/geo/x.gz'
    """
    if not mirror:
        return url
    parts = urllib.parse.urlsplit(url)
    tail = parts.netloc + parts.path + (f"?{parts.query}" if parts.query else "")
    return f"{mirror.rstrip('/')}/{tail}"


def _check_mirror(mirror: str | None) -> str | None:
    mirror = mirror if mirror is not None else os.environ.get(MIRROR_ENV)
    mirror = mirror or None
    if mirror is not None and urllib.parse.urlsplit(mirror).scheme not in ("http", "https"):
        raise FetchError(f"mirror must be an address like http://host:port, got {mirror!r} (check ${MIRROR_ENV})")
    return mirror
