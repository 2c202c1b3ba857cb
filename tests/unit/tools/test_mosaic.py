"""Large-frame mosaics of an annotated set (``obscura plates mosaic``): where each frame goes,
and which of the mosaic's plates each frame is scored on."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest

from obscura.errors import InvalidInput
from obscura.types import Detections, ImageArray, ObjectClass
from obscura_tools.platebench.mosaic import in_cell, score_mosaics, tiled, total

PLATE = ObjectClass.LICENSE_PLATE


def frame(value: int) -> ImageArray:
    return np.full((20, 30, 3), value, np.uint8)


def test_frames_fill_the_grid_row_by_row() -> None:
    mosaic = tiled([frame(10), frame(20), frame(30)], 2)
    assert mosaic.shape == (40, 60, 3)
    assert mosaic[5, 5, 0] == 10
    assert mosaic[5, 35, 0] == 20
    assert mosaic[25, 5, 0] == 30
    assert mosaic[25, 35, 0] == 0  # no fourth frame: black


def test_a_mosaic_takes_frames_of_one_size_and_no_more_than_it_holds() -> None:
    with pytest.raises(InvalidInput, match="one size"):
        tiled([frame(1), np.zeros((10, 10, 3), np.uint8)], 2)
    with pytest.raises(ValueError, match="1 to 4 frames"):
        tiled([frame(1)] * 5, 2)


def test_a_plate_belongs_to_the_cell_of_its_centre() -> None:
    boxes = np.array([[25, 5, 40, 10], [35, 25, 50, 30], [1, 1, 5, 5]], np.float32)
    found = Detections(boxes, np.array([0.9, 0.8, 0.7], np.float32), np.full(3, PLATE))
    # the first box's centre (32.5, 7.5) lies in the top right cell, though it starts left
    right = in_cell(found, (30, 0, 30, 20))
    np.testing.assert_allclose(right.xyxy, [[-5, 5, 10, 10]])
    bottom_right = in_cell(found, (30, 20, 30, 20))
    np.testing.assert_allclose(bottom_right.xyxy, [[5, 5, 20, 10]])
    np.testing.assert_allclose(in_cell(found, (0, 0, 30, 20)).scores, [0.7])


def test_each_frame_is_scored_on_its_own_plates(tmp_path: Path) -> None:
    """Four annotated frames, each with one plate; a stand-in detector boxes every bright
    rectangle. On the mosaic and one by one, the plates of three frames are found; the
    fourth frame's plate is missed both ways, and a false plate on it counts there."""
    (tmp_path / "images").mkdir()
    annotations = {}
    for i in range(4):
        image = np.zeros((40, 60, 3), np.uint8)
        box = [10 + i, 10, 30 + i, 18]
        if i < 3:
            image[box[1] : box[3], box[0] : box[2]] = 255
        else:
            image[30:36, 40:56] = 255  # something else, elsewhere
        cv2.imwrite(str(tmp_path / "images" / f"f{i}.png"), image)
        annotations[f"f{i}.png"] = [{"label": "plate", "bbox": box}]
    (tmp_path / "annotations.json").write_text(json.dumps(annotations))

    def bright(image: ImageArray) -> Detections:
        mask = (image[:, :, 0] > 128).astype(np.uint8)
        count, _, stats, _ = cv2.connectedComponentsWithStats(mask)
        boxes = [[x, y, x + w, y + h] for x, y, w, h, _ in stats[1:count]]
        n = len(boxes)
        return Detections(
            np.asarray(boxes, np.float32).reshape(-1, 4),
            np.full(n, 0.9, np.float32),
            np.full(n, PLATE),
        )

    (score,) = score_mosaics(tmp_path, bright, grid=2)
    assert score.frames == ("f0.png", "f1.png", "f2.png", "f3.png")
    assert score.size == (120, 80)
    for counts in (score.mosaic, score.alone):
        assert (counts.tp, counts.fp, counts.fn) == (3, 1, 1)
    mosaic, alone = total([score, score])
    assert (mosaic.tp, alone.fn) == (6, 2)
    with pytest.raises(InvalidInput, match="needs 9"):
        next(score_mosaics(tmp_path, bright, grid=3))
