"""Fail-closed tracking for video: an object once seen stays hidden while it is plausibly there.

A detector misses a face now and then (motion blur, a turned head, an occluder): on video that
is a face flashing into view for a frame. The tracker associates the detections of consecutive
frames (greedy by IoU per class against the tracks' predicted boxes, constant-velocity motion)
and keeps a track that found no detection alive, at its predicted position, for ``hold`` more
frames. Those carried detections are anonymized like the others and reported with
``source = "track"``, the score of the track's last detection and the track's id; detections
the model made have ``source = "detector"``. Track ids are stable for the life of a track and
unique within a video or stream.

Hysteresis: a track starts at its class threshold, but a *weak* detection (a face down to
``weak_score``) that matches a live track continues it and corrects its box; unmatched, it is
dropped.

Everything is vectorised over tracks and detections; a frame costs microseconds to a few
milliseconds even with hundreds of objects.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

import numpy as np
from numpy.typing import NDArray

from obscura.errors import InvalidInput
from obscura.models.base import iou_matrix
from obscura.pipeline.boxes import greedy_match
from obscura.types import Detections, FloatArray, ObjectClass

if TYPE_CHECKING:
    from obscura.pipeline.plates import PlateMemory

SOURCE_DETECTOR = "detector"
SOURCE_TRACK = "track"


@dataclass(frozen=True)
class TrackerConfig:
    hold: int = 8  # frames a track is carried without a detection (0: no carrying)
    iou: float = 0.2  # least IoU between a predicted track box and a detection to match
    weak_iou: float = 0.4  # the same for a weak detection
    velocity_smoothing: float = 0.5  # weight of the newest motion in the velocity estimate
    grow: float = 0.05  # a carried box grows by this fraction per missed frame (uncertainty)
    # Faces down to this score continue a live track (they never start one); 1: no hysteresis.
    weak_score: float = 0.1

    def __post_init__(self) -> None:
        if self.hold < 0:
            raise InvalidInput(f"tracking hold must be >= 0 frames, got {self.hold}")
        if not 0.0 < self.iou <= 1.0:
            raise InvalidInput(f"tracking iou must be in (0, 1], got {self.iou}")
        if not 0.0 < self.weak_iou <= 1.0:
            raise InvalidInput(f"tracking weak_iou must be in (0, 1], got {self.weak_iou}")
        if not 0.0 <= self.velocity_smoothing <= 1.0:
            raise InvalidInput(
                f"tracking velocity_smoothing must be in 0..1, got {self.velocity_smoothing}"
            )
        if not 0.0 <= self.grow <= 1.0:
            raise InvalidInput(f"tracking grow must be in 0..1, got {self.grow}")
        if not 0.0 <= self.weak_score <= 1.0:
            raise InvalidInput(f"tracking weak_score must be in 0..1, got {self.weak_score}")

    def weak_thresholds(self, cut: Mapping[ObjectClass, float]) -> dict[ObjectClass, float]:
        """The thresholds a tracked frame is detected at: faces down to ``weak_score``."""
        face = cut[ObjectClass.FACE]
        return {**cut, ObjectClass.FACE: min(face, self.weak_score)}


@dataclass(frozen=True)
class Tracked:
    """A frame's detections after tracking; each carries its track id and source."""

    detections: Detections

    @property
    def track_ids(self) -> NDArray[np.int64]:
        return np.asarray(self.detections.track_ids, dtype=np.int64)

    @property
    def sources(self) -> list[str]:
        return list(self.detections.sources)


class Tracker:
    """The tracks of one video or stream. Not thread-safe: feed it frames in order."""

    def __init__(self, config: TrackerConfig | None = None) -> None:
        self.config = config or TrackerConfig()
        self._anchor = np.zeros((0, 4), np.float32)  # the track's last detected box
        self._elapsed = np.zeros(0, np.int32)  # frames since that detection
        self._velocity = np.zeros((0, 4), np.float32)  # motion of the box edges per frame
        self._classes = np.zeros(0, np.int32)
        self._scores = np.zeros(0, np.float32)
        self._missed = np.zeros(0, np.int32)  # frames with detection that did not find it
        self._hits = np.zeros(0, np.int32)  # detections matched to the track so far
        self._ids = np.zeros(0, np.int64)
        self._next_id = 0
        self.frame = 0  # the number of the next frame to update with
        # Plates found on a vehicle are carried by these tracks between its plate searches,
        # so a vehicle is searched again within half the hold (one missed search is covered).
        from obscura.pipeline.plates import PlateMemory

        hold = self.config.hold
        self.plate_memory: PlateMemory | None = PlateMemory(max(1, hold // 2)) if hold else None

    def __len__(self) -> int:
        return len(self._ids)

    def _match(
        self, predicted: FloatArray, free: NDArray[np.bool_], det: Detections, least: float
    ) -> NDArray[np.int64]:
        """Per detection, the row of the free track it continues (-1: none)."""
        track_for = np.full(len(det), -1, np.int64)
        rows_free = np.nonzero(free)[0]
        if len(rows_free) and len(det):
            iou = iou_matrix(predicted[rows_free], det.xyxy.astype(np.float32))
            same = self._classes[rows_free][:, None] == det.class_ids[None, :]
            rows, cols = greedy_match(np.where(same, iou, 0.0), least)
            track_for[cols] = rows_free[rows]
        return track_for

    def update(
        self,
        det: Detections,
        size: tuple[int, int],
        detected: bool = True,
        weak: Detections | None = None,
    ) -> Tracked:
        """Associates this frame's detections (frame ``size`` = (w, h)) with the tracks.

        ``detected=False``: the detectors did not run on this frame (detect every N frames);
        every track is carried and the frame does not count against its hold. ``weak``:
        detections under their class threshold, kept only where they continue a track."""
        cfg = self.config
        self.frame += 1
        steps = (self._elapsed + 1).astype(np.float32)[:, None]
        predicted = self._anchor + self._velocity * steps
        n_tracks = len(self._ids)
        free = np.ones(n_tracks, bool)
        track_for = self._match(predicted, free, det, cfg.iou)  # detection -> track row
        free[track_for[track_for >= 0]] = False
        n_strong = len(det)
        shown = det
        if weak is not None and len(weak) and free.any():
            weak_for = self._match(predicted, free, weak, cfg.weak_iou)
            continued, rows_weak = weak[weak_for >= 0], weak_for[weak_for >= 0]
            det = Detections.concat([det, continued])
            track_for = np.concatenate([track_for, rows_weak])
            free[rows_weak] = False
            # A weak look often sees only part of the object (a bar across a face): the
            # track takes the union of its predicted box and the weak box, and keeps its
            # motion, so that a weak box can move or widen a track but never shrink it.
            pred = predicted[rows_weak]
            union = np.concatenate(
                [
                    np.minimum(pred[:, :2], continued.xyxy[:, :2]),
                    np.maximum(pred[:, 2:], continued.xyxy[:, 2:]),
                ],
                axis=1,
            )
            shown = Detections.concat(
                [shown, Detections(union, continued.scores, continued.class_ids)]
            )
        n_det = len(det)
        matched = track_for >= 0
        rows = track_for[matched]
        strong = (np.arange(n_det) < n_strong)[matched]
        # Matched tracks: anchor at the detection, velocity from the motion per frame (strong
        # detections only); the score of the last strong detection.
        new_boxes = shown.xyxy[matched].astype(np.float32)
        motion = (new_boxes - self._anchor[rows]) / steps[rows]
        a = cfg.velocity_smoothing
        first = (self._hits[rows] == 1)[:, None]  # the first motion seen: take it as it is
        smoothed = np.where(first, motion, a * motion + (1 - a) * self._velocity[rows])
        self._velocity[rows] = np.where(strong[:, None], smoothed, self._velocity[rows])
        self._anchor[rows] = new_boxes
        self._elapsed[rows] = 0
        self._hits[rows] += strong
        self._scores[rows] = np.where(strong, det.scores[matched], self._scores[rows])
        self._missed[rows] = 0
        # Unmatched tracks: carried at the predicted box, grown with the frames without a
        # detection, while within hold and inside the frame.
        carried = np.ones(n_tracks, bool)
        carried[rows] = False
        carry_rows = np.nonzero(carried)[0]
        self._elapsed[carry_rows] += 1
        if detected:
            self._missed[carry_rows] += 1
        boxes = predicted[carry_rows]
        grow = (cfg.grow * self._elapsed[carry_rows])[:, None] * (boxes[:, 2:] - boxes[:, :2]) / 2
        boxes = np.concatenate([boxes[:, :2] - grow, boxes[:, 2:] + grow], axis=1)
        w, h = size
        inside = (boxes[:, 2] > 0) & (boxes[:, 3] > 0) & (boxes[:, 0] < w) & (boxes[:, 1] < h)
        alive = np.ones(n_tracks, bool)
        alive[carry_rows] = (self._missed[carry_rows] <= cfg.hold) & inside
        kept = alive[carry_rows]
        keep_carry = carry_rows[kept]
        carried_boxes = boxes[kept]
        # New tracks for unmatched detections.
        fresh = np.nonzero(~matched)[0]
        fresh_ids = np.arange(self._next_id, self._next_id + len(fresh), dtype=np.int64)
        self._next_id += len(fresh)
        track_ids = np.zeros(n_det, np.int64)
        track_ids[matched] = self._ids[rows]
        track_ids[fresh] = fresh_ids
        # The frame's output: the detections as they are, then the carried tracks.
        carried_det = Detections(
            carried_boxes, self._scores[keep_carry].copy(), self._classes[keep_carry].copy()
        )
        out = Detections.concat([shown, carried_det]) if len(keep_carry) else shown
        ids = np.concatenate([track_ids, self._ids[keep_carry]])
        sources = [SOURCE_DETECTOR] * n_det + [SOURCE_TRACK] * len(keep_carry)
        out = out.with_tracks(ids.tolist(), sources)
        # Drop the dead, append the fresh.
        n_fresh = len(fresh)
        self._anchor = np.concatenate([self._anchor[alive], det.xyxy[fresh].astype(np.float32)])
        self._elapsed = np.concatenate([self._elapsed[alive], np.zeros(n_fresh, np.int32)])
        self._velocity = np.concatenate([self._velocity[alive], np.zeros((n_fresh, 4), np.float32)])
        self._classes = np.concatenate([self._classes[alive], det.class_ids[fresh]])
        self._scores = np.concatenate([self._scores[alive], det.scores[fresh]])
        self._missed = np.concatenate([self._missed[alive], np.zeros(n_fresh, np.int32)])
        self._hits = np.concatenate([self._hits[alive], np.ones(n_fresh, np.int32)])
        self._ids = np.concatenate([self._ids[alive], fresh_ids])
        return Tracked(out)


class TrackerLike(Protocol):
    @property
    def plate_memory(self) -> PlateMemory | None: ...

    def update(
        self,
        det: Detections,
        size: tuple[int, int],
        detected: bool = True,
        weak: Detections | None = None,
    ) -> Tracked: ...

    @property
    def config(self) -> TrackerConfig: ...

    @property
    def frame(self) -> int:
        """The number of the frame this tracker updates with next (0 for the first)."""
        ...


class TrackSequence:
    """Hands one stream's tracker to its frames in frame order, whichever worker threads run
    them: frame n's update waits until frame n - 1's is done (or was given up)."""

    def __init__(self, tracker: Tracker) -> None:
        self.tracker = tracker
        self._issued = 0
        self._next = 0
        self._cond = threading.Condition()

    def ticket(self) -> TrackTicket:
        """The next frame's turn; take tickets in frame order (the event loop does)."""
        ticket = TrackTicket(self, self._issued)
        self._issued += 1
        return ticket

    def _wait(self, turn: int) -> None:
        with self._cond:
            self._cond.wait_for(lambda: self._next == turn)

    def _done(self, turn: int) -> None:
        with self._cond:
            self._next = turn + 1
            self._cond.notify_all()


class TrackTicket:
    """One frame's turn at its stream's tracker; ``release`` gives up a turn not used (a
    frame that failed before detection), so that the next frame does not wait for it."""

    def __init__(self, sequence: TrackSequence, turn: int) -> None:
        self._sequence = sequence
        self._turn = turn
        self._used = False

    @property
    def plate_memory(self) -> PlateMemory | None:
        return self._sequence.tracker.plate_memory

    @property
    def config(self) -> TrackerConfig:
        return self._sequence.tracker.config

    @property
    def frame(self) -> int:
        return self._turn

    def update(
        self,
        det: Detections,
        size: tuple[int, int],
        detected: bool = True,
        weak: Detections | None = None,
    ) -> Tracked:
        self._sequence._wait(self._turn)
        try:
            return self._sequence.tracker.update(det, size, detected, weak)
        finally:
            self._used = True
            self._sequence._done(self._turn)

    def release(self) -> None:
        if not self._used:
            self._used = True
            self._sequence._wait(self._turn)
            self._sequence._done(self._turn)
