"""Reading and writing images: files and bytes to the BGR uint8 arrays the pipeline takes."""

from __future__ import annotations

import os
import secrets
from pathlib import Path

import cv2
import numpy as np

from obscura.errors import InvalidInput
from obscura.types import ImageArray

# File suffix -> the format written for it (outputs keep the input's format).
IMAGE_FORMATS = {
    ".jpg": "jpeg",
    ".jpeg": "jpeg",
    ".jpe": "jpeg",
    ".png": "png",
    ".webp": "webp",
    ".bmp": "bmp",
    ".tif": "tiff",
    ".tiff": "tiff",
}
_CV_SUFFIX = {"jpeg": ".jpg", "png": ".png", "webp": ".webp", "bmp": ".bmp", "tiff": ".tiff"}


def read_image(path: Path) -> ImageArray:
    """Decodes an image file to BGR uint8; a clear error if it is missing or not an image."""
    if not path.is_file():
        raise InvalidInput(f"{path}: no such file")
    decoded = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if decoded is None:
        raise InvalidInput(f"{path}: not a readable image (JPEG, PNG, WebP, BMP, TIFF)")
    return np.asarray(decoded, dtype=np.uint8)


def encode_image(image: ImageArray, fmt: str, quality: int = 90) -> bytes:
    """Encodes BGR uint8 as ``fmt`` (jpeg, png, webp, bmp, tiff); quality for JPEG and WebP."""
    suffix = _CV_SUFFIX.get(fmt)
    if suffix is None:
        raise InvalidInput(f"unknown output format {fmt!r} (known: {', '.join(_CV_SUFFIX)})")
    params: list[int] = []
    if fmt == "jpeg":
        params = [cv2.IMWRITE_JPEG_QUALITY, quality]
    elif fmt == "webp":
        params = [cv2.IMWRITE_WEBP_QUALITY, quality]
    elif fmt == "png":
        params = [cv2.IMWRITE_PNG_COMPRESSION, 3]
    ok, buf = cv2.imencode(suffix, image, params)
    if not ok:
        raise InvalidInput(f"could not encode a {image.shape} image as {fmt}")
    return bytes(buf)


def write_atomic(path: Path, data: bytes) -> None:
    """Writes ``data`` to a temporary file next to ``path`` and renames it into place, so that
    ``path`` is either absent or complete, even if the process dies or the disk fills up."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{secrets.token_hex(4)}.part")
    # O_EXCL: never follow or reuse an existing name; mode 0o666 less the umask, like open().
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
