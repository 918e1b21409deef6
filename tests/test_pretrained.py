"""Loading pretrained BERTs: parity with the book (d2l) and with transformers, and bad input."""

from __future__ import annotations

import io
import json
import warnings
import zipfile
from pathlib import Path

import pytest
import torch

from bertnli_helpers import hub
from bertnli_helpers.data.snli import read_snli
from bertnli_helpers.errors import (
    CheckpointError,
    CheckpointMismatchError,
    InputTooLongError,
    PretrainedLoadError,
    VocabularyError,
)
from bertnli_helpers.model.bert import BertConfig
from bertnli_helpers.model.pretrained import (
    FOLDER_FORMATS,
    NAMED_MODELS,
    FolderFormat,
    NamedModel,
    load_for_run,
    load_pretrained,
    load_pretrained_model,
    minilm_folder,
    model_format,
    scratch_model,
)

BOOK_RESERVED = ["<pad>", "<mask>", "<cls>", "<sep>"]


def pad_batch(rows: list[list[int]], pad: int) -> torch.Tensor:
    width = max(map(len, rows))
    return torch.tensor([r + [pad] * (width - len(r)) for r in rows])


def book_checkpoint_zip(d2l, folder_name: str, sentences: list[str], *, hidden=256, ffn=512,
                        heads=4, layers=2, max_len=512, seed=0) -> tuple[bytes, object, object]:
    """A zip in the book's form made by the book's own BERTModel: returns (zip, model, vocab)."""
    torch.manual_seed(seed)
    vocab = d2l.Vocab(d2l.tokenize([s.lower() for s in sentences]), min_freq=2,
                      reserved_tokens=BOOK_RESERVED)
    net = d2l.BERTModel(len(vocab), hidden, ffn, heads, layers, 0.1, max_len=max_len)
    tokens = torch.randint(0, len(vocab), (2, 8))
    net(tokens, torch.zeros_like(tokens), torch.tensor([8, 5]), torch.zeros(2, 1, dtype=torch.long))
    params = io.BytesIO()
    torch.save(net.state_dict(), params)
    archive = io.BytesIO()
    with zipfile.ZipFile(archive, "w") as zf:
        zf.writestr(f"{folder_name}/vocab.json", json.dumps(vocab.idx_to_token))
        zf.writestr(f"{folder_name}/pretrained.params", params.getvalue())
    return archive.getvalue(), net.eval(), vocab


def test_book_zip_downloads_through_the_hub_and_matches_d2l(d2l, http_server, dev_book,
                                                             monkeypatch):
    premises, hypotheses, _ = dev_book
    data, reference, vocab = book_checkpoint_zip(d2l, "bert.small.torch", premises + hypotheses)
    (http_server.root / "bert.small.torch.zip").write_bytes(data)
    sha1 = hub.sha1_of(http_server.root / "bert.small.torch.zip")
    monkeypatch.setitem(hub.REGISTRY, "bert.small", hub.Resource(
        "bert.small", http_server.url("bert.small.torch.zip"), sha1, "bert.small.torch"))

    bert, tok = load_pretrained("bert.small", dropout=0.1)
    bert.eval()
    assert (bert.config.hidden_size, bert.config.num_layers, bert.config.num_heads) == (256, 2, 4)
    assert tok.idx_to_token == vocab.idx_to_token

    # pack 16 real pairs exactly as the book does, and as we do
    book_rows, our_rows, our_segments = [], [], []
    for p, h in zip(premises[:16], hypotheses[:16]):
        p_tokens, h_tokens = p.lower().split(), h.lower().split()
        tokens, _ = d2l.get_tokens_and_segments(p_tokens, h_tokens)
        book_rows.append(vocab[tokens])
        ids, segments = tok.pack_ids(*tok.encode_batch([p, h]))
        our_rows.append(ids)
        our_segments.append(segments)
    assert our_rows == book_rows
    tokens = pad_batch(our_rows, tok.pad_id)
    segments = pad_batch(our_segments, 0)
    valid = torch.tensor([len(r) for r in our_rows])
    with torch.no_grad():
        expected = reference.encoder(tokens, segments, valid)
        ours = bert.encoder(tokens, segments, valid)
        torch.testing.assert_close(ours, expected, atol=1e-5, rtol=1e-5)
        torch.testing.assert_close(bert.hidden(ours[:, 0]), reference.hidden(expected[:, 0]),
                                   atol=1e-5, rtol=1e-5)

    # the book's own signature still works, and refuses sizes that do not match
    again, _ = load_pretrained_model("bert.small", 256, 512, 4, 2, 0.1, 512, [torch.device("cpu")])
    assert again.config.max_len == 512
    too_big = r"key.weight: model expects \(768, 768\), checkpoint has \(256, 256\)"
    with pytest.raises(CheckpointMismatchError, match=too_big):
        load_pretrained_model("bert.small", 768, 3072, 12, 12, 0.1, 512, None)


def test_minilm_matches_transformers_on_real_pairs_with_padding(snli_dir):
    from transformers import BertModel, BertTokenizerFast

    premises, hypotheses, _ = read_snli(snli_dir, "test", text="raw")
    premises, hypotheses = premises[:24], hypotheses[:24]
    bert, tok = load_pretrained("minilm")
    bert.eval()
    assert (bert.config.num_layers, bert.config.hidden_size, bert.config.num_heads) == (6, 384, 12)
    assert sum(p.numel() for p in bert.parameters()) == pytest.approx(22.7e6, rel=0.01)
    reference = BertModel.from_pretrained(str(minilm_folder())).eval()
    encoded = BertTokenizerFast.from_pretrained(str(minilm_folder()))(
        premises, hypotheses, padding=True, return_tensors="pt")
    assert (encoded["attention_mask"] == 0).any(), "the batch must contain padding"
    rows = [tok.pack_ids(*tok.encode_batch([p, h])) for p, h in zip(premises, hypotheses)]
    tokens = pad_batch([r[0] for r in rows], tok.pad_id)
    segments = pad_batch([r[1] for r in rows], 0)
    valid = torch.tensor([len(r[0]) for r in rows])
    assert torch.equal(tokens, encoded["input_ids"])
    with torch.no_grad():
        ours, pooled = bert(tokens, segments, valid)
        theirs = reference(**encoded)
    keep = encoded["attention_mask"].bool()
    assert (ours - theirs.last_hidden_state)[keep].abs().max() <= 1e-4
    assert (pooled - theirs.pooler_output).abs().max() <= 1e-4


def tiny_hf_folder(tmp_path: Path, *, prefix: str = "", as_bin: bool = False) -> Path:
    """A small random Hugging Face BERT folder written by transformers itself."""
    from transformers import BertConfig as HFConfig
    from transformers import BertModel

    torch.manual_seed(1)
    folder = tmp_path / "tiny-hf"
    folder.mkdir()
    config = HFConfig(vocab_size=40, hidden_size=32, num_hidden_layers=2, num_attention_heads=4,
                      intermediate_size=64, max_position_embeddings=64)
    model = BertModel(config).eval()
    config.save_pretrained(folder)
    specials = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
    words = [f"w{i}" for i in range(40 - len(specials))]
    (folder / "vocab.txt").write_text("\n".join(specials + words) + "\n")
    state = {prefix + k: v for k, v in model.state_dict().items()}
    if as_bin:
        torch.save(state, folder / "pytorch_model.bin")
    else:
        from safetensors.torch import save_file

        save_file({k: v.contiguous() for k, v in state.items()}, str(folder / "model.safetensors"))
    return folder, model


@pytest.mark.parametrize(("prefix", "as_bin"), [("", False), ("bert.", True)])
def test_hugging_face_folders_load_in_both_weight_formats(tmp_path, prefix, as_bin):
    folder, reference = tiny_hf_folder(tmp_path, prefix=prefix, as_bin=as_bin)
    bert, tok = load_pretrained(folder)
    bert.eval()
    tokens = torch.randint(5, 40, (3, 12))
    segments = torch.zeros_like(tokens)
    valid = torch.tensor([12, 9, 4])
    mask = (torch.arange(12)[None] < valid[:, None]).long()
    with torch.no_grad():
        ours = bert.encoder(tokens, segments, valid)
        theirs = reference(input_ids=tokens, token_type_ids=segments, attention_mask=mask)
    keep = mask.bool()
    assert (ours - theirs.last_hidden_state)[keep].abs().max() <= 1e-5
    assert tok.tokenize("w1 w22") == ["w1", "w22"]


def test_a_checkpoint_with_a_wrong_shape_names_the_keys(tmp_path):
    folder, _ = tiny_hf_folder(tmp_path, as_bin=True)
    state = torch.load(folder / "pytorch_model.bin", weights_only=True)
    state["encoder.layer.1.intermediate.dense.weight"] = torch.zeros(65, 32)
    del state["encoder.layer.0.output.dense.bias"]
    state["encoder.layer.0.surprise.weight"] = torch.zeros(1)
    torch.save(state, folder / "pytorch_model.bin")
    with pytest.raises(CheckpointMismatchError) as caught:
        load_pretrained(folder)
    message = str(caught.value)
    assert "mis-shaped encoder.blocks.1.ffn.dense1.weight: model expects (64, 32)" in message
    assert "(65, 32)" in message
    assert "encoder.blocks.0.ffn.dense2.bias" in caught.value.missing
    assert "encoder.layer.0.surprise.weight" in caught.value.unexpected


def test_pickles_that_are_not_plain_tensors_are_not_unpickled(tmp_path):
    folder, _ = tiny_hf_folder(tmp_path, as_bin=True)
    torch.save({"weights": torch.zeros(1), "callback": Path("evil")}, folder / "pytorch_model.bin")
    with pytest.raises(CheckpointError, match="not a plain-tensor") as caught:
        load_pretrained(folder)
    assert "weights_only=False" not in str(caught.value)  # PyTorch's advice would run the code


def test_book_folder_with_a_vocab_missing_a_special_token(d2l, tmp_path, dev_book):
    data, _, vocab = book_checkpoint_zip(d2l, "bert.odd", dev_book[0][:500], hidden=64, ffn=128,
                                         heads=1, layers=1, max_len=32)
    with zipfile.ZipFile(io.BytesIO(data)) as zf:
        zf.extractall(tmp_path)
    folder = tmp_path / "bert.odd"
    bert, _ = load_pretrained(folder)  # sizes are read off the checkpoint
    assert (bert.config.hidden_size, bert.config.num_layers, bert.config.max_len) == (64, 1, 32)
    tokens = [t for t in vocab.idx_to_token if t != "<sep>"]
    (folder / "vocab.json").write_text(json.dumps(tokens))
    with pytest.raises(VocabularyError, match="<sep>"):
        load_pretrained(folder)


def test_local_zip_loads_and_max_len_limits_positions(d2l, tmp_path, dev_book):
    data, _, _ = book_checkpoint_zip(d2l, "bert.mini", dev_book[0][:500], hidden=64, ffn=128,
                                     heads=1, layers=1, max_len=64)
    archive = tmp_path / "bert.mini.zip"
    archive.write_bytes(data)
    bert, tok = load_pretrained(archive, max_len=16, num_heads=1)
    assert bert.config.max_len == 16 and bert.config.num_heads == 1
    tokens = torch.full((1, 17), tok.cls_id)
    with pytest.raises(InputTooLongError, match="17 tokens"):
        bert.encoder(tokens, torch.zeros_like(tokens), torch.tensor([17]))
    with pytest.raises(ValueError, match="max_len=100 is longer than the checkpoint's 64"):
        load_pretrained(archive, max_len=100)


def test_unknown_names_and_missing_paths_say_what_is_available(tmp_path):
    with pytest.raises(PretrainedLoadError, match="bert.small, bert.base, minilm, scratch"):
        load_pretrained("bert.huge")
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(PretrainedLoadError, match="neither a book-form model"):
        load_pretrained(empty)


def test_scratch_models_are_reproducible_and_sized_as_asked():
    config = BertConfig(vocab_size=30522, hidden_size=64, num_layers=1, num_heads=2, ffn_size=128,
                        flavour="hf")
    first, tok = load_pretrained("scratch", config=config, seed=3)
    second, _ = load_pretrained("scratch", config=config, seed=3)
    assert tok.kind == "wordpiece"
    for a, b in zip(first.state_dict().values(), second.state_dict().values()):
        assert torch.equal(a, b)
    book_sized, _ = load_pretrained("scratch")
    assert (book_sized.config.num_layers, book_sized.config.hidden_size,
            book_sized.config.num_heads, book_sized.config.ffn_size) == (2, 256, 4, 512)


def test_asking_for_a_missing_gpu_is_an_error_not_a_fallback():
    if torch.cuda.is_available():
        pytest.skip("a GPU is present")
    with pytest.raises(RuntimeError, match="CUDA is not available"):
        load_pretrained("scratch", device="cuda")


def test_suggested_pooling_follows_how_the_model_was_pretrained(tmp_path):
    from bertnli_helpers.model.pretrained import suggested_pooling

    assert suggested_pooling("minilm") == "pair"  # a Sentence-Transformers mean-pooling model
    assert suggested_pooling("bert.small") == "cls"  # the book's: decided without downloading
    assert suggested_pooling("scratch") == "cls"
    pooling = tmp_path / "st-model" / "1_Pooling"
    pooling.mkdir(parents=True)
    (pooling / "config.json").write_text('{"pooling_mode_mean_tokens": true}')
    assert suggested_pooling(tmp_path / "st-model") == "pair"
    (pooling / "config.json").write_text('{"pooling_mode_cls_token": true}')
    assert suggested_pooling(tmp_path / "st-model") == "cls"
    assert suggested_pooling(tmp_path / "plain-folder") == "cls"


TINY_SIZES = {"hidden_size": 32, "num_layers": 1, "num_heads": 2, "ffn_size": 64, "max_len": 40,
              "flavour": "hf"}


def tiny_scratch(seed: int = 0):
    return scratch_model(BertConfig(vocab_size=30522, **TINY_SIZES), seed=seed)


def test_model_format_looks_names_and_folders_up_in_the_registries(tmp_path):
    for name in NAMED_MODELS:  # decided by name alone: nothing is downloaded
        assert model_format(name) == name
    assert list(NAMED_MODELS) == ["bert.small", "bert.base", "minilm", "scratch"]
    hf_folder, _ = tiny_hf_folder(tmp_path)
    assert model_format(hf_folder) == "huggingface"
    book = tmp_path / "book-model"
    book.mkdir()
    (book / "vocab.json").write_text("[]")
    assert model_format(book) == "book"
    archive = tmp_path / "book-model.zip"  # a zip unpacks into the cache, then is looked up
    with zipfile.ZipFile(archive, "w") as zf:
        zf.writestr("book-model/vocab.json", "[]")
    assert model_format(archive) == "book"
    with pytest.raises(PretrainedLoadError, match="unknown model 'bert.huge'"):
        model_format("bert.huge")


def test_a_registered_folder_format_is_picked_up_by_load_pretrained(tmp_path, monkeypatch):
    def load_sizes_file(folder, options):
        return tiny_scratch(seed=json.loads((folder / "sizes.json").read_text())["seed"])

    monkeypatch.setitem(FOLDER_FORMATS, "sizes", FolderFormat(
        "sizes.json", "a folder with sizes.json", load_sizes_file))
    folder = tmp_path / "sized"
    folder.mkdir()
    (folder / "sizes.json").write_text('{"seed": 5}')
    assert model_format(folder) == "sizes"
    bert, _ = load_pretrained(folder)
    torch.testing.assert_close(bert.state_dict(), tiny_scratch(seed=5)[0].state_dict())
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(PretrainedLoadError, match="nor a folder with sizes.json"):
        load_pretrained(empty)


def test_a_registered_named_model_is_loaded_and_listed(monkeypatch):
    monkeypatch.setitem(NAMED_MODELS, "tiny", NamedModel(lambda name, options: tiny_scratch()))
    bert, _ = load_pretrained("tiny")
    assert bert.config.hidden_size == 32
    with pytest.raises(PretrainedLoadError, match="minilm, scratch, tiny"):
        load_pretrained("bert.huge")
    _, _, recorded = load_for_run("tiny")
    assert recorded is None  # sizes come with the model: a run need not record them


def test_a_scratch_model_is_built_again_at_the_sizes_its_run_recorded():
    first, _, recorded = load_for_run("scratch", {"vocab_size": 30522, **TINY_SIZES}, seed=2)
    assert recorded is not None and recorded["hidden_size"] == 32
    again, _, _ = load_for_run("scratch", recorded, seed=2)
    torch.testing.assert_close(again.state_dict(), first.state_dict())
    _, _, default = load_for_run("scratch")
    assert default is not None and default["hidden_size"] == 256  # the book's small sizes


def test_a_config_whose_head_count_differs_from_the_known_layout_warns(tmp_path):
    """The head count cannot be read from the weights: a config saying 6 for minilm's 12 heads
    of 32 loads, but not silently."""
    folder = tmp_path / "minilm-6-heads"
    folder.mkdir()
    source = minilm_folder()
    for name in ("vocab.txt", "model.safetensors"):
        (folder / name).symlink_to(source / name)
    config = json.loads((source / "config.json").read_text())
    (folder / "config.json").write_text(json.dumps({**config, "num_attention_heads": 6}))
    with pytest.warns(UserWarning, match=r"6 attention heads.*12.*cannot be read from the weights"):
        bert, _ = load_pretrained(folder)
    assert bert.config.num_heads == 6
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        load_pretrained(source)  # the real layout: no warning
