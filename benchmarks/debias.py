"""Plain against debiased fine-tuning on the same pairs and seeds: test, hard subset, calibration.

Run by hand (not in CI). With the defaults (minilm, tuned preset, the data folder's train split,
a 2,000-pair dev sample, the whole test split, seeds 0 and 1) it fine-tunes four runs: about 25
minutes on 2 CPU cores.

    .venv/bin/python benchmarks/debias.py [--seeds 0 1] [--method product_of_experts]

The bias expert is the hypothesis-only bag of words, fitted on train only; the debiased runs
train on its cross-fitted (out-of-fold) probabilities; the hard subset is the test pairs the
expert fitted on all of train gets wrong. Verdicts are paired over pairs and seeds
(``comparison.compare``; ``analysis.compare_calibration`` for ECE). ``minilm`` saw SNLI's
training pairs during its own pretraining: say so next to its numbers.
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from pathlib import Path

import torch

from bertnli_helpers.course.callbacks import ProgressBar
from bertnli_helpers.data.snli import resolve_data_dir, sample_splits
from bertnli_helpers.model.pretrained import suggested_pooling
from bertnli_helpers.study.debias import DEFAULT_METHOD, debias_study
from bertnli_helpers.train.config import preset
from bertnli_helpers.train.objectives import OBJECTIVES
from bertnli_helpers.train.runs import RunInfo


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data-dir", type=Path, default=None,
                        help="SNLI folder (default: $BERTNLI_DATA_DIR, else the official zip)")
    parser.add_argument("--model", default="minilm")
    parser.add_argument("--preset", default="tuned")
    parser.add_argument("--method", default=DEFAULT_METHOD,
                        choices=[k for k, o in OBJECTIVES.items() if o.needs_bias])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1])
    parser.add_argument("--folds", type=int, default=5, help="cross-fitting folds of the expert")
    parser.add_argument("--train-size", type=int, default=None, help="default: the whole split")
    parser.add_argument("--dev-size", type=int, default=2000)
    parser.add_argument("--test-size", type=int, default=None, help="default: the whole split")
    parser.add_argument("--epochs", type=int, default=None, help="default: the preset's")
    parser.add_argument("--max-steps", type=int, default=None, help="smoke runs only")
    parser.add_argument("--data-seed", type=int, default=0, help="seed of the pair samples")
    parser.add_argument("--runs", default="benchmarks/results/debias-runs")
    parser.add_argument("--out", default="benchmarks/results/debias.json")
    args = parser.parse_args()
    data_dir = resolve_data_dir(args.data_dir)
    train, dev, test = sample_splits(data_dir, train_size=args.train_size,
                                     dev_size=args.dev_size, test_size=args.test_size,
                                     seed=args.data_seed)
    changes = {k: v for k, v in (("epochs", args.epochs), ("max_steps", args.max_steps))
               if v is not None}
    config = preset(args.preset, **changes)
    info = RunInfo(model=args.model, pooling=suggested_pooling(args.model))
    tick = time.perf_counter()
    study = debias_study(Path(args.runs) / f"{args.model}-{args.preset}", info, train, dev, test,
                         config, seeds=args.seeds, method=args.method, folds=args.folds,
                         callbacks=lambda name, seed: [ProgressBar(f"{name} seed {seed}")])
    result = {"command": " ".join([Path(sys.executable).name, *sys.argv]),
              "machine": {"platform": platform.platform(), "torch": torch.__version__,
                          "threads": torch.get_num_threads()},
              "train_pairs": len(train), "dev_pairs": len(dev), "preset": args.preset,
              "model": args.model, "wall_seconds": time.perf_counter() - tick,
              **study.to_dict()}
    print(study.table().round(4).to_string())
    for comparison in study.comparisons().values():
        print(comparison.sentence())
    print(study.calibration().sentence())
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
