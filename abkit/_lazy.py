"""Lazy package attributes (PEP 562): the one mechanism every abkit ``__init__`` uses.

A package lists ``public name -> defining module`` and installs the two hooks::

    _LAZY = {"assign": "abkit.assignment.assign", ...}
    __getattr__, __dir__ = lazy_attributes(__name__, _LAZY)

The defining module is imported on first access of the name only, and the value is then
stored in the package's namespace so later lookups never reach ``__getattr__``. When the
module needs a third-party package that is not installed, the ``ImportError`` names the
extra that brings it (``pip install 'abkit[store]'``; :mod:`abkit.extras`). Standard
library only: the assignment core may use it.
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Callable, Mapping
from typing import Any

from abkit.extras import missing_extra_message

__all__ = ["lazy_attributes"]


def lazy_attributes(
    package: str, names: Mapping[str, str]
) -> tuple[Callable[[str], Any], Callable[[], list[str]]]:
    """``(__getattr__, __dir__)`` for ``package`` loading each of ``names`` on first use.

    ``names`` maps a public attribute to the module that defines it under the same name.
    An unknown attribute raises ``AttributeError`` naming the package, as Python does.
    """
    table = dict(names)

    def __getattr__(name: str) -> Any:
        module_name = table.get(name)
        if module_name is None:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        try:
            module = importlib.import_module(module_name)
        except ModuleNotFoundError as exc:
            if exc.name is None or exc.name.split(".")[0] == "abkit":
                raise  # a missing abkit module is a bug, not a missing extra
            message = missing_extra_message(exc.name, wanted=f"{package}.{name}")
            raise ImportError(message, name=exc.name) from exc
        value = getattr(module, name)
        setattr(sys.modules[package], name, value)  # later lookups skip this function
        return value

    def __dir__() -> list[str]:
        return sorted(set(table) | set(vars(sys.modules[package])))

    return __getattr__, __dir__
