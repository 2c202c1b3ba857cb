"""Inference runtimes behind one small interface."""

from obscura.backends.base import (
    Backend,
    BackendConfig,
    ImageInput,
    InferenceModel,
    ModelFiles,
    TensorInfo,
)
from obscura.backends.select import create_backend

__all__ = [
    "Backend",
    "BackendConfig",
    "ImageInput",
    "InferenceModel",
    "ModelFiles",
    "TensorInfo",
    "create_backend",
]
