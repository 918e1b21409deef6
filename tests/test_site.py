"""The course site without a browser: notebook pages that load nothing from a CDN, the index page,
and what the course keeps of its runs. (What a reader sees: tests/test_browser_site.py.)"""

from __future__ import annotations

import hashlib
import re

import nbformat
import pytest
from nbclient import NotebookClient

from bertnli_helpers.cli import build_parser
from bertnli_helpers.course import site
from bertnli_helpers.course.runner import MAIN_RUN_PREFIX, RUNS_DIR, drop_run_weights, folder_size
from bertnli_helpers.model.checkpoints import BEST_WEIGHTS_FILE, CHECKPOINT_FILE

VENDORED_SHA256 = "8f6d2d3f856d8595d1841dec3019d99bbe74d331f2a5178c2a33bfec729e3d6a"
# What the stock nbconvert page fetches: require.js and MathJax from cdnjs, the widget manager
# from unpkg or jsdelivr. (mermaid.js is imported only by a page that holds a diagram.)
CDN = re.compile(r"<script[^>]+src=[\"']https?://|require(\.min)?\.js|mathjax|unpkg\.com|jsdelivr",
                 re.IGNORECASE)

WIDGET_CELLS = [
    "import ipywidgets as w\nfrom tqdm.auto import tqdm",
    "w.IntSlider(value=7, description='max_len')",
    "for _ in tqdm(range(3), desc='kept'): pass",
    "for _ in tqdm(range(3), desc='gone', leave=False): pass",
]


@pytest.fixture(scope="module")
def executed(tmp_path_factory):
    """A small notebook with a slider and two progress bars, run by a real kernel."""
    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3",
                                 "language": "python"}
    nb.cells = [nbformat.v4.new_code_cell(source) for source in WIDGET_CELLS]
    NotebookClient(nb, timeout=120, kernel_name="python3").execute()
    path = tmp_path_factory.mktemp("site") / "01_widgets.ipynb"
    nbformat.write(nb, path)
    return path


def test_the_vendored_widget_manager_is_the_one_its_readme_names():
    data = site.WIDGET_MANAGER_JS.read_bytes()
    assert hashlib.sha256(data).hexdigest() == VENDORED_SHA256
    folder = site.WIDGET_MANAGER_JS.parent
    assert "BSD 3-Clause" in (folder / "LICENSE").read_text()
    assert VENDORED_SHA256 in (folder / "README.md").read_text()
    assert b"</script" not in data  # safe to inline in a page


def test_a_notebook_page_inlines_the_widget_manager_and_loads_nothing_from_a_cdn(executed):
    page = site.notebook_page(executed)
    text = page.read_text()
    assert page == executed.with_suffix(".html")
    manager = site.WIDGET_MANAGER_JS.read_text()
    assert manager in text and "application/vnd.jupyter.widget-state+json" in text
    page_itself = text.replace(manager, "")
    assert not CDN.search(page_itself), CDN.search(page_itself)


def test_hidden_widgets_are_dropped_and_unsaved_ones_keep_their_fallback(executed):
    nb = nbformat.read(executed, as_version=4)
    views = [[o for o in cell.outputs if site.WIDGET_VIEW in o.get("data", {})]
             for cell in nb.cells]
    assert [len(v) for v in views] == [0, 1, 1, 1]
    settled = site.settle_widget_outputs(nbformat.read(executed, as_version=4))
    kept = [[o for o in cell.outputs if site.WIDGET_VIEW in o.get("data", {})]
            for cell in settled.cells]
    assert [len(v) for v in kept] == [0, 1, 1, 0]  # the leave=False bar is gone, as in Lab

    state = nb.metadata.widgets[site.WIDGET_STATE]["state"]
    del state[views[1][0]["data"][site.WIDGET_VIEW]["model_id"]]  # a widget without state
    settled = site.settle_widget_outputs(nb)
    slider = settled.cells[1].outputs[0]["data"]
    assert site.WIDGET_VIEW not in slider and "IntSlider" in slider["text/plain"]


def test_the_index_page_links_every_notebook_with_its_numbers(executed):
    out = executed.parent
    summary = [
        {"notebook": "01_widgets", "seconds": 75.0, "status": "ok",
         "key numbers": {"dev_accuracy": 0.8125, "pairs": 64}, "error": ""},
        {"notebook": "02_missing", "seconds": 3.0, "status": "failed",
         "key numbers": {}, "error": "ValueError: <bad>"},
    ]
    index = site.index_page(out, summary, profile="tiny", model="minilm",
                            format_value=lambda v: f"{v:.3f}" if isinstance(v, float) else str(v))
    text = index.read_text()
    assert index == out / "index.html"
    assert '<a href="01_widgets.html">01_widgets</a>' in text  # the notebook has no heading
    assert "<code>dev_accuracy</code> 0.812" in text and "<code>pairs</code> 64" in text
    assert '<b id="profile">tiny</b>' in text and '<b id="model">minilm</b>' in text
    assert "1 min 18 s" in text  # the total
    assert "ValueError: &lt;bad&gt;" in text and 'href="02_missing.html"' not in text


def test_only_the_main_run_keeps_its_weights(tmp_path):
    runs = tmp_path / RUNS_DIR
    folders = [runs / f"{MAIN_RUN_PREFIX}minilm-tiny-seed0", runs / "compare-book-tiny-0",
               runs / "ex-ratio", tmp_path / "grids" / "pooling-tiny-seed0" / "cls-seed0"]
    for folder in folders:
        folder.mkdir(parents=True)
        for file in (BEST_WEIGHTS_FILE, CHECKPOINT_FILE, "metrics.json"):
            (folder / file).write_bytes(b"x" * 1000)
    before = folder_size(tmp_path)
    removed = drop_run_weights(tmp_path)
    assert len(removed) == 6 and folder_size(tmp_path) == before - 6000
    assert (runs / f"{MAIN_RUN_PREFIX}minilm-tiny-seed0" / BEST_WEIGHTS_FILE).exists()
    assert (runs / f"{MAIN_RUN_PREFIX}minilm-tiny-seed0" / CHECKPOINT_FILE).exists()
    assert (runs / "ex-ratio" / "metrics.json").exists()
    assert drop_run_weights(tmp_path) == []


def test_course_keeps_runs_only_when_asked():
    parser = build_parser()
    assert parser.parse_args(["course"]).keep_runs is False
    assert parser.parse_args(["course", "--keep-runs"]).keep_runs is True
