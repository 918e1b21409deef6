"""Training throughput: our pipeline against the book's recipe, and FLOP/s against the matmul peak.

Run by hand (not in CI):

    .venv/bin/python benchmarks/train_throughput.py [--steps 30] [--batch-size 32] [--out FILE]

For two model sizes, both on the same real SNLI pairs and the same batch size:
  * ``minilm``: all-MiniLM-L6-v2 (6 layers, 384 hidden, 12 heads, 1536 FFN);
  * ``book-small``: a scratch BERT of the book's small size (2 layers, 256 hidden, 4 heads,
    512 FFN).
and three pipelines:
  * ``ours``: length-bucketed batches padded to their longest pair, SDPA attention;
  * ``ours, pad 128``: our model, but every batch padded to 128 (isolates the padding gain);
  * ``book``: the book's recipe: random batches padded to 128, d2l's BERTModel with its
    masked-softmax attention (d2l 1.0.3 imported as the book's code).
Each row is a number of timed optimizer steps (fp32) after warm-up steps: ours with the tuned
preset's optimizer (AdamW, fused), the book's with ``torch.optim.Adam`` as the chapter makes it.
The FLOP count is analytic (matmuls of every layer, forward and backward = 3x forward), over
the tokens actually computed (padding included), and is compared with the machine's measured
fp32 matmul peak.
"""

from __future__ import annotations

import argparse
import json
import platform
import time
import warnings
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from bertnli_helpers.book import import_d2l
from bertnli_helpers.data import LengthBucketSampler, RandomBatchSampler, SNLIBERTDataset
from bertnli_helpers.model import BERTClassifier, BertConfig
from bertnli_helpers.optim import make_optimizer
from bertnli_helpers.pretrained import load_pretrained
from bertnli_helpers.snli import read_records, resolve_data_dir
from bertnli_helpers.train import preset

SIZES = {
    "minilm": dict(hidden=384, layers=6, heads=12, ffn=1536),
    "book-small": dict(hidden=256, layers=2, heads=4, ffn=512),
}


class BookClassifier(nn.Module):
    """The chapter's classifier on d2l's BERTModel: encoder, pretrained hidden, new Linear."""

    def __init__(self, bert: nn.Module, hidden: int) -> None:
        super().__init__()
        self.encoder, self.hidden, self.output = bert.encoder, bert.hidden, nn.Linear(hidden, 3)

    def forward(self, inputs):
        tokens, segments, valid_lens = inputs
        return self.output(self.hidden(self.encoder(tokens, segments, valid_lens)[:, 0, :]))


def matmul_peak(n: int = 2048, repeats: int = 10) -> float:
    """Measured fp32 matmul FLOP/s of this machine (best of several runs)."""
    a, b = torch.randn(n, n), torch.randn(n, n)
    for _ in range(2):
        a @ b
    best = float("inf")
    for _ in range(repeats):
        tick = time.perf_counter()
        a @ b
        best = min(best, time.perf_counter() - tick)
    return 2 * n**3 / best


def step_flops(size: dict, batch: int, seq: int, vocab_out: int = 3) -> float:
    """Forward+backward FLOPs of one step: 3 x (projections + FFN + attention scores/context)."""
    h, f, layers = size["hidden"], size["ffn"], size["layers"]
    tokens = batch * seq
    per_layer = 2 * tokens * (4 * h * h + 2 * h * f) + 2 * 2 * batch * seq * seq * h
    head = 2 * batch * (h * h + h * vocab_out)
    return 3 * (layers * per_layer + head)


def run(model: nn.Module, dataset: SNLIBERTDataset, sampler, pad_to, size, steps, warmup,
        optimizer: torch.optim.Optimizer):
    model.train()
    batches = iter(sampler)
    examples = flops = real_tokens = computed_tokens = 0
    seconds = 0.0
    for step in range(warmup + steps):
        indices = next(batches)
        (tokens, segments, valid), labels = dataset.batch(indices, pad_to=pad_to)
        tick = time.perf_counter()
        loss = F.cross_entropy(model((tokens, segments, valid)), labels)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        elapsed = time.perf_counter() - tick
        if step >= warmup:
            seconds += elapsed
            examples += len(labels)
            real_tokens += int(valid.sum())
            computed_tokens += tokens.numel()
            flops += step_flops(size, *tokens.shape)
    return {
        "examples_per_s": examples / seconds,
        "tokens_per_s": real_tokens / seconds,
        "padding_share": 1 - real_tokens / computed_tokens,
        "gflop_per_s": flops / seconds / 1e9,
        "seconds": seconds,
        "steps": steps,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--steps", type=int, default=30)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--threads", type=int, default=torch.get_num_threads())
    parser.add_argument("--data-dir", type=Path, default=None,
                        help="SNLI folder (default: $BERTNLI_DATA_DIR, else the official zip)")
    parser.add_argument("--out", default="benchmarks/results/train_throughput.json")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    warnings.simplefilter("ignore")
    d2l = import_d2l()
    peak = matmul_peak()
    print(f"fp32 matmul peak: {peak / 1e9:.1f} GFLOP/s on {args.threads} threads")
    split = read_records(resolve_data_dir(args.data_dir), "train")
    rows = []
    for name, size in SIZES.items():
        torch.manual_seed(0)
        if name == "minilm":
            bert, tok = load_pretrained("minilm")
        else:
            config = BertConfig(vocab_size=30522, hidden_size=size["hidden"],
                                num_layers=size["layers"], num_heads=size["heads"],
                                ffn_size=size["ffn"], flavour="book")
            bert, tok = load_pretrained("scratch", config=config)
        dataset = SNLIBERTDataset(split, tok, 128, cache=False)
        ours = BERTClassifier(bert)
        bucketed = LengthBucketSampler(dataset.lengths, args.batch_size, seed=0)
        random_batches = RandomBatchSampler(len(dataset), args.batch_size, seed=0)
        book_bert = d2l.BERTModel(len(tok), size["hidden"], size["ffn"], size["heads"],
                                  size["layers"], 0.1, max_len=512)
        probe = torch.zeros(2, 8, dtype=torch.long)
        book_bert(probe, probe, torch.tensor([8, 8]), torch.zeros(2, 1, dtype=torch.long))
        book = BookClassifier(book_bert, size["hidden"])
        for pipeline, model, sampler, pad_to in [
            ("ours", ours, bucketed, None),
            ("ours, pad 128", ours, random_batches, 128),
            ("book", book, random_batches, 128),
        ]:
            # ours: the tuned preset's optimizer (fused AdamW); the book: torch.optim.Adam as is
            optimizer = (make_optimizer(model, preset("tuned")) if model is ours
                         else torch.optim.Adam(model.parameters(), lr=1e-4))
            result = run(model, dataset, sampler, pad_to, size, args.steps, args.warmup,
                         optimizer)
            result.update(model=name, pipeline=pipeline, share_of_peak=result["gflop_per_s"]
                          * 1e9 / peak)
            rows.append(result)
            print(f"{name:10s} {pipeline:14s} {result['examples_per_s']:8.1f} ex/s "
                  f"{result['tokens_per_s']:8.0f} tok/s  padding {result['padding_share']:.0%}  "
                  f"{result['gflop_per_s']:6.1f} GFLOP/s ({result['share_of_peak']:.0%} of peak)",
                  flush=True)
    for name in SIZES:
        by = {r["pipeline"]: r for r in rows if r["model"] == name}
        print(f"{name}: ours / book = "
              f"{by['ours']['examples_per_s'] / by['book']['examples_per_s']:.1f}x examples/s")
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({
        "machine": {"threads": args.threads, "python": platform.python_version(),
                    "torch": str(torch.__version__), "matmul_peak_gflop_s": peak / 1e9},
        "batch_size": args.batch_size,
        "rows": rows,
        "speedup": {n: float(np.round(
            next(r for r in rows if r["model"] == n and r["pipeline"] == "ours")["examples_per_s"]
            / next(r for r in rows if r["model"] == n and r["pipeline"] == "book")[
                "examples_per_s"],
            2)) for n in SIZES},
    }, indent=2))
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
