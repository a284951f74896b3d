"""Lazy public names for package __init__ modules: the one place where heavy imports are put off.

`import pipeline` (and so `finer-traits --help`) must not pay for torch, timm, open_clip, spaCy or SQLAlchemy.
Each package lists its public names and the module that defines each; that module is imported on first use.

The names are properties of the package's module class rather than a module `__getattr__`, because a public name
may equal a submodule's name (`pipeline.describe` is the function, `pipeline/describe.py` its module): importing
the submodule makes the import system set the package attribute to the module, and a property can refuse that
while `__getattr__` is never asked again.
"""

from __future__ import annotations

import importlib
import sys
import types
from collections.abc import Mapping
from typing import Any


def lazy_exports(package: str, names: Mapping[str, str]) -> None:
    """Make `package.NAME` import `names[NAME]` (a module path) on first use and return its attribute NAME."""
    cache: dict[str, Any] = {}

    def public(attr: str, source: str) -> property:
        def get(_module: types.ModuleType) -> Any:
            if attr not in cache:
                cache[attr] = getattr(importlib.import_module(source), attr)
            return cache[attr]

        def put(_module: types.ModuleType, value: Any) -> None:
            if isinstance(value, types.ModuleType) and value.__name__ == f"{package}.{attr}":
                return  # the import system binding the submodule of the same name: the public name wins
            cache[attr] = value  # e.g. a test's monkeypatch

        def drop(_module: types.ModuleType) -> None:
            cache.pop(attr, None)

        return property(get, put, drop, doc=f"{source}.{attr}, imported on first use.")

    module = sys.modules[package]
    body: dict[str, Any] = {attr: public(attr, source) for attr, source in names.items()}
    body["__dir__"] = lambda self: sorted(set(self.__dict__) | set(names))
    module.__class__ = type("LazyPackage", (types.ModuleType,), body)
