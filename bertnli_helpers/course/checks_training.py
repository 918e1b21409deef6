"""Checks of notebooks 4 and 7: the classifier's steps and features, MLM masking.

The function exercises run on generated cases beside the package's own (masking: draw for
draw on the same seed)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from bertnli_helpers.course.checking import (
    Case,
    Rule,
    Verdict,
    check_function,
    expect_equal,
    register,
)


# -- notebook 04 -----------------------------------------------------------------------------------
@register("04 optimizer steps")
def optimizer_steps(answer: Any, *, pairs: int, batch_size: int, epochs: int = 1) -> Verdict:
    """How many optimizer steps a run of ``epochs`` over ``pairs`` in batches of ``batch_size``
    takes, counted by the book's own batch loader (the last, smaller batch is a step too)."""
    from bertnli_helpers.data.dataset import RandomBatchSampler

    expected = len(RandomBatchSampler(pairs, batch_size)) * epochs
    return expect_equal(answer, expected, f"the number of optimizer steps ({pairs:,} pairs, "
                        f"batches of {batch_size}, {epochs} epoch(s))",
                        "One step per batch; a last batch with fewer pairs is a step too.")


@register("04 new parameters")
def new_parameters(answer: Any, *, hidden_size: int, pooling: str) -> Verdict:
    """How many of a classifier's numbers start from random values: measured on a classifier
    built with the package's own ``BERTClassifier`` at that hidden size and pooling."""
    from bertnli_helpers.model.bert import BERTClassifier, BertConfig, PretrainedBERT
    from bertnli_helpers.study.parameters import new_parameter_count

    config = BertConfig(vocab_size=8, hidden_size=hidden_size, num_layers=1, num_heads=1,
                        ffn_size=4, max_len=8)
    expected = new_parameter_count(BERTClassifier(PretrainedBERT(config), pooling=pooling))
    return expect_equal(answer, expected, f"the number of new parameters ({pooling!r} pooling, "
                        f"hidden size {hidden_size})",
                        "Count weights and biases of every layer that is not in the checkpoint: "
                        "the output layer, and for 'pair' the hidden layer that reads "
                        "4 x hidden numbers.")



def _pair_feature_cases(seed: int = 4) -> list[Case]:
    """(encoded, valid_lens, segments) batches: no padding, padding whose states are large (a
    head that averages them is far off), one pair, a one-token side, random shapes."""
    import torch

    generator = torch.Generator().manual_seed(seed)

    def batch(kind: str, p_lens: list[int], h_lens: list[int], seq: int, hidden: int = 4,
              padded: bool = True, pad_value: float = 0.0) -> Case:
        encoded = torch.randn(len(p_lens), seq, hidden, generator=generator)
        segments = torch.zeros(len(p_lens), seq, dtype=torch.long)
        for row, (p, h) in enumerate(zip(p_lens, h_lens)):
            segments[row, p + 2:p + h + 3] = 1  # <cls> p <sep> in 0, h <sep> in 1, padding in 0
            encoded[row, p + h + 3:] += pad_value
        valid = torch.tensor([p + h + 3 for p, h in zip(p_lens, h_lens)]) if padded else None
        return Case(kind, (encoded, valid, segments))

    cases = [batch("no padding (valid_lens is None)", [3, 3], [2, 2], 8, padded=False),
             batch("padded pairs", [5, 2], [3, 1], 11),
             batch("padding holding large values", [4, 1], [2, 2], 12, pad_value=100.0),
             batch("a batch of one pair", [6], [3], 12),
             batch("a one-token hypothesis", [7, 3], [1, 1], 11)]
    for _ in range(8):
        n = int(torch.randint(1, 5, (1,), generator=generator))
        p_lens = torch.randint(0, 9, (n,), generator=generator).tolist()
        h_lens = torch.randint(0, 6, (n,), generator=generator).tolist()
        cases.append(batch("random batches", p_lens, h_lens, max(p_lens) + max(h_lens) + 5,
                           hidden=int(torch.randint(2, 9, (1,), generator=generator))))
    return cases


def _quarters(result: Any) -> list[Any]:
    return list(result.chunk(4, dim=-1))


PAIR_FEATURE_RULES = (
    Rule("it returns a tensor of shape (batch, 4 x hidden)",
         lambda args, r: tuple(r.shape) == (args[0].shape[0], 4 * args[0].shape[2])),
    Rule("the third quarter is |u - v| of the first two quarters, u and v",
         lambda args, r: bool(_close(_quarters(r)[2], (_quarters(r)[0] - _quarters(r)[1]).abs()))),
    Rule("the fourth quarter is u * v",
         lambda args, r: bool(_close(_quarters(r)[3], _quarters(r)[0] * _quarters(r)[1]))),
)


def _close(a: Any, b: Any) -> bool:
    import torch

    return torch.allclose(a.float(), b.float(), atol=1e-5, rtol=1e-4)


@register("04 pair features")
def _pair_features(answer: Callable[..., Any]) -> Verdict:
    """A student's ``my_pair_features(encoded, valid_lens, segments)`` against the package's
    ``PairPooling`` head on the same tensors."""
    from bertnli_helpers.model.bert import PairPooling

    def reference(encoded: Any, valid_lens: Any, segments: Any) -> Any:
        return PairPooling(encoded.shape[-1])(encoded, valid_lens, segments)

    return check_function(answer, reference, _pair_feature_cases(), PAIR_FEATURE_RULES,
                          what="my_pair_features", same=_close,
                          mismatch_hint="u is the mean of the states of segment 0 ([CLS], the "
                                        "premise and the first [SEP]) and v of segment 1, each "
                                        "over the valid positions only: padding counts in "
                                        "neither.")


# the training step: the student's step against the package's train_step, step for step
class _GivenBatch:
    """Stands in for a run's dataset: every batch it is asked for is the one given."""

    def __init__(self, inputs: Any, labels: Any) -> None:
        self.inputs, self.labels = inputs, labels

    def batch(self, indices: Any, pad_to: Any = None) -> tuple[Any, Any]:
        return self.inputs, self.labels


def package_step(model: Any, optimizer: Any, scheduler: Any, inputs: Any, labels: Any,
                 max_grad_norm: float | None = None) -> float:
    """The package's ``train_step`` on one given batch, outside a run (one process, fp32, the
    cross-entropy objective): what a student's ``my_train_step`` must equal, step for step."""
    import torch

    from bertnli_helpers.train.config import TrainConfig
    from bertnli_helpers.train.distributed import DistInfo
    from bertnli_helpers.train.loop import Loop, TrainState, train_step

    config = TrainConfig(max_grad_norm=max_grad_norm, precision="fp32", device="cpu",
                         lr=optimizer.param_groups[0]["lr"] or 1e-3)
    loop = Loop(model, model, _GivenBatch(inputs, labels), None, config, inputs[0].device,
                DistInfo(), None, optimizer, scheduler, torch.amp.GradScaler("cpu", enabled=False),
                None, "fp32", TrainState(config=config, total_steps=1))
    return train_step(loop, range(len(labels)))


@dataclass(frozen=True)
class StepCase:
    """A tiny classifier and the batches of a few consecutive steps; ``kind`` names it in hints."""

    kind: str
    seed: int
    steps: int = 1
    max_grad_norm: float | None = 1.0
    freeze_encoder: bool = False
    leftover_gradients: bool = False  # gradients from an earlier backward lie in .grad
    lr: float = 1e-3


STEP_CASES = (
    StepCase("one step", 0),
    StepCase("one step, another seed and batch", 1),
    StepCase("two steps in a row", 2, steps=2),
    StepCase("gradients left over from an earlier backward", 3, leftover_gradients=True),
    StepCase("a gradient norm far above max_grad_norm", 4, max_grad_norm=1e-3),
    StepCase("no clipping (max_grad_norm None)", 5, max_grad_norm=None),
    StepCase("a frozen encoder", 6, steps=2, freeze_encoder=True),
    StepCase("three steps, warm-up and decay", 7, steps=3),
)


def _step_setup(case: StepCase) -> tuple[Any, Any, Any, list[tuple[Any, Any]]]:
    """A tiny BERT classifier (seeded), its AdamW and warm-up/decay schedule as a run makes
    them, and one batch per step; built twice from one case, the two are identical."""
    import torch

    from bertnli_helpers.model.bert import BERTClassifier, BertConfig, PretrainedBERT
    from bertnli_helpers.train.config import TrainConfig
    from bertnli_helpers.train.optim import make_optimizer, make_scheduler

    torch.manual_seed(case.seed)
    config = BertConfig(vocab_size=40, hidden_size=16, num_layers=1, num_heads=2, ffn_size=32,
                        max_len=16, dropout=0.0)
    model = BERTClassifier(PretrainedBERT(config), freeze_encoder=case.freeze_encoder)
    train_config = TrainConfig(lr=case.lr, weight_decay=0.01, warmup_ratio=0.5, device="cpu")
    optimizer = make_optimizer(model, train_config)
    scheduler = make_scheduler(optimizer, train_config, total_steps=case.steps + 1)
    batches = []
    for _ in range(case.steps):
        size, width = int(torch.randint(2, 6, ())), int(torch.randint(5, 12, ()))
        valid = torch.randint(3, width + 1, (size,))
        positions = torch.arange(width)[None, :]
        segments = ((positions >= valid[:, None] // 2) & (positions < valid[:, None])).long()
        inputs = (torch.randint(0, 40, (size, width)), segments, valid)
        batches.append((inputs, torch.randint(0, 3, (size,))))
    if case.leftover_gradients:  # an earlier backward whose gradients nobody cleared
        model(batches[0][0]).sum().mul(50.0).backward()
    return model, optimizer, scheduler, batches


def _parameters(model: Any) -> list[Any]:
    return [p.detach().clone() for p in model.parameters()]


def _step_mismatch(case: StepCase, step: int, loss: Any, expected_loss: float,
                   before: list[Any], after: list[Any], expected: list[Any],
                   lr: float, expected_lr: float) -> str | None:
    """The rule a student's step broke at ``step`` (0-based) of ``case``, or None."""
    import math

    import torch

    if not isinstance(loss, (int, float)) or not math.isclose(float(loss), expected_loss,
                                                              rel_tol=1e-4, abs_tol=1e-6):
        return ("the loss it returns is not the batch's mean cross-entropy, computed before the "
                "update and returned as a Python number")
    close = all(torch.allclose(a, b, atol=1e-6, rtol=1e-5) for a, b in zip(after, expected))
    unchanged = all(torch.equal(a, b) for a, b in zip(after, before))
    if not math.isclose(lr, expected_lr, rel_tol=1e-6, abs_tol=1e-12):
        return ("the learning rate after the step differs: step the schedule once per "
                "optimisation step, after the optimizer's step")
    if close:
        return None
    if unchanged:
        return ("the parameters did not change: call the optimizer's step after backward, and "
                "do not clear the gradients between the two")
    if case.leftover_gradients or step > 0:
        return (f"the parameters differ after {'the step' if step == 0 else f'{step + 1} steps'}: "
                "are old gradients cleared before each backward?")
    if case.max_grad_norm is not None and case.max_grad_norm < 0.01:
        return ("the parameters differ when the gradients are large: clip their total norm to "
                "max_grad_norm after backward and before the optimizer's step (and only when "
                "max_grad_norm is not None)")
    return ("the parameters differ after the step: in order, clear the old gradients, forward, "
            "mean cross-entropy of the logits against the labels, backward, clip to "
            "max_grad_norm, the optimizer's step, the schedule's step")


def _run_step_case(answer: Callable[..., Any], case: StepCase) -> Verdict | None:
    """The student's step and the package's on two identical set-ups; a failing Verdict, or
    None when every step of the case agrees."""
    ours, theirs = _step_setup(case), _step_setup(case)
    for step, ((inputs, labels), _) in enumerate(zip(theirs[3], ours[3])):
        before = _parameters(theirs[0])
        expected_loss = package_step(*ours[:3], inputs, labels, case.max_grad_norm)
        try:
            loss = answer(*theirs[:3], inputs, labels, case.max_grad_norm)
        except Exception as error:  # a student's bug is the finding, not a crash
            return Verdict(False, f"my_train_step raised {type(error).__name__} ({error}) on a "
                                  f"case with {case.kind}.", reference=package_step)
        if loss is None:
            return Verdict(False, "Write the body of my_train_step above (it still returns "
                                  "None), then run this cell.", answered=False,
                           reference=package_step)
        broken = _step_mismatch(case, step, loss, expected_loss, before, _parameters(theirs[0]),
                                _parameters(ours[0]), theirs[2].get_last_lr()[0],
                                ours[2].get_last_lr()[0])
        if broken is not None:
            end = "" if broken.endswith("?") else "."
            return Verdict(False, f"On a case with {case.kind}, my_train_step differs from the "
                                  f"package's train_step: {broken}{end}", reference=package_step)
    return None


@register("04 train step")
def _train_step(answer: Callable[..., Any]) -> Verdict:
    """A student's ``my_train_step(model, optimizer, scheduler, inputs, labels, max_grad_norm)``
    against the package's ``train_step`` on identical tiny classifiers: the same loss, the same
    parameters and learning rate after every step of every case."""
    if not callable(answer):
        return Verdict(False, "The answer is a function: my_train_step(model, optimizer, "
                              "scheduler, inputs, labels, max_grad_norm).", reference=package_step)
    for case in STEP_CASES:
        failed = _run_step_case(answer, case)
        if failed is not None:
            return failed
    steps = sum(case.steps for case in STEP_CASES)
    return Verdict(True, f"my_train_step gives the package's loss, parameters and learning rate "
                         f"on all {len(STEP_CASES)} cases ({steps} steps: leftover gradients, "
                         "clipping, no clipping, a frozen encoder, several steps in a row).",
                   reference=package_step)


# -- notebook 07 -----------------------------------------------------------------------------------

def _masking_cases(seed: int = 5) -> list[Case]:
    """(tokens, candidates, num_preds, vocab, rng) calls on a small vocabulary: no prediction,
    one, more than the candidates, no candidates, and pairs of random length with random seeds."""
    import random
    from collections import Counter

    from bertnli_helpers.data.tokenization import build_book_vocab

    words = [f"w{i}" for i in range(30)]
    vocab = build_book_vocab(Counter({word: 5 for word in words}), min_freq=1)
    draw = random.Random(seed)

    def case(kind: str, length: int, num_preds: int, with_candidates: bool = True) -> Case:
        tokens = ["<cls>", *draw.choices(words, k=length), "<sep>"]
        candidates = list(range(1, length + 1)) if with_candidates else []
        return Case(kind, (tokens, candidates, num_preds, vocab, random.Random(draw.random())))

    cases = [case("no token to predict", 6, 0), case("one token to predict", 6, 1),
             case("more to predict than candidates", 3, 5), case("no candidates", 4, 2, False)]
    cases += [case("random pairs and seeds", draw.randint(1, 40), draw.randint(1, 8))
              for _ in range(60)]
    return cases


def _targets_ok(args: tuple, r: Any) -> bool:
    """The targets: min(num_preds, candidates) distinct candidate positions, each with the
    token that stood there."""
    tokens, candidates, num_preds = args[:3]
    positions = [position for position, _ in r[1]]
    return (len(positions) == min(num_preds, len(candidates)) == len(set(positions))
            and set(positions) <= set(candidates)
            and all(original == tokens[position] for position, original in r[1]))


MASKING_RULES = (
    Rule("it returns (masked tokens, targets): a list as long as the tokens, and a list of "
         "(position, original token) pairs",
         lambda args, r: len(r) == 2 and isinstance(r[0], list) and len(r[0]) == len(args[0])
         and all(len(target) == 2 for target in r[1])),
    Rule("the first num_preds of the shuffled candidates are the targets (all of them when "
         "there are fewer), each with the token that stood there",
         _targets_ok),
    Rule("only target positions change",
         lambda args, r: all(new == old for i, (new, old) in enumerate(zip(r[0], args[0]))
                             if i not in {position for position, _ in r[1]})),
    Rule("a target becomes <mask>, stays, or becomes a vocabulary token",
         lambda args, r: all(r[0][position] in args[3].token_to_idx for position, _ in r[1])),
)


@register("07 mlm masking")
def _mlm_masking(answer: Callable[..., Any]) -> Verdict:
    """A student's ``my_replace_mlm_tokens(tokens, candidates, num_preds, vocab, rng)`` against
    ``pretraining.replace_mlm_tokens``: the same draws from the same seed, so equal results."""
    from bertnli_helpers.train.pretraining import replace_mlm_tokens

    return check_function(answer, replace_mlm_tokens, _masking_cases(), MASKING_RULES,
                          what="my_replace_mlm_tokens",
                          mismatch_hint="Draw as the book does, from the rng given: shuffle the "
                                        "candidates once; then per target one rng.random() < 0.8 "
                                        "for <mask>, else a second rng.random() < 0.5 to keep "
                                        "the token, else rng.choice(vocab.idx_to_token).")
