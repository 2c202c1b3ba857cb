"""SCRFD face detectors: anchor-free-like heads on strides 8, 16 and 32, two anchors per cell.

Per stride the model gives scores ([1, N, 1], already sigmoid) and box distances ([1, N, 4]:
left, top, right, bottom from the anchor's centre, in units of the stride); N is
(H / stride) * (W / stride) * anchors, row-major, anchors innermost. Keypoint outputs
([1, N, 10]) are not used. Input: RGB, (pixel - 127.5) / 128, NCHW, at the model's own size.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import numpy as np

from obscura.backends import ImageInput
from obscura.models.base import AdapterConfig, Letterbox, ModelAdapter, Tensor, letterbox
from obscura.models.registry import register_family
from obscura.types import Detections, FloatArray, ImageArray


@dataclass(frozen=True)
class ScrfdConfig(AdapterConfig):
    input_size: tuple[int, int] = (640, 640)
    score_threshold: float = 0.5
    nms_iou: float = 0.4
    strides: tuple[int, ...] = (8, 16, 32)
    anchors: int = 2  # anchors per cell
    fit_aspect: bool = False  # the released graphs have a static input


@functools.lru_cache(maxsize=16)
def centres(width: int, height: int, stride: int, anchors: int) -> FloatArray:
    """Anchor centres (x, y) in input pixels for one stride, row-major, anchors innermost."""
    ys, xs = np.mgrid[: -(-height // stride), : -(-width // stride)]
    cells = np.stack([xs, ys], axis=-1).reshape(-1, 2).astype(np.float32) * stride
    out = np.repeat(cells, anchors, axis=0)
    out.setflags(write=False)
    return out


@register_family
class ScrfdAdapter(ModelAdapter[ScrfdConfig]):
    family = "scrfd"
    config_type = ScrfdConfig

    @classmethod
    def image_input(cls, config: ScrfdConfig) -> ImageInput:
        return ImageInput(rgb=True, mean=(127.5, 127.5, 127.5), scale=(128.0, 128.0, 128.0))

    def preprocess(self, image: ImageArray) -> tuple[dict[str, ImageArray], Letterbox]:
        canvas, meta = letterbox(image, self.input_size_for(image, max(self.config.strides)))
        return {self.input_name: canvas[None]}, meta

    def postprocess(self, outputs: list[Tensor], meta: Letterbox) -> Detections:
        levels = _split_outputs(outputs, len(self.config.strides))
        boxes, scores = [], []
        for stride, (score, dist) in zip(self.config.strides, levels, strict=True):
            centre = centres(meta.input_w, meta.input_h, stride, self.config.anchors)
            if len(centre) != len(score):
                raise ValueError(
                    f"scrfd: {len(score)} predictions at stride {stride} but {len(centre)} "
                    f"anchors for {meta.input_w}x{meta.input_h}; check strides and anchors"
                )
            keep = score >= self.config.score_threshold
            d = dist[keep] * stride
            c = centre[keep]
            boxes.append(np.concatenate([c - d[:, :2], c + d[:, 2:]], axis=1))
            scores.append(score[keep])
        xyxy = np.concatenate(boxes).astype(np.float32)
        found = np.concatenate(scores).astype(np.float32)
        return self._finish(xyxy, found, np.zeros(len(found), dtype=np.int32), meta)


def _split_outputs(outputs: list[Tensor], levels: int) -> list[tuple[Tensor, Tensor]]:
    """(scores (N,), distances (N, 4)) per stride, finest first: outputs are told apart by
    their last dimension (1, 4; 10 for keypoints) and their length."""
    score = sorted((o.reshape(-1) for o in outputs if o.shape[-1] == 1), key=len, reverse=True)
    dist = sorted((o.reshape(-1, 4) for o in outputs if o.shape[-1] == 4), key=len, reverse=True)
    if len(score) != levels or len(dist) != levels:
        shapes = [o.shape for o in outputs]
        raise ValueError(f"scrfd expects {levels} score and {levels} box outputs, got {shapes}")
    for s, d in zip(score, dist, strict=True):
        if len(s) != len(d):
            raise ValueError(f"scrfd: {len(s)} scores against {len(d)} boxes at one stride")
    return list(zip(score, dist, strict=True))
