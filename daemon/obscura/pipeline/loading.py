"""Loading the detection core's models: each from the model store onto the backend, with the
adapter of its family, decoding down to what the settings may ask of it."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from obscura.backends import Backend, ImageInput, InferenceModel
from obscura.errors import ConfigError
from obscura.models.base import ModelAdapter, batched_nms
from obscura.models.registry import adapter_class
from obscura.pipeline.settings import DetectorConfig
from obscura.types import Detections, ImageArray, ObjectClass
from obscura.zoo.manifest import ModelSpec
from obscura.zoo.store import ModelStore


@dataclass(frozen=True)
class LoadedDetector:
    """A detection model ready to run: its spec, its adapter, and the least score its
    detections need on top of each class's threshold (``model_thresholds``)."""

    spec: ModelSpec
    adapter: ModelAdapter[Any]
    min_score: float = 0.0

    @property
    def nms_iou(self) -> float:
        return float(self.adapter.config.nms_iou)

    def detect(self, image: ImageArray, cut: Mapping[ObjectClass, float]) -> Detections:
        """The model's detections in ``image``, mapped to ObjectClass codes and cut."""
        return self.mapped(self.adapter.detect(image), cut)

    def detect_many(
        self, images: Sequence[ImageArray], cut: Mapping[ObjectClass, float], most: int
    ) -> list[Detections]:
        """:meth:`detect` on each of ``images``, up to ``most`` of one input shape in one
        inference where the model takes batches."""
        return [self.mapped(raw, cut) for raw in self.adapter.detect_many(images, most)]

    def mapped(self, raw: Detections, cut: Mapping[ObjectClass, float]) -> Detections:
        """Model class ids to ObjectClass codes; drops unmapped classes and low scores."""
        codes = np.full(len(raw), -1, dtype=np.int32)
        for cls, ids in self.spec.classes.items():
            codes[np.isin(raw.class_ids, ids)] = int(cls)
        mapped = raw.with_class_ids(codes)[codes >= 0]
        if not len(mapped):
            return mapped
        floor = np.array([cut[ObjectClass(c)] for c in mapped.class_ids], dtype=np.float32)
        floor = np.maximum(floor, self.min_score)
        mapped = mapped[mapped.scores >= floor]
        # Several model classes may map to one (car, truck -> vehicle): one box per object.
        return mapped[batched_nms(mapped.xyxy, mapped.scores, mapped.class_ids, self.nms_iou)]


class ModelLoader:
    """Loads models by name and remembers where each one really runs."""

    def __init__(self, store: ModelStore, backend: Backend, config: DetectorConfig):
        self.store = store
        self.backend = backend
        self.config = config
        self._runs: dict[str, tuple[str, str]] = {}

    def detector(self, name: str | None, wanted: set[ObjectClass]) -> LoadedDetector | None:
        """The detection model ``name`` (None: none configured) for the classes ``wanted``;
        refuses a model that is not a detector or yields none of them."""
        if not name:
            return None
        spec = self.store.spec(name)
        if spec.task != "detect":
            raise ConfigError(f"model {name!r} is a {spec.task} model, not a detector")
        yields = set(spec.classes) & wanted
        if not yields:
            raise ConfigError(
                f"model {name!r} yields {', '.join(c.label for c in spec.classes)}, "
                f"none of {', '.join(c.label for c in wanted)}"
            )
        options = {**spec.options, **self.config.model_options.get(name, {})}
        # The model's own cut-off is the floor; each class is cut at its threshold later (NMS
        # is greedy by score, so boxes under a threshold never change those above it).
        options["score_threshold"] = min(
            self.config.score_floor, *(self.config.threshold(c) for c in yields)
        )
        ious = [self.config.nms_iou[c] for c in yields if c in self.config.nms_iou]
        if ious:
            options["nms_iou"] = min(ious)
        adapter_type = adapter_class(spec.family)
        config = adapter_type.config_type.from_mapping(options)
        model = self.model(name, adapter_type.image_input(config))
        return LoadedDetector(spec, adapter_type(model, config), self.config.model_threshold(name))

    def model(self, name: str, image: ImageInput | None) -> InferenceModel:
        """The model file ``name`` loaded on the backend (``image``: how it takes images)."""
        model = self.backend.load(self.store.files(name), image)
        self._runs[name] = (model.device, str(getattr(model, "precision", "")))
        return model

    def runs(self, name: str) -> tuple[str, str]:
        """Where a loaded model really runs: (device, precision); ("", "") if not loaded."""
        return self._runs.get(name, ("", ""))
