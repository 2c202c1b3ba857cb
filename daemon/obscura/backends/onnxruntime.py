"""ONNX Runtime backend: CUDA execution provider where present, else CPU."""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Mapping
from typing import Any

import numpy as np
from numpy.typing import NDArray

from obscura.backends.base import (
    BackendConfig,
    ImageInput,
    InferenceModel,
    LoadedModelBase,
    ModelFiles,
    TensorInfo,
)
from obscura.errors import ConfigError, ModelStoreError

log = logging.getLogger(__name__)


def _dim(d: object) -> int:
    return d if isinstance(d, int) else -1


class ONNXRuntimeModel(LoadedModelBase):
    def __init__(
        self, name: str, session: Any, device: str, image: ImageInput | None = None
    ) -> None:
        inputs = [
            TensorInfo(i.name, tuple(_dim(d) for d in i.shape), str(i.type))
            for i in session.get_inputs()
        ]
        super().__init__(name, inputs, device, image)
        self._session = session

    def infer(self, inputs: Mapping[str, NDArray[Any]]) -> list[NDArray[np.float32]]:
        feed = {k: np.ascontiguousarray(v) for k, v in inputs.items()}
        if self.image_input is not None:
            first = self.inputs[0].name
            feed[first] = self.image_input.to_tensor(feed[first])
        outputs = self._session.run(None, feed)
        return [np.asarray(o) for o in outputs]


class ONNXRuntimeBackend:
    name = "onnxruntime"

    def __init__(self, config: BackendConfig) -> None:
        try:
            import onnxruntime
        except ImportError as exc:  # pragma: no cover - depends on the installation
            raise ConfigError(
                "backend.runtime = onnxruntime needs the onnx extra: pip install 'obscura[onnx]'"
            ) from exc
        self._ort = onnxruntime
        self._config = config
        available = onnxruntime.get_available_providers()
        wants_cuda = config.device.lower() in ("cuda", "gpu", "auto")
        if wants_cuda and "CUDAExecutionProvider" in available:
            self._providers = ["CUDAExecutionProvider", "CPUExecutionProvider"]
        else:
            if config.device.lower() in ("cuda", "gpu"):
                log.warning("CUDA execution provider not available; ONNX Runtime runs on CPU")
            self._providers = ["CPUExecutionProvider"]

    def load(self, files: ModelFiles, image: ImageInput | None = None) -> InferenceModel:
        if files.onnx is None or not files.onnx.exists():
            if files.ir_xml is not None and files.ir_xml.exists():
                # Models whose source is not ONNX (TFLite) exist only as OpenVINO IR; OpenVINO
                # runs them on the CPU, which every machine Obscura runs on has.
                log.warning("%s has no ONNX form; running it with OpenVINO on CPU", files.name)
                from obscura.backends.openvino import OpenVINOBackend

                cpu = dataclasses.replace(self._config, runtime="openvino", device="CPU")
                return OpenVINOBackend(cpu).load(files, image)
            raise ModelStoreError(
                f"model {files.name!r} has no ONNX or OpenVINO IR file; run `obscura models fetch`"
            )
        options = self._ort.SessionOptions()
        if self._config.num_threads:
            options.intra_op_num_threads = self._config.num_threads
        options.log_severity_level = 3
        session = self._ort.InferenceSession(
            str(files.onnx), sess_options=options, providers=self._providers
        )
        device = "cuda" if session.get_providers()[0] == "CUDAExecutionProvider" else "cpu"
        log.info("loaded %s on ONNX Runtime %s", files.name, device)
        return ONNXRuntimeModel(files.name, session, device, image)
