"""Exercise checks: every registered check accepts the right answer and rejects a wrong one
with a hint that never holds the expected value; an unanswered cell says so."""

from __future__ import annotations

import re

import pytest

from bertnli_helpers.course.exercises import (
    CHECKS,
    ExerciseNotPassed,
    Verdict,
    check,
    expect_equal,
    register,
    student_or_reference,
)


def fails(name, answer, **given) -> str:
    """The hint of a wrong answer: check raises ExerciseNotPassed, and neither the hint nor
    Jupyter's one-line rendering of it holds the reference answer."""
    with pytest.raises(ExerciseNotPassed) as caught:
        check(name, answer, **given)
    failed = caught.value
    assert isinstance(failed, AssertionError) and failed.verdict.answered
    shown = str(failed) + "".join(failed._render_traceback_())
    reference = failed.verdict.reference
    if reference is not None and not callable(reference):
        for form in {repr(reference), str(reference)} - {repr(answer), str(answer)}:
            alone = rf"(?<![\w.]){re.escape(form)}(?!\w|\.\d)"  # 2 is not in 512
            assert not re.search(alone, shown), f"the hint gives the expected value away: {shown}"
    return failed.verdict.message


def unanswered(name, answer=None, **given) -> str:
    with pytest.raises(ExerciseNotPassed) as caught:
        check(name, answer, **given)
    verdict = caught.value.verdict
    assert not verdict.answered and caught.value._render_traceback_()[0].startswith("✏️")
    return verdict.message


def unanswered_says_so(name) -> None:
    """A function answer still the stub and an answer cell left empty both say "not answered"."""
    assert "still returns None" in unanswered(name, _stub)
    assert "Write your answer" in unanswered(name)


def test_expect_equal_says_what_and_why_but_not_the_expected_value():
    assert expect_equal(3, 3, "the number of special tokens")
    wrong = expect_equal(2, 3, "the number of special tokens", "Count <cls> and both <sep>.")
    assert not wrong and "is not 2" in str(wrong) and "<sep>" in str(wrong)
    assert "3" not in str(wrong) and wrong.reference == 3
    assert wrong._repr_markdown_().startswith("❌")


def test_check_returns_when_right_raises_when_wrong_and_reveals_on_request():
    @register("test-only: twice")
    def twice(answer, *, x):
        return expect_equal(answer, 2 * x, "twice x")

    try:
        assert isinstance(check("test-only: twice", 6, x=3), Verdict)
        with pytest.raises(ExerciseNotPassed, match="twice x is not 5") as caught:
            check("test-only: twice", 5, x=3)
        assert caught.value._render_traceback_() == [f"❌ {caught.value}"]
        with pytest.raises(ExerciseNotPassed, match="Reference answer: 6"):
            check("test-only: twice", 5, x=3, reveal=True)
        assert "Reference answer: 6" in check("test-only: twice", 6, x=3, reveal=True).message
        with pytest.raises(ValueError, match="already registered"):
            register("test-only: twice")(twice)
    finally:
        del CHECKS["test-only: twice"]
    with pytest.raises(KeyError, match="no check named"):
        check("nowhere", 1)


def test_an_answer_of_the_wrong_kind_is_wrong_in_one_line():
    assert "not of the kind" in fails("05 uniform cross share", [0.5], segments=[0, 0, 1])
    assert "not of the kind" in fails("03 ratio lengths", 5, p_len=3, h_len=4, budget=5)


def test_an_unanswered_check_asks_for_an_answer_and_gives_nothing_away():
    for name, given in [("04 optimizer steps", {"pairs": 1000, "batch_size": 512}),
                        ("04 new parameters", {"hidden_size": 384, "pooling": "pair"})]:
        with pytest.raises(ExerciseNotPassed) as caught:
            check(name, None, **given)
        verdict = caught.value.verdict
        assert not verdict and not verdict.answered
        rendered = caught.value._render_traceback_()
        assert rendered == [f"✏️ {name}: {verdict.message}"]
        shown = str(verdict) + verdict._repr_markdown_() + rendered[0].removeprefix(f"✏️ {name}")
        assert "write your answer above" in shown.lower() and "run this cell" in shown
        assert "❌" not in shown and "not None" not in shown and not any(c.isdigit() for c in shown)
    assert "not 3" in fails("04 optimizer steps", 3, pairs=1000, batch_size=512)


# -- notebooks 01-03: each check accepts the right answer and says why a wrong one is wrong ----

@pytest.fixture(scope="module")
def book_vocab(snli_dir):
    from bertnli_helpers.data.snli import read_records
    from bertnli_helpers.data.tokenization import book_word_counts, build_book_vocab

    premises, hypotheses, _ = read_records(snli_dir, "train").triple("book")
    counts = book_word_counts(premises + hypotheses)
    return counts, build_book_vocab(counts)


def test_01_embedding_share_counts_every_embedding_table():
    from bertnli_helpers.course.exercises import embedding_share
    from bertnli_helpers.model.pretrained import load_pretrained

    bert, _ = load_pretrained("scratch")
    share = embedding_share(bert)
    assert 0 < share < 1 and check("01 embedding share", share, model=bert)
    token_only = bert.encoder.token_embedding.weight.numel() / sum(
        p.numel() for p in bert.parameters())
    assert "position and segment" in fails("01 embedding share", token_only, model=bert)


def test_01_packed_pair_and_swapped_pair():
    from bertnli_helpers.model.pretrained import load_pretrained

    _, tok = load_pretrained("minilm")
    given = {"tokenizer": tok, "premise": "A dog runs.", "hypothesis": "An animal moves."}
    right = (["[CLS]", "a", "dog", "runs", ".", "[SEP]", "an", "animal", "moves", ".", "[SEP]"],
             [0] * 6 + [1] * 5)
    assert check("01 packed pair", right, **given).message.startswith("The segment ids are [0,")
    assert "segment ids" in fails("01 packed pair", (right[0], [0] * 5 + [1] * 6), **given)
    assert check("01 swapped pair", ["segment", "position"])
    assert "token row" in check("01 swapped pair", {"segment", "position"}).message
    assert "never changes" in fails("01 swapped pair", {"token", "segment"})
    assert "segment id" in fails("01 swapped pair", {"segment"})


def test_01_unknown_words(book_vocab):
    _, vocab = book_vocab
    text = "A dog zzqx runs qqwy."
    assert check("01 unknown words", 2, tokenizer=vocab, text=text)
    hint = fails("01 unknown words", 1, tokenizer=vocab, text=text)
    assert "unk_id" in hint and "zzqx" not in hint


def test_02_vocabulary_size_unknown_by_side_and_padding(book_vocab):
    from bertnli_helpers.data.tokenization import BOOK_RESERVED

    counts, vocab = book_vocab
    words = sum(c >= 10 for c in counts.values())
    assert check("02 vocabulary size", words + len(BOOK_RESERVED), word_counts=counts, min_freq=10)
    assert "reserved" in fails("02 vocabulary size", words, word_counts=counts, min_freq=10)
    given = {"tokenizer": vocab, "premises": ["a dog zzqx"], "hypotheses": ["qqwy qqwy"]}
    assert check("02 unknown by side", {"premise": 1 / 3, "hypothesis": 1.0}, **given)
    fails("02 unknown by side", {"premise": 2, "hypothesis": 1}, **given)
    lengths = [5, 5, 9, 9]  # pools of 2 batches of 2 sort each pool: no padding at all
    assert check("02 padding share", 0.0, lengths=lengths, batch_size=2, pool_batches=2, seed=0)
    fails("02 padding share", 0.3, lengths=lengths, batch_size=2, pool_batches=2, seed=0)


def test_03_truncated_pair_and_ratio_lengths():
    premise, hypothesis = ["a", "man", "in", "a", "red", "shirt", "sleeps"], ["a", "man", "sleeps"]
    given = {"premise": premise, "hypothesis": hypothesis, "max_len": 10}
    right = (premise[:4], hypothesis)  # budget 7: the longer side is cut from its end
    assert check("03 truncated pair", right, strategy="longest_first", **given)
    too_many = fails("03 truncated pair", (premise[:5], hypothesis), strategy="longest_first",
                     **given)
    assert "minus the 3 special tokens" in too_many
    wrong_side = fails("03 truncated pair", (premise[:5], hypothesis[:2]),
                       strategy="longest_first", **given)
    assert "which side" in wrong_side
    assert check("03 ratio lengths", (2, 3), p_len=3, h_len=4, budget=5)
    fails("03 ratio lengths", (3, 2), p_len=3, h_len=4, budget=5)


# -- notebook 04 -----------------------------------------------------------------------------------
def test_04_optimizer_steps_counts_the_last_short_batch():
    assert check("04 optimizer steps", 2, pairs=1000, batch_size=512)
    assert check("04 optimizer steps", 126, pairs=1000, batch_size=16, epochs=2)
    assert "not 1" in fails("04 optimizer steps", 1, pairs=1000, batch_size=512)


def test_04_new_parameters_counts_what_the_checkpoint_does_not_hold():
    assert check("04 new parameters", 384 * 3 + 3, hidden_size=384, pooling="cls")
    pair = 4 * 384 * 384 + 384 + 384 * 3 + 3
    assert check("04 new parameters", pair, hidden_size=384, pooling="pair")
    fails("04 new parameters", 384 * 3 + 3, hidden_size=384, pooling="pair")


# -- every registered check: right answers pass, wrong ones fail with a reason -----------------
def test_05_hard_errors():
    correct, hard = [True, False, False, True, False], [True, True, False, False, True]
    assert check("05 hard errors", 2, correct=correct, hard=hard)
    fails("05 hard errors", 3, correct=correct, hard=hard)


def test_05_best_temperature():
    import numpy as np

    rng = np.random.default_rng(0)
    labels = rng.integers(0, 3, 300)
    logits = rng.normal(size=(300, 3))
    logits[np.arange(300), labels] += 1.0
    sharp = np.exp(3 * logits) / np.exp(3 * logits).sum(1, keepdims=True)  # over-confident
    grid = np.linspace(0.5, 3, 26)
    right = check("05 best temperature", 3.0, probs=sharp, labels=labels, grid=grid)
    assert right, right.message  # dividing by 3 undoes the sharpening
    assert "cross-entropy" in fails("05 best temperature", 1.0, probs=sharp, labels=labels,
                                    grid=grid)


def test_05_uniform_cross_share():
    segments = [0, 0, 0, 0, 1, 1]
    assert check("05 uniform cross share", 2 * 4 * 2 / 36, segments=segments)
    fails("05 uniform cross share", 0.5, segments=segments)


def test_06_runs_that_learned():
    from types import SimpleNamespace

    import numpy as np

    labels = np.array([0, 1, 2] * 100)
    learned = SimpleNamespace(correct=np.ones(300, dtype=bool), labels=labels)
    idle = SimpleNamespace(correct=labels == 0, labels=labels)  # always answers class 0
    grid = SimpleNamespace(cells=[learned, idle, learned])
    assert check("06 runs that learned", 2, grid=grid)
    fails("06 runs that learned", 3, grid=grid)


def test_06_strategies_that_keep_the_hypothesis():
    given = dict(p_lens=[20, 5, 12], h_lens=[6, 4, 3], max_len=16,
                 strategies=["longest_first", "ratio", "only_premise"])
    assert check("06 strategies that keep the hypothesis", ["longest_first", "only_premise"],
                 **given)
    fails("06 strategies that keep the hypothesis", "only_premise", **given)


def test_06_training_pflop():
    from bertnli_helpers.model.bert import BertConfig
    from bertnli_helpers.study.costs import training_flops

    config = BertConfig(vocab_size=30522, hidden_size=768, num_layers=12, num_heads=12,
                        ffn_size=3072)
    lengths = [25, 30, 27]
    expected = training_flops(config, lengths) / 3 * 549_367 * 3 / 1e15
    assert check("06 training PFLOP", expected * 1.02, config=config, lengths=lengths,
                 pairs=549_367, epochs=3)
    fails("06 training PFLOP", expected / 3, config=config, lengths=lengths,
                     pairs=549_367, epochs=3)


def test_every_check_has_a_test_here():
    import inspect
    import sys
    from pathlib import Path

    here = Path(__file__).parent  # this file and the test_exercises_*.py files beside it
    source = inspect.getsource(sys.modules[__name__]) + "".join(
        path.read_text() for path in sorted(here.glob("test_exercises_*.py")))
    assert all(f'"{name}"' in source for name in CHECKS if not name.startswith("test-only"))


# -- function exercises: the reference passes, typical mistakes fail with the case and the rule --
def _stub(*args):
    answer = None  # your answer  (what the student edition's function body holds)
    return answer


def _plain_rounding(p, h, budget):
    if len(p) + len(h) <= budget:
        return list(p), list(h)
    total = len(p) + len(h)
    return list(p[:round(budget * len(p) / total)]), list(h[:round(budget * len(h) / total)])


def _floor_only(p, h, budget):  # forgets that a side whose share rounds to 0 keeps a token
    if len(p) + len(h) <= budget:
        return list(p), list(h)
    keep_p = budget * len(p) // (len(p) + len(h))
    return list(p[:keep_p]), list(h[:budget - keep_p])


def _suffixes(p, h, budget):  # the right counts, taken from each side's end
    from bertnli_helpers.data.truncation import ratio_lengths

    keep_p, keep_h = ratio_lengths(len(p), len(h), budget)
    return list(p[len(p) - keep_p:]), list(h[len(h) - keep_h:])


def _always_whole(p, h, budget):
    return list(p), list(h)


def test_03_my_ratio_reference_passes_and_mistakes_name_the_case_and_the_rule():
    from bertnli_helpers.data.truncation import ratio

    right = check("03 my ratio", ratio)
    assert "cases" in right.message and "budget 0" not in right.message
    assert "budget 1" in fails("03 my ratio", _plain_rounding)
    floor = fails("03 my ratio", _floor_only)
    assert "one-token premise" in floor and "no side is emptied" in floor
    assert "first tokens, in their order" in fails("03 my ratio", _suffixes)
    assert "add up to the budget" in fails("03 my ratio", _always_whole)
    unanswered_says_so("03 my ratio")
    with pytest.raises(ExerciseNotPassed, match="def ratio"):  # reveal shows the source
        check("03 my ratio", _floor_only, reveal=True)


def test_student_or_reference_falls_back_with_one_line(capsys):
    from bertnli_helpers.data.truncation import ratio

    assert student_or_reference(_suffixes, "03 my ratio") is ratio
    assert capsys.readouterr().out.count("\n") == 1
    assert student_or_reference(_stub, "03 my ratio") is ratio
    mine = lambda p, h, budget: ratio(p, h, budget)  # noqa: E731 - a student's right answer
    assert student_or_reference(mine, "03 my ratio") is mine
    assert capsys.readouterr().out.count("\n") == 1  # the stub's line only


def test_01_pack_pair_function():
    from bertnli_helpers.model.pretrained import load_pretrained

    _, tok = load_pretrained("minilm")

    def right(p, h, cls, sep):
        return [cls, *p, sep, *h, sep], [0] * (len(p) + 2) + [1] * (len(h) + 1)

    def no_last_sep(p, h, cls, sep):
        return [cls, *p, sep, *h], [0] * (len(p) + 2) + [1] * len(h)

    def segments_shifted(p, h, cls, sep):  # the first [SEP] counted with the hypothesis
        return [cls, *p, sep, *h, sep], [0] * (len(p) + 1) + [1] * (len(h) + 2)

    def swapped(p, h, cls, sep):
        return right(h, p, cls, sep)

    assert check("01 pack pair", right, tokenizer=tok)
    assert "ends with [SEP]" in fails("01 pack pair", no_last_sep, tokenizer=tok)
    assert "segment ids are 0" in fails("01 pack pair", segments_shifted, tokenizer=tok)
    assert "the premise first" in fails("01 pack pair", swapped, tokenizer=tok)
    assert "still returns None" in unanswered("01 pack pair", _stub, tokenizer=tok)


def test_02_padding_share_function():
    from bertnli_helpers.data.dataset import padding_share

    def mean_of_batches(lengths, batches):
        shares = [1 - sum(lengths[i] for i in b) / (max(lengths[i] for i in b) * len(b))
                  for b in batches]
        return sum(shares) / len(shares)

    def against_global_max(lengths, batches):
        return 1 - sum(lengths) / (max(lengths) * len(lengths))

    def real_over_computed(lengths, batches):
        return 1 - padding_share(lengths, batches)

    assert check("02 padding share function", padding_share)
    assert "not a mean of per-batch shares" in fails("02 padding share function", mean_of_batches)
    assert "equally long" in fails("02 padding share function", against_global_max)
    assert "from 0" in fails("02 padding share function", real_over_computed)
    assert "still returns None" in unanswered("02 padding share function", _stub)


def test_04_pair_features_function():
    import torch

    from bertnli_helpers.model.bert import PairPooling

    def right(encoded, valid_lens, segments):
        return PairPooling(encoded.shape[-1])(encoded, valid_lens, segments)

    def ignores_padding_mask(encoded, valid_lens, segments):  # padding (segment 0) joins u
        keep = [(segments == side).unsqueeze(-1).float() for side in (0, 1)]
        u, v = ((encoded * k).sum(1) / k.sum(1).clamp(min=1) for k in keep)
        return torch.cat([u, v, (u - v).abs(), u * v], -1)

    def signed_difference(encoded, valid_lens, segments):
        u, v, _, product = right(encoded, valid_lens, segments).chunk(4, -1)
        return torch.cat([u, v, u - v, product], -1)

    def only_u_and_v(encoded, valid_lens, segments):
        return right(encoded, valid_lens, segments).chunk(2, -1)[0]

    assert check("04 pair features", right)
    assert "padding" in fails("04 pair features", ignores_padding_mask)
    assert "|u - v|" in fails("04 pair features", signed_difference)
    assert "shape (batch, 4 x hidden)" in fails("04 pair features", only_u_and_v)
    assert "still returns None" in unanswered("04 pair features", _stub)


def test_07_mlm_masking_function():
    from bertnli_helpers.train.pretraining import replace_mlm_tokens

    def always_mask(tokens, candidates, num_preds, vocab, rng):
        masked = list(tokens)
        rng.shuffle(candidates)
        for position in candidates[:num_preds]:
            masked[position] = "<mask>"
        return masked, [(p, tokens[p]) for p in candidates[:num_preds]]

    def every_candidate(tokens, candidates, num_preds, vocab, rng):
        return replace_mlm_tokens(tokens, candidates, len(candidates), vocab, rng)

    def records_the_new_token(tokens, candidates, num_preds, vocab, rng):
        masked, targets = replace_mlm_tokens(tokens, candidates, num_preds, vocab, rng)
        return masked, [(p, masked[p]) for p, _ in targets]

    assert check("07 mlm masking", replace_mlm_tokens)
    assert "rng.random() < 0.8" in fails("07 mlm masking", always_mask)
    assert "first num_preds" in fails("07 mlm masking", every_candidate)
    assert "the token that stood there" in fails("07 mlm masking", records_the_new_token)
    assert "still returns None" in unanswered("07 mlm masking", _stub)


def test_05_confusion_matrix_function():
    import numpy as np

    def right(gold, predicted):
        table = np.zeros((3, 3), dtype=int)
        for g, p in zip(gold, predicted):
            table[g, p] += 1
        return table

    def transposed(gold, predicted):
        return right(gold, predicted).T

    def seen_classes_only(gold, predicted):
        classes = sorted(set(gold) | set(predicted))
        return [[sum(g == a and p == b for g, p in zip(gold, predicted)) for b in classes]
                for a in classes]

    def row_shares(gold, predicted):
        table = right(gold, predicted)
        return table / np.maximum(table.sum(1, keepdims=True), 1)

    assert check("05 confusion matrix", right)
    assert "gold in rows" in fails("05 confusion matrix", transposed)
    assert "absent classes included" in fails("05 confusion matrix", seen_classes_only)
    assert "add up to the number of pairs" in fails("05 confusion matrix", row_shares)
    assert "still returns None" in unanswered("05 confusion matrix", _stub)
