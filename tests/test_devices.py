"""``device="auto"``: CUDA, then Apple's MPS, then the CPU; asked-for devices never fall back."""

import pytest
import torch

from bertnli_helpers import devices
from bertnli_helpers.devices import resolve_device
from bertnli_helpers.errors import DeviceError
from bertnli_helpers.model.precision import describe_precision, resolve_precision


@pytest.fixture
def machine(monkeypatch):
    """Pretend which accelerators this machine has."""
    def have(*, cuda: bool = False, mps: bool = False) -> None:
        monkeypatch.setattr(devices, "AUTO_ORDER", (("cuda", lambda: cuda), ("mps", lambda: mps)))
        monkeypatch.setattr(devices, "_mps_available", lambda: mps)
    return have


@pytest.mark.parametrize(("cuda", "mps", "expected"), [
    (False, False, "cpu"), (False, True, "mps"), (True, True, "cuda"), (True, False, "cuda")])
def test_auto_takes_the_first_accelerator_there_is(machine, cuda, mps, expected):
    machine(cuda=cuda, mps=mps)
    assert resolve_device("auto").type == expected
    assert resolve_device(None).type == expected


def test_mps_asked_for_where_there_is_none_is_refused(machine):
    machine(mps=False)
    with pytest.raises(DeviceError, match="MPS is not available"):
        resolve_device("mps")
    machine(mps=True)
    assert resolve_device("mps") == torch.device("mps")


def test_mps_trains_in_fp32_and_says_why(monkeypatch):
    monkeypatch.delenv("BERTNLI_PRECISION", raising=False)
    mps = torch.device("mps")
    assert resolve_precision("auto", mps) == "fp32"
    assert "auto on mps" in describe_precision("auto", mps)
    assert resolve_precision("bf16", mps) == "bf16"  # asked for: honoured


def test_the_real_machine_resolves_to_something_it_has():
    assert resolve_device("auto").type in {"cpu", "cuda", "mps"}
