"""Batched plate looks with the real plate model: a frame's vehicle crops, their mirror images
and a large frame's tiles run in batches of one input shape (``plate_batch``), and find exactly
the plates that one look at a time finds."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from typing import Any

import cv2
import numpy as np
import pytest
from numpy.typing import NDArray

from obscura.pipeline.detect import Detector
from obscura.types import ImageArray, ObjectClass

pytestmark = pytest.mark.models

PLATE = ObjectClass.LICENSE_PLATE


def test_batched_plate_looks_find_the_plates_single_looks_find(
    detector: Detector,
    load_image: Callable[[str], ImageArray],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    search, plates = detector.plate_search, detector.plates
    assert search is not None
    assert plates is not None
    model = plates.adapter.model
    infer = model.infer
    batches: list[int] = []

    def counted(inputs: Mapping[str, NDArray[Any]]) -> list[NDArray[np.float32]]:
        batches.append(next(iter(inputs.values())).shape[0])
        return infer(inputs)

    monkeypatch.setattr(model, "infer", counted)
    car = load_image("opencv_licenseplate_motion.jpg")
    images: list[ImageArray] = [
        car,
        load_image("deface_city.jpg"),  # a street: cars, vans, pedestrians
        # over large_frame_side: its 1280 px tiles are looked at whole as well
        np.asarray(cv2.resize(car, (3000, 2400), interpolation=cv2.INTER_LINEAR), np.uint8),
    ]
    config = search.config
    assert config.plate_batch > 1  # the default batches
    batched = [detector.detect(image, {PLATE}) for image in images]
    looks = sum(batches)
    inferences = len(batches)
    assert max(batches) > 1
    batches.clear()
    monkeypatch.setattr(search, "config", dataclasses.replace(config, plate_batch=1))
    single = [detector.detect(image, {PLATE}) for image in images]
    assert set(batches) == {1}
    assert len(batches) == looks  # the same looks, one per inference
    assert inferences < looks
    assert [len(found) for found in single] == [1, 0, 1]  # the car's plate, at both sizes
    for got, want in zip(batched, single, strict=True):
        order, want_order = np.argsort(-got.scores), np.argsort(-want.scores)
        np.testing.assert_allclose(got.xyxy[order], want.xyxy[want_order], atol=1e-3)
        np.testing.assert_allclose(got.scores[order], want.scores[want_order], atol=1e-5)
