"""The plate check's recipe (obscura_tools.platecheck) without PyTorch: how candidates are
labelled, which half a photo falls in, and the ONNX network it writes, run on OpenVINO against
a forward pass in numpy."""

from __future__ import annotations

import re
from importlib import resources
from pathlib import Path

import cv2
import numpy as np
import onnx
import pytest

from obscura.backends import BackendConfig, ModelFiles
from obscura.backends.openvino import OpenVINOBackend
from obscura.pipeline.plates import CHECK_INPUT, CHECK_SIZE, PlateCheck
from obscura.types import Detections
from obscura_tools.platebench.build import load_photos
from obscura_tools.platecheck import (
    CHANNELS,
    collect_everyday,
    label_candidates,
    photo_half,
    reference,
    to_onnx,
)


def random_weights(seed: int) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    weights = []
    before = 3
    for width in CHANNELS:
        weights.append(rng.normal(0, (2 / (9 * before)) ** 0.5, (width, before, 3, 3)))
        weights.append(rng.normal(0, 0.1, width))
        before = width
    weights += [rng.normal(0, 1, (1, before)), rng.normal(0, 0.1, 1)]
    return [w.astype(np.float32) for w in weights]


def test_the_onnx_network_is_the_numpy_one(tmp_path: Path) -> None:
    """The ONNX file the recipe writes, loaded like the pipeline loads plate-check (BGR
    uint8 patches in), gives what the numpy forward pass gives on the same patches."""
    weights = random_weights(0)
    path = tmp_path / "check.onnx"
    onnx.save(to_onnx(weights), str(path))
    model = OpenVINOBackend(BackendConfig(precision="f32")).load(
        ModelFiles("check", onnx=path), CHECK_INPUT
    )
    rng = np.random.default_rng(1)
    w, h = CHECK_SIZE
    patches = rng.integers(0, 256, (5, h, w, 3), dtype=np.uint8)
    got = PlateCheck(model)
    # PlateCheck cuts its own patches: give it boxes whose patch is the whole image.
    for patch in patches:
        want = reference(weights, patch[None].transpose(0, 3, 1, 2).astype(np.float32) / 255)
        box = np.array([[w / 4, h / 4, 3 * w / 4, 3 * h / 4]], np.float32)
        np.testing.assert_allclose(got(patch, box), want.reshape(-1), atol=1e-4)
    # A batch at once, straight into the model: the same, row by row.
    batch = model.infer({model.inputs[0].name: patches})[0]
    want = reference(weights, patches.transpose(0, 3, 1, 2).astype(np.float32) / 255)
    np.testing.assert_allclose(batch, want, atol=1e-4)
    assert float(batch.min()) > 0.0
    assert float(batch.max()) < 1.0


def test_candidates_are_plates_not_plates_or_left_out() -> None:
    truth = np.array([[100, 100, 140, 120], [300, 100, 312, 105]], np.float32)
    boxes = np.array(
        [
            [101, 100, 141, 120],  # on the first plate: a plate
            [120, 100, 160, 120],  # half on it (IoU 0.33): neither
            [500, 300, 540, 320],  # on nothing: not a plate
            [300, 100, 312, 105],  # on a plate too small to count: a plate all the same
        ],
        np.float32,
    )
    assert label_candidates(boxes, truth).tolist() == [1, -1, 0, 1]
    assert label_candidates(boxes, truth[:0]).tolist() == [0, 0, 0, 0]


def test_photos_fall_in_two_halves_by_name() -> None:
    names = [f"photo_{i}" for i in range(40)]
    halves = [photo_half(n) for n in names]
    assert set(halves) == {0, 1}
    assert halves == [photo_half(n) for n in names]  # the same every time


def test_everyday_pictures_are_pinned_and_apart_from_the_test_photos() -> None:
    """The hard negatives' list: every file pinned by its sha256, names unique (they share one
    folder), and none of them a photo the tests or the plate benchmark use, so that the
    plate-free test photos measure the check on pictures it never saw."""
    text = resources.files("obscura_tools.platebench").joinpath("everyday.toml").read_text()
    photos = load_photos(text)
    files = [f for photo in photos.values() for f in photo.sample.source.files]
    assert len(files) > 100
    assert all(re.fullmatch(r"[0-9a-f]{64}", f.sha256) for f in files)
    names = [Path(f.path).name for f in files]
    assert len(set(names)) == len(names)
    root = Path(__file__).resolve().parents[3]
    used = (root / "tests/data/media.toml").read_text() + (
        resources.files("obscura_tools.platebench").joinpath("photos.toml").read_text()
    )
    pinned = set(re.findall(r'sha256 = "([0-9a-f]{64})"', used))
    assert not pinned & {f.sha256 for f in files}


def test_every_box_on_an_everyday_picture_is_no_plate(tmp_path: Path) -> None:
    """collect_everyday: each box the detector draws becomes a patch labelled 'not a plate',
    named after its picture; a picture with no box adds nothing."""
    rng = np.random.default_rng(2)
    pictures = []
    for name in ("sign.png", "page.png"):
        pictures.append(tmp_path / name)
        cv2.imwrite(str(pictures[-1]), rng.integers(0, 255, (120, 200, 3), dtype=np.uint8))

    def detect(image: np.ndarray) -> Detections:
        if image.shape != (120, 200, 3):
            raise AssertionError(image.shape)
        boxes = np.array([[10, 10, 50, 25], [100, 60, 160, 80]], np.float32)
        return Detections(boxes, np.array([0.6, 0.3], np.float32), np.zeros(2, np.int32))

    looks: list[Detections] = []

    def first_only(image: np.ndarray) -> Detections:
        looks.append(detect(image) if not looks else Detections())
        return looks[-1]

    samples = collect_everyday(pictures, first_only)
    w, h = CHECK_SIZE
    assert samples.patches.shape == (2, h, w, 3)
    assert samples.labels.tolist() == [0, 0]
    assert samples.scores.tolist() == pytest.approx([0.6, 0.3])
    assert samples.photos == ["everyday/sign.png", "everyday/sign.png"]
