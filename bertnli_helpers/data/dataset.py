"""SNLI pairs as BERT inputs: ``<cls> premise <sep> hypothesis <sep>``, stored compactly.

The book pads every pair to ``max_len`` and builds them with a pool of Python processes. Here the
split is tokenized in large batch calls, the pairs that do not fit are truncated by a named
strategy, and all are stored ragged (one flat ``int32`` array of ids plus offsets): nothing is
padded in memory. Batches are padded only to their longest pair, and a length-bucketed sampler
groups pairs of similar length so that little padding is left at all. The encoded split is
cached on disk, keyed by its content, the tokenizer, the strategy and ``max_len``, and written
atomically.
"""

from __future__ import annotations

import hashlib
import itertools
import numbers
import warnings
import zipfile
import zlib
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Dataset, Sampler

from bertnli_helpers.data.snli import SNLISplit
from bertnli_helpers.data.tokenization import TextTokenizer
from bertnli_helpers.data.truncation import SPECIAL_TOKENS_PER_PAIR, STRATEGIES, get_strategy
from bertnli_helpers.errors import SettingError
from bertnli_helpers.files import atomic_write

CACHE_FORMAT = 1  # bump when the stored arrays change meaning

Inputs = tuple[torch.Tensor, torch.Tensor, torch.Tensor]
Batch = tuple[Inputs, torch.Tensor]


@dataclass(frozen=True)
class EncodedPairs:
    """Ragged storage of packed pairs; row ``i`` is ``ids[offsets[i]:offsets[i+1]]``."""

    ids: np.ndarray  # int32, all packed pairs back to back
    offsets: np.ndarray  # int64, n + 1
    premise_lens: np.ndarray  # int32, premise tokens kept (segment 0 covers these + 2)
    premise_full: np.ndarray  # int32, premise tokens before truncation
    hypothesis_full: np.ndarray  # int32, hypothesis tokens before truncation
    labels: np.ndarray  # int64

    @property
    def lengths(self) -> np.ndarray:
        return np.diff(self.offsets)

    @property
    def truncated(self) -> np.ndarray:
        full = self.premise_full + self.hypothesis_full + SPECIAL_TOKENS_PER_PAIR
        return full > self.lengths

    def nbytes(self) -> int:
        return sum(getattr(self, f).nbytes for f in self.__dataclass_fields__)


def _as_triple(
    pairs: SNLISplit | Sequence, text_form: str
) -> tuple[Sequence[str], Sequence[str], Sequence[int]]:
    if isinstance(pairs, SNLISplit):
        return pairs.triple(text_form)
    if len(pairs) != 3:
        raise ValueError("pairs must be an SNLISplit or the triple (premises, hypotheses, labels)")
    premises, hypotheses, labels = pairs
    if not len(premises) == len(hypotheses) == len(labels):
        raise ValueError(
            f"premises ({len(premises)}), hypotheses ({len(hypotheses)}) and labels "
            f"({len(labels)}) must have the same length"
        )
    return premises, hypotheses, labels


def tokenizer_fingerprint(tokenizer: TextTokenizer) -> str:
    """Changes whenever the tokenizer would give different ids for the same text."""
    digest = hashlib.sha1(tokenizer.kind.encode())
    digest.update(tokenizer.backend.to_str().encode())
    return digest.hexdigest()


def pairs_fingerprint(
    premises: Sequence[str], hypotheses: Sequence[str], labels: Sequence[int]
) -> str:
    digest = hashlib.sha1()
    for part in (premises, hypotheses):
        digest.update("\x1e".join(part).encode("utf-8", "surrogatepass"))
        digest.update(b"\x1d")
    digest.update(np.asarray(labels, dtype=np.int64).tobytes())
    return digest.hexdigest()


ENCODE_CHUNK = 32_768  # pairs per tokenizer batch call: bounds the memory its output takes


def _token_ids(tokenizer: TextTokenizer, texts: Sequence[str]) -> list[list[int]]:
    """Token ids of many texts (no special tokens).

    The book's vocabulary goes through the tokenizer's own book split (``tokenize``:
    ``text.lower().split()``, exactly ``d2l.tokenize``) and its ``token_to_idx`` lookup (as
    ``tokenizer[tokens]`` does it): the same ids as ``encode_batch``, but faster, because for a
    word-level vocabulary the ``tokenizers`` library spends its time building one ``Encoding``
    object per text, not splitting words (``benchmarks/preprocess.py`` times the pipeline).
    """
    if tokenizer.kind == "book":
        tokenize, get, unk = tokenizer.tokenize, tokenizer.token_to_idx.get, tokenizer.unk_id
        return [[get(token, unk) for token in tokenize(text)] for text in texts]
    return tokenizer.encode_batch(texts)


def _pack_chunk(
    p_ids: list, h_ids: list, strategy, budget: int, cls: int, sep: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Truncate the pairs that do not fit and lay ``<cls> p <sep> h <sep>`` out back to back.

    Only the pairs over the budget go through the strategy (Python, one call each); the copying
    into the flat array is vectorised. Returns (ids, row lengths, premise kept, premise full,
    hypothesis full).
    """
    m = len(p_ids)
    p_full = np.fromiter(map(len, p_ids), dtype=np.int64, count=m)
    h_full = np.fromiter(map(len, h_ids), dtype=np.int64, count=m)
    for i in np.flatnonzero(p_full + h_full > budget).tolist():
        p_ids[i], h_ids[i] = strategy(p_ids[i], h_ids[i], budget)
        if len(p_ids[i]) + len(h_ids[i]) > budget:
            raise ValueError(
                f"truncation strategy {getattr(strategy, '__name__', strategy)!r} kept "
                f"{len(p_ids[i]) + len(h_ids[i])} tokens of a pair, more than the budget {budget}"
            )
    p_len = np.fromiter(map(len, p_ids), dtype=np.int64, count=m)
    h_len = np.fromiter(map(len, h_ids), dtype=np.int64, count=m)
    p_flat = np.fromiter(itertools.chain.from_iterable(p_ids), np.int32, int(p_len.sum()))
    h_flat = np.fromiter(itertools.chain.from_iterable(h_ids), np.int32, int(h_len.sum()))
    row_len = p_len + h_len + SPECIAL_TOKENS_PER_PAIR
    row_start = np.cumsum(row_len) - row_len
    out = np.empty(int(row_len.sum()), dtype=np.int32)
    out[row_start] = cls
    out[row_start + p_len + 1] = sep
    out[row_start + row_len - 1] = sep
    # token j of a side goes to its row's start of that side + j
    p_pos = np.repeat(row_start + 1 - (np.cumsum(p_len) - p_len), p_len)
    out[p_pos + np.arange(len(p_flat))] = p_flat
    h_pos = np.repeat(row_start + p_len + 2 - (np.cumsum(h_len) - h_len), h_len)
    out[h_pos + np.arange(len(h_flat))] = h_flat
    return out, row_len, p_len, p_full, h_full


MIN_MAX_LEN = SPECIAL_TOKENS_PER_PAIR + 2  # a token of each sentence beside the special ones


def checked_max_len(max_len: int) -> int:
    """``max_len`` if it holds <cls> p <sep> h <sep> with a token of each side: the one home of
    the rule that the CLI, grids and encoding all apply."""
    whole = isinstance(max_len, numbers.Integral) and not isinstance(max_len, bool)
    if not whole or max_len < MIN_MAX_LEN:
        raise SettingError(f"max_len must be at least {MIN_MAX_LEN}, a whole number, to hold "
                           f"<cls> premise <sep> hypothesis <sep>, not {max_len!r}")
    return max_len


def encode_pairs(
    premises: Sequence[str],
    hypotheses: Sequence[str],
    labels: Sequence[int],
    tokenizer: TextTokenizer,
    max_len: int,
    truncation: str = "longest_first",
    *,
    chunk_size: int = ENCODE_CHUNK,
) -> EncodedPairs:
    """Tokenize the pairs in batch calls of ``chunk_size`` pairs, truncate the pairs that do not
    fit, and pack them back to back; memory beyond the result stays bounded by the chunk."""
    budget = checked_max_len(max_len) - SPECIAL_TOKENS_PER_PAIR
    if chunk_size < 1:
        raise ValueError(f"chunk_size must be >= 1, got {chunk_size}")
    premises, hypotheses, labels = _as_triple((premises, hypotheses, labels), "book")
    strategy = get_strategy(truncation)
    n = len(premises)
    parts = []
    for start in range(0, n, chunk_size):
        stop = min(n, start + chunk_size)
        parts.append(
            _pack_chunk(
                _token_ids(tokenizer, premises[start:stop]),
                _token_ids(tokenizer, hypotheses[start:stop]),
                strategy,
                budget,
                tokenizer.cls_id,
                tokenizer.sep_id,
            )
        )
    ids, lengths, premise_lens, premise_full, hypothesis_full = (
        np.concatenate([part[k] for part in parts]) if parts else np.empty(0, dtype=np.int64)
        for k in range(5)
    )
    offsets = np.zeros(n + 1, dtype=np.int64)
    np.cumsum(lengths, out=offsets[1:])
    return EncodedPairs(
        ids=ids.astype(np.int32, copy=False),
        offsets=offsets,
        premise_lens=premise_lens.astype(np.int32),
        premise_full=premise_full.astype(np.int32),
        hypothesis_full=hypothesis_full.astype(np.int32),
        labels=np.asarray(labels, dtype=np.int64).reshape(n),
    )


def _save_atomic(path: Path, encoded: EncodedPairs) -> None:
    """The cache file is either absent or complete, never partly written."""
    arrays = {f: getattr(encoded, f) for f in EncodedPairs.__dataclass_fields__}
    atomic_write(path, lambda handle: np.savez(handle, **arrays))


def _check_consistent(encoded: EncodedPairs) -> None:
    """Raise ValueError unless the arrays describe ``n`` packed pairs (a sound cache file)."""
    n = len(encoded.labels)
    offsets = encoded.offsets
    if offsets.shape != (n + 1,) or any(
        getattr(encoded, f).shape != (n,)
        for f in ("premise_lens", "premise_full", "hypothesis_full")
    ):
        raise ValueError("array lengths disagree")
    too_short = (np.diff(offsets) < SPECIAL_TOKENS_PER_PAIR).any()
    if n and (offsets[0] != 0 or offsets[-1] != len(encoded.ids) or too_short):
        raise ValueError("offsets do not cover the ids")


def _load_cached(path: Path) -> EncodedPairs | None:
    """The stored arrays, or None when the file is absent or not a sound cache file (empty,
    truncated, corrupt, or from another format): such a file is rebuilt and rewritten."""
    try:
        with np.load(path, allow_pickle=False) as stored:
            encoded = EncodedPairs(**{f: stored[f] for f in EncodedPairs.__dataclass_fields__})
        _check_consistent(encoded)
        return encoded
    except (OSError, EOFError, KeyError, ValueError, zipfile.BadZipFile, zlib.error):
        return None


def _strategy_key(truncation: str | object) -> str | None:
    """The registered name of a strategy (for the cache key), or None for an unregistered
    callable, whose result cannot be keyed reliably (its repr holds a memory address)."""
    fn = get_strategy(truncation)  # unknown names fail here, before any work
    return next((name for name, known in STRATEGIES.items() if known is fn), None)


def default_cache_dir() -> Path:
    from bertnli_helpers import hub

    return hub.cache_dir() / "encoded"


def pad_packed(ids: Sequence[int], segments: Sequence[int], width: int,
               pad_id: int) -> tuple[list[int], list[int], int]:
    """One packed pair as a row of a batch ``width`` wide: ``(ids, segments, valid_len)``.

    The ids are followed by ``pad_id`` and the segments by 0 up to ``width``, as
    :meth:`SNLIBERTDataset.batch` pads its rows; ``valid_len`` is the pair's own length, which
    the encoder's attention mask reads so that the padding changes nothing. Padding never cuts:
    a pair longer than ``width`` is refused, because choosing what to drop is truncation's job.
    """
    if len(ids) != len(segments):
        raise ValueError(f"{len(ids)} ids but {len(segments)} segment ids: not one packed pair")
    if len(ids) > width:
        raise ValueError(f"a packed pair of {len(ids)} tokens does not fit in a row {width} wide; "
                         "truncate it first")
    padding = width - len(ids)
    return [*ids, *[pad_id] * padding], [*segments, *[0] * padding], len(ids)


class SNLIBERTDataset(Dataset):
    """SNLI pairs packed for BERT. ``dataset[i]`` is ``((ids, segments, valid_len), label)``
    like the book's, but unpadded; ``padded()`` gives the book's fixed-``max_len`` tensors.

    ``pairs`` is an :class:`SNLISplit` (the text form the tokenizer wants is chosen) or the
    book's ``(premises, hypotheses, labels)``. ``cache`` is a folder, ``None`` for the default
    cache folder, or ``False`` to encode every time. A cache file that cannot be read is rebuilt;
    one that cannot be written gives a warning (the dataset itself is complete either way). A
    truncation strategy passed as an unregistered function is never cached.
    """

    def __init__(
        self,
        pairs: SNLISplit | Sequence,
        tokenizer: TextTokenizer,
        max_len: int = 128,
        truncation: str = "longest_first",
        *,
        cache: str | Path | bool | None = None,
    ) -> None:
        self.tokenizer, self.max_len, self.truncation = tokenizer, max_len, truncation
        strategy_key = _strategy_key(truncation)  # unknown names fail before any work
        premises, hypotheses, labels = _as_triple(pairs, tokenizer.text_form)
        self.premises, self.hypotheses = list(premises), list(hypotheses)
        self.cache_path: Path | None = None
        self.from_cache = False
        encoded = None
        if cache is not False and strategy_key is not None:
            key = hashlib.sha1(
                "|".join([
                    str(CACHE_FORMAT),
                    pairs_fingerprint(premises, hypotheses, labels),
                    tokenizer_fingerprint(tokenizer),
                    strategy_key,
                    str(max_len),
                ]).encode()
            ).hexdigest()
            folder = default_cache_dir() if cache in (None, True) else Path(cache)
            self.cache_path = folder / f"snli-{key[:20]}.npz"
            encoded = _load_cached(self.cache_path)
            self.from_cache = encoded is not None
        if encoded is None:
            encoded = encode_pairs(premises, hypotheses, labels, tokenizer, max_len, truncation)
            if self.cache_path is not None:
                try:
                    _save_atomic(self.cache_path, encoded)
                except OSError as err:
                    warnings.warn(
                        f"could not write the encoded-data cache {self.cache_path} ({err}); the "
                        "dataset is complete but will be encoded again next time. Pass cache= a "
                        "writable folder, set BERTNLI_CACHE_DIR, or pass cache=False.",
                        RuntimeWarning,
                        stacklevel=2,
                    )
        self.encoded = encoded
        self.labels = torch.from_numpy(encoded.labels)

    def __len__(self) -> int:
        return len(self.encoded.labels)

    @property
    def lengths(self) -> np.ndarray:
        """Packed length (valid tokens) of every pair."""
        return self.encoded.lengths

    def segments_of(self, i: int) -> list[int]:
        n_first = int(self.encoded.premise_lens[i]) + 2
        return [0] * n_first + [1] * (int(self.lengths[i]) - n_first)

    def __getitem__(self, i: int) -> tuple[Inputs, torch.Tensor]:
        start, end = self.encoded.offsets[i], self.encoded.offsets[i + 1]
        ids = torch.from_numpy(self.encoded.ids[start:end].astype(np.int64))
        segments = torch.tensor(self.segments_of(i))
        return (ids, segments, torch.tensor(end - start)), self.labels[i]

    def batch(self, indices: Sequence[int], pad_to: int | None = None) -> Batch:
        """Padded ``((tokens, segments, valid_lens), labels)`` for the given pairs."""
        idx = np.asarray(indices, dtype=np.int64)
        starts = self.encoded.offsets[idx]
        lengths = self.encoded.offsets[idx + 1] - starts
        longest = int(lengths.max()) if len(lengths) else 0
        if pad_to is not None and pad_to < longest:
            raise ValueError(f"pad_to={pad_to} is shorter than the longest pair here ({longest})")
        width = longest if pad_to is None else pad_to
        positions = np.arange(width)
        valid = positions[None, :] < lengths[:, None]
        gather = np.where(valid, starts[:, None] + positions[None, :], 0)
        tokens = np.where(valid, self.encoded.ids[gather], self.tokenizer.pad_id)
        second = positions[None, :] >= (self.encoded.premise_lens[idx][:, None] + 2)
        segments = (second & valid).astype(np.int64)
        inputs = (
            torch.from_numpy(tokens.astype(np.int64)),
            torch.from_numpy(segments),
            torch.from_numpy(lengths),
        )
        return inputs, self.labels[torch.from_numpy(idx)]

    def padded(self) -> Inputs:
        """The book's form: ``(token_ids, segments, valid_lens)``, every row padded to max_len."""
        (tokens, segments, valid), _ = self.batch(range(len(self)), pad_to=self.max_len)
        return tokens, segments, valid

    def tokens_of(self, i: int) -> list[str]:
        start, end = self.encoded.offsets[i], self.encoded.offsets[i + 1]
        return self.tokenizer.to_tokens(self.encoded.ids[start:end])

    def memory_bytes(self) -> int:
        return self.encoded.nbytes()


class LengthBucketSampler(Sampler[list[int]]):
    """Batches of similar-length pairs, in a random order that a seed and the epoch fix.

    Each epoch: shuffle all indices, cut them into pools of ``batch_size * pool_batches``, sort
    each pool by length, cut it into batches, shuffle the batches. With ``num_replicas > 1``
    (distributed training) each global batch of ``batch_size * num_replicas`` pairs is split so
    that rank ``r`` gets the ``r``-th slice; every rank gets the same number of batches (a last
    global batch smaller than ``num_replicas`` is filled up by repeating its pairs, as
    ``DistributedSampler`` does, so that no rank is left without a batch and waits forever).
    """

    def __init__(
        self,
        lengths: Sequence[int] | np.ndarray,
        batch_size: int,
        *,
        shuffle: bool = True,
        seed: int = 0,
        pool_batches: int = 50,
        drop_last: bool = False,
        num_replicas: int = 1,
        rank: int = 0,
    ) -> None:
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        if not 0 <= rank < num_replicas:
            raise ValueError(f"rank {rank} is not in [0, {num_replicas})")
        self.lengths = np.asarray(lengths)
        self.batch_size, self.shuffle, self.seed = batch_size, shuffle, seed
        self.pool_batches, self.drop_last = pool_batches, drop_last
        self.num_replicas, self.rank = num_replicas, rank
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def global_batches(self) -> list[np.ndarray]:
        """The batches of all ranks together, for this epoch."""
        size = self.batch_size * self.num_replicas
        n = len(self.lengths)
        if not self.shuffle:
            order = np.argsort(self.lengths, kind="stable")
            batches = [order[i : i + size] for i in range(0, n, size)]
        else:
            rng = np.random.default_rng([self.seed, self.epoch])
            order = rng.permutation(n)
            pool = size * self.pool_batches
            batches = []
            for start in range(0, n, pool):
                chunk = order[start : start + pool]
                chunk = chunk[np.argsort(self.lengths[chunk], kind="stable")]
                batches += [chunk[i : i + size] for i in range(0, len(chunk), size)]
            batches = [batches[i] for i in rng.permutation(len(batches))]
        if self.drop_last:
            batches = [b for b in batches if len(b) == size]
        return batches

    def __iter__(self) -> Iterator[list[int]]:
        for batch in self.global_batches():
            if len(batch) < self.num_replicas:
                batch = np.resize(batch, self.num_replicas)  # repeats pairs cyclically
            yield np.array_split(batch, self.num_replicas)[self.rank].tolist()

    def __len__(self) -> int:
        size = self.batch_size * self.num_replicas
        n = len(self.lengths)
        return n // size if self.drop_last else -(-n // size)


class RandomBatchSampler(Sampler[list[int]]):
    """Plain shuffled batches (the book's loader), seeded per epoch, for comparisons."""

    def __init__(self, n: int, batch_size: int, *, shuffle: bool = True, seed: int = 0) -> None:
        self.n, self.batch_size, self.shuffle, self.seed = n, batch_size, shuffle, seed
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __iter__(self) -> Iterator[list[int]]:
        order = (
            np.random.default_rng([self.seed, self.epoch]).permutation(self.n)
            if self.shuffle
            else np.arange(self.n)
        )
        for i in range(0, self.n, self.batch_size):
            yield order[i : i + self.batch_size].tolist()

    def __len__(self) -> int:
        return -(-self.n // self.batch_size)


def padding_share(lengths: Sequence[int], batches: Sequence[Sequence[int]]) -> float:
    """The share of the positions a batching computes that are padding: each batch of indices
    computes (its longest length) x (its size) positions, of which the lengths are real."""
    lengths = np.asarray(lengths)
    computed = sum(int(lengths[list(batch)].max()) * len(batch) for batch in batches if len(batch))
    real = sum(int(lengths[list(batch)].sum()) for batch in batches)
    return 1.0 - real / computed if computed else 0.0
