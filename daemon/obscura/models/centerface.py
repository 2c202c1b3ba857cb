"""CenterFace: anchor-free face detector (heatmap, scale, offset and landmark maps, stride 4)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from obscura.backends import ImageInput
from obscura.models.base import (
    AdapterConfig,
    Letterbox,
    ModelAdapter,
    Tensor,
    letterbox,
)
from obscura.models.registry import register_family
from obscura.types import Detections, ImageArray


@dataclass(frozen=True)
class CenterFaceConfig(AdapterConfig):
    input_size: tuple[int, int] = (640, 640)
    score_threshold: float = 0.3
    nms_iou: float = 0.3
    stride: int = 4
    fit_aspect: bool = True


@register_family
class CenterFaceAdapter(ModelAdapter[CenterFaceConfig]):
    family = "centerface"
    config_type = CenterFaceConfig

    @classmethod
    def image_input(cls, config: CenterFaceConfig) -> ImageInput:
        return ImageInput(rgb=True)

    def preprocess(self, image: ImageArray) -> tuple[dict[str, ImageArray], Letterbox]:
        canvas, meta = letterbox(image, self.input_size_for(image))
        return {self.input_name: canvas[None]}, meta

    def postprocess(self, outputs: list[Tensor], meta: Letterbox) -> Detections:
        heatmap, scale, offset = _split_outputs(outputs)
        stride = self.config.stride
        ys, xs = np.nonzero(heatmap >= self.config.score_threshold)
        scores = heatmap[ys, xs].astype(np.float32)
        h = np.exp(scale[0, ys, xs]) * stride
        w = np.exp(scale[1, ys, xs]) * stride
        cy = (ys + offset[0, ys, xs] + 0.5) * stride
        cx = (xs + offset[1, ys, xs] + 0.5) * stride
        xyxy = np.stack([cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2], axis=1).astype(np.float32)
        return self._finish(xyxy, scores, np.zeros(len(scores), dtype=np.int32), meta)


def _split_outputs(outputs: list[Tensor]) -> tuple[Tensor, Tensor, Tensor]:
    """Heatmap (1 channel), then scale and offset (the 2-channel maps, in that order)."""
    heatmap = [o for o in outputs if o.shape[1] == 1]
    two = [o for o in outputs if o.shape[1] == 2]
    if len(heatmap) != 1 or len(two) != 2:
        shapes = [o.shape for o in outputs]
        raise ValueError(f"centerface expects outputs with 1, 2, 2 (and 10) channels, got {shapes}")
    return heatmap[0][0, 0], two[0][0], two[1][0]
