"""Accuracy and time of fine-tuning presets on the same data, chosen on dev, reported on test.

Run by hand (not in CI); on 2 CPU cores the tuned preset takes about 7 minutes, the book preset
(every pair padded to 128) about 40:

    .venv/bin/python benchmarks/accuracy.py [--presets tuned book] [--dev-size 2000]

Data: the SNLI folder's train split (here the 1% sample: 5,498 pairs), a random dev sample for
choosing the epoch, and the whole test split. Model: ``minilm`` by default (all-MiniLM-L6-v2,
which saw SNLI's training pairs during its own pretraining: say so next to its numbers).
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from bertnli_helpers.callbacks import ProgressBar
from bertnli_helpers.model import POOLING_HEADS
from bertnli_helpers.pretrained import suggested_pooling
from bertnli_helpers.runs import RunInfo, finetune_run
from bertnli_helpers.snli import read_records, resolve_data_dir
from bertnli_helpers.train import preset


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data-dir", type=Path, default=None,
                        help="SNLI folder (default: $BERTNLI_DATA_DIR, else the official zip)")
    parser.add_argument("--model", default="minilm")
    parser.add_argument("--presets", nargs="+", default=["tuned", "book"])
    parser.add_argument("--pooling", default="suggested",
                        choices=["suggested", *POOLING_HEADS],
                        help="the classifier's pooling; 'suggested': what suits the model "
                        "('pair' for minilm, 'cls' for the book's BERTs)")
    parser.add_argument("--dev-size", type=int, default=2000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--runs", default="benchmarks/results/accuracy-runs")
    parser.add_argument("--out", default="benchmarks/results/accuracy.json")
    args = parser.parse_args()
    data_dir = resolve_data_dir(args.data_dir)
    train = read_records(data_dir, "train")
    dev = read_records(data_dir, "dev").sample(args.dev_size, args.seed)
    test = read_records(data_dir, "test")
    pooling = suggested_pooling(args.model) if args.pooling == "suggested" else args.pooling
    rows = []
    for name in args.presets:
        tick = time.perf_counter()
        outcome = finetune_run(
            Path(args.runs) / f"{args.model}-{name}-{pooling}",
            RunInfo(model=args.model, pooling=pooling), train, dev, test,
            preset(name, seed=args.seed), callbacks=[ProgressBar(name)], keep_checkpoint=False,
        )
        row = {"preset": name, "pooling": pooling, **outcome.metrics,
               "wall_seconds": time.perf_counter() - tick, "reused": outcome.reused}
        rows.append(row)
        print(f"{name}: dev {row['dev_accuracy']:.4f} (epoch {row['best_epoch']}), "
              f"test {row['test_accuracy']:.4f}, training {row['train_seconds'] / 60:.1f} min",
              flush=True)
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps({"train_pairs": len(train), "dev_pairs": len(dev),
                                          "test_pairs": len(test), "rows": rows}, indent=2))


if __name__ == "__main__":
    main()
