"""No plate where there is none: the plate-free photos of the test media (scene text, signs,
shirts, screens, documents, crowds; ``platefree_*`` in tests/data/media.toml) hold no vehicle
licence plate, so every plate found on them is a false one."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import cv2
import pytest
from support.images import read_image
from support.videos import decode_all

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
    # The rules below, each without the plate check (see the test after this one).
    monkeypatch.setattr(search, "check", None)
    monkeypatch.setattr(
        search, "config", dataclasses.replace(search.config, plate_alone_check=False)
    )
    unchecked = false_plates(detector, data_dir)
    assert unchecked["platefree_sign_wivenhoe_directions.jpg"] == 1
    assert unchecked["platefree_page_motion_blur.jpg"] == 1
    monkeypatch.setattr(search, "config", dataclasses.replace(search.config, plate_alone_score=0.0))
    without = false_plates(detector, data_dir)
    assert sum(without.values()) >= sum(found.values()) + 8, without


@pytest.mark.models
def test_the_plate_check_drops_false_plates_and_keeps_real_ones(
    detector: Detector, data_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The plate check (``plate-check``) takes away false plates the other rules leave on
    the plate-free photos (f32: 5 to 4; INT8 on a 2-core AMD EPYC: 8 to 4; what is left
    scores 0.5 or more, which the check is not asked about), and keeps the real plates of
    the test media: the photo of a plate, and the parked car's plate on the street clip
    (12 px wide: under ``plate_check_width``, not asked)."""
    assert detector.plate_check is not None
    search = detector.plate_search
    assert search is not None
    checked = false_plates(detector, data_dir)
    plate_photo = read_image(data_dir / "opencv_licenseplate_motion.jpg", cv2.IMREAD_COLOR)
    with_check = detector.detect(plate_photo, {PLATE})
    clip = decode_all(data_dir / "opencv_vtest_first100.mp4")[:40]
    clip_checked = sum(len(detector.detect(frame, {PLATE})) for frame in clip)
    monkeypatch.setattr(search, "check", None)
    unchecked = false_plates(detector, data_dir)
    assert sum(checked.values()) < sum(unchecked.values()), (checked, unchecked)
    assert all(checked[name] <= unchecked[name] for name in checked)
    assert len(with_check) == len(detector.detect(plate_photo, {PLATE})) == 1
    clip_unchecked = sum(len(detector.detect(frame, {PLATE})) for frame in clip)
    assert clip_checked == clip_unchecked
    assert clip_checked >= 20  # the parked car's plate, in most of the 40 frames
