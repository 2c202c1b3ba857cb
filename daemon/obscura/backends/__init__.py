"""Inference runtimes behind one small interface."""

from obscura.backends.base import (
    Backend,
    BackendConfig,
    InferenceModel,
    ModelFiles,
    TensorInfo,
    create_backend,
)

__all__ = [
    "Backend",
    "BackendConfig",
    "InferenceModel",
    "ModelFiles",
    "TensorInfo",
    "create_backend",
]
