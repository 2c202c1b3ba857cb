"""The one small seam between model adapters and inference runtimes.

A backend only moves tensors: it loads a model file and runs it on named numpy inputs,
returning the outputs in the model's own output order. Model adapters own everything else.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, Protocol

import numpy as np
from numpy.typing import NDArray

from obscura.errors import ConfigError

PerformanceHint = Literal["LATENCY", "THROUGHPUT"]
Precision = Literal["int8", "f32", "f16", "bf16", "auto"]
# cuDNN's DEFAULT (one fixed algorithm) is left out: with it ONNX Runtime 1.31's convolutions
# ran in a "fallback mode" and concurrent runs failed with illegal memory accesses (H200).
CUDA_CONV_SEARCHES = ("HEURISTIC", "EXHAUSTIVE")


@dataclass(frozen=True)
class TensorInfo:
    name: str
    shape: tuple[int, ...]  # -1 marks a dynamic dimension
    dtype: str


@dataclass(frozen=True)
class ModelFiles:
    """The files of one prepared model: OpenVINO IR and, where the source was ONNX, the ONNX;
    ``ir_int8`` is the INT8-quantized IR where the store has made one (registry models only;
    a user's own model file is run as it is)."""

    name: str
    ir_xml: Path | None = None
    onnx: Path | None = None
    ir_int8: Path | None = None
    from_registry: bool = False


@dataclass(frozen=True)
class BackendConfig:
    """How to run models: which runtime, on which device, tuned for what."""

    runtime: Literal["openvino", "onnxruntime"] = "openvino"
    # OpenVINO: CPU, GPU, AUTO, ...; ONNX Runtime: cuda (cuda:N), auto (CUDA where it loads,
    # else OpenVINO CPU) or cpu
    device: str = "CPU"
    hint: PerformanceHint = "LATENCY"
    # OpenVINO: int8 runs the store's INT8 variants (obscura.quantize); the others set the
    # inference precision of the full-precision IR. ONNX Runtime runs the ONNX file as it is.
    precision: Precision = "int8"
    num_threads: int = 0  # 0: runtime default
    # ONNX Runtime on CUDA: how cuDNN picks convolution algorithms per input shape (HEURISTIC:
    # its heuristics; EXHAUSTIVE: each one timed, once per new shape).
    cuda_conv_search: str = "HEURISTIC"

    def __post_init__(self) -> None:
        if self.runtime not in ("openvino", "onnxruntime"):
            raise ConfigError(
                f"backend.runtime must be openvino or onnxruntime, not {self.runtime!r}"
            )
        if self.hint not in ("LATENCY", "THROUGHPUT"):
            raise ConfigError(f"backend.hint must be LATENCY or THROUGHPUT, not {self.hint!r}")
        if self.precision not in ("int8", "f32", "f16", "bf16", "auto"):
            raise ConfigError(
                f"backend.precision must be int8, f32, f16, bf16 or auto, not {self.precision!r}"
            )
        if self.num_threads < 0:
            raise ConfigError(f"backend.num_threads must be >= 0, not {self.num_threads}")
        if self.cuda_conv_search not in CUDA_CONV_SEARCHES:
            raise ConfigError(
                f"backend.cuda_conv_search must be {', '.join(CUDA_CONV_SEARCHES)}, "
                f"not {self.cuda_conv_search!r}"
            )


@dataclass(frozen=True)
class ImageInput:
    """How a model's image input is made from a BGR ``uint8`` batch (N, H, W, 3).

    A model loaded with one takes that batch as its input and does the rest itself: OpenVINO
    folds the conversion into the graph (``PrePostProcessor``: no float copy of the frame in
    Python, one fused pass in the runtime), ONNX Runtime in numpy (:meth:`to_tensor`).
    """

    rgb: bool = False  # the model wants RGB
    mean: tuple[float, float, float] = (0.0, 0.0, 0.0)  # in the model's channel order
    scale: tuple[float, float, float] = (1.0, 1.0, 1.0)  # input = (pixel - mean) / scale
    channels_last: bool = False  # the model's own input is NHWC (else NCHW)

    def __post_init__(self) -> None:
        if len(self.mean) != 3 or len(self.scale) != 3:
            raise ConfigError("image input mean and scale must hold 3 values")
        if any(s <= 0 for s in self.scale):
            raise ConfigError(f"image input scale must be positive, got {self.scale}")

    def to_tensor(self, batch: NDArray[np.uint8]) -> NDArray[np.float32]:
        """The model's float input for a BGR ``uint8`` batch, computed in numpy."""
        pixels = batch[..., ::-1] if self.rgb else batch
        tensor = pixels.astype(np.float32)
        if any(self.mean):
            tensor -= np.asarray(self.mean, dtype=np.float32)
        if any(s != 1.0 for s in self.scale):
            tensor *= np.float32(1.0) / np.asarray(self.scale, dtype=np.float32)
        if not self.channels_last:
            tensor = tensor.transpose(0, 3, 1, 2)
        return np.ascontiguousarray(tensor)


class InferenceModel(Protocol):
    """A loaded model that runs inference."""

    @property
    def name(self) -> str: ...

    @property
    def inputs(self) -> Sequence[TensorInfo]: ...

    @property
    def device(self) -> str: ...

    @property
    def image_input(self) -> ImageInput | None:
        """Set where the model takes BGR ``uint8`` batches for its first input."""
        ...

    def infer(self, inputs: Mapping[str, NDArray[Any]]) -> list[NDArray[np.float32]]:
        """Runs one inference; returns the outputs in the model's output order. The inputs
        are float tensors in the model's own layout, or for the first input of a model loaded
        with an :class:`ImageInput` a BGR ``uint8`` batch (N, H, W, 3)."""
        ...


class LoadedModelBase:
    """What every backend's loaded model shares: its name, inputs (as the model file declares
    them, before any image-input conversion), device (what it really runs on: an OpenVINO
    device such as ``CPU``, or an ONNX Runtime provider such as ``CUDAExecutionProvider``),
    image input and the precision it runs at."""

    def __init__(
        self,
        name: str,
        inputs: Sequence[TensorInfo],
        device: str,
        image_input: ImageInput | None = None,
        precision: str = "",
    ) -> None:
        self.name = name
        self.inputs: Sequence[TensorInfo] = tuple(inputs)
        self.device = device
        self.image_input = image_input
        self.precision = precision
        # Whether the runtime runs batches of any size at no more than their shape's cost (see
        # ModelAdapter.detect_many); a runtime for which each new input shape is costly says no.
        self.batches_freely = True


class Backend(Protocol):
    name: str

    def load(self, files: ModelFiles, image: ImageInput | None = None) -> InferenceModel: ...
