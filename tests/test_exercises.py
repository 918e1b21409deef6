"""Exercise checks: every registered check accepts the right answer and rejects a wrong one."""

from __future__ import annotations

import pytest

from bertnli_helpers.course.exercises import CHECKS, Verdict, check, expect_equal, register


def test_expect_equal_says_what_and_why():
    assert expect_equal(3, 3, "the number of special tokens")
    wrong = expect_equal(2, 3, "the number of special tokens", "Count <cls> and both <sep>.")
    assert not wrong and "should be 3, not 2" in str(wrong) and "<sep>" in str(wrong)
    assert wrong._repr_markdown_().startswith("❌")


def test_checks_are_found_by_name_and_names_are_unique():
    @register("test-only: twice")
    def twice(answer, *, x):
        return expect_equal(answer, 2 * x, "twice x")

    try:
        assert check("test-only: twice", 6, x=3) and not check("test-only: twice", 5, x=3)
        with pytest.raises(ValueError, match="already registered"):
            register("test-only: twice")(twice)
    finally:
        del CHECKS["test-only: twice"]
    with pytest.raises(KeyError, match="no check named"):
        check("nowhere", 1)
    assert isinstance(Verdict(True, "ok"), Verdict)



def test_an_unanswered_check_asks_for_an_answer_and_gives_nothing_away():
    for name, given in [("04 optimizer steps", {"pairs": 1000, "batch_size": 512}),
                        ("04 new parameters", {"hidden_size": 384, "pooling": "pair"})]:
        verdict = check(name, None, **given)
        assert not verdict and not verdict.answered
        shown = str(verdict) + verdict._repr_markdown_()
        assert "write your answer above" in shown.lower() and "run this cell" in shown
        assert "❌" not in shown and "not None" not in shown and not any(c.isdigit() for c in shown)
    answered = check("04 optimizer steps", 3, pairs=1000, batch_size=512)
    assert answered.answered and "should be 2" in str(answered)  # a wrong answer still gets why

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
    wrong = check("01 embedding share", token_only, model=bert)
    assert not wrong and "position and segment" in wrong.message


def test_01_packed_pair_and_swapped_pair():
    from bertnli_helpers.model.pretrained import load_pretrained

    _, tok = load_pretrained("minilm")
    given = {"tokenizer": tok, "premise": "A dog runs.", "hypothesis": "An animal moves."}
    right = (["[CLS]", "a", "dog", "runs", ".", "[SEP]", "an", "animal", "moves", ".", "[SEP]"],
             [0] * 6 + [1] * 5)
    assert check("01 packed pair", right, **given).message.startswith("The segment ids are [0,")
    wrong = check("01 packed pair", (right[0], [0] * 5 + [1] * 6), **given)
    assert not wrong and "segment ids" in wrong.message
    assert check("01 swapped pair", ["segment", "position"])
    assert "token row" in check("01 swapped pair", {"segment", "position"}).message
    assert "never changes" in check("01 swapped pair", {"token", "segment"}).message


def test_01_unknown_words(book_vocab):
    _, vocab = book_vocab
    text = "A dog zzqx runs qqwy."
    assert check("01 unknown words", 2, tokenizer=vocab, text=text)
    wrong = check("01 unknown words", 1, tokenizer=vocab, text=text)
    assert not wrong and "zzqx" in wrong.message


def test_02_vocabulary_size_unknown_by_side_and_padding(book_vocab):
    from bertnli_helpers.data.tokenization import BOOK_RESERVED

    counts, vocab = book_vocab
    words = sum(c >= 10 for c in counts.values())
    assert check("02 vocabulary size", words + len(BOOK_RESERVED), word_counts=counts, min_freq=10)
    assert "reserved" in check("02 vocabulary size", words, word_counts=counts, min_freq=10).message
    given = {"tokenizer": vocab, "premises": ["a dog zzqx"], "hypotheses": ["qqwy qqwy"]}
    assert check("02 unknown by side", {"premise": 1, "hypothesis": 2}, **given)
    assert not check("02 unknown by side", {"premise": 2, "hypothesis": 1}, **given)
    lengths = [5, 5, 9, 9]  # pools of 2 batches of 2 sort each pool: no padding at all
    assert check("02 padding share", 0.0, lengths=lengths, batch_size=2, pool_batches=2, seed=0)
    assert not check("02 padding share", 0.3, lengths=lengths, batch_size=2, pool_batches=2, seed=0)


def test_03_truncated_pair_and_ratio_lengths():
    premise, hypothesis = ["a", "man", "in", "a", "red", "shirt", "sleeps"], ["a", "man", "sleeps"]
    given = {"premise": premise, "hypothesis": hypothesis, "max_len": 10}
    right = (premise[:4], hypothesis)  # budget 7: the longer side is cut from its end
    assert check("03 truncated pair", right, strategy="longest_first", **given)
    too_many = check("03 truncated pair", (premise[:5], hypothesis), strategy="longest_first",
                     **given)
    assert not too_many and "keeps 7 tokens" in too_many.message
    wrong_side = check("03 truncated pair", (premise[:5], hypothesis[:2]),
                       strategy="longest_first", **given)
    assert not wrong_side and "which side" in wrong_side.message
    assert check("03 ratio lengths", (2, 3), p_len=3, h_len=4, budget=5)
    assert not check("03 ratio lengths", (3, 2), p_len=3, h_len=4, budget=5)


# -- notebook 04 -----------------------------------------------------------------------------------
def test_04_optimizer_steps_counts_the_last_short_batch():
    assert check("04 optimizer steps", 2, pairs=1000, batch_size=512)
    assert check("04 optimizer steps", 126, pairs=1000, batch_size=16, epochs=2)
    wrong = check("04 optimizer steps", 1, pairs=1000, batch_size=512)
    assert not wrong and "should be 2, not 1" in str(wrong)


def test_04_new_parameters_counts_what_the_checkpoint_does_not_hold():
    assert check("04 new parameters", 384 * 3 + 3, hidden_size=384, pooling="cls")
    pair = 4 * 384 * 384 + 384 + 384 * 3 + 3
    assert check("04 new parameters", pair, hidden_size=384, pooling="pair")
    assert not check("04 new parameters", 384 * 3 + 3, hidden_size=384, pooling="pair")


# -- every registered check: right answers pass, wrong ones fail with a reason -----------------
def test_05_hard_errors():
    correct, hard = [True, False, False, True, False], [True, True, False, False, True]
    assert check("05 hard errors", 2, correct=correct, hard=hard)
    assert not check("05 hard errors", 3, correct=correct, hard=hard)


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
    wrong = check("05 best temperature", 1.0, probs=sharp, labels=labels, grid=grid)
    assert not wrong and "cross-entropy" in wrong.message


def test_05_uniform_cross_share():
    segments = [0, 0, 0, 0, 1, 1]
    assert check("05 uniform cross share", 2 * 4 * 2 / 36, segments=segments)
    assert not check("05 uniform cross share", 0.5, segments=segments)


def test_06_runs_that_learned():
    from types import SimpleNamespace

    import numpy as np

    labels = np.array([0, 1, 2] * 100)
    learned = SimpleNamespace(correct=np.ones(300, dtype=bool), labels=labels)
    idle = SimpleNamespace(correct=labels == 0, labels=labels)  # always answers class 0
    grid = SimpleNamespace(cells=[learned, idle, learned])
    assert check("06 runs that learned", 2, grid=grid)
    assert not check("06 runs that learned", 3, grid=grid)


def test_06_strategies_that_keep_the_hypothesis():
    given = dict(p_lens=[20, 5, 12], h_lens=[6, 4, 3], max_len=16,
                 strategies=["longest_first", "ratio", "only_premise"])
    assert check("06 strategies that keep the hypothesis", ["longest_first", "only_premise"],
                 **given)
    assert not check("06 strategies that keep the hypothesis", "only_premise", **given)


def test_06_training_pflop():
    from bertnli_helpers.model.bert import BertConfig
    from bertnli_helpers.study.costs import training_flops

    config = BertConfig(vocab_size=30522, hidden_size=768, num_layers=12, num_heads=12,
                        ffn_size=3072)
    lengths = [25, 30, 27]
    expected = training_flops(config, lengths) / 3 * 549_367 * 3 / 1e15
    assert check("06 training PFLOP", expected * 1.02, config=config, lengths=lengths,
                 pairs=549_367, epochs=3)
    assert not check("06 training PFLOP", expected / 3, config=config, lengths=lengths,
                     pairs=549_367, epochs=3)


def test_every_check_has_a_test_here():
    import inspect
    import sys

    source = inspect.getsource(sys.modules[__name__])
    assert all(f'"{name}"' in source for name in CHECKS if not name.startswith("test-only"))
