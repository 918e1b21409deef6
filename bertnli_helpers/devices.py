"""Choosing the device, loudly: never silently run somewhere other than where the user asked."""

from __future__ import annotations

import torch

from bertnli_helpers.errors import DeviceError


def resolve_device(device: str | torch.device | None = None) -> torch.device:
    """``None``/``"auto"``: the first GPU if there is one, else the CPU. An explicit device that
    is not available is a ``DeviceError``, not a quiet fallback that would change timings and
    results."""
    if device is None or device == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        return torch.device("cpu")
    try:
        device = torch.device(device)
    except RuntimeError as err:  # torch's own list of the device types it knows
        raise DeviceError(f"unknown device {str(device)!r}: {err}") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise DeviceError(
            f"device {device} was asked for but CUDA is not available here "
            "(torch.cuda.is_available() is False); use device='cpu' or 'auto', or install a CUDA "
            "build of torch (docs/gpu.md: 'Using a GPU')"
        )
    if device.type == "cuda" and (device.index or 0) >= torch.cuda.device_count():
        raise DeviceError(
            f"device {device} was asked for but only {torch.cuda.device_count()} GPU(s) exist"
        )
    if device.type == "mps" and not torch.backends.mps.is_available():
        raise DeviceError(f"device {device} was asked for but MPS is not available here")
    return device
