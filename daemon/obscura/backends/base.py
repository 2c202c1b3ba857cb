"""The one small seam between model adapters and inference runtimes.

A backend only moves tensors: it loads a model file and runs it on named numpy inputs,
returning the outputs in the model's own output order. Model adapters own everything else.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal, Protocol

import numpy as np
from numpy.typing import NDArray

from obscura.errors import ConfigError

PerformanceHint = Literal["LATENCY", "THROUGHPUT"]
Precision = Literal["f32", "f16", "bf16", "auto"]


@dataclass(frozen=True)
class TensorInfo:
    name: str
    shape: tuple[int, ...]  # -1 marks a dynamic dimension
    dtype: str


@dataclass(frozen=True)
class ModelFiles:
    """The files of one prepared model: OpenVINO IR and, where the source was ONNX, the ONNX."""

    name: str
    ir_xml: Path | None = None
    onnx: Path | None = None


@dataclass(frozen=True)
class BackendConfig:
    """How to run models: which runtime, on which device, tuned for what."""

    runtime: Literal["openvino", "onnxruntime"] = "openvino"
    device: str = "CPU"  # OpenVINO: CPU, GPU, AUTO, ...; ONNX Runtime: cuda or cpu
    hint: PerformanceHint = "LATENCY"
    precision: Precision = "f32"
    num_threads: int = 0  # 0: runtime default

    def __post_init__(self) -> None:
        if self.runtime not in ("openvino", "onnxruntime"):
            raise ConfigError(
                f"backend.runtime must be openvino or onnxruntime, not {self.runtime!r}"
            )
        if self.hint not in ("LATENCY", "THROUGHPUT"):
            raise ConfigError(f"backend.hint must be LATENCY or THROUGHPUT, not {self.hint!r}")
        if self.precision not in ("f32", "f16", "bf16", "auto"):
            raise ConfigError(
                f"backend.precision must be f32, f16, bf16 or auto, not {self.precision!r}"
            )
        if self.num_threads < 0:
            raise ConfigError(f"backend.num_threads must be >= 0, not {self.num_threads}")


class InferenceModel(Protocol):
    """A loaded model that runs inference."""

    @property
    def name(self) -> str: ...

    @property
    def inputs(self) -> Sequence[TensorInfo]: ...

    @property
    def device(self) -> str: ...

    def infer(self, inputs: Mapping[str, NDArray[np.float32]]) -> list[NDArray[np.float32]]:
        """Runs one inference; returns the outputs in the model's output order."""
        ...


class LoadedModelBase:
    """What every backend's loaded model shares: its name, inputs and device."""

    def __init__(self, name: str, inputs: Sequence[TensorInfo], device: str) -> None:
        self.name = name
        self.inputs: Sequence[TensorInfo] = tuple(inputs)
        self.device = device


class Backend(Protocol):
    name: str

    def load(self, files: ModelFiles) -> InferenceModel: ...


def create_backend(config: BackendConfig) -> Backend:
    """Returns the backend that ``config.runtime`` names (runtimes are imported lazily)."""
    if config.runtime == "openvino":
        from obscura.backends.openvino import OpenVINOBackend

        return OpenVINOBackend(config)
    from obscura.backends.onnxruntime import ONNXRuntimeBackend

    return ONNXRuntimeBackend(config)
