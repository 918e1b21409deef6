"""Reading any labelled NLI file: SNLI's own forms, MultiNLI's, two-class files, ids, and errors
that name the file and the line."""

from __future__ import annotations

import gzip
import json
import warnings
from pathlib import Path

import numpy as np
import pytest

from bertnli_helpers.data.nli_files import read_nli_file, two_class_names, write_nli_file
from bertnli_helpers.data.snli import SampleWarning, read_records
from bertnli_helpers.data.tokenization import book_tokenizer as book_tokenizer_of
from bertnli_helpers.errors import DataFormatError
from bertnli_helpers.model.pretrained import load_pretrained

MNLI_TXT_COLUMNS = ("gold_label", "sentence1_binary_parse", "sentence2_binary_parse",
                    "sentence1_parse", "sentence2_parse", "sentence1", "sentence2", "promptID",
                    "pairID", "genre", "label1", "label2", "label3", "label4", "label5")
GENRES = ("fiction", "government", "slate", "telephone", "travel")


def snli_rows(snli_dir: Path, split: str = "test") -> list[dict]:
    with gzip.open(snli_dir / f"snli_1.0_{split}.jsonl.gz", "rt", encoding="utf-8") as f:
        return [json.loads(line) for line in f]


def multinli_rows(snli_dir: Path, n: int = 60) -> list[dict]:
    """Real SNLI dev pairs laid out as MultiNLI 1.0 lines: its field names, a genre, a prompt id."""
    rows = []
    for i, row in enumerate(snli_rows(snli_dir, "dev")[:n]):
        rows.append({"annotator_labels": row["annotator_labels"], "genre": GENRES[i % 5],
                     "gold_label": row["gold_label"], "pairID": f"{i}e", "promptID": str(i),
                     **{k: row[k] for k in ("sentence1", "sentence1_binary_parse",
                                            "sentence1_parse", "sentence2",
                                            "sentence2_binary_parse", "sentence2_parse")}})
    return rows


def write_snli_txt(path: Path, rows: list[dict]) -> Path:
    """SNLI's official .txt form: a header, tab-separated cells, label1..label5."""
    columns = ("gold_label", "sentence1_binary_parse", "sentence2_binary_parse",
               "sentence1_parse", "sentence2_parse", "sentence1", "sentence2", "captionID",
               "pairID", "label1", "label2", "label3", "label4", "label5")
    lines = ["\t".join(columns)]
    for row in rows:
        labels = [*row["annotator_labels"], "", "", "", "", ""][:5]
        lines.append("\t".join([*(row[c] for c in columns[:9]), *labels]))
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def write_multinli_txt(path: Path, rows: list[dict]) -> Path:
    lines = ["\t".join(MNLI_TXT_COLUMNS)]
    for row in rows:
        labels = [*row["annotator_labels"], "", "", "", "", ""][:5]
        lines.append("\t".join([*(row[c] for c in MNLI_TXT_COLUMNS[:10]), *labels]))
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def write_jsonl(path: Path, rows: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def test_split(snli_dir):
    return read_records(snli_dir, "test")


@pytest.fixture(scope="module")
def book_tokenizer():
    return book_tokenizer_of(["<unk>", "<pad>", "<cls>", "<sep>", "<mask>", "a", "dog", "."])


def test_snli_test_file_reads_as_the_split(snli_dir, test_split, tmp_path):
    """Both official forms give the split's pairs, labels, '-' count and text forms."""
    _, wordpiece = load_pretrained("minilm", device="cpu")
    txt = write_snli_txt(tmp_path / "snli_1.0_test.txt", snli_rows(snli_dir))
    for path in (snli_dir / "snli_1.0_test.jsonl.gz", txt):
        pairs = read_nli_file(path)
        assert pairs.label_space == "three" and pairs.dropped == test_split.dropped
        assert pairs.triple(wordpiece) == test_split.triple("raw")
        premises, hypotheses, _ = test_split.triple("book")
        assert [p.premise_parse_text for p in pairs.pairs] == premises
        assert [p.hypothesis_parse_text for p in pairs.pairs] == hypotheses
        assert pairs.pairs[0].fields["pairID"] == test_split.records[0].pair_id
        assert "sentence1_parse" not in pairs.field_names


def test_multinli_forms_keep_the_genre(snli_dir, tmp_path):
    rows = multinli_rows(snli_dir)
    usable = [r for r in rows if r["gold_label"] != "-"]
    for path in (write_jsonl(tmp_path / "multinli_1.0_dev_matched.jsonl", rows),
                 write_multinli_txt(tmp_path / "multinli_1.0_dev_matched.txt", rows)):
        pairs = read_nli_file(path)
        assert len(pairs) == len(usable) and pairs.dropped == len(rows) - len(usable)
        assert [p.fields["genre"] for p in pairs.pairs] == [r["genre"] for r in usable]
        assert list(pairs.gold_names()) == [r["gold_label"] for r in usable]
        assert {"genre", "promptID", "pairID"} <= set(pairs.field_names)


def test_common_field_names_and_label_ids(tmp_path):
    rows = [{"premise": "A dog runs.", "hypothesis": "An animal moves.", "label": 0, "idx": 1},
            {"premise": "A dog runs.", "hypothesis": "A cat sleeps.", "label": 2, "idx": 2},
            {"premise": "A dog runs.", "hypothesis": "The dog is fast.", "label": 1, "idx": 3},
            {"premise": "A dog runs.", "hypothesis": "Unclear.", "label": -1, "idx": 4}]
    path = write_jsonl(tmp_path / "hf.jsonl", rows)
    with pytest.raises(DataFormatError, match=r"hf\.jsonl, line 1: label 0 is an id.*--label-ids"):
        read_nli_file(path)
    hf = read_nli_file(path, label_ids="hf")
    assert list(hf.gold_names()) == ["entailment", "contradiction", "neutral"]
    assert hf.dropped == 1 and hf.pairs[1].fields == {"idx": 2}
    book = read_nli_file(path, label_ids="book")
    assert list(book.gold_names()) == ["entailment", "neutral", "contradiction"]
    tsv = tmp_path / "pairs.tsv"
    tsv.write_text("premise\thypothesis\tlabel\nA dog runs.\tAn animal moves.\tEntailment\n")
    assert list(read_nli_file(tsv).gold_names()) == ["entailment"]


def test_two_class_files(tmp_path):
    path = tmp_path / "heuristics.txt"
    path.write_text("gold_label\tsentence1\tsentence2\theuristic\n"
                    "non-entailment\tThe doctor saw the lawyer.\tThe lawyer saw the doctor.\t"
                    "lexical_overlap\n"
                    "entailment\tThe doctor near the actor ran.\tThe doctor ran.\tsubsequence\n"
                    "not_entailment\tThe judge paid the actor.\tThe actor paid.\tsubsequence\n")
    pairs = read_nli_file(path)
    assert pairs.label_space == "two" and pairs.label_names == ("entailment", "non-entailment")
    assert list(pairs.gold_names()) == ["non-entailment", "entailment", "non-entailment"]
    assert [p.fields["heuristic"] for p in pairs.pairs] == [
        "lexical_overlap", "subsequence", "subsequence"]
    assert pairs.pairs[0].premise_parse_text is None  # parses are optional
    ids = write_jsonl(tmp_path / "ids.jsonl", [
        {"premise": "A", "hypothesis": "B", "label": 1}, {"premise": "A", "hypothesis": "A",
                                                          "label": 0}])
    assert list(read_nli_file(ids, label_ids="two-class").gold_names()) == [
        "non-entailment", "entailment"]
    mixed = tmp_path / "mixed.tsv"
    mixed.write_text("sentence1\tsentence2\tgold_label\nA\tB\tnon-entailment\nA\tC\tneutral\n")
    with pytest.raises(DataFormatError, match=r"mixed\.tsv, line 3: label 'neutral' in a "
                                              r"two-class file \(line 2"):
        read_nli_file(mixed)
    assert list(two_class_names(["entailment", "neutral", "contradiction"])) == [
        "entailment", "non-entailment", "non-entailment"]


def test_book_vocabulary_reads_parse_text_or_spaces_the_sentence(tmp_path, book_tokenizer):
    path = write_jsonl(tmp_path / "p.jsonl", [
        {"sentence1": "A dog, running.", "sentence2": "A dog.", "gold_label": "entailment",
         "sentence1_binary_parse": "( ( A dog ) ( , running ) )",
         "sentence2_binary_parse": "( A dog )"},
        {"sentence1": "The cat's asleep.", "sentence2": "No cat.", "gold_label": "neutral"}])
    premises, hypotheses, labels = read_nli_file(path).triple(book_tokenizer)
    assert premises == ["A dog , running", book_tokenizer.prepare_typed("The cat's asleep.")]
    assert hypotheses[0] == "A dog" and labels == [0, 2]


@pytest.mark.parametrize("name, content, message", [
    ("nolabel.jsonl", '{"sentence1": "A", "sentence2": "B"}\n',
     r"nolabel\.jsonl, line 1: no label .*gold_label or label.*bertnli predict --file"),
    ("unknown.jsonl", '{"sentence1": "A", "sentence2": "B", "gold_label": "entailment"}\n'
                      '{"sentence1": "A", "sentence2": "B", "gold_label": "maybe"}\n',
     r"unknown\.jsonl, line 2: unknown label 'maybe'; known labels: entailment"),
    ("nohyp.jsonl", '{"sentence1": "A", "gold_label": "neutral"}\n',
     r"nohyp\.jsonl, line 1: no hypothesis text"),
    ("broken.jsonl", '{"sentence1": "A", "sentence2": "B", "gold_label": "neutral"}\n{oops\n',
     r"broken\.jsonl, line 2: not valid JSON"),
    ("noheader.tsv", "A dog runs.\tAn animal moves.\tentailment\n",
     r"noheader\.tsv, line 1: expected a header"),
    ("cells.tsv", "sentence1\tsentence2\tgold_label\nA\tB\n",
     r"cells\.tsv, line 2: 2 tab-separated columns, the header has 3"),
    ("badid.jsonl", '{"premise": "A", "hypothesis": "B", "label": 7}\n',
     r"badid\.jsonl, line 1: label 7 is an id"),
    ("only-dash.jsonl", '{"sentence1": "A", "sentence2": "B", "gold_label": "-"}\n',
     r"only-dash\.jsonl, line 1: no labelled pairs in the file \(1 without a gold label\)"),
    ("pairs.csv", "sentence1,sentence2,gold_label\n", r"pairs\.csv, line 1: unknown file type"),
])
def test_errors_name_the_file_and_the_line(tmp_path, name, content, message):
    path = tmp_path / name
    path.write_text(content)
    with pytest.raises(DataFormatError, match=message):
        read_nli_file(path)


def test_unknown_id_order_and_missing_file(tmp_path):
    path = write_jsonl(tmp_path / "a.jsonl", [{"premise": "A", "hypothesis": "B", "label": 7}])
    with pytest.raises(DataFormatError, match=r"label id 7 is not in the 'hf' order"):
        read_nli_file(path, label_ids="hf")
    with pytest.raises(ValueError, match="label_ids must be one of book, hf, two-class"):
        read_nli_file(path, label_ids="glue")
    with pytest.raises(FileNotFoundError, match="NLI file not found"):
        read_nli_file(tmp_path / "nowhere.jsonl")


def test_written_files_read_back_and_sample(tmp_path, snli_dir):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", SampleWarning)
        train = read_records(snli_dir, "train").sample(30, 0)
    premises, hypotheses, _ = train.triple("raw")
    names = [r.label_name for r in train.records]
    subset = ["hard" if i % 3 else "easy" for i in range(30)]
    path = write_nli_file(tmp_path / "mine.jsonl", premises, hypotheses, names, subset=subset)
    pairs = read_nli_file(path)
    assert [p.premise for p in pairs.pairs] == premises and list(pairs.gold_names()) == names
    assert [p.fields["subset"] for p in pairs.pairs] == subset
    sample = pairs.sample(10, seed=3)
    assert len(sample) == 10 and np.all(np.diff([p.line for p in sample.pairs]) > 0)
    with pytest.raises(ValueError, match="one value per pair"):
        write_nli_file(tmp_path / "x.jsonl", premises, hypotheses, names[:3])
