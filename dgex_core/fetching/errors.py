"""The errors of fetching: :class:`FetchError` (a data set could not be downloaded,
verified or found) and its :class:`NetworkError` (a host could not be reached at all).
"""

from __future__ import annotations

from ..errors import DgexError

__all__ = ["FetchError", "NetworkError"]


class FetchError(DgexError):
    """A data set could not be downloaded, verified or found; the message says what to do."""


class NetworkError(FetchError):
    """A host could not be reached at all (no network, DNS failure, refused, timed out)."""
