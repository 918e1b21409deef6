"""Accuracy and time of fine-tuning presets on the same data, chosen on dev, reported on test.

Run by hand (not in CI); on 2 CPU cores the tuned preset takes about 7 minutes in fp32, the book
preset (every pair padded to 128) about 40:

    .venv/bin/python benchmarks/accuracy.py [--presets tuned book] [--dev-size 2000]

Does bf16 cost accuracy? The same preset in each precision, on the same pairs with the same
seeds, compared pair by pair on the whole test split (difference of accuracy, a paired bootstrap
interval and McNemar's exact test on the pairs where the two runs disagree):

    .venv/bin/python benchmarks/accuracy.py --presets tuned --precisions fp32 bf16 --seeds 0 1 \\
        --out benchmarks/results/accuracy-precision.json

Data: the SNLI folder's train split (here the 1% sample: 5,498 pairs), a random dev sample for
choosing the epoch, and the whole test split. Model: ``minilm`` by default (all-MiniLM-L6-v2,
which saw SNLI's training pairs during its own pretraining: say so next to its numbers).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
from scipy.stats import binomtest

from bertnli_helpers.course.callbacks import ProgressBar
from bertnli_helpers.data.dataset import SNLIBERTDataset
from bertnli_helpers.data.snli import resolve_data_dir, sample_splits
from bertnli_helpers.model.bert import POOLING_HEADS
from bertnli_helpers.model.inference import predict
from bertnli_helpers.model.precision import PRECISIONS
from bertnli_helpers.model.pretrained import suggested_pooling
from bertnli_helpers.train.config import preset
from bertnli_helpers.train.runs import RunInfo, finetune_run


def paired_comparison(correct_a: np.ndarray, correct_b: np.ndarray, *, reps: int = 10_000,
                      seed: int = 0) -> dict[str, float | int | str]:
    """B's accuracy minus A's on the same pairs (rows: runs, averaged; columns: pairs), a 95%
    bootstrap interval resampling pairs (both runs keep each resampled pair, so the pairing is
    kept) and McNemar's exact p on the discordant pairs of the runs pooled."""
    a, b = np.atleast_2d(correct_a).astype(bool), np.atleast_2d(correct_b).astype(bool)
    per_pair = (b.astype(float) - a.astype(float)).mean(axis=0)  # mean over runs, per pair
    rng = np.random.default_rng(seed)
    n = per_pair.size
    draws = np.array([per_pair[rng.integers(0, n, n)].mean() for _ in range(reps)])
    low, high = np.quantile(draws, [0.025, 0.975])
    only_a, only_b = int((a & ~b).sum()), int((b & ~a).sum())
    p_value = binomtest(only_b, only_a + only_b).pvalue if only_a + only_b else 1.0
    verdict = "within noise" if low <= 0.0 <= high else ("better" if low > 0 else "worse")
    return {"difference": float(per_pair.mean()), "ci95_low": float(low),
            "ci95_high": float(high), "only_a_right": only_a, "only_b_right": only_b,
            "mcnemar_p": float(p_value), "verdict": verdict}


def test_correctness(outcome, test, precision: str) -> np.ndarray:
    """Whether the run's best-on-dev classifier gets each test pair right (in test order)."""
    data = SNLIBERTDataset(test, outcome.tokenizer, outcome.info.max_len, outcome.info.truncation)
    probs = predict(outcome.net, data, precision=precision)
    return probs.argmax(axis=1) == data.encoded.labels


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data-dir", type=Path, default=None,
                        help="SNLI folder (default: $BERTNLI_DATA_DIR, else the official zip)")
    parser.add_argument("--model", default="minilm")
    parser.add_argument("--presets", nargs="+", default=["tuned", "book"])
    parser.add_argument("--precisions", nargs="+", default=["auto"], choices=PRECISIONS,
                        help="each preset in each precision; the first is the reference of the "
                        "paired comparisons (default: auto only)")
    parser.add_argument("--seeds", nargs="+", type=int, help="default: --seed")
    parser.add_argument("--pooling", default="suggested",
                        choices=["suggested", *POOLING_HEADS],
                        help="the classifier's pooling; 'suggested': what suits the model "
                        "('pair' for minilm, 'cls' for the book's BERTs)")
    parser.add_argument("--train-size", type=int, help="random sample of train (smoke runs)")
    parser.add_argument("--dev-size", type=int, default=2000)
    parser.add_argument("--test-size", type=int, help="random sample of test (smoke runs)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the samples (and the run)")
    parser.add_argument("--runs", default="benchmarks/results/accuracy-runs")
    parser.add_argument("--out", default="benchmarks/results/accuracy.json")
    args = parser.parse_args()
    data_dir = resolve_data_dir(args.data_dir)
    train, dev, test = sample_splits(data_dir, train_size=args.train_size,
                                     dev_size=args.dev_size, test_size=args.test_size,
                                     seed=args.seed)
    pooling = suggested_pooling(args.model) if args.pooling == "suggested" else args.pooling
    rows, correct = [], {}
    for name in args.presets:
        for seed in args.seeds or [args.seed]:
            for precision in args.precisions:
                tick = time.perf_counter()
                label = f"{name} {precision} seed {seed}"
                outcome = finetune_run(
                    Path(args.runs) / f"{args.model}-{name}-{pooling}-{precision}-seed{seed}",
                    RunInfo(model=args.model, pooling=pooling), train, dev, test,
                    preset(name, seed=seed, precision=precision),
                    callbacks=[ProgressBar(label)], keep_checkpoint=False,
                )
                wall = time.perf_counter() - tick
                correct[name, seed, precision] = test_correctness(outcome, test, precision)
                row = {"preset": name, "pooling": pooling, "asked_precision": precision,
                       "seed": seed, **outcome.metrics, "wall_seconds": wall,
                       "train_minutes": outcome.metrics["train_seconds"] / 60,
                       "reused": outcome.reused}
                rows.append(row)
                print(f"{label}: ran in {row['precision']}, dev {row['dev_accuracy']:.4f} "
                      f"(epoch {row['best_epoch']}), test {row['test_accuracy']:.4f}, "
                      f"training {row['train_minutes']:.1f} min", flush=True)
    comparisons = compare_precisions(args, correct)
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps({
        "command": " ".join(["benchmarks/accuracy.py", *sys.argv[1:]]),
        "train_pairs": len(train), "dev_pairs": len(dev), "test_pairs": len(test),
        "rows": rows, "paired": comparisons}, indent=2))
    print(f"wrote {args.out}")


def compare_precisions(args: argparse.Namespace, correct: dict) -> list[dict]:
    """Each precision against the first, per seed and over all seeds, on the same test pairs;
    with two seeds, the reference's own seed-to-seed difference as a yardstick of run noise."""
    seeds = args.seeds or [args.seed]
    reference, others = args.precisions[0], args.precisions[1:]
    found = []
    for name in args.presets:
        for other in others:
            groups = [[seed] for seed in seeds] + ([seeds] if len(seeds) > 1 else [])
            for group in groups:
                a = np.stack([correct[name, s, reference] for s in group])
                b = np.stack([correct[name, s, other] for s in group])
                found.append({"preset": name, "a": reference, "b": other, "seeds": group,
                              **paired_comparison(a, b)})
        if len(seeds) > 1:
            found.append({"preset": name, "a": f"{reference} seed {seeds[0]}",
                          "b": f"{reference} seed {seeds[1]}", "seeds": seeds[:2],
                          **paired_comparison(correct[name, seeds[0], reference],
                                              correct[name, seeds[1], reference])})
    for c in found:
        print(f"{c['preset']}: {c['b']} - {c['a']} (seeds {c['seeds']}): "
              f"{c['difference']:+.4f} [{c['ci95_low']:+.4f}, {c['ci95_high']:+.4f}], "
              f"McNemar p {c['mcnemar_p']:.3f}: {c['verdict']}")
    return found


if __name__ == "__main__":
    main()
