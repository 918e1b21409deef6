"""The four widgets in JupyterLab, in headless Chromium, used as a student uses them.

A real JupyterLab server (127.0.0.1, a token, a throw-away home, the project's shipped settings)
opens a notebook this test writes (a tiny scratch BERT, real SNLI dev pairs), runs it from the
Run menu, and types, slides, picks and pages through the widgets; every step is checked on the
rendered page. Screenshots of each step land in tests/screenshots/ (git-ignored).
"""

from __future__ import annotations

import contextlib
import re
from pathlib import Path

import nbformat
import pytest

from browser import LabServer, browser_context, screenshot
from conftest import TINY

pytestmark = [pytest.mark.slow, pytest.mark.browser, pytest.mark.timeout(300)]

WAIT_MS = 120_000  # kernel start and the first cell on two busy cores

SETUP = """\
import torch
from bertnli_helpers.study import analysis
from bertnli_helpers.course import widgets
from bertnli_helpers.data.dataset import SNLIBERTDataset
from bertnli_helpers.model.bert import BERTClassifier, BertConfig
from bertnli_helpers.model.pretrained import load_pretrained
from bertnli_helpers.data.snli import read_records

torch.manual_seed(0)
bert, tokenizer = load_pretrained("scratch", config=BertConfig(**{tiny}))
model = BERTClassifier(bert).eval()
dev = read_records({snli!r}, "dev").sample(120, 0)
data = SNLIBERTDataset(dev, tokenizer, max_len=32, cache=False)
premises, hypotheses, _ = dev.triple("raw")"""

VIEWS = [
    "widgets.PairPacker(tokenizer, max_len=32)",
    "widgets.TruncationExplorer(tokenizer, premises, hypotheses, max_len=64)",
    "widgets.PredictionPlayground(model, tokenizer, max_len=32)",
    "widgets.ErrorBrowser(analysis.predictions_frame(model, data, records=dev), page_size=3)",
]


def widget_notebook(path: Path, snli_dir: Path) -> Path:
    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3",
                                 "language": "python"}
    nb.cells = [nbformat.v4.new_code_cell(SETUP.format(tiny=TINY, snli=str(snli_dir)))]
    nb.cells += [nbformat.v4.new_code_cell(view) for view in VIEWS]
    nbformat.write(nb, path)
    return path


@pytest.fixture
def lab(tmp_path):
    """A JupyterLab server over ``tmp_path/root``; stopped at the end whatever happens."""
    root, home = tmp_path / "root", tmp_path / "home"
    root.mkdir()
    home.mkdir()
    server = LabServer(root=root, home=home)
    try:
        yield server.start()
    finally:
        server.stop()
    assert server.process is not None and server.process.poll() is not None


def _cell(page, index: int):
    return page.locator(".jp-Notebook .jp-CodeCell").nth(index)


def _changed(cell, selector: str, before: str, timeout: int = 30_000) -> str:
    """Wait until the text of ``selector`` in ``cell`` differs from ``before`` (the widget
    re-renders its HTML, so the element is looked up afresh); return the new text."""
    cell.page.wait_for_function(
        "([cell, selector, old]) => { const el = cell.querySelector(selector);"
        " return el !== null && el.textContent !== old; }",
        arg=[cell.element_handle(), selector, before], timeout=timeout)
    return cell.locator(selector).text_content() or ""


def _set_slider(cell, description: str, value: int) -> None:
    """Type into a slider's read-out, as a student can instead of dragging."""
    label = cell.page.locator(f"label:text-is('{description}')")
    slider = cell.locator(".widget-slider", has=label)
    readout = slider.locator(".widget-readout")
    readout.click()
    readout.press("Control+A")
    readout.type(str(value))
    readout.press("Enter")


def _run_all(page) -> None:
    page.locator(".lm-MenuBar-itemLabel", has_text=re.compile("^Run$")).click()
    page.locator(".lm-Menu-itemLabel", has_text=re.compile("^Run All Cells$")).click()


def test_a_student_plays_with_every_widget_in_jupyterlab(lab, snli_dir, tmp_path):
    widget_notebook(lab.root / "widgets.ipynb", snli_dir)
    with browser_context(tmp_path / "chromium") as context:
        page = context.new_page()
        page.set_default_timeout(WAIT_MS)
        page.goto(f"{lab.url}/lab/tree/widgets.ipynb?token={lab.token}")
        try:
            _no_prompt_and_kernel_ready(page)
            _run_all(page)
            _pair_packer(page)
            _truncation_explorer(page)
            _prediction_playground(page)
            _error_browser(page)
        finally:  # what the page showed last, also when a step failed
            with contextlib.suppress(Exception):
                screenshot(page, "lab-last-state", full_page=True)
    assert "Traceback" not in lab.log()


def _no_prompt_and_kernel_ready(page) -> None:
    """The shipped settings: the kernel starts by itself, no picker, no news question."""
    page.locator(".jp-Notebook").wait_for()
    page.locator(".jp-StatusBar-Widget", has_text=re.compile(r"Python 3.*\| Idle")).wait_for()
    assert page.locator(".jp-Dialog").count() == 0, "a dialog (kernel picker?) interrupts"
    assert not page.get_by_text(re.compile("official Jupyter news", re.I)).is_visible()


def _pair_packer(page) -> None:
    cell = _cell(page, 1)
    table = cell.locator(".bn-table")
    table.wait_for()
    before = table.text_content() or ""
    inputs = cell.locator(".widget-text input")
    inputs.nth(0).fill("Two dogs run across a snowy field.")
    after_premise = _changed(cell, ".bn-table", before)
    inputs.nth(1).fill("Animals are outside.")
    after = _changed(cell, ".bn-table", after_premise)
    rows = {row.locator("th").first.text_content(): [td.text_content() for td in
                                                    row.locator("td").all()]
            for row in table.locator("tr").all()[1:]}
    assert rows["token"][:3] == ["[CLS]", "two", "dogs"] and "animals" in rows["token"]
    assert rows["token"].count("[SEP]") == 2
    first_sep = rows["token"].index("[SEP]")
    assert rows["segment"] == ["0"] * (first_sep + 1) + ["1"] * (len(rows["token"]) - first_sep - 1)
    assert after != before
    screenshot(cell, "lab-pair-packer")


def _truncation_explorer(page) -> None:
    cell = _cell(page, 2)
    summary = cell.locator(".bn-summary")
    summary.wait_for()
    assert cell.locator("s.bn-drop").count() == 0  # max_len=64 keeps every token
    before = summary.text_content() or ""
    _set_slider(cell, "max_len", 9)
    after_len = _changed(cell, ".bn-summary", before)
    struck = cell.locator("s.bn-drop").count()
    sides = [int(cell.locator(f".bn-side[data-side='{s}']").get_attribute("data-dropped"))
             for s in ("premise", "hypothesis")]
    assert "max_len=9" in after_len and struck == sum(sides) > 0
    assert _truncated(after_len) > _truncated(before)
    cell.locator("select").select_option(label="only_premise")
    after_strategy = _changed(cell, ".bn-summary", after_len)
    assert after_strategy.startswith("only_premise at max_len=9")
    dropped_h = cell.locator(".bn-side[data-side='hypothesis']").get_attribute("data-dropped")
    kept_p = int(cell.locator(".bn-side[data-side='premise']").get_attribute("data-kept"))
    assert dropped_h == "0" or kept_p == 0  # only_premise cuts the premise first
    screenshot(cell, "lab-truncation-explorer")
    _readme_picture(page, cell, after_strategy)


def _readme_picture(page, cell, summary: str) -> None:
    """The README's picture: the explorer at ratio, max_len=18, with the file browser closed."""
    cell.locator("select").select_option(label="ratio")
    summary = _changed(cell, ".bn-summary", summary)
    _set_slider(cell, "max_len", 18)
    assert _changed(cell, ".bn-summary", summary).startswith("ratio at max_len=18")
    page.keyboard.press("Control+b")  # collapse the left sidebar
    page.locator(".jp-FileBrowser").wait_for(state="hidden")
    cell.evaluate("el => el.scrollIntoView({block: 'start'})")
    page.wait_for_timeout(300)  # let the notebook settle after scrolling
    box = cell.bounding_box()  # from the menu bar down to the end of the explorer
    screenshot(page, "widget-in-jupyterlab", docs=True,
               clip={"x": 0, "y": 0, "width": 1280, "height": min(box["y"] + box["height"] + 12,
                                                                   900)})


def _truncated(summary: str) -> int:
    match = re.search(r"truncates (\d+) of", summary)
    assert match, summary
    return int(match.group(1))


def _probabilities(cell) -> list[float]:
    return [float(row.get_attribute("data-p")) for row in cell.locator("tr.bn-prob").all()]


def _same_model_playground(premise: str | None = None, hypothesis: str | None = None):
    """The notebook's playground, built the same way in this process: what the page must show."""
    import torch

    from bertnli_helpers.course import widgets
    from bertnli_helpers.model.bert import BERTClassifier, BertConfig
    from bertnli_helpers.model.pretrained import load_pretrained

    torch.manual_seed(0)
    bert, tokenizer = load_pretrained("scratch", config=BertConfig(**TINY))
    texts = {k: v for k, v in (("premise", premise), ("hypothesis", hypothesis)) if v}
    return widgets.PredictionPlayground(BERTClassifier(bert).eval(), tokenizer, max_len=32,
                                        **texts)


def _shows(page, cell, probabilities) -> None:
    """Wait until the page shows these three probabilities (written with 6 decimals). The tiny
    random model's are all near 1/3, but differ between pairs by more than 5e-6."""
    page.wait_for_function(
        "([el, want]) => { const p = [...el.querySelectorAll('tr.bn-prob')]"
        ".map(r => parseFloat(r.dataset.p));"
        " return p.length === 3 && p.every((v, i) => Math.abs(v - want[i]) < 1.5e-6); }",
        arg=[cell.element_handle(), [float(p) for p in probabilities]], timeout=30_000)


def _prediction_playground(page) -> None:
    cell = _cell(page, 3)
    cell.locator(".bn-label").wait_for()
    _shows(page, cell, _same_model_playground().probabilities)
    premise, hypothesis = "A woman is slicing a tomato in a kitchen.", "Nobody is cooking."
    inputs = cell.locator(".widget-text input")
    inputs.nth(0).fill(premise)
    inputs.nth(0).press("Enter")
    inputs.nth(1).fill(hypothesis)
    cell.get_by_role("button", name="predict").click()
    expected = _same_model_playground(premise, hypothesis)
    _shows(page, cell, expected.probabilities)
    shown = _probabilities(cell)
    assert len(shown) == 3 and all(0.0 <= p <= 1.0 for p in shown)
    assert sum(shown) == pytest.approx(1.0, abs=1e-5)
    assert cell.locator(".bn-label b").text_content() == expected.label
    screenshot(cell, "lab-prediction-playground")


def _error_browser(page) -> None:
    cell = _cell(page, 4)
    count = cell.locator(".bn-count")
    count.wait_for()
    first = count.text_content() or ""
    assert re.search(r"showing 1–3, page 1 of (\d+)", first), first
    shown = [p.get_attribute("data-index") for p in cell.locator(".bn-pair").all()]
    cell.get_by_role("button", name="next ▶").click()
    second = _changed(cell, ".bn-count", first)
    assert "showing 4–6, page 2 of" in second
    assert [p.get_attribute("data-index") for p in cell.locator(".bn-pair").all()] != shown
    cell.get_by_role("button", name="◀ previous").click()
    assert "page 1 of" in _changed(cell, ".bn-count", second)
    screenshot(cell, "lab-error-browser")
