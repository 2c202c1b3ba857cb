"""The four object classes of the API (labels and class codes), and the image array type."""

from __future__ import annotations

import enum

import numpy as np
from numpy.typing import NDArray

ImageArray = NDArray[np.uint8]  # (H, W, 3) BGR or (H, W) grey


class ObjectClass(enum.IntEnum):
    """The four classes Obscura knows. The value is the class code (R in the instance mask)."""

    LICENSE_PLATE = 64
    PERSON = 128
    FACE = 192
    VEHICLE = 255

    @property
    def label(self) -> str:
        return _LABELS[self]

    @property
    def draw_order(self) -> int:
        """Later draw order wins a pixel where objects overlap (face on top)."""
        return _DRAW_ORDER[self]

    @classmethod
    def from_label(cls, label: str) -> ObjectClass:
        for member, name in _LABELS.items():
            if name == label:
                return member
        known = ", ".join(_LABELS.values())
        raise ValueError(f"unknown class {label!r} (known: {known})")


_LABELS = {
    ObjectClass.LICENSE_PLATE: "license-plate",
    ObjectClass.PERSON: "person",
    ObjectClass.FACE: "face",
    ObjectClass.VEHICLE: "vehicle",
}
_DRAW_ORDER = {
    ObjectClass.VEHICLE: 1,
    ObjectClass.PERSON: 2,
    ObjectClass.LICENSE_PLATE: 3,
    ObjectClass.FACE: 4,
}
