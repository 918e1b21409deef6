"""SNLIBERTDataset, batching, samplers and the cache, on real SNLI pairs against the book and HF.

The book's preprocessing (its ``SNLIBERTDataset``, PyTorch tab; d2l 1.0.3 does not ship it) is
re-written below from d2l's own ``tokenize``, ``get_tokens_and_segments`` and ``Vocab`` and used
as the oracle for the padded form; ``transformers.BertTokenizerFast`` is the oracle for WordPiece.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from bertnli_helpers.data import dataset as data
from bertnli_helpers.data import truncation
from bertnli_helpers.data.dataset import LengthBucketSampler, RandomBatchSampler, SNLIBERTDataset
from bertnli_helpers.data.snli import SNLISplit, read_records
from bertnli_helpers.data.tokenization import book_tokenizer, load_wordpiece
from bertnli_helpers.model.pretrained import minilm_folder

from conftest import DEV_PAIRS as N_PAIRS

RESERVED = ["<pad>", "<mask>", "<cls>", "<sep>"]
FIELDS = list(data.EncodedPairs.__dataclass_fields__)


# --- the book's recipe, as the oracle ----------------------------------------------------------


def book_recipe(d2l, vocab, premises, hypotheses, max_len):
    """The book's SNLIBERTDataset preprocessing: ``(token_ids, segments, valid_lens)``, padded.

    The book maps ``_mp_worker`` over the pairs with ``multiprocessing.Pool(4)``; a plain ``map``
    gives the same rows in the same order.
    """

    def worker(pair):
        p_tokens, h_tokens = pair
        while len(p_tokens) + len(h_tokens) > max_len - 3:
            if len(p_tokens) > len(h_tokens):
                p_tokens.pop()
            else:
                h_tokens.pop()
        tokens, segments = d2l.get_tokens_and_segments(p_tokens, h_tokens)
        token_ids = vocab[tokens] + [vocab["<pad>"]] * (max_len - len(tokens))
        segments = segments + [0] * (max_len - len(segments))
        return token_ids, segments, len(tokens)

    sides = [d2l.tokenize([s.lower() for s in sentences]) for sentences in (premises, hypotheses)]
    pairs = zip(*sides)
    out = list(map(worker, pairs))
    return (
        torch.tensor([o[0] for o in out], dtype=torch.long),
        torch.tensor([o[1] for o in out], dtype=torch.long),
        torch.tensor([o[2] for o in out]),
    )


# --- fixtures -----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def dev_records(snli_dir):
    return read_records(snli_dir, "dev")


@pytest.fixture(scope="module")
def book_vocab(d2l, dev_book):
    premises, hypotheses, _ = dev_book
    tokens = d2l.tokenize([s.lower() for s in premises + hypotheses])
    return d2l.Vocab(tokens, min_freq=5, reserved_tokens=RESERVED)


@pytest.fixture(scope="module")
def book_tok(book_vocab):
    return book_tokenizer(book_vocab.idx_to_token)


@pytest.fixture(scope="module")
def wordpiece():
    return load_wordpiece(minilm_folder())


@pytest.fixture(scope="module")
def hf_tokenizer():
    from transformers import BertTokenizerFast

    return BertTokenizerFast.from_pretrained(str(minilm_folder()))


@pytest.fixture(scope="module")
def dev_raw_ids(dev_raw, wordpiece):
    """WordPiece ids of the dev pairs' two sides, tokenized once for the module."""
    return wordpiece.encode_batch(dev_raw[0]), wordpiece.encode_batch(dev_raw[1])


@pytest.fixture(scope="module")
def dev_wordpiece(dev_records, wordpiece):
    """The whole real dev split, WordPiece, max_len 128: the lengths the samplers see."""
    return SNLIBERTDataset(dev_records, wordpiece, 128, cache=False)


# --- the book's padded form ----------------------------------------------------------------------


@pytest.mark.parametrize("max_len", [128, 16])
def test_padded_equals_the_books_recipe(d2l, book_vocab, book_tok, dev_book, max_len):
    premises, hypotheses, labels = dev_book
    expected = book_recipe(d2l, book_vocab, premises, hypotheses, max_len)
    ds = SNLIBERTDataset(dev_book, book_tok, max_len, cache=False)
    tokens, segments, valid_lens = ds.padded()
    for got, want in zip((tokens, segments, valid_lens), expected):
        assert got.dtype == want.dtype == torch.long
        assert got.shape == want.shape
        assert torch.equal(got, want)
    assert tokens.shape == (N_PAIRS, max_len)
    assert torch.equal(ds.labels, torch.tensor(labels))
    n_truncated = int(ds.encoded.truncated.sum())
    book_full = [len(p.split()) + len(h.split()) + 3 for p, h in zip(premises, hypotheses)]
    assert n_truncated == sum(n > max_len for n in book_full)
    if max_len == 16:
        assert n_truncated > N_PAIRS // 2  # the small max_len really exercises truncation
    else:
        assert n_truncated == 0
    # dataset[i] is the padded row cut to its valid length
    for i in range(len(ds)):
        (ids, segs, valid), label = ds[i]
        n = int(valid_lens[i])
        assert int(valid) == n == len(ids) == len(segs)
        assert torch.equal(ids, tokens[i, :n]) and torch.equal(segs, segments[i, :n])
        assert ids.dtype == segs.dtype == torch.long and int(label) == labels[i]


def test_book_ids_are_the_tokenizers_own(dev_book, book_tok):
    """The dataset's fast path for the book's vocabulary gives encode_batch's ids."""
    premises, hypotheses, _ = dev_book
    ds = SNLIBERTDataset(dev_book, book_tok, 128, cache=False)
    p_ids, h_ids = book_tok.encode_batch(premises), book_tok.encode_batch(hypotheses)
    for i, (p, h) in enumerate(zip(p_ids, h_ids)):
        start, end = ds.encoded.offsets[i], ds.encoded.offsets[i + 1]
        assert ds.encoded.ids[start:end].tolist() == book_tok.pack_ids(p, h)[0]


def test_split_picks_the_tokenizers_text_form(dev_records, book_tok, wordpiece):
    subset = SNLISplit("dev", dev_records.path, dev_records.records[:500], 0)
    for tok, form in ((book_tok, "book"), (wordpiece, "raw")):
        from_split = SNLIBERTDataset(subset, tok, 64, cache=False)
        from_triple = SNLIBERTDataset(subset.triple(form), tok, 64, cache=False)
        for field in FIELDS:
            assert np.array_equal(
                getattr(from_split.encoded, field), getattr(from_triple.encoded, field)
            )


def test_ragged_storage_is_far_smaller_than_padding(dev_wordpiece):
    tokens, segments, valid_lens = dev_wordpiece.padded()
    padded_bytes = tokens.nbytes + segments.nbytes + valid_lens.nbytes
    assert dev_wordpiece.memory_bytes() * 8 < padded_bytes
    assert dev_wordpiece.encoded.ids.dtype == np.int32
    assert len(dev_wordpiece.encoded.ids) == int(dev_wordpiece.lengths.sum())


# --- WordPiece against transformers --------------------------------------------------------------


@pytest.mark.parametrize("max_len", [128, 24])
def test_wordpiece_packing_matches_transformers(dev_raw, wordpiece, hf_tokenizer, max_len):
    premises, hypotheses, labels = dev_raw
    ds = SNLIBERTDataset(dev_raw, wordpiece, max_len, cache=False)
    reference = hf_tokenizer(premises, hypotheses, truncation="longest_first", max_length=max_len)
    p_full = hf_tokenizer(premises, add_special_tokens=False)["input_ids"]
    h_full = hf_tokenizer(hypotheses, add_special_tokens=False)["input_ids"]
    (tokens, segments, valid_lens), batch_labels = ds.batch(range(len(ds)))
    assert batch_labels.tolist() == labels
    fitting = 0
    for i in range(len(ds)):
        n = int(valid_lens[i])
        ids, segs = tokens[i, :n].tolist(), segments[i, :n].tolist()
        full = len(p_full[i]) + len(h_full[i]) + 3
        assert ds.encoded.premise_full[i] == len(p_full[i])
        assert ds.encoded.hypothesis_full[i] == len(h_full[i])
        assert bool(ds.encoded.truncated[i]) == (full > max_len)
        # layout: [CLS] p [SEP] h [SEP], segment 0 through the first [SEP], 1 after
        k = int(ds.encoded.premise_lens[i])
        assert ids[0] == wordpiece.cls_id and ids[k + 1] == ids[-1] == wordpiece.sep_id
        assert segs == [0] * (k + 2) + [1] * (n - k - 2)
        if full <= max_len:
            fitting += 1
            assert ids == reference["input_ids"][i]
            assert segs == reference["token_type_ids"][i]
            assert ids[1 : k + 1] == p_full[i] and ids[k + 2 : -1] == h_full[i]
        else:  # truncated: the budget is used in full, each side keeps a prefix (the book's rule)
            assert n == max_len
            keep_p, keep_h = truncation.longest_first_lengths(
                len(p_full[i]), len(h_full[i]), max_len - 3
            )
            assert ids == [wordpiece.cls_id, *p_full[i][:keep_p], wordpiece.sep_id,
                           *h_full[i][:keep_h], wordpiece.sep_id]
            assert len(reference["input_ids"][i]) == max_len  # HF also fills max_len
    if max_len == 128:
        assert fitting == N_PAIRS
    else:
        assert 0 < fitting < N_PAIRS and ds.encoded.truncated.sum() == N_PAIRS - fitting
    assert ds.tokens_of(0) == hf_tokenizer.convert_ids_to_tokens(tokens[0, : valid_lens[0]])


# --- dynamic padding -----------------------------------------------------------------------------


@pytest.mark.parametrize("which", ["book", "wordpiece"])
def test_batches_pad_only_to_their_longest(which, dev_book, dev_raw, book_tok, wordpiece):
    tok, pairs = (book_tok, dev_book) if which == "book" else (wordpiece, dev_raw)
    ds = SNLIBERTDataset(pairs, tok, 64, cache=False)
    padded_tokens, padded_segments, padded_valid = ds.padded()
    rng = np.random.default_rng(0)
    for size in (1, 7, 64):
        idx = rng.choice(len(ds), size=size, replace=False).tolist()
        (tokens, segments, valid_lens), labels = ds.batch(idx)
        width = int(valid_lens.max())
        assert tokens.shape == segments.shape == (size, width)
        assert width == int(ds.lengths[idx].max()) < 64
        assert torch.equal(tokens, padded_tokens[idx, :width])
        assert torch.equal(segments, padded_segments[idx, :width])
        assert torch.equal(valid_lens, padded_valid[idx])
        assert torch.equal(labels, ds.labels[idx])
        pad = torch.arange(width)[None, :] >= valid_lens[:, None]
        assert (tokens[pad] == tok.pad_id).all() and (segments[pad] == 0).all()
        assert not (tokens[~pad] == tok.pad_id).any()
    assert tok.pad_id == tok["<pad>" if which == "book" else "[PAD]"]
    (wide, _, _), _ = ds.batch([0, 1], pad_to=50)
    assert wide.shape == (2, 50)
    with pytest.raises(ValueError, match="pad_to=3"):
        ds.batch([0, 1], pad_to=3)


# --- samplers ----------------------------------------------------------------------------------


def padding_waste(batches, lengths) -> float:
    """Share of a padded batch's positions that are padding, over all batches."""
    padded = sum(len(b) * lengths[b].max() for b in batches)
    return 1.0 - sum(lengths[b].sum() for b in batches) / padded


def test_bucket_sampler_covers_all_and_wastes_little(dev_wordpiece):
    lengths = dev_wordpiece.lengths
    n = len(lengths)
    sampler = LengthBucketSampler(lengths, 32, seed=0)
    batches = [np.array(b) for b in sampler]
    assert len(batches) == len(sampler) == -(-n // 32)
    assert np.array_equal(np.sort(np.concatenate(batches)), np.arange(n))
    random_batches = [np.array(b) for b in RandomBatchSampler(n, 32, seed=0)]
    bucketed, unsorted = padding_waste(batches, lengths), padding_waste(random_batches, lengths)
    # measured on the real dev split (seeds 0-4): 0.033-0.036 of the positions are padding in
    # bucketed batches against 0.45 in random ones, 12.7-13.8x less
    assert unsorted > 0.35
    assert bucketed < 0.06 and bucketed < unsorted / 8


def test_bucket_sampler_seed_epoch_and_no_shuffle(dev_wordpiece):
    lengths = dev_wordpiece.lengths
    first = list(LengthBucketSampler(lengths, 32, seed=3))
    assert first == list(LengthBucketSampler(lengths, 32, seed=3))
    assert first != list(LengthBucketSampler(lengths, 32, seed=4))
    sampler = LengthBucketSampler(lengths, 32, seed=3)
    sampler.set_epoch(1)
    second = list(sampler)
    assert second != first and sorted(map(sorted, second)) != sorted(map(sorted, first))
    sampler.set_epoch(0)
    assert list(sampler) == first
    ordered = np.concatenate(list(LengthBucketSampler(lengths, 32, shuffle=False)))
    assert (np.diff(lengths[ordered]) >= 0).all()


def test_bucket_sampler_drop_last(dev_wordpiece):
    lengths = dev_wordpiece.lengths
    n = len(lengths)
    assert n % 32  # the dev split does not divide evenly, so there is a batch to drop
    batches = list(LengthBucketSampler(lengths, 32, drop_last=True, seed=1))
    assert len(batches) == n // 32 == len(LengthBucketSampler(lengths, 32, drop_last=True))
    assert all(len(b) == 32 for b in batches)
    seen = np.concatenate(batches)
    assert len(np.unique(seen)) == len(seen) == n - n % 32


@pytest.mark.parametrize("n", [None, 2 * 32 * 5 + 1])  # all of dev; a last global batch of 1
def test_bucket_sampler_splits_global_batches_across_ranks(dev_wordpiece, n):
    lengths = dev_wordpiece.lengths[:n]
    ranks = [LengthBucketSampler(lengths, 32, num_replicas=2, rank=r, seed=5) for r in (0, 1)]
    for s in ranks:
        s.set_epoch(2)
    r0, r1 = (list(s) for s in ranks)
    assert len(r0) == len(r1) == len(ranks[0]) == len(ranks[1])  # DDP would hang otherwise
    single = LengthBucketSampler(lengths, 64, seed=5)
    single.set_epoch(2)
    global_batches = list(single)
    assert len(global_batches) == len(r0)
    for a, b, whole in zip(r0, r1, global_batches):
        assert len(a) >= 1 and len(b) >= 1 and abs(len(a) - len(b)) <= 1
        if len(whole) >= 2:
            assert not set(a) & set(b)
            assert a + b == whole
        else:  # the only pair is given to both ranks rather than leaving one without a batch
            assert a == b == whole
    covered = {i for b in r0 + r1 for i in b}
    assert covered == set(range(len(lengths)))
    with pytest.raises(ValueError, match="rank 2"):
        LengthBucketSampler(lengths, 32, num_replicas=2, rank=2)
    with pytest.raises(ValueError, match="batch_size"):
        LengthBucketSampler(lengths, 0)


def test_random_batch_sampler_covers_all():
    sampler = RandomBatchSampler(1_000, 64, seed=2)
    batches = list(sampler)
    assert len(batches) == len(sampler) == 16
    assert sorted(i for b in batches for i in b) == list(range(1_000))
    assert all(len(b) == 64 for b in batches[:-1]) and len(batches[-1]) == 1_000 - 15 * 64
    sampler.set_epoch(1)
    assert list(sampler) != batches
    assert list(RandomBatchSampler(10, 4, shuffle=False)) == [[0, 1, 2, 3], [4, 5, 6, 7], [8, 9]]


# --- the cache -----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def small_raw(dev_raw):
    premises, hypotheses, labels = dev_raw
    return premises[:400], hypotheses[:400], labels[:400]


def assert_same(a: SNLIBERTDataset, b: SNLIBERTDataset) -> None:
    for field in FIELDS:
        x, y = getattr(a.encoded, field), getattr(b.encoded, field)
        assert x.dtype == y.dtype and np.array_equal(x, y), field


def test_cache_round_trip(tmp_path, small_raw, wordpiece):
    first = SNLIBERTDataset(small_raw, wordpiece, 64, cache=tmp_path)
    assert not first.from_cache and first.cache_path.parent == tmp_path
    assert first.cache_path.is_file()
    second = SNLIBERTDataset(small_raw, wordpiece, 64, cache=tmp_path)
    assert second.from_cache and second.cache_path == first.cache_path
    assert_same(first, second)
    for x, y in zip(first.padded(), second.padded()):
        assert torch.equal(x, y)
    assert [p.name for p in tmp_path.iterdir()] == [first.cache_path.name]


def test_default_cache_folder_and_no_cache(tmp_path, monkeypatch, small_raw, wordpiece):
    monkeypatch.setenv("BERTNLI_CACHE_DIR", str(tmp_path / "cache"))
    ds = SNLIBERTDataset(small_raw, wordpiece, 64)
    assert ds.cache_path.parent == tmp_path / "cache" / "encoded" and ds.cache_path.is_file()
    assert SNLIBERTDataset(small_raw, wordpiece, 64, cache=True).from_cache
    off = tmp_path / "off"
    monkeypatch.setenv("BERTNLI_CACHE_DIR", str(off))
    plain = SNLIBERTDataset(small_raw, wordpiece, 64, cache=False)
    assert plain.cache_path is None and not plain.from_cache
    assert not off.exists() or not any(off.rglob("*"))
    assert_same(ds, plain)


def test_cache_key_changes_with_every_input(tmp_path, small_raw, wordpiece, book_tok):
    premises, hypotheses, labels = small_raw
    base = SNLIBERTDataset(small_raw, wordpiece, 64, cache=tmp_path)
    changed_hypothesis = (premises, [*hypotheses[:-1], hypotheses[-1] + " Really."], labels)
    changed_label = (premises, hypotheses, [*labels[:-1], (labels[-1] + 1) % 3])
    variants = {
        "max_len": SNLIBERTDataset(small_raw, wordpiece, 32, cache=tmp_path),
        "strategy": SNLIBERTDataset(small_raw, wordpiece, 64, "ratio", cache=tmp_path),
        "tokenizer": SNLIBERTDataset(small_raw, book_tok, 64, cache=tmp_path),
        "text": SNLIBERTDataset(changed_hypothesis, wordpiece, 64, cache=tmp_path),
        "label": SNLIBERTDataset(changed_label, wordpiece, 64, cache=tmp_path),
        "fewer pairs": SNLIBERTDataset(
            (premises[:-1], hypotheses[:-1], labels[:-1]), wordpiece, 64, cache=tmp_path
        ),
    }
    paths = {base.cache_path} | {v.cache_path for v in variants.values()}
    assert len(paths) == 1 + len(variants)
    assert not any(v.from_cache for v in variants.values())
    assert variants["label"].encoded.labels[-1] != base.encoded.labels[-1]
    # another spelling of the same strategy is the same cache entry
    assert SNLIBERTDataset(small_raw, wordpiece, 64, "longest-first", cache=tmp_path).from_cache
    assert SNLIBERTDataset(
        small_raw, wordpiece, 64, truncation.longest_first, cache=tmp_path
    ).from_cache
    # an unregistered function cannot be keyed, so it is never cached
    custom = SNLIBERTDataset(
        small_raw, wordpiece, 32, lambda p, h, b: truncation.ratio(p, h, b), cache=tmp_path
    )
    assert custom.cache_path is None and not custom.from_cache
    assert len(list(tmp_path.iterdir())) == len(paths)


def _corruptions(good: bytes, other_npz: bytes) -> dict[str, bytes]:
    flipped = bytearray(good)
    flipped[len(good) // 2] ^= 0xFF
    return {
        "empty": b"",
        "truncated": good[: len(good) // 2],
        "garbage": b"not a cache file\n" * 20,
        "bit flip": bytes(flipped),
        "other arrays": other_npz,
    }


@pytest.mark.parametrize(
    "kind", ["empty", "truncated", "garbage", "bit flip", "other arrays"]
)
def test_corrupt_cache_is_rebuilt_and_rewritten(tmp_path, small_raw, wordpiece, kind):
    first = SNLIBERTDataset(small_raw, wordpiece, 64, cache=tmp_path)
    path = first.cache_path
    good = path.read_bytes()
    other = tmp_path / "other.npz"
    np.savez(other, ids=np.zeros(3, np.int32), labels=np.zeros(1))  # well-formed, wrong content
    path.write_bytes(_corruptions(good, other.read_bytes())[kind])
    other.unlink()
    rebuilt = SNLIBERTDataset(small_raw, wordpiece, 64, cache=tmp_path)
    assert not rebuilt.from_cache
    assert_same(first, rebuilt)
    assert SNLIBERTDataset(small_raw, wordpiece, 64, cache=tmp_path).from_cache  # rewritten
    assert [p.name for p in tmp_path.iterdir()] == [path.name]  # no .tmp left behind


def test_inconsistent_arrays_are_not_trusted(tmp_path, small_raw, wordpiece):
    first = SNLIBERTDataset(small_raw, wordpiece, 64, cache=tmp_path)
    arrays = {f: getattr(first.encoded, f) for f in FIELDS}
    arrays["offsets"] = arrays["offsets"][:-1]  # one pair short
    with open(first.cache_path, "wb") as handle:
        np.savez(handle, **arrays)
    again = SNLIBERTDataset(small_raw, wordpiece, 64, cache=tmp_path)
    assert not again.from_cache
    assert_same(first, again)


def test_cache_write_is_atomic(tmp_path, monkeypatch, small_raw, wordpiece):
    real_savez = np.savez

    def fail_midway(file, **arrays):
        real_savez(file, **arrays)  # the bytes reach the temporary file ...
        raise OSError(28, "No space left on device")  # ... and then the disk fills up

    monkeypatch.setattr(data.np, "savez", fail_midway)
    with pytest.warns(RuntimeWarning, match="could not write the encoded-data cache"):
        ds = SNLIBERTDataset(small_raw, wordpiece, 64, cache=tmp_path)
    assert not ds.from_cache and len(ds) == 400
    assert list(tmp_path.iterdir()) == []  # neither a final file nor a temporary one

    def interrupted(file, **arrays):
        file.write(b"PK\x03\x04 half an npz")
        raise KeyboardInterrupt

    monkeypatch.setattr(data.np, "savez", interrupted)
    with pytest.raises(KeyboardInterrupt):
        SNLIBERTDataset(small_raw, wordpiece, 64, cache=tmp_path)
    assert list(tmp_path.iterdir()) == []
    monkeypatch.setattr(data.np, "savez", real_savez)
    assert not SNLIBERTDataset(small_raw, wordpiece, 64, cache=tmp_path).from_cache
    assert SNLIBERTDataset(small_raw, wordpiece, 64, cache=tmp_path).from_cache


# --- bad input -----------------------------------------------------------------------------------


def test_bad_input_gives_clear_errors(small_raw, wordpiece):
    premises, hypotheses, labels = small_raw
    mismatch = r"premises \(400\), hypotheses \(399\) and labels \(400\)"
    with pytest.raises(ValueError, match=mismatch):
        SNLIBERTDataset((premises, hypotheses[:-1], labels), wordpiece, cache=False)
    with pytest.raises(ValueError, match=r"labels \(3\)"):
        SNLIBERTDataset((premises, hypotheses, labels[:3]), wordpiece, cache=False)
    with pytest.raises(ValueError, match="SNLISplit or the triple"):
        SNLIBERTDataset((premises, hypotheses), wordpiece, cache=False)
    with pytest.raises(ValueError, match="max_len must be at least 5"):
        SNLIBERTDataset(small_raw, wordpiece, 4, cache=False)
    with pytest.raises(ValueError, match="unknown truncation strategy 'shortest'.*longest_first"):
        SNLIBERTDataset(small_raw, wordpiece, 64, "shortest", cache=False)
    tiny = SNLIBERTDataset(small_raw, wordpiece, 5, cache=False)  # room for 2 content tokens
    assert (tiny.lengths == 5).all()
    empty = SNLIBERTDataset(([], [], []), wordpiece, 16, cache=False)
    assert len(empty) == 0 and empty.padded()[0].shape == (0, 16)

    def greedy(p, h, budget):  # a broken strategy: keeps everything
        return list(p), list(h)

    overshoot = r"strategy 'greedy' kept \d+ tokens of a pair, more than the budget 13"
    with pytest.raises(ValueError, match=overshoot):
        SNLIBERTDataset(small_raw, wordpiece, 16, greedy, cache=False)


def test_chunked_encoding_is_the_same(small_raw, wordpiece):
    whole = data.encode_pairs(*small_raw, wordpiece, 24)
    for chunk_size in (1, 7, 399, 400):
        chunked = data.encode_pairs(*small_raw, wordpiece, 24, chunk_size=chunk_size)
        for field in FIELDS:
            assert np.array_equal(getattr(whole, field), getattr(chunked, field)), field
    with pytest.raises(ValueError, match="chunk_size"):
        data.encode_pairs(*small_raw, wordpiece, 24, chunk_size=0)


# --- every truncation strategy -------------------------------------------------------------------


@pytest.mark.parametrize("name", sorted(truncation.STRATEGIES))
def test_every_strategy_through_the_dataset(name, dev_raw, dev_raw_ids, wordpiece):
    max_len = 16
    ds = SNLIBERTDataset(dev_raw, wordpiece, max_len, name, cache=False)
    assert ds.lengths.max() <= max_len
    p_ids, h_ids = dev_raw_ids
    strategy = truncation.STRATEGIES[name]
    for i in range(0, N_PAIRS, 7):
        p, h = strategy(p_ids[i], h_ids[i], max_len - 3)
        ids, segments = wordpiece.pack_ids(p, h)
        start, end = ds.encoded.offsets[i], ds.encoded.offsets[i + 1]
        assert ds.encoded.ids[start:end].tolist() == ids
        assert ds.segments_of(i) == segments
    truncated = ds.encoded.truncated
    assert truncated.any() and (ds.lengths[truncated] == max_len).all()
    tokens, _, valid_lens = ds.padded()
    assert tokens.shape == (N_PAIRS, max_len) and (valid_lens <= max_len).all()


def test_padding_share_counts_each_batch_padded_to_its_longest_pair():
    from bertnli_helpers.data.dataset import padding_share

    assert padding_share([5, 9, 2, 2], [[0, 1], [2, 3]]) == pytest.approx(1 - 18 / 22)
    assert padding_share([7, 7, 3], [[0, 1], [2]]) == 0.0  # equal lengths within each batch
    assert padding_share([4, 8], [[1], [0]]) == 0.0  # batches of one pair never pad
    assert padding_share([], []) == 0.0
