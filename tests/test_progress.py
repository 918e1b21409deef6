"""Progress output: whole lines in a log, a live bar only where a terminal shows it."""

from __future__ import annotations

import io

from tqdm import tqdm as terminal_tqdm

from bertnli_helpers.progress import LogTqdm, progress_bar


def test_a_log_gets_about_ten_whole_lines_and_no_carriage_returns():
    log = io.StringIO()
    bar = progress_bar(total=500, desc="fine-tuning", file=log)
    assert isinstance(bar, LogTqdm)
    for _ in range(500):
        bar.update(1)
    bar.close()
    text = log.getvalue()
    assert "\r" not in text
    lines = [line for line in text.splitlines() if line]
    assert 10 <= len(lines) <= 12 and lines[-1].startswith("fine-tuning: 100%")


def test_a_terminal_gets_the_live_bar():
    class Terminal(io.StringIO):
        def isatty(self) -> bool:
            return True

    bar = progress_bar(total=3, file=Terminal())
    assert type(bar) is terminal_tqdm
    bar.close()
