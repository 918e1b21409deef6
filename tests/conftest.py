"""Shared fixtures: the real SNLI folder, a local HTTP server, the book's d2l code as oracle.

Test modules also import the tiny model size from here (``from conftest import TINY``).
"""

from __future__ import annotations

import functools
import http.server
import os
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from bertnli_helpers.data.snli import read_snli
from bertnli_helpers.study.book import import_d2l

REPO_ROOT = Path(__file__).resolve().parents[1]
SHARED_SNLI = REPO_ROOT.parent / "shared" / "data" / "snli"

TINY = dict(vocab_size=30522, hidden_size=32, num_layers=1, num_heads=2, ffn_size=64, max_len=64,
            flavour="hf")
"""Keyword arguments of ``BertConfig`` for a scratch BERT small enough to train in seconds."""

DEV_PAIRS = 3_000
"""Real dev pairs in ``dev_book`` / ``dev_raw``: enough for parity, quick to tokenize."""


@pytest.fixture(scope="session")
def snli_dir() -> Path:
    """The real SNLI data folder used by tests: $BERTNLI_TEST_DATA, else ../shared/data/snli."""
    folder = Path(os.environ.get("BERTNLI_TEST_DATA", SHARED_SNLI))
    if not (folder / "snli_1.0_dev.jsonl.gz").exists():
        pytest.fail(
            f"real SNLI data not found in {folder}: set BERTNLI_TEST_DATA to a folder holding "
            "snli_1.0_{train,dev,test}.jsonl.gz (the shared copy lives in ../shared/data/snli)"
        )
    return folder


@pytest.fixture(scope="session")
def dev_book(snli_dir: Path) -> tuple[list[str], list[str], list[int]]:
    """The first ``DEV_PAIRS`` dev pairs, as the book reads them (binary-parse text)."""
    premises, hypotheses, labels = read_snli(snli_dir, "dev", text="book")
    return premises[:DEV_PAIRS], hypotheses[:DEV_PAIRS], labels[:DEV_PAIRS]


@pytest.fixture(scope="session")
def dev_raw(snli_dir: Path) -> tuple[list[str], list[str], list[int]]:
    """The first ``DEV_PAIRS`` dev pairs as the annotators wrote them (for WordPiece)."""
    premises, hypotheses, labels = read_snli(snli_dir, "dev", text="raw")
    return premises[:DEV_PAIRS], hypotheses[:DEV_PAIRS], labels[:DEV_PAIRS]


@pytest.fixture(autouse=True)
def _isolated_cache(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch):
    """Every test gets its own download cache so no test sees another's files."""
    monkeypatch.setenv("BERTNLI_CACHE_DIR", str(tmp_path_factory.mktemp("cache")))


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: object) -> None:
        pass


class LocalServer:
    """A static file server on 127.0.0.1 over a temporary folder."""

    def __init__(self, root: Path) -> None:
        self.root = root
        handler = functools.partial(_QuietHandler, directory=str(root))
        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self.thread = threading.Thread(
            target=self.httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self.thread.start()

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.httpd.server_address[1]}/"

    def url(self, name: str) -> str:
        return self.base_url + name

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def http_server(tmp_path: Path) -> Iterator[LocalServer]:
    """Serve files that the test writes into ``server.root`` from http://127.0.0.1:<port>/."""
    root = tmp_path / "served"
    root.mkdir()
    server = LocalServer(root)
    yield server
    server.close()


@pytest.fixture(scope="session")
def d2l():
    """The book's own PyTorch code (d2l 1.0.3), the executable reference for parity tests."""
    return import_d2l()


@pytest.fixture(scope="session")
def tiny_course(snli_dir: Path, tmp_path_factory: pytest.TempPathFactory):
    """The whole course run once in the tiny profile (real SNLI, a real kernel): its output folder
    and summary, shared by the notebook tests and the browser tests of its pages."""
    from bertnli_helpers.course.runner import run_course

    out = tmp_path_factory.mktemp("course")
    summary = run_course(profile="tiny", output=out, data_dir=str(snli_dir), device="cpu")
    return out, summary
