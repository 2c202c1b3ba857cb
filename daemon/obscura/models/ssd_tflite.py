"""TF Object Detection API SSD models exported without their post-processing op (e.g.
SSD-MobileNetV2 as TFLite): raw box encodings and class scores over a fixed anchor grid.

Outputs: box encodings ``[1, A, 4]`` as (ty, tx, th, tw) and class scores ``[1, A, C + 1]``
whose column 0 is the background. Class ids reported are the score columns (1..C), which
are also the ids of the model's label map. Anchors follow the API's SSD anchor generator:
per layer a grid of cells, row-major, with the layer's box shapes varying fastest.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass

import numpy as np

from obscura.backends import InferenceModel
from obscura.errors import ConfigError
from obscura.models.base import (
    AdapterConfig,
    Letterbox,
    ModelAdapter,
    Tensor,
    sigmoid,
)
from obscura.models.prep import (
    ChannelOrder,
    ResizeMode,
    check_input_size,
    check_preprocessing,
    input_is_nhwc,
    resize_and_normalise,
)
from obscura.models.registry import register_family
from obscura.types import Detections, FloatArray, ImageArray


@dataclass(frozen=True)
class SSDTFLiteConfig(AdapterConfig):
    input_size: tuple[int, int] = (300, 300)
    score_threshold: float = 0.5
    nms_iou: float = 0.6
    max_detections: int = 100
    # Anchor generator (the TF Object Detection API ``ssd_anchor_generator`` options).
    num_layers: int = 6
    min_scale: float = 0.2
    max_scale: float = 0.95
    aspect_ratios: tuple[float, ...] = (1.0, 2.0, 0.5, 3.0, 1.0 / 3.0)
    interpolated_scale_aspect_ratio: float = 1.0
    reduce_boxes_in_lowest_layer: bool = True
    # (height, width) of each layer's grid, finest first; empty derives them from the input:
    # the first layer at stride 16, each next one half the previous, rounded up.
    feature_map_sizes: tuple[tuple[int, int], ...] = ()
    first_stride: int = 16
    # Box coder scales for (y, x, h, w).
    box_coder_scales: tuple[float, float, float, float] = (10.0, 10.0, 5.0, 5.0)
    scores_are_logits: bool = True
    layout: ChannelOrder = "rgb"
    mean: tuple[float, float, float] = (127.5, 127.5, 127.5)
    scale: tuple[float, float, float] = (127.5, 127.5, 127.5)
    resize: ResizeMode = "stretch"

    def __post_init__(self) -> None:
        super().__post_init__()
        check_preprocessing(self.layout, self.resize, self.scale, "ssd-tflite")
        if self.num_layers < 1:
            raise ConfigError(f"ssd-tflite: num_layers must be >= 1, got {self.num_layers}")
        if self.num_layers > 1 and self.min_scale > self.max_scale:
            raise ConfigError("ssd-tflite: min_scale must not exceed max_scale")
        if self.feature_map_sizes and len(self.feature_map_sizes) != self.num_layers:
            raise ConfigError(
                f"ssd-tflite: feature_map_sizes needs {self.num_layers} (height, width) pairs, "
                f"got {len(self.feature_map_sizes)}"
            )
        if not self.aspect_ratios or any(r <= 0 for r in self.aspect_ratios):
            raise ConfigError("ssd-tflite: aspect_ratios must be positive numbers")


def feature_map_sizes(
    width: int, height: int, first_stride: int, num_layers: int
) -> tuple[tuple[int, int], ...]:
    """(height, width) per layer: ceil(input / first_stride), then halved, rounded up."""
    h, w = -(-height // first_stride), -(-width // first_stride)
    sizes = []
    for _ in range(num_layers):
        sizes.append((h, w))
        h, w = -(-h // 2), -(-w // 2)
    return tuple(sizes)


def layer_box_specs(
    num_layers: int,
    *,
    min_scale: float,
    max_scale: float,
    aspect_ratios: tuple[float, ...],
    interpolated_scale_aspect_ratio: float,
    reduce_boxes_in_lowest_layer: bool,
) -> list[list[tuple[float, float]]]:
    """(scale, aspect ratio) of every box shape per layer, in the model's order."""
    if num_layers == 1:
        scales = [min_scale]
    else:
        step = (max_scale - min_scale) / (num_layers - 1)
        scales = [min_scale + step * i for i in range(num_layers)]
    scales.append(1.0)
    specs: list[list[tuple[float, float]]] = []
    for layer in range(num_layers):
        scale, following = scales[layer], scales[layer + 1]
        if layer == 0 and reduce_boxes_in_lowest_layer:
            specs.append([(0.1, 1.0), (scale, 2.0), (scale, 0.5)])
            continue
        shapes = [(scale, ratio) for ratio in aspect_ratios]
        if interpolated_scale_aspect_ratio > 0:
            shapes.append((math.sqrt(scale * following), interpolated_scale_aspect_ratio))
        specs.append(shapes)
    return specs


@functools.lru_cache(maxsize=8)
def ssd_anchors(
    width: int,
    height: int,
    sizes: tuple[tuple[int, int], ...],
    specs: tuple[tuple[tuple[float, float], ...], ...],
) -> FloatArray:
    """Anchors (cy, cx, h, w) normalised to the input, in output order: layer, then grid
    row, then grid column, then box shape.

    Heights and widths are relative to the shorter input side, so a ratio-1 anchor is
    square in pixels on a non-square input.
    """
    short = min(width, height)
    base_h, base_w = short / height, short / width
    layers = []
    for (grid_h, grid_w), shapes in zip(sizes, specs, strict=True):
        scale, ratio = np.asarray(shapes, dtype=np.float64).T
        box_h = scale / np.sqrt(ratio) * base_h
        box_w = scale * np.sqrt(ratio) * base_w
        cy = (np.arange(grid_h) + 0.5) / grid_h
        cx = (np.arange(grid_w) + 0.5) / grid_w
        n = len(shapes)
        grid = np.empty((grid_h, grid_w, n, 4), dtype=np.float64)
        grid[..., 0] = cy[:, None, None]
        grid[..., 1] = cx[None, :, None]
        grid[..., 2] = box_h
        grid[..., 3] = box_w
        layers.append(grid.reshape(-1, 4))
    out = np.concatenate(layers).astype(np.float32)
    out.setflags(write=False)
    return out


@register_family
class SSDTFLiteAdapter(ModelAdapter[SSDTFLiteConfig]):
    """TF Object Detection API SSD with raw outputs (box encodings and class scores)."""

    family = "ssd-tflite"
    config_type = SSDTFLiteConfig

    def __init__(self, model: InferenceModel, config: SSDTFLiteConfig) -> None:
        super().__init__(model, config)
        check_input_size(model, config.input_size, self.family)
        self._nhwc = input_is_nhwc(model)

    @property
    def anchors(self) -> FloatArray:
        """The anchor table (cy, cx, h, w), normalised, for the configured input size."""
        c = self.config
        w, h = c.input_size
        sizes = c.feature_map_sizes or feature_map_sizes(w, h, c.first_stride, c.num_layers)
        specs = layer_box_specs(
            c.num_layers,
            min_scale=c.min_scale,
            max_scale=c.max_scale,
            aspect_ratios=c.aspect_ratios,
            interpolated_scale_aspect_ratio=c.interpolated_scale_aspect_ratio,
            reduce_boxes_in_lowest_layer=c.reduce_boxes_in_lowest_layer,
        )
        return ssd_anchors(w, h, tuple(sizes), tuple(tuple(s) for s in specs))

    def preprocess(self, image: ImageArray) -> tuple[dict[str, Tensor], Letterbox]:
        tensor, meta = resize_and_normalise(
            image,
            self.config.input_size,
            resize=self.config.resize,
            order=self.config.layout,
            mean=self.config.mean,
            scale=self.config.scale,
            channels_last=self._nhwc,
        )
        return {self.input_name: tensor}, meta

    def postprocess(self, outputs: list[Tensor], meta: Letterbox) -> Detections:
        encodings, logits = _split_outputs(outputs)
        anchors = self.anchors
        if len(anchors) != len(encodings):
            raise ValueError(
                f"ssd-tflite: {len(encodings)} box encodings but {len(anchors)} anchors for "
                f"{meta.input_w}x{meta.input_h}; check num_layers, feature_map_sizes and "
                "aspect_ratios"
            )
        # Background (column 0) dropped; the best class is column index + 1.
        foreground = logits[:, 1:]
        best = np.argmax(foreground, axis=1)
        top = np.take_along_axis(foreground, best[:, None], axis=1)[:, 0]
        scores = sigmoid(top) if self.config.scores_are_logits else top.astype(np.float32)
        keep = np.flatnonzero(scores >= self.config.score_threshold)
        xyxy = decode_boxes(encodings[keep], anchors[keep], self.config.box_coder_scales)
        xyxy *= np.asarray([meta.input_w, meta.input_h] * 2, dtype=np.float32)
        class_ids = (best[keep] + 1).astype(np.int32)
        return self._finish(xyxy, scores[keep], class_ids, meta)


def decode_boxes(
    encodings: Tensor, anchors: FloatArray, scales: tuple[float, float, float, float]
) -> FloatArray:
    """(ty, tx, th, tw) against anchors (cy, cx, h, w) to normalised (x1, y1, x2, y2)."""
    sy, sx, sh, sw = scales
    cy = encodings[:, 0] / sy * anchors[:, 2] + anchors[:, 0]
    cx = encodings[:, 1] / sx * anchors[:, 3] + anchors[:, 1]
    h = np.exp(encodings[:, 2] / sh) * anchors[:, 2]
    w = np.exp(encodings[:, 3] / sw) * anchors[:, 3]
    return np.stack([cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2], axis=1).astype(np.float32)


def _split_outputs(outputs: list[Tensor]) -> tuple[Tensor, Tensor]:
    """Box encodings (last dim 4) and class scores (the other ``[1, A, C + 1]`` output)."""
    ranked = [o for o in outputs if o.ndim == 3]
    if len(ranked) == 2 and all(o.shape[-1] == 4 for o in ranked):
        # Three classes: both end in 4; the API exports the box encodings first.
        return ranked[0][0], ranked[1][0]
    boxes = [o for o in ranked if o.shape[-1] == 4]
    scores = [o for o in ranked if o.shape[-1] != 4]
    if len(boxes) != 1 or len(scores) != 1 or boxes[0].shape[1] != scores[0].shape[1]:
        shapes = [o.shape for o in outputs]
        raise ValueError(
            f"ssd-tflite expects box encodings [1, A, 4] and class scores [1, A, C+1], got {shapes}"
        )
    return boxes[0][0], scores[0][0]
