"""Shared fixtures: the real model store, real models, and the shared test media."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import cv2
import pytest

from obscura.backends import BackendConfig, ModelFiles, create_backend
from obscura.pipeline.detect import Detector, DetectorConfig
from obscura.types import ImageArray
from obscura.zoo.store import ModelStore

REPO = Path(__file__).resolve().parents[1]


def _data_dir() -> Path:
    env = os.environ.get("OBSCURA_TEST_DATA")
    return Path(env) if env else REPO.parent / "shared" / "data" / "public"


@pytest.fixture(scope="session")
def data_dir() -> Path:
    path = _data_dir()
    if not (path / "annotations.json").exists():
        pytest.fail(f"test media not found at {path} (set OBSCURA_TEST_DATA)")
    return path


@pytest.fixture(scope="session")
def load_image(data_dir: Path) -> Callable[[str], ImageArray]:
    def load(name: str) -> ImageArray:
        image = cv2.imread(str(data_dir / name), cv2.IMREAD_COLOR)
        assert image is not None, name
        return image

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
