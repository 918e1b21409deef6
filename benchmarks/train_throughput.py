"""Training throughput: our pipeline against the book's recipe, and FLOP/s against the matmul peak.

Run by hand (not in CI):

    .venv/bin/python benchmarks/train_throughput.py [--steps 30] [--batch-size 32]
        [--precisions fp32 bf16] [--profile] [--out FILE]

For two model sizes, both on the same real SNLI pairs and the same batch size:
  * ``minilm``: all-MiniLM-L6-v2 (6 layers, 384 hidden, 12 heads, 1536 FFN);
  * ``book-small``: a scratch BERT of the book's small size (2 layers, 256 hidden, 4 heads,
    512 FFN).
and four pipelines:
  * ``ours``: length-bucketed batches padded to their longest pair, our encoder, the classifier
    head the course uses with the model (``suggested_pooling``: ``pair`` for minilm);
  * ``ours, pad 128``: our model, but every batch padded to 128 (isolates the padding gain);
  * ``transformers`` (minilm only): ``transformers.BertModel`` (``attn_implementation="sdpa"``)
    with the same weights carrying the same head, on the same batches with the same optimizer;
  * ``book``: the book's recipe: random batches padded to 128, d2l's BERTModel with its
    masked-softmax attention (d2l 1.0.3 imported as the book's code), fp32 as the book runs it.
Each row is a number of timed optimizer steps after warm-up steps: ours and transformers with the
tuned preset's optimizer (AdamW, fused), the book's with ``torch.optim.Adam`` as the chapter
makes it. Every pipeline but the book's runs in each of ``--precisions``: fp32, and bf16 as
``precision="auto"`` runs it on a CPU that computes bf16 natively (autocast around the forward
pass; loss, weights and optimizer in fp32). The FLOP count is analytic (matmuls of every layer,
forward and backward = 3x forward), over the tokens actually computed (padding included), and is
compared with the machine's matmul peak in the row's precision, measured on the spot.
``--profile`` adds where one step of ``ours`` goes, by kind of work, in each precision.
"""

from __future__ import annotations

import argparse
import copy
import json
import platform
import sys
import time
import warnings
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from bertnli_helpers.data.dataset import LengthBucketSampler, RandomBatchSampler, SNLIBERTDataset
from bertnli_helpers.data.snli import read_records, resolve_data_dir
from bertnli_helpers.model.bert import BERTClassifier, BertConfig
from bertnli_helpers.model.precision import autocast, native_bf16_features
from bertnli_helpers.model.pretrained import load_pretrained, minilm_folder, suggested_pooling
from bertnli_helpers.study.book import import_d2l
from bertnli_helpers.train.config import preset
from bertnli_helpers.train.optim import make_optimizer

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


class HFEncoder(nn.Module):
    """``transformers.BertModel`` behind our encoder's call, so it carries our classifier head."""

    def __init__(self, bert_class: type, folder: Path) -> None:
        super().__init__()
        self.bert = bert_class.from_pretrained(str(folder), attn_implementation="sdpa",
                                               add_pooling_layer=False)

    def forward(self, tokens, segments, valid_lens):
        mask = (torch.arange(tokens.shape[1])[None, :] < valid_lens[:, None]).long()
        return self.bert(input_ids=tokens, token_type_ids=segments,
                         attention_mask=mask).last_hidden_state


DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16}


def matmul_peak(dtype: torch.dtype = torch.float32, n: int = 2048, repeats: int = 10) -> float:
    """Measured matmul FLOP/s of this machine in ``dtype`` (best of several runs)."""
    a, b = torch.randn(n, n, dtype=dtype), torch.randn(n, n, dtype=dtype)
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


def train_step(model: nn.Module, optimizer: torch.optim.Optimizer, batch,
               dtype: torch.dtype | None) -> None:
    """One optimizer step: forward under autocast (``dtype`` None: fp32), loss in fp32."""
    (tokens, segments, valid), labels = batch
    with autocast(torch.device("cpu"), dtype):
        logits = model((tokens, segments, valid))
    loss = F.cross_entropy(logits.float(), labels)
    optimizer.zero_grad()
    loss.backward()
    optimizer.step()


def run(model: nn.Module, dataset: SNLIBERTDataset, sampler, pad_to, size, steps, warmup,
        optimizer: torch.optim.Optimizer, dtype: torch.dtype | None = None):
    """Time ``steps`` optimizer steps after ``warmup`` untimed ones. In bf16 the timed batches
    first run once untimed: oneDNN builds a kernel for each matrix shape the first time it meets
    it (the first pass over new lengths takes about twice as long), a cost that would otherwise
    fall on whichever pipeline meets a shape first, and that training pays once per length."""
    model.train()
    batches = iter(sampler)
    planned = [dataset.batch(next(batches), pad_to=pad_to) for _ in range(warmup + steps)]
    if dtype is not None:
        for batch in planned[warmup:]:
            train_step(model, optimizer, batch, dtype)
    examples = flops = real_tokens = computed_tokens = 0
    seconds = 0.0
    for step, batch in enumerate(planned):
        (tokens, _, valid), labels = batch
        tick = time.perf_counter()
        train_step(model, optimizer, batch, dtype)
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


# -- where one step goes ---------------------------------------------------------------------
KINDS = {  # kind of work -> the profiler's op names (self time; anything else is "other ops")
    "matmul (GEMM)": {"aten::mm", "aten::addmm", "aten::bmm", "aten::baddbmm",
                      "aten::_scaled_dot_product_flash_attention_for_cpu",
                      "aten::_scaled_dot_product_flash_attention_for_cpu_backward"},
    "attention softmax and mask": {"aten::_softmax", "aten::_softmax_backward_data",
                                   "aten::masked_fill", "aten::masked_fill_", "aten::where",
                                   "aten::isneginf", "aten::all", "aten::logical_not"},
    "LayerNorm": {"aten::native_layer_norm", "aten::native_layer_norm_backward"},
    "GELU / ReLU": {"aten::gelu", "aten::gelu_backward", "aten::relu", "aten::threshold_backward"},
    "dropout masks": {"aten::random_", "aten::bitwise_and", "aten::ge", "aten::bernoulli_"},
    "optimizer": {"aten::_fused_adamw_", "aten::_fused_adam_", "Optimizer.step#AdamW.step",
                  "Optimizer.step#Adam.step", "Optimizer.zero_grad#AdamW.zero_grad",
                  "Optimizer.zero_grad#Adam.zero_grad"},
    "data movement (casts, copies, zero-fills)": {"aten::copy_", "aten::_to_copy", "aten::fill_",
                                                  "aten::zero_", "aten::cat", "aten::clone",
                                                  "aten::empty", "aten::empty_strided"},
    "embedding": {"aten::embedding", "aten::index_select", "aten::embedding_dense_backward",
                  "aten::index_add_", "aten::embedding_backward"},
}


def profile_steps(model: nn.Module, optimizer: torch.optim.Optimizer, batches,
                  dtype: torch.dtype | None) -> dict[str, float]:
    """Milliseconds per step by kind of work; what no op accounts for is Python and autograd's
    own bookkeeping ("outside ops")."""
    from torch.profiler import ProfilerActivity, profile

    model.train()
    for batch in batches:  # warm, and let oneDNN build its kernels for these shapes
        train_step(model, optimizer, batch, dtype)
    tick = time.perf_counter()
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        for batch in batches:
            train_step(model, optimizer, batch, dtype)
    wall = (time.perf_counter() - tick) * 1e3 / len(batches)
    spent = dict.fromkeys([*KINDS, "other ops"], 0.0)
    for event in prof.key_averages():
        kind = next((k for k, names in KINDS.items() if event.key in names), "other ops")
        spent[kind] += event.self_cpu_time_total / 1e3 / len(batches)
    spent["outside ops (Python, autograd engine)"] = max(0.0, wall - sum(spent.values()))
    spent["step (profiled)"] = wall
    return spent


def print_profile(name: str, precision: str, spent: dict[str, float]) -> None:
    total = spent["step (profiled)"]
    print(f"{name} ours, {precision}: one step {total:.0f} ms under the profiler")
    for kind, ms in sorted(spent.items(), key=lambda item: -item[1]):
        if kind != "step (profiled)":
            print(f"    {kind:42s} {ms:7.1f} ms {ms / total:6.1%}")


# -- the benchmark ------------------------------------------------------------------------------
def transformers_bert() -> type | None:
    """``transformers.BertModel``, or None when transformers is not installed."""
    try:
        from transformers import BertModel
        from transformers.utils import logging

        logging.set_verbosity_error()  # no load report of the pooler this benchmark leaves out
    except ImportError:
        print("transformers is not installed: no side-by-side row (pip install -e '.[dev]')")
        return None
    return BertModel


def build_models(name: str, size: dict, d2l,
                 hf_bert: type | None) -> tuple[dict[str, nn.Module], object, str]:
    """Our, transformers' (minilm only) and the book's classifiers of one size; the tokenizer."""
    torch.manual_seed(0)
    if name == "minilm":
        bert, tok = load_pretrained("minilm")
        pooling = suggested_pooling("minilm")
    else:
        config = BertConfig(vocab_size=30522, hidden_size=size["hidden"],
                            num_layers=size["layers"], num_heads=size["heads"],
                            ffn_size=size["ffn"], flavour="book")
        bert, tok = load_pretrained("scratch", config=config)
        pooling = "cls"  # the book's head, as the book's recipe has it
    ours = BERTClassifier(bert, pooling=pooling)
    models = {"ours": ours, "ours, pad 128": ours}
    if name == "minilm" and hf_bert is not None:
        theirs = copy.deepcopy(ours)  # the same head, weights and all
        theirs.encoder = HFEncoder(hf_bert, minilm_folder())
        models["transformers"] = theirs
    book_bert = d2l.BERTModel(len(tok), size["hidden"], size["ffn"], size["heads"],
                              size["layers"], 0.1, max_len=512)
    probe = torch.zeros(2, 8, dtype=torch.long)
    book_bert(probe, probe, torch.tensor([8, 8]), torch.zeros(2, 1, dtype=torch.long))
    models["book"] = BookClassifier(book_bert, size["hidden"])
    return models, tok, pooling


def ratio(rows: list[dict], model: str, a: tuple[str, str], b: tuple[str, str]) -> float | None:
    """examples/s of pipeline/precision ``a`` over ``b`` for ``model`` (None: a row is missing)."""
    def find(key):
        return next((r["examples_per_s"] for r in rows if r["model"] == model
                     and (r["pipeline"], r["precision"]) == key), None)
    x, y = find(a), find(b)
    return round(x / y, 2) if x and y else None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--steps", type=int, default=30)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--threads", type=int, default=torch.get_num_threads())
    parser.add_argument("--models", nargs="+", default=list(SIZES), choices=list(SIZES))
    parser.add_argument("--precisions", nargs="+", default=["fp32", "bf16"], choices=list(DTYPES))
    parser.add_argument("--profile", action="store_true",
                        help="also profile steps of 'ours' in each precision: where a step goes")
    parser.add_argument("--data-dir", type=Path, default=None,
                        help="SNLI folder (default: $BERTNLI_DATA_DIR, else the official zip)")
    parser.add_argument("--out", default="benchmarks/results/train_throughput.json")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    warnings.simplefilter("ignore")
    hf_bert = transformers_bert()
    d2l = import_d2l()
    native = native_bf16_features()
    print(f"native bf16 on this CPU: {', '.join(native) or 'none (bf16 is emulated: slow)'}")
    peaks = {p: matmul_peak(DTYPES[p]) for p in sorted({"fp32", *args.precisions})}
    for p, peak in peaks.items():
        print(f"{p} matmul peak: {peak / 1e9:.1f} GFLOP/s on {args.threads} threads")
    split = read_records(resolve_data_dir(args.data_dir), "train")
    rows, profiles = [], {}
    for name in args.models:
        size = SIZES[name]
        models, tok, pooling = build_models(name, size, d2l, hf_bert)
        dataset = SNLIBERTDataset(split, tok, 128, cache=False)
        samplers = {"bucketed": LengthBucketSampler(dataset.lengths, args.batch_size, seed=0),
                    "random": RandomBatchSampler(len(dataset), args.batch_size, seed=0)}
        plan = [(pipeline, precision) for pipeline in models if pipeline != "book"
                for precision in args.precisions] + [("book", "fp32")]  # as the book runs it
        for pipeline, precision in plan:
            model = models[pipeline]
            bucketed = pipeline in ("ours", "transformers")
            # ours and transformers: the tuned preset's optimizer (fused AdamW); the book's as is
            optimizer = (torch.optim.Adam(model.parameters(), lr=1e-4) if pipeline == "book"
                         else make_optimizer(model, preset("tuned")))
            dtype = None if precision == "fp32" else DTYPES[precision]
            result = run(model, dataset, samplers["bucketed" if bucketed else "random"],
                         None if bucketed else 128, size, args.steps, args.warmup, optimizer,
                         dtype)
            result.update(model=name, pipeline=pipeline, precision=precision,
                          pooling="cls" if pipeline == "book" else pooling,
                          share_of_peak=result["gflop_per_s"] * 1e9 / peaks[precision])
            rows.append(result)
            print(f"{name:10s} {pipeline:14s} {precision:5s} {result['examples_per_s']:8.1f} ex/s "
                  f"{result['tokens_per_s']:8.0f} tok/s  padding {result['padding_share']:.0%}  "
                  f"{result['gflop_per_s']:6.1f} GFLOP/s ({result['share_of_peak']:.0%} of the "
                  f"{precision} peak)", flush=True)
        if args.profile:
            batches = [dataset.batch(i) for _, i in zip(range(6), iter(samplers["bucketed"]))]
            for precision in args.precisions:
                dtype = None if precision == "fp32" else DTYPES[precision]
                spent = profile_steps(models["ours"], make_optimizer(models["ours"],
                                      preset("tuned")), batches, dtype)
                profiles.setdefault(name, {})[precision] = spent
                print_profile(name, precision, spent)
    summary = {}
    for name in args.models:
        summary[name] = {
            "ours_over_book_fp32": ratio(rows, name, ("ours", "fp32"), ("book", "fp32")),
            "ours_over_book_bf16": ratio(rows, name, ("ours", "bf16"), ("book", "fp32")),
            "bf16_over_fp32": ratio(rows, name, ("ours", "bf16"), ("ours", "fp32")),
            "ours_over_transformers_fp32": ratio(rows, name, ("ours", "fp32"),
                                                 ("transformers", "fp32")),
            "ours_over_transformers_bf16": ratio(rows, name, ("ours", "bf16"),
                                                 ("transformers", "bf16")),
        }
        shown = ", ".join(f"{k} {v}x" for k, v in summary[name].items() if v is not None)
        print(f"{name}: {shown}")
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({
        "command": " ".join(["benchmarks/train_throughput.py", *sys.argv[1:]]),
        "machine": {"threads": args.threads, "python": platform.python_version(),
                    "torch": str(torch.__version__), "native_bf16": native,
                    "matmul_peak_gflop_s": {p: v / 1e9 for p, v in peaks.items()}},
        "batch_size": args.batch_size,
        "rows": rows,
        "speedup": summary,
        "profile_ms_per_step": profiles,
    }, indent=2))
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
