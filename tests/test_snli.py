"""SNLI reading on the real shared data: counts, labels, file forms, the book's text, errors."""

from __future__ import annotations

import gzip
import json
import warnings
from pathlib import Path

import pytest

from bertnli_helpers.data import snli
from bertnli_helpers.data.snli import SampleWarning, read_records, read_snli, sample_splits
from bertnli_helpers.errors import DataFormatError

TXT_COLUMNS = [
    "gold_label",
    "sentence1_binary_parse",
    "sentence2_binary_parse",
    "sentence1_parse",
    "sentence2_parse",
    "sentence1",
    "sentence2",
    "captionID",
    "pairID",
    *(f"label{i}" for i in range(1, 6)),
]
N_LINES = 300  # real dev lines used to build files in the other forms


@pytest.fixture(scope="module")
def dev(snli_dir: Path) -> snli.SNLISplit:
    """The real dev split, read once for the module."""
    return read_records(snli_dir, "dev")


@pytest.fixture(scope="module")
def dev_rows(snli_dir: Path) -> list[dict]:
    """The first real dev lines as parsed JSON objects, '-' pairs included."""
    with gzip.open(snli_dir / "snli_1.0_dev.jsonl.gz", "rt", encoding="utf-8") as f:
        rows = [json.loads(next(f)) for _ in range(N_LINES)]
    assert any(r["gold_label"] == "-" for r in rows)
    return rows


def txt_line(row: dict) -> str:
    """One row in the official tab-separated form (label1..label5, empty where fewer annotators)."""
    labels = row["annotator_labels"] + [""] * (5 - len(row["annotator_labels"]))
    cells = [row[c] for c in TXT_COLUMNS[:9]] + labels
    assert not any("\t" in c or "\n" in c for c in cells)
    return "\t".join(cells)


def write_form(folder: Path, split: str, rows: list[dict], suffix: str) -> Path:
    """Write rows as ``snli_1.0_<split><suffix>`` in the official JSONL or .txt form."""
    folder.mkdir(parents=True, exist_ok=True)
    if ".txt" in suffix:
        lines = ["\t".join(TXT_COLUMNS), *(txt_line(r) for r in rows)]
    else:
        lines = [json.dumps(r) for r in rows]
    return write_bytes(folder / f"snli_1.0_{split}{suffix}", ("\n".join(lines) + "\n").encode())


def write_bytes(path: Path, data: bytes) -> Path:
    path.write_bytes(gzip.compress(data) if path.name.endswith(".gz") else data)
    return path


# --- the real splits -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("split", "pairs", "dropped", "counts"),
    [
        ("dev", 9_842, 158, {"entailment": 3_329, "contradiction": 3_278, "neutral": 3_235}),
        ("test", 9_824, 176, {"entailment": 3_368, "contradiction": 3_237, "neutral": 3_219}),
    ],
)
def test_official_splits_counts(snli_dir, split, pairs, dropped, counts):
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a complete split warns about nothing
        result = read_records(snli_dir, split)
    assert (len(result), result.dropped, result.label_counts()) == (pairs, dropped, counts)
    assert result.path == snli_dir / f"snli_1.0_{split}.jsonl.gz"
    assert len({r.pair_id for r in result.records}) == pairs


def test_first_dev_pair(dev):
    premises, hypotheses, labels = dev.triple("raw")
    assert premises[0] == "Two women are embracing while holding to go packages."
    assert hypotheses[0] == (
        "The sisters are hugging goodbye while holding to go packages after just eating lunch."
    )
    assert labels[0] == snli.LABELS["neutral"] == 2
    first = dev.records[0]
    assert first.premise_parse_text == "Two women are embracing while holding to go packages ."
    assert first.label_name == "neutral"
    assert first.annotator_labels == ("neutral", "entailment", "neutral", "neutral", "neutral")
    assert (first.pair_id, first.caption_id) == ("4705552913.jpg#2r1n", "4705552913.jpg#2")


def test_labels_are_the_books():
    assert snli.LABELS == {"entailment": 0, "contradiction": 1, "neutral": 2}
    assert [snli.LABEL_NAMES[i] for i in range(3)] == ["entailment", "contradiction", "neutral"]


def test_train_sample_warns_with_its_count(snli_dir):
    with pytest.warns(SampleWarning, match=r"5,498 usable train pairs.*549,367.*sample"):
        result = read_records(snli_dir, "train")
    assert (len(result), result.dropped) == (5_498, 4)
    assert result.label_counts() == {"entailment": 1_806, "contradiction": 1_906, "neutral": 1_786}


def test_train_sample_note_gives_the_usable_count_without_warning(snli_dir):
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the note replaces the warning, so it must not raise one
        note = snli.train_sample_note(snli_dir)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        train = read_records(snli_dir, "train")
    assert note is not None and f"holds {len(train):,} usable train pairs" in note
    assert f"and {train.dropped:,} without a gold label" in note


def test_sample_splits_is_each_splits_own_sample_with_one_seed(snli_dir):
    with pytest.warns(SampleWarning) as warned:
        train, dev, test = sample_splits(snli_dir, train_size=40, dev_size=30, test_size=None,
                                         seed=3)
    assert warned[0].filename == __file__  # the warning points at the caller
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", SampleWarning)
        expected = [read_records(snli_dir, "train").sample(40, 3),
                    read_records(snli_dir, "dev").sample(30, 3), read_records(snli_dir, "test")]
    assert [s.split for s in (train, dev, test)] == ["train", "dev", "test"]
    assert [len(s) for s in (train, dev, test)] == [40, 30, 9_824]
    assert [s.records for s in (train, dev, test)] == [s.records for s in expected]


def test_is_train_booleans(snli_dir):
    premises, _, labels = read_snli(snli_dir, False)
    assert (
        premises[0].startswith("This church choir sings to the masses") and "(" not in premises[0]
    )
    assert len(labels) == 9_824
    with pytest.warns(SampleWarning):
        assert len(read_snli(snli_dir, True)[0]) == 5_498
    assert snli.find_split_file(snli_dir, True).name == "snli_1.0_train.jsonl.gz"


def test_triple_text_forms(snli_dir, dev):
    book, raw = dev.triple("book"), dev.triple("raw")
    assert book[2] == raw[2] and len(book[0]) == len(raw[0]) == 9_842
    assert raw == read_snli(snli_dir, "dev", text="raw")
    assert book[0][0] == "Two women are embracing while holding to go packages ."
    with pytest.raises(ValueError, match="'book' or 'raw'"):
        dev.triple("wordpiece")
    with pytest.raises(ValueError, match="'book' or 'raw'"):
        read_snli(snli_dir, "dev", text="wordpiece")


def test_unknown_split(snli_dir):
    with pytest.raises(ValueError, match="train, dev, test"):
        read_snli(snli_dir, "validation")


# --- the book's text and both file forms -----------------------------------------------------


def test_book_text_matches_d2l(tmp_path, dev_rows, d2l):
    """d2l.read_snli reads snli_1.0_test.txt for is_train=False: same triple on real lines."""
    write_form(tmp_path, "test", dev_rows, ".txt")
    expected = d2l.read_snli(str(tmp_path), False)
    got = read_snli(tmp_path, False)
    assert got == tuple(expected)
    assert len(got[0]) == sum(r["gold_label"] != "-" for r in dev_rows)


def test_book_text_function():
    parse = "( ( Two  women ) ( ( are ( smiling ) ) . ) )"
    assert snli.book_text(parse) == "Two women are smiling ."
    assert snli.book_text("  (a)  ") == "a"


@pytest.mark.parametrize("suffix", [".jsonl", ".jsonl.gz", ".txt", ".txt.gz"])
def test_every_form_gives_the_same_records(tmp_path, dev, dev_rows, suffix):
    path = write_form(tmp_path, "dev", dev_rows, suffix)
    result = read_records(tmp_path, "dev")
    n = len(result)
    assert result.path == path
    assert result.records == dev.records[:n]
    assert result.dropped == sum(r["gold_label"] == "-" for r in dev_rows)
    assert n + result.dropped == N_LINES


def test_single_annotator_rows_in_txt(tmp_path, snli_dir):
    """Train rows mostly have one annotator label: label2..label5 are empty in the .txt form."""
    with gzip.open(snli_dir / "snli_1.0_train.jsonl.gz", "rt", encoding="utf-8") as f:
        rows = [json.loads(next(f)) for _ in range(50)]
    assert any(len(r["annotator_labels"]) == 1 for r in rows)
    write_form(tmp_path / "txt", "dev", rows, ".txt.gz")
    write_form(tmp_path / "jsonl", "dev", rows, ".jsonl")
    txt, jsonl = read_records(tmp_path / "txt", "dev"), read_records(tmp_path / "jsonl", "dev")
    assert txt.records == jsonl.records and len(txt) > 0


def test_lookup_order_and_zip_subfolder(tmp_path, dev_rows):
    sub = tmp_path / "snli_1.0"
    write_form(sub, "dev", dev_rows[:5], ".txt.gz")
    assert read_records(tmp_path, "dev").path == sub / "snli_1.0_dev.txt.gz"
    write_form(sub, "dev", dev_rows[:5], ".txt")
    assert read_records(tmp_path, "dev").path == sub / "snli_1.0_dev.txt"
    write_form(sub, "dev", dev_rows[:5], ".jsonl.gz")
    assert read_records(tmp_path, "dev").path == sub / "snli_1.0_dev.jsonl.gz"
    write_form(tmp_path, "dev", dev_rows[:5], ".jsonl")  # the folder itself before its subfolder
    assert read_records(tmp_path, "dev").path == tmp_path / "snli_1.0_dev.jsonl"


def test_blank_lines_hold_no_pair(tmp_path, dev_rows):
    lines = [json.dumps(r) for r in dev_rows[:4]]
    write_bytes(tmp_path / "snli_1.0_dev.jsonl", ("\n".join(lines) + "\n\n\r\n").encode())
    result = read_records(tmp_path, "dev")
    assert len(result) + result.dropped == 4


# --- the data folder -------------------------------------------------------------------------


def test_env_var_is_honoured(monkeypatch, snli_dir):
    monkeypatch.setenv(snli.DATA_DIR_ENV, str(snli_dir))
    assert snli.resolve_data_dir() == snli_dir
    assert len(read_snli(split="dev")[0]) == 9_842


def test_argument_wins_over_env(monkeypatch, tmp_path, snli_dir):
    monkeypatch.setenv(snli.DATA_DIR_ENV, str(tmp_path / "nowhere"))
    assert snli.resolve_data_dir(snli_dir) == snli_dir


def test_missing_folder_says_how_to_fix(monkeypatch, tmp_path):
    with pytest.raises(FileNotFoundError, match="BERTNLI_DATA_DIR") as err:
        read_snli(tmp_path / "nowhere", "dev")
    assert "nowhere" in str(err.value)
    monkeypatch.setenv(snli.DATA_DIR_ENV, str(tmp_path / "also-missing"))
    with pytest.raises(FileNotFoundError, match=r"also-missing.*\$BERTNLI_DATA_DIR"):
        read_snli(None, "dev")


def test_missing_file_lists_names_tried(tmp_path):
    with pytest.raises(FileNotFoundError) as err:
        read_snli(tmp_path, "test")
    message = str(err.value)
    names = ["snli_1.0_test.jsonl", "snli_1.0_test.jsonl.gz", "snli_1.0_test.txt"]
    names += ["snli_1.0_test.txt.gz", "snli_1.0/snli_1.0_test.jsonl"]
    assert all(name in message for name in names)
    order = [message.index(n) for n in ("test.jsonl,", "test.jsonl.gz", "test.txt,", "txt.gz")]
    assert order == sorted(order)


def test_no_folder_given_downloads_the_official_zip(
    monkeypatch, http_server, snli_dir, dev, dev_rows
):
    """No argument and no $BERTNLI_DATA_DIR: the hub's SNLI zip is fetched, verified, unpacked."""
    import zipfile

    from bertnli_helpers import hub

    rows = {"dev": dev_rows}
    for split in ("train", "test"):
        with gzip.open(snli_dir / f"snli_1.0_{split}.jsonl.gz", "rt", encoding="utf-8") as f:
            rows[split] = [json.loads(next(f)) for _ in range(200)]
    archive = http_server.root / "snli_1.0.zip"
    with zipfile.ZipFile(archive, "w", zipfile.ZIP_DEFLATED) as zf:  # the official layout
        zf.writestr("snli_1.0/", "")
        zf.writestr("snli_1.0/README.txt", "Stanford Natural Language Inference corpus\n")
        for split, split_rows in rows.items():
            jsonl = "".join(json.dumps(r) + "\n" for r in split_rows)
            txt = "\n".join(["\t".join(TXT_COLUMNS), *(txt_line(r) for r in split_rows)])
            zf.writestr(f"snli_1.0/snli_1.0_{split}.jsonl", jsonl)
            zf.writestr(f"snli_1.0/snli_1.0_{split}.txt", txt + "\n")
        zf.writestr("__MACOSX/snli_1.0/._snli_1.0_dev.jsonl", b"\x00\x05\x16\x07")
    sha1 = hub.sha1_of(archive)
    url = http_server.url("snli_1.0.zip")
    monkeypatch.setitem(hub.REGISTRY, "SNLI", hub.Resource("SNLI", url, sha1, "snli_1.0"))
    monkeypatch.delenv(snli.DATA_DIR_ENV, raising=False)

    premises, hypotheses, labels = read_snli(None, "dev")
    n = sum(r["gold_label"] != "-" for r in dev_rows)
    assert (premises, hypotheses, labels) == tuple(x[:n] for x in dev.triple("book"))
    folder = snli.resolve_data_dir()
    assert folder == hub.cache_dir() / "snli_1.0" / "snli_1.0"
    assert (hub.cache_dir() / "snli_1.0.zip").is_file()
    assert read_records(None, "dev").path == folder / "snli_1.0_dev.jsonl"
    archive.unlink()  # from now on the server has nothing: the verified copy is re-used
    test = read_snli(None, "test", text="raw")
    assert test[0][0].startswith("This church choir sings to the masses") and len(test[0]) > 190
    with pytest.warns(SampleWarning, match="200 usable train pairs"):
        assert len(read_snli(None, "train")[0]) == 200  # the first 200 train lines have no '-'


# --- malformed input -------------------------------------------------------------------------


def _jsonl_with(rows: list[dict], index: int, line: bytes) -> bytes:
    lines = [json.dumps(r).encode() for r in rows]
    lines[index] = line
    return b"\n".join(lines) + b"\n"


def _txt_with(rows: list[dict], index: int, line: bytes) -> bytes:
    lines = ["\t".join(TXT_COLUMNS).encode(), *(txt_line(r).encode() for r in rows)]
    lines[index + 1] = line
    return b"\n".join(lines) + b"\n"


def _without(row: dict, key: str) -> bytes:
    return json.dumps({k: v for k, v in row.items() if k != key}).encode()


def _with(row: dict, **changes) -> dict:
    return {**row, **changes}


MALFORMED = {
    # name: (file name, builder(rows) -> bytes, 1-based bad line, message fragment)
    "bad json": (
        "snli_1.0_dev.jsonl",
        lambda rows: _jsonl_with(rows, 4, b'{"gold_label": "neutral",'),
        5,
        "not valid JSON",
    ),
    "not an object": (
        "snli_1.0_dev.jsonl",
        lambda rows: _jsonl_with(rows, 1, b'["neutral"]'),
        2,
        "JSON object",
    ),
    "missing field": (
        "snli_1.0_dev.jsonl.gz",
        lambda rows: _jsonl_with(rows, 2, _without(rows[2], "sentence2")),
        3,
        "missing field 'sentence2'",
    ),
    "missing gold label": (
        "snli_1.0_dev.jsonl",
        lambda rows: _jsonl_with(rows, 7, _without(rows[7], "gold_label")),
        8,
        "missing field 'gold_label'",
    ),
    "null sentence": (
        "snli_1.0_dev.jsonl",
        lambda rows: _jsonl_with(rows, 0, json.dumps(_with(rows[0], sentence1=None)).encode()),
        1,
        "'sentence1' must be a string",
    ),
    "unknown label": (
        "snli_1.0_dev.jsonl",
        lambda rows: _jsonl_with(rows, 3, json.dumps(_with(rows[3], gold_label="entail")).encode()),
        4,
        "unknown gold label 'entail'",
    ),
    "unknown label txt": (
        "snli_1.0_dev.txt",
        lambda rows: _txt_with(rows, 5, txt_line(_with(rows[5], gold_label="Neutral")).encode()),
        7,
        "unknown gold label 'Neutral'",
    ),
    "wrong column count": (
        "snli_1.0_dev.txt",
        lambda rows: _txt_with(rows, 5, "\t".join(txt_line(rows[5]).split("\t")[:12]).encode()),
        7,
        "12 tab-separated columns, the header has 14",
    ),
    "header missing": (
        "snli_1.0_dev.txt.gz",
        lambda rows: "\n".join(txt_line(r) for r in rows).encode(),
        1,
        "header lacks the columns",
    ),
    "not utf-8 jsonl": (
        "snli_1.0_dev.jsonl",
        lambda rows: _jsonl_with(rows, 6, json.dumps(rows[6]).encode()[:-1] + b', "x": "\xff"}'),
        7,
        "not UTF-8",
    ),
    "not utf-8 txt.gz": (
        "snli_1.0_dev.txt.gz",
        lambda rows: _txt_with(rows, 8, txt_line(rows[8]).encode() + b"\xc3("),
        10,
        "not UTF-8",
    ),
}


@pytest.mark.parametrize("case", sorted(MALFORMED))
def test_malformed_line_names_file_and_line(tmp_path, dev_rows, case):
    name, build, line, fragment = MALFORMED[case]
    path = write_bytes(tmp_path / name, build(dev_rows[:12]))
    with pytest.raises(DataFormatError) as err:
        read_records(tmp_path, "dev")
    message = str(err.value)
    assert str(path) in message and f"line {line}:" in message and fragment in message, message
    assert (err.value.path, err.value.line) == (path, line)


def test_truncated_gzip_is_an_error(tmp_path, snli_dir):
    data = (snli_dir / "snli_1.0_dev.jsonl.gz").read_bytes()
    path = tmp_path / "snli_1.0_dev.jsonl.gz"
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(
        DataFormatError, match=r"snli_1\.0_dev\.jsonl\.gz, line \d+: not a complete gzip"
    ):
        read_records(tmp_path, "dev")
