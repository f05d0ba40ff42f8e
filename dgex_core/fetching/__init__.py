"""Public data fetched by name or GEO accession into a local cache, resumable and verified.

:func:`fetch` downloads a catalogued source (``dgex fetch --list``) or a GEO series;
:func:`cached` lists what the cache holds.
"""

from .catalogue import (
    SOURCES,
    RemoteFile,
    Source,
    geo_series,
    geo_series_folder,
    list_sources,
    resolve,
)
from .checksums import parse_checksum_list
from .download import fetch
from .errors import FetchError, NetworkError
from .listing import parse_index
from .manifest import CACHE_ENV, DATA_ENV, MANIFEST_NAME, cache_root, cached, read_manifest
from .mirrors import MIRROR_ENV, mirror_url
from .transfer import parse_content_range

__all__ = [
    "CACHE_ENV",
    "DATA_ENV",
    "MANIFEST_NAME",
    "MIRROR_ENV",
    "SOURCES",
    "FetchError",
    "NetworkError",
    "RemoteFile",
    "Source",
    "cache_root",
    "cached",
    "fetch",
    "geo_series",
    "geo_series_folder",
    "list_sources",
    "mirror_url",
    "parse_checksum_list",
    "parse_content_range",
    "parse_index",
    "read_manifest",
    "resolve",
]
