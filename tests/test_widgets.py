"""Widgets driven programmatically, as a student's clicks would, on real SNLI pairs; what they show
is read back from their HTML output (no browser, no kernel)."""

from __future__ import annotations

import html
import re
import warnings

import numpy as np
import pytest
import torch

from bertnli_helpers.course import widgets
from bertnli_helpers.data.dataset import SNLIBERTDataset
from bertnli_helpers.data.snli import LABEL_NAMES, SampleWarning, read_records
from bertnli_helpers.data.tokenization import book_tokenizer
from bertnli_helpers.data.truncation import STRATEGIES, truncate_with_report, truncation_summary
from bertnli_helpers.model.bert import BERTClassifier, BertConfig
from bertnli_helpers.model.inference import predict
from bertnli_helpers.model.pretrained import load_pretrained
from bertnli_helpers.study import analysis

from conftest import TINY


@pytest.fixture(scope="module")
def model_and_tokenizer():
    torch.manual_seed(0)
    bert, tokenizer = load_pretrained("scratch", config=BertConfig(**TINY))
    return BERTClassifier(bert).eval(), tokenizer


@pytest.fixture(scope="module")
def tokenizer(model_and_tokenizer):
    return model_and_tokenizer[1]


@pytest.fixture(scope="module")
def dev_pairs(snli_dir):
    return read_records(snli_dir, "dev").sample(200, 0)


@pytest.fixture(scope="module")
def frame(snli_dir, dev_pairs, tokenizer):
    """Real predictions of the hypothesis-only baseline, fitted on the real train hypotheses."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", SampleWarning)
        _, hypotheses, labels = read_records(snli_dir, "train").triple("raw")
    baseline = analysis.fit_hypothesis_baseline(hypotheses, labels)
    data = SNLIBERTDataset(dev_pairs, tokenizer, max_len=24, cache=False)
    probs = baseline.predict_proba(data.hypotheses)
    return analysis.predictions_frame(None, data, records=dev_pairs, probs=probs)


def _ints(pattern: str, text: str) -> list[int]:
    return [int(v) for v in re.findall(pattern, text)]


def test_views_are_displayable(tokenizer):
    packer = widgets.PairPacker(tokenizer, max_len=32)
    bundle = packer._repr_mimebundle_()
    assert "application/vnd.jupyter.widget-view+json" in bundle
    assert packer.output in packer.widget.children


def _static(view: widgets._View) -> str:
    """The text/html an exported notebook shows for ``view`` (it has no widget state)."""
    bundle = view._repr_mimebundle_()
    assert "application/vnd.jupyter.widget-view+json" in bundle  # live front-ends: the widget
    assert "VBox" not in bundle["text/plain"]
    assert "interactive when the notebook runs" in bundle["text/html"]
    return bundle["text/html"]


def test_every_view_has_a_static_html_fallback_of_its_current_state(
    model_and_tokenizer, dev_pairs, frame
):
    model, tokenizer = model_and_tokenizer
    record = dev_pairs.records[3]
    packer = widgets.PairPacker(tokenizer, max_len=32)
    packer.premise.value, packer.hypothesis.value = record.premise, record.hypothesis
    static = _static(packer)
    assert packer.html in static  # the tokens, ids and segments it shows now
    for token in packer.pack().tokens:
        assert f">{token}</td>" in static
    assert f"<b>premise</b>: {html.escape(record.premise)}" in static

    premises, hypotheses, _ = dev_pairs.sample(20, 2).triple("raw")
    explorer = widgets.TruncationExplorer(tokenizer, premises, hypotheses, max_len=64)
    i = int(np.argmax([p + h for p, h in zip(explorer.p_lens, explorer.h_lens)]))
    explorer.pair.value, explorer.max_len.value, explorer.strategy.value = i, 9, "head_tail"
    static = _static(explorer)
    assert "<b>strategy</b>: head_tail" in static and "<b>max_len</b>: 9" in static
    assert explorer.html in static and html.escape(premises[i]) in static
    struck = re.findall(r'<s class="bn-tok bn-drop">([^<]*)</s>', static)
    assert len(struck) == explorer.p_lens[i] + explorer.h_lens[i] - 6 > 0

    playground = widgets.PredictionPlayground(model, tokenizer, max_len=32)
    playground.premise.value = record.premise
    static = _static(playground)
    assert f"prediction: <b>{playground.label}</b>" in static and playground.html in static

    browser = widgets.ErrorBrowser(frame, page_size=3)
    browser.gold.value = 1
    static = _static(browser)
    assert "<b>gold</b>: contradiction" in static and "<b>only errors</b>: True" in static
    assert _ints(r'class="bn-pair" data-index="(\d+)"', static) == _shown(browser)
    browser.next_page()  # the snapshot follows the view
    assert _ints(r'class="bn-pair" data-index="(\d+)"', _static(browser)) == _shown(browser)


# -- PairPacker ---------------------------------------------------------------------------------
def test_pair_packer_matches_the_dataset_encoding(tokenizer, dev_pairs):
    record = dev_pairs.records[0]
    packer = widgets.PairPacker(tokenizer, max_len=64)
    packer.premise.value, packer.hypothesis.value = record.premise, record.hypothesis
    data = SNLIBERTDataset(([record.premise], [record.hypothesis], [0]), tokenizer, 64, cache=False)
    packed = packer.pack()
    assert packed.tokens == data.tokens_of(0)
    assert packed.ids == data.encoded.ids.tolist()
    assert packed.segments == data.segments_of(0)
    assert packed.dropped == 0
    html = packer.html
    assert f"{len(packed.tokens)} tokens (max_len=64)" in html
    cells = re.findall(r'<td class="bn-seg(\d)">([^<]*)</td>', html)
    n = len(packed.tokens)
    assert [v for _, v in cells[:n]] == packed.tokens  # token row (no HTML-special characters)
    assert [int(v) for _, v in cells[n : 2 * n]] == packed.ids
    assert [int(s) for s, _ in cells[:n]] == packed.segments


def test_pair_packer_truncates_like_the_dataset(tokenizer, dev_pairs):
    record = max(dev_pairs.records, key=lambda r: len(r.premise))
    packer = widgets.PairPacker(tokenizer, max_len=12, truncation="ratio")
    packer.premise.value, packer.hypothesis.value = record.premise, record.hypothesis
    data = SNLIBERTDataset(([record.premise], [record.hypothesis], [0]), tokenizer, 12, "ratio",
                           cache=False)
    packed = packer.pack()
    assert packed.tokens == data.tokens_of(0) and len(packed.tokens) == 12
    full = len(tokenizer.tokenize(record.premise)) + len(tokenizer.tokenize(record.hypothesis))
    assert packed.dropped == full - 9
    assert f"{packed.dropped} token(s) dropped by <code>ratio</code>" in packer.html


def test_pair_packer_escapes_and_uses_the_book_vocabulary():
    tokenizer = book_tokenizer(["<unk>", "<pad>", "<cls>", "<sep>", "<mask>", "a", "dog", "."])
    packer = widgets.PairPacker(tokenizer, max_len=16, premise="A dog.", hypothesis="<b>dog")
    packed = packer.pack()
    # typed text is spaced like SNLI's parse text, which the book's vocabulary was built from
    assert packed.tokens == ["<cls>", "a", "dog", ".", "<sep>", "<", "b", ">", "dog", "<sep>"]
    assert packed.ids == [2, 5, 6, 7, 3, 0, 0, 0, 6, 3]  # unknown words -> <unk>
    assert "&lt;cls&gt;" in packer.html and "<cls>" not in packer.html
    assert "<td class=\"bn-seg1\">&lt;</td>" in packer.html


# -- TruncationExplorer ---------------------------------------------------------------------------
@pytest.fixture
def explorer(tokenizer, dev_pairs):
    premises, hypotheses, _ = dev_pairs.sample(50, 1).triple("raw")
    return widgets.TruncationExplorer(tokenizer, premises, hypotheses, max_len=64)


def _side_counts(html: str) -> dict[str, tuple[int, int]]:
    found = re.findall(r'data-side="(\w+)" data-kept="(\d+)" data-dropped="(\d+)"', html)
    return {side: (int(kept), int(dropped)) for side, kept, dropped in found}


def test_explorer_shows_dropped_tokens_when_max_len_shrinks(explorer):
    i = int(np.argmax([p + h for p, h in zip(explorer.p_lens, explorer.h_lens)]))
    explorer.pair.value = i
    assert "<s " not in explorer.html  # the longest pair of the sample fits in 64
    assert _side_counts(explorer.html) == {
        "premise": (explorer.p_lens[i], 0), "hypothesis": (explorer.h_lens[i], 0)
    }
    explorer.strategy.value = "ratio"
    explorer.max_len.value = 12
    report = truncate_with_report("ratio", explorer.p_tokens[i], explorer.h_tokens[i], 9)
    html = explorer.html
    struck = re.findall(r'<s class="bn-tok bn-drop">([^<]*)</s>', html)
    assert struck == [*report.premise_dropped, *report.hypothesis_dropped]
    assert len(struck) == explorer.p_lens[i] + explorer.h_lens[i] - 9
    assert _side_counts(html) == {
        "premise": (len(report.premise_kept), len(report.premise_dropped)),
        "hypothesis": (len(report.hypothesis_kept), len(report.hypothesis_dropped)),
    }


def test_explorer_follows_every_strategy_and_reports_the_sample(explorer):
    i = int(np.argmax(explorer.p_lens))
    explorer.pair.value = i
    explorer.max_len.value = 10
    for name in STRATEGIES:
        explorer.strategy.value = name
        report = truncate_with_report(name, explorer.p_tokens[i], explorer.h_tokens[i], 7)
        counts = _side_counts(explorer.html)
        assert counts["premise"][1] == len(report.premise_dropped), name
        assert counts["hypothesis"][1] == len(report.hypothesis_dropped), name
        summary = truncation_summary(explorer.p_lens, explorer.h_lens, 10, [name])[0]
        truncated = round(summary["truncated_share"] * 50)
        assert f"{name} at max_len=10 truncates {truncated} of 50 pairs" in explorer.html
    explorer.pair.value = 0
    assert explorer.premises[0].split()[0] in explorer.html


# -- PredictionPlayground -------------------------------------------------------------------------
def test_playground_probabilities_sum_to_one_and_match_predict(model_and_tokenizer, dev_pairs):
    model, tokenizer = model_and_tokenizer
    playground = widgets.PredictionPlayground(model, tokenizer, max_len=32)
    record = dev_pairs.records[5]
    playground.premise.value = record.premise
    playground.hypothesis.value = record.hypothesis  # each change predicts again
    probs = playground.probabilities
    assert probs.shape == (3,) and probs.sum() == pytest.approx(1.0, abs=1e-6)
    data = SNLIBERTDataset(([record.premise], [record.hypothesis], [0]), tokenizer, 32,
                           cache=False)
    np.testing.assert_allclose(probs, predict(model, data)[0], atol=1e-6)
    shown = dict(re.findall(r'data-class="(\w+)" data-p="([\d.]+)"', playground.html))
    assert list(shown) == list(LABEL_NAMES)
    assert sum(float(p) for p in shown.values()) == pytest.approx(1.0, abs=1e-4)
    assert playground.label == LABEL_NAMES[int(probs.argmax())]
    assert f"prediction: <b>{playground.label}</b>" in playground.html


def test_playground_button_empty_input_and_truncation_note(model_and_tokenizer, dev_pairs):
    model, tokenizer = model_and_tokenizer
    playground = widgets.PredictionPlayground(model, tokenizer, max_len=10)
    playground.hypothesis.value = ""
    assert playground.probabilities is None and playground.label is None
    assert "Type a premise and a hypothesis" in playground.html
    record = max(dev_pairs.records, key=lambda r: len(r.premise))
    playground.premise.value, playground.hypothesis.value = record.premise, record.hypothesis
    assert "(truncated to max_len=10)" in playground.html
    playground.output.value = ""
    playground.button.click()
    assert "prediction:" in playground.html


# -- ErrorBrowser -------------------------------------------------------------------------------
def _count(browser: widgets.ErrorBrowser) -> int:
    return _ints(r'class="bn-count" data-count="(\d+)"', browser.html)[0]


def _shown(browser: widgets.ErrorBrowser) -> list[int]:
    return _ints(r'class="bn-pair" data-index="(\d+)"', browser.html)


def test_error_browser_counts_match_pandas_filters(frame):
    browser = widgets.ErrorBrowser(frame, page_size=4)
    errors = frame[~frame.correct]
    assert _count(browser) == len(errors)
    browser.gold.value, browser.predicted.value = 1, 2  # contradictions taken for neutral
    expected = frame[(frame.gold == 1) & (frame.predicted == 2)]
    assert len(expected) > 0
    assert _count(browser) == len(expected) == len(browser.filtered())
    browser.slice.value = ("truncated", True)
    assert _count(browser) == len(expected[expected.truncated])
    browser.gold.value = browser.predicted.value = None
    browser.slice.value = ("negation", True)
    assert _count(browser) == len(errors[errors.negation])
    browser.only_errors.value = False
    assert _count(browser) == frame.negation.sum()
    sliced = analysis.add_slices(frame)
    for label, key in browser.slice.options[1:]:
        browser.slice.value = key
        column, value = key
        assert _count(browser) == (sliced[column] == value).sum(), label


def test_error_browser_pages_most_confident_first(frame):
    browser = widgets.ErrorBrowser(frame, page_size=4)
    order = frame[~frame.correct].sort_values("confidence", ascending=False, kind="stable")
    assert _shown(browser) == order.index[:4].tolist()
    assert "showing 1–4, page 1 of" in browser.html
    browser.next.click()
    assert _shown(browser) == order.index[4:8].tolist()
    for _ in range(browser.pages + 2):
        browser.next_page()
    last = order.index[(browser.pages - 1) * 4 :].tolist()
    assert _shown(browser) == last
    browser.previous.click()
    assert browser.page == browser.pages - 2
    browser.gold.value = 0  # a new filter starts again at page one
    assert browser.page == 0
    row = frame.loc[_shown(browser)[0]]
    assert row.gold_name == "entailment" and not row.correct
    assert f"gold <b>{row.gold_name}</b>, predicted <b>{row.predicted_name}</b>" in browser.html
    assert row.pair_id in browser.html


def test_error_browser_shows_nothing_gracefully(frame):
    browser = widgets.ErrorBrowser(frame.assign(correct=True))
    assert _count(browser) == 0 and _shown(browser) == []
    assert "nothing to show" in browser.html


def test_tokens_html_strikes_through_the_dropped_tokens_and_escapes():
    shown = widgets.tokens_html(["a", "<b>", "dog", "&"], dropped_at=[1, 3])
    assert re.findall(r'<s class="bn-tok bn-drop">([^<]*)</s>', shown) == ["&lt;b&gt;", "&amp;"]
    assert re.findall(r'<span class="bn-tok">([^<]*)</span>', shown) == ["a", "dog"]
    assert widgets.tokens_html([]) == "<i>(empty)</i>"
    assert ".bn-drop{" in widgets.STYLE
