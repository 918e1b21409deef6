"""Figures checked by content (axes labels, bars, lines, tick labels, image data), not pixels.

The data are real: SNLI dev pairs, predictions of the hypothesis-only baseline fitted on real
train hypotheses, attention maps of a BERT on a real pair, truncation summaries of real lengths.
"""

from __future__ import annotations

import warnings

import matplotlib
import numpy as np
import pytest
import torch

from bertnli_helpers.data.dataset import SNLIBERTDataset
from bertnli_helpers.data.snli import LABEL_NAMES, SampleWarning, read_records
from bertnli_helpers.data.truncation import STRATEGIES, truncation_summary
from bertnli_helpers.model.bert import BERTClassifier, BertConfig
from bertnli_helpers.model.pretrained import load_pretrained
from bertnli_helpers.study import analysis, plots

from conftest import TINY


@pytest.fixture(scope="module", autouse=True)
def agg_backend():
    matplotlib.use("Agg")
    yield
    matplotlib.pyplot.close("all")


@pytest.fixture(autouse=True)
def close_figures():
    yield
    matplotlib.pyplot.close("all")


@pytest.fixture(scope="module")
def model_and_tokenizer():
    bert, tokenizer = load_pretrained("scratch", config=BertConfig(**{**TINY, "num_layers": 2}))
    return BERTClassifier(bert).eval(), tokenizer


@pytest.fixture(scope="module")
def dev_data(snli_dir, model_and_tokenizer):
    pairs = read_records(snli_dir, "dev").sample(400, 0)
    return SNLIBERTDataset(pairs, model_and_tokenizer[1], max_len=32, cache=False)


@pytest.fixture(scope="module")
def frame(snli_dir, dev_data):
    """Real predictions with every class predicted: the hypothesis-only baseline's."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", SampleWarning)
        _, hypotheses, labels = read_records(snli_dir, "train").triple("raw")
    baseline = analysis.fit_hypothesis_baseline(hypotheses, labels)
    probs = baseline.predict_proba(dev_data.hypotheses)
    return analysis.predictions_frame(None, dev_data, probs=probs)


def _bar_heights(ax) -> list[float]:
    return [patch.get_height() for patch in ax.patches]


# -- lengths and training --------------------------------------------------------------------------
def test_length_histograms_count_every_pair_and_draw_max_len(frame):
    fig = plots.length_histograms(frame.premise_len, frame.hypothesis_len, max_len=32, bins=20)
    axes = fig.axes
    assert [ax.get_title() for ax in axes] == ["premise", "hypothesis", "packed pair"]
    assert axes[0].get_xlabel() == "premise length (tokens)"
    for ax in axes:
        assert len(ax.patches) == 20
        assert sum(_bar_heights(ax)) == len(frame)
    (line,) = axes[2].lines
    assert list(line.get_xdata()) == [32, 32]
    longer = ((frame.premise_len + frame.hypothesis_len + 3) > 32).mean()
    assert axes[2].get_legend().get_texts()[0].get_text() == f"max_len=32 ({longer:.1%} longer)"
    # the default packed length is the untruncated one, so its largest bar edge passes max_len
    right_edge = max(p.get_x() + p.get_width() for p in axes[2].patches)
    assert right_edge == pytest.approx((frame.premise_len + frame.hypothesis_len + 3).max())


def test_length_histograms_take_packed_lengths_and_no_line(frame):
    fig = plots.length_histograms(frame.premise_len, frame.hypothesis_len, frame.packed_len)
    assert len(fig.axes[2].lines) == 0
    right_edge = max(p.get_x() + p.get_width() for p in fig.axes[2].patches)
    assert right_edge == pytest.approx(frame.packed_len.max())


def test_training_curves_still_draw_a_history():
    history = [
        {"epoch": 1, "train_loss": 1.0, "train_accuracy": 0.4, "dev_loss": 0.9,
         "dev_accuracy": 0.5},
        {"epoch": 2, "train_loss": 0.8, "train_accuracy": 0.6, "dev_loss": 0.85,
         "dev_accuracy": 0.55},
    ]
    fig = plots.training_curves(history, title="run")
    ax_loss, ax_acc = fig.axes
    assert len(ax_loss.lines) == 2 and len(ax_acc.lines) == 2
    assert list(ax_acc.lines[0].get_ydata()) == [0.5, 0.55]


# -- metrics ------------------------------------------------------------------------------------
def test_confusion_matrix_figure_shows_shares_and_counts(frame):
    counts = analysis.confusion(frame)
    fig = plots.confusion_matrix(counts, title="baseline")
    ax_norm, ax_raw = fig.axes[:2]  # then the two colour bars
    np.testing.assert_allclose(ax_norm.images[0].get_array(),
                               analysis.confusion(frame, normalize=True).to_numpy())
    np.testing.assert_array_equal(ax_raw.images[0].get_array(), counts.to_numpy())
    for ax in (ax_norm, ax_raw):
        assert [t.get_text() for t in ax.get_xticklabels()] == list(LABEL_NAMES)
        assert [t.get_text() for t in ax.get_yticklabels()] == list(LABEL_NAMES)
        assert (ax.get_xlabel(), ax.get_ylabel()) == ("predicted", "gold")
        assert len(ax.texts) == 9
    assert [t.get_text() for t in ax_raw.texts] == [str(v) for v in counts.to_numpy().ravel()]
    assert sum(int(t.get_text()) for t in ax_raw.texts) == len(frame)
    assert fig._suptitle.get_text() == "baseline"


def test_confusion_matrix_accepts_an_array():
    fig = plots.confusion_matrix(np.array([[2, 0, 0], [1, 1, 0], [0, 0, 0]]))
    shares = fig.axes[0].images[0].get_array()
    np.testing.assert_allclose(shares, [[1, 0, 0], [0.5, 0.5, 0], [0, 0, 0]])  # empty row: 0


def test_reliability_diagram_bars_diagonal_ece_and_counts(frame):
    curve = analysis.reliability_curve(frame.confidence, frame.correct)
    filled = curve[curve["count"] > 0]
    fig = plots.reliability_diagram(curve, title="baseline")
    ax, ax_count = fig.axes
    np.testing.assert_allclose(_bar_heights(ax), filled["accuracy"])
    ece = analysis.expected_calibration_error(frame.confidence, frame.correct)
    assert ax.get_title() == f"baseline: ECE = {ece:.3f}"
    diagonal = [line for line in ax.lines if list(line.get_xdata()) == [0, 1]]
    assert len(diagonal) == 1 and list(diagonal[0].get_ydata()) == [0, 1]
    assert _bar_heights(ax_count) == filled["count"].tolist()
    assert [t.get_text() for t in ax_count.texts] == [str(c) for c in filled["count"]]
    assert ax_count.get_xlabel() == "confidence (top probability)"


def test_slice_bars_one_panel_per_slice_with_counts(frame):
    table = analysis.all_slices(frame)
    overall = analysis.accuracy(frame)
    fig = plots.slice_bars(table, overall=overall)
    assert [ax.get_title() for ax in fig.axes] == list(analysis.SLICES.values())
    for ax in fig.axes:
        part = table[table["slice"] == ax.get_title()]
        assert len(ax.patches) == len(part)
        np.testing.assert_allclose(_bar_heights(ax), part["accuracy"].fillna(0))
        assert [t.get_text() for t in ax.texts] == [f"n={c}" for c in part["count"]]
        assert [t.get_text() for t in ax.get_xticklabels()] == part["bucket"].tolist()
        assert ax.lines[0].get_ydata()[0] == pytest.approx(overall)
    # one legend, outside every panel and inside the figure: it hides no bar and no n= label
    legends = [ax.get_legend() for ax in fig.axes if ax.get_legend() is not None]
    assert len(legends) == 1
    assert legends[0].get_texts()[0].get_text() == f"overall {overall:.3f}"
    renderer = fig.canvas.get_renderer()
    box = legends[0].get_window_extent(renderer)
    assert fig.bbox.contains(box.x0, box.y0) and fig.bbox.contains(box.x1, box.y1)
    for ax in fig.axes:
        assert not box.overlaps(ax.get_window_extent(renderer)), ax.get_title()
        for text in ax.texts:
            assert not box.overlaps(text.get_window_extent(renderer))


def test_slice_bars_from_a_single_slice_table(frame):
    table = analysis.slice_accuracy(frame, "negation")
    fig = plots.slice_bars(table)
    (ax,) = fig.axes
    assert ax.get_title() == "negation"
    assert [t.get_text() for t in ax.texts] == [f"n={c}" for c in table["count"]]


# -- attention and strategies --------------------------------------------------------------------
def test_attention_heatmap_shows_the_map_with_tokens_on_both_axes(model_and_tokenizer, dev_data):
    torch.manual_seed(0)
    tokens, maps = analysis.attention_for_pair(model_and_tokenizer[0], dev_data, 3)
    fig = plots.attention_heatmap(tokens, maps, layer=1, head=0)
    ax = fig.axes[0]
    np.testing.assert_array_equal(ax.images[0].get_array(), maps[1, 0])
    assert [t.get_text() for t in ax.get_xticklabels()] == tokens
    assert [t.get_text() for t in ax.get_yticklabels()] == tokens
    assert ax.get_title() == "layer 1, head 0"
    mean = plots.attention_heatmap(tokens, maps).axes[0]
    np.testing.assert_allclose(mean.images[0].get_array(), maps.mean(axis=(0, 1)), rtol=1e-6)
    assert mean.get_title() == "layer mean, head mean"
    single = plots.attention_heatmap(tokens, maps[0, 1], title="one").axes[0]
    np.testing.assert_array_equal(single.images[0].get_array(), maps[0, 1])
    with pytest.raises(ValueError, match="tokens"):
        plots.attention_heatmap(tokens[:-1], maps)


def test_strategy_comparison_one_line_per_strategy(frame):
    rows = [row for max_len in (16, 24, 32, 48)
            for row in truncation_summary(frame.premise_len, frame.hypothesis_len, max_len)]
    fig = plots.strategy_comparison(rows, y="truncated_share")
    ax = fig.axes[0]
    assert len(ax.lines) == len(STRATEGIES)
    assert [t.get_text() for t in ax.get_legend().get_texts()] == list(STRATEGIES)
    for line, name in zip(ax.lines, STRATEGIES):
        expected = [r["truncated_share"] for r in rows if r["strategy"] == name]
        assert list(line.get_xdata()) == [16, 24, 32, 48]
        np.testing.assert_allclose(line.get_ydata(), expected)
    assert (ax.get_xlabel(), ax.get_ylabel()) == ("max_len", "truncated share")


def test_strategy_comparison_sorts_x_and_checks_columns():
    rows = [{"strategy": "ratio", "max_len": 64, "accuracy": 0.7},
            {"strategy": "ratio", "max_len": 32, "accuracy": 0.6},
            {"strategy": "longest_first", "max_len": 32, "accuracy": 0.65}]
    ax = plots.strategy_comparison(rows).axes[0]
    assert list(ax.lines[0].get_xdata()) == [32, 64]
    assert list(ax.lines[0].get_ydata()) == [0.6, 0.7]
    with pytest.raises(ValueError, match="truncated_share"):
        plots.strategy_comparison(rows, y="truncated_share")


def test_comparison_bars_and_learning_rate_schedule():
    from bertnli_helpers.study.plots import comparison_bars, learning_rate_schedule
    from bertnli_helpers.train.config import preset

    fig = comparison_bars({"book recipe": 0.61, "tuned recipe": 0.74}, ylabel="dev accuracy")
    ax = fig.axes[0]
    assert [p.get_height() for p in ax.patches] == [0.61, 0.74]
    assert [t.get_text() for t in ax.get_xticklabels()] == ["book recipe", "tuned recipe"]
    assert ax.get_ylabel() == "dev accuracy"
    fig = learning_rate_schedule(preset("tuned", lr=1e-4, warmup_ratio=0.1), total_steps=100)
    rates = fig.axes[0].lines[0].get_ydata()
    assert len(rates) == 100 and max(rates) == pytest.approx(1e-4, rel=0.02)
    assert int(np.argmax(rates)) in (9, 10) and rates[-1] < 2e-6  # warm-up, then decay to ~0
