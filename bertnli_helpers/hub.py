"""Downloadable resources (SNLI, the book's BERT checkpoints): a verified cache, safe unpacking.

The registry has the book's form (name -> URL, SHA-1). ``download()`` streams into a cache folder,
verifies the SHA-1 before the file becomes visible (atomic rename), and re-uses a verified file
without touching the network, so an offline machine works once the files are in place.
``download_extract()`` unpacks an archive only after checking that no member can land outside the
target folder. Every failure says which file, which URL, and how to supply the file by hand.
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
import tarfile
import tempfile
import urllib.error
import urllib.parse
import urllib.request
import zipfile
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from tqdm.auto import tqdm

from .errors import ChecksumError, DownloadError, UnknownResourceError, UnsafeArchiveError

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

_ARCHIVE_SUFFIXES = (".tar.gz", ".tgz", ".tar.bz2", ".tar.xz", ".tar", ".zip")


@dataclass(frozen=True)
class Resource:
    """One downloadable file: where it lives, its SHA-1, and the folder its archive unpacks to."""

    name: str
    url: str
    sha1: str | None
    folder: str | None = None

    @property
    def file_name(self) -> str:
        """The name the file gets in the cache: the last part of the URL's path."""
        return _file_name(self.url)


REGISTRY: dict[str, Resource] = {}


def register(name: str, url: str, sha1: str | None, folder: str | None = None) -> Resource:
    """Add or replace a registry entry (e.g. to point a name at a mirror or a local server)."""
    if sha1 is not None:
        sha1 = sha1.lower()
        if not re.fullmatch(r"[0-9a-f]{40}", sha1):
            raise ValueError(f"sha1 for {name!r} must be 40 hexadecimal digits, got {sha1!r}")
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
            f"unknown resource {name!r}; known resources: {known}. "
            "Pass a URL instead, or add the resource with bertnli_helpers.hub.register()."
        ) from None


def cache_dir() -> Path:
    """The download cache: ``$BERTNLI_CACHE_DIR``, else ``~/.cache/bertnli``; created on demand."""
    env = os.environ.get(CACHE_ENV)
    folder = Path(env).expanduser() if env else Path.home() / ".cache" / "bertnli"
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


def _file_name(url: str) -> str:
    name = urllib.parse.unquote(posixpath.basename(urllib.parse.urlsplit(url).path))
    if name in ("", ".", "..") or "/" in name or "\\" in name or "\0" in name:
        raise ValueError(
            f"cannot tell a file name from the URL {url!r} (its path has no last part)"
        )
    return name


def _resolve(name_or_url: str, sha1: str | None) -> Resource:
    """A registered name, or a URL used as is; an explicit ``sha1`` overrides the registry's."""
    if name_or_url in REGISTRY:
        entry = REGISTRY[name_or_url]
    elif "://" in name_or_url:
        entry = Resource(name=name_or_url, url=name_or_url, sha1=None)
    else:
        entry = resource(name_or_url)  # raises the listing error
    if sha1 is not None:
        entry = Resource(entry.name, entry.url, sha1.lower(), entry.folder)
    return entry


def _by_hand(path: Path, sha1: str | None) -> str:
    check = f"\n(its SHA-1 must be {sha1})" if sha1 else ""
    return (
        f"To supply the file by hand, download it on another machine and place it at\n"
        f"  {path}{check}\n"
        f"or set {CACHE_ENV} to a folder that holds a verified {path.name}."
    )


def _content_length(response: http.client.HTTPResponse) -> int | None:
    value = response.headers.get("Content-Length")
    try:
        length = int(value) if value is not None else None
    except ValueError:
        return None
    return length if length is not None and length >= 0 else None


def download(
    name_or_url: str,
    folder: str | os.PathLike[str] | None = None,
    sha1: str | None = None,
    *,
    progress: bool = True,
) -> Path:
    """Fetch a resource (or a URL) into ``folder`` (default: the cache); return its path.

    A file already there whose SHA-1 matches is returned without any network access. Otherwise the
    file is streamed into a temporary file beside the target, hashed on the fly, checked for
    truncation and SHA-1, and only then renamed onto the target, so the target path only ever holds
    a complete, verified file. A cached file with the wrong SHA-1 is downloaded again; it is left
    untouched if that download fails. Without a known SHA-1 (a bare URL, no ``sha1``) an existing
    file is trusted as is.
    """
    entry = _resolve(name_or_url, sha1)
    url, expected = entry.url, entry.sha1
    target_dir = Path(folder).expanduser() if folder is not None else cache_dir()
    target_dir.mkdir(parents=True, exist_ok=True)
    path = target_dir / _file_name(url)

    stale_note = ""
    if path.is_file():
        if expected is None:
            return path
        actual = sha1_of(path)
        if actual == expected:
            return path
        stale_note = (
            f"\nThe file already at {path} has SHA-1 {actual}, not {expected}; it was kept as is."
        )
        log.warning(
            "cached %s has SHA-1 %s, expected %s: downloading it again from %s",
            path,
            actual,
            expected,
            url,
        )

    def failed(reason: str) -> DownloadError:
        return DownloadError(
            f"could not download {path.name} from {url}: {reason}.\n"
            "This machine may be offline, or the server may be unreachable.\n"
            + _by_hand(path, expected)
            + stale_note
        )

    fd, tmp_name = tempfile.mkstemp(dir=target_dir, prefix=f".{path.name}.", suffix=".part")
    tmp = Path(tmp_name)
    try:
        digest = hashlib.sha1(usedforsecurity=False)
        received, total = 0, None
        with os.fdopen(fd, "wb") as out:
            request = urllib.request.Request(url, headers={"User-Agent": "bertnli-helpers"})
            try:
                with urllib.request.urlopen(request, timeout=TIMEOUT) as response:
                    total = _content_length(response)
                    with tqdm(
                        total=total,
                        unit="B",
                        unit_scale=True,
                        unit_divisor=1024,
                        desc=path.name,
                        disable=not progress,
                        leave=False,
                    ) as bar:
                        while chunk := response.read(CHUNK_SIZE):
                            out.write(chunk)
                            digest.update(chunk)
                            received += len(chunk)
                            bar.update(len(chunk))
            except urllib.error.HTTPError as exc:
                raise failed(f"the server answered HTTP {exc.code} {exc.reason}") from exc
            except urllib.error.URLError as exc:
                raise failed(f"{exc.reason}") from exc
            except http.client.IncompleteRead as exc:
                got = received + len(exc.partial)
                expected_total = got + exc.expected if exc.expected is not None else "?"
                raise failed(f"truncated: got {got} of {expected_total} bytes") from exc
            except TimeoutError as exc:
                raise failed(f"timed out after {TIMEOUT:g} s") from exc
            except (OSError, http.client.HTTPException) as exc:
                raise failed(f"{type(exc).__name__}: {exc}") from exc
            out.flush()
            os.fsync(out.fileno())

        if total is not None and received < total:
            raise failed(f"truncated: got {received} of {total} bytes")
        actual = digest.hexdigest()
        if expected is not None and actual != expected:
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


# --------------------------------------------------------------------------------------------
# extraction


def _archive_stem(name: str) -> str:
    lower = name.lower()
    for suffix in _ARCHIVE_SUFFIXES:
        if lower.endswith(suffix) and len(name) > len(suffix):
            return name[: -len(suffix)]
    raise ValueError(
        f"{name}: not a supported archive (expected one of {', '.join(_ARCHIVE_SUFFIXES)})"
    )


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


def _walk_link(
    member: str, start: tuple[str, ...], target: str, links: set[tuple[str, ...]], archive: Path
) -> None:
    """Walk a link target from ``start`` part by part; it must stay inside and avoid other links."""
    raw = target.replace("\\", "/")
    if raw.startswith("/") or re.match(r"^[A-Za-z]:", raw):
        raise UnsafeArchiveError(
            f"{archive}: link member {member!r} points to the absolute path {target!r}; "
            "refusing to extract the archive"
        )
    parts = list(start)
    for part in raw.split("/"):
        if part in ("", "."):
            continue
        if part == "..":
            if not parts:
                raise UnsafeArchiveError(
                    f"{archive}: link member {member!r} -> {target!r} points outside the target "
                    "folder; refusing to extract the archive"
                )
            parts.pop()
            continue
        parts.append(part)
        if tuple(parts) in links:
            raise UnsafeArchiveError(
                f"{archive}: link member {member!r} -> {target!r} goes through another symlink "
                f"({'/'.join(parts)}); refusing to extract the archive"
            )


def _check_tar(archive: Path, members: Iterable[tarfile.TarInfo]) -> None:
    members = list(members)
    symlinks: set[tuple[str, ...]] = set()
    for m in members:
        if m.issym():
            symlinks.add(_safe_parts(m.name, archive))
    for m in members:
        parts = _safe_parts(m.name, archive)
        for i in range(1, len(parts)):
            if parts[:i] in symlinks:
                raise UnsafeArchiveError(
                    f"{archive}: member {m.name!r} lies under the symlink {'/'.join(parts[:i])!r}; "
                    "refusing to extract the archive"
                )
        if m.issym():
            _walk_link(m.name, parts[:-1], m.linkname, symlinks, archive)
        elif m.islnk():
            _walk_link(m.name, (), m.linkname, symlinks, archive)
        elif not (m.isfile() or m.isdir()):
            raise UnsafeArchiveError(
                f"{archive}: member {m.name!r} is a device or pipe, not a file, folder or link; "
                "refusing to extract the archive"
            )


def _check_zip(archive: Path, infos: Iterable[zipfile.ZipInfo]) -> None:
    for info in infos:
        _safe_parts(info.filename, archive)


def _extract_zip(zf: zipfile.ZipFile, archive: Path, dest: Path) -> None:
    """Write each member at its checked, normalised path (zipfile itself would drop '..' parts)."""
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
    """Unpack a .zip / .tar / .tar.gz / .tgz archive so that ``folder`` holds its members.

    Every member is checked before anything is written: absolute paths, ``..`` that escapes, and
    (tar) links pointing outside or through other links raise UnsafeArchiveError naming the member.
    Members are unpacked into a temporary folder beside ``folder`` that is renamed into place only
    when complete, with a marker file recording the archive's SHA-1; a ``folder`` whose marker
    matches is re-used as is. ``sha1`` is the archive's known SHA-1 (computed when not given).
    """
    archive, folder = Path(archive), Path(folder)
    digest = (sha1 or sha1_of(archive)).lower()
    if folder.is_dir() and _read_marker(folder) == digest:
        return folder
    lower = archive.name.lower()
    is_zip = lower.endswith(".zip")
    _archive_stem(archive.name)  # rejects unsupported formats with a clear message
    folder.parent.mkdir(parents=True, exist_ok=True)

    if is_zip:
        with zipfile.ZipFile(archive) as zf:
            _check_zip(archive, zf.infolist())
    else:
        with tarfile.open(archive, "r:*") as tf:
            _check_tar(archive, tf.getmembers())

    tmp = Path(tempfile.mkdtemp(dir=folder.parent, prefix=f".{folder.name}.", suffix=".partial"))
    try:
        if is_zip:
            with zipfile.ZipFile(archive) as zf:
                _extract_zip(zf, archive, tmp)
        else:
            with tarfile.open(archive, "r:*") as tf:
                try:
                    if hasattr(tarfile, "data_filter"):
                        tf.extractall(tmp, filter="data")
                    else:  # pragma: no cover - Python without the extraction filters
                        tf.extractall(tmp)  # every member was checked above
                except tarfile.FilterError as exc:
                    raise UnsafeArchiveError(
                        f"{archive}: member {exc.tarinfo.name!r} is unsafe ({exc}); "
                        "refusing to extract the archive"
                    ) from exc
        (tmp / MARKER).write_text(digest + "\n", encoding="ascii")
        _install(tmp, folder, digest)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return folder


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


def download_extract(name: str, folder: str | None = None, *, progress: bool = True) -> Path:
    """Download a registered archive, unpack it safely in the cache, and return its data folder.

    The archive ``<cache>/<stem>.zip`` is unpacked into ``<cache>/<stem>/``; the result is the
    resource's ``folder`` inside it (``folder`` overrides the registry's), or ``<cache>/<stem>/``
    itself when neither names one. An unpacked folder whose marker matches the registered SHA-1 is
    re-used without reading the archive or the network.
    """
    entry = _resolve(name, None)
    sub = folder if folder is not None else entry.folder
    dest = cache_dir() / _archive_stem(entry.file_name)
    if entry.sha1 is None or not (dest.is_dir() and _read_marker(dest) == entry.sha1):
        archive = download(name, progress=progress)
        extract(archive, dest, sha1=entry.sha1)
    result = dest / sub if sub else dest
    if not result.is_dir():
        found = sorted(p.name for p in dest.iterdir() if p.name != MARKER)
        raise FileNotFoundError(
            f"{entry.file_name} unpacked into {dest}, but it holds no folder {sub!r} "
            f"(found: {', '.join(found) or 'nothing'}); check the resource's folder name"
        )
    return result
