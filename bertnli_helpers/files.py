"""Writing files so that a crash never leaves half of one: the one home of atomic writes.

Every file the package writes (run folders, checkpoints, caches, downloads, course results) goes
through :func:`atomic_write`: the bytes go to a temporary file beside the target, are flushed to
disk, then renamed onto it, so a reader sees the old file or the new one, never a torn one. The
temporary file is created with mode ``0o666`` less the umask, like any ordinary file, so a
teacher's run folder on a shared machine is as readable as the teacher's umask says.
"""

from __future__ import annotations

import json
import os
import secrets
from collections.abc import Callable
from pathlib import Path
from typing import IO, Any

TEMP_SUFFIX = ".tmp"


def temp_path_for(path: Path) -> Path:
    """A fresh hidden name beside ``path`` (same folder, so the final rename is atomic)."""
    return path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}{TEMP_SUFFIX}")


def atomic_write(path: str | os.PathLike[str], write: Callable[[IO[bytes]], None]) -> Path:
    """Call ``write(handle)`` on a temporary file, then rename it onto ``path``.

    If ``write`` raises (or the process is interrupted by an exception), the temporary file is
    removed and ``path`` is untouched; the exception propagates.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = temp_path_for(path)
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)  # the umask applies
    try:
        with os.fdopen(fd, "wb") as handle:
            write(handle)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return path


def atomic_write_text(path: str | os.PathLike[str], text: str) -> Path:
    return atomic_write(path, lambda handle: handle.write(text.encode("utf-8")))


def atomic_write_json(path: str | os.PathLike[str], obj: Any) -> Path:
    return atomic_write_text(path, json.dumps(obj, indent=2) + "\n")


def atomic_torch_save(path: str | os.PathLike[str], obj: Any) -> Path:
    import torch

    return atomic_write(path, lambda handle: torch.save(obj, handle))


def remove_stale_temps(folder: str | os.PathLike[str]) -> list[Path]:
    """Delete temporary files that killed writers left in ``folder`` (call it only while
    holding the folder's lock, so no live writer's file is removed)."""
    folder = Path(folder)
    if not folder.is_dir():
        return []
    stale = [p for p in folder.glob(f".*{TEMP_SUFFIX}") if p.is_file()]
    for path in stale:
        path.unlink(missing_ok=True)
    return stale
