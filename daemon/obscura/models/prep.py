"""Input preparation shared by the bring-your-own-weights families.

Plain (stretching) resizes with their per-axis mapping back to the image, channel order and
normalisation, NHWC inputs (TFLite models) and checks of a model's static input size.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import cv2
import numpy as np

from obscura.backends import InferenceModel
from obscura.errors import ConfigError
from obscura.models.base import Letterbox, Tensor, letterbox
from obscura.types import FloatArray, ImageArray

ChannelOrder = Literal["bgr", "rgb"]
ResizeMode = Literal["stretch", "letterbox"]


@dataclass(frozen=True)
class StretchBox(Letterbox):
    """A plain resize to the input size: ``scale`` is the x scale, ``scale_y`` the y scale."""

    scale_y: float = 1.0

    def to_image(self, xyxy: FloatArray) -> FloatArray:
        out = xyxy.astype(np.float32, copy=True)
        out[:, [0, 2]] /= self.scale
        out[:, [1, 3]] /= self.scale_y
        np.clip(out[:, [0, 2]], 0, self.image_w, out=out[:, [0, 2]])
        np.clip(out[:, [1, 3]], 0, self.image_h, out=out[:, [1, 3]])
        return out


def stretch(image: ImageArray, size: tuple[int, int]) -> tuple[ImageArray, StretchBox]:
    """Resizes ``image`` to exactly ``size`` (w, h), ignoring its aspect ratio."""
    h, w = image.shape[:2]
    in_w, in_h = size
    sx, sy = in_w / w, in_h / h
    interp = cv2.INTER_AREA if sx < 1 and sy < 1 else cv2.INTER_LINEAR
    resized = cv2.resize(image, (in_w, in_h), interpolation=interp)
    return np.asarray(resized, dtype=np.uint8), StretchBox(sx, 0, 0, w, h, in_w, in_h, sy)


def image_tensor(
    image: ImageArray,
    *,
    order: ChannelOrder,
    mean: tuple[float, float, float],
    scale: tuple[float, float, float],
    channels_last: bool = False,
) -> Tensor:
    """HWC uint8 BGR to a float32 batch of one, ``(pixel - mean) / scale`` per channel.

    ``mean`` and ``scale`` are given in the model's channel ``order``.
    """
    pixels = image[..., ::-1] if order == "rgb" else image
    tensor = (pixels.astype(np.float32) - np.asarray(mean, np.float32)) / np.asarray(
        scale, np.float32
    )
    if not channels_last:
        tensor = tensor.transpose(2, 0, 1)
    return np.ascontiguousarray(tensor[None], dtype=np.float32)


def resize_and_normalise(
    image: ImageArray,
    size: tuple[int, int],
    *,
    resize: ResizeMode,
    order: ChannelOrder,
    mean: tuple[float, float, float],
    scale: tuple[float, float, float],
    channels_last: bool = False,
) -> tuple[Tensor, Letterbox]:
    """Stretches or letterboxes ``image`` into ``size``, then builds the normalised tensor."""
    canvas: ImageArray
    meta: Letterbox
    if resize == "stretch":
        canvas, meta = stretch(image, size)
    else:
        canvas, meta = letterbox(image, size)
    tensor = image_tensor(canvas, order=order, mean=mean, scale=scale, channels_last=channels_last)
    return tensor, meta


def input_is_nhwc(model: InferenceModel) -> bool:
    """Whether the model's first input is laid out NHWC (1 or 3 channels last)."""
    shape = model.inputs[0].shape
    return len(shape) == 4 and shape[3] in (1, 3) and shape[1] not in (1, 3)


def check_input_size(model: InferenceModel, size: tuple[int, int], family: str) -> None:
    """Raises ConfigError when the model has a static input size other than ``size`` (w, h)."""
    shape = model.inputs[0].shape
    if len(shape) != 4:
        return
    h, w = (shape[1], shape[2]) if input_is_nhwc(model) else (shape[2], shape[3])
    if h > 0 and w > 0 and (w, h) != tuple(size):
        raise ConfigError(
            f"{family}: model {model.name!r} takes {w}x{h} inputs but input_size is "
            f"{size[0]}x{size[1]}; set input_size = [{w}, {h}]"
        )


def check_preprocessing(
    layout: str, resize: str, scale: tuple[float, float, float], family: str
) -> None:
    """Raises ConfigError naming a bad channel order, resize mode or normalisation scale."""
    if layout not in ("bgr", "rgb"):
        raise ConfigError(f"{family}: layout must be bgr or rgb, not {layout!r}")
    if resize not in ("stretch", "letterbox"):
        raise ConfigError(f"{family}: resize must be stretch or letterbox, not {resize!r}")
    if len(scale) != 3 or any(s == 0 for s in scale):
        raise ConfigError(f"{family}: scale must be three non-zero numbers, got {scale}")
