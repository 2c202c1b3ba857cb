"""Which adapter class decodes which output family."""

from __future__ import annotations

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


def families() -> list[str]:
    _load_builtin_families()
    return sorted(_FAMILIES)


def _load_builtin_families() -> None:
    # Imported for their registration side effect.
    from obscura.models import (  # noqa: F401
        centerface,
        nanodet,
        retinaface,
        ssd,
        ssd_tflite,
        yolov8,
    )
