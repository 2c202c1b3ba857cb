"""Fail-closed tracking: the tracker on its own, then a real video in which a face is blurred
for a few frames (so that the real detector misses it) and must stay hidden in every frame."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest
from support.daemons import plain_daemon
from support.images import read_image
from support.videos import write_video

from obscura.errors import InvalidInput
from obscura.local import local_runner
from obscura.models.base import iou_matrix
from obscura.pipeline.boxes import greedy_match
from obscura.pipeline.detect import Detector
from obscura.pipeline.frame import FrameProcessor
from obscura.pipeline.options import AnonymizeOptions, SaveMask
from obscura.pipeline.track import (
    SOURCE_DETECTOR,
    SOURCE_TRACK,
    Tracker,
    TrackerConfig,
)
from obscura.types import Detections, ObjectClass
from obscura_client.batch import remote_runner
from obscura_client.client import Client
from obscura_client.video import read_mask_video

FACE = int(ObjectClass.FACE)
PLATE = int(ObjectClass.LICENSE_PLATE)


def dets(*boxes: tuple[float, float, float, float, int]) -> Detections:
    arr = np.array([b[:4] for b in boxes], np.float32).reshape(-1, 4)
    return Detections(arr, np.full(len(boxes), 0.9, np.float32), np.array([b[4] for b in boxes]))


def test_a_missed_object_is_carried_at_its_predicted_box() -> None:
    tracker = Tracker(TrackerConfig(hold=3, grow=0.0))
    out = [
        tracker.update(dets((10 + 5 * i, 20, 40 + 5 * i, 60, FACE)), (200, 100)) for i in range(4)
    ]
    assert [o.track_ids.tolist() for o in out] == [[0]] * 4
    assert all(o.sources == [SOURCE_DETECTOR] for o in out)
    for i in range(4, 7):  # missed: carried, moving on at 5 px per frame
        got = tracker.update(Detections(), (200, 100))
        assert got.sources == [SOURCE_TRACK]
        assert got.track_ids.tolist() == [0]
        np.testing.assert_allclose(got.detections.xyxy[0], [10 + 5 * i, 20, 40 + 5 * i, 60], atol=1)
        assert got.detections.scores[0] == pytest.approx(0.9)
        assert got.detections.class_ids.tolist() == [FACE]
    assert len(tracker.update(Detections(), (200, 100)).detections) == 0  # hold exceeded
    assert len(tracker) == 0


def test_found_again_the_track_keeps_its_id() -> None:
    tracker = Tracker(TrackerConfig(hold=5))
    tracker.update(dets((10, 10, 30, 30, FACE), (100, 10, 120, 30, FACE)), (200, 100))
    tracker.update(dets((100, 10, 120, 30, FACE)), (200, 100))  # the first one missed
    got = tracker.update(dets((11, 10, 31, 30, FACE), (101, 10, 121, 30, FACE)), (200, 100))
    assert got.track_ids.tolist() == [0, 1]
    assert got.sources == [SOURCE_DETECTOR, SOURCE_DETECTOR]
    new = tracker.update(dets((150, 60, 170, 80, FACE)), (200, 100))
    assert 2 in new.track_ids.tolist()  # a new object, a new id


def test_classes_do_not_match_each_other() -> None:
    tracker = Tracker(TrackerConfig(hold=2))
    tracker.update(dets((10, 10, 50, 30, PLATE)), (200, 100))
    got = tracker.update(dets((10, 10, 50, 30, FACE)), (200, 100))
    assert got.track_ids.tolist()[0] == 1  # the face is a new track
    assert got.sources == [SOURCE_DETECTOR, SOURCE_TRACK]  # the plate is carried


def test_a_track_that_leaves_the_frame_ends() -> None:
    tracker = Tracker(TrackerConfig(hold=10, grow=0.0))
    for x in (150, 160, 170):
        tracker.update(dets((x, 10, x + 30, 20, FACE)), (200, 100))
    carried = [len(tracker.update(Detections(), (200, 100)).detections) for _ in range(3)]
    assert carried == [1, 1, 0]  # from x = 200 on it is outside the 200 px wide frame


def test_matching_is_greedy_by_iou_and_one_to_one() -> None:
    a = np.array([[0, 0, 10, 10], [20, 0, 30, 10]], np.float32)
    b = np.array([[1, 0, 11, 10], [0, 0, 10, 10], [50, 0, 60, 10]], np.float32)
    iou = iou_matrix(a, b)
    assert iou.shape == (2, 3)
    rows, cols = greedy_match(iou, 0.2)
    assert rows.tolist() == [0]
    assert cols.tolist() == [1]


def weak_dets(*boxes: tuple[float, float, float, float, int]) -> Detections:
    det = dets(*boxes)
    return Detections(det.xyxy, np.full(len(det), 0.15, np.float32), det.class_ids)


def test_a_weak_detection_continues_a_track_but_starts_none() -> None:
    tracker = Tracker(TrackerConfig(hold=1, grow=0.0))
    tracker.update(dets((10, 10, 50, 50, FACE)), (200, 100))
    # Weak looks at the face (moving right) keep its track alive for longer than the hold.
    for i in range(1, 6):
        got = tracker.update(
            Detections(), (200, 100), weak=weak_dets((10 + 4 * i, 10, 50 + 4 * i, 50, FACE))
        )
        assert got.track_ids.tolist() == [0]
        assert got.sources == [SOURCE_DETECTOR]
        assert got.detections.scores.tolist() == pytest.approx([0.15])
    # A weak detection where no track is, and one of another class, start nothing.
    got = tracker.update(
        Detections(), (200, 100), weak=weak_dets((150, 60, 190, 95, FACE), (30, 10, 70, 50, PLATE))
    )
    assert got.sources == [SOURCE_TRACK]  # the face, carried: nothing matched it this frame
    assert (
        tracker.update(Detections(), (200, 100), weak=weak_dets((150, 60, 190, 95, FACE))).sources
        == []
    )
    assert len(tracker) == 0


def test_a_weak_box_is_hidden_with_the_predicted_one() -> None:
    """A weak look often sees part of a face (a bar over its mouth): the track takes the
    union of the weak box and its prediction, so it may move or widen, never shrink."""
    tracker = Tracker(TrackerConfig(hold=4, grow=0.0))
    tracker.update(dets((10, 10, 50, 50, FACE)), (200, 100))
    tracker.update(dets((14, 10, 54, 50, FACE)), (200, 100))  # moving right, 4 px a frame
    got = tracker.update(Detections(), (200, 100), weak=weak_dets((18, 10, 60, 32, FACE)))
    np.testing.assert_allclose(got.detections.xyxy[0], [18, 10, 60, 50])
    carried = tracker.update(Detections(), (200, 100))  # on at the strong detections' pace
    np.testing.assert_allclose(carried.detections.xyxy[0], [22, 10, 64, 50], atol=1e-3)
    assert carried.detections.scores.tolist() == pytest.approx([0.9])


def test_config_is_checked() -> None:
    with pytest.raises(InvalidInput, match="hold must be >= 0"):
        TrackerConfig(hold=-1)
    with pytest.raises(InvalidInput, match="iou must be in"):
        TrackerConfig(iou=0.0)
    with pytest.raises(InvalidInput, match="weak_score must be in"):
        TrackerConfig(weak_score=1.5)
    with pytest.raises(InvalidInput, match="weak_iou must be in"):
        TrackerConfig(weak_iou=0.0)


# --- a real video, the real detector ----------------------------------------------------------
FRAMES = 20
BLURRED = range(8, 11)  # the face is there but motion-blurred: the detector misses it
GONE = 14  # from this frame on the face is gone
HOLD = 3


def face_video(data_dir: Path, path: Path) -> list[tuple[int, int, int, int]]:
    """A street background with a real face crossing it; returns the face's box per frame."""
    background = read_image(data_dir / "darknet_dog.jpg", cv2.IMREAD_COLOR)
    portrait = read_image(data_dir / "facerec_obama.jpg", cv2.IMREAD_COLOR)
    background = np.ascontiguousarray(background[:384, :640])
    face = cv2.resize(portrait[60:460, 340:640], (90, 120), interpolation=cv2.INTER_AREA)
    frames, boxes = [], []
    for i in range(FRAMES):
        frame = background.copy()
        x, y = 100 + 12 * i, 120
        if i < GONE:
            patch = face
            if i in BLURRED:
                kernel = np.zeros((41, 41), np.float32)
                kernel[20, :] = 1.0 / 41  # horizontal motion blur, 41 px
                patch = cv2.filter2D(cv2.GaussianBlur(face, (0, 0), 6), -1, kernel)
            frame[y : y + 120, x : x + 90] = patch
        frames.append(frame)
        boxes.append((x, y, x + 90, y + 120))
    write_video(path, frames, FRAMES)
    return boxes


def run(
    video: Path,
    out: Path,
    hold: int,
    *,
    detector: Detector | None = None,
    client: Client | None = None,
    every: int = 1,
) -> list[dict[str, object]]:
    options = AnonymizeOptions(
        methods=AnonymizeOptions.choose_methods([ObjectClass.FACE]),
        save_mask=SaveMask.ALL,
        track_hold=hold,
        detect_every=every,
    )
    if client is not None:
        runner = remote_runner(client, options.to_wire(), out, progress=False)
    else:
        assert detector is not None
        runner = local_runner(FrameProcessor(detector), options, out, progress=False)
    summary = runner.run([video])
    assert not summary.errors, summary.errors
    frames: list[dict[str, object]] = json.loads(
        (out / f"{video.stem}-0-{FRAMES - 1}.json").read_text()
    )
    assert [f["id"] for f in frames] == list(range(FRAMES))
    return frames


def faces(frame: dict[str, object]) -> list[dict[str, object]]:
    detections = frame["detections"]
    assert isinstance(detections, list)
    return [d for d in detections if d["type_label"] == "face"]


@pytest.mark.models
def test_a_face_the_detector_misses_stays_hidden(
    detector: Detector, data_dir: Path, tmp_path: Path
) -> None:
    video = tmp_path / "crossing.mp4"
    truth = face_video(data_dir, video)

    plain = run(video, tmp_path / "plain", 0, detector=detector)
    for i in range(FRAMES):
        found = faces(plain[i])
        if i in BLURRED or i >= GONE:
            assert not found, f"frame {i}: the blur should defeat the detector"  # the setup
        else:
            assert len(found) == 1, f"frame {i}"
            assert "source" not in found[0]

    tracked = run(video, tmp_path / "tracked", HOLD, detector=detector)
    assert_fail_closed(tracked, truth)

    # The masks show the carried face like any other: the face centre is white in every
    # frame where the face is in the picture.
    masks = list(read_mask_video(tmp_path / "tracked" / "crossing_bin_mask.mkv"))
    assert len(masks) == FRAMES
    for i in range(GONE):
        x1, y1, x2, y2 = truth[i]
        assert masks[i][(y1 + y2) // 2, (x1 + x2) // 2] == 255, f"frame {i}"


@pytest.mark.models
def test_a_daemon_stream_tracks_too(data_dir: Path, tmp_path: Path) -> None:
    """The same video through a real daemon's AnonymizeStream (several frames in flight on
    several workers): the stream's tracker still sees the frames in order."""
    video = tmp_path / "crossing.mp4"
    truth = face_video(data_dir, video)
    (tmp_path / "daemon").mkdir()
    daemon = plain_daemon(tmp_path / "daemon")
    try:
        with Client(daemon.socket) as client:
            assert_fail_closed(run(video, tmp_path / "out", HOLD, client=client), truth)
            plain = run(video, tmp_path / "plain", 0, client=client)
        assert all("source" not in d for f in plain for d in faces(f))
    finally:
        daemon.terminate()


def assert_fail_closed(
    tracked: list[dict[str, object]], truth: list[tuple[int, int, int, int]]
) -> None:
    ids = set()
    for i in range(FRAMES):
        found = faces(tracked[i])
        if i >= GONE + HOLD:
            assert not found, f"frame {i}: the track should have ended"
            continue
        assert len(found) == 1, f"frame {i}"
        det = found[0]
        expected = SOURCE_TRACK if i in BLURRED or i >= GONE else SOURCE_DETECTOR
        assert det["source"] == expected, f"frame {i}"
        assert det["is_anonymized"] is True
        ids.add(det["track_id"])
        if i < GONE:  # where the face really is, the carried box covers it
            iou = iou_matrix(np.array([det["bbox"]], np.float32), np.array([truth[i]], np.float32))[
                0, 0
            ]
            assert iou >= 0.4, (i, det["bbox"], truth[i])
    assert len(ids) == 1, "one face, one track id across the video"


def assert_detected_every(frames: list[dict[str, object]], every: int) -> None:
    """Frames off the N-grid carry the face from the track alone, and say N."""
    for i in range(GONE):
        found = faces(frames[i])
        assert len(found) == 1, f"frame {i}"
        assert frames[i]["detect_every"] == every
        on_grid = i % every == 0 and i not in BLURRED
        assert found[0]["source"] == (SOURCE_DETECTOR if on_grid else SOURCE_TRACK), f"frame {i}"
        assert found[0]["track_id"] == faces(frames[0])[0]["track_id"]


@pytest.mark.models
def test_detect_every_third_frame_hides_the_tracks_in_between(
    detector: Detector, data_dir: Path, tmp_path: Path
) -> None:
    video = tmp_path / "crossing.mp4"
    face_video(data_dir, video)
    assert_detected_every(run(video, tmp_path / "local", HOLD, detector=detector, every=3), 3)
    (tmp_path / "daemon").mkdir()
    daemon = plain_daemon(tmp_path / "daemon")
    try:
        with Client(daemon.socket) as client:
            remote = run(video, tmp_path / "remote", HOLD, client=client, every=3)
        assert_detected_every(remote, 3)
    finally:
        daemon.terminate()


def test_detect_every_needs_tracking() -> None:
    with pytest.raises(InvalidInput, match="detect_every > 1 needs tracking"):
        AnonymizeOptions(track_hold=0, detect_every=2)


@pytest.mark.models
@pytest.mark.slow
def test_flicker_benchmark_scores_tracking(data_dir: Path, tmp_path: Path) -> None:
    """The flicker benchmark's video and metric, small: ground truth is where the faces were
    pasted, and tracking hides more of the face frames than frame-by-frame detection."""
    from obscura_tools.flicker import build, run_flicker, score

    video = build(data_dir, tmp_path / "v.mp4", frames=40)
    assert video.faces
    assert all(0 <= f.start < f.end <= 40 for f in video.faces)
    # A perfect mask of the true boxes scores no miss and no flicker; an empty one misses all.
    perfect = []
    for i in range(40):
        mask = np.zeros((576, 768), np.uint8)
        for _, (x1, y1, x2, y2) in video.truth(i):
            mask[max(0, y1) : y2, max(0, x1) : x2] = 255
        perfect.append(mask)
    assert score(video, iter(perfect))["miss_rate"] == 0.0
    assert score(video, iter(np.zeros((40, 576, 768), np.uint8)))["miss_rate"] == 1.0
    flicker = [m.copy() for m in perfect]
    flicker[20][:] = 0  # every face in view at 19 and 21 flashes into view at 20
    got = score(video, iter(flicker))
    assert got["flicker_frames"] == sum(
        1 for n, _ in video.truth(20) if video.faces[n].start < 20 < video.faces[n].end - 1
    )

    report = run_flicker(data_dir, frames=80, holds=(0, 8), peer=False, log=lambda _: None)
    plain, tracked = report["obscura track_hold 0"], report["obscura track_hold 8"]
    assert tracked["miss_rate"] <= plain["miss_rate"]
    assert tracked["flicker_rate"] <= plain["flicker_rate"]
    assert "obscura track_hold 8 detect_every 3" in report
