"""Images from the daemon's bytes into arrays, with PyAV's codecs (no OpenCV needed): encoded
images and PNG masks, raw frames in the API's pixel formats, raw masks."""

from __future__ import annotations

from typing import Any

import av
import numpy as np

from obscura_client.errors import InvalidInput
from obscura_client.types import ImageArray

# The first bytes of each encoded format the API carries -> PyAV's decoder.
_SIGNATURES = (
    (b"\xff\xd8\xff", "mjpeg"),
    (b"\x89PNG\r\n\x1a\n", "png"),
    (b"BM", "bmp"),
)


def _decoder(data: bytes) -> str:
    for magic, codec in _SIGNATURES:
        if data.startswith(magic):
            return codec
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "webp"
    raise InvalidInput("not a JPEG, PNG, WebP or BMP image")


def _decode(data: bytes, pixel_format: str) -> ImageArray:
    codec = _decoder(data)
    context: Any = av.CodecContext.create(codec, "r")  # a decoder: .decode() is there
    try:
        frames = [*context.decode(av.Packet(data)), *context.decode(None)]
    except av.FFmpegError as exc:
        raise InvalidInput(f"a corrupt {codec} image: {exc}") from None
    if not frames:
        raise InvalidInput(f"a corrupt {codec} image: no picture in it")
    return np.ascontiguousarray(frames[0].to_ndarray(format=pixel_format), dtype=np.uint8)


def decode_image(data: bytes) -> ImageArray:
    """An encoded image (JPEG, PNG, WebP, BMP) as (H, W, 3) BGR."""
    return _decode(data, "bgr24")


def decode_mask_png(data: bytes, *, rgb: bool) -> ImageArray:
    """A mask PNG as (H, W) grey, or (H, W, 3) RGB for an instance mask."""
    return _decode(data, "rgb24" if rgb else "gray")


def raw_pixels(data: bytes, width: int, height: int, pixel_format: str) -> ImageArray:
    """A raw frame of the API (bgr24, rgb24, nv12, gray8) as (H, W, 3) BGR."""
    sizes = {"bgr24": 3 * width * height, "rgb24": 3 * width * height, "gray8": width * height}
    expected = sizes.get(pixel_format, width * height * 3 // 2)
    if len(data) != expected:
        raise InvalidInput(
            f"a {width}x{height} {pixel_format} frame needs {expected} bytes, got {len(data)}"
        )
    flat = np.frombuffer(data, np.uint8)
    if pixel_format == "bgr24":
        return flat.reshape(height, width, 3)
    if pixel_format == "rgb24":
        return np.ascontiguousarray(flat.reshape(height, width, 3)[:, :, ::-1])
    if pixel_format == "gray8":
        return np.ascontiguousarray(np.repeat(flat.reshape(height, width, 1), 3, axis=2))
    if pixel_format == "nv12":
        frame = av.VideoFrame.from_ndarray(flat.reshape(height * 3 // 2, width), format="nv12")
        return np.ascontiguousarray(frame.to_ndarray(format="bgr24"), dtype=np.uint8)
    raise InvalidInput(f"unknown pixel format {pixel_format!r} (bgr24, rgb24, nv12, gray8)")


def raw_mask(data: bytes, width: int, height: int, *, rgb: bool) -> ImageArray:
    """A raw mask of the API: (H, W) uint8, or (H, W, 3) RGB for an instance mask."""
    channels = 3 if rgb else 1
    if len(data) != width * height * channels:
        raise InvalidInput(
            f"a {width}x{height} mask of {channels} channel(s) needs "
            f"{width * height * channels} bytes, got {len(data)}"
        )
    flat = np.frombuffer(data, np.uint8)
    return flat.reshape(height, width, 3) if rgb else flat.reshape(height, width)


def resize(image: ImageArray, width: int, height: int) -> ImageArray:
    """A BGR image scaled to ``width`` x ``height`` (area averaging, as for thumbnails)."""
    frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(image), format="bgr24")
    scaled = frame.reformat(width=width, height=height, interpolation="AREA")
    return np.ascontiguousarray(scaled.to_ndarray(format="bgr24"), dtype=np.uint8)
