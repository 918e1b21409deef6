"""Importing the book's code: the torchvision stand-in must serve d2l and nothing else.

Each check runs in a fresh interpreter, because what matters is the state the import leaves behind
for libraries imported after it (transformers probes for torchvision with ``find_spec``).
"""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from bertnli_helpers.study import book

REPO_ROOT = Path(__file__).resolve().parents[1]


def run_python(code: str, *extra_path: Path) -> str:
    """Run ``code`` in a fresh interpreter (this repo and ``extra_path`` importable); its stdout."""
    path = os.pathsep.join(map(str, [*extra_path, REPO_ROOT, os.environ.get("PYTHONPATH", "")]))
    result = subprocess.run([sys.executable, "-c", textwrap.dedent(code)], capture_output=True,
                            text=True, env={**os.environ, "PYTHONPATH": path}, timeout=240)
    assert result.returncode == 0, result.stderr
    return result.stdout


@pytest.mark.skipif(importlib.util.find_spec("torchvision") is not None,
                    reason="torchvision is installed, so no stand-in is ever made")
def test_the_stand_in_leaves_nothing_behind_for_transformers():
    out = run_python("""
        import importlib.util, sys
        from bertnli_helpers.study.book import import_d2l
        d2l = import_d2l()
        assert hasattr(d2l, "BERTModel") and hasattr(d2l, "get_tokens_and_segments")
        assert "torchvision" not in sys.modules and "torchvision.transforms" not in sys.modules
        assert importlib.util.find_spec("torchvision") is None
        import transformers
        from transformers import BertModel
        assert not transformers.utils.is_torchvision_available()
        print("ok")
    """)
    assert out.strip() == "ok"


def test_a_real_torchvision_is_never_replaced(tmp_path):
    fake_site = tmp_path / "site"
    (fake_site / "torchvision").mkdir(parents=True)
    (fake_site / "torchvision" / "__init__.py").write_text("REAL = True\n")
    (fake_site / "torchvision" / "transforms.py").write_text("")
    out = run_python("""
        import importlib.util
        from bertnli_helpers.study.book import import_d2l
        d2l = import_d2l()
        assert d2l.torchvision.REAL
        print(importlib.util.find_spec("torchvision").origin)
    """, fake_site)
    assert out.strip() == str(fake_site / "torchvision" / "__init__.py")


def test_missing_d2l_is_a_clear_error(monkeypatch):
    monkeypatch.setitem(sys.modules, "d2l.torch", None)  # how Python marks a module unimportable
    with pytest.raises(book.D2LUnavailableError, match=r"pip install --no-deps \"d2l==1.0.3\""):
        book.import_d2l()
    assert "torchvision" not in sys.modules or sys.modules["torchvision"].__spec__.origin
