"""ipywidgets views for the notebooks: pack a pair, explore truncation, play with predictions,
browse errors.

Each view is a small class that holds its input widgets and one ``ipywidgets.HTML`` output. Its
``.widget`` is the box to display (a notebook cell may also end with the view itself: it has
``_repr_mimebundle_``), and ``.html`` is the rendered state as an HTML string, so tests drive a
view by setting widget values (``explorer.max_len.value = 12``) and read what it shows without a
browser or a kernel. A view's display bundle also holds ``text/html`` (``static_html()``: its
settings and what it shows now), which a notebook exported to HTML shows instead of ``VBox(...)``.
"""

from __future__ import annotations

import html
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import ipywidgets as widgets
import numpy as np
import pandas as pd
from torch import nn

from bertnli_helpers.data.dataset import SNLIBERTDataset
from bertnli_helpers.data.snli import LABEL_NAMES
from bertnli_helpers.data.tokenization import TextTokenizer
from bertnli_helpers.data.truncation import (
    SPECIAL_TOKENS_PER_PAIR,
    STRATEGIES,
    TruncationReport,
    truncate_with_report,
    truncation_summary,
)
from bertnli_helpers.model.inference import predict
from bertnli_helpers.study.analysis import PROB_COLUMNS, add_slices

__all__ = ["STYLE", "ErrorBrowser", "PackedPair", "PairPacker", "PredictionPlayground",
           "TruncationExplorer", "tokens_html"]

# The views' CSS, once per output; a page showing ``tokens_html`` outside a view needs it too.
STYLE = """<style>
.bn-tok{display:inline-block;margin:1px;padding:0 3px;border-radius:3px;background:#eef;
font-family:monospace}
.bn-drop{background:#fdd;color:#a00;text-decoration:line-through}
.bn-seg0{background:#e3f0ff}.bn-seg1{background:#fff2d9}
.bn-table td,.bn-table th{padding:1px 5px;text-align:center;font-family:monospace}
.bn-bar{display:inline-block;height:0.9em;background:#4c72b0;vertical-align:middle}
.bn-pair{border-top:1px solid #ddd;padding:4px 0}
</style>"""


class _View:
    """What every view shares: the top-level ``widget``, the ``output`` HTML and display hooks."""

    widget: widgets.Box
    output: widgets.HTML

    @property
    def html(self) -> str:
        """What the view shows now, as HTML."""
        return self.output.value

    def static_html(self) -> str:
        """What the view shows now with its settings, for where no kernel runs it (a notebook
        exported to HTML): front-ends with the widget manager show the live widget instead."""
        return (f'<div class="bn-static">{_controls_html(self.widget)}{self.html}'
                f"<p><i>{_STATIC_NOTE}</i></p></div>")

    def _repr_mimebundle_(self, **kwargs: Any) -> dict:
        live = getattr(self.widget, "_repr_mimebundle_", None)  # None once the widget is closed
        bundle = dict(live(**kwargs) or {}) if callable(live) else {}
        bundle["text/plain"] = f"{type(self).__name__} ({_STATIC_NOTE})"
        bundle["text/html"] = self.static_html()
        return bundle

    def display(self) -> None:
        from IPython.display import display

        display(self)  # the live widget, or its static HTML where no widget manager runs


def _esc(text: object) -> str:
    return html.escape(str(text))


_STATIC_NOTE = "a static snapshot: the widget is interactive when the notebook runs in Jupyter"


def _controls(box: widgets.Box) -> Iterator[widgets.ValueWidget]:
    """The input controls of a view, in display order (its output HTML excluded)."""
    for child in box.children:
        if isinstance(child, widgets.Box):
            yield from _controls(child)
        elif isinstance(child, widgets.ValueWidget) and not isinstance(child, widgets.HTML):
            yield child


def _controls_html(box: widgets.Box) -> str:
    """The settings a view's controls hold now (text boxes, sliders, menus, checkboxes)."""
    settings = [
        f"<b>{_esc(c.description)}</b>: "
        f"{_esc(c.label if isinstance(c, widgets.Dropdown) else c.value)}"
        for c in _controls(box)
    ]
    return f'<p class="bn-settings">{"<br>".join(settings)}</p>' if settings else ""


def tokens_html(tokens: Sequence[str], dropped_at: Sequence[int] = ()) -> str:
    """Tokens as HTML-escaped chips, those at the positions ``dropped_at`` struck through in red:
    how the truncation explorer and notebook 3 show what a strategy drops (style: ``STYLE``)."""
    dropped = set(dropped_at)
    spans = [
        f'<s class="bn-tok bn-drop">{_esc(t)}</s>' if i in dropped
        else f'<span class="bn-tok">{_esc(t)}</span>'
        for i, t in enumerate(tokens)
    ]
    return " ".join(spans) or "<i>(empty)</i>"


def _prob_bars(probs: Sequence[float], highlight: int | None = None) -> str:
    """One row per class: name, a bar as wide as its probability, and the percentage."""
    rows = []
    for k, (name, p) in enumerate(zip(LABEL_NAMES, probs)):
        label = f"<b>{name}</b>" if k == highlight else name
        rows.append(
            f'<tr class="bn-prob" data-class="{name}" data-p="{p:.6f}"><td>{label}</td>'
            f'<td style="width:160px"><span class="bn-bar" style="width:{100 * p:.1f}%"></span>'
            f"</td><td>{100 * p:.1f}%</td></tr>"
        )
    return f'<table class="bn-table">{"".join(rows)}</table>'


def _typed_tokens(tokenizer: TextTokenizer, text: str) -> list[str]:
    """Tokens of typed text, prepared as the tokenizer's vocabulary expects."""
    return tokenizer.tokenize(tokenizer.prepare_typed(text))


# -- pair packing -------------------------------------------------------------------------------
@dataclass(frozen=True)
class PackedPair:
    """A pair as BERT gets it, and how many tokens truncation dropped to fit ``max_len``."""

    tokens: list[str]
    ids: list[int]
    segments: list[int]
    dropped: int


class PairPacker(_View):
    """Type a premise and a hypothesis; see ``<cls> p <sep> h <sep>`` as tokens, ids and
    segment ids (truncated by ``truncation`` to ``max_len`` when too long)."""

    def __init__(self, tokenizer: TextTokenizer, max_len: int = 128,
                 truncation: str = "longest_first", *,
                 premise: str = "A man is playing a guitar on stage.",
                 hypothesis: str = "A person performs music.") -> None:
        self.tokenizer, self.max_len, self.truncation = tokenizer, max_len, truncation
        self.premise = widgets.Text(value=premise, description="premise",
                                    layout=widgets.Layout(width="95%"))
        self.hypothesis = widgets.Text(value=hypothesis, description="hypothesis",
                                       layout=widgets.Layout(width="95%"))
        self.output = widgets.HTML()
        self.widget = widgets.VBox([self.premise, self.hypothesis, self.output])
        for box in (self.premise, self.hypothesis):
            box.observe(lambda _: self.render(), names="value")
        self.render()

    def pack(self) -> PackedPair:
        p = _typed_tokens(self.tokenizer, self.premise.value)
        h = _typed_tokens(self.tokenizer, self.hypothesis.value)
        report = truncate_with_report(self.truncation, p, h, self.max_len - SPECIAL_TOKENS_PER_PAIR)
        tokens, segments = self.tokenizer.pack_tokens(report.premise_kept, report.hypothesis_kept)
        return PackedPair(tokens, list(self.tokenizer[tokens]), segments, report.dropped_count)

    def render(self) -> str:
        packed = self.pack()
        header = "".join(f"<th>{i}</th>" for i in range(len(packed.tokens)))
        cells = {
            "token": [_esc(t) for t in packed.tokens],
            "id": [str(i) for i in packed.ids],
            "segment": [str(s) for s in packed.segments],
        }
        body = "".join(
            f"<tr><th>{name}</th>"
            + "".join(f'<td class="bn-seg{s}">{v}</td>' for v, s in zip(values, packed.segments))
            + "</tr>"
            for name, values in cells.items()
        )
        note = (f"<p>{packed.dropped} token(s) dropped by <code>{self.truncation}</code> "
                f"to fit max_len={self.max_len}</p>" if packed.dropped else "")
        self.output.value = (
            f"{STYLE}<p>{len(packed.tokens)} tokens (max_len={self.max_len})</p>{note}"
            f'<div style="overflow-x:auto"><table class="bn-table"><tr><th>position</th>'
            f"{header}</tr>{body}</table></div>"
        )
        return self.output.value


# -- truncation ---------------------------------------------------------------------------------
class TruncationExplorer(_View):
    """Pick a pair, a strategy and ``max_len``: see which tokens of each side survive (dropped
    ones struck through) and how many pairs of the sample the setting truncates.

    ``premises`` / ``hypotheses`` are texts in the tokenizer's form (a dataset's ``.premises``);
    they are tokenized once, so pass a sample of a few thousand pairs, not a whole train split.
    """

    def __init__(self, tokenizer: TextTokenizer, premises: Sequence[str],
                 hypotheses: Sequence[str], *, max_len: int = 32,
                 strategy: str = "longest_first", pair: int = 0) -> None:
        if len(premises) != len(hypotheses) or not premises:
            raise ValueError("premises and hypotheses must be non-empty and of the same length")
        self.premises, self.hypotheses = list(premises), list(hypotheses)
        self.p_tokens = tokenizer.tokenize_batch(self.premises)
        self.h_tokens = tokenizer.tokenize_batch(self.hypotheses)
        self.p_lens = [len(t) for t in self.p_tokens]
        self.h_lens = [len(t) for t in self.h_tokens]
        longest = max(p + h for p, h in zip(self.p_lens, self.h_lens)) + SPECIAL_TOKENS_PER_PAIR
        self.strategy = widgets.Dropdown(options=list(STRATEGIES), value=strategy,
                                         description="strategy")
        self.max_len = widgets.IntSlider(value=max_len, min=5, max=max(longest, max_len),
                                         description="max_len", continuous_update=False)
        self.pair = widgets.IntSlider(value=pair, min=0, max=len(self.premises) - 1,
                                      description="pair", continuous_update=False)
        self.output = widgets.HTML()
        self.widget = widgets.VBox([
            widgets.HBox([self.strategy, self.max_len, self.pair]), self.output
        ])
        for control in (self.strategy, self.max_len, self.pair):
            control.observe(lambda _: self.render(), names="value")
        self.render()

    def report(self) -> TruncationReport:
        """What the chosen strategy keeps and drops of the chosen pair."""
        i = self.pair.value
        budget = self.max_len.value - SPECIAL_TOKENS_PER_PAIR
        return truncate_with_report(self.strategy.value, self.p_tokens[i], self.h_tokens[i],
                                    budget)

    def summary(self) -> dict[str, float | str]:
        """``truncation_summary`` of the whole sample at the chosen strategy and ``max_len``."""
        return truncation_summary(self.p_lens, self.h_lens, self.max_len.value,
                                  [self.strategy.value])[0]

    def render(self) -> str:
        i, report, summary = self.pair.value, self.report(), self.summary()
        sides = []
        for side, tokens, dropped in (
            ("premise", self.p_tokens[i], report.premise_dropped_at),
            ("hypothesis", self.h_tokens[i], report.hypothesis_dropped_at),
        ):
            sides.append(
                f'<p class="bn-side" data-side="{side}" data-kept="{len(tokens) - len(dropped)}"'
                f' data-dropped="{len(dropped)}"><b>{side}</b>: {len(tokens) - len(dropped)} of '
                f"{len(tokens)} tokens kept, {len(dropped)} dropped<br>"
                f"{tokens_html(tokens, dropped)}</p>"
            )
        truncated = round(summary["truncated_share"] * summary["pairs"])
        self.output.value = (
            f"{STYLE}<p>pair {i}: <i>{_esc(self.premises[i])}</i> / "
            f"<i>{_esc(self.hypotheses[i])}</i></p>{''.join(sides)}"
            f'<p class="bn-summary">{self.strategy.value} at max_len={self.max_len.value} '
            f"truncates {truncated} of {summary['pairs']} pairs "
            f"({summary['truncated_share']:.1%}) and drops "
            f"{summary['premise_tokens_dropped']} premise and "
            f"{summary['hypothesis_tokens_dropped']} hypothesis tokens in all</p>"
        )
        return self.output.value


# -- predictions --------------------------------------------------------------------------------
class PredictionPlayground(_View):
    """Type a premise and a hypothesis, press *predict* (or Enter): see the class probabilities
    of ``model`` and its label. The pair goes through the same ``SNLIBERTDataset`` encoding as
    training, with this ``max_len`` and ``truncation``."""

    def __init__(self, model: nn.Module, tokenizer: TextTokenizer, max_len: int = 128,
                 truncation: str = "longest_first", *,
                 premise: str = "A soccer game with multiple males playing.",
                 hypothesis: str = "Some men are playing a sport.") -> None:
        self.model, self.tokenizer = model, tokenizer
        self.max_len, self.truncation = max_len, truncation
        self.premise = widgets.Text(value=premise, description="premise",
                                    continuous_update=False, layout=widgets.Layout(width="95%"))
        self.hypothesis = widgets.Text(value=hypothesis, description="hypothesis",
                                       continuous_update=False,
                                       layout=widgets.Layout(width="95%"))
        self.button = widgets.Button(description="predict", button_style="primary")
        self.output = widgets.HTML()
        self.probabilities: np.ndarray | None = None
        self.button.on_click(lambda _: self.predict())
        for box in (self.premise, self.hypothesis):
            box.observe(lambda _: self.predict(), names="value")
        self.widget = widgets.VBox([self.premise, self.hypothesis, self.button, self.output])
        self.predict()

    @property
    def label(self) -> str | None:
        """The predicted class name, or None before a prediction."""
        return None if self.probabilities is None else LABEL_NAMES[int(self.probabilities.argmax())]

    def _dataset(self) -> SNLIBERTDataset:
        premise, hypothesis = (self.tokenizer.prepare_typed(text)
                               for text in (self.premise.value, self.hypothesis.value))
        return SNLIBERTDataset(([premise], [hypothesis], [0]), self.tokenizer, self.max_len,
                               self.truncation, cache=False)

    def predict(self) -> np.ndarray | None:
        """Probabilities ``(3,)`` of the typed pair (None while a side is empty); renders them."""
        if not self.premise.value.strip() or not self.hypothesis.value.strip():
            self.probabilities = None
            self.output.value = "<p>Type a premise and a hypothesis.</p>"
            return None
        dataset = self._dataset()
        self.probabilities = predict(self.model, dataset)[0].astype(np.float64)
        best = int(self.probabilities.argmax())
        note = (f"<p>(truncated to max_len={self.max_len})</p>"
                if dataset.encoded.truncated[0] else "")
        self.output.value = (
            f'{STYLE}<p class="bn-label">prediction: <b>{LABEL_NAMES[best]}</b></p>'
            f"{_prob_bars(self.probabilities, best)}{note}"
        )
        return self.probabilities


# -- errors -------------------------------------------------------------------------------------
_ANY = "any"


def _class_options() -> list[tuple[str, int | None]]:
    return [(_ANY, None), *((name, k) for k, name in enumerate(LABEL_NAMES))]


def _slice_options(frame: pd.DataFrame) -> list[tuple[str, tuple[str, Any] | None]]:
    """(label, (column, value)) for every slice a pair can be filtered by."""
    options: list[tuple[str, tuple[str, Any] | None]] = [("all pairs", None)]
    for column, name in (("negation", "negation"), ("truncated", "truncated")):
        options += [(f"{name}: yes", (column, True)), (f"{name}: no", (column, False))]
    for column, name in (("length_bucket", "length"), ("overlap_bucket", "overlap")):
        values = frame[column]
        buckets = values.cat.categories if values.dtype == "category" else sorted(values.unique())
        options += [(f"{name} {b}", (column, b)) for b in buckets]
    return options


class ErrorBrowser(_View):
    """Filter the pairs of a ``predictions_frame`` by gold class, predicted class and slice
    (misclassified ones only by default) and page through them, most confident first."""

    def __init__(self, frame: pd.DataFrame, *, page_size: int = 5) -> None:
        if not {"length_bucket", "overlap_bucket"} <= set(frame.columns):
            frame = add_slices(frame)
        self.frame, self.page_size, self.page = frame, page_size, 0
        self.gold = widgets.Dropdown(options=_class_options(), description="gold")
        self.predicted = widgets.Dropdown(options=_class_options(), description="predicted")
        self.slice = widgets.Dropdown(options=_slice_options(frame), description="slice")
        self.only_errors = widgets.Checkbox(value=True, description="only errors")
        self.previous = widgets.Button(description="◀ previous")
        self.next = widgets.Button(description="next ▶")
        self.output = widgets.HTML()
        for control in (self.gold, self.predicted, self.slice, self.only_errors):
            control.observe(lambda _: self._first_page(), names="value")
        self.previous.on_click(lambda _: self.previous_page())
        self.next.on_click(lambda _: self.next_page())
        self.widget = widgets.VBox([
            widgets.HBox([self.gold, self.predicted]),
            widgets.HBox([self.slice, self.only_errors]),
            widgets.HBox([self.previous, self.next]),
            self.output,
        ])
        self.render()

    def filtered(self) -> pd.DataFrame:
        """The pairs the current filters select, most confident first."""
        keep = pd.Series(True, index=self.frame.index)
        if self.gold.value is not None:
            keep &= self.frame["gold"] == self.gold.value
        if self.predicted.value is not None:
            keep &= self.frame["predicted"] == self.predicted.value
        if self.slice.value is not None:
            column, value = self.slice.value
            keep &= self.frame[column] == value
        if self.only_errors.value:
            keep &= ~self.frame["correct"]
        return self.frame[keep].sort_values("confidence", ascending=False, kind="stable")

    @property
    def pages(self) -> int:
        return max(1, -(-len(self.filtered()) // self.page_size))

    def _first_page(self) -> None:
        self.page = 0
        self.render()

    def next_page(self) -> None:
        self.page = min(self.page + 1, self.pages - 1)
        self.render()

    def previous_page(self) -> None:
        self.page = max(self.page - 1, 0)
        self.render()

    def _pair_html(self, index: Any, row: pd.Series) -> str:
        probs = [float(row[c]) for c in PROB_COLUMNS]
        flags = [name for name in ("negation", "truncated") if bool(row[name])]
        ident = f" {_esc(row['pair_id'])}" if "pair_id" in row else ""
        verdict = "correct" if row["correct"] else "wrong"
        return (
            f'<div class="bn-pair" data-index="{_esc(index)}">'
            f"<p><b>#{_esc(index)}</b>{ident}: gold <b>{row['gold_name']}</b>, predicted "
            f"<b>{row['predicted_name']}</b> ({verdict}, confidence {row['confidence']:.2f})"
            f"{' · ' + ', '.join(flags) if flags else ''}<br>"
            f"P: {_esc(row['premise'])}<br>H: {_esc(row['hypothesis'])}</p>"
            f"{_prob_bars(probs, int(row['predicted']))}</div>"
        )

    def render(self) -> str:
        chosen = self.filtered()
        start = self.page * self.page_size
        shown = chosen.iloc[start : start + self.page_size]
        pairs = "".join(self._pair_html(index, row) for index, row in shown.iterrows())
        where = (f"showing {start + 1}–{start + len(shown)}, page {self.page + 1} of {self.pages}"
                 if len(shown) else "nothing to show")
        self.output.value = (
            f'{STYLE}<p class="bn-count" data-count="{len(chosen)}"><b>{len(chosen)}</b> of '
            f"{len(self.frame)} pairs match ({where})</p>{pairs}"
        )
        return self.output.value
