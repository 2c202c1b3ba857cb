"""Which adapter class decodes which output family."""

from __future__ import annotations

import importlib
from typing import Any, TypeVar

from obscura.errors import ConfigError
from obscura.models.base import ModelAdapter

_FAMILIES: dict[str, type[ModelAdapter[Any]]] = {}

A = TypeVar("A", bound=type[ModelAdapter[Any]])


def register_family(cls: A) -> A:
    """Class decorator: makes ``cls`` the adapter for ``cls.family``."""
    if cls.family in _FAMILIES:
        raise RuntimeError(f"family {cls.family!r} registered twice")
    _FAMILIES[cls.family] = cls
    return cls


def adapter_class(family: str) -> type[ModelAdapter[Any]]:
    _load_builtin_families()
    try:
        return _FAMILIES[family]
    except KeyError:
        known = ", ".join(sorted(_FAMILIES))
        raise ConfigError(f"unknown model family {family!r} (known: {known})") from None


_BUILTIN = ("centerface", "retinaface", "nanodet", "scrfd", "ssd", "ssd_tflite", "yolov8")


def _load_builtin_families() -> None:
    """Imports the built-in adapter modules; each registers its families on import."""
    for module in _BUILTIN:
        importlib.import_module(f"obscura.models.{module}")
