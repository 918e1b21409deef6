"""Preprocessing benchmark: our SNLIBERTDataset against the book's recipe, time and memory.

Builds the BERT inputs of ``--pairs`` SNLI pairs (default 549,367, the size of the official train
split) at ``max_len`` 128 with both tokenizers:

* ours: ``SNLIBERTDataset`` with ``cache=False``; then a run that writes the cache, and a run
  that loads it (the cached load);
* the book's: its ``SNLIBERTDataset`` recipe (PyTorch tab), re-written below: tokens by
  ``d2l.tokenize`` (lower-case, white-space split) or, for WordPiece, the tokenizer's
  single-text ``tokenize`` inside the workers; the longest-first ``pop()`` loop; padding to
  ``max_len``; ``multiprocessing.Pool(4).map`` over the pairs; long tensors of shape (n, max_len).

The real pairs available (train sample + dev + test of the data folder) are tiled to ``--pairs``.
The book's word vocabulary is built from those real pairs as the book builds one
(``d2l.Vocab(tokens, min_freq=5, reserved_tokens=['<pad>', '<mask>', '<cls>', '<sep>'])``);
WordPiece is the offline ``minilm`` vocabulary.

Each variant runs in its own Python process, so its peak memory is its own: ``ru_maxrss`` of the
process plus that of its largest child (``RUSAGE_SELF`` + ``RUSAGE_CHILDREN``, what the issue asks
for; forked pool workers count the pages they share with the parent again), and the peak
proportional set size (PSS) of the process tree, sampled every 20 ms, which counts shared pages
once. Inputs are loaded before the clock starts; "above start" is the peak minus the memory the
process held then. The first 5,000 padded rows of every variant are hashed: ours and the book's
must agree, or the run fails.

    .venv/bin/python benchmarks/preprocess.py            # full size, a few minutes on 2 cores
    .venv/bin/python benchmarks/preprocess.py --quick    # 50,000 pairs
"""

from __future__ import annotations

import argparse
import collections
import gc
import hashlib
import json
import multiprocessing
import os
import platform
import resource
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import warnings
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
FULL_PAIRS = 549_367
QUICK_PAIRS = 50_000
RESERVED = ["<pad>", "<mask>", "<cls>", "<sep>"]
BOOK_SPECIALS = ("<cls>", "<sep>", "<pad>")
CHECK_ROWS = 5_000  # padded rows hashed to check that every variant built the same inputs
VARIANTS = [
    # (name, tokenizer, pipeline)
    ("ours", "book", "ours"),
    ("ours+write cache", "book", "ours-write"),
    ("ours, cached load", "book", "ours-cached"),
    ("book recipe", "book", "book"),
    ("ours", "wordpiece", "ours"),
    ("ours+write cache", "wordpiece", "ours-write"),
    ("ours, cached load", "wordpiece", "ours-cached"),
    ("book recipe", "wordpiece", "book"),
]
TARGETS = {"speed-up": 10.0, "memory ratio": 4.0, "cached load s": 1.0}


# --- the book's recipe -------------------------------------------------------------------------
# d2l 1.0.3's tokenize, get_tokens_and_segments and Vocab, copied so that the benchmark runs
# without d2l (tests/test_data.py checks our padded form against d2l itself).


def d2l_tokenize(lines):
    return [line.split() for line in lines]


class BookVocab:
    """d2l.Vocab (1.0.3): sorted unique tokens, a per-token recursive lookup."""

    def __init__(self, tokens=(), min_freq=0, reserved_tokens=()):
        if tokens and isinstance(tokens[0], list):
            tokens = [token for line in tokens for token in line]
        counter = collections.Counter(tokens)
        self.token_freqs = sorted(counter.items(), key=lambda x: x[1], reverse=True)
        self.idx_to_token = sorted(
            {"<unk>", *reserved_tokens} | {t for t, f in self.token_freqs if f >= min_freq}
        )
        self.token_to_idx = {token: idx for idx, token in enumerate(self.idx_to_token)}

    def __len__(self):
        return len(self.idx_to_token)

    def __getitem__(self, tokens):
        if not isinstance(tokens, (list, tuple)):
            return self.token_to_idx.get(tokens, self.unk)
        return [self.__getitem__(token) for token in tokens]

    @property
    def unk(self):
        return self.token_to_idx["<unk>"]


class BookSNLIBERTDataset:
    """The book's SNLIBERTDataset preprocessing (PyTorch tab), special-token names as parameters.

    ``tokenizer`` None: the book's word tokens (``d2l.tokenize`` of the lower-cased sentences,
    in the main process). Otherwise the workers call the tokenizer's single-text ``tokenize``
    on each sentence, per example, as the book's workers do their per-example work.
    """

    def __init__(self, dataset, max_len, vocab, tokenizer=None, specials=BOOK_SPECIALS):
        self.cls, self.sep, self.pad = specials
        self.tokenizer = tokenizer
        if tokenizer is None:
            all_premise_hypothesis_tokens = [
                [p_tokens, h_tokens]
                for p_tokens, h_tokens in zip(
                    *[d2l_tokenize([s.lower() for s in sentences]) for sentences in dataset[:2]]
                )
            ]
        else:
            all_premise_hypothesis_tokens = list(zip(dataset[0], dataset[1]))
        import torch

        self.labels = torch.tensor(dataset[2])
        self.vocab = vocab
        self.max_len = max_len
        (self.all_token_ids, self.all_segments, self.valid_lens) = self._preprocess(
            all_premise_hypothesis_tokens
        )

    def _preprocess(self, all_premise_hypothesis_tokens):
        import torch

        pool = multiprocessing.Pool(4)  # Use 4 worker processes
        out = pool.map(self._mp_worker, all_premise_hypothesis_tokens)
        pool.close()
        pool.join()
        all_token_ids = [token_ids for token_ids, segments, valid_len in out]
        all_segments = [segments for token_ids, segments, valid_len in out]
        valid_lens = [valid_len for token_ids, segments, valid_len in out]
        return (
            torch.tensor(all_token_ids, dtype=torch.long),
            torch.tensor(all_segments, dtype=torch.long),
            torch.tensor(valid_lens),
        )

    def _mp_worker(self, premise_hypothesis_tokens):
        p_tokens, h_tokens = premise_hypothesis_tokens
        if self.tokenizer is not None:
            p_tokens = self.tokenizer.tokenize(p_tokens)
            h_tokens = self.tokenizer.tokenize(h_tokens)
        self._truncate_pair_of_tokens(p_tokens, h_tokens)
        tokens, segments = self._get_tokens_and_segments(p_tokens, h_tokens)
        token_ids = self.vocab[tokens] + [self.vocab[self.pad]] * (self.max_len - len(tokens))
        segments = segments + [0] * (self.max_len - len(segments))
        valid_len = len(tokens)
        return token_ids, segments, valid_len

    def _get_tokens_and_segments(self, tokens_a, tokens_b):
        tokens = [self.cls, *tokens_a, self.sep]
        segments = [0] * (len(tokens_a) + 2)
        tokens += [*tokens_b, self.sep]
        segments += [1] * (len(tokens_b) + 1)
        return tokens, segments

    def _truncate_pair_of_tokens(self, p_tokens, h_tokens):
        # Reserve slots for '<CLS>', '<SEP>', and '<SEP>' tokens for the BERT input
        while len(p_tokens) + len(h_tokens) > self.max_len - 3:
            if len(p_tokens) > len(h_tokens):
                p_tokens.pop()
            else:
                h_tokens.pop()


# --- measuring -----------------------------------------------------------------------------------


def _rss_bytes() -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    return 0


def _cpu_seconds() -> float:
    """User + system CPU time of this process and its finished children (the pool's workers)."""
    t = os.times()
    return t.user + t.system + t.children_user + t.children_system


def _maxrss_bytes(who: int) -> int:
    return resource.getrusage(who).ru_maxrss * 1024  # kilobytes on Linux


def _tree(pid: int) -> list[int]:
    """pid and all its descendants, from /proc."""
    parents: dict[int, list[int]] = collections.defaultdict(list)
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat") as f:
                    fields = f.read().rsplit(")", 1)[1].split()
                parents[int(fields[1])].append(int(entry))
            except (OSError, IndexError, ValueError):
                continue
    found, todo = [], [pid]
    while todo:
        p = todo.pop()
        found.append(p)
        todo.extend(parents.get(p, []))
    return found


def _pss_bytes(pids: list[int]) -> int:
    total = 0
    for pid in pids:
        try:
            with open(f"/proc/{pid}/smaps_rollup") as f:
                for line in f:
                    if line.startswith("Pss:"):
                        total += int(line.split()[1]) * 1024
                        break
        except OSError:
            continue
    return total


class PssSampler(threading.Thread):
    """Samples the summed PSS of a process tree until stopped; ``peak`` is the largest seen."""

    def __init__(self, pid: int, interval: float = 0.02) -> None:
        super().__init__(daemon=True)
        self.pid, self.interval, self.peak = pid, interval, 0
        self.stop = threading.Event()

    def run(self) -> None:
        while not self.stop.is_set():
            self.peak = max(self.peak, _pss_bytes(_tree(self.pid)))
            self.stop.wait(self.interval)


def _rows_digest(tokens, segments, valid_lens) -> str:
    import numpy as np

    digest = hashlib.sha1()
    for t in (tokens, segments, valid_lens):
        digest.update(np.ascontiguousarray(t.numpy().astype(np.int64)).tobytes())
    return digest.hexdigest()


# --- one variant, in its own process -------------------------------------------------------------


def _load_inputs(workdir: Path, form: str, pairs: int):
    real = json.loads((workdir / f"pairs-{form}.json").read_text())
    reps = -(-pairs // len(real["labels"]))
    return tuple((real[k] * reps)[:pairs] for k in ("premises", "hypotheses", "labels"))


def run_variant(workdir: Path, tokenizer_name: str, pipeline: str, pairs: int, max_len: int):
    """Build one variant and return its measurements (called in a fresh process)."""
    import numpy as np
    import torch

    from bertnli_helpers.data.dataset import SNLIBERTDataset
    from bertnli_helpers.data.tokenization import book_tokenizer, load_wordpiece
    from bertnli_helpers.model.pretrained import minilm_folder

    idx_to_token = json.loads((workdir / "book-vocab.json").read_text())
    if tokenizer_name == "book":
        tok = book_tokenizer(idx_to_token)
        book_vocab = BookVocab()
        book_vocab.idx_to_token = idx_to_token
        book_vocab.token_to_idx = {t: i for i, t in enumerate(idx_to_token)}
    else:
        tok = load_wordpiece(minilm_folder())
    triple = _load_inputs(workdir, tok.text_form, pairs)
    if pipeline == "ours-write":  # start without a cache, so that this run writes it
        shutil.rmtree(workdir / "cache", ignore_errors=True)
    gc.collect()
    start_rss = _rss_bytes()
    start_maxrss = _maxrss_bytes(resource.RUSAGE_SELF)

    cpu_begin = _cpu_seconds()
    begin = time.perf_counter()
    if pipeline == "book":
        if tokenizer_name == "book":
            built = BookSNLIBERTDataset(triple, max_len, book_vocab)
        else:
            specials = (tok.specials.cls, tok.specials.sep, tok.specials.pad)
            built = BookSNLIBERTDataset(triple, max_len, tok, tokenizer=tok, specials=specials)
    else:
        cache = False if pipeline == "ours" else workdir / "cache"
        built = SNLIBERTDataset(triple, tok, max_len, cache=cache)
    seconds = time.perf_counter() - begin
    cpu_seconds = _cpu_seconds() - cpu_begin

    maxrss_self = _maxrss_bytes(resource.RUSAGE_SELF)
    maxrss_children = _maxrss_bytes(resource.RUSAGE_CHILDREN)
    if pipeline == "book":
        tensors = (built.all_token_ids, built.all_segments, built.valid_lens)
        stored = sum(t.nbytes for t in tensors) + built.labels.nbytes
        check = tuple(t[:CHECK_ROWS] for t in tensors)
        n = len(built.valid_lens)
        truncated = None
    else:
        stored = built.memory_bytes()
        (tokens, segments, valid), _ = built.batch(range(min(CHECK_ROWS, len(built))), max_len)
        check = (tokens, segments, valid)
        n = len(built)
        truncated = int(built.encoded.truncated.sum())
        if pipeline == "ours-write":
            assert not built.from_cache and built.cache_path.is_file()
        if pipeline == "ours-cached":
            assert built.from_cache, "the cached run did not find the cache"
    assert n == pairs
    return {
        "seconds": seconds,
        "cpu_seconds": cpu_seconds,
        "load_average_1min": os.getloadavg()[0],
        "maxrss_self": maxrss_self,
        "maxrss_children": maxrss_children,
        "maxrss_self_plus_children": maxrss_self + maxrss_children,
        "rss_at_start": start_rss,
        "maxrss_at_start": start_maxrss,
        "maxrss_above_start": maxrss_self + maxrss_children - start_rss,
        "stored_bytes": int(stored),
        "truncated_pairs": truncated,
        "check_digest": _rows_digest(*check),
        "torch_threads": torch.get_num_threads(),
        "numpy": np.__version__,
    }


# --- the driver ----------------------------------------------------------------------------------


def prepare(workdir: Path, data_dir: Path) -> dict:
    """Write the real pairs in both text forms and the book's vocabulary; return their sizes."""
    from bertnli_helpers.data.snli import SampleWarning, read_records

    records = []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", SampleWarning)  # the train sample is what we have
        for split in ("train", "dev", "test"):
            records += read_records(data_dir, split).records
    for form in ("book", "raw"):
        if form == "book":
            premises = [r.premise_parse_text for r in records]
            hypotheses = [r.hypothesis_parse_text for r in records]
        else:
            premises, hypotheses = [r.premise for r in records], [r.hypothesis for r in records]
        content = {"premises": premises, "hypotheses": hypotheses}
        content["labels"] = [r.label for r in records]
        (workdir / f"pairs-{form}.json").write_text(json.dumps(content))
    book = json.loads((workdir / "pairs-book.json").read_text())
    tokens = d2l_tokenize([s.lower() for s in book["premises"] + book["hypotheses"]])
    vocab = BookVocab(tokens, min_freq=5, reserved_tokens=RESERVED)
    (workdir / "book-vocab.json").write_text(json.dumps(vocab.idx_to_token))
    return {"real_pairs": len(records), "book_vocab_size": len(vocab)}


def measure(workdir: Path, tokenizer_name: str, pipeline: str, pairs: int, max_len: int) -> dict:
    command = [
        sys.executable, __file__, "--_variant", tokenizer_name, pipeline,
        "--_workdir", str(workdir), "--pairs", str(pairs), "--max-len", str(max_len),
    ]
    wall = time.perf_counter()
    child = subprocess.Popen(command, stdout=subprocess.PIPE, text=True, cwd=REPO)
    sampler = PssSampler(child.pid)
    sampler.start()
    out, _ = child.communicate()
    sampler.stop.set()
    sampler.join()
    if child.returncode:
        raise SystemExit(f"variant {tokenizer_name}/{pipeline} failed (exit {child.returncode})")
    result = json.loads(out.strip().splitlines()[-1])
    result["peak_pss_tree"] = sampler.peak
    result["process_wall_seconds"] = time.perf_counter() - wall
    return result


def _versions() -> dict:
    from importlib.metadata import version

    return {name: version(name) for name in ("torch", "numpy", "tokenizers")}


def _mib(n: float) -> str:
    return f"{n / 2**20:,.0f}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--pairs", type=int, default=FULL_PAIRS, help="pairs to build (tiled)")
    parser.add_argument("--quick", action="store_true", help=f"{QUICK_PAIRS:,} pairs")
    parser.add_argument("--max-len", type=int, default=128)
    parser.add_argument("--data-dir", type=Path, default=None,
                        help="SNLI folder (default: $BERTNLI_DATA_DIR, else the official zip)")
    parser.add_argument(
        "--repeat", type=int, default=1,
        help="runs per variant; the fastest is reported (the others' times are kept in the JSON)",
    )
    parser.add_argument(
        "--tokenizers", nargs="+", choices=["book", "wordpiece"], default=["book", "wordpiece"]
    )
    parser.add_argument(
        "--out", type=Path, default=REPO / "benchmarks" / "results" / "preprocess.json"
    )
    parser.add_argument("--_variant", nargs=2, help=argparse.SUPPRESS)
    parser.add_argument("--_workdir", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.quick:
        args.pairs = QUICK_PAIRS

    if args._variant:  # inside one variant's process: print the measurements as JSON
        print(json.dumps(run_variant(args._workdir, *args._variant, args.pairs, args.max_len)))
        return 0

    from bertnli_helpers.data.snli import resolve_data_dir

    data_dir = resolve_data_dir(args.data_dir)
    results = []
    with tempfile.TemporaryDirectory(prefix="bertnli-bench-") as tmp:
        workdir = Path(tmp)
        info = prepare(workdir, data_dir)
        print(
            f"{args.pairs:,} pairs (the {info['real_pairs']:,} real pairs of {data_dir} tiled), "
            f"max_len {args.max_len}, book vocabulary {info['book_vocab_size']:,} tokens, "
            f"{os.cpu_count()} CPUs",
            flush=True,
        )
        for name, tokenizer_name, pipeline in VARIANTS:
            if tokenizer_name not in args.tokenizers:
                continue
            runs = [
                measure(workdir, tokenizer_name, pipeline, args.pairs, args.max_len)
                for _ in range(max(1, args.repeat))
            ]
            result = min(runs, key=lambda r: r["seconds"])
            result["all_seconds"] = [r["seconds"] for r in runs]
            result.update(variant=name, tokenizer=tokenizer_name, pipeline=pipeline)
            results.append(result)
            print(
                f"  {tokenizer_name:9} {name:18} {result['seconds']:8.2f} s  "
                f"CPU {result['cpu_seconds']:8.2f} s  load {result['load_average_1min']:.1f}  "
                f"maxrss {_mib(result['maxrss_self_plus_children']):>6} MiB  "
                f"PSS {_mib(result['peak_pss_tree']):>6} MiB",
                flush=True,
            )

    by = {(r["tokenizer"], r["pipeline"]): r for r in results}
    summary = {}
    for tokenizer_name in args.tokenizers:
        ours, book = by[tokenizer_name, "ours"], by[tokenizer_name, "book"]
        cached = by[tokenizer_name, "ours-cached"]
        for pipeline in ("ours-write", "ours-cached", "book"):
            if by[tokenizer_name, pipeline]["check_digest"] != ours["check_digest"]:
                raise SystemExit(f"{tokenizer_name}: {pipeline} built other inputs than ours")
        summary[tokenizer_name] = {
            "speed-up": book["seconds"] / ours["seconds"],
            "CPU time ratio": book["cpu_seconds"] / ours["cpu_seconds"],
            "memory ratio (maxrss self+children)": (
                book["maxrss_self_plus_children"] / ours["maxrss_self_plus_children"]
            ),
            "memory ratio (maxrss above start)": (
                book["maxrss_above_start"] / ours["maxrss_above_start"]
            ),
            "memory ratio (peak PSS of the tree)": book["peak_pss_tree"] / ours["peak_pss_tree"],
            "stored size ratio": book["stored_bytes"] / ours["stored_bytes"],
            "cached load s": cached["seconds"],
        }

    header = (
        "| tokenizer | pipeline | seconds | CPU seconds | peak RSS self+children (MiB) "
        "| above start (MiB) | peak PSS tree (MiB) | stored (MiB) |"
    )
    lines = [header, "|" + " --- |" * 8]
    for r in results:
        lines.append(
            f"| {r['tokenizer']} | {r['variant']} | {r['seconds']:.2f} | {r['cpu_seconds']:.2f} "
            f"| {_mib(r['maxrss_self_plus_children'])} | {_mib(r['maxrss_above_start'])} "
            f"| {_mib(r['peak_pss_tree'])} | {r['stored_bytes'] / 2**20:,.1f} |"
        )
    print()
    print("\n".join(lines))
    print()
    for tokenizer_name, ratios in summary.items():
        parts = [f"{k} {v:.2f}" for k, v in ratios.items()]
        print(f"{tokenizer_name}: " + "; ".join(parts))
    met = {
        tokenizer_name: {
            "speed-up >= 10": ratios["speed-up"] >= TARGETS["speed-up"],
            "memory ratio >= 4": ratios["memory ratio (maxrss self+children)"]
            >= TARGETS["memory ratio"],
            "cached load < 1 s": ratios["cached load s"] < TARGETS["cached load s"],
        }
        for tokenizer_name, ratios in summary.items()
    }
    print("targets:", json.dumps(met))

    args.out.parent.mkdir(parents=True, exist_ok=True)
    report = {
        "command": " ".join([Path(sys.executable).name, *sys.argv]),
        "pairs": args.pairs,
        "max_len": args.max_len,
        "repeat": args.repeat,
        **info,
        "machine": {
            "cpus": os.cpu_count(),
            "memory_gib": round(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30),
            "python": platform.python_version(),
            "platform": platform.platform(),
            "multiprocessing_start_method": multiprocessing.get_start_method(),
            "TOKENIZERS_PARALLELISM": os.environ.get("TOKENIZERS_PARALLELISM"),
            "versions": _versions(),
        },
        "results": results,
        "summary": summary,
        "targets_met": met,
        "table": "\n".join(lines),
    }
    args.out.write_text(json.dumps(report, indent=2) + "\n")
    print(f"written to {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
