"""Reading SNLI 1.0 from a data folder, in either official form, into the book's triple or records.

A data folder holds ``snli_1.0_<split>.jsonl`` or ``snli_1.0_<split>.txt`` (tab-separated, with a
header line), each optionally gzip-compressed (``.gz``), either directly or in the ``snli_1.0/``
subfolder the official zip unpacks to. Labels are the book's: entailment 0, contradiction 1,
neutral 2. Pairs whose gold label is ``-`` (the annotators did not agree) are dropped and counted,
as the book drops them; every other malformed line is an error naming the file and the line, never
skipped in silence (blank lines hold no pair and are passed over).

The book reads the text of the binary parses (brackets removed, whitespace runs collapsed): that is
``text='book'``. WordPiece tokenizers want the original sentences: ``text='raw'``.
"""

from __future__ import annotations

import gzip
import json
import os
import re
import warnings
import zlib
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from bertnli_helpers.errors import DataFormatError

__all__ = [
    "DATA_DIR_ENV",
    "LABELS",
    "LABEL_NAMES",
    "OFFICIAL_PAIRS",
    "SPLITS",
    "SNLIRecord",
    "SNLISplit",
    "SampleWarning",
    "book_text",
    "find_split_file",
    "line_error",
    "numbered_lines",
    "read_records",
    "read_snli",
    "resolve_data_dir",
    "train_sample_note",
    "write_official_txt",
]

LABELS: dict[str, int] = {"entailment": 0, "contradiction": 1, "neutral": 2}
LABEL_NAMES: tuple[str, ...] = tuple(sorted(LABELS, key=LABELS.__getitem__))
NO_GOLD = "-"
SPLITS: tuple[str, ...] = ("train", "dev", "test")
# Usable pairs (gold label not '-') in the official snli_1.0.zip, to recognise a sample.
OFFICIAL_PAIRS: dict[str, int] = {"train": 549_367, "dev": 9_842, "test": 9_824}
SAMPLE_FRACTION = 0.9
DATA_DIR_ENV = "BERTNLI_DATA_DIR"
ZIP_SUBFOLDER = "snli_1.0"
# Lookup order of the file forms inside a folder.
SUFFIXES: tuple[str, ...] = (".jsonl", ".jsonl.gz", ".txt", ".txt.gz")

# Official field names: the JSONL keys and the .txt header names are the same.
_REQUIRED = (
    "gold_label",
    "sentence1",
    "sentence2",
    "sentence1_binary_parse",
    "sentence2_binary_parse",
    "pairID",
    "captionID",
)
_TXT_LABEL_COLUMNS = tuple(f"label{i}" for i in range(1, 6))
_WHITESPACE_RUN = re.compile(r"\s{2,}")


class SampleWarning(UserWarning):
    """A split holds far fewer pairs than the official one, so results are not comparable."""


@dataclass(frozen=True, slots=True)
class SNLIRecord:
    """One labelled pair with everything the course shows about it."""

    pair_id: str
    premise: str
    hypothesis: str
    premise_parse_text: str
    hypothesis_parse_text: str
    label: int
    annotator_labels: tuple[str, ...]
    caption_id: str

    @property
    def label_name(self) -> str:
        return LABEL_NAMES[self.label]


@dataclass
class SNLISplit:
    """The usable pairs of one split file, its path, and how many ``-`` pairs it dropped."""

    split: str
    path: Path
    records: list[SNLIRecord] = field(repr=False)
    dropped: int

    def __len__(self) -> int:
        return len(self.records)

    def triple(self, text: str = "book") -> tuple[list[str], list[str], list[int]]:
        """The book's ``(premises, hypotheses, labels)``; ``text``: 'book' (parse text) or 'raw'."""
        if text == "book":
            premises = [r.premise_parse_text for r in self.records]
            hypotheses = [r.hypothesis_parse_text for r in self.records]
        elif text == "raw":
            premises = [r.premise for r in self.records]
            hypotheses = [r.hypothesis for r in self.records]
        else:
            raise ValueError(f"text must be 'book' or 'raw', not {text!r}")
        return premises, hypotheses, [r.label for r in self.records]

    def sample(self, n: int | None, seed: int = 0) -> SNLISplit:
        """A random subset of ``n`` pairs (all when ``n`` is None or too large), order kept."""
        if n is None or n >= len(self.records):
            return self
        if n < 1:
            raise ValueError(f"a sample needs at least one pair, not {n}")
        import random

        keep = sorted(random.Random(seed).sample(range(len(self.records)), n))
        return SNLISplit(self.split, self.path, [self.records[i] for i in keep], self.dropped)

    def label_counts(self) -> dict[str, int]:
        """Pairs per label name, in label order."""
        counts = Counter(r.label for r in self.records)
        return {name: counts[i] for i, name in enumerate(LABEL_NAMES)}


def book_text(binary_parse: str) -> str:
    """The book's text of a parse: brackets removed, 2+ whitespace made one space, stripped."""
    return _WHITESPACE_RUN.sub(" ", binary_parse.replace("(", "").replace(")", "")).strip()


def _split_name(split: str | bool) -> str:
    """Accept the book's ``is_train`` boolean (True -> train, False -> test) as well as a name."""
    if isinstance(split, bool):
        return "train" if split else "test"
    if split not in SPLITS:
        known = ", ".join(SPLITS)
        raise ValueError(f"split must be one of {known} (or a bool is_train), not {split!r}")
    return split


def resolve_data_dir(data_dir: str | os.PathLike[str] | None = None) -> Path:
    """The SNLI folder: the argument, else ``$BERTNLI_DATA_DIR``, else the official zip, fetched."""
    if data_dir is not None:
        source = "the data_dir argument"
    elif os.environ.get(DATA_DIR_ENV):
        data_dir, source = os.environ[DATA_DIR_ENV], f"${DATA_DIR_ENV}"
    else:
        from bertnli_helpers import hub  # lazy: only needed when no folder is given

        return Path(hub.download_extract("SNLI"))
    folder = Path(data_dir).expanduser()
    if not folder.is_dir():
        raise FileNotFoundError(
            f"SNLI data folder {folder} (from {source}) does not exist or is not a folder. Pass a "
            f"folder holding snli_1.0_{{train,dev,test}}.jsonl[.gz] or .txt[.gz], or set "
            f"{DATA_DIR_ENV} to one, or leave both unset to download the official snli_1.0.zip."
        )
    return folder


def find_split_file(data_dir: str | os.PathLike[str], split: str | bool) -> Path:
    """The first existing ``snli_1.0_<split>`` file in the folder or its ``snli_1.0/`` subfolder."""
    name = _split_name(split)
    folder = Path(data_dir)
    tried = [
        base / f"snli_1.0_{name}{suffix}"
        for base in (folder, folder / ZIP_SUBFOLDER)
        for suffix in SUFFIXES
    ]
    for path in tried:
        if path.is_file():
            return path
    names = ", ".join(str(p.relative_to(folder)) for p in tried)
    raise FileNotFoundError(f"no SNLI {name} file in {folder}; tried, in this order: {names}")


def line_error(path: Path, line: int, what: str) -> DataFormatError:
    """The error for a malformed line: ``<file>, line <n>: <what>``, also as ``.path``/``.line``."""
    err = DataFormatError(f"{path}, line {line}: {what}")
    err.path, err.line = path, line
    return err


GZIP_MAGIC = b"\x1f\x8b"


def numbered_lines(path: Path) -> Iterator[tuple[int, str]]:
    """Stream ``(1-based line number, text)`` of a plain or gzip file, decoded strictly as UTF-8."""
    opener = gzip.open if path.name.endswith(".gz") else open
    lineno = 0
    try:
        with opener(path, "rb") as f:
            for lineno, raw in enumerate(f, 1):
                try:
                    text = raw.decode("utf-8")
                except UnicodeDecodeError as e:
                    what = f"not UTF-8 text (byte {e.start}: {e.reason})"
                    if lineno == 1 and raw.startswith(GZIP_MAGIC):
                        what = (f"gzip-compressed, but its name does not end in .gz: rename it "
                                f"{path.name}.gz")
                    raise line_error(path, lineno, what) from e
                if lineno == 1:
                    text = text.removeprefix("\ufeff")
                yield lineno, text.rstrip("\r\n")
    except (gzip.BadGzipFile, EOFError, zlib.error) as e:
        raise line_error(path, lineno + 1, f"not a complete gzip file ({e})") from e


def _record(path: Path, lineno: int, row: dict[str, object]) -> SNLIRecord | None:
    """A record from the official fields, or None for a ``-`` pair; errors name the line."""
    if "gold_label" not in row:
        raise line_error(path, lineno, "missing field 'gold_label'")
    gold = row["gold_label"]
    if gold == NO_GOLD:
        return None
    if gold not in LABELS:
        known = ", ".join(LABELS)
        what = f"unknown gold label {gold!r} (expected one of {known} or '-')"
        raise line_error(path, lineno, what)
    for key in _REQUIRED:
        if key not in row:
            raise line_error(path, lineno, f"missing field {key!r}")
        if not isinstance(row[key], str):
            raise line_error(path, lineno, f"field {key!r} must be a string, got {row[key]!r}")
    annotators = row.get("annotator_labels")
    if not isinstance(annotators, list | tuple) or not all(isinstance(a, str) for a in annotators):
        what = f"field 'annotator_labels' must be a list of strings, got {annotators!r}"
        raise line_error(path, lineno, what)
    s1, s2 = row["sentence1_binary_parse"], row["sentence2_binary_parse"]
    return SNLIRecord(
        pair_id=row["pairID"],  # type: ignore[arg-type]
        premise=row["sentence1"],  # type: ignore[arg-type]
        hypothesis=row["sentence2"],  # type: ignore[arg-type]
        premise_parse_text=book_text(s1),  # type: ignore[arg-type]
        hypothesis_parse_text=book_text(s2),  # type: ignore[arg-type]
        label=LABELS[gold],
        annotator_labels=tuple(annotators),
        caption_id=row["captionID"],  # type: ignore[arg-type]
    )


def jsonl_rows(path: Path) -> Iterator[tuple[int, dict[str, object]]]:
    """``(line number, object)`` of each non-blank line of a JSONL file; a bad line is an error
    naming the file and line."""
    for lineno, text in numbered_lines(path):
        if not text.strip():
            continue  # a blank line holds no pair
        try:
            row = json.loads(text)
        except json.JSONDecodeError as e:
            what = f"not valid JSON ({e.msg} at column {e.colno})"
            raise line_error(path, lineno, what) from e
        if not isinstance(row, dict):
            raise line_error(path, lineno, f"expected a JSON object, got {type(row).__name__}")
        yield lineno, row


def _txt_rows(path: Path) -> Iterator[tuple[int, dict[str, object]]]:
    lines = numbered_lines(path)
    first = next(lines, None)
    if first is None:
        raise line_error(path, 1, "empty file: expected the tab-separated header line")
    header = first[1].split("\t")
    missing = [c for c in _REQUIRED if c not in header]
    if missing:
        what = f"header lacks the columns {', '.join(missing)}: {first[1][:120]!r}"
        raise line_error(path, 1, what)
    label_at = [i for i, c in enumerate(header) if c in _TXT_LABEL_COLUMNS]
    for lineno, text in lines:
        if not text.strip():
            continue  # a blank line holds no pair
        cells = text.split("\t")
        if len(cells) != len(header):
            what = f"{len(cells)} tab-separated columns, the header has {len(header)}"
            raise line_error(path, lineno, what)
        row: dict[str, object] = dict(zip(header, cells, strict=True))
        row["annotator_labels"] = [cells[i] for i in label_at if cells[i]]
        yield lineno, row


def _load(data_dir: str | os.PathLike[str] | None, split: str | bool, stacklevel: int) -> SNLISplit:
    name = _split_name(split)
    result = _parse(find_split_file(resolve_data_dir(data_dir), name), name)
    _warn_if_sample(result, stacklevel + 1)
    return result


def _parse(path: Path, name: str) -> SNLISplit:
    rows = _txt_rows(path) if ".txt" in path.suffixes else jsonl_rows(path)
    records: list[SNLIRecord] = []
    dropped = 0
    for lineno, row in rows:
        record = _record(path, lineno, row)
        if record is None:
            dropped += 1
        else:
            records.append(record)
    return SNLISplit(split=name, path=path, records=records, dropped=dropped)


def _warn_if_sample(result: SNLISplit, stacklevel: int) -> None:
    official = OFFICIAL_PAIRS["train"]
    if result.split != "train" or len(result) >= SAMPLE_FRACTION * official or not result:
        return  # an empty file is no sample: EmptySplitError says so where pairs are needed
    warnings.warn(
        f"{result.path} holds {len(result):,} usable train pairs, {len(result) / official:.1%} of "
        f"the official {official:,}: it is a sample, so models trained on it give low-resource "
        "results, not the book's. Point the data folder at the full snli_1.0 train file for those.",
        SampleWarning,
        stacklevel=stacklevel,
    )


def train_sample_note(data_dir: str | os.PathLike[str] | None) -> str | None:
    """One line saying that the train file is a sample (None when it is not).

    Counting lines first is cheap where parsing the whole official train file is not; only a
    file short enough to be a sample is parsed, so the note gives the usable pairs, the count
    every table shows. A notebook says this once at the start and leaves the repeated
    :class:`SampleWarning` out.
    """
    path = find_split_file(resolve_data_dir(data_dir), "train")
    lines = sum(1 for _, text in numbered_lines(path) if text.strip()) - (".txt" in path.suffixes)
    official = OFFICIAL_PAIRS["train"]
    if lines >= SAMPLE_FRACTION * official:
        return None
    sample = _parse(path, "train")
    dropped = (f" (and {sample.dropped:,} without a gold label, left out)" if sample.dropped
               else "")
    return (f"Note: {path.name} holds {len(sample):,} usable train pairs{dropped}, "
            f"{len(sample) / official:.1%} of the official {official:,}: a sample, so models "
            "trained on it are low-resource models, not the book's (notebook 2 explains). Said "
            "once here, not repeated below.")


TXT_COLUMNS: tuple[str, ...] = ("gold_label", "sentence1_binary_parse", "sentence2_binary_parse",
                                "sentence1_parse", "sentence2_parse", "sentence1", "sentence2",
                                "captionID", "pairID", *_TXT_LABEL_COLUMNS)


def write_official_txt(data_dir: str | os.PathLike[str] | None, split: str | bool,
                       target: str | os.PathLike[str], limit: int | None = None) -> Path:
    """Copy a split's lines (the first ``limit``) into ``target`` in the official tab-separated
    ``snli_1.0_<split>.txt`` form, the only form the book's ``d2l.read_snli`` reads."""
    from bertnli_helpers.files import atomic_write_text

    name = _split_name(split)
    path = find_split_file(resolve_data_dir(data_dir), name)
    rows = _txt_rows(path) if ".txt" in path.suffixes else jsonl_rows(path)
    lines = ["\t".join(TXT_COLUMNS)]
    for _, row in rows:
        if limit is not None and len(lines) > limit:
            break
        labels = [str(label) for label in row.get("annotator_labels", [])][:5]
        cells = [str(row.get(c, "")) for c in TXT_COLUMNS[:9]] + labels + [""] * (5 - len(labels))
        lines.append("\t".join(cells))
    return atomic_write_text(Path(target) / f"snli_1.0_{name}.txt", "\n".join(lines) + "\n")


def read_records(data_dir: str | os.PathLike[str] | None, split: str | bool) -> SNLISplit:
    """Every usable pair of a split as records; warns (SampleWarning) when train is a sample."""
    return _load(data_dir, split, stacklevel=3)


def sample_splits(
    data_dir: str | os.PathLike[str] | None,
    *,
    train_size: int | None,
    dev_size: int | None,
    test_size: int | None,
    seed: int = 0,
) -> tuple[SNLISplit, SNLISplit, SNLISplit]:
    """Random (train, dev, test) samples of these sizes (None: a whole split).

    The one rule the CLI and the notebooks share, so the same sizes and seed give the same pairs
    wherever a run is made: that is what lets a notebook re-use another's run.
    """
    train = _load(data_dir, "train", stacklevel=3).sample(train_size, seed)  # warns the caller
    dev = _load(data_dir, "dev", stacklevel=3).sample(dev_size, seed)
    test = _load(data_dir, "test", stacklevel=3).sample(test_size, seed)
    return train, dev, test


def read_snli(
    data_dir: str | os.PathLike[str] | None = None,
    split: str | bool = "train",
    *,
    text: str = "book",
) -> tuple[list[str], list[str], list[int]]:
    """The book's interface: ``(premises, hypotheses, labels)`` of a split, ``-`` pairs dropped."""
    if text not in ("book", "raw"):
        raise ValueError(f"text must be 'book' or 'raw', not {text!r}")
    return _load(data_dir, split, stacklevel=3).triple(text)
