"""The book's own code (d2l's PyTorch module), imported for side-by-side comparisons.

d2l 1.0.3 imports torchvision at module level, but its BERT and SNLI code never use it, and the
course does not install torchvision (d2l itself is installed ``--no-deps`` because its pins would
replace torch). Where torchvision is absent, ``import_d2l()`` lends d2l an empty stand-in for the
length of the import only: other libraries probe for torchvision (transformers calls
``importlib.util.find_spec``), and a stand-in left behind would tell them it is installed.
"""

from __future__ import annotations

import contextlib
import importlib
import importlib.machinery
import importlib.util
import sys
from collections.abc import Iterator
from types import ModuleType

from bertnli_helpers.errors import D2LUnavailableError

__all__ = ["D2LUnavailableError", "import_d2l"]

D2L_INSTALL = 'pip install --no-deps "d2l==1.0.3"'
"""How to install the book's code without letting its pins replace torch (``make setup-dev``)."""

_STAND_IN_NAMES = ("torchvision", "torchvision.transforms")


def import_d2l() -> ModuleType:
    """Import and return ``d2l.torch``, with a torchvision stand-in only where none is installed.

    A real torchvision is always the one d2l gets. After the call, ``sys.modules`` holds no
    stand-in, so ``importlib.util.find_spec("torchvision")`` answers as it did before.
    """
    if importlib.util.find_spec("torchvision") is not None:
        return _import_d2l_torch()
    with _torchvision_stand_in():
        return _import_d2l_torch()


def _import_d2l_torch() -> ModuleType:
    try:
        return importlib.import_module("d2l.torch")
    except ImportError as exc:
        raise D2LUnavailableError(
            f"the book's code (d2l's PyTorch module) could not be imported: {exc}. "
            f"Install it with: {D2L_INSTALL}"
        ) from exc


@contextlib.contextmanager
def _torchvision_stand_in() -> Iterator[None]:
    """Empty ``torchvision`` modules, with proper specs, present in ``sys.modules`` only inside."""
    modules = {name: _empty_module(name) for name in _STAND_IN_NAMES}
    modules["torchvision"].transforms = modules["torchvision.transforms"]
    sys.modules.update(modules)
    try:
        yield
    finally:
        for name, module in modules.items():
            if sys.modules.get(name) is module:
                del sys.modules[name]


def _empty_module(name: str) -> ModuleType:
    module = ModuleType(name, "a stand-in that bertnli_helpers.study.book lends to d2l's import")
    module.__spec__ = importlib.machinery.ModuleSpec(name, loader=None)
    return module
