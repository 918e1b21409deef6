"""The matplotlib figures the notebooks show. Every function returns its figure (never calls
``plt.show``), so a notebook displays it and a test reads its axes, bars, lines and images."""

from __future__ import annotations

from collections.abc import Sequence

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from matplotlib.axes import Axes
from matplotlib.figure import Figure

from bertnli_helpers.data.snli import LABEL_NAMES
from bertnli_helpers.data.truncation import SPECIAL_TOKENS_PER_PAIR


def training_curves(history: Sequence[dict[str, float]], title: str | None = None) -> Figure:
    """Loss (left) and accuracy (right) per epoch, train and dev, from ``fine_tune``'s history."""
    epochs = [r for r in history if "train_loss" in r]
    evals = [r for r in history if "dev_accuracy" in r]
    fig, (ax_loss, ax_acc) = plt.subplots(1, 2, figsize=(9, 3.2))
    ax_loss.plot([r["epoch"] for r in epochs], [r["train_loss"] for r in epochs], "o-",
                 label="train loss")
    if evals:
        ax_loss.plot([r["epoch"] for r in evals], [r["dev_loss"] for r in evals], "s--",
                     label="dev loss")
        ax_acc.plot([r["epoch"] for r in evals], [r["dev_accuracy"] for r in evals], "s--",
                    label="dev accuracy")
    ax_acc.plot([r["epoch"] for r in epochs], [r["train_accuracy"] for r in epochs], "o-",
                label="train accuracy")
    ax_loss.set(xlabel="epoch", ylabel="cross-entropy", title="loss")
    ax_acc.set(xlabel="epoch", ylabel="accuracy", title="accuracy")
    return _finish(fig, (ax_loss, ax_acc), title)


def _finish(fig: Figure, axes: Sequence[Axes], title: str | None) -> Figure:
    """Grid and legend on each panel, the title above them, the layout tightened."""
    for ax in axes:
        ax.grid(alpha=0.3)
        ax.legend()
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    return fig


# -- data ---------------------------------------------------------------------------------------
def pretraining_curves(history: Sequence[dict[str, float]], title: str | None = None) -> Figure:
    """The two pretraining losses (left) and accuracies (right) against the step, from
    ``pretraining.pretrain``'s history."""
    steps = [r["step"] for r in history]
    fig, (ax_loss, ax_acc) = plt.subplots(1, 2, figsize=(9, 3.2))
    for task in ("mlm", "nsp"):
        ax_loss.plot(steps, [r[f"{task}_loss"] for r in history], label=f"{task.upper()} loss")
        ax_acc.plot(steps, [r[f"{task}_accuracy"] for r in history],
                    label=f"{task.upper()} accuracy")
    ax_loss.set(xlabel="step", ylabel="cross-entropy", title="loss (training batches)")
    ax_acc.set(xlabel="step", ylabel="accuracy", title="accuracy (training batches)", ylim=(0, 1))
    return _finish(fig, (ax_loss, ax_acc), title)


def length_histograms(
    premise: Sequence[int] | np.ndarray,
    hypothesis: Sequence[int] | np.ndarray,
    packed: Sequence[int] | np.ndarray | None = None,
    *,
    max_len: int | None = None,
    bins: int = 30,
    title: str | None = None,
) -> Figure:
    """Token lengths of premises, hypotheses and packed pairs, side by side.

    ``packed`` defaults to the untruncated packed length (premise + hypothesis + the special
    tokens), the number that ``max_len`` is compared with; ``max_len`` draws that limit on the
    packed panel and says how many pairs exceed it.
    """
    premise, hypothesis = np.asarray(premise), np.asarray(hypothesis)
    if packed is None:
        packed = premise + hypothesis + SPECIAL_TOKENS_PER_PAIR
    packed = np.asarray(packed)
    fig, axes = plt.subplots(1, 3, figsize=(11, 3.2))
    panels = (("premise", premise, "C0"), ("hypothesis", hypothesis, "C1"),
              ("packed pair", packed, "C2"))
    for ax, (name, values, colour) in zip(axes, panels):
        ax.hist(values, bins=bins, color=colour, alpha=0.8)
        ax.set(xlabel=f"{name} length (tokens)", ylabel="pairs", title=name)
        ax.grid(alpha=0.3)
    if max_len is not None:
        longer = float(np.mean(packed > max_len)) if len(packed) else 0.0
        axes[2].axvline(max_len, color="black", linestyle="--",
                         label=f"max_len={max_len} ({longer:.1%} longer)")
        axes[2].legend()
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    return fig


# -- metrics ------------------------------------------------------------------------------------
def _matrix_panel(ax: Axes, values: np.ndarray, names: Sequence[str], text: Sequence[str],
                  title: str, vmax: float) -> None:
    image = ax.imshow(values, cmap="Blues", vmin=0, vmax=vmax)
    ticks = np.arange(len(names))
    ax.set_xticks(ticks, labels=list(names))
    ax.set_yticks(ticks, labels=list(names))
    ax.set(xlabel="predicted", ylabel="gold", title=title)
    for k, label in enumerate(text):
        r, c = divmod(k, values.shape[1])
        dark = values[r, c] > 0.6 * vmax
        ax.text(c, r, label, ha="center", va="center", color="white" if dark else "black")
    ax.figure.colorbar(image, ax=ax, fraction=0.046, pad=0.04)


def confusion_matrix(counts: pd.DataFrame | np.ndarray, class_names: Sequence[str] | None = None,
                     *, title: str | None = None) -> Figure:
    """Left: each gold row as shares (the diagonal is recall); right: raw counts.

    ``counts`` is ``analysis.confusion(frame)`` (gold rows, predicted columns) or a square array.
    """
    if isinstance(counts, pd.DataFrame):
        names = list(class_names or counts.columns)
        raw = counts.to_numpy()
    else:
        raw = np.asarray(counts)
        names = list(class_names or LABEL_NAMES[: raw.shape[0]])
    totals = raw.sum(axis=1, keepdims=True)
    shares = np.divide(raw, totals, out=np.zeros(raw.shape, dtype=np.float64), where=totals > 0)
    fig, (ax_norm, ax_raw) = plt.subplots(1, 2, figsize=(10, 4))
    _matrix_panel(ax_norm, shares, names, [f"{v:.2f}" for v in shares.ravel()],
                  "normalised by gold class", 1.0)
    _matrix_panel(ax_raw, raw, names, [str(int(v)) for v in raw.ravel()], "counts",
                  max(1, int(raw.max()) if raw.size else 1))
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    return fig


def reliability_diagram(curve: pd.DataFrame, *, title: str | None = None) -> Figure:
    """Accuracy against confidence per bin (``analysis.reliability_curve``), the diagonal of a
    calibrated model, the ECE in the title, and below it how many pairs each bin holds."""
    from bertnli_helpers.study.analysis import ece_from_curve

    filled = curve[curve["count"] > 0]
    width = curve["upper"] - curve["lower"]
    centres = (curve["lower"] + curve["upper"]) / 2
    fig, (ax, ax_count) = plt.subplots(
        2, 1, figsize=(4.8, 5.6), sharex=True, gridspec_kw={"height_ratios": [3, 1]}
    )
    ax.bar(centres[filled.index], filled["accuracy"], width=width[filled.index], edgecolor="black",
           color="C0", alpha=0.8, label="accuracy")
    ax.plot(filled["mean_confidence"], filled["accuracy"], "o", color="C3",
            label="(mean confidence, accuracy)")
    ax.plot([0, 1], [0, 1], "--", color="grey", label="calibrated")
    ax.set(ylabel="accuracy", xlim=(0, 1), ylim=(0, 1))
    ax.set_title(f"{title + ': ' if title else ''}ECE = {ece_from_curve(curve):.3f}")
    ax.legend(loc="upper left", fontsize="small")
    bars = ax_count.bar(centres[filled.index], filled["count"], width=width[filled.index],
                        color="grey", edgecolor="black")
    ax_count.bar_label(bars, labels=[str(int(c)) for c in filled["count"]], fontsize="small")
    ax_count.set(xlabel="confidence (top probability)", ylabel="pairs")
    ax_count.margins(y=0.25)
    fig.tight_layout()
    return fig


def _bars_with_counts(ax: Axes, table: pd.DataFrame, overall: float | None) -> None:
    labels = [str(b) for b in table["bucket"]]
    heights = table["accuracy"].fillna(0).to_numpy()
    bars = ax.bar(labels, heights, color="C0", edgecolor="black")
    ax.bar_label(bars, labels=[f"n={int(c)}" for c in table["count"]], fontsize="small",
                 padding=2, bbox={"boxstyle": "round,pad=0.15", "fc": "white", "ec": "none",
                                  "alpha": 0.8})
    if overall is not None:
        ax.axhline(overall, color="C3", linestyle="--", label=f"overall {overall:.3f}")
    ax.set(ylim=(0, 1.15), ylabel="accuracy")
    ax.tick_params(axis="x", labelrotation=30)


def slice_bars(table: pd.DataFrame, *, overall: float | None = None,
               title: str | None = None) -> Figure:
    """Accuracy per bucket, each bar annotated with its pair count ``n=...``.

    ``table`` is ``analysis.all_slices`` (one panel per slice) or ``analysis.slice_accuracy``
    (one panel; its index holds the buckets). ``overall`` draws the accuracy on all pairs.
    """
    if "slice" not in table.columns:
        table = table.reset_index(names="bucket").assign(slice=table.index.name or "")
    groups = list(dict.fromkeys(table["slice"]))
    legend_room = 1.3 if overall is not None else 0.0
    fig, axes = plt.subplots(1, len(groups), figsize=(3.2 * len(groups) + 0.5 + legend_room, 3.6),
                             squeeze=False, sharey=True)
    for ax, name in zip(axes[0], groups):
        _bars_with_counts(ax, table[table["slice"] == name], overall)
        ax.set_title(str(name))
    if overall is not None:  # one legend, right of the last panel: inside, it hid bars and labels
        axes[0][-1].legend(loc="upper left", bbox_to_anchor=(1.02, 1.0), borderaxespad=0,
                           fontsize="small")
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    return fig


# -- attention and strategies ---------------------------------------------------------------------
def attention_heatmap(tokens: Sequence[str], maps: np.ndarray, *, layer: int | None = None,
                      head: int | None = None, title: str | None = None) -> Figure:
    """One attention map with the tokens on both axes: rows are queries, columns keys.

    ``maps`` is ``(layers, heads, seq, seq)`` (from ``analysis.attention_for_pair``) or one
    ``(seq, seq)`` map; ``layer`` / ``head`` None averages over layers / heads.
    """
    maps = np.asarray(maps)
    if maps.ndim == 4:
        by_layer = maps.mean(axis=0) if layer is None else maps[layer]
        grid = by_layer.mean(axis=0) if head is None else by_layer[head]
        where = (f"layer {'mean' if layer is None else layer}, "
                 f"head {'mean' if head is None else head}")
    elif maps.ndim == 2:
        grid, where = maps, "attention"
    else:
        raise ValueError(f"maps must be (layers, heads, seq, seq) or (seq, seq), not {maps.shape}")
    if grid.shape != (len(tokens), len(tokens)):
        raise ValueError(f"{len(tokens)} tokens for a map of shape {grid.shape}")
    size = max(4.0, 0.28 * len(tokens) + 1.5)
    fig, ax = plt.subplots(figsize=(size + 1, size))
    image = ax.imshow(grid, cmap="viridis", vmin=0)
    ticks = np.arange(len(tokens))
    ax.set_xticks(ticks, labels=list(tokens), rotation=90)
    ax.set_yticks(ticks, labels=list(tokens))
    ax.set(xlabel="key (attended to)", ylabel="query", title=title or where)
    fig.colorbar(image, ax=ax, fraction=0.046, pad=0.04)
    fig.tight_layout()
    return fig


def strategy_comparison(rows: Sequence[dict] | pd.DataFrame, *, y: str = "accuracy",
                        x: str = "max_len", by: str = "strategy",
                        title: str | None = None) -> Figure:
    """One line per truncation strategy: ``y`` (accuracy, truncated_share, ...) against ``x``.

    ``rows`` are dicts (``truncation.truncation_summary`` rows, or your own accuracy rows) or a
    DataFrame with the columns ``x``, ``y`` and ``by``.
    """
    table = pd.DataFrame(rows)
    missing = [c for c in (x, y, by) if c not in table.columns]
    if missing:
        raise ValueError(f"rows lack the column(s) {missing}; they have {list(table.columns)}")
    fig, ax = plt.subplots(figsize=(6, 3.8))
    for name, group in table.groupby(by, sort=False):
        group = group.sort_values(x)
        ax.plot(group[x], group[y], "o-", label=str(name))
    ax.set(xlabel=x, ylabel=y.replace("_", " "), title=title or f"{y.replace('_', ' ')} by {x}")
    ax.grid(alpha=0.3)
    ax.legend(title=by)
    fig.tight_layout()
    return fig


def comparison_bars(values: pd.Series | dict[str, float], *, ylabel: str,
                    title: str | None = None) -> Figure:
    """One bar per run (the index), its value written on top: for side-by-side comparisons."""
    series = pd.Series(values, dtype=float)
    fig, ax = plt.subplots(figsize=(1.2 + 1.3 * len(series), 3.2))
    bars = ax.bar([str(name) for name in series.index], series.to_numpy(), color="tab:blue")
    for bar, value in zip(bars, series.to_numpy()):
        ax.annotate(f"{value:.3g}", (bar.get_x() + bar.get_width() / 2, bar.get_height()),
                    ha="center", va="bottom", fontsize=9)
    ax.set(ylabel=ylabel, title=title or "")
    ax.margins(y=0.15)
    ax.grid(axis="y", alpha=0.3)
    fig.tight_layout()
    return fig


def learning_rate_schedule(config, total_steps: int) -> Figure:
    """The learning rate at every step of a run with ``config`` (warm-up, then decay)."""
    import torch

    from bertnli_helpers.train.optim import make_scheduler

    optimizer = torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=config.lr)
    scheduler = make_scheduler(optimizer, config, total_steps)
    rates = []
    for _ in range(total_steps):
        rates.append(scheduler.get_last_lr()[0])
        optimizer.step()
        scheduler.step()
    fig, ax = plt.subplots(figsize=(6, 2.8))
    ax.plot(range(total_steps), rates)
    ax.set(xlabel="optimizer step", ylabel="learning rate",
           title=f"{config.schedule} schedule, warm-up {config.warmup_ratio:.0%} of the steps")
    ax.grid(alpha=0.3)
    fig.tight_layout()
    return fig


def grid_accuracy(cells: pd.DataFrame, *, x: str, by: str | None = None, y: str = "accuracy",
                  chance: float | None = None, title: str | None = None) -> Figure:
    """A grid's accuracy against one setting (``x``, as categories), one line per value of
    ``by``: the mean over seeds with its spread (one standard deviation), each seed a dot, and
    the majority-class rate as a dotted line. ``cells``: one row per run (grids'
    ``GridResult.cell_table``)."""
    groups = cells.groupby(by, sort=False) if by else [("all runs", cells)]
    categories = list(dict.fromkeys(cells[x]))
    fig, ax = plt.subplots(figsize=(max(5.0, 1.4 * len(categories) + 2.5), 3.8))
    count = len(cells[by].unique()) if by else 1
    for k, (name, group) in enumerate(groups):
        shift = (k - (count - 1) / 2) * 0.08  # lines side by side, not on top of each other
        stats = group.groupby(x, sort=False)[y].agg(["mean", "std"]).reindex(categories)
        places = np.arange(len(categories)) + shift
        ax.errorbar(places, stats["mean"], yerr=stats["std"].fillna(0), fmt="o-", capsize=4,
                    label=str(name))
        seed_places = group[x].map({c: i for i, c in enumerate(categories)}) + shift
        ax.plot(seed_places, group[y], ".", color="grey", alpha=0.6)
    if chance is not None:
        ax.axhline(chance, color="grey", linestyle=":", label="majority class")
    ax.set_xticks(range(len(categories)), [str(c) for c in categories])
    ax.set(xlabel=x, ylabel=y, title=title or f"{y} by {x} (mean and sd over seeds; dots: seeds)")
    ax.grid(alpha=0.3)
    ax.legend(title=by, fontsize="small")
    fig.tight_layout()
    return fig
