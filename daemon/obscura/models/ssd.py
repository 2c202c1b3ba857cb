"""SSD-style detectors that end in OpenVINO's ``DetectionOutput`` (Open Model Zoo models).

The one output is ``[1, 1, N, 7]``: rows of (image_id, label, confidence, x_min, y_min, x_max,
y_max), coordinates normalised to the model input; the first row with image_id < 0 ends the
list. Labels are the model's own ids (for most Open Model Zoo models 0 is the background and
never reported).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from obscura.backends import InferenceModel
from obscura.models.base import AdapterConfig, Letterbox, ModelAdapter, Tensor
from obscura.models.prep import (
    ChannelOrder,
    ResizeMode,
    check_input_size,
    check_preprocessing,
    input_is_nhwc,
    resize_and_normalise,
)
from obscura.models.registry import register_family
from obscura.types import Detections, ImageArray


@dataclass(frozen=True)
class SSDConfig(AdapterConfig):
    input_size: tuple[int, int] = (300, 300)
    score_threshold: float = 0.5
    # Channel order the model expects, and (pixel - mean) / scale in that order. The Open
    # Model Zoo default is BGR 0..255 with no normalisation.
    layout: ChannelOrder = "bgr"
    mean: tuple[float, float, float] = (0.0, 0.0, 0.0)
    scale: tuple[float, float, float] = (1.0, 1.0, 1.0)
    # "stretch": plain resize to the input size (the Open Model Zoo default);
    # "letterbox": keep the aspect ratio and pad bottom-right with zeros.
    resize: ResizeMode = "stretch"

    def __post_init__(self) -> None:
        super().__post_init__()
        check_preprocessing(self.layout, self.resize, self.scale, "ssd")


@register_family
class SSDAdapter(ModelAdapter[SSDConfig]):
    """Open Model Zoo ``DetectionOutput`` models (e.g. person-detection-retail-0013)."""

    family = "ssd"
    config_type = SSDConfig

    def __init__(self, model: InferenceModel, config: SSDConfig) -> None:
        super().__init__(model, config)
        check_input_size(model, config.input_size, self.family)
        self._nhwc = input_is_nhwc(model)

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
        rows = _detection_rows(outputs)
        ends = np.flatnonzero(rows[:, 0] < 0)
        if ends.size:
            rows = rows[: ends[0]]
        size = np.asarray([meta.input_w, meta.input_h] * 2, dtype=np.float32)
        xyxy = (rows[:, 3:7] * size).astype(np.float32)
        scores = rows[:, 2].astype(np.float32)
        class_ids = rows[:, 1].astype(np.int32)
        return self._finish(xyxy, scores, class_ids, meta)


def _detection_rows(outputs: list[Tensor]) -> Tensor:
    """The ``[1, 1, N, 7]`` DetectionOutput tensor as ``[N, 7]`` rows."""
    found = [o for o in outputs if o.ndim == 4 and o.shape[-1] == 7]
    if len(found) != 1:
        shapes = [o.shape for o in outputs]
        raise ValueError(f"ssd expects one DetectionOutput output [1, 1, N, 7], got {shapes}")
    return found[0].reshape(-1, 7)
