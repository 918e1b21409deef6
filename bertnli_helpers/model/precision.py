"""Which number format the arithmetic runs in: one rule for training and inference.

``"auto"`` picks mixed precision where the hardware computes it natively and fp32 elsewhere:

* CUDA: bf16 autocast where the GPU supports bf16, else fp16 (with a gradient scaler);
* a CPU with AVX512-BF16 or AMX-BF16 (detected, never assumed): bf16 autocast, about 4x the
  fp32 matmul rate there; weights, optimizer state, the residual stream, LayerNorm and the
  loss stay in fp32;
* any other CPU, MPS: fp32 (emulated bf16 would be slower than fp32).

``$BERTNLI_PRECISION`` (fp32, bf16, fp16) replaces that rule for ``"auto"``, so that one switch
reaches every notebook of a course run; an explicit ``precision="fp32"`` always wins.
"""

from __future__ import annotations

import functools
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import torch

from bertnli_helpers.errors import SettingError

PRECISIONS = ("auto", "fp32", "bf16", "fp16")
PRECISION_ENV = "BERTNLI_PRECISION"
# CPU features with bf16 arithmetic in hardware (names as torch.cpu.get_capabilities() and
# /proc/cpuinfo spell them): AVX512-BF16 dot products, AMX tiles.
NATIVE_BF16_FEATURES = ("avx512_bf16", "amx_bf16")
_DTYPES = {"fp32": None, "bf16": torch.bfloat16, "fp16": torch.float16}


def cpuinfo_flags(path: str | Path = "/proc/cpuinfo") -> frozenset[str]:
    """The ``flags`` of the first processor in a Linux ``/proc/cpuinfo`` (empty elsewhere)."""
    try:
        text = Path(path).read_text()
    except OSError:
        return frozenset()
    for line in text.splitlines():
        key, _, value = line.partition(":")
        if key.strip() in ("flags", "Features"):
            return frozenset(value.split())
    return frozenset()


@functools.lru_cache(maxsize=1)
def cpu_features() -> frozenset[str]:
    """The CPU's features: torch's own query (``torch.cpu.get_capabilities``, torch >= 2.8),
    else the Linux flags, which older torch builds leave as the only source."""
    get_capabilities = getattr(torch.cpu, "get_capabilities", None)
    if get_capabilities is not None:
        try:
            return frozenset(name for name, value in get_capabilities().items() if value is True)
        except RuntimeError:  # cpuinfo could not read this CPU
            pass
    return cpuinfo_flags()


def native_bf16_features() -> list[str]:
    """The bf16 features this CPU has (empty: it would only emulate bf16)."""
    features = cpu_features()
    return [name for name in NATIVE_BF16_FEATURES if name in features]


def _check(precision: str) -> None:
    if precision not in PRECISIONS:
        raise SettingError(f"precision must be one of {PRECISIONS}, not {precision!r}")


def _environment_choice() -> str | None:
    chosen = os.environ.get(PRECISION_ENV, "").strip().lower()
    if not chosen or chosen == "auto":
        return None
    if chosen not in _DTYPES:
        raise SettingError(f"${PRECISION_ENV} must be one of fp32, bf16, fp16 or auto, "
                         f"not {chosen!r}")
    return chosen


def resolve_precision(precision: str, device: torch.device) -> str:
    """``"fp32"``, ``"bf16"`` or ``"fp16"``: what ``precision`` means on ``device``."""
    _check(precision)
    if precision == "auto":
        precision = _environment_choice() or _hardware_choice(device)
    if precision == "fp16" and device.type != "cuda":
        raise SettingError("fp16 autocast needs a CUDA device; on the CPU use precision='bf16'")
    return precision


def _hardware_choice(device: torch.device) -> str:
    """bf16 (or fp16) where the hardware computes it natively; MPS stays in fp32, the rule
    until its autocast is measured against fp32 like the CPU's and CUDA's were."""
    if device.type == "cuda":
        return "bf16" if torch.cuda.is_bf16_supported() else "fp16"
    if device.type == "cpu" and native_bf16_features():
        return "bf16"
    return "fp32"


def autocast_dtype(precision: str, device: torch.device) -> torch.dtype | None:
    """The dtype mixed precision runs in, or None for plain fp32."""
    return _DTYPES[resolve_precision(precision, device)]


def describe_precision(precision: str, device: torch.device) -> str:
    """One line saying what runs in which format and why (printed once at the start of a run)."""
    chosen = resolve_precision(precision, device)
    if precision != "auto":
        reason = "as asked"
    elif _environment_choice():
        reason = f"auto: ${PRECISION_ENV}={chosen}"
    elif device.type == "cpu":
        found = native_bf16_features()
        reason = (f"auto: this CPU computes bf16 natively ({', '.join(found)})" if found else
                  "auto: this CPU has no native bf16 (no avx512_bf16 or amx_bf16)")
    elif device.type == "mps":
        reason = "auto on mps: fp32, as autocast on Apple's GPU is not measured here"
    else:
        reason = f"auto on {device.type}"
    what = "fp32" if chosen == "fp32" else f"{chosen} autocast, fp32 weights"
    return f"precision {chosen} ({what}; {reason})"


@contextmanager
def precision_override(precision: str | None) -> Iterator[None]:
    """``$BERTNLI_PRECISION`` set to ``precision`` inside the block (nothing when None), so that
    processes started there (notebook kernels) resolve ``"auto"`` to it; restored after."""
    if not precision or precision == "auto":
        yield
        return
    _check(precision)
    saved = os.environ.get(PRECISION_ENV)
    os.environ[PRECISION_ENV] = precision
    try:
        yield
    finally:
        if saved is None:
            os.environ.pop(PRECISION_ENV, None)
        else:
            os.environ[PRECISION_ENV] = saved


def autocast(device: torch.device, dtype: torch.dtype | None):
    """``torch.autocast`` for ``dtype``, or a no-op context for fp32."""
    return torch.autocast(device.type, dtype=dtype, enabled=dtype is not None)
