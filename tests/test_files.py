"""Atomic writes: all or nothing, and file modes that follow the umask."""

from __future__ import annotations

import os
import stat

import pytest

from bertnli_helpers.files import (
    atomic_write,
    atomic_write_json,
    is_temp_path,
    remove_stale_temps,
    temp_path_for,
)


def test_a_failed_write_leaves_the_old_file_and_no_temporary(tmp_path):
    target = tmp_path / "metrics.json"
    atomic_write_json(target, {"a": 1})

    def half_then_fail(handle):
        handle.write(b'{"a": ')
        raise OSError(28, "No space left on device")

    with pytest.raises(OSError, match="no space left on device writing .*metrics.json"):
        atomic_write(target, half_then_fail)
    assert target.read_text() == '{\n  "a": 1\n}\n'
    assert [p.name for p in tmp_path.iterdir()] == ["metrics.json"]


@pytest.mark.parametrize("umask", [0o022, 0o077, 0o002])
def test_mode_follows_the_umask(tmp_path, umask):
    old = os.umask(umask)
    try:
        path = atomic_write_json(tmp_path / "run.json", {})
    finally:
        os.umask(old)
    assert stat.S_IMODE(path.stat().st_mode) == 0o666 & ~umask


def test_stale_temporaries_are_removed_and_nothing_else(tmp_path):
    keep = atomic_write_json(tmp_path / "history.json", [])
    users = [tmp_path / ".notes.tmp", tmp_path / ".draft.tmp.ipynb"]  # hidden, but not ours
    for path in users:
        path.write_text("mine")
    stale = temp_path_for(tmp_path / "checkpoint.pt")
    stale.write_bytes(b"half a checkpoint")
    partial = temp_path_for(tmp_path / "01_x.ipynb", keep_suffix=True)  # papermill's partial
    partial.write_text("{}")
    assert partial.suffix == ".ipynb" and is_temp_path(partial) and is_temp_path(stale)
    assert sorted(remove_stale_temps(tmp_path)) == sorted([stale, partial])
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(
        [keep.name, *(p.name for p in users)])
