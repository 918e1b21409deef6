"""Writing files so that a crash never leaves half of one: the one home of atomic writes.

Every file the package writes (run folders, checkpoints, caches, downloads, course results) goes
through :func:`atomic_write`: the bytes go to a temporary file beside the target, are flushed to
disk, then renamed onto it, so a reader sees the old file or the new one, never a torn one. The
temporary file is created with mode ``0o666`` less the umask, like any ordinary file, so a
teacher's run folder on a shared machine is as readable as the teacher's umask says.

:func:`run_folder_lock` gives a run folder one writer at a time: an ``flock`` on a lock file in
the folder (the kernel releases it when the process dies, so a killed run never leaves a stale
lock), with the holder's pid in it for the refusal message of a second writer.
"""

from __future__ import annotations

import errno
import json
import os
import re
import secrets
import signal
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import IO, Any

from bertnli_helpers.errors import DiskFullError, FolderLockedError

try:
    import fcntl
except ImportError:  # pragma: no cover - Windows: no flock, so run folders are not locked
    fcntl = None  # type: ignore[assignment]

TEMP_SUFFIX = ".tmp"
LOCK_FILE = ".bertnli.lock"
KILL_AT_WRITE_ENV = "BERTNLI_TEST_KILL_AT_WRITE"
"""Test hook, unset in normal use: ``NAME:N`` SIGKILLs the process half-way through its N-th
atomic write of a file called NAME, so the crash tests can stop a real run at an exact write."""
_writes_so_far: Counter[str] = Counter()


_TEMP_NAME = re.compile(rf"^\..+\.\d+\.[0-9a-f]{{8}}{re.escape(TEMP_SUFFIX)}(\.\w+)?$")
"""The shape of :func:`temp_path_for` names (and nothing a user would call a file)."""


def temp_path_for(path: Path, keep_suffix: bool = False) -> Path:
    """A fresh hidden name beside ``path`` (same folder, so the final rename is atomic);
    ``keep_suffix`` ends it in ``path``'s suffix too, for writers that insist on one
    (papermill wants ``.ipynb``)."""
    end = path.suffix if keep_suffix else ""
    return path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}{TEMP_SUFFIX}{end}")


def is_temp_path(path: Path) -> bool:
    """Whether ``path`` is named as :func:`temp_path_for` names a temporary file."""
    return bool(_TEMP_NAME.match(path.name))


def atomic_write(path: str | os.PathLike[str], write: Callable[[IO[bytes]], None]) -> Path:
    """Call ``write(handle)`` on a temporary file, then rename it onto ``path``.

    If ``write`` raises (or the process is interrupted by an exception), the temporary file is
    removed and ``path`` is untouched; the exception propagates.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = temp_path_for(path)
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)  # the umask applies
    except OSError as err:  # name the file the user asked for, not our hidden temporary one
        raise _naming(err, path) from None
    try:
        with os.fdopen(fd, "wb") as handle:
            write(handle)
            _die_here_if_asked(path)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException as err:
        tmp.unlink(missing_ok=True)
        if _disk_full(err):  # torch hides the OSError behind its own RuntimeError
            raise DiskFullError(f"no space left on device writing {path}; free some space (or "
                                "choose a folder on another disk) and run again") from None
        raise
    return path


def _naming(err: OSError, path: Path) -> OSError:
    """The same system error (read-only, permission, full disk) about ``path``: what the user
    chose, where our own temporary or lock file would have been only a puzzle."""
    if _disk_full(err):
        return DiskFullError(f"no space left on device writing {path}; free some space and run "
                             "again")
    return type(err)(err.errno, f"{err.strerror} (cannot write there)", str(path))


def _disk_full(err: BaseException | None) -> bool:
    """Whether ``err``, or an error it was raised while handling, is a full disk or quota."""
    seen = 0
    while err is not None and seen < 8:  # a short chain: torch wraps the OSError once or twice
        if isinstance(err, OSError) and err.errno in (errno.ENOSPC, errno.EDQUOT):
            return True
        err, seen = err.__cause__ or err.__context__, seen + 1
    return False


def atomic_write_text(path: str | os.PathLike[str], text: str) -> Path:
    return atomic_write(path, lambda handle: handle.write(text.encode("utf-8")))


def atomic_write_json(path: str | os.PathLike[str], obj: Any) -> Path:
    # allow_nan=False: NaN and Infinity are not JSON, and a NaN in a report is a bug upstream
    return atomic_write_text(path, json.dumps(obj, indent=2, allow_nan=False) + "\n")


def atomic_torch_save(path: str | os.PathLike[str], obj: Any) -> Path:
    import torch

    return atomic_write(path, lambda handle: torch.save(obj, handle))


def remove_stale_temps(folder: str | os.PathLike[str]) -> list[Path]:
    """Delete temporary files that killed writers left in ``folder`` (call it only while
    holding the folder's lock, so no live writer's file is removed)."""
    folder = Path(folder)
    if not folder.is_dir():
        return []
    stale = [p for p in folder.glob(".*") if is_temp_path(p) and p.is_file()]
    for path in stale:
        path.unlink(missing_ok=True)
    return stale


def _die_here_if_asked(path: Path) -> None:
    """The :data:`KILL_AT_WRITE_ENV` test hook (does nothing when the variable is unset)."""
    spec = os.environ.get(KILL_AT_WRITE_ENV)
    if not spec:
        return
    name, _, count = spec.rpartition(":")
    _writes_so_far[path.name] += 1
    if path.name == name and _writes_so_far[name] == int(count):
        os.kill(os.getpid(), signal.SIGKILL)


_held: dict[Path, int] = {}  # folders this process holds, and how deep (the lock is re-entrant)


@contextmanager
def run_folder_lock(folder: str | os.PathLike[str]) -> Iterator[Path]:
    """Hold ``folder`` as its only writer, or raise :class:`FolderLockedError` at once.

    The folder is created if needed (and removed again if it is still empty when released, so a
    refused command leaves nothing). Once held, temporary files of killed writers are removed.
    Re-entrant within one process, so a command may hold the folder around library calls that
    take the lock themselves; under torchrun only rank 0 (the writer) takes it.
    """
    folder = Path(folder).absolute()
    if folder in _held or fcntl is None or _torchrun_follower():
        _held[folder] = _held.get(folder, 0) + 1
        try:
            yield folder
        finally:
            _release_count(folder)
        return
    created = not folder.exists()
    folder.mkdir(parents=True, exist_ok=True)
    fd = _take_lock(folder / LOCK_FILE, folder)
    _held[folder] = 1
    try:
        remove_stale_temps(folder)
        yield folder
    finally:
        del _held[folder]
        (folder / LOCK_FILE).unlink(missing_ok=True)  # while still held: see _take_lock
        os.close(fd)
        if created:
            _remove_if_empty(folder)


def _take_lock(path: Path, folder: Path) -> int:
    """Lock ``path`` and write our pid in it; a lock file that its holder removed between our
    open and our lock is a stale inode, so open the path again."""
    while True:
        try:
            fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o666)
        except OSError as err:  # a read-only folder: name it, not our lock file
            raise _naming(err, folder) from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.read(fd, 32).decode("ascii", "replace").strip() or "unknown"
            os.close(fd)
            raise FolderLockedError(
                f"{folder} is in use by another bertnli process (pid {holder}); wait for it to "
                "finish, or choose another output folder") from None
        try:
            same = os.path.samestat(os.fstat(fd), os.stat(path))
        except FileNotFoundError:
            same = False
        if same:
            try:
                os.ftruncate(fd, 0)
                os.write(fd, f"{os.getpid()}\n".encode("ascii"))
            except OSError as err:  # a full disk: leave no empty lock file behind
                path.unlink(missing_ok=True)
                os.close(fd)
                if _disk_full(err):
                    raise DiskFullError(f"no space left on device writing {path}; free some "
                                        "space and run again") from None
                raise
            return fd
        os.close(fd)


def _torchrun_follower() -> bool:
    """A process of a torchrun job other than rank 0: it writes nothing, rank 0 holds the lock."""
    return os.environ.get("RANK", "0") != "0"


def _release_count(folder: Path) -> None:
    _held[folder] -= 1
    if not _held[folder]:
        del _held[folder]


def _remove_if_empty(folder: Path) -> None:
    with suppress(OSError):  # not empty: the command wrote something there
        folder.rmdir()
