"""Images as the project's APIs take them: what OpenCV returns, checked and typed.

``cv2.imread`` and ``cv2.imdecode`` return ``None`` for a file they cannot read, and their
arrays (like those of ``cv2.resize`` and the other filters) carry a loose dtype; these helpers
fail the test on either and hand back an :data:`~obscura.types.ImageArray`.
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from obscura.types import ImageArray


def as_image(image: object, what: object = "image") -> ImageArray:
    """``image`` (an OpenCV result) as an 8-bit image; fails on ``None`` or another dtype."""
    assert image is not None, f"{what}: OpenCV could not read it"
    assert isinstance(image, np.ndarray), f"{what}: {type(image).__name__}, not an array"
    assert image.dtype == np.uint8, f"{what}: {image.dtype}, not 8-bit"
    return image


def read_image(path: Path | str, flags: int = cv2.IMREAD_COLOR) -> ImageArray:
    """``cv2.imread(path, flags)`` (IMREAD_COLOR, its default: BGR), checked."""
    return as_image(cv2.imread(str(path), flags), path)


def decode_image(data: bytes, flags: int = cv2.IMREAD_COLOR) -> ImageArray:
    """``cv2.imdecode`` of encoded image bytes (IMREAD_COLOR: BGR), checked."""
    return as_image(cv2.imdecode(np.frombuffer(data, np.uint8), flags), "encoded image")
