"""The exceptions users see. Each message says what was wrong and how to fix it."""

from __future__ import annotations

import math


class BertNLIError(Exception):
    """Base class for every error raised on purpose by bertnli_helpers."""


class UsageError(BertNLIError):
    """A command-line request that cannot be carried out as given."""


class DeviceError(BertNLIError, RuntimeError):
    """The device asked for is not available here (never silently replaced by another)."""


class DownloadError(BertNLIError, OSError):
    """A resource could not be fetched (offline, server error, truncated transfer)."""


class ChecksumError(BertNLIError, ValueError):
    """A file's SHA-1 is not the registered one."""


class UnsafeArchiveError(BertNLIError, ValueError):
    """An archive member would be written outside the extraction folder."""


class UnknownResourceError(BertNLIError, KeyError):
    """A resource name that is not in the hub's registry (and not a URL)."""

    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0]) if self.args else ""


class DataFormatError(BertNLIError, ValueError):
    """A data file has a malformed line; the message names the file and the line number."""


class VocabularyError(BertNLIError, ValueError):
    """A vocabulary file is unusable (missing special tokens, wrong format)."""


class PretrainedLoadError(BertNLIError, ValueError):
    """A model name or folder cannot be loaded (unknown name, missing files, unsafe pickle)."""


_SHOWN = 8


def _some(keys: list[str]) -> str:
    more = f", ... and {len(keys) - _SHOWN} more" if len(keys) > _SHOWN else ""
    return ", ".join(keys[:_SHOWN]) + more


class CheckpointMismatchError(BertNLIError, ValueError):
    """A checkpoint does not fit the model: missing, unexpected or mis-shaped keys."""

    def __init__(
        self,
        source: str,
        missing: list[str],
        unexpected: list[str],
        mis_shaped: list[tuple[str, tuple[int, ...], tuple[int, ...]]],
    ) -> None:
        self.missing, self.unexpected, self.mis_shaped = missing, unexpected, mis_shaped
        lines = [f"checkpoint {source} does not fit the model:"]
        if missing:
            lines.append(f"  missing keys ({len(missing)}): {_some(missing)}")
        if unexpected:
            lines.append(f"  unexpected keys ({len(unexpected)}): {_some(unexpected)}")
        for key, expected, found in mis_shaped[:_SHOWN]:
            lines.append(f"  mis-shaped {key}: model expects {expected}, checkpoint has {found}")
        if len(mis_shaped) > _SHOWN:
            lines.append(f"  ... and {len(mis_shaped) - _SHOWN} more mis-shaped keys")
        lines.append(
            "  Check that the model sizes (layers, hidden, heads, FFN, vocabulary, max_len) match "
            "the checkpoint, or load it with load_pretrained(path) so the sizes are read from it."
        )
        super().__init__("\n".join(lines))


class InputTooLongError(BertNLIError, ValueError):
    """A packed sequence is longer than the model's position table."""


class CheckpointError(BertNLIError, ValueError):
    """A checkpoint or run folder cannot be used (missing, unreadable, or from another setup)."""


class D2LUnavailableError(BertNLIError, ImportError):
    """The book's code (d2l) cannot be imported; the message says why and how to install it."""


class GridError(BertNLIError, ValueError):
    """A grid asks to vary something that cannot vary, or with values that do not parse."""


class FolderLockedError(BertNLIError):
    """Another process is writing into the same run folder (its pid is in the message)."""


class EmptySplitError(BertNLIError, ValueError):
    """A train, dev or test split has no usable pairs (an empty or all-'-' file)."""


class SettingError(BertNLIError, ValueError):
    """A setting that cannot be used as given (a recipe value, a preset name)."""


class CorruptArchiveError(BertNLIError, ValueError):
    """An archive that cannot be read to the end (truncated, or its sizes and data disagree)."""


class NonFiniteError(BertNLIError, ValueError):
    """A number that must be finite is NaN or infinite (an argument, a loss, a weight)."""


class DiskFullError(BertNLIError, OSError):
    """The disk filled up while a file was written; the partial file is removed."""


def finite_number(value: float, what: str) -> float:
    """``value`` if it is a finite number, else a :class:`NonFiniteError` naming ``what``: the
    one home of the rule that NaN and infinity never reach training or a file."""
    if not math.isfinite(value):
        raise NonFiniteError(f"{what} must be a finite number, not {value}")
    return value
