"""Choosing the device, loudly: never silently run somewhere other than where the user asked."""

from __future__ import annotations

from collections.abc import Callable

import torch

from bertnli_helpers.errors import DeviceError


def _mps_available() -> bool:
    mps = getattr(torch.backends, "mps", None)
    return bool(mps is not None and mps.is_available())


AUTO_ORDER: tuple[tuple[str, Callable[[], bool]], ...] = (
    ("cuda", torch.cuda.is_available),
    ("mps", _mps_available),  # Apple's GPU, on a Mac without CUDA
)
"""What ``device="auto"`` tries, first found wins; the CPU when none is there."""


def resolve_device(device: str | torch.device | None = None) -> torch.device:
    """``None``/``"auto"``: the first GPU if there is one (CUDA, else Apple's MPS), else the
    CPU. An explicit device that is not available is a ``DeviceError``, not a quiet fallback
    that would change timings and results."""
    if device is None or device == "auto":
        found = next((name for name, available in AUTO_ORDER if available()), "cpu")
        return torch.device(found)
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
    if device.type == "mps" and not _mps_available():
        raise DeviceError(f"device {device} was asked for but MPS is not available here")
    return device
