"""SSL methods, by name, without importing torch until a method is used.

The built-in methods (vicreg, simclr, barlow_twins, byol, dino and the supervised baseline)
are described torch-free in `catalog.py`; `info(name)` reads that, so a config can be
checked when the Snakefile is parsed. `get(name)` returns the method's class, importing its
module (and torch) on first use. A method of your own is a `Method` subclass in a file named
by train.method_modules, registered with `@register` (see base.py).
"""

from __future__ import annotations

import importlib
import importlib.util
import sys
from pathlib import Path

from .catalog import BUILT_IN, MethodInfo, check_settings

METHODS: dict[str, type] = {}  # registered classes: built-ins once imported, user methods
USER_PREFIX = "dejavu_user_method_"
_BASE = ("Method", "TwoViewMethod", "LossFunctionMethod", "Progress")


def register(cls: type) -> type:
    """Class decorator: make a method available under `cls.name` (train.methods)."""
    if not getattr(cls, "name", ""):
        raise ValueError(f"{cls.__qualname__} needs a `name`")
    METHODS[cls.name] = cls
    return cls


def load_modules(paths: list[str]) -> None:
    """Import user method files (train.method_modules); each registers its methods."""
    for path in paths:
        path = Path(path).resolve()
        if not path.exists():
            raise FileNotFoundError(f"method module {path} does not exist")
        name = f"{USER_PREFIX}{path.stem}"
        spec = importlib.util.spec_from_file_location(name, path)
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        spec.loader.exec_module(module)


def names() -> list[str]:
    """Every method a config may name: the built-ins and those registered so far."""
    return sorted(set(BUILT_IN) | set(METHODS))


def info(name: str):
    """A method's settings side (options, augment, check): the torch-free catalog entry of
    a built-in method, the class of a registered one."""
    if name in METHODS:
        return METHODS[name]
    if name in BUILT_IN:
        return BUILT_IN[name]
    raise ValueError(f"unknown method {name!r}; known: {names()} (a method of your own is "
                     f"registered from train.method_modules)")


def scoring_mask(name: str, options: dict) -> float:
    """The share of patches SSLMem's views of a `name` encoder hide: its training mask
    ratio for a masked autoencoder (the option its `scoring_mask` names), else 0."""
    method = info(name)
    key = getattr(method, "scoring_mask", "")
    return float(options.get(key, method.options[key])) if key else 0.0


def get(name: str) -> type:
    """The class of method `name`, importing a built-in method's module on first use."""
    if name not in METHODS and name in BUILT_IN:
        importlib.import_module(f"{__name__}.{name}")
    info(name)  # raises for an unknown name
    return METHODS[name]


def source_file(name: str) -> str | None:
    """The user module a method was registered from (None for built-in methods)."""
    cls = METHODS.get(name)
    module = sys.modules.get(cls.__module__) if cls is not None else None
    if module is None or not module.__name__.startswith(USER_PREFIX):
        return None
    return getattr(module, "__file__", None)


def __getattr__(attribute: str):
    """`from dejavu.training.methods import Method, TwoViewMethod, ...` loads base.py (torch)."""
    if attribute in _BASE:
        return getattr(importlib.import_module(f"{__name__}.base"), attribute)
    raise AttributeError(f"module {__name__!r} has no attribute {attribute!r}")


__all__ = ["BUILT_IN", "METHODS", "MethodInfo", "check_settings", "get", "info",
           "load_modules", "names", "register", "scoring_mask", "source_file", *_BASE]
