"""bertnli_helpers: the implementation behind the bertnli course (fine-tuning BERT on SNLI)."""

from __future__ import annotations

__version__ = "0.1.0"
