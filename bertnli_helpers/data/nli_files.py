"""Reading any labelled NLI file: SNLI's and MultiNLI's official forms, two-class stress tests
such as HANS, and your own pairs.

A file is JSON Lines (``.jsonl``) or tab-separated with a header line (``.txt``, ``.tsv``), each
optionally gzip-compressed (``.gz``). A pair needs a premise, a hypothesis and a gold label; the
field names are read as common datasets spell them:

* premise: ``sentence1`` (SNLI, MultiNLI, HANS) or ``premise`` (Hugging Face ``datasets``);
* hypothesis: ``sentence2`` or ``hypothesis``;
* label: ``gold_label`` or ``label``, a name (``entailment``, ``contradiction``, ``neutral``, or
  ``non-entailment`` / ``not_entailment`` for two-class files, any case) or a whole-number id.

Ids are ambiguous, so a file of ids needs ``label_ids``: ``"book"`` (entailment 0,
contradiction 1, neutral 2, the book's and :data:`bertnli_helpers.data.snli.LABELS`), ``"hf"``
(entailment 0, neutral 1, contradiction 2: Hugging Face's ``snli`` and ``multi_nli``) or
``"two-class"`` (entailment 0, non-entailment 1). Pairs without a gold label (``-``, or ``-1`` as
Hugging Face writes it) are dropped and counted, as :mod:`bertnli_helpers.data.snli` drops them. The
binary parses are optional: when a line has them, the book's vocabulary reads their text exactly
as it reads SNLI's (so ``bertnli evaluate --file snli_1.0_test.jsonl`` gives the figure of
``--split test``); otherwise the typed sentence is spaced like a parse. Every other field is kept
with its pair, for breakdowns (``genre`` in MultiNLI, ``heuristic`` in HANS, your own).

A file whose labels include non-entailment is a **two-class** file; mixing two-class and
three-class labels in one file is an error, as is a line without a label or with an unknown one:
each names the file and the line.
"""

from __future__ import annotations

import itertools
import json
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from bertnli_helpers.data.snli import (
    LABEL_NAMES,
    LABELS,
    book_text,
    jsonl_rows,
    line_error,
    numbered_lines,
)
from bertnli_helpers.data.tokenization import TextTokenizer
from bertnli_helpers.errors import SettingError

__all__ = [
    "LABEL_ID_ORDERS",
    "LABEL_SPACES",
    "NON_ENTAILMENT",
    "NLIFile",
    "NLIPair",
    "read_nli_file",
    "read_pairs",
    "two_class_names",
    "write_nli_file",
]

PREMISE_FIELDS = ("sentence1", "premise")
HYPOTHESIS_FIELDS = ("sentence2", "hypothesis")
LABEL_FIELDS = ("gold_label", "label")
PARSE_FIELDS = ("sentence1_binary_parse", "sentence2_binary_parse")
# Kept out of a pair's extra fields: long, and the parses' text is already read.
UNKEPT_FIELDS = (*PARSE_FIELDS, "sentence1_parse", "sentence2_parse")

NON_ENTAILMENT = "non-entailment"
TWO_CLASS_NAMES: tuple[str, ...] = ("entailment", NON_ENTAILMENT)
LABEL_SPACES: dict[str, tuple[str, ...]] = {"three": LABEL_NAMES, "two": TWO_CLASS_NAMES}
LABEL_ALIASES: dict[str, str] = {
    **{name: name for name in LABEL_NAMES},
    NON_ENTAILMENT: NON_ENTAILMENT, "non_entailment": NON_ENTAILMENT,
    "not_entailment": NON_ENTAILMENT, "not-entailment": NON_ENTAILMENT,
}
LABEL_ID_ORDERS: dict[str, tuple[str, ...]] = {
    "book": LABEL_NAMES,
    "hf": ("entailment", "neutral", "contradiction"),
    "two-class": TWO_CLASS_NAMES,
}
NO_GOLD = ("-", "-1")


@dataclass(frozen=True)
class NLIPair:
    """One labelled pair of a file: its line, sentences, gold label name and other fields."""

    line: int
    premise: str
    hypothesis: str
    label_name: str
    premise_parse_text: str | None = None
    hypothesis_parse_text: str | None = None
    fields: dict[str, Any] = field(default_factory=dict)


def two_class_names(names: Any) -> np.ndarray:
    """Three-class label names seen as two classes: contradiction and neutral become
    non-entailment (McCoy et al., 2019, score a three-class model on HANS this way)."""
    names = np.asarray(names, dtype=object)
    return np.where(names == "entailment", "entailment", NON_ENTAILMENT)


@dataclass
class NLIFile:
    """The labelled pairs of one file, its label space (``"three"`` or ``"two"``), and how many
    pairs without a gold label it dropped."""

    path: Path
    pairs: list[NLIPair]
    label_space: str
    dropped: int

    def __len__(self) -> int:
        return len(self.pairs)

    @property
    def label_names(self) -> tuple[str, ...]:
        return LABEL_SPACES[self.label_space]

    @property
    def field_names(self) -> list[str]:
        """The extra fields of the pairs, in the order they first appear."""
        return list(dict.fromkeys(name for pair in self.pairs for name in pair.fields))

    def gold_names(self) -> np.ndarray:
        return np.asarray([pair.label_name for pair in self.pairs], dtype=object)

    def texts(self, tokenizer: TextTokenizer) -> tuple[list[str], list[str]]:
        """Premises and hypotheses in the form ``tokenizer`` reads: the typed sentences for
        WordPiece; for the book's vocabulary the parse text, or the sentence spaced like one."""
        if tokenizer.text_form == "raw":
            return [p.premise for p in self.pairs], [p.hypothesis for p in self.pairs]
        spaced = tokenizer.prepare_typed
        premises = [p.premise_parse_text or spaced(p.premise) for p in self.pairs]
        hypotheses = [p.hypothesis_parse_text or spaced(p.hypothesis) for p in self.pairs]
        return premises, hypotheses

    def triple(self, tokenizer: TextTokenizer) -> tuple[list[str], list[str], list[int]]:
        """``(premises, hypotheses, labels)`` for ``SNLIBERTDataset``: the book's label ids for
        a three-class file; a two-class file has none in that space, so its labels are 0
        placeholders and it is scored by name (see ``robustness.score_file``)."""
        premises, hypotheses = self.texts(tokenizer)
        if self.label_space == "three":
            labels = [LABELS[p.label_name] for p in self.pairs]
        else:
            labels = [0] * len(self.pairs)
        return premises, hypotheses, labels

    def sample(self, n: int | None, seed: int = 0) -> NLIFile:
        """A random subset of ``n`` pairs (all when ``n`` is None or too large), order kept."""
        if n is None or n >= len(self.pairs):
            return self
        if n < 1:
            raise ValueError(f"a sample needs at least one pair, not {n}")
        import random

        keep = sorted(random.Random(seed).sample(range(len(self.pairs)), n))
        return NLIFile(self.path, [self.pairs[i] for i in keep], self.label_space, self.dropped)


# -- reading rows -------------------------------------------------------------------------------
Rows = Iterator[tuple[int, dict[str, Any]]]


def _tsv_rows(path: Path, positional: bool = False) -> Rows:
    """Rows of a tab-separated file with a header line naming the columns; with ``positional``
    (unlabelled pairs for ``predict``) a file without one is read as premise<TAB>hypothesis."""
    lines = numbered_lines(path)
    first = next(lines, None)
    if first is None:
        raise line_error(path, 1, "empty file: no pairs to read")
    header = first[1].split("\t")
    if not any(name in header for name in (*PREMISE_FIELDS, *LABEL_FIELDS)):
        if not positional:
            raise line_error(path, 1, f"expected a header naming the columns ({_expected()}), "
                             f"got {first[1][:120]!r}")
        header = ["premise", "hypothesis"]
        lines = itertools.chain([first], lines)
    for lineno, text in lines:
        if not text.strip():
            continue
        cells = text.split("\t")
        if len(cells) != len(header):
            what = (f"{len(cells)} tab-separated columns, the header has {len(header)}"
                    if header != ["premise", "hypothesis"] else
                    f"expected 'premise<TAB>hypothesis', got {len(cells)} tab-separated columns")
            raise line_error(path, lineno, what)
        yield lineno, dict(zip(header, cells, strict=True))


def _jsonl_rows(path: Path, positional: bool = False) -> Rows:
    return jsonl_rows(path)


FILE_FORMATS: dict[str, Callable[[Path, bool], Rows]] = {
    ".jsonl": _jsonl_rows,
    ".txt": _tsv_rows,
    ".tsv": _tsv_rows,
}


def _expected() -> str:
    return (f"premise: {' or '.join(PREMISE_FIELDS)}; hypothesis: {' or '.join(HYPOTHESIS_FIELDS)}"
            f"; label: {' or '.join(LABEL_FIELDS)}")


def _format_of(path: Path) -> Callable[[Path, bool], Rows]:
    suffixes = [s for s in path.suffixes if s != ".gz"]
    if suffixes and suffixes[-1] in FILE_FORMATS:
        return FILE_FORMATS[suffixes[-1]]
    known = ", ".join(f"{s}[.gz]" for s in FILE_FORMATS)
    raise line_error(path, 1, f"unknown file type; name it {known} (JSON Lines, or tab-separated "
                     "with a header)")


# -- one row to one pair ------------------------------------------------------------------------
def _first_field(row: dict[str, Any], names: tuple[str, ...]) -> str | None:
    return next((name for name in names if name in row), None)


def _label_name(path: Path, lineno: int, value: Any, label_ids: str | None) -> str | None:
    """The canonical label name of a cell, or None for a pair without a gold label."""
    text = str(value).strip().lower() if value is not None else ""
    if text in NO_GOLD:
        return None
    if text.isdigit() and not isinstance(value, bool):
        if label_ids is None:
            orders = "; ".join(f"{name!r}: {', '.join(f'{i} {n}' for i, n in enumerate(order))}"
                               for name, order in LABEL_ID_ORDERS.items())
            raise line_error(path, lineno, f"label {value!r} is an id, and ids mean different "
                             f"labels in different datasets: say which order the file uses with "
                             f"label_ids / --label-ids ({orders})")
        order = LABEL_ID_ORDERS[label_ids]
        if int(text) >= len(order):
            raise line_error(path, lineno, f"label id {value!r} is not in the {label_ids!r} "
                             f"order ({', '.join(order)})")
        return order[int(text)]
    if text not in LABEL_ALIASES:
        known = ", ".join(LABEL_ALIASES)
        raise line_error(path, lineno, f"unknown label {value!r}; known labels: {known}, an id "
                         "with label_ids, or '-' for a pair without a gold label")
    return LABEL_ALIASES[text]


def _pair_texts(path: Path, lineno: int, row: dict[str, Any]) -> tuple[str, str]:
    """The premise and hypothesis of a row; a missing or empty one is an error naming the line
    (the rule ``predict`` and ``evaluate --file`` share)."""
    texts = []
    for role, names in (("premise", PREMISE_FIELDS), ("hypothesis", HYPOTHESIS_FIELDS)):
        key = _first_field(row, names)
        if key is None or not isinstance(row[key], str) or not row[key].strip():
            raise line_error(path, lineno, f"no {role} text (looked for the field "
                             f"{' or '.join(names)})")
        texts.append(row[key])
    return texts[0], texts[1]


def _pair(path: Path, lineno: int, row: dict[str, Any], label_ids: str | None) -> NLIPair | None:
    """A pair from one row, or None when it has no gold label; errors name the line."""
    keys = {role: _first_field(row, names) for role, names in
            (("premise", PREMISE_FIELDS), ("hypothesis", HYPOTHESIS_FIELDS),
             ("label", LABEL_FIELDS))}
    if keys["label"] is None:
        raise line_error(path, lineno, f"no label (looked for the field "
                         f"{' or '.join(LABEL_FIELDS)}): evaluating needs labelled pairs; "
                         "'bertnli predict --file' labels pairs that have none")
    _pair_texts(path, lineno, row)
    name = _label_name(path, lineno, row[keys["label"]], label_ids)
    if name is None:
        return None
    parses = [row.get(key) for key in PARSE_FIELDS]
    used = {keys["premise"], keys["hypothesis"], keys["label"], *UNKEPT_FIELDS}
    return NLIPair(
        line=lineno, premise=row[keys["premise"]], hypothesis=row[keys["hypothesis"]],
        label_name=name,
        premise_parse_text=book_text(parses[0]) if isinstance(parses[0], str) else None,
        hypothesis_parse_text=book_text(parses[1]) if isinstance(parses[1], str) else None,
        fields={k: v for k, v in row.items() if k not in used},
    )


def _label_space(path: Path, pairs: list[NLIPair]) -> str:
    """``"two"`` when a label is non-entailment, else ``"three"``; both kinds is an error."""
    two = next((p for p in pairs if p.label_name == NON_ENTAILMENT), None)
    if two is None:
        return "three"
    three = next((p for p in pairs if p.label_name in ("contradiction", "neutral")), None)
    if three is not None:
        raise line_error(path, three.line, f"label {three.label_name!r} in a two-class file "
                         f"(line {two.line} is {NON_ENTAILMENT!r}): a file holds either "
                         "entailment/contradiction/neutral or entailment/non-entailment")
    return "two"


def _existing_file(path: str | os.PathLike[str]) -> Path:
    path = Path(path)
    if path.is_dir():
        raise SettingError(f"{path} is a folder, not a file of pairs: give the file's path")
    if not path.is_file():
        raise FileNotFoundError(f"NLI file not found: {path}")
    return path


def read_pairs(path: str | os.PathLike[str]) -> tuple[list[str], list[str]]:
    """The premises and hypotheses of a file of pairs, labelled or not (``bertnli predict
    --file``), read by the rules of :func:`read_nli_file` (formats, gzip, BOM, header, empty
    text, empty file, the same errors); a tab-separated file may also have no header and hold
    premise<TAB>hypothesis lines."""
    path = _existing_file(path)
    premises, hypotheses = [], []
    for lineno, row in _format_of(path)(path, True):
        premise, hypothesis = _pair_texts(path, lineno, row)
        premises.append(premise)
        hypotheses.append(hypothesis)
    if not premises:
        raise line_error(path, 1, "no pairs in the file")
    return premises, hypotheses


def read_nli_file(path: str | os.PathLike[str], *, label_ids: str | None = None) -> NLIFile:
    """Every labelled pair of an NLI file (see the module's docstring for what it reads)."""
    path = _existing_file(path)
    if label_ids is not None and label_ids not in LABEL_ID_ORDERS:
        raise SettingError(f"label_ids must be one of {', '.join(LABEL_ID_ORDERS)}, not "
                         f"{label_ids!r}")
    pairs: list[NLIPair] = []
    dropped = 0
    for lineno, row in _format_of(path)(path, False):
        pair = _pair(path, lineno, row, label_ids)
        if pair is None:
            dropped += 1
        else:
            pairs.append(pair)
    if not pairs:
        raise line_error(path, 1, f"no labelled pairs in the file ({dropped} without a gold "
                         "label)")
    return NLIFile(path, pairs, _label_space(path, pairs), dropped)


def write_nli_file(path: str | os.PathLike[str], premises: list[str], hypotheses: list[str],
                   labels: list[str], **fields: list[Any]) -> Path:
    """Write labelled pairs as JSON Lines (``sentence1``, ``sentence2``, ``gold_label`` and
    ``fields``, one list per field), atomically: a file ``read_nli_file`` and ``bertnli
    evaluate --file`` read."""
    from bertnli_helpers.files import atomic_write_text

    columns = {"sentence1": premises, "sentence2": hypotheses, "gold_label": labels, **fields}
    sizes = {name: len(values) for name, values in columns.items()}
    if len(set(sizes.values())) != 1:
        raise ValueError(f"every column needs one value per pair, got {sizes}")
    rows = (dict(zip(columns, values, strict=True)) for values in zip(*columns.values()))
    text = "".join(json.dumps(row, ensure_ascii=False) + "\n" for row in rows)
    return atomic_write_text(path, text)
