"""Lazy public names for a package's `__init__` (PEP 562): the name resolves on first use, so importing one
submodule (say `embedkit.eval.plots`) does not import its siblings (and torch with them)."""

from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import Any


def lazy_exports(package: str, exports: dict[str, str]) -> tuple[Callable[[str], Any], Callable[[], list[str]]]:
    """`__getattr__` and `__dir__` for `package`, whose `exports` maps a public name to its module, or to
    "module:attribute" when the public name differs from the module's.

    Usage in an `__init__.py`: `__getattr__, __dir__ = lazy_exports(__name__, {"knn": "embedkit.search.arrays"})`.
    """
    namespace = importlib.import_module(package).__dict__

    def __getattr__(name: str) -> Any:
        if name not in exports:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        module, _, attribute = exports[name].partition(":")
        value = getattr(importlib.import_module(module), attribute or name)
        namespace[name] = value  # later lookups skip this function
        return value

    def __dir__() -> list[str]:
        return sorted(set(namespace) | set(exports))

    return __getattr__, __dir__
