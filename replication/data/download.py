"""Download UCI Census-Income (KDD) and accept it only if its content has the official SHA-256.

The two files (``census-income.data`` and ``census-income.test``) can come from several places:
a mirror (``--mirror`` / ``REPLICATION_DATA_MIRROR``: a local folder, or an http(s)/file URL
prefix), UCI's current archive zip, and UCI's legacy ``.gz`` paths. Each place may hold a file
raw, gzipped, in a ``.zip``, or (UCI's current archive) in a ``.tar.gz`` inside a ``.zip``. Because
the compressed bytes differ between faithful copies, only the SHA-256 of the *decompressed*
content is checked; a copy with any other content is refused and the next source is tried.

Every file is written to a temporary sibling in the output folder and renamed into place only
after its hash matched, so an interrupted or refused download never leaves a file that a later
stage could mistake for the data. When every source fails for a file, :class:`DownloadError`
lists each source with the reason it failed and says how to point the step at a mirror.

Sources are small objects satisfying the :class:`Source` protocol (a ``name`` for messages,
``fetch(filename, sink)`` and ``close()``); :func:`make_source` builds one from a path or URL.
"""

from __future__ import annotations

import gzip
import hashlib
import http.client
import logging
import os
import shutil
import socket
import tarfile
import tempfile
import urllib.error
import urllib.parse
import urllib.request
import zipfile
import zlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Iterable, Protocol, Sequence, Union, runtime_checkable

from tqdm import tqdm

from replication.io import atomic_open, sha256_file

log = logging.getLogger(__name__)

#: Official SHA-256 of the *decompressed* content of each file (see data/README.md).
CENSUS_FILES: dict[str, str] = {
    "census-income.data": "3676a81db7d3528f3f8b9f3c699d0f0aa28db45e6e994fa0b8ed38327539ee86",
    "census-income.test": "98402b1ab879573d0a7f38a699a40258080e25e33d3401e7bf9c96d3fa0fab8c",
}
#: UCI's current archive; it holds ``census.tar.gz``, which holds the two raw files.
UCI_ARCHIVE_URL = "https://archive.ics.uci.edu/static/public/117/census+income+kdd.zip"
#: UCI's legacy folder; a file is at ``UCI_LEGACY_URL + name + ".gz"``.
UCI_LEGACY_URL = "https://archive.ics.uci.edu/ml/machine-learning-databases/census-income-mld/"
#: Environment variable naming the default mirror (a folder or a URL prefix).
MIRROR_ENV = "REPLICATION_DATA_MIRROR"
#: Name of the checksum file written beside the data, in ``sha256sum`` format.
CHECKSUM_FILE = "SHA256SUMS"

_CHUNK = 1 << 20
# UCI's server has been seen to refuse urllib's default "Python-urllib/3.x" user agent.
_USER_AGENT = "Mozilla/5.0 (compatible; replication-data-download; python-urllib)"
_NOT_FOUND_CODES = frozenset({404, 410})
_TAR_SUFFIXES = (".tar", ".tar.gz", ".tgz")


class DownloadError(RuntimeError):
    """No source could provide a file with the official content; the message says why and what to do."""

    def __init__(self, filename: str, expected: str, failures: Sequence[tuple[str, str]], note: str = "") -> None:
        self.filename = filename
        self.failures = list(failures)
        super().__init__(_failure_message(filename, expected, self.failures, note))


class SourceUnavailable(Exception):
    """One source cannot provide one file; the message is the reason. The next source is tried."""


class NotFoundAt(SourceUnavailable):
    """The file is absent at one location (HTTP 404/410, no such archive member): try another spelling."""


class Sink(Protocol):
    """Where a source writes the decompressed content of a file."""

    def write(self, data: bytes, /) -> int: ...


@runtime_checkable
class Source(Protocol):
    """One place the files may come from."""

    @property
    def name(self) -> str:
        """Human-readable description, used in log and error messages."""
        ...

    def fetch(self, filename: str, sink: Sink) -> str:
        """Write the decompressed content of ``filename`` to ``sink``; return where it came from.

        Raise :class:`SourceUnavailable` (or let an I/O, decompression or archive error escape)
        when this source cannot provide it; the caller then discards whatever was written.
        """
        ...

    def close(self) -> None:
        """Release anything kept between files (a downloaded archive)."""
        ...


SourceSpec = Union[str, "os.PathLike[str]", Source]

# What a failing source may raise; anything else is a bug and propagates.
_SOURCE_ERRORS: tuple[type[BaseException], ...] = (
    SourceUnavailable, OSError, EOFError, zlib.error, zipfile.BadZipFile, tarfile.TarError,
    http.client.HTTPException,
)


# --------------------------------------------------------------------------------------------------
# Sources


@dataclass
class DirectorySource:
    """A local folder holding ``NAME``, ``NAME.gz``, or a ``*.zip`` with either (possibly in a tar)."""

    directory: Path
    label: str = "mirror directory"

    @property
    def name(self) -> str:
        return f"{self.label} {self.directory}"

    def fetch(self, filename: str, sink: Sink) -> str:
        if not self.directory.is_dir():
            raise SourceUnavailable(f"{self.directory} is not an existing directory")
        for candidate in (filename, filename + ".gz"):
            path = self.directory / candidate
            if path.is_file():
                with path.open("rb") as src:
                    _copy(src, sink, gunzip=candidate.endswith(".gz"))
                return str(path)
        for archive in sorted(self.directory.glob("*.zip")):
            try:
                member = _extract_from_zip(archive, filename, sink, str(archive))
            except NotFoundAt:
                continue
            return f"{archive}!{member}"
        raise SourceUnavailable(
            f"not found in mirror directory {self.directory} "
            f"(looked for {filename}, {filename}.gz and inside *.zip)"
        )

    def close(self) -> None:
        """Nothing is kept between files."""


@dataclass
class UrlPrefixSource:
    """An http(s) URL prefix; ``NAME`` is fetched as ``prefix + NAME + suffix`` for each suffix in turn.

    A later suffix is tried only when the earlier one is absent (HTTP 404/410), so a dead server
    costs one timeout, not one per spelling.
    """

    prefix: str
    timeout: float = 30.0
    progress: bool = True
    suffixes: tuple[str, ...] = (".gz", "")
    label: str = "mirror URL"

    def __post_init__(self) -> None:
        if not self.prefix.endswith("/"):
            self.prefix += "/"

    @property
    def name(self) -> str:
        return f"{self.label} {self.prefix}"

    def fetch(self, filename: str, sink: Sink) -> str:
        misses = []
        for suffix in self.suffixes:
            url = self.prefix + urllib.parse.quote(filename + suffix)
            try:
                _download(url, sink, timeout=self.timeout, progress=self.progress,
                          gunzip=suffix == ".gz", desc=filename + suffix)
            except NotFoundAt as exc:  # raised before any byte was written
                misses.append(str(exc))
                continue
            return url
        raise SourceUnavailable("; ".join(misses) or "no URL suffixes configured")

    def close(self) -> None:
        """Nothing is kept between files."""


@dataclass
class ZipArchiveSource:
    """A ``.zip`` (local path or URL) holding the files raw, gzipped, or inside a nested tar archive.

    A remote archive is downloaded once, to an anonymous temporary file outside the output folder,
    and reused for every file; a failed download is remembered so it is not retried per file.
    """

    location: str
    timeout: float = 30.0
    progress: bool = True
    label: str = "zip archive"
    _archive: IO[bytes] | None = field(default=None, init=False, repr=False)
    _failure: str | None = field(default=None, init=False, repr=False)

    @property
    def name(self) -> str:
        return f"{self.label} {self.location}"

    def fetch(self, filename: str, sink: Sink) -> str:
        member = _extract_from_zip(self._open_archive(), filename, sink, self.location)
        return f"{self.location}!{member}"

    def close(self) -> None:
        if self._archive is not None:
            self._archive.close()
        self._archive, self._failure = None, None

    def _open_archive(self) -> IO[bytes]:
        """Return the archive, rewound; download it on first use."""
        if self._failure is not None:
            raise SourceUnavailable(self._failure)
        if self._archive is None:
            self._archive = self._download() if _is_url(self.location) else self._open_local()
        self._archive.seek(0)
        return self._archive

    def _download(self) -> IO[bytes]:
        spool = tempfile.TemporaryFile()
        try:
            _download(self.location, spool, timeout=self.timeout, progress=self.progress,
                      gunzip=False, desc=_basename(urllib.parse.urlsplit(self.location).path))
        except SourceUnavailable as exc:
            spool.close()
            self._failure = str(exc)
            raise
        except BaseException:
            spool.close()
            raise
        return spool

    def _open_local(self) -> IO[bytes]:
        try:
            return open(self.location, "rb")
        except OSError as exc:
            self._failure = f"cannot open {self.location}: {exc.strerror or exc}"
            raise SourceUnavailable(self._failure) from exc


def make_source(spec: SourceSpec, *, timeout: float = 30.0, progress: bool = True) -> Source:
    """Build a source from a local folder, a local ``.zip``, a ``file://`` URL, or an http(s) URL.

    An http(s) URL whose path ends in ``.zip`` is an archive; any other URL is a prefix under which
    ``NAME.gz`` or ``NAME`` is fetched. A ``file://`` URL is treated as the local path it names, so
    it gets the folder's zip support too. A :class:`Source` object is returned unchanged.
    """
    if isinstance(spec, Source):
        return spec
    text = os.fspath(spec)
    if _is_url(text):
        parts = urllib.parse.urlsplit(text)
        if parts.scheme.lower() != "file":
            if parts.path.lower().endswith(".zip"):
                return ZipArchiveSource(text, timeout=timeout, progress=progress)
            return UrlPrefixSource(text, timeout=timeout, progress=progress)
        path = Path(urllib.request.url2pathname(parts.path))
    else:
        path = Path(text).expanduser()
    if path.suffix.lower() == ".zip" and not path.is_dir():
        return ZipArchiveSource(str(path), timeout=timeout, progress=progress)
    return DirectorySource(path)


def default_sources(mirror: str, *, timeout: float = 30.0, progress: bool = True) -> list[Source]:
    """The mirror (if any), then UCI's current archive, then UCI's legacy ``.gz`` paths."""
    sources = [make_source(mirror, timeout=timeout, progress=progress)] if mirror else []
    sources.append(ZipArchiveSource(UCI_ARCHIVE_URL, timeout=timeout, progress=progress, label="UCI archive"))
    sources.append(UrlPrefixSource(UCI_LEGACY_URL, timeout=timeout, progress=progress, suffixes=(".gz",),
                                   label="UCI legacy folder"))
    return sources


# --------------------------------------------------------------------------------------------------
# Entry point


def download_census(
    out_dir: str | os.PathLike[str],
    mirror: str | None = None,
    timeout: float = 30.0,
    sources: Iterable[SourceSpec] | None = None,
    progress: bool = True,
) -> dict[str, Path]:
    """Put ``census-income.data`` and ``census-income.test``, verified, into ``out_dir``.

    ``mirror`` (a folder or URL prefix; ``None`` reads ``REPLICATION_DATA_MIRROR``, ``""`` means
    none) is tried before UCI. ``sources`` replaces that whole default list with an explicit ordered
    one (paths, URLs or :class:`Source` objects; they are closed on return); it cannot be combined
    with ``mirror``. ``timeout`` bounds every network operation, in seconds.

    A file already in ``out_dir`` with the official hash is kept without touching any source; one
    with another hash is fetched again and replaced. On success ``out_dir/SHA256SUMS`` lists both
    files and the verified paths are returned by name; otherwise :class:`DownloadError` is raised.
    """
    if sources is not None and mirror:
        raise ValueError("pass either `mirror` or `sources`, not both")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    if sources is None:
        chosen_mirror = os.environ.get(MIRROR_ENV, "") if mirror is None else mirror
        chosen = default_sources(chosen_mirror.strip(), timeout=timeout, progress=progress)
    else:
        chosen = [make_source(spec, timeout=timeout, progress=progress) for spec in sources]
    try:
        paths = {name: _obtain(name, digest, out, chosen) for name, digest in CENSUS_FILES.items()}
    finally:
        for source in chosen:
            source.close()
    _write_checksums(out / CHECKSUM_FILE, CENSUS_FILES)
    return paths


def _obtain(filename: str, expected: str, out_dir: Path, sources: Sequence[Source]) -> Path:
    """Return ``out_dir/filename`` with the expected content, fetching it from the first source that has it."""
    target = out_dir / filename
    note = ""
    if target.is_file():
        actual = sha256_file(target)
        if actual == expected:
            log.info("%s is present and verified; not downloading it again", target)
            return target
        log.warning("%s has SHA-256 %s, not the official %s; fetching it again", target, actual, expected)
        note = (f"The existing {target} (SHA-256 {actual}) is not the official file and was left in place; "
                "it is replaced once a source works.")
    failures: list[tuple[str, str]] = []
    for source in sources:
        try:
            origin = _fetch_verified(source, filename, expected, target)
        except _SOURCE_ERRORS as exc:
            reason = _reason(exc)
            log.warning("%s: %s failed: %s", filename, source.name, reason)
            failures.append((source.name, reason))
            continue
        log.info("%s <- %s (content SHA-256 verified)", target, origin)
        return target
    raise DownloadError(filename, expected, failures, note)


def _fetch_verified(source: Source, filename: str, expected: str, target: Path) -> str:
    """Fetch into a temporary sibling of ``target``; rename it onto ``target`` only if the hash matches."""
    with atomic_open(target, "wb") as handle:
        sink = _HashingSink(handle)
        origin = source.fetch(filename, sink)
        actual = sink.hexdigest()
        if actual != expected:
            raise SourceUnavailable(f"content SHA-256 mismatch: expected {expected}, got {actual} (from {origin})")
    return origin


def _write_checksums(path: Path, digests: dict[str, str]) -> None:
    """Write ``path`` in ``sha256sum`` format, so ``sha256sum -c`` can re-check the folder."""
    with atomic_open(path, "w", encoding="utf-8") as handle:
        for filename, digest in digests.items():
            handle.write(f"{digest}  {filename}\n")


def _failure_message(filename: str, expected: str, failures: Sequence[tuple[str, str]], note: str) -> str:
    tried = [f"  - {name}: {reason}" for name, reason in failures] or ["  (no sources were configured)"]
    wanted = " and ".join(f"{name}(.gz)" for name in CENSUS_FILES)
    return "\n".join([
        f"could not obtain {filename} (official SHA-256 of its content: {expected}); every source failed:",
        *tried,
        *([note] if note else []),
        f"To fix it, pass --mirror DIR_OR_URL or set {MIRROR_ENV} to a folder (or URL prefix) holding "
        f"{wanted}, or a .zip of them; the official SHA-256 hashes are listed in data/README.md.",
    ])


# --------------------------------------------------------------------------------------------------
# Transfer helpers


class _HashingSink:
    """Passes writes through to a file while hashing them, so the content is not read twice."""

    def __init__(self, handle: IO[bytes]) -> None:
        self._handle = handle
        self._digest = hashlib.sha256()

    def write(self, data: bytes, /) -> int:
        self._digest.update(data)
        return self._handle.write(data)

    def hexdigest(self) -> str:
        return self._digest.hexdigest()


class _MeteredReader:
    """Reads a network response, advancing a progress bar; a body shorter than its Content-Length fails.

    ``http.client`` returns a short body silently when the server closes early, so the check is here.
    """

    def __init__(self, raw: IO[bytes], bar: tqdm, expected: int | None) -> None:
        self._raw, self._bar, self._expected = raw, bar, expected
        self.received = 0

    def read(self, size: int = -1) -> bytes:
        data = self._raw.read(size) if size >= 0 else self._raw.read()
        if data:
            self.received += len(data)
            self._bar.update(len(data))
        elif size != 0 and self._expected is not None and self.received < self._expected:
            raise SourceUnavailable(f"truncated download: received {self.received} of {self._expected} bytes")
        return data


def _download(url: str, sink: Sink, *, timeout: float, progress: bool, gunzip: bool, desc: str) -> None:
    """Stream ``url`` into ``sink`` (gunzipping it on the way if asked); every failure names the URL."""
    request = urllib.request.Request(url, headers={"User-Agent": _USER_AGENT})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            expected = _content_length(response)
            with tqdm(total=expected, desc=desc, unit="B", unit_scale=True, unit_divisor=1024,
                      mininterval=5, disable=None if progress else True, leave=False) as bar:
                _copy(_MeteredReader(response, bar, expected), sink, gunzip=gunzip)
    except urllib.error.HTTPError as exc:
        exc.close()
        kind = NotFoundAt if exc.code in _NOT_FOUND_CODES else SourceUnavailable
        raise kind(f"HTTP Error {exc.code}: {exc.reason} ({url})") from exc
    except _SOURCE_ERRORS as exc:
        raise SourceUnavailable(f"{_reason(exc, timeout)} ({url})") from exc


def _content_length(response: http.client.HTTPResponse) -> int | None:
    value = response.headers.get("Content-Length")
    return int(value) if value and value.strip().isdigit() else None


def _copy(src: IO[bytes], sink: Sink, *, gunzip: bool) -> None:
    """Copy ``src`` to ``sink`` in chunks, decompressing gzip when asked (never holding it in memory)."""
    if gunzip:
        with gzip.GzipFile(fileobj=src, mode="rb") as stream:
            shutil.copyfileobj(stream, sink, _CHUNK)  # type: ignore[misc]
    else:
        shutil.copyfileobj(src, sink, _CHUNK)  # type: ignore[misc]


def _extract_from_zip(archive: Path | IO[bytes], filename: str, sink: Sink, shown: str) -> str:
    """Copy ``filename`` out of a zip into ``sink``; return the member it came from.

    A member counts when its base name is ``filename`` or ``filename.gz`` (in any folder); failing
    that, each nested ``.tar``/``.tar.gz``/``.tgz`` member is searched the same way, which is how
    UCI's current archive is laid out. Raises :class:`NotFoundAt` before writing anything if absent.
    """
    try:
        with zipfile.ZipFile(archive) as zf:
            members = [info for info in zf.infolist() if not info.is_dir()]
            for wanted in (filename, filename + ".gz"):
                for info in members:
                    if _basename(info.filename) == wanted:
                        with zf.open(info) as src:
                            _copy(src, sink, gunzip=wanted.endswith(".gz"))
                        return info.filename
            for info in members:
                if info.filename.lower().endswith(_TAR_SUFFIXES):
                    with zf.open(info) as src:
                        try:
                            inner = _extract_from_tar(src, filename, sink)
                        except NotFoundAt:
                            continue
                    return f"{info.filename}!{inner}"
            listing = ", ".join(info.filename for info in members[:8]) or "nothing"
    except (zipfile.BadZipFile, NotImplementedError, RuntimeError) as exc:  # corrupt, unsupported, encrypted
        raise SourceUnavailable(f"corrupt or unreadable zip {shown}: {exc}") from exc
    raise NotFoundAt(f"{filename} is not in zip {shown} (it holds {listing})")


def _extract_from_tar(src: IO[bytes], filename: str, sink: Sink) -> str:
    """Copy ``filename`` (or ``filename.gz``) out of a tar stream, read once front to back."""
    try:
        with tarfile.open(fileobj=src, mode="r|*") as tar:
            for member in tar:
                base = _basename(member.name)
                if member.isfile() and base in (filename, filename + ".gz"):
                    extracted = tar.extractfile(member)
                    assert extracted is not None  # a regular file always has content
                    _copy(extracted, sink, gunzip=base.endswith(".gz"))
                    return member.name
    except tarfile.TarError as exc:
        raise SourceUnavailable(f"corrupt or unreadable tar: {exc}") from exc
    raise NotFoundAt(f"{filename} is not in the nested tar archive")


# --------------------------------------------------------------------------------------------------
# Small utilities


def _reason(exc: BaseException, timeout: float | None = None) -> str:
    """A one-line, human-readable reason for a source's failure."""
    if isinstance(exc, SourceUnavailable):
        return str(exc)
    if isinstance(exc, urllib.error.HTTPError):
        return f"HTTP Error {exc.code}: {exc.reason}"
    if isinstance(exc, urllib.error.URLError):
        inner = exc.reason
        return _reason(inner, timeout) if isinstance(inner, BaseException) else f"URL error: {inner}"
    if isinstance(exc, TimeoutError):
        return f"timed out after {timeout:g}s" if timeout is not None else "timed out"
    if isinstance(exc, ConnectionError):
        return f"connection failed: {exc.strerror or exc}"
    if isinstance(exc, socket.gaierror):
        return f"host name lookup failed: {exc.strerror or exc}"
    if isinstance(exc, EOFError):
        return f"truncated gzip or archive: {exc}"
    if isinstance(exc, gzip.BadGzipFile):
        return f"corrupt gzip: {exc}"
    if isinstance(exc, zlib.error):
        return f"corrupt compressed data: {exc}"
    if isinstance(exc, http.client.HTTPException):
        return f"HTTP protocol error: {type(exc).__name__} {exc}".rstrip()
    return f"{type(exc).__name__}: {exc}"


def _is_url(text: str) -> bool:
    return "://" in text and bool(urllib.parse.urlsplit(text).scheme)


def _basename(name: str) -> str:
    """Last component of an archive member name, whichever slash the archiver used."""
    return name.replace("\\", "/").rstrip("/").rsplit("/", 1)[-1]
