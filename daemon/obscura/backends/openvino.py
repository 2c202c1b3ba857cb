"""OpenVINO backend: Intel CPU, integrated GPU (``GPU``) or ``AUTO``."""

from __future__ import annotations

import logging
import threading
from collections.abc import Mapping
from typing import Any

import numpy as np
import openvino as ov
from numpy.typing import NDArray

from obscura.backends.base import (
    BackendConfig,
    ImageInput,
    LoadedModelBase,
    ModelFiles,
    TensorInfo,
)
from obscura.errors import ModelStoreError

log = logging.getLogger(__name__)

_PRECISIONS = {"f32": "f32", "f16": "f16", "bf16": "bf16"}


def _shape(partial: ov.PartialShape) -> tuple[int, ...]:
    return tuple(d.get_length() if d.is_static else -1 for d in partial)


class OpenVINOModel(LoadedModelBase):
    def __init__(
        self,
        name: str,
        compiled: ov.CompiledModel,
        device: str,
        inputs: list[TensorInfo] | None = None,
        image: ImageInput | None = None,
        *,
        precision: str = "",
    ) -> None:
        if inputs is None:
            inputs = [
                TensorInfo(
                    p.get_any_name(), _shape(p.get_partial_shape()), str(p.get_element_type())
                )
                for p in compiled.inputs
            ]
        super().__init__(name, inputs, device, image, precision)
        self._compiled = compiled
        # One infer request per thread: requests are not thread-safe, the compiled model is.
        self._local = threading.local()

    @property
    def compiled(self) -> ov.CompiledModel:
        """The compiled model (for the benchmark's async queues)."""
        return self._compiled

    def infer(self, inputs: Mapping[str, NDArray[Any]]) -> list[NDArray[np.float32]]:
        request: ov.InferRequest | None = getattr(self._local, "request", None)
        if request is None:
            request = self._compiled.create_infer_request()
            self._local.request = request
        request.infer({k: np.ascontiguousarray(v) for k, v in inputs.items()})
        # Copy: the request reuses its output buffers on the next call.
        return [
            np.array(request.get_output_tensor(i).data) for i in range(len(self._compiled.outputs))
        ]


def with_image_input(model: ov.Model, image: ImageInput) -> ov.Model:
    """``model`` taking a BGR ``uint8`` NHWC batch for its first input, converted in-graph."""
    from openvino.preprocess import ColorFormat, PrePostProcessor

    ppp = PrePostProcessor(model)
    first = ppp.input(model.inputs[0].get_any_name())
    first.tensor().set_element_type(ov.Type.u8).set_layout(ov.Layout("NHWC")).set_color_format(
        ColorFormat.BGR
    )
    first.model().set_layout(ov.Layout("NHWC" if image.channels_last else "NCHW"))
    steps = first.preprocess().convert_element_type(ov.Type.f32)
    if image.rgb:
        steps.convert_color(ColorFormat.RGB)
    if any(image.mean):
        steps.mean(list(image.mean))
    if any(s != 1.0 for s in image.scale):
        steps.scale(list(image.scale))
    return ppp.build()


class OpenVINOBackend:
    name = "openvino"

    def __init__(self, config: BackendConfig) -> None:
        self._config = config
        self._core = ov.Core()

    @property
    def available_devices(self) -> list[str]:
        return list(self._core.available_devices)

    def load(self, files: ModelFiles, image: ImageInput | None = None) -> OpenVINOModel:
        path = files.ir_xml or files.onnx
        precision = self._config.precision
        if precision == "int8":
            if files.ir_int8 is not None:
                path = files.ir_int8
            elif files.from_registry:
                # A registry model without its INT8 variant: the store was filled before
                # quantization existed, or quantizing was skipped. Say so rather than guess.
                raise ModelStoreError(
                    f"model {files.name!r} has no INT8 variant; run `obscura models quantize` "
                    '(or set backend.precision = "f32")'
                )
        if path is None or not path.exists():
            raise ModelStoreError(
                f"model {files.name!r} has no OpenVINO IR or ONNX file; run `obscura models fetch`"
            )
        if precision == "int8" and path != files.ir_int8:
            log.info("model %s: a local model, run at the precision of its file", files.name)
        model = self._core.read_model(str(path))
        inputs = [
            TensorInfo(p.get_any_name(), _shape(p.get_partial_shape()), str(p.get_element_type()))
            for p in model.inputs
        ]
        if image is not None:
            model = with_image_input(model, image)
        properties: dict[str, Any] = {"PERFORMANCE_HINT": self._config.hint}
        device = self._config.device
        if precision in _PRECISIONS:
            properties["INFERENCE_PRECISION_HINT"] = _PRECISIONS[precision]
        elif precision == "int8":
            # Layers left in floating point run at f32 (bf16 bought no speed on INT8 models).
            properties["INFERENCE_PRECISION_HINT"] = "f32"
        if self._config.num_threads and device == "CPU":
            properties["INFERENCE_NUM_THREADS"] = self._config.num_threads
        compiled = self._core.compile_model(model, device, properties)
        log.info("loaded %s on OpenVINO %s (%s)", files.name, device, path.name)
        runs_at = precision if precision != "int8" else "int8" if path == files.ir_int8 else "file"
        return OpenVINOModel(files.name, compiled, device, inputs, image, precision=runs_at)
