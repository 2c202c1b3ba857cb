"""The flicker benchmark on a user's own annotated folder: its backgrounds are the folder's photos
without faces, whatever they are called."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path

import av
import cv2
import numpy as np
import pytest
from support.images import read_image

from obscura.errors import InvalidInput
from obscura_tools.flicker import SIZE, background_names, build


def own_folder(data_dir: Path, folder: Path) -> Path:
    """Three photos under names of one's own: a portrait with its face annotated, a street
    without people, and a person whose face does not show."""
    truth = json.loads((data_dir / "annotations.json").read_text())
    folder.mkdir()
    shutil.copy(data_dir / "facerec_obama.jpg", folder / "portrait.jpg")
    shutil.copy(data_dir / "nodeopencv_car1.jpg", folder / "street.jpg")
    shutil.copy(data_dir / "darknet_person.jpg", folder / "walker.jpg")
    annotations = {
        "portrait.jpg": [o for o in truth["facerec_obama.jpg"] if o["label"] == "face"],
        "street.jpg": [],
        "walker.jpg": [{"label": "person", "bbox": truth["darknet_person.jpg"][0]["bbox"]}],
    }
    (folder / "annotations.json").write_text(json.dumps(annotations))
    return folder


def test_backgrounds_are_the_photos_without_faces(data_dir: Path, tmp_path: Path) -> None:
    folder = own_folder(data_dir, tmp_path / "mine")
    assert background_names(folder) == ["street.jpg"]  # faceless, and nobody in it

    annotations = json.loads((folder / "annotations.json").read_text())
    del annotations["street.jpg"]
    (folder / "annotations.json").write_text(json.dumps(annotations))
    assert background_names(folder) == ["walker.jpg"]  # faceless is enough when nothing else is

    # A photo whose faces were not labelled (annotations_meta.json) may hold faces.
    meta = {"mine": {"walker.jpg": {"complete_labels": ["person"]}}}
    (folder / "annotations_meta.json").write_text(json.dumps(meta))
    assert background_names(folder) == []
    with pytest.raises(InvalidInput, match="no photo without faces"):
        build(folder, tmp_path / "v.mp4", frames=40)


def test_the_video_moves_faces_over_the_faceless_photo(data_dir: Path, tmp_path: Path) -> None:
    folder = own_folder(data_dir, tmp_path / "mine")
    video = build(folder, tmp_path / "v.mp4", frames=40)
    assert video.faces
    with av.open(str(video.path)) as container:
        first = next(container.decode(video=0)).to_ndarray(format="bgr24")
    assert first.shape[1::-1] == SIZE
    free = np.ones(first.shape[:2], bool)  # where no face crop is pasted in frame 0
    for face in video.faces:
        if face.start == 0:
            x1, y1, x2, y2 = face.crop_box(0)
            free[max(0, y1) : y2, max(0, x1) : x2] = False

    def distance(name: str) -> float:
        image = read_image(folder / name, cv2.IMREAD_COLOR)
        background = cv2.resize(image, SIZE, interpolation=cv2.INTER_AREA)
        return float(np.abs(first.astype(np.int16) - background)[free].mean())

    assert distance("street.jpg") < 8
    assert distance("walker.jpg") > 30


@pytest.mark.models
@pytest.mark.slow
def test_flicker_command_on_an_own_folder(data_dir: Path, tmp_path: Path) -> None:
    folder = own_folder(data_dir, tmp_path / "mine")
    report = tmp_path / "flicker.json"
    proc = subprocess.run(
        [sys.executable, "-m", "obscura.cli", "flicker", str(folder), "--frames", "40",
         "--no-peer", "-o", str(report)],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    runs = json.loads(report.read_text())
    assert "obscura track_hold 8" in runs
    assert all(r["face_frames"] > 0 for r in runs.values())


def test_halves_share_no_face(data_dir: Path) -> None:
    from obscura_tools.flicker import face_crops

    whole = face_crops(data_dir)
    halves = [face_crops(data_dir, half=h) for h in (0, 1)]
    assert [len(h) for h in halves] == [(len(whole) + 1) // 2, len(whole) // 2]

    def faces(crops: Sequence[tuple[np.ndarray, object]]) -> set[bytes]:
        return {crop.tobytes() for crop, _ in crops}

    assert faces(halves[0]) | faces(halves[1]) == faces(whole)
    assert not faces(halves[0]) & faces(halves[1])


def test_a_face_under_a_later_crop_is_not_in_view(tmp_path: Path) -> None:
    from obscura_tools.flicker import FaceTrack, TestVideo

    crop = np.zeros((40, 40, 3), np.uint8)
    below = FaceTrack(crop, 0, 10, 100.0, 100.0, 0.0, 0.0, (0.25, 0.25, 0.75, 0.75))
    # A later face's crop slides over the first face from the right, 5 px a frame.
    over = FaceTrack(crop, 0, 10, 150.0, 100.0, -5.0, 0.0, (0.25, 0.25, 0.75, 0.75))
    video = TestVideo(tmp_path / "v.mp4", 10, [below, over])
    in_view = [[n for n, _ in video.truth(i)] for i in range(10)]
    # The first face's box spans x 110..130; the crop over it starts at 150 - 5 i.
    assert in_view[:4] == [[0, 1]] * 4  # 150 .. 135: not on it
    assert in_view[4] == [0, 1]  # 130: on it by nothing
    assert in_view[5] == [0, 1]  # 125: on a quarter of it
    assert in_view[6] == [0, 1]  # 120: on half of it, which still leaves half in view
    assert in_view[7:] == [[1]] * 3  # 115 and less: more than half of it is under the crop
