"""Downloads against a real HTTP server on loopback (never the internet).

The server serves files from a temporary folder laid out like the upstream hosts
(``<root>/<host>/<path>``), so ``mirror=server.url`` points the whole registry at it.
It honours ``Range: bytes=N-`` (206 + Content-Range) and ``If-Range`` against an ETag,
and can be told to cut a connection once after K bytes, to ignore Range, or to stall.
"""

from __future__ import annotations

import gzip
import hashlib
import os
import random
import re
import socket
import threading
import time
import urllib.parse
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

try:
    import fcntl
except ImportError:  # pragma: no cover - Windows
    fcntl = None

from dgex_core.errors import DgexError
from dgex_core.fetching import (
    MANIFEST_NAME,
    SOURCES,
    FetchError,
    NetworkError,
    RemoteFile,
    Source,
    cached,
    fetch,
    geo_series_folder,
    list_sources,
    mirror_url,
    parse_checksum_list,
    parse_content_range,
    parse_index,
    resolve,
)
from dgex_core.fetching.transfer import _describe_reason

# ---------------------------------------------------------------------------- the server


@dataclass
class _State:
    root: Path
    requests: list[tuple[str, str | None]] = field(default_factory=list)
    cut_after: dict[str, int] = field(default_factory=dict)  # path -> bytes, once
    ignore_range: bool = False
    stall_s: float = 0.0
    trickle_s: float = 0.0  # pause between 64 KiB pieces of a body (a slow server)


class _Handler(BaseHTTPRequestHandler):
    """Files from ``state.root``; Range, If-Range, cuts, 404, folder ``index.html``."""

    def log_message(self, *args) -> None:  # keep pytest output clean
        pass

    def do_GET(self) -> None:
        state: _State = self.server.state  # type: ignore[attr-defined]
        path = urllib.parse.unquote(urllib.parse.urlsplit(self.path).path)
        state.requests.append((path, self.headers.get("Range")))
        if state.stall_s:
            time.sleep(state.stall_s)
        file = state.root / path.lstrip("/")
        if path.endswith("/"):
            file = file / "index.html"
        if not file.is_file():
            self.send_error(404)
            return
        data = file.read_bytes()
        etag = '"' + hashlib.sha1(data).hexdigest() + '"'
        start = self._range_start(etag, state)
        if start is not None and start >= len(data):
            self.send_response(416)
            self.send_header("Content-Range", f"bytes */{len(data)}")
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        if start is None:
            start = 0
            self.send_response(200)
        else:
            self.send_response(206)
            self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
        body = data[start:]
        self.send_header("Content-Length", str(len(body)))
        self.send_header("ETag", etag)
        self.send_header("Content-Type", "text/html" if file.name == "index.html" else "application/octet-stream")
        self.end_headers()
        cut = state.cut_after.pop(path, None)
        if cut is not None:
            self.wfile.write(body[:cut])
            self.wfile.flush()
            self.connection.shutdown(socket.SHUT_RDWR)
            self.close_connection = True
            return
        if state.trickle_s:
            for i in range(0, len(body), 65536):
                self.wfile.write(body[i:i + 65536])
                self.wfile.flush()
                time.sleep(state.trickle_s)
            return
        self.wfile.write(body)

    def _range_start(self, etag: str, state: _State) -> int | None:
        match = re.fullmatch(r"bytes=(\d+)-", self.headers.get("Range") or "")
        if match is None or state.ignore_range:
            return None
        if_range = self.headers.get("If-Range")
        if if_range is not None and if_range != etag:
            return None  # the file changed: send it whole
        return int(match.group(1))


class _QuietServer(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request, client_address) -> None:
        """A client that gave up (timeout tests) is expected; say nothing."""


@dataclass
class Server:
    url: str
    state: _State

    def put(self, url: str, data: bytes) -> None:
        """Serve ``data`` where ``mirror_url(url, self.url)`` points."""
        parts = urllib.parse.urlsplit(url)
        path = self.state.root / parts.netloc / parts.path.lstrip("/")
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)

    def paths(self) -> list[str]:
        return [p for p, _ in self.state.requests]


@pytest.fixture(autouse=True)
def _no_proxy_no_env(monkeypatch):
    for var in ("http_proxy", "HTTP_PROXY", "https_proxy", "HTTPS_PROXY", "all_proxy", "ALL_PROXY"):
        monkeypatch.delenv(var, raising=False)
    for var in ("DGEX_FETCH_MIRROR", "DGEX_CACHE_DIR", "DGEX_DATA_DIR"):
        monkeypatch.delenv(var, raising=False)


@pytest.fixture
def server(tmp_path):
    root = tmp_path / "www"
    root.mkdir()
    httpd = _QuietServer(("127.0.0.1", 0), _Handler)
    httpd.state = _State(root)  # type: ignore[attr-defined]
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.01}, daemon=True)
    thread.start()
    yield Server(f"http://127.0.0.1:{httpd.server_address[1]}", httpd.state)  # type: ignore[attr-defined]
    httpd.shutdown()
    httpd.server_close()


@pytest.fixture
def cache(tmp_path) -> Path:
    return tmp_path / "cache"


def _bytes(n: int, seed: int = 0) -> bytes:
    return random.Random(seed).randbytes(n)


URL = "https://data.example.org/pub/blob.bin"
PAYLOAD = _bytes(700_000)  # several 256 KiB chunks


def _source(**checksums) -> Source:
    return Source("test-blob", "a test file", files=[RemoteFile(URL, **checksums)])


def _leftovers(folder: Path) -> list[str]:
    """Files in a cache folder other than the manifest."""
    return sorted(p.name for p in folder.iterdir() if p.name != MANIFEST_NAME) if folder.exists() else []


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


# ---------------------------------------------------------------------------- downloads


def test_download_reports_monotonic_progress_up_to_the_size(server, cache):
    server.put(URL, PAYLOAD)
    calls = []
    paths = fetch(_source(), cache, mirror=server.url, progress=lambda d, t, i: calls.append((d, t, i)))

    assert [p.name for p in paths] == ["blob.bin"]
    assert paths[0].read_bytes() == PAYLOAD
    assert paths[0].parent == cache / "test-blob"
    done = [d for d, _, _ in calls]
    assert done == sorted(done) and len(done) >= 3
    assert calls[-1][:2] == (len(PAYLOAD), len(PAYLOAD))
    assert {t for _, t, _ in calls} == {len(PAYLOAD)}
    info = calls[-1][2]
    assert info["file"] == "blob.bin" and info["url"] == URL and (info["index"], info["count"]) == (1, 1)
    assert info["cached"] is False
    assert _leftovers(paths[0].parent) == ["blob.bin"]
    assert server.paths() == ["/data.example.org/pub/blob.bin"]
    table = cached(cache)
    assert table[["source", "file", "bytes", "complete"]].values.tolist() == [["test-blob", "blob.bin", len(PAYLOAD), True]]


@pytest.mark.parametrize("algorithm", ["sha256", "sha512", "md5"])
def test_published_checksum_is_verified(server, cache, algorithm):
    server.put(URL, PAYLOAD)
    digest = hashlib.new(algorithm, PAYLOAD).hexdigest()
    (path,) = fetch(_source(**{algorithm: digest.upper()}), cache, mirror=server.url)
    assert path.read_bytes() == PAYLOAD
    row = cached(cache).iloc[0]
    assert (row["complete"], row["verified"]) == (True, algorithm)


@pytest.mark.parametrize("algorithm", ["sha256", "sha512", "md5"])
def test_checksum_mismatch_is_rejected_and_nothing_is_left(server, cache, algorithm):
    server.put(URL, PAYLOAD)
    wrong = hashlib.new(algorithm, b"something else").hexdigest()
    got = hashlib.new(algorithm, PAYLOAD).hexdigest()
    with pytest.raises(FetchError) as err:
        fetch(_source(**{algorithm: wrong}), cache, mirror=server.url)
    msg = str(err.value)
    assert "blob.bin" in msg and wrong in msg and got in msg and "mismatch" in msg
    assert _leftovers(cache / "test-blob") == []
    assert not cached(cache)["complete"].any()


def test_size_mismatch_is_rejected_before_writing(server, cache):
    server.put(URL, PAYLOAD)
    with pytest.raises(FetchError, match=r"blob.bin should be 12 .*Nothing was written"):
        fetch(Source("test-blob", "x", files=[RemoteFile(URL, size=12)]), cache, mirror=server.url)
    assert _leftovers(cache / "test-blob") == []


def test_interrupted_download_keeps_only_the_part_and_resumes_with_range(server, cache):
    server.put(URL, PAYLOAD)
    cut = 300_001
    server.state.cut_after["/data.example.org/pub/blob.bin"] = cut
    source = _source(sha256=hashlib.sha256(PAYLOAD).hexdigest())
    with pytest.raises(FetchError, match=r"interrupted after 300,001 of 700,000 bytes.*Run the same command again to resume"):
        fetch(source, cache, mirror=server.url)
    folder = cache / "test-blob"
    assert _leftovers(folder) == ["blob.bin.part"]
    assert (folder / "blob.bin.part").stat().st_size == cut
    table = cached(cache)
    assert table[["file", "status", "complete"]].values.tolist() == [["blob.bin.part", "partial", False]]

    calls = []
    (path,) = fetch(source, cache, mirror=server.url, progress=lambda d, t, i: calls.append((d, i)))
    assert server.state.requests[-1] == ("/data.example.org/pub/blob.bin", f"bytes={cut}-")
    assert path.read_bytes() == PAYLOAD
    assert calls[0] == (cut, calls[0][1]) and calls[0][1]["resumed_from"] == cut
    assert _leftovers(folder) == ["blob.bin"]


def test_server_ignoring_range_restarts_from_zero(server, cache):
    server.put(URL, PAYLOAD)
    server.state.cut_after["/data.example.org/pub/blob.bin"] = 200_000
    with pytest.raises(FetchError, match="interrupted"):
        fetch(_source(), cache, mirror=server.url)
    server.state.ignore_range = True
    (path,) = fetch(_source(), cache, mirror=server.url)
    assert server.state.requests[-1][1] == "bytes=200000-"  # asked to resume, got the whole file
    assert path.read_bytes() == PAYLOAD


def test_file_changed_upstream_between_attempts_is_downloaded_afresh(server, cache):
    server.put(URL, PAYLOAD)
    server.state.cut_after["/data.example.org/pub/blob.bin"] = 100_000
    with pytest.raises(FetchError, match="interrupted"):
        fetch(_source(), cache, mirror=server.url)
    new = _bytes(650_000, seed=1)
    server.put(URL, new)  # a new ETag: If-Range makes the server answer 200
    (path,) = fetch(_source(), cache, mirror=server.url)
    assert path.read_bytes() == new


def test_ctrl_c_during_download_leaves_only_the_part(server, cache):
    server.put(URL, PAYLOAD)

    def stop_after_first_bytes(done, total, info):
        if done > 0:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        fetch(_source(), cache, mirror=server.url, progress=stop_after_first_bytes)
    folder = cache / "test-blob"
    assert _leftovers(folder) == ["blob.bin.part"]
    (path,) = fetch(_source(), cache, mirror=server.url)
    assert server.state.requests[-1][1] is not None
    assert path.read_bytes() == PAYLOAD


def test_part_longer_than_the_file_is_discarded(server, cache):
    server.put(URL, PAYLOAD)
    folder = cache / "test-blob"
    folder.mkdir(parents=True)
    (folder / "blob.bin.part").write_bytes(PAYLOAD + b"garbage")  # the server answers 416
    (path,) = fetch(_source(), cache, mirror=server.url)
    assert [r for _, r in server.state.requests] == [f"bytes={len(PAYLOAD) + 7}-", None]
    assert path.read_bytes() == PAYLOAD


@pytest.mark.skipif(fcntl is None, reason="file locks are POSIX only")
def test_second_downloader_of_the_same_file_is_refused(server, cache):
    server.put(URL, PAYLOAD)
    part = cache / "test-blob" / "blob.bin.part"
    part.parent.mkdir(parents=True)
    with open(part, "ab") as held:
        fcntl.flock(held.fileno(), fcntl.LOCK_EX)
        with pytest.raises(FetchError, match=r"another dgex process is downloading blob\.bin\.part"):
            fetch(_source(), cache, mirror=server.url)
    assert server.state.requests == []


def test_complete_file_is_not_downloaded_again(server, cache):
    server.put(URL, PAYLOAD)
    fetch(_source(), cache, mirror=server.url)
    n = len(server.state.requests)
    calls = []
    (path,) = fetch(_source(), cache, mirror=server.url, progress=lambda d, t, i: calls.append((d, t, i["cached"])))
    assert len(server.state.requests) == n
    assert calls == [(len(PAYLOAD), len(PAYLOAD), True)]
    assert path.read_bytes() == PAYLOAD


def test_force_downloads_again_and_replaces_atomically(server, cache):
    server.put(URL, PAYLOAD)
    fetch(_source(), cache, mirror=server.url)
    new = _bytes(1000, seed=2)
    server.put(URL, new)
    (path,) = fetch(_source(), cache, mirror=server.url, force=True)
    assert path.read_bytes() == new
    assert cached(cache)["bytes"].tolist() == [1000]


def test_file_put_in_the_cache_by_hand_is_used_without_network(tmp_path):
    closed = f"http://127.0.0.1:{_closed_port()}"
    for cache, sha in ((tmp_path / "right", hashlib.sha256(PAYLOAD).hexdigest()), (tmp_path / "wrong", "0" * 64)):
        (cache / "test-blob").mkdir(parents=True)
        (cache / "test-blob" / "blob.bin").write_bytes(PAYLOAD)
        assert cached(cache)["status"].tolist() == ["unverified"]
        if sha == "0" * 64:
            with pytest.raises(FetchError, match=r"is not the published blob.bin.*force"):
                fetch(_source(sha256=sha), cache, mirror=closed)
        else:
            (path,) = fetch(_source(sha256=sha), cache, mirror=closed)
            assert path.read_bytes() == PAYLOAD
            assert cached(cache)["status"].tolist() == ["complete"]


# ---------------------------------------------------------------------------- GEO

GEO_MATRIX = "https://ftp.ncbi.nlm.nih.gov/geo/series/GSE12nnn/GSE12345/matrix/"
GEO_INDEX = """<html><head><title>Index of /geo/series/GSE12nnn/GSE12345/matrix</title></head>
<body><h1>Index of /geo/series/GSE12nnn/GSE12345/matrix</h1>
<pre>Name                                   Last modified      Size
<a href="?C=M;O=A">Last modified</a>
<hr><a href="/geo/series/GSE12nnn/GSE12345/">Parent Directory</a>
<a href="GSE12345-GPL96_series_matrix.txt.gz">GSE12345-GPL96_series_matrix.txt.gz</a>   2019-03-25 10:48  1.2K
<a href="GSE12345-GPL570_series_matrix.txt.gz">GSE12345-GPL570_series_matrix.txt.gz</a>  2019-03-25 10:48  2.0K
<a href="GSE123456_series_matrix.txt.gz">GSE123456_series_matrix.txt.gz</a>  2019-03-25 10:48  2.0K
<a href="GSE12345-GPL96_series_matrix.txt.gz">GSE12345-GPL96_series_matrix.txt.gz</a>
</pre></body></html>"""


def _geo_fixture(server) -> dict[str, bytes]:
    files = {
        "GSE12345-GPL570_series_matrix.txt.gz": gzip.compress(b"!Series_title\t\"x\"\n" * 50),
        "GSE12345-GPL96_series_matrix.txt.gz": gzip.compress(b"!Series_title\t\"y\"\n" * 80),
    }
    server.put(GEO_MATRIX + "index.html", GEO_INDEX.encode())
    for name, data in files.items():
        server.put(GEO_MATRIX + name, data)
    return files


def test_geo_series_fetches_the_series_matrix_of_every_platform(server, cache):
    files = _geo_fixture(server)
    paths = fetch("geo:GSE12345", cache, mirror=server.url)
    assert [p.name for p in paths] == sorted(files)
    assert {p.name: p.read_bytes() for p in paths} == files
    assert paths[0].parent == cache / "geo-GSE12345"
    assert server.paths()[0] == "/ftp.ncbi.nlm.nih.gov/geo/series/GSE12nnn/GSE12345/matrix/"
    n = len(server.state.requests)
    assert [p.name for p in fetch("GSE12345", cache, mirror=server.url)] == sorted(files)
    assert len(server.state.requests) == n  # the listing is remembered; nothing downloaded again


def test_geo_series_interrupted_on_one_platform_resumes_that_one(server, cache):
    files = _geo_fixture(server)
    server.state.cut_after[
        "/ftp.ncbi.nlm.nih.gov/geo/series/GSE12nnn/GSE12345/matrix/GSE12345-GPL96_series_matrix.txt.gz"
    ] = 10
    with pytest.raises(FetchError, match="interrupted"):
        fetch("geo:GSE12345", cache, mirror=server.url)
    paths = fetch("geo:GSE12345", cache, mirror=server.url)
    assert {p.name: p.read_bytes() for p in paths} == files


def test_geo_folder_and_accession_forms():
    assert geo_series_folder("GSE12345") == "GSE12nnn"
    assert geo_series_folder("GSE1234") == "GSE1nnn"
    assert geo_series_folder("GSE123") == "GSEnnn"
    source = resolve("geo:gse12345")
    assert source.name == "geo:GSE12345" and source.folder == "geo-GSE12345"
    assert source.index_url == GEO_MATRIX
    assert resolve("GSE12345") == source


# ---------------------------------------------------------------------------- errors


def test_unknown_name_lists_the_known_names():
    with pytest.raises(FetchError) as err:
        fetch("gtex-v9")
    msg = str(err.value)
    assert "'gtex-v9'" in msg and "geo:GSE" in msg
    for name in SOURCES:
        assert name in msg
    assert isinstance(err.value, DgexError)


@pytest.mark.parametrize(
    ("name", "folder", "upstream"),
    [
        ("gtex-tpm", "gtex-tpm", SOURCES["gtex-tpm"].files[0].url),
        ("lincs-gene-info", "lincs-gene-info", SOURCES["lincs-gene-info"].files[0].url),
        ("geo:GSE12345", "geo-GSE12345", "GSE12345*_series_matrix.txt.gz files listed at " + GEO_MATRIX),
    ],
)
def test_no_network_says_cannot_reach_and_what_to_do(cache, name, folder, upstream):
    port = _closed_port()
    with pytest.raises(NetworkError) as err:
        fetch(name, cache, mirror=f"http://127.0.0.1:{port}")
    msg = str(err.value)
    assert msg.startswith(f"cannot reach 127.0.0.1:{port}: connection refused.")
    assert f"dgex needs network access to download {name}" in msg
    assert upstream in msg and "by hand" in msg
    assert str(cache / folder) in msg and msg.count("\n") == 0
    assert _leftovers(cache / folder) == []
    assert not cached(cache)["complete"].any()


def test_no_answer_within_the_timeout_is_a_network_error(server, cache):
    server.put(URL, PAYLOAD)
    server.state.stall_s = 1.0
    with pytest.raises(NetworkError, match=r"cannot reach 127\.0\.0\.1:\d+: no answer within 0\.2 s"):
        fetch(_source(), cache, mirror=server.url, timeout=0.2)


def test_missing_file_names_the_url_and_suggests_checking_the_name(server, cache):
    with pytest.raises(FetchError) as err:
        fetch("geo:GSE99999", cache, mirror=server.url)
    msg = str(err.value)
    assert "/ftp.ncbi.nlm.nih.gov/geo/series/GSE99nnn/GSE99999/matrix/" in msg
    assert "HTTP 404" in msg and "'geo:GSE99999'" in msg and "Check the name" in msg
    assert not isinstance(err.value, NetworkError)


def test_bad_mirror_is_refused(cache):
    with pytest.raises(FetchError, match="mirror must be an address"):
        fetch(_source(), cache, mirror="127.0.0.1:8000")


# ---------------------------------------------------------------------------- the registry


def _serve_registry_source(server, source: Source) -> dict[str, bytes]:
    """Serve small stand-ins for a registered source's files (and its checksum list)."""
    contents = {f.filename: _bytes(5_000 + i, seed=i) for i, f in enumerate(source.files)}
    for f in source.files:
        server.put(f.url, contents[f.filename])
    if source.checksum_list is not None:
        lines = [f"{hashlib.sha512(b).hexdigest()} *{name}" for name, b in contents.items()]
        lines.append(f"{'0' * 128} *some_other_file.gctx.gz")
        server.put(source.checksum_list.url, gzip.compress("\n".join(lines).encode()))
    return contents


@pytest.mark.parametrize("name", list(SOURCES))
def test_every_registered_source_downloads_through_a_mirror(server, cache, name):
    source = resolve(name)
    assert source in list_sources() and source.description and source.citation and source.size_hint
    assert all(f.url.startswith("https://") for f in source.files)
    contents = _serve_registry_source(server, source)
    paths = fetch(name, cache, mirror=server.url)
    assert {p.name: p.read_bytes() for p in paths} == contents
    table = cached(cache)
    data_rows = table[table["file"].isin(contents)]
    assert data_rows["complete"].all()
    if source.checksum_list is not None:
        assert set(data_rows["verified"]) == {"sha512"}


def test_lincs_gene_info_is_rejected_when_the_published_sha512_differs(server, cache):
    source = SOURCES["lincs-gene-info"]
    _serve_registry_source(server, source)
    server.put(source.files[0].url, b"tampered")
    with pytest.raises(FetchError, match=r"GSE92742_Broad_LINCS_gene_info\.txt\.gz: sha512 checksum mismatch"):
        fetch("lincs-gene-info", cache, mirror=server.url)
    assert not (cache / "lincs-gene-info" / source.files[0].filename).exists()


def test_mirror_can_come_from_the_environment(server, cache, monkeypatch):
    server.put(URL, PAYLOAD)
    monkeypatch.setenv("DGEX_FETCH_MIRROR", server.url + "/")
    monkeypatch.setenv("DGEX_CACHE_DIR", str(cache))
    (path,) = fetch(_source())
    assert path == cache / "test-blob" / "blob.bin" and path.read_bytes() == PAYLOAD


# ---------------------------------------------------------------------------- pure helpers


def test_mirror_url_maps_every_host_under_the_mirror():
    assert mirror_url("https://h.org/a/b.gz?x=1", "http://127.0.0.1:9/m/") == "http://127.0.0.1:9/m/h.org/a/b.gz?x=1"
    assert mirror_url("https://h.org/a", None) == "https://h.org/a"


def test_parse_content_range():
    assert parse_content_range("bytes 100-199/1000") == (100, 199, 1000)
    assert parse_content_range("bytes 0-9/*") == (0, 9, None)
    with pytest.raises(ValueError):
        parse_content_range("items 1-2/3")


def test_parse_checksum_list_reads_sha512sum_lines():
    text = f"{'a' * 128} *GSE1_x.txt.gz\n{'b' * 64}  dir/y.gctx\nnot a checksum line\n{'c' * 32} z\n"
    assert parse_checksum_list(text) == {
        "GSE1_x.txt.gz": ("sha512", "a" * 128),
        "y.gctx": ("sha256", "b" * 64),
        "z": ("md5", "c" * 32),
    }


def test_parse_index_keeps_whole_name_matches_only():
    names = parse_index(GEO_INDEX, resolve("geo:GSE12345").index_pattern)
    assert names == ["GSE12345-GPL570_series_matrix.txt.gz", "GSE12345-GPL96_series_matrix.txt.gz"]


def test_connection_reasons_read_as_sentences():
    assert "could not be resolved" in _describe_reason(socket.gaierror(-2, "Name or service not known"), 60)
    assert _describe_reason(ConnectionRefusedError(111, "Connection refused"), 60) == "connection refused"
    assert _describe_reason(TimeoutError(), 5) == "no answer within 5 s"


# ---------------------------------------------------------------------- the dgex command

def _dgex(*args):
    from .helpers import run_cli

    return run_cli("fetch", *args)  # no proxy in the environment: the autouse fixture removed it


def test_dgex_fetch_command_downloads_lists_and_fails_cleanly(server, cache):
    files = _geo_fixture(server)
    out = _dgex("geo:GSE12345", "--mirror", server.url, "--cache-dir", cache)
    assert out.returncode == 0, out.stderr
    assert [Path(line).name for line in out.stdout.split()] == sorted(files)
    listing = _dgex("--list")
    assert listing.returncode == 0 and "lincs-gene-info" in listing.stdout and "geo:GSE" in listing.stdout
    down = _dgex("lincs-ols-weights", "--mirror", f"http://127.0.0.1:{_closed_port()}", "--cache-dir", cache)
    assert down.returncode == 1 and "cannot reach" in down.stderr and "Traceback" not in down.stderr


def test_dgex_fetch_killed_midway_leaves_only_a_part_file_and_resumes(server, cache):
    import signal
    import subprocess
    import sys

    server.put(URL, PAYLOAD)
    server.state.trickle_s = 0.2
    env = {k: v for k, v in os.environ.items() if "proxy" not in k.lower()}
    code = ("import sys; from dgex_core.fetching import fetch, Source, RemoteFile; "
            f"fetch(Source('test-blob', 'x', files=[RemoteFile({URL!r})]), {str(cache)!r}, mirror={server.url!r})")
    proc = subprocess.Popen([sys.executable, "-c", code], env=env)
    folder = cache / "test-blob"
    deadline = time.time() + 30
    while time.time() < deadline and not any(p.suffix == ".part" and p.stat().st_size > 0
                                             for p in (folder.iterdir() if folder.exists() else [])):
        time.sleep(0.02)
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=30)
    assert _leftovers(folder) == ["blob.bin.part"]  # nothing under the final name
    server.state.trickle_s = 0.0
    paths = fetch(Source("test-blob", "x", files=[RemoteFile(URL)]), cache, mirror=server.url)
    assert paths[0].read_bytes() == PAYLOAD
    assert any(r and r.startswith("bytes=") for _, r in server.state.requests)  # it resumed


def test_the_default_cache_is_the_projects_data_folder(monkeypatch):
    from dgex_core.fetching import cache_root

    monkeypatch.delenv("DGEX_CACHE_DIR", raising=False)
    monkeypatch.delenv("DGEX_DATA_DIR", raising=False)
    assert cache_root() == Path(__file__).resolve().parents[1] / "data" / "fetch"
