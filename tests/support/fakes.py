"""Test doubles for the layers above the backends (never a substitute for the real path)."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np
from numpy.typing import NDArray

from obscura.backends import ImageInput, TensorInfo

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
