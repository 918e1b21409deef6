"""The exceptions users see: all in errors.py, and a device that is not here is a DeviceError."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest
import torch

import bertnli_helpers
from bertnli_helpers.devices import resolve_device
from bertnli_helpers.errors import BertNLIError, DeviceError

PACKAGE = Path(bertnli_helpers.__file__).parent
def error_classes_outside_errors_module() -> dict[str, str]:
    """Classes named ``...Error`` defined in the package anywhere but errors.py: name -> module."""
    found = {}
    for path in PACKAGE.glob("*.py"):
        if path.name == "errors.py":
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ClassDef) and node.name.endswith("Error"):
                found[node.name] = path.name
    return found


def test_every_error_class_lives_in_the_errors_module():
    assert error_classes_outside_errors_module() == {}


@pytest.mark.parametrize("device", ["cuda:99", "mps"])
def test_a_device_that_is_not_here_is_a_device_error(device):
    if device == "mps" and torch.backends.mps.is_available():
        pytest.skip("MPS is present")
    with pytest.raises(DeviceError, match="was asked for") as info:
        resolve_device(device)
    assert isinstance(info.value, BertNLIError) and isinstance(info.value, RuntimeError)


def test_cuda_without_cuda_says_how_to_get_it():
    if torch.cuda.is_available():
        pytest.skip("a GPU is present")
    with pytest.raises(DeviceError, match="CUDA is not available.*'cpu' or 'auto'"):
        resolve_device("cuda")
