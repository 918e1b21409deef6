"""Both tokenizers against their references, on real SNLI sentences."""

from __future__ import annotations

import json

import pytest

from bertnli_helpers.data.tokenization import (
    BOOK_RESERVED,
    book_word_counts,
    build_book_vocab,
    load_book_vocab,
    load_wordpiece,
)
from bertnli_helpers.errors import VocabularyError
from bertnli_helpers.model.pretrained import minilm_folder


def test_book_tokenizer_matches_the_books_vocab_and_split(d2l, dev_book, tmp_path):
    premises, hypotheses, _ = dev_book
    sentences = premises[:2000] + hypotheses[:2000]
    book_tokens = d2l.tokenize([s.lower() for s in sentences])
    reserved = ["<pad>", "<mask>", "<cls>", "<sep>"]
    vocab = d2l.Vocab(book_tokens, min_freq=3, reserved_tokens=reserved)
    (tmp_path / "vocab.json").write_text(json.dumps(vocab.idx_to_token))
    tok = load_book_vocab(tmp_path / "vocab.json")
    assert tok.kind == "book" and tok.text_form == "book"
    assert tok.tokenize_batch(sentences) == book_tokens
    assert tok.encode_batch(sentences) == [vocab[t] for t in book_tokens]
    assert tok["<pad>"] == vocab["<pad>"] and tok["never-seen-word"] == vocab.unk
    assert len(tok) == len(vocab)
    # packing is the book's get_tokens_and_segments
    p, h = book_tokens[0], book_tokens[1]
    assert tok.pack_tokens(p, h) == tuple(d2l.get_tokens_and_segments(p, h))
    ids, segments = tok.pack_ids(vocab[p], vocab[h])
    expected_tokens, expected_segments = d2l.get_tokens_and_segments(p, h)
    assert ids == vocab[expected_tokens] and segments == expected_segments


def test_build_book_vocab_keeps_the_words_the_book_keeps(d2l, dev_book):
    premises, hypotheses, _ = dev_book
    sentences = premises[:2000] + hypotheses[:2000]
    counts = book_word_counts(sentences)
    book_tokens = d2l.tokenize([s.lower() for s in sentences])
    assert counts == dict(d2l.Vocab(book_tokens).token_freqs)
    tok = build_book_vocab(counts, min_freq=3)
    vocab = d2l.Vocab(book_tokens, min_freq=3, reserved_tokens=list(BOOK_RESERVED[1:]))
    assert sorted(tok.idx_to_token) == vocab.idx_to_token  # the same words, in another order
    assert tok.idx_to_token[:5] == list(BOOK_RESERVED) and tok.unk_id == 0
    frequencies = [counts[w] for w in tok.idx_to_token[5:]]
    assert frequencies == sorted(frequencies, reverse=True) and min(frequencies) == 3
    assert tok.tokenize_batch(sentences) == book_tokens
    assert len(build_book_vocab(counts)) == 5 + sum(c >= 5 for c in counts.values())  # the book's
    assert build_book_vocab({"<unk>": 9, "dog": 9}).idx_to_token == [*BOOK_RESERVED, "dog"]
    with pytest.raises(ValueError, match="min_freq"):
        build_book_vocab(counts, min_freq=0)


def test_wordpiece_matches_transformers_on_real_sentences(dev_raw):
    from transformers import BertTokenizerFast

    folder = minilm_folder()
    tok = load_wordpiece(folder)
    reference = BertTokenizerFast.from_pretrained(str(folder))
    premises, hypotheses, _ = dev_raw
    sentences = premises[:1500] + hypotheses[:1500] + ["Ünïcödé café — naïve résumé!", "  "]
    expected = reference(sentences, add_special_tokens=False)["input_ids"]
    assert tok.encode_batch(sentences) == expected
    assert tok.kind == "wordpiece" and tok.text_form == "raw"
    pair = reference(premises[0], hypotheses[0])
    ids, segments = tok.pack_ids(*tok.encode_batch([premises[0], hypotheses[0]]))
    assert ids == pair["input_ids"] and segments == pair["token_type_ids"]


def test_vocabulary_missing_a_special_token_is_refused(tmp_path):
    (tmp_path / "vocab.json").write_text(json.dumps(["<unk>", "<pad>", "<cls>", "a"]))
    with pytest.raises(VocabularyError, match="<sep>"):
        load_book_vocab(tmp_path / "vocab.json")
    (tmp_path / "vocab.txt").write_text("[PAD]\n[UNK]\n[CLS]\nhello\n")
    with pytest.raises(VocabularyError, match=r"\[SEP\]"):
        load_wordpiece(tmp_path)


def test_broken_vocab_files_give_clear_errors(tmp_path):
    (tmp_path / "vocab.json").write_text("{not json")
    with pytest.raises(VocabularyError, match="not valid JSON"):
        load_book_vocab(tmp_path / "vocab.json")
    (tmp_path / "vocab.json").write_text(json.dumps({"a": 1}))
    with pytest.raises(VocabularyError, match="list of token strings"):
        load_book_vocab(tmp_path / "vocab.json")
    with pytest.raises(FileNotFoundError, match="vocab.txt"):
        load_wordpiece(tmp_path / "nowhere")


def test_typed_text_is_prepared_as_each_vocabulary_was_built():
    book = build_book_vocab({"dog": 1}, min_freq=1)
    assert book.prepare_typed("A dog's bone, well-fed.") == "A dog's bone , well-fed ."
    wordpiece = load_wordpiece(minilm_folder())
    assert wordpiece.prepare_typed("A dog's bone, well-fed.") == "A dog's bone, well-fed."
