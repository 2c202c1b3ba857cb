"""Model adapters: one per output family. Each owns its preprocessing and its decoding.

An adapter turns a BGR ``uint8`` image into input tensors (``preprocess``) and the model's raw
outputs back into :class:`~obscura.types.Detections` in the image's pixel coordinates
(``postprocess``), with the model's own class indices. Runtimes live behind
:class:`~obscura.backends.InferenceModel` and are never touched here.
"""

from __future__ import annotations

import dataclasses
from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar, Generic, Self, TypeVar

import cv2
import numpy as np
from numpy.typing import NDArray

from obscura.backends import ImageInput, InferenceModel
from obscura.errors import ConfigError
from obscura.types import Detections, FloatArray, ImageArray

Tensor = NDArray[np.float32]


@dataclass(frozen=True)
class AdapterConfig:
    """Options common to every detector family. Families extend it with their own fields."""

    input_size: tuple[int, int] = (640, 640)  # (width, height) the image is letterboxed into
    score_threshold: float = 0.3
    nms_iou: float = 0.45
    max_detections: int = 300
    # Dynamic-shape models only: feed the image at its own aspect ratio (within input_size,
    # each side rounded up to the model's stride) instead of padding it to the full size.
    fit_aspect: bool = False
    # (width, height) factors applied to every box about its centre: for a model trained on
    # looser (or tighter) boxes than the objects' outlines, measured once per model.
    box_scale: tuple[float, float] = (1.0, 1.0)

    def __post_init__(self) -> None:
        if len(self.box_scale) != 2 or not all(0.2 <= v <= 5.0 for v in self.box_scale):
            raise ConfigError(f"box_scale must be two factors in 0.2..5, got {self.box_scale}")
        w, h = self.input_size
        if w <= 0 or h <= 0:
            raise ConfigError(f"input_size must be positive, got {self.input_size}")
        if not 0.0 <= self.score_threshold <= 1.0:
            raise ConfigError(f"score_threshold must be in 0..1, got {self.score_threshold}")
        if not 0.0 < self.nms_iou <= 1.0:
            raise ConfigError(f"nms_iou must be in (0, 1], got {self.nms_iou}")

    @classmethod
    def from_mapping(cls, values: Mapping[str, Any]) -> Self:
        """Builds the config from TOML-like values; unknown keys are an error that names them."""
        known = {f.name: f for f in dataclasses.fields(cls)}
        unknown = sorted(set(values) - set(known))
        if unknown:
            raise ConfigError(
                f"unknown option(s) {', '.join(unknown)} for {cls.__name__} "
                f"(known: {', '.join(sorted(known))})"
            )
        converted: dict[str, Any] = {}
        for key, value in values.items():
            converted[key] = tuple(_tuplify(v) for v in value) if isinstance(value, list) else value
        return cls(**converted)


def _tuplify(value: Any) -> Any:
    return tuple(_tuplify(v) for v in value) if isinstance(value, list) else value


@dataclass(frozen=True)
class Letterbox:
    """How an image was resized and padded into the model input; maps boxes back."""

    scale: float
    pad_x: int
    pad_y: int
    image_w: int
    image_h: int
    input_w: int
    input_h: int

    def to_image(self, xyxy: FloatArray) -> FloatArray:
        out = xyxy.astype(np.float32, copy=True)
        out[:, [0, 2]] = (out[:, [0, 2]] - self.pad_x) / self.scale
        out[:, [1, 3]] = (out[:, [1, 3]] - self.pad_y) / self.scale
        np.clip(out[:, [0, 2]], 0, self.image_w, out=out[:, [0, 2]])
        np.clip(out[:, [1, 3]], 0, self.image_h, out=out[:, [1, 3]])
        return out


def letterbox(
    image: ImageArray,
    size: tuple[int, int],
    *,
    center: bool = False,
    pad_value: int = 0,
) -> tuple[ImageArray, Letterbox]:
    """Resizes ``image`` to fit ``size`` (w, h) keeping its aspect ratio, then pads."""
    h, w = image.shape[:2]
    in_w, in_h = size
    scale = min(in_w / w, in_h / h)
    new_w, new_h = max(1, round(w * scale)), max(1, round(h * scale))
    # Area averaging only where downscaling could alias (by more than 2x): for milder factors
    # bilinear looks the same to the models and costs a sixth (768x576 to 640x480: 0.7 ms
    # against 4.2 ms on one core).
    interp = cv2.INTER_AREA if scale < 0.5 else cv2.INTER_LINEAR
    resized = cv2.resize(image, (new_w, new_h), interpolation=interp)
    pad_x = (in_w - new_w) // 2 if center else 0
    pad_y = (in_h - new_h) // 2 if center else 0
    canvas = np.full((in_h, in_w, *image.shape[2:]), pad_value, dtype=np.uint8)
    canvas[pad_y : pad_y + new_h, pad_x : pad_x + new_w] = resized
    return canvas, Letterbox(scale, pad_x, pad_y, w, h, in_w, in_h)


def iou_matrix(a: FloatArray, b: FloatArray) -> FloatArray:
    """IoU of every box in ``a`` (N, 4) with every box in ``b`` (M, 4), xyxy."""
    if len(a) == 0 or len(b) == 0:
        return np.zeros((len(a), len(b)), dtype=np.float32)
    tl = np.maximum(a[:, None, :2], b[None, :, :2])
    br = np.minimum(a[:, None, 2:], b[None, :, 2:])
    inter = np.clip(br - tl, 0, None).prod(axis=2)
    area_a = (a[:, 2:] - a[:, :2]).clip(0).prod(axis=1)
    area_b = (b[:, 2:] - b[:, :2]).clip(0).prod(axis=1)
    union = area_a[:, None] + area_b[None, :] - inter
    out: FloatArray = np.where(union > 0, inter / np.maximum(union, 1e-9), 0.0).astype(np.float32)
    return out


def nms(
    xyxy: FloatArray, scores: FloatArray, iou: float, max_detections: int = 0
) -> NDArray[np.int64]:
    """Greedy non-maximum suppression; returns kept indices, best first."""
    if len(xyxy) == 0:
        return np.zeros((0,), dtype=np.int64)
    xywh = np.concatenate([xyxy[:, :2], xyxy[:, 2:] - xyxy[:, :2]], axis=1)
    keep = cv2.dnn.NMSBoxes(
        xywh.astype(np.float32).tolist(),
        scores.astype(np.float32).tolist(),
        score_threshold=0.0,
        nms_threshold=float(iou),
        top_k=max_detections,
    )
    kept = np.asarray(keep, dtype=np.int64).reshape(-1)
    return kept[np.argsort(-scores[kept], kind="stable")]


def batched_nms(
    xyxy: FloatArray,
    scores: FloatArray,
    class_ids: NDArray[np.int32],
    iou: float,
    max_detections: int = 0,
) -> NDArray[np.int64]:
    """Class-wise NMS in one call: boxes of different classes are shifted apart first."""
    if len(xyxy) == 0:
        return np.zeros((0,), dtype=np.int64)
    offset = (float(xyxy.max()) + 1.0) * class_ids.astype(np.float32)[:, None]
    return nms(xyxy + offset, scores, iou, max_detections)


def sigmoid(x: Tensor) -> Tensor:
    return (1.0 / (1.0 + np.exp(-x))).astype(np.float32)


ConfigT = TypeVar("ConfigT", bound=AdapterConfig)


class ModelAdapter(ABC, Generic[ConfigT]):
    """Base of every detector adapter."""

    family: ClassVar[str]
    config_type: ClassVar[type[AdapterConfig]]
    # Every output of the family leads with the batch dimension (see detect_many).
    batchable: ClassVar[bool] = False

    def __init__(self, model: InferenceModel, config: ConfigT) -> None:
        self.model = model
        self.config = config
        self.input_name = model.inputs[0].name
        wanted = self.image_input(config)
        if model.image_input != wanted:
            raise ConfigError(
                f"{model.name}: loaded with image input {model.image_input}, but the "
                f"{self.family} adapter feeds {wanted}"
            )

    @classmethod
    def image_input(cls, config: ConfigT) -> ImageInput | None:
        """How the model's input is made from BGR ``uint8`` pixels, for a family that lets
        the backend do it (load the model with it); ``None``: preprocess feeds float tensors."""
        return None

    @abstractmethod
    def preprocess(self, image: ImageArray) -> tuple[dict[str, NDArray[Any]], Letterbox]: ...

    @abstractmethod
    def postprocess(self, outputs: list[Tensor], meta: Letterbox) -> Detections: ...

    def input_size_for(self, image: ImageArray, multiple: int = 32) -> tuple[int, int]:
        """The input tensor size (w, h) for ``image``: the configured size, or with
        ``fit_aspect`` the image's own aspect ratio within it."""
        if not self.config.fit_aspect:
            return self.config.input_size
        return fit_to_multiple(image.shape[1], image.shape[0], self.config.input_size, multiple)

    def detect(self, image: ImageArray) -> Detections:
        inputs, meta = self.preprocess(image)
        return self._decode(self.model.infer(inputs), meta)

    @property
    def batches(self) -> bool:
        """Whether several images run as one batch: the family's outputs all lead with the
        batch dimension, the model's input takes any batch size, and its runtime takes new
        batch sizes at no extra cost (not ONNX Runtime on CUDA, whose sessions are per shape)."""
        inputs = self.model.inputs
        free = bool(getattr(self.model, "batches_freely", True))
        return self.batchable and free and bool(inputs) and inputs[0].shape[:1] == (-1,)

    def detect_many(self, images: Sequence[ImageArray], most: int) -> list[Detections]:
        """The detections in each of ``images``, the same as :meth:`detect` finds one by one.
        Where the model :attr:`batches`, images whose inputs have the same shape run as one
        inference of up to ``most`` of them, which costs less per image (a mirrored crop and
        its original, a large frame's tiles)."""
        if most <= 1 or len(images) <= 1 or not self.batches:
            return [self.detect(image) for image in images]
        prepared = [self.preprocess(image) for image in images]
        same: dict[tuple[tuple[str, tuple[int, ...], str], ...], list[int]] = {}
        for i, (inputs, _) in enumerate(prepared):
            key = tuple((k, v.shape, v.dtype.str) for k, v in sorted(inputs.items()))
            same.setdefault(key, []).append(i)
        found = [Detections()] * len(images)
        for members in same.values():
            for start in range(0, len(members), most):
                batch = members[start : start + most]
                names = prepared[batch[0]][0]
                stacked = {k: np.concatenate([prepared[i][0][k] for i in batch]) for k in names}
                outputs = self.model.infer(stacked)
                for row, i in enumerate(batch):
                    own = [o[row : row + 1] for o in outputs]
                    found[i] = self._decode(own, prepared[i][1])
        return found

    def _decode(self, outputs: list[Tensor], meta: Letterbox) -> Detections:
        found = self.postprocess(outputs, meta)
        if self.config.box_scale == (1.0, 1.0) or not len(found):
            return found
        return rescale_boxes(found, self.config.box_scale)

    def _finish(
        self, xyxy: FloatArray, scores: FloatArray, class_ids: NDArray[np.int32], meta: Letterbox
    ) -> Detections:
        """Threshold, class-wise NMS, map back to image pixels, drop empty boxes."""
        keep = scores >= self.config.score_threshold
        xyxy, scores, class_ids = xyxy[keep], scores[keep], class_ids[keep]
        kept = batched_nms(xyxy, scores, class_ids, self.config.nms_iou, self.config.max_detections)
        boxes = meta.to_image(xyxy[kept])
        det = Detections(boxes, scores[kept], class_ids[kept])
        nonempty = (det.xyxy[:, 2] - det.xyxy[:, 0] >= 1) & (det.xyxy[:, 3] - det.xyxy[:, 1] >= 1)
        return det[nonempty]


def rescale_boxes(det: Detections, factors: tuple[float, float]) -> Detections:
    """``det`` with each box scaled by (width, height) ``factors`` about its centre."""
    centre = (det.xyxy[:, :2] + det.xyxy[:, 2:]) / 2
    half = (det.xyxy[:, 2:] - det.xyxy[:, :2]) / 2 * np.asarray(factors, dtype=np.float32)
    boxes = np.concatenate([centre - half, centre + half], axis=1).astype(np.float32)
    return Detections(boxes, det.scores, det.class_ids, det.masks)


def fit_to_multiple(
    width: int, height: int, bound: tuple[int, int], multiple: int
) -> tuple[int, int]:
    """The input size for a dynamic-shape model: the image scaled down to fit ``bound`` (w, h)
    if it is larger (never up: that costs time and adds no detail), keeping its aspect ratio,
    each side rounded up to ``multiple``."""
    scale = min(bound[0] / width, bound[1] / height, 1.0)
    w = max(multiple, -(-round(width * scale) // multiple) * multiple)
    h = max(multiple, -(-round(height * scale) // multiple) * multiple)
    return w, h
