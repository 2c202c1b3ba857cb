"""Test doubles for the layers above the backends (never a substitute for the real path)."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Collection, Mapping, Sequence
from typing import Any

import numpy as np
from numpy.typing import NDArray

from obscura.backends import ImageInput, TensorInfo
from obscura.types import Detections, ImageArray, ObjectClass

Outputs = list[NDArray[np.float32]]


class FakeModel:
    """An InferenceModel whose outputs come from a function of the inputs."""

    def __init__(
        self,
        produce: Callable[[Mapping[str, NDArray[np.float32]]], Outputs],
        input_name: str = "input",
        shape: tuple[int, ...] = (1, 3, -1, -1),
        image: ImageInput | None = None,
    ) -> None:
        self._produce = produce
        self._inputs = [TensorInfo(input_name, shape, "f32")]
        self._image = image
        self.calls: list[dict[str, tuple[int, ...]]] = []
        self.batches_freely = True  # as a backend's loaded model says (see LoadedModelBase)

    @property
    def name(self) -> str:
        return "fake"

    @property
    def inputs(self) -> Sequence[TensorInfo]:
        return self._inputs

    @property
    def device(self) -> str:
        return "fake"

    @property
    def image_input(self) -> ImageInput | None:
        return self._image

    def infer(self, inputs: Mapping[str, NDArray[Any]]) -> Outputs:
        """Like a backend, converts BGR uint8 batches to the model's own input first."""
        if self._image is not None:
            first = self._inputs[0].name
            inputs = {**inputs, first: self._image.to_tensor(inputs[first])}
        self.calls.append({k: v.shape for k, v in inputs.items()})
        return self._produce(inputs)


class FixedDetector:
    """The same detections for every image, kept by class and score like the real detector's.

    It stands in for the detector below the frame job (``FrameProcessor``), records the
    thresholds each call was given and counts calls; ``delay`` seconds per call make it slow.
    """

    def __init__(self, det: Detections, delay: float = 0.0) -> None:
        self.det = det
        self.delay = delay
        self.calls = 0
        self.thresholds: list[Mapping[ObjectClass, float] | None] = []
        self.lock = threading.Lock()

    def thresholds_for(
        self, overrides: Mapping[ObjectClass, float] | None
    ) -> dict[ObjectClass, float]:
        return {**dict.fromkeys(ObjectClass, 0.3), **(overrides or {})}

    def detect(
        self,
        image: ImageArray,
        classes: Collection[ObjectClass],
        thresholds: Mapping[ObjectClass, float] | None,
        timings: dict[str, float] | None = None,
        **_: Any,
    ) -> Detections:
        with self.lock:
            self.calls += 1
            self.thresholds.append(thresholds)
        if self.delay:
            time.sleep(self.delay)
        cut = self.thresholds_for(thresholds)
        keep = np.array(
            [
                ObjectClass(c) in classes and s >= cut[ObjectClass(c)]
                for c, s in zip(self.det.class_ids, self.det.scores, strict=True)
            ],
            dtype=bool,
        )
        return self.det[keep]
