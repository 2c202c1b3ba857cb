"""Reading and writing images: files and bytes to the BGR uint8 arrays the pipeline takes."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from obscura.errors import InvalidInput
from obscura.types import ImageArray

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


# --- bytes in memory (the daemon) ------------------------------------------------------------
def probe_image(data: bytes) -> tuple[str, int, int]:
    """(format, width, height) from an encoded image's header, without decoding it, so that a
    decompression bomb is refused before any pixel is allocated."""
    if data.startswith(b"\x89PNG\r\n\x1a\n"):
        if len(data) < 24 or data[12:16] != b"IHDR":
            raise InvalidInput("truncated PNG: no IHDR header")
        return "png", int.from_bytes(data[16:20], "big"), int.from_bytes(data[20:24], "big")
    if data.startswith(b"\xff\xd8"):
        return ("jpeg", *_jpeg_size(data))
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return ("webp", *_webp_size(data))
    if data.startswith(b"BM"):
        if len(data) < 26:
            raise InvalidInput("truncated BMP: no header")
        width = int.from_bytes(data[18:22], "little", signed=True)
        height = int.from_bytes(data[22:26], "little", signed=True)
        return "bmp", abs(width), abs(height)
    raise InvalidInput("not a JPEG, PNG, WebP or BMP image (unknown signature)")


def _jpeg_size(data: bytes) -> tuple[int, int]:
    pos = 2
    while pos + 4 <= len(data):
        if data[pos] != 0xFF:
            raise InvalidInput(f"corrupt JPEG: no marker at byte {pos}")
        marker = data[pos + 1]
        if marker == 0xFF:  # fill byte
            pos += 1
            continue
        if marker in (0xD8, 0x01) or 0xD0 <= marker <= 0xD7:
            pos += 2
            continue
        length = int.from_bytes(data[pos + 2 : pos + 4], "big")
        # Start of frame: baseline, progressive, lossless, arithmetic (not DHT C4, JPG C8, DAC CC).
        if 0xC0 <= marker <= 0xCF and marker not in (0xC4, 0xC8, 0xCC):
            if pos + 9 > len(data):
                break
            height = int.from_bytes(data[pos + 5 : pos + 7], "big")
            width = int.from_bytes(data[pos + 7 : pos + 9], "big")
            return width, height
        if marker == 0xDA or length < 2:
            break
        pos += 2 + length
    raise InvalidInput("truncated or corrupt JPEG: no frame header before the image data")


def _webp_size(data: bytes) -> tuple[int, int]:
    chunk = data[12:16]
    if chunk == b"VP8 " and len(data) >= 30:
        return (
            int.from_bytes(data[26:28], "little") & 0x3FFF,
            int.from_bytes(data[28:30], "little") & 0x3FFF,
        )
    if chunk == b"VP8L" and len(data) >= 25:
        bits = int.from_bytes(data[21:25], "little")
        return (bits & 0x3FFF) + 1, ((bits >> 14) & 0x3FFF) + 1
    if chunk == b"VP8X" and len(data) >= 30:
        return (
            int.from_bytes(data[24:27], "little") + 1,
            int.from_bytes(data[27:30], "little") + 1,
        )
    raise InvalidInput("truncated or unsupported WebP header")


def decode_image(data: bytes, max_pixels: int) -> tuple[str, ImageArray]:
    """Decodes an encoded image to BGR after checking its declared size against ``max_pixels``."""
    if not data:
        raise InvalidInput("empty image")
    fmt, width, height = probe_image(data)
    if width < 1 or height < 1:
        raise InvalidInput(f"{fmt} image declares an empty size {width}x{height}")
    if width * height > max_pixels:
        raise InvalidInput(
            f"{fmt} image of {width}x{height} = {width * height} pixels exceeds the limit of "
            f"{max_pixels} pixels"
        )
    decoded = cv2.imdecode(np.frombuffer(data, dtype=np.uint8), cv2.IMREAD_COLOR)
    if decoded is None:
        raise InvalidInput(f"corrupt or truncated {fmt} image: it does not decode")
    if decoded.shape[1] != width or decoded.shape[0] != height:
        raise InvalidInput(
            f"{fmt} image decodes to {decoded.shape[1]}x{decoded.shape[0]}, "
            f"its header says {width}x{height}"
        )
    return fmt, np.asarray(decoded, dtype=np.uint8)


RAW_PIXEL_FORMATS = ("bgr24", "rgb24", "nv12", "gray8")


def raw_size(width: int, height: int, pixel_format: str) -> int:
    if pixel_format in ("bgr24", "rgb24"):
        return width * height * 3
    if pixel_format == "gray8":
        return width * height
    if pixel_format == "nv12":
        return width * height * 3 // 2
    raise InvalidInput(
        f"unknown pixel format {pixel_format!r} (known: {', '.join(RAW_PIXEL_FORMATS)})"
    )


def raw_to_bgr(
    data: bytes, width: int, height: int, pixel_format: str, max_pixels: int
) -> ImageArray:
    """A packed raw frame to BGR; the byte count must match width x height x format exactly."""
    if width < 1 or height < 1:
        raise InvalidInput(f"raw frame size {width}x{height} is empty")
    if width * height > max_pixels:
        raise InvalidInput(
            f"raw frame of {width}x{height} = {width * height} pixels exceeds the limit of "
            f"{max_pixels} pixels"
        )
    if pixel_format == "nv12" and (width % 2 or height % 2):
        raise InvalidInput(f"nv12 frames need even width and height, got {width}x{height}")
    expected = raw_size(width, height, pixel_format)
    if len(data) != expected:
        raise InvalidInput(
            f"raw {pixel_format} frame of {width}x{height} needs {expected} bytes, got {len(data)}"
        )
    buf = np.frombuffer(data, dtype=np.uint8)
    if pixel_format == "bgr24":
        return buf.reshape(height, width, 3).copy()
    if pixel_format == "rgb24":
        return np.ascontiguousarray(buf.reshape(height, width, 3)[:, :, ::-1])
    if pixel_format == "gray8":
        return np.asarray(cv2.cvtColor(buf.reshape(height, width), cv2.COLOR_GRAY2BGR))
    return np.asarray(cv2.cvtColor(buf.reshape(height * 3 // 2, width), cv2.COLOR_YUV2BGR_NV12))


def bgr_to_raw(image: ImageArray, pixel_format: str) -> bytes:
    """BGR to a packed raw frame of ``pixel_format``."""
    if pixel_format == "bgr24":
        return image.tobytes()
    if pixel_format == "rgb24":
        return np.ascontiguousarray(image[:, :, ::-1]).tobytes()
    if pixel_format == "gray8":
        return bytes(cv2.cvtColor(image, cv2.COLOR_BGR2GRAY).tobytes())
    if pixel_format == "nv12":
        h, w = image.shape[:2]
        i420 = cv2.cvtColor(image, cv2.COLOR_BGR2YUV_I420).reshape(-1)
        y, u, v = i420[: h * w], i420[h * w : h * w * 5 // 4], i420[h * w * 5 // 4 :]
        uv = np.empty(h * w // 2, dtype=np.uint8)
        uv[0::2], uv[1::2] = u, v
        return y.tobytes() + uv.tobytes()
    raise InvalidInput(
        f"unknown pixel format {pixel_format!r} (known: {', '.join(RAW_PIXEL_FORMATS)})"
    )
