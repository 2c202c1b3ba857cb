"""A vehicle crop that cuts a plate: the plate model boxes the part it sees, a box that would
take the place of the crop's own plate. Where the crop's edge lies inside the frame, such a
box is dropped (the plate is seen whole elsewhere); at the frame's own edge it is kept, for
nothing else sees more of that plate."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pytest

from obscura.pipeline.detect import Detector
from obscura.pipeline.plates import CUT_EDGE, Crop, resized, touches
from obscura.types import ImageArray, ObjectClass

PLATE = ObjectClass.LICENSE_PLATE


def test_boxes_at_a_cut_edge_are_told_apart() -> None:
    boxes = np.array(
        [[0, 40, 30, 50], [40, 0, 60, 10], [70, 40, 100, 50], [40, 45, 60, 60], [40, 30, 60, 40]],
        np.float32,
    )
    shape = (60, 100, 3)
    assert touches(boxes, shape, (False, False, False, False)).tolist() == [False] * 5
    assert touches(boxes, shape, (True, True, True, True)).tolist() == [True] * 4 + [False]
    assert touches(boxes, shape, (False, False, True, False)).tolist() == [
        False, False, True, False, False,
    ]  # fmt: skip
    near = np.array([[10, 10, 100 - CUT_EDGE - 0.5, 20]], np.float32)
    assert not touches(near, shape, (True, True, True, True)).any()


@pytest.mark.models
def test_a_plate_cut_by_a_crop_inside_the_frame_is_not_kept(
    detector: Detector, load_image: Callable[[str], ImageArray]
) -> None:
    search = detector.plate_search
    assert search is not None
    car = load_image("opencv_licenseplate_motion.jpg")
    (plate,) = detector.detect(car, {PLATE}).xyxy.tolist()
    x1, y1, x2, y2 = plate
    width = x2 - x1
    # A crop around the plate whose right edge runs through it, at 60 % of its width.
    left, top = max(0, int(x1 - 2 * width)), max(0, int(y1 - 1.5 * width))
    right, bottom = int(x1 + 0.6 * width), min(car.shape[0], int(y2 + 0.5 * width))
    region = car[top:bottom, left:right]
    scale = min(320 / max(region.shape[:2]), 3.0)
    view = resized(region, scale)
    low = dict.fromkeys(ObjectClass, 0.1)

    def found(edges: tuple[bool, bool, bool, bool]) -> np.ndarray:
        crop = Crop(left, top, scale, view, widest=1e9, members=1, cut_edges=edges)
        return search.in_crops(search.models[0], [crop], low)[0].xyxy

    # Its right edge taken for the frame's own: the part of the plate it shows is boxed.
    at_frame_edge = found((left > 0, top > 0, False, bottom < car.shape[0]))
    assert len(at_frame_edge)
    assert at_frame_edge[:, 2].max() * scale >= view.shape[1] - CUT_EDGE
    # Inside the frame, as it is: that box is dropped, and nothing else is left at the edge.
    inside = found((left > 0, top > 0, True, bottom < car.shape[0]))
    assert not touches(inside * scale, view.shape, (False, False, True, False)).any()
    assert len(inside) < len(at_frame_edge)
