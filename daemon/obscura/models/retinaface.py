"""RetinaFace-style detectors (faces, and the CCPD plate detector): SSD priors on 3 strides."""

from __future__ import annotations

import functools
from dataclasses import dataclass

import numpy as np

from obscura.backends import ImageInput
from obscura.errors import ConfigError
from obscura.models.base import (
    AdapterConfig,
    Letterbox,
    ModelAdapter,
    Tensor,
    letterbox,
)
from obscura.models.registry import register_family
from obscura.types import Detections, FloatArray, ImageArray


@dataclass(frozen=True)
class RetinaFaceConfig(AdapterConfig):
    input_size: tuple[int, int] = (640, 640)
    score_threshold: float = 0.5
    nms_iou: float = 0.4
    strides: tuple[int, ...] = (8, 16, 32)
    anchor_sizes: tuple[tuple[int, ...], ...] = ((16, 32), (64, 128), (256, 512))
    variances: tuple[float, float] = (0.1, 0.2)
    mean_bgr: tuple[float, float, float] = (104.0, 117.0, 123.0)
    fit_aspect: bool = True

    def __post_init__(self) -> None:
        super().__post_init__()
        if len(self.strides) != len(self.anchor_sizes):
            raise ConfigError("retinaface: strides and anchor_sizes must have the same length")


@functools.lru_cache(maxsize=16)
def priors(
    width: int, height: int, strides: tuple[int, ...], sizes: tuple[tuple[int, ...], ...]
) -> FloatArray:
    """Prior boxes (cx, cy, w, h) in input pixels, row-major per level, sizes innermost."""
    levels = []
    for stride, level_sizes in zip(strides, sizes, strict=True):
        fh, fw = -(-height // stride), -(-width // stride)
        ys, xs = np.meshgrid(np.arange(fh), np.arange(fw), indexing="ij")
        centers = np.stack([(xs + 0.5) * stride, (ys + 0.5) * stride], axis=-1).reshape(-1, 1, 2)
        wh = np.asarray(level_sizes, dtype=np.float32)[None, :, None].repeat(2, axis=2)
        cells = np.concatenate(
            [
                np.broadcast_to(centers, (centers.shape[0], len(level_sizes), 2)),
                np.broadcast_to(wh, (centers.shape[0], len(level_sizes), 2)),
            ],
            axis=2,
        )
        levels.append(cells.reshape(-1, 4))
    out = np.concatenate(levels).astype(np.float32)
    out.setflags(write=False)
    return out


@register_family
class RetinaFaceAdapter(ModelAdapter[RetinaFaceConfig]):
    family = "retinaface"
    config_type = RetinaFaceConfig

    @classmethod
    def image_input(cls, config: RetinaFaceConfig) -> ImageInput:
        return ImageInput(mean=config.mean_bgr)

    def preprocess(self, image: ImageArray) -> tuple[dict[str, ImageArray], Letterbox]:
        canvas, meta = letterbox(image, self.input_size_for(image, max(self.config.strides)))
        return {self.input_name: canvas[None]}, meta

    def postprocess(self, outputs: list[Tensor], meta: Letterbox) -> Detections:
        loc, conf = _split_outputs(outputs)
        prior = priors(meta.input_w, meta.input_h, self.config.strides, self.config.anchor_sizes)
        if len(prior) != len(loc):
            raise ValueError(
                f"retinaface: {len(loc)} predictions but {len(prior)} priors for "
                f"{meta.input_w}x{meta.input_h}; check strides and anchor_sizes"
            )
        scores = conf[:, 1].astype(np.float32)
        keep = scores >= self.config.score_threshold
        loc, prior, scores = loc[keep], prior[keep], scores[keep]
        v0, v1 = self.config.variances
        centers = prior[:, :2] + loc[:, :2] * v0 * prior[:, 2:]
        wh = prior[:, 2:] * np.exp(loc[:, 2:] * v1)
        xyxy = np.concatenate([centers - wh / 2, centers + wh / 2], axis=1).astype(np.float32)
        return self._finish(xyxy, scores, np.zeros(len(scores), dtype=np.int32), meta)


def _split_outputs(outputs: list[Tensor]) -> tuple[Tensor, Tensor]:
    """loc ([1, N, 4]) and conf ([1, N, 2]); landmarks ([1, N, 8 or 10]) are not used."""
    loc = [o for o in outputs if o.shape[-1] == 4]
    conf = [o for o in outputs if o.shape[-1] == 2]
    if len(loc) != 1 or len(conf) != 1:
        shapes = [o.shape for o in outputs]
        raise ValueError(f"retinaface expects loc [1,N,4] and conf [1,N,2] outputs, got {shapes}")
    return loc[0][0], conf[0][0]
