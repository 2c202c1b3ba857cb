"""Recall and precision scoring, and its breakdown by width and by the objects' own fields."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from obscura.types import ObjectClass
from obscura_tools.evaluate import GroundTruth, load_annotations, match, width_bucket


@pytest.mark.parametrize(
    ("width", "bucket"),
    [(3.0, "<15"), (14.9, "<15"), (15.0, "15-40"), (39.0, "15-40"), (40.0, "40-80"),
     (120.0, "80-160"), (160.0, "160+"), (900.0, "160+")],
)  # fmt: skip
def test_width_buckets(width: float, bucket: str) -> None:
    assert width_bucket(width) == bucket


def test_match_counts_and_groups() -> None:
    gt = GroundTruth(
        np.array([[0, 0, 20, 10], [100, 100, 200, 150], [300, 300, 330, 310]], np.float32),
        np.array([False, False, True]),
        tags=({"style": "eu"}, {"style": "us"}, {"style": "eu"}),
    )
    det = np.array([[1, 0, 21, 10], [500, 500, 520, 510], [300, 300, 330, 310]], np.float32)
    counts = match(det, np.array([0.9, 0.8, 0.7], np.float32), gt)
    # one hit, one false positive, the difficult match counts neither way, one miss
    assert (counts.tp, counts.fp, counts.fn) == (1, 1, 1)
    out = counts.as_dict()
    assert out["by_style"] == {
        "eu": {"objects": 1, "found": 1, "recall": 1.0},
        "us": {"objects": 1, "found": 0, "recall": 0.0},
    }
    assert list(out["by_width"]) == ["15-40", "80-160"]  # difficult objects are not counted
    assert out["by_width"]["80-160"]["found"] == 0


def test_annotation_fields_become_groups(tmp_path: Path) -> None:
    path = tmp_path / "a.json"
    path.write_text(
        json.dumps(
            {"x.jpg": [
                {"label": "plate", "bbox": [0, 0, 50, 12], "style": "uk", "source": "render",
                 "lines": 1},
                {"label": "face", "bbox": [5, 5, 25, 30]},
            ]}
        )
    )  # fmt: skip
    truth = load_annotations(path)["x.jpg"]
    assert truth[ObjectClass.LICENSE_PLATE].tags == ({"style": "uk"},)  # no source, no numbers
    assert truth[ObjectClass.FACE].tags == ({},)
