"""OpenVINO backend: Intel CPU, integrated GPU (``GPU``) or ``AUTO``."""

from __future__ import annotations

import logging
import threading
from collections.abc import Mapping
from typing import Any

import numpy as np
import openvino as ov
from numpy.typing import NDArray

from obscura.backends.base import BackendConfig, LoadedModelBase, ModelFiles, TensorInfo
from obscura.errors import ModelStoreError

log = logging.getLogger(__name__)

_PRECISIONS = {"f32": "f32", "f16": "f16", "bf16": "bf16"}


def _shape(partial: ov.PartialShape) -> tuple[int, ...]:
    return tuple(d.get_length() if d.is_static else -1 for d in partial)


class OpenVINOModel(LoadedModelBase):
    def __init__(self, name: str, compiled: ov.CompiledModel, device: str) -> None:
        inputs = [
            TensorInfo(p.get_any_name(), _shape(p.get_partial_shape()), str(p.get_element_type()))
            for p in compiled.inputs
        ]
        super().__init__(name, inputs, device)
        self._compiled = compiled
        # One infer request per thread: requests are not thread-safe, the compiled model is.
        self._local = threading.local()

    def infer(self, inputs: Mapping[str, NDArray[np.float32]]) -> list[NDArray[np.float32]]:
        request: ov.InferRequest | None = getattr(self._local, "request", None)
        if request is None:
            request = self._compiled.create_infer_request()
            self._local.request = request
        request.infer({k: np.ascontiguousarray(v) for k, v in inputs.items()})
        # Copy: the request reuses its output buffers on the next call.
        return [
            np.array(request.get_output_tensor(i).data) for i in range(len(self._compiled.outputs))
        ]


class OpenVINOBackend:
    name = "openvino"

    def __init__(self, config: BackendConfig) -> None:
        self._config = config
        self._core = ov.Core()

    @property
    def available_devices(self) -> list[str]:
        return list(self._core.available_devices)

    def load(self, files: ModelFiles) -> OpenVINOModel:
        path = files.ir_xml or files.onnx
        if path is None or not path.exists():
            raise ModelStoreError(
                f"model {files.name!r} has no OpenVINO IR or ONNX file; run `obscura models fetch`"
            )
        model = self._core.read_model(str(path))
        properties: dict[str, Any] = {"PERFORMANCE_HINT": self._config.hint}
        device = self._config.device
        if self._config.precision in _PRECISIONS:
            properties["INFERENCE_PRECISION_HINT"] = _PRECISIONS[self._config.precision]
        if self._config.num_threads and device == "CPU":
            properties["INFERENCE_NUM_THREADS"] = self._config.num_threads
        compiled = self._core.compile_model(model, device, properties)
        log.info("loaded %s on OpenVINO %s (%s)", files.name, device, path.name)
        return OpenVINOModel(files.name, compiled, device)
