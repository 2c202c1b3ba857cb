from __future__ import annotations

import numpy as np
import pytest

from obscura.types import BoxMask, Detections, ObjectClass


def make(n: int, with_masks: bool = False) -> Detections:
    xyxy = np.array([[i, i, i + 10, i + 20] for i in range(n)], dtype=np.float32)
    masks = tuple(BoxMask(i, i, np.ones((20, 10), bool)) for i in range(n)) if with_masks else ()
    return Detections(
        xyxy, np.linspace(0.9, 0.5, n, dtype=np.float32), np.arange(n, dtype=np.int32), masks
    )


@pytest.mark.parametrize(
    ("cls", "label", "code", "order"),
    [
        (ObjectClass.LICENSE_PLATE, "license-plate", 64, 3),
        (ObjectClass.PERSON, "person", 128, 2),
        (ObjectClass.FACE, "face", 192, 4),
        (ObjectClass.VEHICLE, "vehicle", 255, 1),
    ],
)
def test_object_class_codes(cls: ObjectClass, label: str, code: int, order: int) -> None:
    assert cls.label == label
    assert int(cls) == code
    assert cls.draw_order == order
    assert ObjectClass.from_label(label) is cls


def test_unknown_label_names_the_known_ones() -> None:
    with pytest.raises(ValueError, match=r"unknown class 'dog'.*face"):
        ObjectClass.from_label("dog")


def test_shape_validation_names_the_expected_shape() -> None:
    with pytest.raises(ValueError, match=r"xyxy must have shape \(n, 4\)"):
        Detections(np.zeros((3, 5), np.float32), np.zeros(3, np.float32), np.zeros(3, np.int32))
    with pytest.raises(ValueError, match=r"scores must have shape \(2,\)"):
        Detections(np.zeros((2, 4), np.float32), np.zeros(3, np.float32), np.zeros(2, np.int32))
    with pytest.raises(ValueError, match="masks must be empty or hold 2"):
        Detections(
            np.zeros((2, 4), np.float32),
            np.zeros(2, np.float32),
            np.zeros(2, np.int32),
            (None,),
        )


def test_boolean_indexing_keeps_masks_aligned() -> None:
    det = make(4, with_masks=True)
    picked = det[det.scores > 0.6]
    assert len(picked) == 3
    assert [m.x for m in picked.masks if m is not None] == [0, 1, 2]
    assert picked.class_ids.tolist() == [0, 1, 2]


def test_concat_pads_missing_masks_with_none() -> None:
    merged = Detections.concat([make(2), make(1, with_masks=True), Detections()])
    assert len(merged) == 3
    assert merged.masks[:2] == (None, None)
    assert isinstance(merged.masks[2], BoxMask)


def test_box_mask_must_be_2d_bool() -> None:
    with pytest.raises(ValueError, match="2-D bool"):
        BoxMask(0, 0, np.ones((2, 2), np.uint8))


def test_one_boolean_index_filters_tracks_too() -> None:
    det = Detections(
        np.array([[0, 0, 1, 1], [1, 1, 2, 2], [2, 2, 3, 3]], np.float32),
        np.array([0.9, 0.5, 0.7], np.float32),
        np.array([1, 2, 1], np.int32),
    ).with_tracks([7, 8, 9], ["detector", "track", "detector"])
    kept = det[np.array([True, False, True])]
    assert kept.track_ids == (7, 9)
    assert kept.sources == ("detector", "detector")
    assert kept.with_class_ids(np.array([3, 3], np.int32)).track_ids == (7, 9)
    assert det[np.array([], np.int64)].track_ids == ()


def test_tracks_must_cover_every_detection_and_not_mix() -> None:
    one = Detections(np.zeros((1, 4), np.float32), np.ones(1, np.float32), np.ones(1, np.int32))
    with pytest.raises(ValueError, match="track_ids and sources"):
        Detections(one.xyxy, one.scores, one.class_ids, track_ids=(1,))
    with pytest.raises(ValueError, match="tracked and untracked"):
        Detections.concat([one, one.with_tracks([1], ["track"])])
    both = Detections.concat([one.with_tracks([1], ["track"]), one.with_tracks([2], ["detector"])])
    assert both.track_ids == (1, 2)
