"""Downloadable resources (SNLI, the book's BERT checkpoints): a verified cache, safe unzipping.

The registry has the book's form (name -> URL, SHA-1); every resource is a zip. ``download()``
streams into a cache folder, verifies the SHA-1 before the file becomes visible (atomic rename),
and re-uses a verified file without touching the network, so an offline machine works once the
files are in place. ``download_extract()`` unzips only after checking that no member can land
outside the target folder. Every failure says which file, which URL, and how to supply the file
by hand.
"""

from __future__ import annotations

import contextlib
import hashlib
import http.client
import logging
import os
import posixpath
import re
import shutil
import tempfile
import urllib.error
import urllib.parse
import urllib.request
import zipfile
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from bertnli_helpers.errors import (
    ChecksumError,
    CorruptArchiveError,
    DownloadError,
    UnknownResourceError,
    UnsafeArchiveError,
)
from bertnli_helpers.progress import progress_bar

__all__ = [
    "CACHE_ENV",
    "CHUNK_SIZE",
    "REGISTRY",
    "TIMEOUT",
    "Resource",
    "cache_dir",
    "download",
    "download_extract",
    "extract",
    "register",
    "resource",
    "sha1_of",
]

log = logging.getLogger(__name__)

CACHE_ENV = "BERTNLI_CACHE_DIR"
"""Environment variable naming the download cache folder (default ``~/.cache/bertnli``)."""

TIMEOUT = 60.0
"""Seconds to wait for the server to connect or send more data before giving up."""

CHUNK_SIZE = 1 << 20
"""Bytes read (and hashed) per step when downloading or hashing: 1 MiB."""

MARKER = ".bertnli-archive.sha1"
"""File written inside an extracted folder, holding the SHA-1 of the archive it came from."""

ARCHIVE_SUFFIX = ".zip"

MAX_UNPACKED_BYTES = 8 << 30
"""The most an archive may unpack to: 8 GiB (SNLI unpacks to ~0.5 GiB, bert.base to ~0.5 GiB)."""

MAX_RATIO = 100
"""The most an archive may unpack to per byte of its own size (SNLI: ~5; a zip bomb: ~1,000)."""


@dataclass(frozen=True)
class Resource:
    """One downloadable file: where it lives, its SHA-1, and the folder its archive unpacks to."""

    name: str
    url: str
    sha1: str
    folder: str | None = None

    @property
    def file_name(self) -> str:
        """The name the file gets in the cache: the last part of the URL's path."""
        return _file_name(self.url)


def _file_name(url: str) -> str:
    name = urllib.parse.unquote(posixpath.basename(urllib.parse.urlsplit(url).path))
    if name in ("", ".", "..") or "/" in name or "\\" in name or "\0" in name:
        raise ValueError(
            f"cannot tell a file name from the URL {url!r} (its path has no last part)"
        )
    return name


REGISTRY: dict[str, Resource] = {}


def register(name: str, url: str, sha1: str, folder: str | None = None) -> Resource:
    """Add or replace a registry entry (e.g. to point a name at a mirror or a local server)."""
    sha1 = sha1.lower()
    if not re.fullmatch(r"[0-9a-f]{40}", sha1):
        raise ValueError(f"sha1 for {name!r} must be 40 hexadecimal digits, got {sha1!r}")
    _file_name(url)  # a URL without a file name is refused here, not at download time
    entry = Resource(name=name, url=url, sha1=sha1, folder=folder)
    REGISTRY[name] = entry
    return entry


register(
    "SNLI",
    "https://nlp.stanford.edu/projects/snli/snli_1.0.zip",
    "9fcde07509c7e87ec61c640c1b2753d9041758e4",
    folder="snli_1.0",
)
register(
    "bert.base",
    "http://d2l-data.s3-accelerate.amazonaws.com/bert.base.torch.zip",
    "225d66f04cae318b841a13d32af3acc165f253ac",
    folder="bert.base.torch",
)
register(
    "bert.small",
    "http://d2l-data.s3-accelerate.amazonaws.com/bert.small.torch.zip",
    "c72329e68a732bef0452e4b96a1c341c8910f81f",
    folder="bert.small.torch",
)


def resource(name: str) -> Resource:
    """Look a resource up by name; an unknown name gets an error listing the known ones."""
    try:
        return REGISTRY[name]
    except KeyError:
        known = ", ".join(sorted(REGISTRY)) or "(none)"
        raise UnknownResourceError(
            f"unknown resource {name!r}; known resources: {known}, or "
            "the URL of a file"
        ) from None


def cache_dir() -> Path:
    """The download cache: ``$BERTNLI_CACHE_DIR``, else ``~/.cache/bertnli``; created on demand."""
    env = os.environ.get(CACHE_ENV)
    folder = Path(env).expanduser() if env else Path.home() / ".cache" / "bertnli"
    if folder.exists() and not folder.is_dir():
        raise DownloadError(f"the download cache {folder} is a file, not a folder: set "
                            f"{CACHE_ENV} to a folder (or unset it for ~/.cache/bertnli)")
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def sha1_of(path: str | os.PathLike[str]) -> str:
    """SHA-1 of a file, read in 1 MiB chunks so large checkpoints never sit whole in memory."""
    digest = hashlib.sha1(usedforsecurity=False)
    with open(path, "rb") as f:
        while chunk := f.read(CHUNK_SIZE):
            digest.update(chunk)
    return digest.hexdigest()


# --------------------------------------------------------------------------------------------
# download


def _by_hand(path: Path, sha1: str) -> str:
    return (
        f"To supply the file by hand, download it on another machine and place it at\n"
        f"  {path}\n(its SHA-1 must be {sha1})\n"
        f"or set {CACHE_ENV} to a folder that holds a verified {path.name}."
    )


class _TransferFailed(Exception):
    """Why streaming a URL failed, in the words the DownloadError message uses."""


def download(name: str, *, progress: bool = True) -> Path:
    """Fetch a registered resource into the cache; return its path.

    A file already there whose SHA-1 matches is returned without any network access. Otherwise the
    file is streamed into a temporary file beside the target, hashed on the fly, checked for
    truncation and SHA-1, and only then renamed onto the target, so the target path only ever holds
    a complete, verified file. A cached file with the wrong SHA-1 is downloaded again; it is left
    untouched if that download fails.
    """
    entry = resource(name)
    url, expected = entry.url, entry.sha1
    target_dir = cache_dir()
    path = target_dir / entry.file_name

    stale_note = ""
    if path.is_file():
        actual = sha1_of(path)
        if actual == expected:
            return path
        stale_note = (
            f"\nThe file already at {path} has SHA-1 {actual}, not {expected}; it was kept as is."
        )
        log.warning("cached %s has SHA-1 %s, expected %s: downloading it again from %s",
                    path, actual, expected, url)

    fd, tmp_name = tempfile.mkstemp(dir=target_dir, prefix=f".{path.name}.", suffix=".part")
    tmp = Path(tmp_name)
    try:
        with os.fdopen(fd, "wb") as out:
            try:
                actual = _stream(url, out, path.name, progress)
            except _TransferFailed as exc:
                raise DownloadError(
                    f"could not download {path.name} from {url}: {exc}.\n"
                    "This machine may be offline, or the server may be unreachable.\n"
                    + _by_hand(path, expected)
                    + stale_note
                ) from exc.__cause__
            out.flush()
            os.fsync(out.fileno())

        if actual != expected:
            raise ChecksumError(
                f"SHA-1 mismatch for {path.name} downloaded from {url}:\n"
                f"  expected {expected}\n"
                f"  actual   {actual}\n"
                "The download was discarded (the file may be corrupt, or the server may have sent "
                "something else, such as an error page).\n" + _by_hand(path, expected) + stale_note
            )
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
        raise
    return path


def _stream(url: str, out: BinaryIO, label: str, progress: bool) -> str:
    """Copy the body at ``url`` into ``out`` with a progress bar; return its SHA-1.

    Every way the transfer can fail (HTTP error, no connection, time-out, fewer bytes than the
    server announced) becomes _TransferFailed saying which, chained to the original exception.
    """
    digest = hashlib.sha1(usedforsecurity=False)
    received, total = 0, None
    request = urllib.request.Request(url, headers={"User-Agent": "bertnli-helpers"})
    try:
        with urllib.request.urlopen(request, timeout=TIMEOUT) as response:
            total = _content_length(response)
            with progress_bar(total=total, unit="B", unit_scale=True, unit_divisor=1024, desc=label,
                      disable=not progress, leave=False) as bar:
                while chunk := response.read(CHUNK_SIZE):
                    out.write(chunk)
                    digest.update(chunk)
                    received += len(chunk)
                    bar.update(len(chunk))
    except http.client.IncompleteRead as exc:
        got = received + len(exc.partial)
        announced = got + exc.expected if exc.expected is not None else "?"
        raise _TransferFailed(f"truncated: got {got} of {announced} bytes") from exc
    except (OSError, http.client.HTTPException) as exc:
        raise _TransferFailed(_failure_reason(exc)) from exc
    if total is not None and received < total:
        raise _TransferFailed(f"truncated: got {received} of {total} bytes")
    return digest.hexdigest()


def _failure_reason(exc: OSError | http.client.HTTPException) -> str:
    if isinstance(exc, urllib.error.HTTPError):
        return f"the server answered HTTP {exc.code} {exc.reason}"
    if isinstance(exc, urllib.error.URLError):
        return str(exc.reason)
    if isinstance(exc, TimeoutError):
        return f"timed out after {TIMEOUT:g} s"
    return f"{type(exc).__name__}: {exc}"


def _content_length(response: http.client.HTTPResponse) -> int | None:
    """The size the server announces, to detect a cut transfer; None when it gives no usable one."""
    value = response.headers.get("Content-Length", "").strip()
    return int(value) if value.isascii() and value.isdigit() else None


# --------------------------------------------------------------------------------------------
# extraction


def _archive_stem(name: str) -> str:
    if name.lower().endswith(ARCHIVE_SUFFIX) and len(name) > len(ARCHIVE_SUFFIX):
        return name[: -len(ARCHIVE_SUFFIX)]
    raise ValueError(f"{name}: not a supported archive (expected a {ARCHIVE_SUFFIX} file)")


def _safe_parts(member: str, archive: Path) -> tuple[str, ...]:
    """The member path as normalised parts, or UnsafeArchiveError if it could leave the target."""
    raw = member.replace("\\", "/")
    if raw.startswith("/") or re.match(r"^[A-Za-z]:", raw) or "\0" in raw:
        raise UnsafeArchiveError(
            f"{archive}: member {member!r} has an absolute path; refusing to extract the archive"
        )
    parts: list[str] = []
    for part in raw.split("/"):
        if part in ("", "."):
            continue
        if part == "..":
            if not parts:
                raise UnsafeArchiveError(
                    f"{archive}: member {member!r} escapes the target folder through '..'; "
                    "refusing to extract the archive"
                )
            parts.pop()
        else:
            parts.append(part)
    return tuple(parts)


def _extract_zip(zf: zipfile.ZipFile, archive: Path, dest: Path) -> None:
    """Write each member as a plain file or folder at its checked, normalised path.

    zipfile itself would silently drop '..' parts; a member stored as a symbolic link is written
    as a plain file holding the link's text, so no link is ever created or followed.
    """
    for info in zf.infolist():
        parts = _safe_parts(info.filename, archive)
        if not parts:
            continue
        path = dest.joinpath(*parts)
        if info.is_dir():
            path.mkdir(parents=True, exist_ok=True)
            continue
        path.parent.mkdir(parents=True, exist_ok=True)
        with zf.open(info) as src, open(path, "wb") as out:
            shutil.copyfileobj(src, out, CHUNK_SIZE)


def _read_marker(folder: Path) -> str | None:
    try:
        return (folder / MARKER).read_text(encoding="ascii").strip()
    except (OSError, UnicodeDecodeError):
        return None


def extract(
    archive: str | os.PathLike[str],
    folder: str | os.PathLike[str],
    *,
    sha1: str | None = None,
) -> Path:
    """Unzip ``archive`` so that ``folder`` holds its members.

    Every member is checked before anything is written: an absolute path or a ``..`` that escapes
    raises UnsafeArchiveError naming the member. Members are unpacked into a temporary folder beside
    ``folder`` that is renamed into place only when complete, with a marker file recording the
    archive's SHA-1; a ``folder`` whose marker matches is re-used as is. ``sha1`` is the archive's
    known SHA-1 (computed when not given).
    """
    archive, folder = Path(archive), Path(folder)
    digest = (sha1 or sha1_of(archive)).lower()
    if folder.is_dir() and _read_marker(folder) == digest:
        return folder
    _archive_stem(archive.name)  # rejects other formats with a clear message
    folder.parent.mkdir(parents=True, exist_ok=True)
    try:
        with zipfile.ZipFile(archive) as zf:
            for info in zf.infolist():
                _safe_parts(info.filename, archive)
            _check_unpacked_size(archive, sum(info.file_size for info in zf.infolist()))
    except _UNREADABLE as exc:
        raise _corrupt(archive, exc) from None

    tmp = Path(tempfile.mkdtemp(dir=folder.parent, prefix=f".{folder.name}.", suffix=".partial"))
    try:
        with zipfile.ZipFile(archive) as zf:
            _extract_zip(zf, archive, tmp)
        (tmp / MARKER).write_text(digest + "\n", encoding="ascii")
        _install(tmp, folder, digest)
    except _UNREADABLE as exc:
        shutil.rmtree(tmp, ignore_errors=True)
        raise _corrupt(archive, exc) from None
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return folder


def _check_unpacked_size(archive: Path, total: int) -> None:
    """Refuse an archive that would unpack to more than :data:`MAX_UNPACKED_BYTES`, or to more
    than :data:`MAX_RATIO` times its own size (a zip bomb), before anything is written. The sizes
    are the archive's own: zipfile stops each member at its stated size and checks its CRC."""
    size = max(archive.stat().st_size, 1)
    mib = 1 << 20
    if total > MAX_UNPACKED_BYTES:
        raise UnsafeArchiveError(
            f"{archive} would unpack to {total / mib:.1f} MiB, over the limit of "
            f"{MAX_UNPACKED_BYTES / mib:.1f} MiB; refusing to extract the archive")
    if total > MAX_RATIO * size:
        raise UnsafeArchiveError(
            f"{archive} would unpack to {total / mib:.1f} MiB, {total / size:,.0f} times its size "
            f"(the limit is {MAX_RATIO}); refusing to extract what looks like a zip bomb")


_UNREADABLE = (zipfile.BadZipFile, EOFError, zlib.error)


def _corrupt(archive: Path, exc: BaseException) -> CorruptArchiveError:
    return CorruptArchiveError(f"{archive} cannot be read to the end ({exc}): it is truncated "
                               "or corrupt; delete it and download it again")


def _install(tmp: Path, folder: Path, digest: str) -> None:
    """Rename the finished temporary folder onto ``folder``; a stale one is moved aside, removed."""
    old: Path | None = None
    if folder.exists() or folder.is_symlink():
        if folder.is_dir() and _read_marker(folder) == digest:  # another process finished first
            shutil.rmtree(tmp, ignore_errors=True)
            return
        old = folder.with_name(f".{folder.name}.{os.getpid()}.{id(tmp):x}.old")
        os.rename(folder, old)
    try:
        os.rename(tmp, folder)
    except OSError:
        if folder.is_dir() and _read_marker(folder) == digest:  # lost a race to an equal copy
            shutil.rmtree(tmp, ignore_errors=True)
        else:
            if old is not None and not folder.exists():
                os.rename(old, folder)  # put the previous folder back as it was
                old = None
            raise
    if old is not None:
        if old.is_dir() and not old.is_symlink():
            shutil.rmtree(old, ignore_errors=True)
        else:
            old.unlink(missing_ok=True)


def download_extract(name: str, *, progress: bool = True) -> Path:
    """Download a registered zip, unpack it safely in the cache, and return its data folder.

    The archive ``<cache>/<stem>.zip`` is unpacked into ``<cache>/<stem>/``; the result is the
    resource's ``folder`` inside it, or ``<cache>/<stem>/`` itself when it names none. An unpacked
    folder whose marker matches the registered SHA-1 is re-used without reading the archive or the
    network.
    """
    entry = resource(name)
    sub = entry.folder
    dest = cache_dir() / _archive_stem(entry.file_name)
    if not (dest.is_dir() and _read_marker(dest) == entry.sha1):
        extract(download(name, progress=progress), dest, sha1=entry.sha1)
    result = dest / sub if sub else dest
    if not result.is_dir():
        found = sorted(p.name for p in dest.iterdir() if p.name != MARKER)
        raise FileNotFoundError(
            f"{entry.file_name} unpacked into {dest}, but it holds no folder {sub!r} "
            f"(found: {', '.join(found) or 'nothing'}); check the resource's folder name"
        )
    return result
