"""Reading and writing what training leaves on disk: resumable checkpoints and best weights.

Every read goes through :func:`load_tensors`, which loads with ``weights_only=True`` (a pickle
can run code; a file of plain tensors cannot) and turns any unreadable file into one
:class:`CheckpointError` that names the file and what to do.
"""

from __future__ import annotations

import os
import pickle
import platform
import re
import zipfile
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from bertnli_helpers.errors import CheckpointError
from bertnli_helpers.files import atomic_torch_save

CHECKPOINT_FILE = "checkpoint.pt"
BEST_WEIGHTS_FILE = "best_model.pt"
HISTORY_FILE = "history.json"
CONFIG_FILE = "train_config.json"


def library_versions() -> dict[str, str]:
    """Saved beside every checkpoint, so a result can be traced to the code that made it."""
    from bertnli_helpers import __version__

    return {
        "bertnli_helpers": __version__,
        "torch": str(torch.__version__),
        "numpy": str(np.__version__),
        "python": platform.python_version(),
    }


# The weights-only unpickler's words for bytes that are not a pickle (as against a pickle that
# names code to run, which it reports as an unsupported GLOBAL).
_NOT_A_PICKLE = re.compile(r"Unsupported operand|invalid load key|pickle data was truncated")


def load_tensors(path: str | os.PathLike[str], what: str = "checkpoint") -> Any:
    """``torch.load(path, weights_only=True)`` with one clear error for every unreadable file."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"no {what} at {path}: pass the output folder of an earlier run")
    if path.stat().st_size == 0:
        raise CheckpointError(f"{path} is empty (a write was interrupted?): run again to "
                              "rebuild it, or restore the file")
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as err:
        if _NOT_A_PICKLE.search(str(err)):  # bytes that are no pickle at all: a corrupt file
            raise CheckpointError(f"{path} is not a readable {what} (corrupt: not a torch file); "
                                  "run again to rebuild it, or restore the file") from None
        raise CheckpointError(
            f"{path} is not a plain-tensor {what}: it asks to run code when loaded, so it was "
            "refused, and it must not be loaded any other way (that would run the code)"
            ) from None
    except (RuntimeError, OSError, EOFError, zipfile.BadZipFile, ValueError) as err:
        reason = str(err).splitlines()[0] if str(err) else type(err).__name__
        raise CheckpointError(
            f"{path} is not a readable {what} (truncated or corrupt: {reason}); run again to "
            "rebuild it, or restore the file") from None


def load_checkpoint(path: str | os.PathLike[str]) -> dict[str, Any]:
    """A resumable training checkpoint, from its file or its run folder."""
    path = Path(path)
    if path.is_dir():
        path = path / CHECKPOINT_FILE
    checkpoint = load_tensors(path, "checkpoint")
    if not isinstance(checkpoint, dict) or "model" not in checkpoint:
        raise CheckpointError(f"{path} is not a bertnli training checkpoint (no model state)")
    return checkpoint


def save_checkpoint(path: str | os.PathLike[str], checkpoint: dict[str, Any]) -> Path:
    return atomic_torch_save(path, dict(checkpoint, versions=library_versions()))


def load_best_weights(model: nn.Module, output_dir: str | os.PathLike[str]) -> nn.Module:
    """Put the best-on-dev weights of a finished run into ``model`` (shapes are checked)."""
    path = Path(output_dir) / BEST_WEIGHTS_FILE
    if not path.exists():
        raise CheckpointError(f"no {BEST_WEIGHTS_FILE} in {output_dir}: was the run evaluated?")
    state = load_tensors(path, "weights file")
    expected = model.state_dict()
    if not isinstance(state, dict):
        raise CheckpointError(f"{path} is not a weights file (no tensors by name)")
    wrong = [k for k in expected if k not in state or state[k].shape != expected[k].shape]
    if wrong or set(state) - set(expected):
        raise CheckpointError(
            f"{path} does not fit this model (differing keys: {', '.join(wrong[:8]) or 'extra'}); "
            "load the same pretrained model the run was made with"
        )
    model.load_state_dict(state)
    return model
