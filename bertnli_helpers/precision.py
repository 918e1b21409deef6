"""Which number format the arithmetic runs in: one rule for training and inference."""

from __future__ import annotations

import torch

from .errors import SettingError

PRECISIONS = ("auto", "fp32", "bf16", "fp16")


def autocast_dtype(precision: str, device: torch.device) -> torch.dtype | None:
    """The dtype mixed precision runs in, or None for plain fp32."""
    if precision not in PRECISIONS:
        raise SettingError(f"precision must be one of {PRECISIONS}, not {precision!r}")
    if precision == "fp32" or (precision == "auto" and device.type != "cuda"):
        return None
    if precision == "auto":
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    if precision == "fp16" and device.type != "cuda":
        raise SettingError("fp16 training needs a CUDA device; on the CPU use precision='bf16'")
    return torch.bfloat16 if precision == "bf16" else torch.float16


def autocast(device: torch.device, dtype: torch.dtype | None):
    """``torch.autocast`` for ``dtype``, or a no-op context for fp32."""
    return torch.autocast(device.type, dtype=dtype, enabled=dtype is not None)
