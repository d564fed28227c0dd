"""Tests for ``replication.data.download``: multi-source, hash-verified, atomic download of Census-Income.

No test reaches the internet: UCI's URLs are pointed at a closed local port for every test, and the
network cases run against an ``http.server`` on 127.0.0.1 started by a fixture. Most cases use small
fake files with ``CENSUS_FILES`` patched to their hashes; the real-mirror tests use the real files
and the official hashes.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import socket
import tarfile
import threading
import time
import zipfile
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Iterator

import pytest

from replication.data import download as dl
from replication.data.download import DownloadError, download_census
from replication.io import sha256_file
from tests.conftest import MIRROR

DATA, TEST = "census-income.data", "census-income.test"
# Written out here, independently of the module, so a wrong constant there is caught.
OFFICIAL = {
    DATA: "3676a81db7d3528f3f8b9f3c699d0f0aa28db45e6e994fa0b8ed38327539ee86",
    TEST: "98402b1ab879573d0a7f38a699a40258080e25e33d3401e7bf9c96d3fa0fab8c",
}
OFFICIAL_ROWS = {DATA: 199_523, TEST: 99_762}
FAKE = {
    DATA: b"".join(b"%d, Private, %d, - 50000.\n" % (i, i * 7) for i in range(3000)),
    TEST: b"".join(b"%d, Self-employed, %d, 50000+.\n" % (i, i * 3) for i in range(1500)),
}
SHORT_TIMEOUT = 0.5


def sha(content: bytes) -> str:
    return hashlib.sha256(content).hexdigest()


def listing(directory: Path) -> list[str]:
    """Every entry in ``directory``, hidden temporary files included."""
    return sorted(path.name for path in Path(directory).iterdir())


def closed_port() -> int:
    """A local port with nothing listening on it (bound once, then released)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def write_gz_mirror(directory: Path, files: dict[str, bytes]) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    for name, content in files.items():
        (directory / f"{name}.gz").write_bytes(gzip.compress(content, compresslevel=1))
    return directory


def tar_gz(files: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        for name, content in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(content)
            tar.addfile(info, io.BytesIO(content))
    return buffer.getvalue()


def zip_bytes(members: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        for name, content in members.items():
            zf.writestr(name, content)
    return buffer.getvalue()


# Zip layouts a mirror or UCI may use: gzipped members in a folder, raw members at the top, and
# UCI's current layout (a zip holding census.tar.gz holding the raw files).
ZIP_LAYOUTS = {
    "gz-in-folder": lambda files: zip_bytes({f"census/{n}.gz": gzip.compress(c) for n, c in files.items()}),
    "raw-at-top": lambda files: zip_bytes({**files, "census-income.names": b"names"}),
    "uci-tar-gz": lambda files: zip_bytes({
        "census-income.names": b"names",
        "census.tar.gz": tar_gz({**files, "census-income.names": b"names"}),
    }),
}


# --------------------------------------------------------------------------------------------------
# Fixtures


@pytest.fixture(autouse=True)
def hermetic(monkeypatch: pytest.MonkeyPatch) -> None:
    """Keep every test off the internet and independent of the caller's environment."""
    monkeypatch.delenv(dl.MIRROR_ENV, raising=False)
    monkeypatch.setenv("no_proxy", "*")
    monkeypatch.setenv("NO_PROXY", "*")
    port = closed_port()
    monkeypatch.setattr(dl, "UCI_ARCHIVE_URL", f"http://127.0.0.1:{port}/static/public/117/census+income+kdd.zip")
    monkeypatch.setattr(dl, "UCI_LEGACY_URL", f"http://127.0.0.1:{port}/ml/census-income-mld/")


@pytest.fixture
def fake_census(monkeypatch: pytest.MonkeyPatch) -> dict[str, bytes]:
    """Make the small FAKE files the official ones."""
    monkeypatch.setattr(dl, "CENSUS_FILES", {name: sha(content) for name, content in FAKE.items()})
    return FAKE


@pytest.fixture
def fake_mirror(tmp_path: Path, fake_census: dict[str, bytes]) -> Path:
    return write_gz_mirror(tmp_path / "mirror", fake_census)


@pytest.fixture
def out(tmp_path: Path) -> Path:
    return tmp_path / "out"


@dataclass
class Route:
    body: bytes = b""
    status: int = 200
    delay: float = 0.0
    declared_length: int | None = None  # a Content-Length larger than the body fakes a cut transfer


class _Handler(BaseHTTPRequestHandler):
    server: "_Server"

    def do_GET(self) -> None:  # noqa: N802 (http.server's naming)
        self.server.hits.append(self.path)
        route = self.server.routes.get(self.path)
        try:
            if route is None:
                self.send_error(404)
                return
            time.sleep(route.delay)
            self.send_response(route.status)
            length = len(route.body) if route.declared_length is None else route.declared_length
            self.send_header("Content-Length", str(length))
            self.end_headers()
            self.wfile.write(route.body)
        except (BrokenPipeError, ConnectionResetError):  # the client gave up (timeout tests)
            pass

    def log_message(self, format: str, *args: object) -> None:  # noqa: A002
        """Keep test output quiet."""


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.routes: dict[str, Route] = {}
        self.hits: list[str] = []

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"

    def add(self, path: str, body: bytes = b"", **options: object) -> str:
        """Serve ``body`` at ``path``; return its full URL."""
        self.routes[path] = Route(body, **options)  # type: ignore[arg-type]
        return self.url + path

    def handle_error(self, request: object, client_address: object) -> None:
        """Clients that time out on purpose are not errors."""


@pytest.fixture
def server() -> Iterator[_Server]:
    httpd = _Server()
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield httpd
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join(timeout=5)


@dataclass
class RecordingSource:
    """A source that records every request and always fails (to prove it is never asked)."""

    calls: list[str]
    name: str = "recording source"

    def fetch(self, filename: str, sink: dl.Sink) -> str:
        self.calls.append(filename)
        raise dl.SourceUnavailable("recording source never has anything")

    def close(self) -> None:
        pass


# --------------------------------------------------------------------------------------------------
# The real mirror, with the official hashes


@pytest.fixture(scope="module")
def real_download(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, Path]]:
    assert MIRROR.is_dir(), f"the shared data mirror is missing: {MIRROR}"
    out_dir = tmp_path_factory.mktemp("real") / "census"
    return out_dir, download_census(out_dir, mirror=str(MIRROR), progress=False)


def test_module_hashes_are_the_official_ones() -> None:
    assert dl.CENSUS_FILES == OFFICIAL


def test_real_mirror_gives_official_files(real_download: tuple[Path, dict[str, Path]]) -> None:
    out_dir, paths = real_download
    assert paths == {DATA: out_dir / DATA, TEST: out_dir / TEST}
    assert listing(out_dir) == ["SHA256SUMS", DATA, TEST]
    for name, path in paths.items():
        assert sha256_file(path) == OFFICIAL[name]
        assert path.read_bytes().count(b"\n") == OFFICIAL_ROWS[name]
    assert (out_dir / "SHA256SUMS").read_text(encoding="utf-8") == (
        f"{OFFICIAL[DATA]}  {DATA}\n{OFFICIAL[TEST]}  {TEST}\n"
    )


def test_real_download_is_idempotent(real_download: tuple[Path, dict[str, Path]]) -> None:
    out_dir, paths = real_download
    before = {name: (path.stat().st_ino, path.stat().st_mtime_ns) for name, path in paths.items()}
    calls: list[str] = []
    again = download_census(out_dir, sources=[RecordingSource(calls), str(out_dir / "no-such-mirror")])
    assert again == paths
    assert calls == []
    assert {name: (path.stat().st_ino, path.stat().st_mtime_ns) for name, path in paths.items()} == before
    assert listing(out_dir) == ["SHA256SUMS", DATA, TEST]


@pytest.mark.fault
def test_real_tampered_file_is_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The real test file with one byte changed fails the official hash and never lands in out_dir."""
    monkeypatch.setattr(dl, "CENSUS_FILES", {TEST: OFFICIAL[TEST]})  # only the test file, to stay fast
    content = bytearray(gzip.decompress((MIRROR / f"{TEST}.gz").read_bytes()))
    content[1000] ^= 0x01
    tampered = tmp_path / "tampered"
    tampered.mkdir()
    (tampered / f"{TEST}.gz").write_bytes(gzip.compress(bytes(content), compresslevel=1))
    out_dir = tmp_path / "out"

    with pytest.raises(DownloadError) as caught:
        download_census(out_dir, sources=[tampered], progress=False)
    message = str(caught.value)
    assert "SHA-256" in message and "mismatch" in message
    assert OFFICIAL[TEST] in message and sha(bytes(content)) in message
    assert TEST in message and str(tampered) in message
    assert listing(out_dir) == []

    # The refused source is skipped and the next one (the real mirror) is used.
    paths = download_census(out_dir, sources=[tampered, MIRROR], progress=False)
    assert sha256_file(paths[TEST]) == OFFICIAL[TEST]
    assert listing(out_dir) == ["SHA256SUMS", TEST]


# --------------------------------------------------------------------------------------------------
# Mirrors: folders, the environment variable, zips, file:// and http:// prefixes


def assert_fake_files(out_dir: Path, files: dict[str, bytes]) -> None:
    assert listing(out_dir) == ["SHA256SUMS", *sorted(files)]
    for name, content in files.items():
        assert (out_dir / name).read_bytes() == content
    expected_sums = "".join(f"{sha(content)}  {name}\n" for name, content in files.items())
    assert (out_dir / "SHA256SUMS").read_text(encoding="utf-8") == expected_sums


def test_mirror_from_environment_variable(
    fake_mirror: Path, out: Path, monkeypatch: pytest.MonkeyPatch, fake_census: dict[str, bytes]
) -> None:
    monkeypatch.setenv(dl.MIRROR_ENV, str(fake_mirror))
    paths = download_census(out, progress=False)
    assert paths == {DATA: out / DATA, TEST: out / TEST}
    assert_fake_files(out, fake_census)


def test_explicit_mirror_overrides_environment_variable(
    fake_mirror: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, fake_census: dict[str, bytes]
) -> None:
    monkeypatch.setenv(dl.MIRROR_ENV, str(tmp_path / "does-not-exist"))
    download_census(tmp_path / "a", mirror=str(fake_mirror), progress=False)
    assert_fake_files(tmp_path / "a", fake_census)

    # An empty mirror means "no mirror", even with the variable set: only UCI is tried (and fails here).
    monkeypatch.setenv(dl.MIRROR_ENV, str(fake_mirror))
    with pytest.raises(DownloadError) as caught:
        download_census(tmp_path / "b", mirror="", timeout=SHORT_TIMEOUT, progress=False)
    assert [name.split()[0] for name, _ in caught.value.failures] == ["UCI", "UCI"]
    assert str(fake_mirror) not in str(caught.value)
    assert listing(tmp_path / "b") == []


@pytest.mark.fault
def test_mirror_missing_a_file_names_source_file_and_fix(
    tmp_path: Path, out: Path, fake_census: dict[str, bytes]
) -> None:
    mirror = write_gz_mirror(tmp_path / "half", {DATA: fake_census[DATA]})
    with pytest.raises(DownloadError) as caught:
        download_census(out, sources=[mirror], progress=False)
    error = caught.value
    message = str(error)
    assert error.filename == TEST
    assert error.failures == [(f"mirror directory {mirror}", error.failures[0][1])]
    assert f"not found in mirror directory {mirror}" in message
    assert TEST in message
    assert "--mirror" in message and "REPLICATION_DATA_MIRROR" in message and "data/README.md" in message
    # The file that was found is complete and verified, so it stays; nothing else is left behind.
    assert listing(out) == [DATA]
    assert (out / DATA).read_bytes() == fake_census[DATA]


def test_raw_files_in_mirror(tmp_path: Path, out: Path, fake_census: dict[str, bytes]) -> None:
    mirror = tmp_path / "raw"
    mirror.mkdir()
    for name, content in fake_census.items():
        (mirror / name).write_bytes(content)
    download_census(out, sources=[mirror], progress=False)
    assert_fake_files(out, fake_census)


@pytest.mark.parametrize("layout", sorted(ZIP_LAYOUTS))
def test_zip_in_mirror_directory(layout: str, tmp_path: Path, out: Path, fake_census: dict[str, bytes]) -> None:
    mirror = tmp_path / "zipped"
    mirror.mkdir()
    (mirror / "census+income+kdd.zip").write_bytes(ZIP_LAYOUTS[layout](fake_census))
    download_census(out, mirror=str(mirror), progress=False)
    assert_fake_files(out, fake_census)


@pytest.mark.parametrize("layout", sorted(ZIP_LAYOUTS))
def test_zip_url_is_downloaded_once(
    layout: str, server: _Server, out: Path, fake_census: dict[str, bytes]
) -> None:
    url = server.add("/archive/census+income+kdd.zip", ZIP_LAYOUTS[layout](fake_census))
    download_census(out, sources=[url], timeout=5, progress=False)
    assert_fake_files(out, fake_census)
    assert server.hits == ["/archive/census+income+kdd.zip"]


def test_file_url_mirror(fake_mirror: Path, out: Path, fake_census: dict[str, bytes]) -> None:
    download_census(out, mirror=fake_mirror.as_uri(), progress=False)
    assert_fake_files(out, fake_census)


def test_http_mirror_prefix_without_trailing_slash(
    server: _Server, out: Path, fake_census: dict[str, bytes]
) -> None:
    for name, content in fake_census.items():
        server.add(f"/mirror/{name}.gz", gzip.compress(content))
    download_census(out, mirror=server.url + "/mirror", timeout=5, progress=True)
    assert_fake_files(out, fake_census)
    assert server.hits == [f"/mirror/{DATA}.gz", f"/mirror/{TEST}.gz"]


@pytest.mark.fault
def test_corrupt_zip_in_mirror_is_a_reason_not_a_crash(
    tmp_path: Path, out: Path, fake_census: dict[str, bytes]
) -> None:
    mirror = tmp_path / "badzip"
    mirror.mkdir()
    (mirror / "census.zip").write_bytes(zip_bytes({f"{DATA}.gz": gzip.compress(fake_census[DATA])})[:200])
    with pytest.raises(DownloadError) as caught:
        download_census(out, sources=[mirror], progress=False)
    assert "zip" in caught.value.failures[0][1]
    assert listing(out) == []


# --------------------------------------------------------------------------------------------------
# Network failures: every source is listed with its reason, and nothing partial is left


def _failing_url(kind: str, server: _Server, fake_census: dict[str, bytes]) -> tuple[str, str]:
    """A source URL that fails in the way named by ``kind``, and text its reason must contain."""
    good_gz = gzip.compress(fake_census[DATA])
    if kind == "http-404":
        return server.url + "/nowhere/", "HTTP Error 404"
    if kind == "http-500":
        server.add(f"/broken/{DATA}.gz", b"oops", status=500)
        return server.url + "/broken/", "HTTP Error 500"
    if kind == "timeout":
        server.add(f"/slow/{DATA}.gz", good_gz, delay=3 * SHORT_TIMEOUT + 1)
        return server.url + "/slow/", f"timed out after {SHORT_TIMEOUT:g}s"
    if kind == "connection-refused":
        return f"http://127.0.0.1:{closed_port()}/mirror/", "Connection refused"
    if kind == "truncated-gzip":
        server.add(f"/cut/{DATA}.gz", good_gz[: len(good_gz) // 2])
        return server.url + "/cut/", "truncated gzip"
    if kind == "cut-transfer":
        server.add(f"/short/{DATA}.gz", good_gz, declared_length=len(good_gz) + 1000)
        return server.url + "/short/", f"received {len(good_gz)} of {len(good_gz) + 1000} bytes"
    if kind == "not-gzip":
        server.add(f"/plain/{DATA}.gz", b"<html>captive portal</html>")
        return server.url + "/plain/", "gzip"
    if kind == "truncated-zip":
        zipped = ZIP_LAYOUTS["uci-tar-gz"](fake_census)
        return server.add("/zip/census+income+kdd.zip", zipped[: len(zipped) // 2]), "zip"
    raise AssertionError(kind)


FAILURE_KINDS = [
    "http-404", "http-500", "timeout", "connection-refused", "truncated-gzip", "cut-transfer", "not-gzip",
    "truncated-zip",
]


@pytest.mark.fault
@pytest.mark.parametrize("kind", FAILURE_KINDS)
def test_network_failure_lists_every_source(
    kind: str, server: _Server, tmp_path: Path, out: Path, fake_census: dict[str, bytes]
) -> None:
    url, reason = _failing_url(kind, server, fake_census)
    missing = tmp_path / "empty-mirror"
    missing.mkdir()
    started = time.monotonic()
    with pytest.raises(DownloadError) as caught:
        download_census(out, sources=[missing, url], timeout=SHORT_TIMEOUT, progress=False)
    elapsed = time.monotonic() - started

    error = caught.value
    message = str(error)
    assert error.filename == DATA and DATA in message
    assert [name for name, _ in error.failures] == [f"mirror directory {missing}", dl.make_source(url).name]
    assert "not found in mirror directory" in error.failures[0][1]
    assert reason.lower() in error.failures[1][1].lower()
    assert str(missing) in message and url.rstrip("/") in message and reason.lower() in message.lower()
    assert "--mirror" in message and "REPLICATION_DATA_MIRROR" in message
    assert listing(out) == []
    assert elapsed < 3 * SHORT_TIMEOUT + 1  # the timeout bounds the wait; the slow server is not awaited


def test_all_failures_listed_in_order(
    server: _Server, tmp_path: Path, out: Path, fake_census: dict[str, bytes]
) -> None:
    kinds = ["http-404", "timeout", "connection-refused", "truncated-gzip"]
    urls_and_reasons = [_failing_url(kind, server, fake_census) for kind in kinds]
    missing = tmp_path / "empty-mirror"
    missing.mkdir()
    with pytest.raises(DownloadError) as caught:
        download_census(out, sources=[missing, *(u for u, _ in urls_and_reasons)], timeout=SHORT_TIMEOUT,
                        progress=False)
    message = str(caught.value)
    lines = [line for line in message.splitlines() if line.startswith("  - ")]
    assert len(lines) == 1 + len(kinds)
    assert "not found in mirror directory" in lines[0]
    for line, (url, reason) in zip(lines[1:], urls_and_reasons):
        assert url in line and reason.lower() in line.lower()
    assert listing(out) == []


# --------------------------------------------------------------------------------------------------
# Fallback between sources


def test_fallback_to_second_source_over_http(
    server: _Server, tmp_path: Path, out: Path, fake_census: dict[str, bytes]
) -> None:
    for name, content in fake_census.items():
        server.add(f"/good/{name}.gz", gzip.compress(content))
    download_census(out, sources=[tmp_path / "no-such-dir", server.url + "/good/"], timeout=5, progress=False)
    assert_fake_files(out, fake_census)


def test_raw_file_over_http_when_gz_is_absent(server: _Server, out: Path, fake_census: dict[str, bytes]) -> None:
    for name, content in fake_census.items():
        server.add(f"/raw/{name}", content)
    download_census(out, sources=[server.url + "/raw/"], timeout=5, progress=False)
    assert_fake_files(out, fake_census)
    assert server.hits == [f"/raw/{DATA}.gz", f"/raw/{DATA}", f"/raw/{TEST}.gz", f"/raw/{TEST}"]


def test_refused_copy_falls_through_to_next_source(
    tmp_path: Path, out: Path, fake_mirror: Path, fake_census: dict[str, bytes]
) -> None:
    bad = write_gz_mirror(tmp_path / "bad", {TEST: fake_census[TEST] + b"extra row\n"})
    (bad / f"{DATA}.gz").write_bytes((fake_mirror / f"{DATA}.gz").read_bytes())
    download_census(out, sources=[bad, fake_mirror], progress=False)
    assert_fake_files(out, fake_census)


def test_default_order_mirror_then_uci_archive_then_legacy(
    server: _Server, tmp_path: Path, out: Path, monkeypatch: pytest.MonkeyPatch, fake_census: dict[str, bytes]
) -> None:
    monkeypatch.setattr(dl, "UCI_ARCHIVE_URL", server.url + "/static/public/117/census+income+kdd.zip")
    monkeypatch.setattr(dl, "UCI_LEGACY_URL", server.url + "/legacy/")
    for name, content in fake_census.items():
        server.add(f"/legacy/{name}.gz", gzip.compress(content))
    download_census(out, mirror=str(tmp_path / "empty"), timeout=5, progress=False)
    assert_fake_files(out, fake_census)
    # The archive's 404 is remembered, so it is requested once, not once per file.
    assert server.hits == ["/static/public/117/census+income+kdd.zip", f"/legacy/{DATA}.gz", f"/legacy/{TEST}.gz"]


def test_default_uci_archive_in_current_layout(
    server: _Server, out: Path, monkeypatch: pytest.MonkeyPatch, fake_census: dict[str, bytes]
) -> None:
    archive = server.add("/static/public/117/census+income+kdd.zip", ZIP_LAYOUTS["uci-tar-gz"](fake_census))
    monkeypatch.setattr(dl, "UCI_ARCHIVE_URL", archive)
    monkeypatch.setattr(dl, "UCI_LEGACY_URL", server.url + "/legacy/")
    download_census(out, timeout=5, progress=False)
    assert_fake_files(out, fake_census)
    assert server.hits == ["/static/public/117/census+income+kdd.zip"]


# --------------------------------------------------------------------------------------------------
# Existing files, interruption, arguments


def test_existing_file_with_wrong_hash_is_replaced(
    out: Path, fake_mirror: Path, fake_census: dict[str, bytes]
) -> None:
    out.mkdir()
    (out / DATA).write_bytes(b"not the census\n")
    download_census(out, sources=[fake_mirror], progress=False)
    assert_fake_files(out, fake_census)


@pytest.mark.fault
def test_existing_wrong_file_is_reported_when_no_source_works(
    tmp_path: Path, out: Path, fake_census: dict[str, bytes]
) -> None:
    out.mkdir()
    (out / DATA).write_bytes(b"not the census\n")
    with pytest.raises(DownloadError) as caught:
        download_census(out, sources=[tmp_path / "nothing"], progress=False)
    assert f"The existing {out / DATA}" in str(caught.value)
    assert listing(out) == [DATA]


@pytest.mark.fault
def test_interrupted_fetch_leaves_nothing(out: Path, fake_census: dict[str, bytes]) -> None:
    @dataclass
    class Interrupted:
        name: str = "interrupted source"

        def fetch(self, filename: str, sink: dl.Sink) -> str:
            sink.write(b"half a file")
            raise KeyboardInterrupt

        def close(self) -> None:
            pass

    with pytest.raises(KeyboardInterrupt):
        download_census(out, sources=[Interrupted()], progress=False)
    assert listing(out) == []


@pytest.mark.fault
def test_no_sources(out: Path) -> None:
    with pytest.raises(DownloadError, match="no sources were configured"):
        download_census(out, sources=[], progress=False)
    assert listing(out) == []


def test_mirror_and_sources_are_exclusive(out: Path, fake_mirror: Path) -> None:
    with pytest.raises(ValueError, match="not both"):
        download_census(out, mirror=str(fake_mirror), sources=[fake_mirror])


@pytest.mark.parametrize(
    ("spec", "kind"),
    [
        ("/data/mirror", dl.DirectorySource),
        ("file:///data/mirror", dl.DirectorySource),
        ("/data/census.zip", dl.ZipArchiveSource),
        ("https://example.org/mirror/", dl.UrlPrefixSource),
        ("https://example.org/census+income+kdd.zip", dl.ZipArchiveSource),
    ],
)
def test_make_source_kinds(spec: str, kind: type) -> None:
    assert type(dl.make_source(spec)) is kind
