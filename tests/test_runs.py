"""Run folders: re-used only when made with the same settings and pairs, resumable, slimmed.

Tiny scratch BERTs fine-tuned for 2 steps on 32 real SNLI pairs: what is checked is which runs
are re-used, re-made or resumed, and which files a run leaves, not what the model learns.
"""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
import warnings
from dataclasses import replace

import pytest
import torch

from bertnli_helpers.data.snli import SampleWarning, read_records
from bertnli_helpers.errors import CheckpointError, EmptySplitError, FolderLockedError
from bertnli_helpers.files import run_folder_lock
from bertnli_helpers.model.checkpoints import (
    BEST_WEIGHTS_FILE,
    CHECKPOINT_FILE,
    CONFIG_FILE,
    HISTORY_FILE,
)
from bertnli_helpers.study.analysis import hypothesis_only_dataset
from bertnli_helpers.train.config import TrainConfig
from bertnli_helpers.train.loop import Callback
from bertnli_helpers.train.runs import (
    INPUTS_FILE,
    METRICS_FILE,
    RUN_FILE,
    RunInfo,
    encoding_name,
    finetune_run,
    load_finetuned,
    run_inputs,
    split_fingerprint,
)

from conftest import TINY

CONFIG = TrainConfig(epochs=1, batch_size=16, max_steps=2, device="cpu", eval_batch_size=64)


@pytest.fixture(scope="module")
def splits(snli_dir):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", SampleWarning)
        train = read_records(snli_dir, "train")
    dev = read_records(snli_dir, "dev")
    return train.sample(32, 1), dev.sample(24, 1), dev.sample(24, 2), train.sample(32, 2)


class _StopAfterOneEpoch(Callback):
    def on_epoch_end(self, state, record) -> None:
        state.stop = True


def _info(**changes) -> RunInfo:
    return RunInfo(**{"model": "scratch", "max_len": 48, "model_config": dict(TINY), **changes})


def _run(folder, splits, config=CONFIG, info=None, **kwargs):
    train, dev, test, _ = splits
    return finetune_run(folder, info or _info(), train, dev, test, config, **kwargs)


def test_sizes_given_for_a_model_that_brings_its_own_do_not_tell_runs_apart(splits):
    train, dev, test, _ = splits
    plain = run_inputs(RunInfo("minilm"), train, dev, test, CONFIG)
    sized = run_inputs(RunInfo("minilm", model_config=dict(TINY)), train, dev, test, CONFIG)
    assert plain == sized and plain["info"]["model_config"] is None
    scratch = run_inputs(_info(), train, dev, test, CONFIG)
    assert scratch["info"]["model_config"] == dict(TINY)  # scratch is built at these sizes


def test_a_students_strategy_is_part_of_the_run_by_its_code(splits, monkeypatch):
    """Editing a registered function of one's own must not re-use the run made with the old one;
    the package's strategies keep the inputs they always had."""
    from bertnli_helpers.data.truncation import STRATEGIES, ratio

    train, dev, test, _ = splits
    package = run_inputs(_info(truncation="ratio"), train, dev, test, CONFIG)
    assert "truncation_code" not in package["info"]
    digests = []
    for body in ("return ratio(p, h, budget)", "p, h = ratio(p, h, budget)\n    return p, h"):
        namespace = {"ratio": ratio}
        exec(f"def mine(p, h, budget):\n    {body}\n", namespace)  # as a notebook cell would
        monkeypatch.setitem(STRATEGIES, "mine", namespace["mine"])
        digests.append(run_inputs(_info(truncation="mine"), train, dev, test,
                                  CONFIG)["info"]["truncation_code"])
    assert digests[0] != digests[1]


def test_split_fingerprint_follows_the_pairs(splits):
    train, *_, other_train = splits
    records = list(train.records)
    assert split_fingerprint(train) == split_fingerprint(replace(train, records=records))
    assert split_fingerprint(train)["pairs"] == 32
    assert split_fingerprint(train) != split_fingerprint(other_train)
    records[0] = replace(records[0], label=(records[0].label + 1) % 3)
    assert split_fingerprint(train) != split_fingerprint(replace(train, records=records))
    assert split_fingerprint(None) is None


def test_a_finished_run_is_reused_only_with_the_same_settings_and_pairs(tmp_path, splits):
    first = _run(tmp_path, splits)
    assert not first.reused and first.folder == tmp_path
    assert first.info.model == "scratch" and first.info.model_config["hidden_size"] == 32
    saved = json.loads((tmp_path / INPUTS_FILE).read_text())
    assert saved["data"]["train"]["pairs"] == 32 and "device" not in saved["train_config"]
    assert json.loads((tmp_path / CONFIG_FILE).read_text())["train"]["max_steps"] == 2
    (tmp_path / "notes.txt").write_text("mine")  # not a run file: survives every re-make

    same = _run(tmp_path, splits, config=CONFIG.replace(device="auto"))  # device: no matter
    assert same.reused and same.folder == tmp_path and same.info == RunInfo.load(tmp_path)
    assert same.metrics == first.metrics and same.history == first.history
    for a, b in zip(same.net.state_dict().values(), first.net.state_dict().values()):
        torch.testing.assert_close(a, b)

    train, dev, test, other_train = splits
    changes = {
        "config": lambda: _run(tmp_path, splits, config=CONFIG.replace(lr=1e-3)),
        "info": lambda: _run(tmp_path, splits, info=_info(max_len=40)),
        "train pairs": lambda: finetune_run(tmp_path, _info(), other_train, dev, test, CONFIG),
        "test pairs": lambda: finetune_run(tmp_path, _info(), train, dev, None, CONFIG),
    }
    for what, remake in changes.items():
        assert not remake().reused, what
        assert not _run(tmp_path, splits).reused, what  # the folder held the other run
        assert _run(tmp_path, splits).reused, what
    # the last re-make had no test split: no stale test metrics from earlier runs survive it
    finetune_run(tmp_path, _info(), train, dev, None, CONFIG.replace(lr=2e-4))
    assert "test_accuracy" not in json.loads((tmp_path / METRICS_FILE).read_text())
    assert (tmp_path / "notes.txt").read_text() == "mine"


def test_an_old_run_without_inputs_is_made_again_from_scratch(tmp_path, splits):
    _run(tmp_path, splits, config=CONFIG.replace(checkpoint_every=1))
    (tmp_path / INPUTS_FILE).unlink()  # as runs made before run_inputs.json existed
    stale = torch.load(tmp_path / CHECKPOINT_FILE, weights_only=True)
    again = _run(tmp_path, splits, config=CONFIG.replace(epochs=2, max_steps=4), resume=True)
    assert not again.reused  # trained again; the stale checkpoint was not resumed from
    fresh = torch.load(tmp_path / CHECKPOINT_FILE, weights_only=True)
    assert stale["config"]["epochs"] == 1 and fresh["config"]["epochs"] == 2
    assert [r["step"] for r in again.history] == [2, 4]
    assert (tmp_path / INPUTS_FILE).exists()


ENCODED: list[tuple[int, list[str]]] = []


def _hypotheses_recorded(pairs, tokenizer, max_len, truncation):
    """``hypothesis_only_dataset``, noting how many pairs it encoded and its first pair."""
    dataset = hypothesis_only_dataset(pairs, tokenizer, max_len, truncation)
    ENCODED.append((len(dataset), dataset.tokens_of(0)))
    return dataset


def test_a_hypothesis_only_run_is_its_own_run_with_its_own_fingerprint(tmp_path, splits):
    _run(tmp_path, splits)
    ENCODED.clear()
    only = _run(tmp_path, splits, encode=_hypotheses_recorded)
    assert not only.reused  # the whole-pair run in the folder is not taken for it
    assert [n for n, _ in ENCODED] == [32, 24, 24]  # train, dev and test, hypotheses only
    assert all(tokens[:2] == ["[CLS]", "[SEP]"] for _, tokens in ENCODED)  # premise emptied
    saved = json.loads((tmp_path / INPUTS_FILE).read_text())
    assert saved["info"]["encode"] == f"{__name__}._hypotheses_recorded"

    ENCODED.clear()
    assert _run(tmp_path, splits, encode=_hypotheses_recorded).reused and not ENCODED
    changed = _run(tmp_path, splits, info=_info(max_len=40), encode=_hypotheses_recorded)
    assert not changed.reused and ENCODED  # a changed setting is made again, not re-used
    assert not _run(tmp_path, splits, config=CONFIG.replace(lr=1e-3),
                    info=_info(max_len=40), encode=_hypotheses_recorded).reused
    assert not _run(tmp_path, splits).reused  # and a whole-pair run does not take it either


def test_an_encoding_needs_a_name_the_fingerprint_can_record(tmp_path, splits):
    assert encoding_name(hypothesis_only_dataset) == (
        "bertnli_helpers.study.analysis.hypothesis_only_dataset")
    with pytest.raises(ValueError, match="module-level function"):
        _run(tmp_path, splits, encode=lambda *args, **kwargs: hypothesis_only_dataset(*args))
    assert not list(tmp_path.iterdir())  # refused before anything was written


def test_runs_saved_by_older_versions_are_still_reused(tmp_path, splits):
    first = _run(tmp_path, splits)
    inputs = json.loads((tmp_path / INPUTS_FILE).read_text())
    del inputs["info"]["encode"]  # older versions always encoded whole pairs ...
    inputs["info"]["extra"] = {}  # ... and wrote an empty field since removed
    (tmp_path / INPUTS_FILE).write_text(json.dumps(inputs))
    info = json.loads((tmp_path / RUN_FILE).read_text())
    (tmp_path / RUN_FILE).write_text(json.dumps({**info, "extra": {}}))
    again = _run(tmp_path, splits)
    assert again.reused and again.info == first.info
    assert not _run(tmp_path, splits, encode=hypothesis_only_dataset).reused


def test_resume_continues_only_the_same_run(tmp_path, splits):
    config = CONFIG.replace(epochs=2, max_steps=None)  # 2 epochs of 2 steps
    whole = _run(tmp_path / "whole", splits, config=config, reuse=False)
    part = tmp_path / "part"
    _run(part, splits, config=config, reuse=False, callbacks=[_StopAfterOneEpoch()])
    for name in (RUN_FILE, METRICS_FILE):  # as if it were killed after its first epoch
        (part / name).unlink()
    _, dev, test, other_train = splits
    with pytest.raises(CheckpointError, match="data.train"):
        finetune_run(part, _info(), other_train, dev, test, config, resume=True)
    resumed = _run(part, splits, config=config, resume=True)
    assert not resumed.reused
    assert [r["step"] for r in resumed.history] == [r["step"] for r in whole.history] == [2, 4]
    for key in ("train_loss", "dev_loss", "dev_accuracy"):
        assert [r[key] for r in resumed.history] == pytest.approx([r[key] for r in whole.history])
    assert resumed.metrics["test_accuracy"] == pytest.approx(whole.metrics["test_accuracy"])


def test_keep_checkpoint_false_deletes_only_the_checkpoint(tmp_path, splits):
    outcome = _run(tmp_path, splits, keep_checkpoint=False)
    assert not (tmp_path / CHECKPOINT_FILE).exists()
    for name in (RUN_FILE, METRICS_FILE, INPUTS_FILE, BEST_WEIGHTS_FILE, HISTORY_FILE):
        assert (tmp_path / name).exists(), name
    net, _, info = load_finetuned(tmp_path)
    assert info == outcome.info
    for a, b in zip(net.state_dict().values(), outcome.net.state_dict().values()):
        torch.testing.assert_close(a, b)
    assert _run(tmp_path, splits, keep_checkpoint=False).reused  # still a finished run
    kept = tmp_path / "kept"
    _run(kept, splits)
    assert (kept / CHECKPOINT_FILE).exists()
    assert _run(kept, splits, keep_checkpoint=False).reused
    assert not (kept / CHECKPOINT_FILE).exists()


@pytest.mark.parametrize("umask", [0o022, 0o002])
def test_a_finished_run_folders_files_follow_the_umask(tmp_path, splits, umask):
    """A teacher's run on a shared machine is as readable as the teacher's umask says."""
    old = os.umask(umask)
    try:
        _run(tmp_path, splits)
    finally:
        os.umask(old)
    files = sorted(p for p in tmp_path.iterdir() if p.is_file())
    assert {p.name for p in files} >= {RUN_FILE, METRICS_FILE, INPUTS_FILE, BEST_WEIGHTS_FILE,
                                       CHECKPOINT_FILE, HISTORY_FILE, CONFIG_FILE}
    for path in files:
        assert stat.S_IMODE(path.stat().st_mode) == 0o666 & ~umask, path.name


def test_an_empty_split_is_an_error(tmp_path, splits):
    train, dev, test, _ = splits
    for empty in ("train", "dev", "test"):
        given = {"train": train, "dev": dev, "test": test}
        given[empty] = replace(given[empty], records=[])
        with pytest.raises(EmptySplitError, match=f"{empty} split .* no usable pairs"):
            finetune_run(tmp_path / empty, _info(), given["train"], given["dev"], given["test"],
                         CONFIG)
        assert not (tmp_path / empty).exists()


def test_a_held_run_folder_is_refused_with_the_holders_pid(tmp_path, splits):
    with run_folder_lock(tmp_path / "run"):
        with pytest.raises(FolderLockedError, match=f"{tmp_path / 'run'}.*pid {os.getpid()}"):
            _lock_in_another_process(tmp_path / "run")
        _run(tmp_path / "run", splits)  # the holder itself may write (the lock is re-entrant)
    _lock_in_another_process(tmp_path / "run")  # released


def _lock_in_another_process(folder) -> None:
    """Take the folder's lock in another process; its refusal is raised here."""
    code = ("import sys\nfrom bertnli_helpers.files import run_folder_lock\n"
            "from bertnli_helpers.errors import FolderLockedError\n"
            "try:\n    with run_folder_lock(sys.argv[1]): pass\n"
            "except FolderLockedError as err:\n    print(err)")
    done = subprocess.run([sys.executable, "-c", code, str(folder)], capture_output=True,
                          text=True, check=True, timeout=120)
    if done.stdout.strip():
        raise FolderLockedError(done.stdout.strip())
