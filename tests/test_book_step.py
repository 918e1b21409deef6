"""The book's training step (d2l) against ours, from the same book-form checkpoint."""

from __future__ import annotations

import pytest
import torch

from bertnli_helpers.data.dataset import SNLIBERTDataset
from bertnli_helpers.data.snli import read_records
from bertnli_helpers.model.bert import BERTClassifier
from bertnli_helpers.model.pretrained import load_pretrained
from bertnli_helpers.study.book_step import BookClassifier, one_step_each, write_book_checkpoint
from bertnli_helpers.study.parameters import parameter_table, unused_book_heads


def test_one_step_of_the_book_and_of_ours_agree_on_real_pairs(d2l, snli_dir, tmp_path):
    pairs = read_records(snli_dir, "dev").sample(60, 0)
    premises, hypotheses, _ = pairs.triple("raw")
    book_bert, vocab = write_book_checkpoint(d2l, premises + hypotheses, tmp_path / "book",
                                             hidden=32, ffn=64, heads=2, layers=2)
    bert, tokenizer = load_pretrained(tmp_path / "book", dropout=0.0, num_heads=2)
    assert tokenizer.idx_to_token == vocab.idx_to_token
    ours = BERTClassifier(bert, pooling="cls")
    book = BookClassifier(book_bert, 32)
    book.output.load_state_dict(ours.output.state_dict())
    data = SNLIBERTDataset(pairs, tokenizer, 128, cache=False)
    result = one_step_each(d2l, book, ours, data, list(range(16)), timed_steps=1)
    assert result.book_width == 128 and result.our_width < 64
    assert result.book_loss == pytest.approx(result.our_loss, abs=1e-5)
    assert result.book_loss_after == pytest.approx(result.our_loss_after, abs=1e-4)
    assert result.book_loss_after != pytest.approx(result.book_loss, abs=1e-6)  # it stepped
    assert result.slowdown > 0 and len(result.rows()) == 2
    heads = unused_book_heads(tmp_path / "book")
    assert heads and all(name.startswith(("mlm.", "nsp.")) for name in heads)
    table = parameter_table(ours, heads).set_index("group")
    assert table.loc["next-sentence head (nsp)", "parameters"] == 32 * 2 + 2
    # the book's classifier does not even hold the heads: Adam never sees them
    assert not any(p is q for p in book.parameters() for q in book_bert.nsp.parameters())
    assert torch.equal(book_bert.nsp.output.weight, heads["nsp.output.weight"])
