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
    """With the default detector, 5 false plates on the 25 photos (f32, on an AVX-512 VNNI
    Intel Xeon): three boxes on a shelf of books the object model takes for a vehicle, and
    badges held or worn low on the people of two portraits. Without the closer look
    (plate_alone_check) a road sign, a blurred page and a clock come back; without
    plate_alone_score, 15. The scanned pages over 2560 px hold none: their tiles keep
    only plates a quarter of a tile wide or less (there were 9, all near a tile's width)."""
    found = false_plates(detector, data_dir)
    assert sum(found.values()) <= 6, found
    for photo in (
        "platefree_footballer_unicef_shirt.jpg",  # a shirt, high on a person
        "platefree_czech_newspaper_front.jpg",  # a page, no vehicle
        "platefree_sign_wivenhoe_directions.jpg",  # a road sign, looked at closer
        "platefree_page_motion_blur.jpg",  # a blurred page, looked at closer
        "platefree_typewriter_recipe_scan.png",  # scans: tiles cut their text blocks
        "platefree_linn_sequencer_sheet_scan.png",
    ):
        assert found[photo] == 0, photo
    assert detector.plate_search is not None
    search = detector.plate_search
    monkeypatch.setattr(
        search, "config", dataclasses.replace(search.config, plate_alone_check=False)
    )
    unchecked = false_plates(detector, data_dir)
    assert unchecked["platefree_sign_wivenhoe_directions.jpg"] == 1
    assert unchecked["platefree_page_motion_blur.jpg"] == 1
    monkeypatch.setattr(search, "config", dataclasses.replace(search.config, plate_alone_score=0.0))
    without = false_plates(detector, data_dir)
    assert sum(without.values()) >= sum(found.values()) + 8, without
