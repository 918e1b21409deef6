"""Progress bars that suit where they are shown: a widget in a notebook, a live bar in a
terminal, and whole lines in a log file (a redirected ``bertnli finetune`` must not fill its log
with one carriage-returned line per step)."""

from __future__ import annotations

import sys
from typing import Any

from tqdm import tqdm as terminal_tqdm
from tqdm.auto import tqdm as auto_tqdm

LOG_LINES = 10  # lines a bar writes into a log over its whole run


class LogTqdm(terminal_tqdm):
    """tqdm for logs: a whole line each tenth of the way (and at the end), never a ``\\r``."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self._last_part = None
        kwargs.setdefault("mininterval", 0)
        super().__init__(*args, **kwargs)

    def display(self, msg: str | None = None, pos: int | None = None) -> bool:
        if msg == "" or self.disable:  # tqdm clears its line with an empty message
            return True
        part = int(LOG_LINES * self.n / self.total) if self.total else self.n
        if part == self._last_part:
            return True
        self._last_part = part
        self.fp.write((msg or str(self)) + "\n")
        self.fp.flush()
        return True


def in_notebook() -> bool:
    """Whether this process is a Jupyter kernel (where tqdm draws a widget)."""
    shell = sys.modules.get("IPython") and sys.modules["IPython"].get_ipython()
    return type(shell).__name__ == "ZMQInteractiveShell"


def progress_bar(*args: Any, **kwargs: Any) -> terminal_tqdm:
    """A tqdm bar of the right kind for where the output goes (same arguments as tqdm)."""
    if in_notebook():
        return auto_tqdm(*args, **kwargs)
    stream = kwargs.get("file") or sys.stderr
    if hasattr(stream, "isatty") and stream.isatty():
        return terminal_tqdm(*args, **kwargs)
    return LogTqdm(*args, **kwargs)
