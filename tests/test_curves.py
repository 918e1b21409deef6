"""Sentences about a training history say only what its numbers show."""

from __future__ import annotations

from bertnli_helpers.study.curves import describe_history, dev_noise


def record(epoch, train, dev, dev_loss=0.8):
    return {"epoch": epoch, "train_loss": 1.0, "train_accuracy": train, "dev_accuracy": dev,
            "dev_loss": dev_loss}


def test_rising_dev_accuracy_is_not_called_levelled_off():
    text = " ".join(describe_history([record(1, 0.50, 0.60, 0.9), record(2, 0.72, 0.70, 0.8)],
                                     1000))
    assert "still rising" in text and "levelled off as far" not in text
    assert "best dev epoch is the last one (2 of 2)" in text and "still fell" in text
    assert "epoch 1 the training accuracy (0.500) is below the dev accuracy (0.600)" in text
    assert "0.720) is above dev accuracy (0.700)" not in text  # 0.02 < noise of 1,000 pairs


def test_flat_dev_accuracy_and_an_earlier_best_epoch():
    history = [record(1, 0.70, 0.650), {"epoch": 1.5, "step": 9, "dev_accuracy": 0.9},
               record(2, 0.90, 0.660), record(3, 0.97, 0.655, 0.9)]
    text = " ".join(describe_history(history, 1000))
    assert "levelled off as far as this run can tell" in text  # 0.005 < 2 standard errors
    assert "best dev epoch is 2 of 3" in text and "Dev loss rose" in text
    assert "by more than the noise: the model fits its own training pairs" in text
    assert "is below the dev accuracy" not in text


def test_a_drop_larger_than_the_noise_and_a_single_epoch():
    text = " ".join(describe_history([record(1, 0.6, 0.80), record(2, 0.7, 0.60)], 2000))
    assert "it fell in the last epoch (-0.200" in text
    assert "no curve to read" in describe_history([record(1, 0.4, 0.3)], 64)[0]
    assert describe_history([], 64)[0].startswith("The run recorded no evaluated epoch")
    assert abs(dev_noise(0.5, 10_000) - 0.01) < 1e-12
