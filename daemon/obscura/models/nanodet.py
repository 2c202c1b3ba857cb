"""NanoDet (GFL head): per-level sigmoid class scores and 4 x (reg_max + 1) distance bins.

Each level (stride 8, 16, 32) gives, per grid cell in row-major order, the class scores
(sigmoid already applied) and, for each of the left, top, right and bottom sides, a
distribution over ``reg_max + 1`` bins whose expectation times the stride is the distance from
the cell's anchor point to that side. The anchor point is the cell centre
``((x + 0.5) * stride, (y + 0.5) * stride)``: on real photos, boxes decoded around the cell's
top-left corner instead sit about half a stride up and left of the people they frame, with a
clearly lower IoU against hand-drawn boxes."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from obscura.backends import ImageInput
from obscura.errors import ConfigError
from obscura.models.base import AdapterConfig, Letterbox, ModelAdapter, Tensor, letterbox
from obscura.models.registry import register_family
from obscura.types import Detections, FloatArray, ImageArray

# Offset of the anchor point inside its cell, in cells: 0.5 is the cell centre.
CELL_OFFSET = 0.5


@dataclass(frozen=True)
class NanoDetConfig(AdapterConfig):
    input_size: tuple[int, int] = (416, 416)
    score_threshold: float = 0.35
    nms_iou: float = 0.5
    strides: tuple[int, ...] = (8, 16, 32)
    reg_max: int = 10
    mean: tuple[float, float, float] = (103.53, 116.28, 123.675)  # BGR
    std: tuple[float, float, float] = (57.375, 57.12, 58.395)  # BGR
    # False: each anchor keeps its best class; True: every class scoring above the threshold.
    multi_label: bool = False

    def __post_init__(self) -> None:
        super().__post_init__()
        if not self.strides or any(s <= 0 for s in self.strides):
            raise ConfigError(f"strides must be positive, got {self.strides}")
        if len(set(self.strides)) != len(self.strides):
            raise ConfigError(f"strides must be distinct, got {self.strides}")
        if self.reg_max < 1:
            raise ConfigError(f"reg_max must be >= 1, got {self.reg_max}")
        if len(self.mean) != 3 or len(self.std) != 3:
            raise ConfigError("mean and std must hold 3 values (B, G, R)")
        if any(s <= 0 for s in self.std):
            raise ConfigError(f"std must be positive, got {self.std}")


@register_family
class NanoDetAdapter(ModelAdapter[NanoDetConfig]):
    family = "nanodet"
    config_type = NanoDetConfig

    @classmethod
    def image_input(cls, config: NanoDetConfig) -> ImageInput:
        return ImageInput(mean=config.mean, scale=config.std)

    def preprocess(self, image: ImageArray) -> tuple[dict[str, ImageArray], Letterbox]:
        canvas, meta = letterbox(image, self.config.input_size)
        return {self.input_name: canvas[None]}, meta

    def postprocess(self, outputs: list[Tensor], meta: Letterbox) -> Detections:
        xyxy, scores, class_ids = self.decode(outputs)
        return self._finish(xyxy, scores, class_ids, meta)

    def decode(self, outputs: list[Tensor]) -> tuple[FloatArray, FloatArray, NDArray[np.int32]]:
        """Boxes (input pixels), scores and class ids of the anchors above the threshold."""
        threshold = self.config.score_threshold
        boxes: list[FloatArray] = []
        scores: list[FloatArray] = []
        classes: list[NDArray[np.int32]] = []
        for stride, cls, reg in _levels(outputs, self.config):
            if self.config.multi_label:
                anchors, labels = np.nonzero(cls >= threshold)
                level_scores = cls[anchors, labels]
            else:
                labels = cls.argmax(axis=1)
                level_scores = cls[np.arange(len(cls)), labels]
                anchors = np.nonzero(level_scores >= threshold)[0]
                labels, level_scores = labels[anchors], level_scores[anchors]
            grid_w = -(-self.config.input_size[0] // stride)
            boxes.append(_distances_to_boxes(reg[anchors], anchors, grid_w, stride))
            scores.append(level_scores.astype(np.float32))
            classes.append(labels.astype(np.int32))
        return np.concatenate(boxes), np.concatenate(scores), np.concatenate(classes)


def _levels(outputs: list[Tensor], config: NanoDetConfig) -> list[tuple[int, Tensor, Tensor]]:
    """Pairs class and box outputs by level; picks them by shape, never by position."""
    bins = 4 * (config.reg_max + 1)
    w, h = config.input_size
    by_cells = {-(-w // s) * -(-h // s): s for s in config.strides}
    cls: dict[int, Tensor] = {}
    reg: dict[int, Tensor] = {}
    for out in outputs:
        flat = out.reshape(-1, out.shape[-1]) if out.ndim >= 2 else None
        stride = by_cells.get(flat.shape[0]) if flat is not None else None
        if flat is None or stride is None:
            raise ValueError(_shape_error(outputs, config))
        target = reg if flat.shape[1] == bins else cls
        if stride in target:
            raise ValueError(_shape_error(outputs, config))
        target[stride] = flat
    if set(cls) != set(config.strides) or set(reg) != set(config.strides):
        raise ValueError(_shape_error(outputs, config))
    num_classes = {c.shape[1] for c in cls.values()}
    if len(num_classes) != 1:
        raise ValueError(_shape_error(outputs, config))
    return [(s, cls[s], reg[s]) for s in config.strides]


def _shape_error(outputs: list[Tensor], config: NanoDetConfig) -> str:
    shapes = [tuple(o.shape) for o in outputs]
    return (
        f"nanodet expects, per stride {config.strides} at input {config.input_size}, "
        f"a [cells, classes] score output and a [cells, {4 * (config.reg_max + 1)}] box output; "
        f"got {shapes}"
    )


def _distances_to_boxes(
    reg: Tensor, anchors: NDArray[np.intp], grid_w: int, stride: int
) -> FloatArray:
    """Softmax over each side's bins, expectation times stride, around the anchor point."""
    sides = reg.reshape(len(reg), 4, reg.shape[1] // 4).astype(np.float32)
    sides = np.exp(sides - sides.max(axis=2, keepdims=True))
    sides /= sides.sum(axis=2, keepdims=True)
    distance = (sides * np.arange(sides.shape[2], dtype=np.float32)).sum(axis=2) * stride
    cx = (anchors % grid_w + CELL_OFFSET) * stride
    cy = (anchors // grid_w + CELL_OFFSET) * stride
    xyxy = np.stack(
        [cx - distance[:, 0], cy - distance[:, 1], cx + distance[:, 2], cy + distance[:, 3]],
        axis=1,
    )
    return xyxy.astype(np.float32)
