"""One small tokenizer interface over the book's word vocabulary and WordPiece.

Both kinds are backed by the Rust ``tokenizers`` library, so encoding a whole split is a single
fast batch call. The book's vocabulary (``vocab.json``: a list of tokens) becomes a word-level
model that lower-cases and splits on white space, exactly as the book does; WordPiece comes from a
Hugging Face ``vocab.txt`` (or ``tokenizer.json``).
"""

from __future__ import annotations

import json
import re
from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from tokenizers import Tokenizer, models, normalizers, pre_tokenizers

from bertnli_helpers.errors import VocabularyError


@dataclass(frozen=True)
class SpecialTokens:
    """The names of the special tokens a vocabulary uses."""

    cls: str
    sep: str
    pad: str
    unk: str
    mask: str | None = None

    def required(self) -> list[str]:
        return [self.cls, self.sep, self.pad, self.unk]


BOOK_SPECIALS = SpecialTokens(cls="<cls>", sep="<sep>", pad="<pad>", unk="<unk>", mask="<mask>")
WORDPIECE_SPECIALS = SpecialTokens(
    cls="[CLS]", sep="[SEP]", pad="[PAD]", unk="[UNK]", mask="[MASK]"
)


# The book's special tokens in the order of its vocabularies: <unk> first (id 0), then d2l's
# reserved tokens; and how often a word must occur to get an id of its own.
BOOK_RESERVED = ("<unk>", "<pad>", "<mask>", "<cls>", "<sep>")
BOOK_MIN_FREQ = 5

_PARSE_TOKEN = re.compile(r"\w+(?:[-']\w+)*|[^\w\s]")


class TextTokenizer:
    """Text -> tokens -> ids, the same way for the book's vocabulary and for WordPiece.

    ``kind`` is ``"book"`` or ``"wordpiece"``. ``text_form`` tells the data pipeline which SNLI
    text suits the tokenizer: the book's vocabulary was built from the parse trees' tokens
    (``"book"``), WordPiece wants the raw sentences (``"raw"``). Indexing (``tok[tokens]``) and
    ``idx_to_token`` / ``token_to_idx`` behave like the book's ``d2l.Vocab``.
    """

    def __init__(self, backend: Tokenizer, kind: str, specials: SpecialTokens) -> None:
        self.backend = backend
        self.kind = kind
        self.specials = specials
        self.text_form = "book" if kind == "book" else "raw"
        vocab = backend.get_vocab(with_added_tokens=True)
        missing = [t for t in specials.required() if t not in vocab]
        if missing:
            raise VocabularyError(
                f"the {kind} vocabulary lacks the special token(s) {missing}; a BERT vocabulary "
                f"needs {specials.required()} (check that the vocabulary file is the model's own)"
            )
        self.token_to_idx: dict[str, int] = vocab
        size = max(vocab.values()) + 1
        self.idx_to_token: list[str] = [""] * size
        for token, idx in vocab.items():
            self.idx_to_token[idx] = token
        self.cls_id = vocab[specials.cls]
        self.sep_id = vocab[specials.sep]
        self.pad_id = vocab[specials.pad]
        self.unk_id = vocab[specials.unk]

    # -- d2l.Vocab compatibility -------------------------------------------------------------
    def __len__(self) -> int:
        return len(self.idx_to_token)

    def __getitem__(self, tokens: str | Sequence[str]) -> int | list[int]:
        if isinstance(tokens, str):
            return self.token_to_idx.get(tokens, self.unk_id)
        return [self.token_to_idx.get(t, self.unk_id) for t in tokens]

    def to_tokens(self, ids: Iterable[int]) -> list[str]:
        return [self.idx_to_token[int(i)] for i in ids]

    @property
    def unk(self) -> int:
        return self.unk_id

    # -- tokenizing ------------------------------------------------------------------------
    def tokenize(self, text: str) -> list[str]:
        """Split one text into tokens (no special tokens added).

        The book's tokens are the words themselves (an unknown word stays visible and becomes
        ``<unk>`` only as an id); WordPiece tokens are sub-words, ``[UNK]`` included.
        """
        if self.kind == "book":
            return text.lower().split()
        return self.backend.encode(text, add_special_tokens=False).tokens

    def tokenize_batch(self, texts: Sequence[str]) -> list[list[str]]:
        if self.kind == "book":
            return [text.lower().split() for text in texts]
        return [e.tokens for e in self.backend.encode_batch(list(texts), add_special_tokens=False)]

    def prepare_typed(self, text: str) -> str:
        """Text a person typed, in the form this vocabulary was built from.

        The book's vocabulary holds SNLI's parse tokens, so typed text is spaced like the parse
        text ("dog." -> "dog ."); WordPiece splits raw text itself, so it gets the text unchanged.
        Every place that tokenizes typed text (widgets, ``bertnli predict``, notebooks) calls this.
        """
        if self.text_form == "book":
            return " ".join(_PARSE_TOKEN.findall(text))
        return text

    def encode_batch(self, texts: Sequence[str]) -> list[list[int]]:
        """Token ids of many texts in one fast call (no special tokens added)."""
        return [e.ids for e in self.backend.encode_batch(list(texts), add_special_tokens=False)]

    def pack_tokens(self, p_tokens: Sequence[str], h_tokens: Sequence[str] | None = None):
        """``<cls> p <sep> h <sep>`` as tokens, with segment ids 0 for the premise part, 1 after."""
        tokens = [self.specials.cls, *p_tokens, self.specials.sep]
        segments = [0] * len(tokens)
        if h_tokens is not None:
            tokens += [*h_tokens, self.specials.sep]
            segments += [1] * (len(h_tokens) + 1)
        return tokens, segments

    def pack_ids(self, p_ids: Sequence[int], h_ids: Sequence[int]) -> tuple[list[int], list[int]]:
        """The same packing on ids: what the dataset stores."""
        ids = [self.cls_id, *p_ids, self.sep_id, *h_ids, self.sep_id]
        segments = [0] * (len(p_ids) + 2) + [1] * (len(h_ids) + 1)
        return ids, segments

    def __repr__(self) -> str:
        return f"TextTokenizer(kind={self.kind!r}, vocab_size={len(self)})"


def book_tokenizer(idx_to_token: Sequence[str]) -> TextTokenizer:
    """The book's word-level vocabulary: lower-case, split on white space, unknown -> ``<unk>``."""
    if len(set(idx_to_token)) != len(idx_to_token):
        raise VocabularyError("the vocabulary list has duplicate tokens; vocab.json is corrupt")
    vocab = {token: i for i, token in enumerate(idx_to_token)}
    if BOOK_SPECIALS.unk not in vocab:
        raise VocabularyError(
            f"the book vocabulary lacks the special token(s) ['{BOOK_SPECIALS.unk}']; "
            f"a BERT vocabulary needs {BOOK_SPECIALS.required()}"
        )
    backend = Tokenizer(models.WordLevel(vocab, unk_token=BOOK_SPECIALS.unk))
    backend.normalizer = normalizers.Lowercase()
    backend.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    return TextTokenizer(backend, "book", BOOK_SPECIALS)


def book_word_counts(texts: Iterable[str]) -> Counter[str]:
    """How often each word occurs in ``texts``, split as the book's tokenizer splits them
    (lower-cased, on white space): what a book-style vocabulary is built from."""
    return Counter(word for text in texts for word in text.lower().split())


def book_vocab_tokens(word_counts: Mapping[str, int], min_freq: int = BOOK_MIN_FREQ,
                      reserved: Sequence[str] = BOOK_RESERVED) -> list[str]:
    """The token list of a book-style vocabulary (the index is the id): ``reserved`` first, then
    every word seen at least ``min_freq`` times, most frequent first. Words seen equally often
    keep their order in ``word_counts`` (a stable sort, as ``Counter.most_common`` gives), and a
    reserved token that was also counted appears once, among the reserved."""
    if min_freq < 1:
        raise ValueError(f"min_freq must be at least 1, not {min_freq}")
    by_frequency = sorted(word_counts.items(), key=lambda item: item[1], reverse=True)
    words = [w for w, count in by_frequency if count >= min_freq and w not in reserved]
    return [*reserved, *words]


TokenChooser = Callable[[Mapping[str, int], int, Sequence[str]], list[str]]


def build_book_vocab(word_counts: Mapping[str, int], *, min_freq: int = BOOK_MIN_FREQ,
                     tokens_of: TokenChooser = book_vocab_tokens) -> TextTokenizer:
    """A word vocabulary made the book's way: ``BOOK_RESERVED``, then every word seen at least
    ``min_freq`` times, most frequent first; every other word becomes ``<unk>``.

    It keeps the words ``d2l.Vocab(tokens, min_freq, reserved_tokens)`` keeps, in the order of
    d2l before 1.0 (``<unk>``, the reserved tokens, then by frequency); d2l 1.0 sorts its list
    alphabetically instead. ``tokens_of(word_counts, min_freq, reserved)`` chooses the token
    list (:func:`book_vocab_tokens`; notebook 2 passes the student's own).
    """
    if min_freq < 1:
        raise ValueError(f"min_freq must be at least 1, not {min_freq}")
    return book_tokenizer(list(tokens_of(word_counts, min_freq, BOOK_RESERVED)))


def load_book_vocab(path: str | Path) -> TextTokenizer:
    """Read the book's ``vocab.json`` (a JSON list of tokens, index = position)."""
    path = Path(path)
    try:
        tokens = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise FileNotFoundError(f"book vocabulary not found: {path}") from None
    except json.JSONDecodeError as err:
        raise VocabularyError(
            f"{path} is not valid JSON ({err}); expected a list of tokens"
        ) from None
    if not isinstance(tokens, list) or not all(isinstance(t, str) for t in tokens):
        raise VocabularyError(f"{path} must hold a JSON list of token strings")
    return book_tokenizer(tokens)


def load_wordpiece(folder: str | Path, *, lowercase: bool | None = None) -> TextTokenizer:
    """WordPiece from a Hugging Face folder: ``vocab.txt`` (+ ``tokenizer_config.json``).

    ``vocab.txt`` is preferred over ``tokenizer.json`` so the behaviour depends only on the
    vocabulary and the lower-casing flag, which every BERT folder has.
    """
    folder = Path(folder)
    vocab_file = folder / "vocab.txt"
    if not vocab_file.exists():
        raise FileNotFoundError(
            f"no vocab.txt in {folder}: a Hugging Face BERT folder needs vocab.txt for WordPiece"
        )
    if lowercase is None:
        lowercase = True
        config_file = folder / "tokenizer_config.json"
        if config_file.exists():
            lowercase = bool(json.loads(config_file.read_text()).get("do_lower_case", True))
    vocab: dict[str, int] = {}
    with vocab_file.open(encoding="utf-8") as lines:
        for index, line in enumerate(lines):
            vocab[line.rstrip("\n")] = index  # a token's id is its line number
    if WORDPIECE_SPECIALS.unk not in vocab:
        raise VocabularyError(
            f"{vocab_file} lacks the special token(s) ['{WORDPIECE_SPECIALS.unk}']; "
            f"a BERT vocabulary needs {WORDPIECE_SPECIALS.required()}"
        )
    backend = Tokenizer(models.WordPiece(vocab, unk_token=WORDPIECE_SPECIALS.unk))
    backend.normalizer = normalizers.BertNormalizer(
        clean_text=True, handle_chinese_chars=True, strip_accents=None, lowercase=lowercase
    )
    backend.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    return TextTokenizer(backend, "wordpiece", WORDPIECE_SPECIALS)
