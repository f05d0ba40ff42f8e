"""HTTP transfer of one file: opening a URL with every failure turned into a
:class:`~.errors.FetchError` that says what to do, resuming a ``.part`` file with a
``Range`` request (:func:`parse_content_range`), and streaming the body into it while
hashing and reporting progress.
"""

from __future__ import annotations

import contextlib
import http.client
import re
import socket
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from .catalogue import GEO_FORM, RemoteFile, Source
from .errors import FetchError, NetworkError
from .manifest import CACHE_ENV, _update_manifest

try:  # POSIX: one process at a time appends to a .part file
    import fcntl
except ImportError:  # pragma: no cover - Windows
    fcntl = None  # type: ignore[assignment]

__all__ = ["ProgressCallback", "parse_content_range"]

ProgressCallback = Callable[[int, int | None, dict[str, Any]], None]

CHUNK_SIZE = 256 * 1024
USER_AGENT = "dgex-fetch/1 (Python urllib)"


def parse_content_range(value: str) -> tuple[int, int, int | None]:
    """``"bytes 100-199/1000"`` -> ``(100, 199, 1000)``; the total is ``None`` for ``*``.

    Raises
    ------
    ValueError
        When ``value`` is not a byte range.
    """
    match = re.fullmatch(r"\s*bytes\s+(\d+)-(\d+)/(\d+|\*)\s*", value or "")
    if not match:
        raise ValueError(f"not a byte Content-Range: {value!r}")
    total = None if match.group(3) == "*" else int(match.group(3))
    return int(match.group(1)), int(match.group(2)), total


def _describe_reason(reason: object, timeout: float) -> str:
    """A short human reason for a failed connection."""
    if isinstance(reason, socket.gaierror):
        return "the host name could not be resolved (no network or no DNS)"
    if isinstance(reason, ConnectionRefusedError):
        return "connection refused"
    if isinstance(reason, TimeoutError):
        return f"no answer within {timeout:g} s"
    if isinstance(reason, OSError) and reason.strerror:
        return reason.strerror[:1].lower() + reason.strerror[1:]
    return str(reason) or type(reason).__name__


def _host(url: str) -> str:
    return urllib.parse.urlsplit(url).netloc or url


def _human_bytes(n: int | None) -> str:
    if n is None:
        return "an unknown number of"
    return f"{n:,}"



@dataclass
class _Job:
    """What one :func:`fetch` call works with."""

    source: Source
    folder: Path
    mirror: str | None
    timeout: float
    progress: ProgressCallback | None
    count: int = 0
    manual: str = ""
    index: dict[str, int] = field(default_factory=dict)

    def report(self, remote: RemoteFile, done: int, total: int | None, **extra: Any) -> None:
        if self.progress is None:
            return
        info = {
            "source": self.source.name,
            "file": remote.filename,
            "url": remote.url,
            "index": self.index.get(remote.filename, 0),
            "count": self.count,
            "resumed_from": 0,
            "cached": False,
            **extra,
        }
        self.progress(done, total, info)


class _RangeNotSatisfiable(Exception):
    """The server refused the byte range of a resume (HTTP 416)."""


def _network_error(url: str, reason: object, job: _Job) -> NetworkError:
    return NetworkError(
        f"cannot reach {_host(url)}: {_describe_reason(reason, job.timeout)}. dgex needs network "
        f"access to download {job.source.name}; {job.manual}, or run on a machine with access."
    )


def _http_error(url: str, code: int, reason: str, job: _Job) -> FetchError:
    if code in (404, 410):
        return FetchError(
            f"{url} was not found (HTTP {code}). Check the name or accession {job.source.name!r} "
            f"(`dgex fetch --list` shows the names; GEO series are written {GEO_FORM}); if it is "
            "right, the file has moved upstream."
        )
    return FetchError(
        f"{url}: the server answered HTTP {code} ({reason}). Try again later; a partial "
        "download is kept and resumes."
    )


def _open(url: str, headers: dict[str, str], job: _Job) -> http.client.HTTPResponse:
    """GET ``url``; every failure becomes a :class:`FetchError` that says what to do."""
    request = urllib.request.Request(
        url, headers={"User-Agent": USER_AGENT, "Accept-Encoding": "identity", **headers}
    )
    try:
        return urllib.request.urlopen(request, timeout=job.timeout)
    except urllib.error.HTTPError as exc:
        exc.close()
        if exc.code == 416 and "Range" in headers:
            raise _RangeNotSatisfiable from exc
        raise _http_error(url, exc.code, str(exc.reason), job) from exc
    except urllib.error.URLError as exc:
        raise _network_error(url, exc.reason, job) from exc
    except (OSError, http.client.HTTPException) as exc:
        raise _network_error(url, exc, job) from exc


def _resume_headers(offset: int, partial: dict | None) -> dict[str, str]:
    """``Range`` (and ``If-Range`` when the first answer gave a validator) for a resume."""
    if not offset:
        return {}
    headers = {"Range": f"bytes={offset}-"}
    partial = partial or {}
    etag = partial.get("etag")
    if etag and not etag.startswith("W/"):
        headers["If-Range"] = etag
    elif partial.get("last_modified"):
        headers["If-Range"] = partial["last_modified"]
    return headers


def _request(url: str, offset: int, partial: dict | None, job: _Job) -> tuple[http.client.HTTPResponse, int]:
    """Open ``url`` resuming at ``offset`` when the server agrees; returns the response and the real offset."""
    if offset:
        try:
            resp = _open(url, _resume_headers(offset, partial), job)
        except _RangeNotSatisfiable:
            return _open(url, {}, job), 0
        if resp.status == 206 and _resume_matches(resp, offset, partial):
            return resp, offset
        if resp.status == 200:
            return resp, 0
        resp.close()
    resp = _open(url, {}, job)
    if resp.status != 200:
        resp.close()
        raise FetchError(f"{url}: unexpected HTTP {resp.status} answer to a plain download; try again later.")
    return resp, 0


def _resume_matches(resp: http.client.HTTPResponse, offset: int, partial: dict | None) -> bool:
    try:
        start, _, total = parse_content_range(resp.headers.get("Content-Range", ""))
    except ValueError:
        return False
    known = (partial or {}).get("total")
    return start == offset and (known is None or total is None or total == known)


def _announced_total(resp: http.client.HTTPResponse, offset: int) -> int | None:
    """The full size of the file according to the response headers."""
    if offset:
        return parse_content_range(resp.headers.get("Content-Range", ""))[2]
    length = resp.headers.get("Content-Length")
    return int(length) if length and length.isdigit() else None


@contextlib.contextmanager
def _open_part(part: Path) -> Iterator[IO[bytes]]:
    """The ``.part`` file opened for appending, locked against a second downloader."""
    part.parent.mkdir(parents=True, exist_ok=True)
    fh = open(part, "a+b")  # noqa: SIM115 - closed below, after the lock
    locked = False
    try:
        if fcntl is not None:
            try:
                fcntl.flock(fh.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                raise FetchError(
                    f"another dgex process is downloading {part.name} into {part.parent}; "
                    "wait for it to finish, then run the command again."
                ) from None
        locked = True
        yield fh
    finally:
        fh.close()
        if locked:
            with contextlib.suppress(OSError):
                if part.stat().st_size == 0:
                    part.unlink()



def _stream(
    resp: http.client.HTTPResponse,
    fh: IO[bytes],
    hashers: dict[str, Any],
    remote: RemoteFile,
    offset: int,
    total: int | None,
    job: _Job,
) -> int:
    """Append the body to ``fh``, hashing and reporting; returns the bytes now in the file."""
    done = offset
    job.report(remote, done, total, resumed_from=offset)
    while True:
        try:
            chunk = resp.read(CHUNK_SIZE)
        except (OSError, http.client.HTTPException) as exc:
            fh.flush()
            raise _interrupted(remote, fh, done, total, _describe_reason(exc, job.timeout)) from exc
        if not chunk:
            break
        try:
            fh.write(chunk)
        except OSError as exc:
            raise FetchError(
                f"cannot write {fh.name}: {_describe_reason(exc, job.timeout)}; free some space or "
                f"choose another cache folder (${CACHE_ENV})."
            ) from exc
        for h in hashers.values():
            h.update(chunk)
        done += len(chunk)
        job.report(remote, done, total, resumed_from=offset)
    fh.flush()
    if total is not None and done < total:
        raise _interrupted(remote, fh, done, total, "the connection closed early")
    return done


def _interrupted(remote: RemoteFile, fh: IO[bytes], done: int, total: int | None, why: str) -> FetchError:
    return FetchError(
        f"the download of {remote.filename} was interrupted after {_human_bytes(done)} of "
        f"{_human_bytes(total)} bytes ({why}). Run the same command again to resume: the bytes "
        f"received are kept in {fh.name}."
    )



def _record_partial(job: _Job, remote: RemoteFile, resp: http.client.HTTPResponse, total: int | None) -> None:
    """Remember what a fresh download started from, so a resume can check it is the same file."""
    info = {
        "url": remote.url,
        "etag": resp.headers.get("ETag"),
        "last_modified": resp.headers.get("Last-Modified"),
        "total": total,
    }
    _update_manifest(job.folder, job.source.name, lambda m: m["partial"].__setitem__(remote.filename, info))
