"""Reading images from files into the BGR uint8 arrays the pipeline takes."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from obscura.errors import InvalidInput
from obscura.types import ImageArray


def read_image(path: Path) -> ImageArray:
    """Decodes an image file to BGR uint8; a clear error if it is missing or not an image."""
    if not path.is_file():
        raise InvalidInput(f"{path}: no such file")
    decoded = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if decoded is None:
        raise InvalidInput(f"{path}: not a readable image (JPEG, PNG, WebP, BMP, ...)")
    return np.asarray(decoded, dtype=np.uint8)
