"""What a training history shows, said in sentences generated from its own numbers.

A notebook that writes "dev accuracy levels off" by hand is wrong whenever a profile or seed
makes it keep rising. These sentences are computed from the epoch records instead: whether dev
accuracy still moved by more than its sampling noise, whether the best epoch was the last,
whether training accuracy pulled away from dev, and why epoch 1's training accuracy can sit
below dev accuracy.
"""

from __future__ import annotations

import math
from collections.abc import Iterable


def dev_noise(accuracy: float, dev_pairs: int) -> float:
    """Two binomial standard errors of an accuracy measured on ``dev_pairs`` pairs: a change of
    less than this between two evaluations is not a clear change."""
    return 2 * math.sqrt(max(accuracy * (1 - accuracy), 1e-12) / max(dev_pairs, 1))


def epoch_records(history: Iterable[dict[str, float]]) -> list[dict[str, float]]:
    """The end-of-epoch records that were evaluated on dev."""
    return [r for r in history if float(r.get("epoch", 0)).is_integer() and "train_loss" in r
            and "dev_accuracy" in r]


def describe_history(history: Iterable[dict[str, float]], dev_pairs: int) -> list[str]:
    """Sentences about the run's curves, each stating only what its numbers show."""
    records = epoch_records(history)
    if not records:
        return ["The run recorded no evaluated epoch, so there is no curve to read."]
    last = records[-1]
    noise = dev_noise(last["dev_accuracy"], dev_pairs)
    sentences = [_dev_trend(records, noise, dev_pairs), _best_epoch(records)]
    sentences.append(_gap(last, noise))
    first = records[0]
    if first["train_accuracy"] < first["dev_accuracy"]:
        sentences.append(
            f"In epoch 1 the training accuracy ({first['train_accuracy']:.3f}) is below the dev "
            f"accuracy ({first['dev_accuracy']:.3f}). That is no paradox: training accuracy is "
            "an average over all of the epoch's batches, counted while the model was still "
            "learning from a random output layer and with dropout switched on; dev accuracy is "
            "measured once, after the epoch, with dropout off.")
    return sentences


def _dev_trend(records: list[dict[str, float]], noise: float, dev_pairs: int) -> str:
    accuracies = [r["dev_accuracy"] for r in records]
    if len(records) == 1:
        return (f"With one epoch there is no curve to read: dev accuracy is "
                f"{accuracies[0]:.3f} after it.")
    change = accuracies[-1] - accuracies[-2]
    path = " -> ".join(f"{a:.3f}" for a in accuracies)
    noise_text = f"the noise of {dev_pairs:,} dev pairs (about ±{noise:.3f})"
    if abs(change) < noise:
        trend = (f"the last epoch moved it by {change:+.3f}, within {noise_text}: it has "
                 "levelled off as far as this run can tell")
    elif change > 0:
        trend = (f"it was still rising in the last epoch ({change:+.3f}, more than "
                 f"{noise_text}), so it has not levelled off")
    else:
        trend = f"it fell in the last epoch ({change:+.3f}, more than {noise_text})"
    loss = ""
    if "dev_loss" in records[-1]:
        moved = "still fell" if records[-1]["dev_loss"] < records[-2]["dev_loss"] else "rose"
        loss = f" Dev loss {moved} in the last epoch ({records[-2]['dev_loss']:.3f} -> " \
               f"{records[-1]['dev_loss']:.3f})."
    return f"Dev accuracy by epoch: {path}; {trend}.{loss}"


def _best_epoch(records: list[dict[str, float]]) -> str:
    accuracies = [r["dev_accuracy"] for r in records]
    best = accuracies.index(max(accuracies))  # the first best, as fine_tune keeps it
    if len(records) == 1:
        return "The weights kept are those after the only epoch."
    if best == len(records) - 1:
        return (f"The best dev epoch is the last one ({best + 1} of {len(records)}): this run "
                "has not shown that more epochs stop helping, and choosing on dev changed "
                "nothing here; it matters in runs whose dev accuracy turns down.")
    return (f"The best dev epoch is {best + 1} of {len(records)}: later epochs did not beat "
            "it on dev, and its weights are the ones kept.")


def _gap(last: dict[str, float], noise: float) -> str:
    train, dev = last["train_accuracy"], last["dev_accuracy"]
    if train > dev + noise:
        return (f"In the last epoch training accuracy ({train:.3f}) is above dev accuracy "
                f"({dev:.3f}) by more than the noise: the model fits its own training pairs "
                "better than new ones. That gap is why a model is chosen on dev, never on "
                "training accuracy.")
    return (f"In the last epoch training accuracy ({train:.3f}) is not above dev accuracy "
            f"({dev:.3f}) by more than the noise: no sign yet that the model fits its training "
            "pairs better than new ones.")
