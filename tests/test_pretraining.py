"""Pretraining: the book's masking and next-sentence rules (statistics and parity with d2l on the
same seeds), the heads, the loop's resume, and the book-format checkpoint read back by
``load_pretrained`` and by d2l's own ``BERTModel``."""

from __future__ import annotations

import math
import random

import pytest
import torch
from torch import nn

from bertnli_helpers import cli
from bertnli_helpers.data.tokenization import BOOK_RESERVED, book_tokenizer
from bertnli_helpers.errors import CheckpointError
from bertnli_helpers.model.bert import BERTClassifier
from bertnli_helpers.model.pretrained import load_pretrained
from bertnli_helpers.train.pretraining import (
    PRETRAIN_CHECKPOINT,
    checkpoint_usage,
    collate,
    masked_predictions,
    mlm_example,
    new_pretrainer,
    nsp_pairs,
    preset,
    pretrain,
    pretraining_correct,
    pretraining_examples,
    pretraining_losses,
    save_pretrained,
)

D2L_RESERVED = ["<pad>", "<mask>", "<cls>", "<sep>"]


def sigma_bounds(p: float, n: int, sigmas: float = 5.0) -> tuple[float, float]:
    """``p`` plus or minus ``sigmas`` binomial standard errors of a share of ``n`` draws."""
    half = sigmas * math.sqrt(p * (1 - p) / n)
    return p - half, p + half


@pytest.fixture(scope="module")
def dev_paragraphs(dev_book):
    premises, hypotheses, _ = dev_book
    return [[p.lower().split(), h.lower().split()] for p, h in zip(premises, hypotheses)]


@pytest.fixture(scope="module")
def book_vocab(d2l, dev_paragraphs):
    """d2l's vocabulary of the dev sentences, and ours over the same token list."""
    sentences = [s for paragraph in dev_paragraphs for s in paragraph]
    reference = d2l.Vocab(sentences, min_freq=2, reserved_tokens=D2L_RESERVED)
    return reference, book_tokenizer(reference.idx_to_token)


# -- the masking rule ------------------------------------------------------------------------
def test_masking_follows_15_80_10_10_on_many_tokens():
    words = [f"w{i}" for i in range(500)]
    vocab = book_tokenizer([*BOOK_RESERVED, *words])
    rng, data_rng = random.Random(1), random.Random(2)
    kinds = {"mask": 0, "same": 0, "random": 0}
    predicted = tokens_seen = 0
    for _ in range(4000):
        sentence = [data_rng.choice(words) for _ in range(data_rng.randint(4, 40))]
        tokens, _ = vocab.pack_tokens(sentence)
        ids, positions, labels = mlm_example(tokens, vocab, rng)
        assert len(positions) == max(1, round(len(tokens) * 0.15))  # the book's count
        assert positions == sorted(positions) and labels == vocab[[tokens[p] for p in positions]]
        predicted += len(positions)
        tokens_seen += len(tokens)
        for position in positions:
            new = vocab.idx_to_token[ids[position]]
            kind = "mask" if new == "<mask>" else "same" if new == tokens[position] else "random"
            kinds[kind] += 1
        untouched = [i for i in range(len(tokens)) if i not in positions]
        assert [ids[i] for i in untouched] == vocab[[tokens[i] for i in untouched]]
    assert abs(predicted / tokens_seen - 0.15) < 0.01
    low, high = sigma_bounds(0.8, predicted)
    assert low < kinds["mask"] / predicted < high
    # a random replacement draws the same token 1 time in len(vocab): counted as "same"
    chance = 0.1 / len(vocab)
    for kind, share in (("same", 0.1 + chance), ("random", 0.1 - chance)):
        low, high = sigma_bounds(share, predicted)
        assert low < kinds[kind] / predicted < high, kind


def test_special_tokens_are_never_predicted_nor_replaced():
    vocab = book_tokenizer([*BOOK_RESERVED, "a", "b", "c"])
    rng = random.Random(0)
    for length_a in range(1, 12):
        for length_b in range(1, 12):
            tokens, _ = vocab.pack_tokens(["a"] * length_a, ["b"] * length_b)
            ids, positions, _ = mlm_example(tokens, vocab, rng)
            specials = [i for i, t in enumerate(tokens) if t in ("<cls>", "<sep>")]
            assert not set(positions) & set(specials)
            assert [ids[i] for i in specials] == vocab[[tokens[i] for i in specials]]
    only_specials, _ = vocab.pack_tokens([])
    ids, positions, labels = mlm_example(only_specials, vocab, rng)
    assert positions == [] and labels == [] and ids == vocab[only_specials]


def test_mlm_examples_match_the_books_on_the_same_seeds(d2l, dev_paragraphs, book_vocab):
    reference, vocab = book_vocab
    for seed in range(5):
        random.seed(seed)
        theirs = [d2l._get_mlm_data_from_tokens(d2l.get_tokens_and_segments(p, h)[0], reference)
                  for p, h in dev_paragraphs[:300]]
        rng = random.Random(seed)
        ours = [mlm_example(vocab.pack_tokens(p, h)[0], vocab, rng)
                for p, h in dev_paragraphs[:300]]
        assert [tuple(x) for x in ours] == [tuple(x) for x in theirs]


def test_nsp_pairs_match_the_books_on_the_same_seeds(d2l, dev_paragraphs, book_vocab):
    reference, vocab = book_vocab
    # longer paragraphs too: consecutive dev sentences, some too long for max_len
    paragraphs = dev_paragraphs[:200] + [[s for p in dev_paragraphs[i:i + 3] for s in p]
                                         for i in range(0, 90, 3)]
    for seed, max_len in ((0, 64), (1, 64), (2, 24)):
        random.seed(seed)
        theirs = [d2l._get_nsp_data_from_paragraph(p, paragraphs, reference, max_len)
                  for p in paragraphs]
        rng = random.Random(seed)
        ours = [nsp_pairs(p, paragraphs, vocab, max_len, rng) for p in paragraphs]
        assert ours == theirs
    rng = random.Random(3)
    pairs = [pair for p in dev_paragraphs for pair in nsp_pairs(p, dev_paragraphs, vocab, 64, rng)]
    low, high = sigma_bounds(0.5, len(pairs))
    assert low < sum(is_next for *_, is_next in pairs) / len(pairs) < high


def test_the_whole_pretraining_set_matches_the_books_dataset(d2l, dev_paragraphs):
    """d2l's ``_WikiTextDataset`` (vocabulary, NSP, MLM, padding) against ours, seed for seed."""
    texts = [[" ".join(s) for s in paragraph] for paragraph in dev_paragraphs[:400]]
    random.seed(7)
    reference = d2l._WikiTextDataset(texts, 40)
    vocab = book_tokenizer(reference.vocab.idx_to_token)
    ours = pretraining_examples(dev_paragraphs[:400], vocab, 40, random.Random(7))
    assert len(ours) == len(reference)
    for i in (0, 1, 2, len(ours) // 2, len(ours) - 1):
        tokens, segments, valid, positions, weights, labels, is_next = reference[i]
        n, preds = int(valid), int(weights.sum())
        assert ours[i].token_ids == tokens[:n].tolist()
        assert ours[i].segments == segments[:n].tolist()
        assert ours[i].pred_positions == positions[:preds].tolist()
        assert ours[i].mlm_labels == labels[:preds].tolist()
        assert ours[i].is_next == bool(is_next)


def test_vocabulary_keeps_the_words_the_book_keeps(d2l, snli_dir):
    """The pretraining vocabulary is tokenization.build_book_vocab over the train sentences."""
    from collections import Counter

    from bertnli_helpers.data.snli import read_records
    from bertnli_helpers.train.pretraining import prepare_pretraining, snli_paragraphs

    config = preset("tiny", train_size=500)
    train = read_records(snli_dir, "train")
    vocab, _ = prepare_pretraining(train, config)
    sentences = [s for p in snli_paragraphs(train.sample(500, config.seed)) for s in p]
    reference = d2l.Vocab(sentences, min_freq=config.min_freq, reserved_tokens=D2L_RESERVED)
    assert set(vocab.idx_to_token) == set(reference.idx_to_token)
    assert vocab.idx_to_token[:5] == list(BOOK_RESERVED)
    counts = Counter(w for s in sentences for w in s)
    frequencies = [counts[w] for w in vocab.idx_to_token[5:]]
    assert frequencies == sorted(frequencies, reverse=True) and min(frequencies) >= config.min_freq


# -- heads, loss, checkpoint -----------------------------------------------------------------
@pytest.fixture(scope="module")
def tiny_run(snli_dir, tmp_path_factory):
    """A tiny pretraining on real train sentences, saved in the book's format."""
    from bertnli_helpers.data.snli import read_records
    from bertnli_helpers.train.pretraining import prepare_pretraining

    config = preset("tiny", steps=6, device="cpu")
    vocab, examples = prepare_pretraining(read_records(snli_dir, "train"), config)
    model = new_pretrainer(config, len(vocab))
    out = tmp_path_factory.mktemp("pretrain")
    pretrain(model, examples, config, pad_id=vocab.pad_id, output_dir=out)
    return config, vocab, examples, model, save_pretrained(model, vocab, out), out


def test_the_book_reads_our_checkpoint_with_the_same_outputs(d2l, tiny_run):
    config, vocab, examples, model, saved, _ = tiny_run
    reference = d2l.BERTModel(len(vocab), config.hidden_size, config.ffn_size, config.num_heads,
                              config.num_layers, config.dropout, max_len=config.max_len)
    batch = collate(examples[:16], vocab.pad_id)
    reference(batch.tokens, batch.segments, batch.valid_lens, batch.pred_positions)  # lazy sizes
    state = torch.load(saved.folder / "pretrained.params", weights_only=True)
    assert set(state) == set(reference.state_dict())  # every key, heads included: strict
    reference.load_state_dict(state, strict=True)
    reference.eval(), model.eval()
    with torch.no_grad():
        theirs = reference(batch.tokens, batch.segments, batch.valid_lens, batch.pred_positions)
        ours = model(batch.tokens, batch.segments, batch.valid_lens, batch.pred_positions)
    keep = torch.arange(batch.tokens.shape[1])[None] < batch.valid_lens[:, None]
    torch.testing.assert_close(ours[0][keep], theirs[0][keep], atol=1e-5, rtol=1e-5)
    for mine, book in zip(ours[1:], theirs[1:]):
        torch.testing.assert_close(mine, book, atol=1e-5, rtol=1e-5)


def test_load_pretrained_reads_the_zip_as_a_student_reads_bert_small(tiny_run):
    config, vocab, examples, model, saved, _ = tiny_run
    bert, tokenizer = load_pretrained(saved.zip_path)  # sizes read off the checkpoint
    bert.eval(), model.eval()
    assert tokenizer.idx_to_token == vocab.idx_to_token
    assert (bert.config.hidden_size, bert.config.num_layers, bert.config.max_len) == (
        config.hidden_size, config.num_layers, config.max_len)
    batch = collate(examples[:8], vocab.pad_id)
    with torch.no_grad():
        encoded, pooled = bert(batch.tokens, batch.segments, batch.valid_lens)
        expected, _, _ = model(batch.tokens, batch.segments, batch.valid_lens)
    torch.testing.assert_close(encoded, expected)
    torch.testing.assert_close(pooled, model.hidden(expected[:, 0]))
    # the heads are in the checkpoint, and the classifier uses none of them
    rows = {row["part"]: row for row in checkpoint_usage(saved.folder, BERTClassifier(bert))}
    assert rows["MLM head"]["parameters"] > 0 and rows["MLM head"]["used by the classifier"] == 0
    assert rows["NSP head"]["parameters"] == 2 * config.hidden_size + 2
    assert rows["NSP head"]["used by the classifier"] == 0
    for part in ("encoder", "pooler (hidden)"):
        assert rows[part]["used by the classifier"] == rows[part]["parameters"] > 0
    new = rows["classifier's new layers (not in the checkpoint)"]
    assert new["parameters"] == 3 * config.hidden_size + 3


def test_zip_sha1_depends_only_on_the_weights(tiny_run, tmp_path):
    _, vocab, _, model, saved, _ = tiny_run
    again = save_pretrained(model, vocab, tmp_path)
    assert again.sha1 == saved.sha1 and len(saved.sha1) == 40


def test_loss_matches_the_book_and_weights_out_padding_slots(d2l, tiny_run):
    _, vocab, examples, model, _, _ = tiny_run
    model.eval()
    same_count = [e for e in examples if len(e.pred_positions) == len(examples[0].pred_positions)]
    batch = collate(same_count[:16], vocab.pad_id)
    assert bool(batch.mlm_weights.all())  # no padding slots: the book's loss is well defined
    mlm, nsp, _ = pretraining_losses(model, batch)
    book_mlm, book_nsp, _ = d2l._get_batch_loss_bert(
        model, nn.CrossEntropyLoss(), len(vocab), batch.tokens, batch.segments,
        batch.valid_lens.float(), batch.pred_positions, batch.mlm_weights, batch.mlm_labels,
        batch.nsp_labels)
    torch.testing.assert_close(mlm, book_mlm)
    torch.testing.assert_close(nsp, book_nsp)
    # with padding slots, only the real predictions count
    mixed = collate(examples[:16], vocab.pad_id)
    assert not bool(mixed.mlm_weights.all())
    mlm, _, counts = pretraining_losses(model, mixed)
    _, logits, _ = model(mixed.tokens, mixed.segments, mixed.valid_lens, mixed.pred_positions)
    real = mixed.mlm_weights.bool()
    expected = nn.functional.cross_entropy(logits[real], mixed.mlm_labels[real])
    torch.testing.assert_close(mlm, expected)
    assert counts["mlm_predictions"] == sum(len(e.pred_positions) for e in examples[:16])


# -- the loop --------------------------------------------------------------------------------
class StopAt:
    """A callback that interrupts the run after ``step`` steps (as a killed run would stop)."""

    def __init__(self, step: int) -> None:
        self.step = step

    def on_train_begin(self, state): ...
    def on_train_end(self, state): ...

    def on_step_end(self, state):
        state.stop = state.step >= self.step


def test_an_interrupted_run_resumes_to_the_same_weights(tiny_run, tmp_path):
    config, vocab, examples, _, _, _ = tiny_run
    config = config.replace(steps=6, log_every=2)
    straight = new_pretrainer(config, len(vocab))
    whole = pretrain(straight, examples, config, pad_id=vocab.pad_id)
    stopped = new_pretrainer(config, len(vocab))
    first = pretrain(stopped, examples, config, pad_id=vocab.pad_id, output_dir=tmp_path,
                     callbacks=[StopAt(3)])
    assert first.steps == 3 and (tmp_path / PRETRAIN_CHECKPOINT).exists()
    resumed = new_pretrainer(config, len(vocab))
    second = pretrain(resumed, examples, config, pad_id=vocab.pad_id, output_dir=tmp_path,
                      resume=True)
    assert (second.resumed_at, second.steps) == (3, 6)
    for (name, a), b in zip(straight.state_dict().items(), resumed.state_dict().values()):
        torch.testing.assert_close(a, b, msg=name)
    assert [r["step"] for r in second.history] == [r["step"] for r in whole.history] == [2, 4, 6]
    assert second.history[-1]["mlm_loss"] == pytest.approx(whole.history[-1]["mlm_loss"])
    # a finished run is loaded, not trained again; other settings are refused
    again = new_pretrainer(config, len(vocab))
    third = pretrain(again, examples, config, pad_id=vocab.pad_id, output_dir=tmp_path,
                     resume=True)
    assert third.resumed_at == 6 and third.train_seconds == second.train_seconds
    with pytest.raises(CheckpointError, match=r"lr=0\.001 \(now 0\.002\)"):
        pretrain(new_pretrainer(config, len(vocab)), examples, config.replace(lr=2e-3),
                 pad_id=vocab.pad_id, output_dir=tmp_path, resume=True)
    with pytest.raises(CheckpointError, match="other examples"):
        pretrain(new_pretrainer(config, len(vocab)), examples[1:], config,
                 pad_id=vocab.pad_id, output_dir=tmp_path, resume=True)


def test_pretraining_learns_the_masked_words(snli_dir):
    """A few dozen steps on real train sentences beat the untrained model on held-out dev ones."""
    from bertnli_helpers.data.snli import read_records
    from bertnli_helpers.study.comparison import compare
    from bertnli_helpers.train.pretraining import prepare_pretraining, snli_paragraphs

    config = preset("tiny", train_size=1500, steps=30, lr=3e-3, device="cpu")
    vocab, examples = prepare_pretraining(read_records(snli_dir, "train"), config)
    held_out = pretraining_examples(snli_paragraphs(read_records(snli_dir, "dev").sample(300)),
                                    vocab, config.max_len, 1)
    model = new_pretrainer(config, len(vocab))
    before, _ = pretraining_correct(model, held_out, vocab.pad_id)
    pretrain(model, examples, config, pad_id=vocab.pad_id)
    after, _ = pretraining_correct(model, held_out, vocab.pad_id)
    assert compare(after, before).verdict == "better"
    sentence = ["a", "man", "is", "playing", "a", "guitar", "on", "stage", "."]
    [guesses] = masked_predictions(model, vocab, [sentence], [1], k=3)
    assert len(guesses) == 3 and all(g in vocab.token_to_idx for g in guesses)


def test_cli_pretrain_writes_a_book_zip_and_refuses_bad_input(snli_dir, tmp_path, capsys):
    out = tmp_path / "pre"
    argv = ["pretrain", "--output", str(out), "--preset", "tiny", "--steps", "2",
            "--data-dir", str(snli_dir), "--device", "cpu"]
    assert cli.main(argv) == 0
    printed = capsys.readouterr().out
    bert, tokenizer = load_pretrained(out / "pretrained.zip")
    assert bert.config.max_len == preset("tiny").max_len and len(tokenizer) > 100
    assert "sha1" in printed.lower() and str(out / "pretrained.zip") in printed
    assert cli.main(argv) == 2  # the folder already holds a run: refused, nothing lost
    assert "--resume" in capsys.readouterr().err
    assert cli.main([*argv, "--resume", "--steps", "3"]) == 2  # another schedule
    assert "cannot resume" in capsys.readouterr().err
    assert cli.main(["pretrain", "--output", str(tmp_path / "x"), "--preset", "tiny",
                     "--max-len", "4", "--data-dir", str(snli_dir)]) == 2
    assert "max_len" in capsys.readouterr().err


def test_unigram_baseline_answers_the_most_frequent_masked_train_token(tiny_run):
    """The baseline's token is the train examples' most frequent target, and its hits line up
    one for one with pretraining_correct's MLM scores (so compare() pairs the right tokens)."""
    from collections import Counter

    from bertnli_helpers.train.pretraining import PretrainExample, unigram_baseline

    def example(labels: list[int]) -> PretrainExample:
        return PretrainExample(list(range(len(labels) + 2)), list(range(1, len(labels) + 1)),
                               labels, [0] * (len(labels) + 2), True)

    token, hits = unigram_baseline([example([7, 5]), example([7, 9, 7])],
                                   [example([7, 3]), example([1]), example([2, 7, 7])])
    assert token == 7
    assert hits.tolist() == [True, False, False, False, True, True]
    with pytest.raises(ValueError, match="no masked token"):
        unigram_baseline([], [example([7])])

    _, vocab, examples, model, _, _ = tiny_run
    held_out = examples[:40]
    token, hits = unigram_baseline(examples, held_out)
    mlm, _ = pretraining_correct(model, held_out, vocab.pad_id)
    assert hits.shape == mlm.shape
    targets = [label for ex in held_out for label in ex.mlm_labels]
    assert hits.mean() == pytest.approx(Counter(targets)[token] / len(targets))
    assert token == Counter(t for ex in examples for t in ex.mlm_labels).most_common(1)[0][0]
