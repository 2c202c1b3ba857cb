"""Ultralytics YOLOv8-style detectors (also YOLOv9/v10/11 exported the same way).

``yolov8``: one output ``[1, 4 + C, N]``: per candidate (cx, cy, w, h) in input pixels, then C
class scores (already sigmoided, no objectness). Some exports are transposed to
``[1, N, 4 + C]``; the layout is read from the shape.

``yolov8-seg``: the same with M mask coefficients after the class scores, ``[1, 4 + C + M, N]``,
and mask prototypes ``[1, M, H/4, W/4]``. A detection's mask is sigmoid(coefficients @
prototypes), sampled only inside its box at image resolution and thresholded at 0.5.

Input: RGB 0..1, letterboxed centred with grey (114) padding.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TypeVar

import cv2
import numpy as np

from obscura.backends import ImageInput, InferenceModel
from obscura.errors import ConfigError
from obscura.models.base import (
    AdapterConfig,
    Letterbox,
    ModelAdapter,
    Tensor,
    batched_nms,
    letterbox,
)
from obscura.models.prep import check_input_size
from obscura.models.registry import register_family
from obscura.types import BoxMask, Detections, FloatArray, ImageArray, IntArray

PAD_VALUE = 114
MASK_THRESHOLD = 0.5


@dataclass(frozen=True)
class YOLOv8Config(AdapterConfig):
    input_size: tuple[int, int] = (640, 640)
    score_threshold: float = 0.25
    nms_iou: float = 0.45
    # Number of classes; 0 infers it from the output shape (the smaller of its two sides).
    num_classes: int = 0

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.num_classes < 0:
            raise ConfigError(f"num_classes must be >= 0, got {self.num_classes}")


@dataclass(frozen=True)
class YOLOv8SegConfig(YOLOv8Config):
    mask_threshold: float = MASK_THRESHOLD

    def __post_init__(self) -> None:
        super().__post_init__()
        if not 0.0 < self.mask_threshold < 1.0:
            raise ConfigError(f"mask_threshold must be in (0, 1), got {self.mask_threshold}")


def candidates(output: Tensor, num_classes: int, num_extra: int = 0) -> Tensor:
    """The ``[1, 4 + C + extra, N]`` or ``[1, N, 4 + C + extra]`` output as ``[N, F]`` rows.

    With ``num_classes`` 0 the feature side is taken to be the shorter one.
    """
    if output.ndim != 3 or output.shape[0] != 1:
        raise ValueError(f"yolov8 expects a [1, 4+C, N] output, got {output.shape}")
    a, b = output.shape[1], output.shape[2]
    if num_classes:
        features = 4 + num_classes + num_extra
        if a == features:
            transposed = False
        elif b == features:
            transposed = True
        else:
            raise ValueError(
                f"yolov8: output {output.shape} has no side of 4 + {num_classes} classes"
                + (f" + {num_extra} mask coefficients" if num_extra else "")
                + f" = {features}; check num_classes"
            )
    else:
        transposed = b < a
        if min(a, b) <= 4 + num_extra:
            raise ValueError(f"yolov8: output {output.shape} has no class scores")
    rows = output[0] if transposed else output[0].T
    return np.asarray(rows, dtype=np.float32)


C = TypeVar("C", bound=YOLOv8Config)


class _YOLOv8Base(ModelAdapter[C]):
    batchable = True

    def __init__(self, model: InferenceModel, config: C) -> None:
        super().__init__(model, config)
        if not config.fit_aspect:
            check_input_size(model, config.input_size, self.family)

    @classmethod
    def image_input(cls, config: C) -> ImageInput:
        return ImageInput(rgb=True, scale=(255.0, 255.0, 255.0))

    def preprocess(self, image: ImageArray) -> tuple[dict[str, ImageArray], Letterbox]:
        size = self.input_size_for(image)
        canvas, meta = letterbox(image, size, center=True, pad_value=PAD_VALUE)
        return {self.input_name: canvas[None]}, meta

    def _candidates(
        self, rows: Tensor, num_classes: int
    ) -> tuple[FloatArray, FloatArray, IntArray, Tensor]:
        """Boxes (input pixels), best score, class and the rest of each row above threshold."""
        class_scores = rows[:, 4 : 4 + num_classes]
        class_ids = np.argmax(class_scores, axis=1).astype(np.int32)
        scores = np.take_along_axis(class_scores, class_ids[:, None], axis=1)[:, 0]
        keep = np.flatnonzero(scores >= self.config.score_threshold)
        rows, scores, class_ids = rows[keep], scores[keep].astype(np.float32), class_ids[keep]
        half = rows[:, 2:4] / 2
        xyxy = np.concatenate([rows[:, :2] - half, rows[:, :2] + half], axis=1)
        return xyxy.astype(np.float32), scores, class_ids, rows[:, 4 + num_classes :]


@register_family
class YOLOv8Adapter(_YOLOv8Base[YOLOv8Config]):
    """Ultralytics detection exports: ``[1, 4 + C, N]`` (or transposed)."""

    family = "yolov8"
    config_type = YOLOv8Config

    def postprocess(self, outputs: list[Tensor], meta: Letterbox) -> Detections:
        ranked = [o for o in outputs if o.ndim == 3]
        if len(ranked) != 1:
            shapes = [o.shape for o in outputs]
            raise ValueError(f"yolov8 expects one [1, 4+C, N] output, got {shapes}")
        rows = candidates(ranked[0], self.config.num_classes)
        xyxy, scores, class_ids, _ = self._candidates(rows, rows.shape[1] - 4)
        return self._finish(xyxy, scores, class_ids, meta)


@register_family
class YOLOv8SegAdapter(_YOLOv8Base[YOLOv8SegConfig]):
    """Ultralytics instance segmentation exports: detections with mask coefficients and
    mask prototypes; every detection carries a box-local :class:`BoxMask`."""

    family = "yolov8-seg"
    config_type = YOLOv8SegConfig

    def postprocess(self, outputs: list[Tensor], meta: Letterbox) -> Detections:
        preds = [o for o in outputs if o.ndim == 3]
        protos = [o for o in outputs if o.ndim == 4]
        if len(preds) != 1 or len(protos) != 1 or protos[0].shape[0] != 1:
            shapes = [o.shape for o in outputs]
            raise ValueError(
                f"yolov8-seg expects detections [1, 4+C+M, N] and prototypes [1, M, H, W], "
                f"got {shapes}"
            )
        proto = protos[0][0]
        num_masks = proto.shape[0]
        rows = candidates(preds[0], self.config.num_classes, num_masks)
        num_classes = rows.shape[1] - 4 - num_masks
        xyxy, scores, class_ids, coeffs = self._candidates(rows, num_classes)
        kept = batched_nms(xyxy, scores, class_ids, self.config.nms_iou, self.config.max_detections)
        boxes = meta.to_image(xyxy[kept])
        nonempty = (boxes[:, 2] - boxes[:, 0] >= 1) & (boxes[:, 3] - boxes[:, 1] >= 1)
        kept, boxes = kept[nonempty], boxes[nonempty]
        masks = [
            box_mask(proto, coeffs[i], box, meta, self.config.mask_threshold)
            for i, box in zip(kept, boxes, strict=True)
        ]
        return Detections(boxes, scores[kept], class_ids[kept], tuple(masks))


def box_mask(
    proto: Tensor,
    coeffs: Tensor,
    box: FloatArray,
    meta: Letterbox,
    threshold: float = MASK_THRESHOLD,
) -> BoxMask:
    """One detection's mask over the image pixels its box touches.

    The prototypes are combined only over the window of prototype cells under the box (plus
    one cell of margin for interpolation), and the sigmoid is sampled bilinearly at the
    centre of every image pixel of the box.
    """
    num, proto_h, proto_w = proto.shape
    x0 = max(0, math.floor(box[0]))
    y0 = max(0, math.floor(box[1]))
    x1 = min(meta.image_w, math.ceil(box[2]))
    y1 = min(meta.image_h, math.ceil(box[3]))
    width, height = max(1, x1 - x0), max(1, y1 - y0)
    # Image pixel centre u + 0.5 -> input (u + 0.5) * scale + pad -> prototype index space.
    fx, fy = proto_w / meta.input_w, proto_h / meta.input_h
    ax, ay = meta.scale * fx, meta.scale * fy
    bx = (x0 + 0.5) * ax + meta.pad_x * fx - 0.5
    by = (y0 + 0.5) * ay + meta.pad_y * fy - 0.5
    # The prototype window the samples fall in, one cell wider on each side.
    wx0 = max(0, math.floor(bx) - 1)
    wy0 = max(0, math.floor(by) - 1)
    wx1 = min(proto_w, math.ceil(bx + ax * (width - 1)) + 2)
    wy1 = min(proto_h, math.ceil(by + ay * (height - 1)) + 2)
    if wx1 <= wx0 or wy1 <= wy0:
        return BoxMask(x0, y0, np.zeros((height, width), dtype=np.bool_))
    window = proto[:, wy0:wy1, wx0:wx1].reshape(num, -1)
    logits = (coeffs.astype(np.float32) @ window).reshape(wy1 - wy0, wx1 - wx0)
    prob = (1.0 / (1.0 + np.exp(-logits))).astype(np.float32)
    warp = np.asarray([[ax, 0.0, bx - wx0], [0.0, ay, by - wy0]], dtype=np.float32)
    sampled = cv2.warpAffine(
        prob,
        warp,
        (width, height),
        flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP,
        borderMode=cv2.BORDER_REPLICATE,
    )
    return BoxMask(x0, y0, np.asarray(sampled > threshold, dtype=np.bool_))
