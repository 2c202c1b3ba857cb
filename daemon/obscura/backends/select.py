"""The backend a configuration names; each runtime is imported only when it is chosen."""

from __future__ import annotations

from obscura.backends.base import Backend, BackendConfig


def create_backend(config: BackendConfig) -> Backend:
    """Returns the backend that ``config.runtime`` names (runtimes are imported lazily)."""
    if config.runtime == "openvino":
        from obscura.backends.openvino import OpenVINOBackend

        return OpenVINOBackend(config)
    from obscura.backends.onnxruntime import ONNXRuntimeBackend

    return ONNXRuntimeBackend(config)
