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

Examples
--------
>>> from dgex_core import fetch
>>> paths = fetch("lincs-gene-info")  # doctest: +SKIP
>>> paths[0].name  # doctest: +SKIP
'GSE92742_Broad_LINCS_gene_info.txt.gz'
"""

from __future__ import annotations

import contextlib
import gzip
import hashlib
import http.client
import json
import os
import re
import socket
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

from .._atomic import atomic_path
from ..errors import DgexError

try:  # POSIX: one process at a time appends to a .part file
    import fcntl
except ImportError:  # pragma: no cover - Windows
    fcntl = None  # type: ignore[assignment]

if TYPE_CHECKING:
    import pandas as pd

__all__ = [
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

ProgressCallback = Callable[[int, int | None, dict[str, Any]], None]

CACHE_ENV = "DGEX_CACHE_DIR"
DATA_ENV = "DGEX_DATA_DIR"
MIRROR_ENV = "DGEX_FETCH_MIRROR"
MANIFEST_NAME = "dgex-manifest.json"
PART_SUFFIX = ".part"
CHUNK_SIZE = 256 * 1024
USER_AGENT = "dgex-fetch/1 (Python urllib)"
GEO_SERIES_ROOT = "https://ftp.ncbi.nlm.nih.gov/geo/series"
GEO_FORM = "geo:GSE12345"

_DIGEST_LENGTHS = {32: "md5", 64: "sha256", 128: "sha512"}
_ALGORITHMS = ("sha512", "sha256", "md5")  # strongest first


class FetchError(DgexError):
    """A data set could not be downloaded, verified or found; the message says what to do."""


class NetworkError(FetchError):
    """A host could not be reached at all (no network, DNS failure, refused, timed out)."""


# -------------------------------------------------------------------------- registry
def _url_basename(url: str) -> str:
    """The last part of a URL's path, unquoted."""
    return urllib.parse.unquote(urllib.parse.urlsplit(url).path.rstrip("/").rsplit("/", 1)[-1])


@dataclass(frozen=True)
class RemoteFile:
    """One file of a data set, as published.

    Parameters
    ----------
    url
        Its canonical ``https://`` address (a mirror rewrites it, see :func:`mirror_url`).
    filename
        Its name in the cache folder; the last part of the URL path by default.
    sha256, sha512, md5
        A checksum the source publishes (lowercase hex), or ``None``.
    size
        Its size in bytes when known in advance, or ``None``.
    """

    url: str
    filename: str = ""
    sha256: str | None = None
    sha512: str | None = None
    md5: str | None = None
    size: int | None = None

    def __post_init__(self) -> None:
        name = self.filename or _url_basename(self.url)
        if not name or "/" in name or "\\" in name or name.startswith(".") or name.endswith(PART_SUFFIX):
            raise ValueError(f"RemoteFile {self.url!r}: {name!r} is not a usable file name")
        object.__setattr__(self, "filename", name)
        for algo in _ALGORITHMS:
            value = getattr(self, algo)
            if value is not None:
                object.__setattr__(self, algo, value.strip().lower())

    @property
    def checksum(self) -> tuple[str, str] | None:
        """The strongest published checksum as ``(algorithm, hex)``, or ``None``."""
        for algo in _ALGORITHMS:
            value = getattr(self, algo)
            if value:
                return algo, value
        return None


@dataclass(frozen=True)
class Source:
    """A named data set: the files to download and where they come from.

    Parameters
    ----------
    name
        The name users type: ``"gtex-tpm"``, ``"geo:GSE10072"``.
    description
        One or two sentences: what it is, what it holds, caveats about the URL.
    files
        The files, for a data set whose files are fixed.
    citation
        The paper to cite.
    size_hint
        A human size (``"~1.5 GB"``), for listings; approximate.
    checksum_list
        A checksum list the source publishes beside its files (``sha512sum`` format,
        possibly gzipped), used to verify files that carry no checksum of their own.
    index_url
        For a data set whose files are listed in a folder index (a GEO series matrix
        folder): the folder's URL. The links matching ``index_pattern`` are the files.
    index_pattern
        A regular expression the whole base name of a listed link must match.
    index_glob
        The same for people (``"GSE12345*_series_matrix.txt.gz"``), used in messages.
    """

    name: str
    description: str
    files: tuple[RemoteFile, ...] = ()
    citation: str = ""
    size_hint: str = ""
    checksum_list: RemoteFile | None = None
    index_url: str | None = None
    index_pattern: str | None = None
    index_glob: str = ""

    def __post_init__(self) -> None:
        object.__setattr__(self, "files", tuple(self.files))
        if bool(self.files) == bool(self.index_url):
            raise ValueError(f"source {self.name!r} needs either files or an index_url, not both")
        if self.index_url and not self.index_pattern:
            raise ValueError(f"source {self.name!r}: index_url needs an index_pattern")

    @property
    def folder(self) -> str:
        """The name of its folder in the cache (``geo:GSE1`` -> ``geo-GSE1``)."""
        return re.sub(r"[^A-Za-z0-9._-]+", "-", self.name).strip("-.")


def geo_series_folder(accession: str) -> str:
    """GEO's folder for a series: ``GSE12345`` -> ``GSE12nnn``, ``GSE123`` -> ``GSEnnn``."""
    digits = accession.upper().removeprefix("GSE")
    if not digits.isdigit():
        raise FetchError(f"{accession!r} is not a GEO series accession (expected {GEO_FORM})")
    return f"GSE{digits[:-3]}nnn"


def geo_series(accession: str) -> Source:
    """The series matrix files of a GEO series, one per platform.

    Parameters
    ----------
    accession
        ``"GSE12345"`` (any case).

    Returns
    -------
    Source
        Named ``geo:GSE12345``; its files are the ``GSE12345_series_matrix.txt.gz`` or
        ``GSE12345-GPL96_series_matrix.txt.gz`` links of the series' ``matrix/`` folder.
    """
    acc = accession.strip().upper()
    folder = geo_series_folder(acc)
    return Source(
        name=f"geo:{acc}",
        description=f"GEO series {acc}: the series matrix of every platform (samples x probes, with sample annotations).",
        index_url=f"{GEO_SERIES_ROOT}/{folder}/{acc}/matrix/",
        index_pattern=rf"{re.escape(acc)}(-GPL\d+)?_series_matrix\.txt\.gz",
        index_glob=f"{acc}*_series_matrix.txt.gz",
        citation="Barrett et al. (2013) NCBI GEO: archive for functional genomics data sets. Nucleic Acids Res 41:D991.",
        size_hint="varies (KB to GB)",
    )


_GSE92742 = f"{GEO_SERIES_ROOT}/GSE92nnn/GSE92742/suppl"
_GSE92743 = f"{GEO_SERIES_ROOT}/GSE92nnn/GSE92743/suppl"
_GEUV = "https://www.ebi.ac.uk/arrayexpress/files/E-GEUV-1"
_LINCS_CITATION = (
    "Subramanian et al. (2017) A Next Generation Connectivity Map: L1000 platform and the "
    "first 1,000,000 profiles. Cell 171:1437."
)
_GEUV_CITATION = (
    "Lappalainen et al. (2013) Transcriptome and genome sequencing uncovers functional "
    "variation in humans. Nature 501:506."
)

SOURCES: dict[str, Source] = {
    s.name: s
    for s in (
        Source(
            name="lincs-gene-info",
            description=(
                "LINCS L1000 gene annotation (GEO GSE92742): the 12,328 genes of the platform, "
                "pr_is_lm = 1 marking the 978 measured landmarks. Verified against the SHA-512 "
                "list GEO publishes beside it."
            ),
            files=(RemoteFile(f"{_GSE92742}/GSE92742_Broad_LINCS_gene_info.txt.gz"),),
            checksum_list=RemoteFile(f"{_GSE92742}/GSE92742_SHA512SUMS.txt.gz"),
            citation=_LINCS_CITATION,
            size_hint="< 1 MB",
        ),
        Source(
            name="lincs-ols-weights",
            description=(
                "The linear model LINCS uses to infer non-measured genes (GEO GSE92743): OLS "
                "weights, 979 rows (intercept + 978 landmarks) x 11,350 inferred genes, GCTX. "
                "No published checksum; checked for size only."
            ),
            files=(RemoteFile(f"{_GSE92743}/GSE92743_Broad_OLS_WEIGHTS_n979x11350.gctx.gz"),),
            citation=_LINCS_CITATION,
            size_hint="~40 MB",
        ),
        Source(
            name="gtex-tpm",
            description=(
                "GTEx v8 gene TPM (17,382 samples, 54 tissues, 56,200 genes), GCT. "
                "No published checksum; checked for size only."
            ),
            files=(
                RemoteFile(
                    "https://storage.googleapis.com/adult-gtex/bulk-gex/v8/rna-seq/"
                    "GTEx_Analysis_2017-06-05_v8_RNASeQCv1.1.9_gene_tpm.gct.gz"
                ),
            ),
            citation="GTEx Consortium (2020) The GTEx Consortium atlas of genetic regulatory effects across human tissues. Science 369:1318.",
            size_hint="~1.5 GB",
        ),
        Source(
            name="geuvadis",
            description=(
                "GEUVADIS / 1000 Genomes RNA-seq gene RPKM of 462 lymphoblastoid cell lines "
                "(ArrayExpress E-GEUV-1), the '1000G' set of the D-GEX paper. URL as published "
                "in 2013; EBI now serves ArrayExpress through BioStudies and redirects. "
                "No published checksum; checked for size only."
            ),
            files=(RemoteFile(f"{_GEUV}/GD462.GeneQuantRPKM.50FN.samplename.resk10.txt.gz"),),
            citation=_GEUV_CITATION,
            size_hint="~0.1 GB (estimate)",
        ),
        Source(
            name="geuvadis-gd660",
            description=(
                "GEUVADIS gene RPKM of all 660 sequenced libraries, replicates included, before "
                "the 462-sample selection (ArrayExpress E-GEUV-1). URL as published in 2013; "
                "EBI now redirects it. No published checksum; checked for size only."
            ),
            files=(RemoteFile(f"{_GEUV}/GD660.GeneQuantRPKM.txt.gz"),),
            citation=_GEUV_CITATION,
            size_hint="~0.2 GB (estimate)",
        ),
        Source(
            name="archs4-human",
            description=(
                "ARCHS4 human gene-level counts v2.2 (uniformly aligned GEO/SRA RNA-seq, "
                "hundreds of thousands of samples), HDF5. No published checksum; checked "
                "for size only. Very large: check free disk space first."
            ),
            files=(RemoteFile("https://s3.dev.maayanlab.cloud/archs4/files/human_gene_v2.2.h5"),),
            citation="Lachmann et al. (2018) Massive mining of publicly available RNA-seq data from human and mouse. Nat Commun 9:1366.",
            size_hint="tens of GB (estimate: ~40 GB)",
        ),
    )
}


def list_sources() -> list[Source]:
    """The named data sets, in registry order (GEO series, ``geo:GSE…``, come on top)."""
    return list(SOURCES.values())


def resolve(name: str | Source) -> Source:
    """The :class:`Source` for a name, a GEO accession or a ready-made source.

    Parameters
    ----------
    name
        A registry name (``"gtex-tpm"``, any case), ``"geo:GSE12345"`` or ``"GSE12345"``,
        or a :class:`Source`, returned as is.

    Raises
    ------
    FetchError
        For an unknown name; the message lists the known ones.
    """
    if isinstance(name, Source):
        return name
    key = str(name).strip()
    if key.lower() in SOURCES:
        return SOURCES[key.lower()]
    match = re.fullmatch(r"(?:geo:)?(GSE\d+)", key, flags=re.IGNORECASE)
    if match:
        return geo_series(match.group(1))
    known = ", ".join(SOURCES)
    raise FetchError(
        f"unknown data set {key!r}. Known names: {known}; a GEO series is written "
        f"{GEO_FORM} (its series matrix, every platform). `dgex fetch --list` describes them."
    )


# -------------------------------------------------------------------------- pure helpers
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


# -------------------------------------------------------------------------- cache paths
def cache_root(cache_dir: str | os.PathLike | None = None) -> Path:
    """The cache root: ``cache_dir``, ``$DGEX_CACHE_DIR``, ``$DGEX_DATA_DIR/fetch`` or ``<repo>/data/fetch``."""
    if cache_dir is not None:
        return Path(cache_dir).expanduser()
    if os.environ.get(CACHE_ENV):
        return Path(os.environ[CACHE_ENV]).expanduser()
    if os.environ.get(DATA_ENV):
        return Path(os.environ[DATA_ENV]).expanduser() / "fetch"
    return Path(__file__).resolve().parents[1] / "data" / "fetch"


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


def _hash_file(path: Path, algorithms: Sequence[str]) -> dict[str, str]:
    hashers = {a: _new_hash(a) for a in algorithms}
    with open(path, "rb") as fh:
        while chunk := fh.read(1 << 20):
            for h in hashers.values():
                h.update(chunk)
    return {a: h.hexdigest() for a, h in hashers.items()}


def _new_hash(algorithm: str):
    return hashlib.new(algorithm, usedforsecurity=False)


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


# -------------------------------------------------------------------------- one job
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


def _record_partial(job: _Job, remote: RemoteFile, resp: http.client.HTTPResponse, total: int | None) -> None:
    """Remember what a fresh download started from, so a resume can check it is the same file."""
    info = {
        "url": remote.url,
        "etag": resp.headers.get("ETag"),
        "last_modified": resp.headers.get("Last-Modified"),
        "total": total,
    }
    _update_manifest(job.folder, job.source.name, lambda m: m["partial"].__setitem__(remote.filename, info))


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


def _with_checksums(remotes: list[RemoteFile], published: dict[str, tuple[str, str]]) -> list[RemoteFile]:
    """``remotes`` with the published checksum added where they carry none."""
    out = []
    for remote in remotes:
        if remote.checksum is None and remote.filename in published:
            algo, digest = published[remote.filename]
            remote = replace(remote, **{algo: digest})
        out.append(remote)
    return out


def _check_mirror(mirror: str | None) -> str | None:
    mirror = mirror if mirror is not None else os.environ.get(MIRROR_ENV)
    mirror = mirror or None
    if mirror is not None and urllib.parse.urlsplit(mirror).scheme not in ("http", "https"):
        raise FetchError(f"mirror must be an address like http://host:port, got {mirror!r} (check ${MIRROR_ENV})")
    return mirror


# -------------------------------------------------------------------------- public API
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
