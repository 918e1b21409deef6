"""The matplotlib figures the notebooks show. Every function returns its figure."""

from __future__ import annotations

from collections.abc import Sequence

import matplotlib.pyplot as plt
from matplotlib.figure import Figure


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
    for ax in (ax_loss, ax_acc):
        ax.grid(alpha=0.3)
        ax.legend()
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    return fig
