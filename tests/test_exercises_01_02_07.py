"""The function exercises of notebooks 1 and 2 that the notebooks then use: padding a packed
pair (``01 pad pair``) and the book's word vocabulary (``02 my vocab``). The reference passes,
typical mistakes fail with a hint naming the case and the rule (never the expected value), the
stub is unanswered, and the notebooks' own cells pass in the teacher edition and ask in the
student edition."""

from __future__ import annotations

from collections import Counter

import pytest
from test_exercises import _stub, fails, unanswered, unanswered_says_so
from test_notebooks import STUB, _exercises, student_edition

from bertnli_helpers.course.exercises import ExerciseNotPassed, check, student_or_reference
from bertnli_helpers.data.dataset import SNLIBERTDataset, pad_packed
from bertnli_helpers.data.tokenization import (
    BOOK_RESERVED,
    book_vocab_tokens,
    build_book_vocab,
)

# -- 01 pad pair --------------------------------------------------------------------------------

def test_pad_packed_pads_as_the_dataset_pads_its_batches(dev_raw):
    from bertnli_helpers.model.pretrained import load_pretrained

    _, tok = load_pretrained("minilm")
    data = SNLIBERTDataset([part[:6] for part in dev_raw], tok, max_len=64, cache=False)
    (tokens, segments, valid), _ = data.batch(range(6), pad_to=64)
    for i in range(6):
        ids, segs, _ = data[i][0]
        assert pad_packed(ids.tolist(), segs.tolist(), 64, tok.pad_id) == (
            tokens[i].tolist(), segments[i].tolist(), int(valid[i]))
    with pytest.raises(ValueError, match="truncate it first"):
        pad_packed([101, 102, 102], [0, 0, 1], 2, 0)


def _segments_padded_with_one(ids, segments, max_len, pad_id):  # the hypothesis runs on
    if len(ids) > max_len:
        raise ValueError("too long")
    extra = max_len - len(ids)
    return [*ids, *[pad_id] * extra], [*segments, *[1] * extra], len(ids)


def _valid_len_is_the_width(ids, segments, max_len, pad_id):
    padded, segs, _ = pad_packed(ids, segments, max_len, pad_id)
    return padded, segs, max_len


def _cuts_a_long_pair(ids, segments, max_len, pad_id):  # truncates instead of refusing
    ids, segments = list(ids[:max_len]), list(segments[:max_len])
    return pad_packed(ids, segments, max_len, pad_id)


def _pads_with_zero(ids, segments, max_len, pad_id):  # 0 is minilm's [PAD], not every vocabulary's
    return pad_packed(ids, segments, max_len, 0)


def test_01_pad_pair_function():
    right = check("01 pad pair", pad_packed)
    assert "cases" in right.message
    hint = fails("01 pad pair", _segments_padded_with_one)
    assert "then 0 on every padding position" in hint and "an empty premise" in hint
    assert "valid_len is the pair's own length" in fails("01 pad pair", _valid_len_is_the_width)
    cut = fails("01 pad pair", _cuts_a_long_pair)
    assert "a pair longer than max_len" in cut and "refused with a ValueError" in cut
    zero = fails("01 pad pair", _pads_with_zero)
    assert "a pad id other than 0" in zero and "holds pad_id" in zero
    unanswered_says_so("01 pad pair")
    with pytest.raises(ExerciseNotPassed, match="def pad_packed"):  # reveal: the package's source
        check("01 pad pair", _pads_with_zero, reveal=True)


def test_01_pad_pair_student_or_reference(capsys):
    assert student_or_reference(_pads_with_zero, "01 pad pair") is pad_packed
    assert capsys.readouterr().out.count("\n") == 1
    assert student_or_reference(_segments_padded_with_one, "01 pad pair") is pad_packed


# -- 02 my vocab --------------------------------------------------------------------------------

def test_book_vocab_tokens_is_what_build_book_vocab_builds(book_counts):
    assert build_book_vocab(book_counts, min_freq=3).idx_to_token == book_vocab_tokens(
        book_counts, 3, BOOK_RESERVED)
    chosen = build_book_vocab(Counter({"dog": 2}), min_freq=1,
                              tokens_of=lambda counts, min_freq, reserved: [*reserved, "cat"])
    assert chosen.idx_to_token == [*BOOK_RESERVED, "cat"]
    assert book_vocab_tokens(Counter({"b": 2, "a": 2, "<unk>": 5}), 1, ("<unk>",)) == [
        "<unk>", "b", "a"]


@pytest.fixture(scope="module")
def book_counts(snli_dir):
    from bertnli_helpers.data.snli import read_records
    from bertnli_helpers.data.tokenization import book_word_counts

    premises, hypotheses, _ = read_records(snli_dir, "dev").triple("book")
    return book_word_counts(premises[:500] + hypotheses[:500])


def _forgets_the_reserved(word_counts, min_freq, reserved):
    return [w for w, c in word_counts.most_common() if c >= min_freq]


def _more_than_min_freq(word_counts, min_freq, reserved):  # > where the rule says "at least"
    return [*reserved, *(w for w, c in word_counts.most_common()
                         if c > min_freq and w not in reserved)]


def _ties_alphabetical(word_counts, min_freq, reserved):
    ordered = sorted(word_counts.items(), key=lambda item: (-item[1], item[0]))
    return [*reserved, *(w for w, c in ordered if c >= min_freq and w not in reserved)]


def _reserved_counted_twice(word_counts, min_freq, reserved):
    return [*reserved, *(w for w, c in word_counts.most_common() if c >= min_freq)]


def test_02_my_vocab_function():
    def right(word_counts, min_freq, reserved):
        return [*reserved, *(w for w, c in word_counts.most_common()
                             if c >= min_freq and w not in reserved)]

    assert check("02 my vocab", right) and check("02 my vocab", book_vocab_tokens)
    assert "reserved tokens come first" in fails("02 my vocab", _forgets_the_reserved)
    exact = fails("02 my vocab", _more_than_min_freq)
    assert "exactly min_freq" in exact and "at least min_freq" in exact
    ties = fails("02 my vocab", _ties_alphabetical)
    assert "ties in frequency" in ties and "stable sort" in ties
    assert "each token once" in fails("02 my vocab", _reserved_counted_twice)
    assert "still returns None" in unanswered("02 my vocab", _stub)
    with pytest.raises(ExerciseNotPassed, match="def book_vocab_tokens"):
        check("02 my vocab", _ties_alphabetical, reveal=True)


def test_02_unknown_by_side_asks_how_often_not_how_many():
    vocab = build_book_vocab(Counter({"a": 5, "dog": 5}))
    given = {"tokenizer": vocab, "premises": ["a dog zzqx"], "hypotheses": ["qqwy qqwy"]}
    right = check("02 unknown by side", {"premise": 1 / 3, "hypothesis": 1.0}, **given)
    assert right
    close = {"tokenizer": vocab, "premises": ["a dog zzqx dog"], "hypotheses": ["a qqwy dog"]}
    near = check("02 unknown by side", {"premise": 0.25, "hypothesis": 1 / 3}, **close).message
    assert "within noise" in near  # seven words: no evidence either way
    many = {"tokenizer": vocab, "premises": ["a dog zzqx"] * 300, "hypotheses": ["qqwy qqwy"] * 300}
    beyond = check("02 unknown by side", {"premise": 1 / 3, "hypothesis": 1.0}, **many).message
    assert "the hypotheses lose words more often, beyond noise" in beyond
    assert "look like counts" in fails("02 unknown by side", {"premise": 1, "hypothesis": 2},
                                       **given)
    assert "divided by all its word tokens" in fails(
        "02 unknown by side", {"premise": 0.5, "hypothesis": 0.5}, **given)


# -- the notebooks' own cells: the teacher edition passes, the student edition asks -----------

@pytest.mark.parametrize(("name", "function"), [("01_pretrained_bert", "my_pad"),
                                                ("02_snli_dataset", "my_vocab")])
def test_the_notebook_cells_pass_as_written_and_ask_in_the_student_edition(name, function):
    pairs, _ = _exercises(name)
    answer, checked = next((a, c) for a, c in pairs if f"def {function}(" in a.source)
    for edition, passes in ((answer.source, True), (student_edition(answer.source), False)):
        scope = {"check": check}
        exec(edition, scope)
        if passes:
            exec(checked.source, scope)
        else:
            assert STUB in edition
            with pytest.raises(ExerciseNotPassed, match="still returns None"):
                exec(checked.source, scope)


# -- what a student reads first, and the prompts before the key results ------------------------

FIRST_CELL_PARTS = ("**What you will do.**", "**What you will learn.**", "**What you hand in.**",
                    "**What you need first.**")


@pytest.mark.parametrize("name", ["01_pretrained_bert", "02_snli_dataset", "07_pretraining"])
def test_the_first_cell_says_what_to_do_learn_hand_in_and_need_and_results_are_predicted(name):
    _, cells = _exercises(name)
    first = cells[0].source
    assert all(part in first for part in FIRST_CELL_PARTS), name
    places = [first.index(part) for part in FIRST_CELL_PARTS]
    assert places == sorted(places), "the four parts in their order"
    prompts = sum(c.source.count("**Predict, then run") for c in cells if c.cell_type == "markdown")
    assert 2 <= prompts <= 4, (name, prompts)
