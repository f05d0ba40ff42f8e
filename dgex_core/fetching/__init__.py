"""Public data fetched by name or GEO accession into a local cache, resumable and verified.

:func:`fetch` downloads a catalogued source (``dgex fetch --list``) or a GEO series;
:func:`cached` lists what the cache holds.
"""

from .download import (
    CACHE_ENV,
    DATA_ENV,
    MANIFEST_NAME,
    MIRROR_ENV,
    SOURCES,
    FetchError,
    NetworkError,
    RemoteFile,
    Source,
    cache_root,
    cached,
    fetch,
    geo_series,
    geo_series_folder,
    list_sources,
    mirror_url,
    parse_checksum_list,
    parse_content_range,
    parse_index,
    read_manifest,
    resolve,
)

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
