"""Person pixel masks: a selfie-segmentation model run on crops around person boxes.

The model (MediaPipe selfie segmentation, converted by :mod:`obscura.zoo.tflite`) takes RGB
``float32`` in 0..1, NHWC, and returns a per-pixel person probability, NHWC with one channel.
Each crop is letterboxed into the model input (kept aspect ratio, centred, mid-grey padding)
and the probability map of the crop's part is resized back to the crop's own size. On real
photos, letterboxing kept heads, hats and boots in the mask that stretching a tall person
crop to the square input lost.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Self

import cv2
import numpy as np

from obscura.backends import ImageInput, InferenceModel
from obscura.errors import ConfigError
from obscura.models.base import letterbox
from obscura.types import BoxMask, FloatArray, ImageArray

_PAD_VALUE = 128  # letterbox padding: mid-grey bled less into masks than black on real photos
# RGB in 0..1, NHWC: load the model with this (the backend converts BGR uint8 crops).
IMAGE_INPUT = ImageInput(rgb=True, scale=(255.0, 255.0, 255.0), channels_last=True)


@dataclass(frozen=True)
class SegmentationConfig:
    """How person crops are segmented."""

    input_size: tuple[int, int] = (256, 256)  # (width, height) of the model input
    threshold: float = 0.5  # probability at or above which a pixel is the person's
    crop_padding: float = 0.15  # fraction of the box size added on each side of the crop
    max_batch: int = 8  # crops per inference (for a model with a dynamic batch dimension)
    # A mask covering less than this fraction of its box is replaced by the full box.
    min_coverage: float = 0.05
    # Letterbox crops into the input (True) or stretch them to it (False).
    keep_aspect: bool = True

    def __post_init__(self) -> None:
        w, h = self.input_size
        if w <= 0 or h <= 0:
            raise ConfigError(f"input_size must be positive, got {self.input_size}")
        if not 0.0 <= self.threshold <= 1.0:
            raise ConfigError(f"threshold must be in 0..1, got {self.threshold}")
        if self.crop_padding < 0.0:
            raise ConfigError(f"crop_padding must be >= 0, got {self.crop_padding}")
        if self.max_batch < 1:
            raise ConfigError(f"max_batch must be >= 1, got {self.max_batch}")
        if not 0.0 <= self.min_coverage <= 1.0:
            raise ConfigError(f"min_coverage must be in 0..1, got {self.min_coverage}")

    @classmethod
    def from_mapping(cls, values: Mapping[str, Any]) -> Self:
        """Builds the config from TOML-like values; unknown keys are an error that names them."""
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise ConfigError(
                f"unknown option(s) {', '.join(unknown)} for {cls.__name__} "
                f"(known: {', '.join(sorted(known))})"
            )
        converted: dict[str, Any] = {
            k: tuple(v) if isinstance(v, list) else v for k, v in values.items()
        }
        return cls(**converted)


@dataclass(frozen=True)
class _Region:
    """Integer pixel rectangle [x1, x2) x [y1, y2) of an image."""

    x1: int
    y1: int
    x2: int
    y2: int

    @property
    def empty(self) -> bool:
        return self.x2 <= self.x1 or self.y2 <= self.y1


def _clipped(box: tuple[float, float, float, float], width: int, height: int) -> _Region:
    """The smallest integer rectangle holding the box (x1, y1, x2, y2), clipped to the image."""
    x1, y1, x2, y2 = box
    return _Region(
        max(0, math.floor(x1)),
        max(0, math.floor(y1)),
        min(width, math.ceil(x2)),
        min(height, math.ceil(y2)),
    )


class SegmentationAdapter:
    """Runs the segmentation model on person crops and turns its output into box masks."""

    def __init__(self, model: InferenceModel, config: SegmentationConfig | None = None) -> None:
        self.model = model
        self.config = config or SegmentationConfig()
        info = model.inputs[0]
        self.input_name = info.name
        if len(info.shape) != 4:
            raise ConfigError(f"{model.name}: expected an NHWC input, got shape {info.shape}")
        model_h, model_w = info.shape[1], info.shape[2]
        want_w, want_h = self.config.input_size
        if (model_w not in (-1, want_w)) or (model_h not in (-1, want_h)):
            raise ConfigError(
                f"{model.name}: input_size {self.config.input_size} does not match the model "
                f"input {model_w}x{model_h}"
            )
        if model.image_input != IMAGE_INPUT:
            raise ConfigError(f"{model.name}: load the segmentation model with {IMAGE_INPUT}")
        # A dynamic batch takes up to max_batch crops at once; a static one exactly its size.
        self._static_batch = info.shape[0] if info.shape[0] > 0 else 0
        self._batch = self._static_batch or self.config.max_batch

    def segment(self, crops: Sequence[ImageArray]) -> list[FloatArray]:
        """Person probability maps (0..1) of BGR ``uint8`` crops, each at its crop's size.

        Crops run in batches of up to ``max_batch`` (one inference per batch when the model's
        batch dimension is dynamic).
        """
        maps: list[FloatArray] = []
        for start in range(0, len(crops), self._batch):
            chunk = crops[start : start + self._batch]
            prepared = [self._prepare(c) for c in chunk]
            probs = self._infer(np.stack([tensor for tensor, _ in prepared]))
            for crop, (_, shown), prob in zip(chunk, prepared, probs, strict=True):
                maps.append(_restore(prob, shown, (crop.shape[1], crop.shape[0])))
        return maps

    def person_masks(self, image: ImageArray, xyxy: FloatArray) -> list[BoxMask | None]:
        """One mask per person box (x1, y1, x2, y2 in image pixels), covering the box exactly.

        The mask's origin is (floor(x1), floor(y1)) and it reaches (ceil(x2), ceil(y2)), clipped
        to the image; a box with nothing left inside the image gets ``None``. The model sees
        the box padded by ``crop_padding`` on each side (context helps it), and the mask is
        its thresholded output inside the box.

        Recall comes first: a person that the detector found must still be hidden when the
        segmentation misses it, so a mask covering less than ``min_coverage`` of its box (an
        unusual pose, a tiny or blurred person) is replaced by the full box.
        """
        height, width = image.shape[:2]
        pad = self.config.crop_padding
        boxes: list[_Region] = []
        crops: list[_Region] = []
        for x1, y1, x2, y2 in np.asarray(xyxy, dtype=np.float64).reshape(-1, 4):
            px, py = pad * max(x2 - x1, 0.0), pad * max(y2 - y1, 0.0)
            boxes.append(_clipped((x1, y1, x2, y2), width, height))
            crops.append(_clipped((x1 - px, y1 - py, x2 + px, y2 + py), width, height))
        wanted = [i for i, box in enumerate(boxes) if not box.empty]
        maps = self.segment(
            [image[crops[i].y1 : crops[i].y2, crops[i].x1 : crops[i].x2] for i in wanted]
        )
        masks: list[BoxMask | None] = [None] * len(boxes)
        for i, prob in zip(wanted, maps, strict=True):
            box, crop = boxes[i], crops[i]
            inside = prob[box.y1 - crop.y1 : box.y2 - crop.y1, box.x1 - crop.x1 : box.x2 - crop.x1]
            mask = inside >= self.config.threshold
            if mask.mean() < self.config.min_coverage:
                mask = np.ones_like(mask)
            masks[i] = BoxMask(box.x1, box.y1, np.ascontiguousarray(mask))
        return masks

    def _prepare(self, crop: ImageArray) -> tuple[ImageArray, _Region]:
        """A BGR uint8 crop fitted into the model's input size, and the region showing it (the
        backend makes the model's RGB 0..1 input from it: :data:`IMAGE_INPUT`)."""
        h, w = crop.shape[:2]
        in_w, in_h = self.config.input_size
        if self.config.keep_aspect:
            canvas, meta = letterbox(crop, (in_w, in_h), center=True, pad_value=_PAD_VALUE)
            new_w, new_h = max(1, round(w * meta.scale)), max(1, round(h * meta.scale))
            shown = _Region(meta.pad_x, meta.pad_y, meta.pad_x + new_w, meta.pad_y + new_h)
        else:
            interp = cv2.INTER_AREA if w > in_w or h > in_h else cv2.INTER_LINEAR
            canvas = np.asarray(cv2.resize(crop, (in_w, in_h), interpolation=interp), np.uint8)
            shown = _Region(0, 0, in_w, in_h)
        return np.asarray(canvas, dtype=np.uint8), shown

    def _infer(self, batch: ImageArray) -> FloatArray:
        """Runs one batch of BGR crops; returns (n, h, w) probability maps at the model's
        input size."""
        n = batch.shape[0]
        if self._static_batch and n < self._static_batch:
            filler = np.zeros((self._static_batch - n, *batch.shape[1:]), dtype=np.uint8)
            batch = np.concatenate([batch, filler])
        out = np.asarray(self.model.infer({self.input_name: batch})[0], dtype=np.float32)
        w, h = self.config.input_size
        return out[:n].reshape(n, h, w)


def _restore(prob: FloatArray, shown: _Region, size: tuple[int, int]) -> FloatArray:
    """The ``shown`` part of an input-sized probability map, resized to ``size`` (w, h)."""
    part = prob[shown.y1 : shown.y2, shown.x1 : shown.x2]
    resized = cv2.resize(part, size, interpolation=cv2.INTER_LINEAR)
    return np.asarray(resized, dtype=np.float32).reshape(size[1], size[0])
