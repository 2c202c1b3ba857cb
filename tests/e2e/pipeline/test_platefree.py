"""No plate where there is none: the plate-free photos of the test media (scene text, signs,
shirts, screens, documents, crowds; ``platefree_*`` in tests/data/media.toml) hold no vehicle
licence plate, so every plate found on them is a false one."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import cv2
import pytest
from support.images import read_image

from obscura.pipeline.detect import Detector
from obscura.types import ObjectClass

PLATE = ObjectClass.LICENSE_PLATE


def false_plates(detector: Detector, data_dir: Path) -> dict[str, int]:
    photos = sorted(data_dir.glob("platefree_*"))
    assert len(photos) == 25
    out = {}
    for photo in photos:
        image = read_image(photo, cv2.IMREAD_COLOR)
        out[photo.name] = len(detector.detect(image, {PLATE}))
    return out


@pytest.mark.models
def test_a_plate_away_from_every_vehicle_and_rider_needs_a_surer_score(
    detector: Detector, data_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With the default detector (plate_alone_score 0.5), 17 false plates on the 25 photos;
    with the rule off, 30 (f32, on an AVX-512 VNNI Intel Xeon). Nine of the 17 are on two
    scanned pages over 2560 px, which the large-frame tiles look at closely (8 on one); the
    rest: three boxes on a shelf of books the object model takes for a vehicle, a road sign
    and a blurred page above 0.5, and things held or worn low on the people of portraits."""
    found = false_plates(detector, data_dir)
    assert sum(found.values()) <= 18, found
    assert found["platefree_footballer_unicef_shirt.jpg"] == 0  # a shirt, high on a person
    assert found["platefree_czech_newspaper_front.jpg"] == 0  # a page, no vehicle
    assert detector.plate_search is not None
    config = dataclasses.replace(detector.config, plate_alone_score=0.0)
    monkeypatch.setattr(detector.plate_search, "config", config)
    without = false_plates(detector, data_dir)
    assert sum(without.values()) >= sum(found.values()) + 8, without
