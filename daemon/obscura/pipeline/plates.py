"""The plate search: the plate model(s) on the full frame and on scaled crops of the vehicles
(and riders) the object model found, and, on video, a memory that spares a vehicle whose box
has hardly changed since its crop was searched.

A plate is about a tenth of its vehicle, so on a full 1280x720 frame a plate 15 to 40 px wide
is all but lost at the plate model's 640 px input; in a crop scaled to ``plate_crop_size`` it
has some 30 px and more. Every crop costs a look (two with the mirrored look), and the looks
of one input shape run as one batch (``plate_batch``), which costs less per look. Still:

- neighbours whose joint crop is hardly larger than either's own share one crop;
- with ``plate_memory`` (video, opt-in), a vehicle is searched when it is new, when its box has
  moved or changed scale since its last search, and at least every ``PlateMemory.every``
  frames; in between, the tracker carries the plates found (fail-closed, ``source: "track"``),
  so a parked car costs one crop every few frames instead of one every frame.

A plate found where no vehicle or rider could carry it (a sign, a page, a shirt) needs the
surer ``plate_alone_score`` and, with ``plate_alone_check``, a closer second look that sees it
again. A plate the plate model is unsure of (a tail-light, a badge, a grille) gets a second
opinion from the plate check (:class:`PlateCheck`), which drops it where it is sure it is no
plate. A large frame's tiles keep only the plates small enough to lie whole in one of them.
"""

from __future__ import annotations

import math
import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import cv2
import numpy as np
from numpy.typing import NDArray

from obscura.backends import ImageInput
from obscura.models.base import iou_matrix
from obscura.pipeline.boxes import agreed, covered, cuts, greedy_match, merge, not_nested, offset
from obscura.types import BoolArray, Detections, FloatArray, ImageArray, ObjectClass

if TYPE_CHECKING:
    from obscura.backends import InferenceModel
    from obscura.pipeline.loading import LoadedDetector
    from obscura.pipeline.settings import DetectorConfig

# A plate found in a vehicle crop is at most this share of the vehicle's width (a motorcycle's
# plate about half); a wider box is the vehicle itself, or a sign behind it.
MAX_PLATE_SHARE = 0.6
# Vehicles share a crop when its long side is at most this much longer than each one's own
# (so every one keeps nearly the scale it would have had alone).
CROP_SHARING = 1.25
# With plate_crop_flip, a plate only one of the two looks at a crop sees keeps this share of
# its score.
FLIP_PENALTY = 0.7
# Each crop reaches this share of its box's size beyond each side (a plate at the bumper).
CROP_PAD = 0.1
# A rider's box is taken this share of its height lower: the plate is below the rider.
RIDER_DROP = 1 / 3
# max_vehicle_crops holds per this many pixels of frame (1280x720).
LARGE_AREA = 1280 * 720
# A rider's plate lies below this share of the rider's box height (measured on the composite
# set: 95 % of the plates near a rider and no vehicle lie 0.6 of its height down or further).
RIDER_PLATE_TOP = 0.5
# A rider this much inside a chosen vehicle's box adds nothing to that vehicle's crop ...
RIDER_INSIDE = 0.7
# ... unless that crop is over this many times the rider's own (long sides): it would show
# the rider's plate at under half the scale of the rider's own crop (composite frames with
# riders in front of larger vehicle boxes, and large frames whose tiles box a crowd as one).
RIDER_SHRINK = 2.0
# Video: a box whose overlap (IoU) with its box at the last search fell under this has moved
# or changed scale enough to be searched again.
SEARCH_AGAIN_IOU = 0.7
# Video: a box overlapping (IoU) a box searched before by at least this much is that vehicle
# again: its crop gets one look, not the mirrored second one (see plate_crop_flip). A plate
# it carries was found by the first search's two looks, and the tracker holds it.
SEEN_IOU = 0.3
# Video: a vehicle whose search found plates is spared only while none of its box's sides has
# moved more than this share of its narrowest plate's width: the tracker carries a plate
# found once where it was, so the vehicle must stand (nearly) still.
PLATE_SLACK = 0.15
# A crop's plate whose box reaches within this many pixels (of the crop as the plate model
# sees it, at most plate_crop_size on its long side) of an edge where the crop cut the frame
# is dropped before the crop's plates are chosen: the crop cut that plate, and the box holds
# part of it (most often a neighbour's plate, or one of a vehicle the object model boxed too
# tightly, which the whole-frame look or the neighbour's crop sees whole). On the composite
# frames of seed 0 the rule took the false plates from 38 to 21, and gave back plates whose
# place such boxes had taken (chosen there between 2 and 16 px: recall 0.773 at 2, 0.778 at
# 4, 0.780 at 8, 0.773 at 12, 0.760 at 16). The plate model's boxes are shrunk to the plate
# (box_scale), so a box it drew to the edge ends a few pixels short of it.
CUT_EDGE = 8.0
# A large frame's tile keeps the plates up to this share of its side: with the default tile
# overlap (0.25) each of those lies whole in some tile. A wider box may be cut by every tile's
# edge; it is the whole-frame look's (in a tile it is most often a page or a sign).
TILE_PLATE_SHARE = 0.25
# plate_alone_check: a plate found alone at least this wide (px) gets the closer look; a
# smaller one is too small for a closer view to show more, and keeps plate_alone_score alone.
ALONE_CHECK_WIDTH = 24
# The closer look's view: a square of the plate's long side times this, centred on the plate,
# scaled to plate_crop_size, looked at as it is and mirrored.
ALONE_CHECK_CONTEXT = 2.5
# The closer look sees the plate again where a box of its overlaps the plate this much (IoU).
ALONE_CHECK_IOU = 0.3
# plate_check_model: the patch it sees around a plate, (width, height) px: a window of this
# aspect, at least CHECK_CONTEXT times the plate's width and twice that times its height,
# centred on the plate (the plate, its mount and what is around it: a bumper, a tail-light, a
# badge), scaled to this size.
CHECK_SIZE = (64, 32)
CHECK_CONTEXT = 2.0
# The most patches the check model takes in one inference.
CHECK_BATCH = 32
# The check model's input: BGR in 0..1, NCHW.
CHECK_INPUT = ImageInput(scale=(255.0, 255.0, 255.0))


@dataclass(frozen=True)
class Crop:
    """A crop searched for plates: its place (x, y) and scale in the frame, its pixels, the
    widest plate it can hold (frame px) and how many vehicles it holds."""

    x: int
    y: int
    scale: float
    view: ImageArray
    widest: float
    members: int
    mirror: bool = True  # a second, mirrored look (with plate_crop_flip)
    # With a memory: the frame's candidates (see PlateSearch.plan) this crop searches.
    searches: tuple[int, ...] = ()
    # Which of its edges (left, top, right, bottom) cut the frame (lie inside it).
    cut_edges: tuple[bool, bool, bool, bool] = (False, False, False, False)


@dataclass
class CropGroup:
    """Vehicles (and riders) that share one crop: the union of their padded regions."""

    x1: float
    y1: float
    x2: float
    y2: float
    widest: float  # the widest plate any member can carry (frame px)
    members: int
    smallest: float  # the smallest member's own long side: bounds the union's growth
    mirror: bool = True  # some member is new (not searched before): two looks
    searches: list[int] = field(default_factory=list)  # candidates (see Crop.searches)

    @property
    def long_side(self) -> float:
        return max(self.x2 - self.x1, self.y2 - self.y1)

    def take(self, region: Sequence[float], widest: float, own: float, mirror: bool) -> bool:
        """Adds a member when the union stays within ``CROP_SHARING`` of the smallest
        member's own long side; False (unchanged) otherwise."""
        x1, y1 = min(self.x1, region[0]), min(self.y1, region[1])
        x2, y2 = max(self.x2, region[2]), max(self.y2, region[3])
        smallest = min(self.smallest, own)
        if max(x2 - x1, y2 - y1) > CROP_SHARING * smallest:
            return False
        self.x1, self.y1, self.x2, self.y2 = x1, y1, x2, y2
        self.widest = max(self.widest, widest)
        self.members += 1
        self.smallest = smallest
        self.mirror |= mirror
        return True


class PlateMemory:
    """Where one video or stream had its vehicles searched for plates, so that a vehicle whose
    box has not changed much is not searched again every frame.

    A box is due for a search when it matches no box searched before (a new vehicle), when its
    IoU with the box it had at its last search is under ``SEARCH_AGAIN_IOU`` (it moved or
    changed scale), or when its wait is over: ``every`` frames after a search that found a
    plate (the tracker carries that plate meanwhile), ``empty_every`` after one that found
    none (a plate missed once is looked for again soon). ``every`` must stay within the
    tracker's hold, so that the plates found are carried until the next search (the tracker's
    own ``plate_memory`` takes half its hold: one missed search is still covered).
    Thread-safe: the daemon detects two frames of a stream at once; a decision taken on the
    state one frame old only moves a search by a frame.
    """

    def __init__(self, every: int, empty_every: int = 1):
        if every < 1 or empty_every < 1:
            raise ValueError(f"every must be >= 1 frame, got {every} and {empty_every}")
        self.every = every
        self.empty_every = empty_every
        self._lock = threading.Lock()
        self._frame = 0
        self._boxes: FloatArray = np.zeros((0, 4), np.float32)  # at their last search
        self._next = np.zeros(0, np.int64)  # the frame each is due again
        # How far (px) each box's sides may move before its plates, carried by the tracker
        # where they were, would slip off them: a share of its narrowest plate found.
        self._slack = np.zeros(0, np.float32)

    def _match(self, boxes: FloatArray) -> tuple[NDArray[np.int64], NDArray[np.int64]]:
        """Pairs (this frame's box, remembered box) searched recently enough to be spared."""
        if not len(boxes) or not len(self._boxes):
            return np.zeros(0, np.int64), np.zeros(0, np.int64)
        rows, cols = greedy_match(iou_matrix(boxes, self._boxes), SEARCH_AGAIN_IOU)
        fresh = self._frame + 1 < self._next[cols]
        drift = np.abs(boxes[rows] - self._boxes[cols]).max(axis=1, initial=0.0)
        still = drift <= self._slack[cols]
        keep = fresh & still
        return rows[keep], cols[keep]

    def due(self, boxes: FloatArray) -> BoolArray:
        """Which of this frame's ``boxes`` to search (then :meth:`remember` them)."""
        boxes = np.asarray(boxes, np.float32).reshape(-1, 4)
        due = np.ones(len(boxes), np.bool_)
        with self._lock:
            due[self._match(boxes)[0]] = False
        return due

    def seen(self, boxes: FloatArray) -> BoolArray:
        """Which of ``boxes`` are vehicles searched before (moved or not)."""
        boxes = np.asarray(boxes, np.float32).reshape(-1, 4)
        with self._lock:
            if not len(boxes) or not len(self._boxes):
                return np.zeros(len(boxes), np.bool_)
            return np.asarray(iou_matrix(boxes, self._boxes).max(axis=1) >= SEEN_IOU, np.bool_)

    def remember(self, boxes: FloatArray, searched: BoolArray, plates: Detections) -> None:
        """Closes a frame: ``boxes`` are its candidates, ``searched`` those that were, and
        ``plates`` the frame's plates. A plate belongs to every box that holds its centre
        (padded like a crop) and could carry it (a plate at most ``MAX_PLATE_SHARE`` of the
        box's width, as the crops keep them): the object model often boxes a parked car twice,
        whole and in part, and both searches see the same plate. A box neither searched nor
        spared (over a cap) is forgotten, and so due next frame, like every box not seen this
        frame: a vehicle back in view is new again."""
        boxes = np.asarray(boxes, np.float32).reshape(-1, 4)
        inside = centre_in(plates.xyxy, padded(boxes))  # (plates, boxes)
        widths = plates.xyxy[:, 2] - plates.xyxy[:, 0]
        inside &= widths[:, None] <= (boxes[:, 2] - boxes[:, 0])[None, :] * MAX_PLATE_SHARE
        with self._lock:
            rows, cols = self._match(boxes)
            self._frame += 1
            spared = np.zeros(len(boxes), np.bool_)
            spared[rows] = ~searched[rows]
            from_memory = dict(zip(rows.tolist(), cols.tolist(), strict=True))
            kept_boxes: list[FloatArray] = []
            kept_next: list[int] = []
            kept_slack: list[float] = []
            for m in range(len(boxes)):
                if spared[m]:
                    c = from_memory[m]
                    kept_boxes.append(self._boxes[c])
                    kept_next.append(int(self._next[c]))
                    kept_slack.append(float(self._slack[c]))
                elif searched[m]:
                    own = plates.xyxy[inside[:, m]]
                    kept_boxes.append(boxes[m])
                    if len(own):
                        kept_next.append(self._frame + self.every)
                        kept_slack.append(float((own[:, 2] - own[:, 0]).min()) * PLATE_SLACK)
                    else:
                        kept_next.append(self._frame + self.empty_every)
                        kept_slack.append(np.inf)
            self._boxes = np.asarray(kept_boxes, np.float32).reshape(-1, 4)
            self._next = np.asarray(kept_next, np.int64)
            self._slack = np.asarray(kept_slack, np.float32)


@dataclass
class CropPlan:
    """A frame's crops and the candidates (vehicles, riders) they were chosen from."""

    crops: list[Crop] = field(default_factory=list)
    candidates: FloatArray = field(default_factory=lambda: np.zeros((0, 4), np.float32))

    def close(self, memory: PlateMemory, plates: Detections) -> None:
        """Tells ``memory`` which candidates were searched and the frame's ``plates``."""
        searched = np.zeros(len(self.candidates), np.bool_)
        for crop in self.crops:
            searched[list(crop.searches)] = True
        memory.remember(self.candidates, searched, plates)


def lowered(boxes: FloatArray, riders: BoolArray) -> FloatArray:
    """The boxes, riders' taken ``RIDER_DROP`` of their height lower (where the plate is)."""
    out = boxes.copy()
    out[riders, 3] += (out[riders, 3] - out[riders, 1]) * RIDER_DROP
    return out


def touches(
    xyxy: FloatArray, shape: tuple[int, ...], edges: tuple[bool, bool, bool, bool]
) -> BoolArray:
    """Which boxes (in a view of ``shape``) reach within ``CUT_EDGE`` of one of the view's
    ``edges`` (left, top, right, bottom) that are flagged."""
    h, w = shape[:2]
    left, top, right, bottom = edges
    out = np.zeros(len(xyxy), np.bool_)
    if left:
        out |= xyxy[:, 0] <= CUT_EDGE
    if top:
        out |= xyxy[:, 1] <= CUT_EDGE
    if right:
        out |= xyxy[:, 2] >= w - CUT_EDGE
    if bottom:
        out |= xyxy[:, 3] >= h - CUT_EDGE
    return out


def padded(boxes: FloatArray) -> FloatArray:
    """The boxes grown by ``CROP_PAD`` of their size beyond each side."""
    pad = (boxes[:, 2:] - boxes[:, :2]) * CROP_PAD
    out: FloatArray = np.concatenate([boxes[:, :2] - pad, boxes[:, 2:] + pad], axis=1)
    return out


def centre_in(plates: FloatArray, regions: FloatArray) -> BoolArray:
    """(plates, regions): whether each plate's centre lies inside each region."""
    centres = (plates[:, :2] + plates[:, 2:]) / 2
    after = np.all(centres[:, None, :] >= regions[None, :, :2], axis=2)
    before = np.all(centres[:, None, :] <= regions[None, :, 2:], axis=2)
    return np.asarray(after & before, np.bool_)


def carried(plates: FloatArray, objects: Detections) -> BoolArray:
    """Which plates lie (their centre) where a vehicle or a person's vehicle may carry one:
    inside a vehicle's box or a person's taken lower, padded like a crop, but below the
    middle of the person (a rider's plate is at the seat or below, a shirt's print higher)."""
    kinds = objects.class_ids
    carriers = (kinds == ObjectClass.VEHICLE) | (kinds == ObjectClass.PERSON)
    people = kinds[carriers] == ObjectClass.PERSON
    boxes = objects.xyxy[carriers]
    regions = padded(lowered(boxes, people))
    regions[people, 1] = boxes[people, 1] + (boxes[people, 3] - boxes[people, 1]) * RIDER_PLATE_TOP
    return np.asarray(np.any(centre_in(plates, regions), axis=1), np.bool_)


def resized(view: ImageArray, scale: float) -> ImageArray:
    """``view`` scaled by ``scale`` (linear up or a little down, area averaging further)."""
    interp = cv2.INTER_LINEAR if scale > 0.5 else cv2.INTER_AREA
    return np.asarray(
        cv2.resize(view, None, fx=scale, fy=scale, interpolation=interp), dtype=np.uint8
    )


def flipped(view: ImageArray) -> ImageArray:
    """``view`` mirrored left to right (the plate model's second look)."""
    return np.ascontiguousarray(view[:, ::-1])


def flipped_back(seen: Detections, width: float) -> Detections:
    """What a look at a view mirrored by :func:`flipped` found, boxed in the view's own
    pixels (``width``: the view's)."""
    m = seen.xyxy
    back = np.stack([width - m[:, 2], m[:, 1], width - m[:, 0], m[:, 3]], axis=1)
    return Detections(back.astype(np.float32), seen.scores, seen.class_ids)


def check_patch(image: ImageArray, box: Sequence[float]) -> ImageArray:
    """The patch of ``image`` the plate check sees for a plate at ``box`` (x1, y1, x2, y2):
    see ``CHECK_SIZE``; the frame's edge pixels repeated where the window leaves it."""
    x1, y1, x2, y2 = (float(v) for v in box)
    out_w, out_h = CHECK_SIZE
    aspect = out_w / out_h
    width = max(CHECK_CONTEXT * max(x2 - x1, 1.0), aspect * CHECK_CONTEXT * max(y2 - y1, 1.0))
    height = width / aspect
    cx, cy = (x1 + x2) / 2, (y1 + y2) / 2
    left, top = round(cx - width / 2), round(cy - height / 2)
    right, bottom = round(cx + width / 2), round(cy + height / 2)
    h, w = image.shape[:2]
    view = image[max(0, top) : min(h, bottom), max(0, left) : min(w, right)]
    if not view.size:  # wholly outside the frame: nothing of it to see
        return np.zeros((out_h, out_w, 3), np.uint8)
    framed = cv2.copyMakeBorder(
        view,
        max(0, -top),
        max(0, bottom - h),
        max(0, -left),
        max(0, right - w),
        cv2.BORDER_REPLICATE,
    )
    interp = cv2.INTER_AREA if framed.shape[1] > out_w else cv2.INTER_LINEAR
    return np.asarray(cv2.resize(framed, (out_w, out_h), interpolation=interp), dtype=np.uint8)


class PlateCheck:
    """A second opinion on plates the plate model is not sure of: a small classifier (the
    project's own ``plate-check``, see ``obscura_tools.platecheck``) that sees the plate in its
    surroundings (:func:`check_patch`) and gives the probability that it is a plate. It was
    trained on the plate model's own true and false plates on composite frames, so it knows
    the tail-lights, badges, grilles and signs the plate model takes for plates."""

    def __init__(self, model: InferenceModel):
        self.model = model
        self.input_name = model.inputs[0].name
        # A runtime with a session per input shape (ONNX Runtime on CUDA) gets full batches
        # only, padded: one shape, not one per count of unsure plates.
        self.padded = not getattr(model, "batches_freely", True)

    def __call__(self, image: ImageArray, boxes: FloatArray) -> FloatArray:
        """The probability that each of ``boxes`` (frame pixels) holds a plate."""
        patches = [check_patch(image, box) for box in np.asarray(boxes).reshape(-1, 4).tolist()]
        out = np.zeros(len(patches), np.float32)
        for start in range(0, len(patches), CHECK_BATCH):
            batch = np.stack(patches[start : start + CHECK_BATCH])
            count = len(batch)
            if self.padded and count < CHECK_BATCH:
                batch = np.concatenate(
                    [batch, np.zeros_like(batch[:1]).repeat(CHECK_BATCH - count, 0)]
                )
            probs = np.asarray(self.model.infer({self.input_name: batch})[0], np.float32)
            out[start : start + count] = probs.reshape(-1)[:count]
        return out


class PlateSearch:
    """Plates in a frame: every plate model on the full frame and on the vehicle crops."""

    def __init__(
        self,
        config: DetectorConfig,
        models: Sequence[LoadedDetector],
        check: PlateCheck | None = None,
    ):
        self.config = config
        self.models = list(models)
        self.check = check

    def find(
        self,
        image: ImageArray,
        objects: Detections | None,
        cut: Mapping[ObjectClass, float],
        clock: Any,
        memory: PlateMemory | None = None,
        *,
        tiles: Sequence[tuple[int, int, ImageArray]] = (),
    ) -> Detections:
        """One box per plate, in frame pixels. ``objects``: the vehicles and persons found
        (down to ``plate_crop_score``), None where the object model did not run; then there
        are no crops and no context. ``clock(name)`` times each model's share; ``memory``:
        see :meth:`plan`; ``tiles`` (x, y, view): a large frame's tiles, each looked at
        whole like the frame."""
        if not self.config.plate_memory:
            memory = None
        plan = CropPlan()
        if self.config.plate_on_vehicles and objects is not None:
            plan = self.plan(image, objects, memory)
        parts = []
        for model in self.models:
            with clock(model.spec.name):
                parts.append(model.detect(image, cut))
                views = [view for _, _, view in tiles]
                for (x, y, view), seen in zip(tiles, self._looks(model, views, cut), strict=True):
                    sides = np.maximum(*(seen.xyxy[:, 2:] - seen.xyxy[:, :2]).T)
                    whole = seen[sides <= TILE_PLATE_SHARE * max(view.shape[:2])]
                    parts.append(offset(whole, x, y))
                for crop, seen in zip(
                    plan.crops, self.in_crops(model, plan.crops, cut), strict=True
                ):
                    parts.append(offset(seen, crop.x, crop.y))
        found = merge(parts, self.models[0].nms_iou)
        found = found[not_nested(found.xyxy, found.scores)]
        alone_score = self.config.plate_alone_score
        if objects is not None and alone_score > 0 and len(found):
            # A plate with no vehicle or person around it (a sign, scene text, a shirt, a
            # screen) needs a surer look.
            alone = ~carried(found.xyxy, objects)
            keep = ~alone | (found.scores >= alone_score)
            check = alone & keep & (found.xyxy[:, 2] - found.xyxy[:, 0] >= ALONE_CHECK_WIDTH)
            if self.config.plate_alone_check and check.any():
                with clock(self.models[0].spec.name):
                    keep[check] = self.seen_again(image, found[check], cut)
            found = found[keep]
        widths = found.xyxy[:, 2] - found.xyxy[:, 0]
        unsure = (found.scores < self.config.plate_check_below) & (
            widths >= self.config.plate_check_width
        )
        if self.check is not None and unsure.any():
            # The plate model's unsure plates (most of its false ones) need a second opinion.
            with clock(self.config.plate_check_model or "plate-check"):
                keep = ~unsure
                keep[unsure] = (
                    self.check(image, found.xyxy[unsure]) >= self.config.plate_check_score
                )
            found = found[keep]
        if memory is not None:
            plan.close(memory, found)
        return found

    def _floored(self, cut: Mapping[ObjectClass, float]) -> dict[ObjectClass, float]:
        """``cut`` taken down to ``score_floor``: for looks that are combined before the class
        thresholds apply."""
        return {c: min(v, self.config.score_floor) for c, v in cut.items()}

    def _looks(
        self, model: LoadedDetector, views: Sequence[ImageArray], cut: Mapping[ObjectClass, float]
    ) -> list[Detections]:
        """What ``model`` finds in each of ``views``, in batches of ``plate_batch``."""
        return model.detect_many(views, cut, self.config.plate_batch)

    def in_crops(
        self, model: LoadedDetector, crops: Sequence[Crop], cut: Mapping[ObjectClass, float]
    ) -> list[Detections]:
        """The plates ``model`` finds in each of ``crops``, in the crop's own unscaled pixels.
        Every look (each crop, and with ``plate_crop_flip`` its mirror image) runs in one
        batch with the others of its input shape."""
        flips = [self.config.plate_crop_flip and crop.mirror for crop in crops]
        # Each look is taken down to the floor: with two, a faint box the other look confirms
        # is kept; the class threshold applies once the looks are combined.
        low = self._floored(cut)
        views = [crop.view for crop in crops]
        views += [flipped(crop.view) for crop, flip in zip(crops, flips, strict=True) if flip]
        looks = self._looks(model, views, low)
        mirrors = iter(looks[len(crops) :])
        out = []
        for crop, flip, look in zip(crops, flips, looks[: len(crops)], strict=True):
            found = look
            if flip:  # the mirror image too: a second look, other errors
                mirror = flipped_back(next(mirrors), crop.view.shape[1])
                found = merge([agreed(look, mirror, FLIP_PENALTY)], model.nms_iou)
            found = found[found.scores >= cuts(found, cut)]
            found = found[found.xyxy[:, 2] - found.xyxy[:, 0] <= crop.widest * crop.scale]
            found = found[~touches(found.xyxy, crop.view.shape, crop.cut_edges)]
            most = self.config.plates_per_crop * crop.members
            if most and len(found) > most:
                found = found[np.argsort(-found.scores)[:most]]
            out.append(Detections(found.xyxy / crop.scale, found.scores, found.class_ids))
        return out

    def seen_again(
        self, image: ImageArray, plates: Detections, cut: Mapping[ObjectClass, float]
    ) -> BoolArray:
        """Which ``plates`` (found alone) a closer look sees again: the plate and some of its
        surroundings (``ALONE_CHECK_CONTEXT``) scaled to ``plate_crop_size``, looked at as it
        is and mirrored; both looks must box it at ``plate_alone_score`` or more. A plate
        looks like a plate up close; a sign, a page or a box of scene text, seen closer, most
        often no longer does."""
        model = self.models[0]
        need = self.config.plate_alone_score
        low = self._floored(cut)
        h, w = image.shape[:2]
        views, refs = [], []
        for x1, y1, x2, y2 in plates.xyxy.tolist():
            half = max(x2 - x1, y2 - y1) * ALONE_CHECK_CONTEXT / 2
            cx, cy = (x1 + x2) / 2, (y1 + y2) / 2
            left, top = max(0, math.floor(cx - half)), max(0, math.floor(cy - half))
            right, bottom = min(w, math.ceil(cx + half)), min(h, math.ceil(cy + half))
            view = image[top:bottom, left:right]
            scale = self.config.plate_crop_size / max(view.shape[:2])
            views.append(resized(view, scale))
            refs.append(np.array([[x1 - left, y1 - top, x2 - left, y2 - top]], np.float32) * scale)
        looks = self._looks(model, views + [flipped(view) for view in views], low)
        out = np.zeros(len(plates), np.bool_)
        for i, (view, ref) in enumerate(zip(views, refs, strict=True)):
            both = (looks[i], flipped_back(looks[len(views) + i], view.shape[1]))
            out[i] = all(
                bool(
                    np.any(
                        (iou_matrix(ref, seen.xyxy)[0] >= ALONE_CHECK_IOU) & (seen.scores >= need)
                    )
                )
                for seen in both
            )
        return out

    def crops(self, image: ImageArray, objects: Detections) -> list[Crop]:
        """The crops of a frame searched in full (see :meth:`plan`)."""
        return self.plan(image, objects).crops

    def plan(
        self, image: ImageArray, objects: Detections, memory: PlateMemory | None = None
    ) -> CropPlan:
        """Padded crops of the most confident vehicles large enough to carry a plate, and of
        riders not inside one of those, each scaled to ``plate_crop_size`` (at most
        ``plate_crop_max_scale`` up). Riders are the persons in a frame with a vehicle: the
        object model often sees the rider and not the motorcycle under them, so that a person
        near no vehicle found may still ride one; the rider's box is taken lower, where the
        plate is. A frame without a vehicle (a crowd, a room) spends nothing on its persons.
        Neighbours whose joint crop is hardly larger than either's own (a rider and the
        motorcycle beside, a queue of scooters) share one crop, so that a busy street costs
        fewer inferences at the same scale; a rider inside a chosen box is searched in its
        crop, unless that crop is more than ``RIDER_SHRINK`` times the rider's own. With
        ``memory`` (video), only the boxes due for a search are cropped, and those searched
        before get one look."""
        cfg = self.config
        kinds = objects.class_ids
        vehicles = kinds == ObjectClass.VEHICLE
        # Riders only where there is traffic: a frame without a vehicle (a crowd, a room)
        # spends nothing on its persons.
        riding = cfg.plate_crop_riders and bool(vehicles.any())
        riders = (kinds == ObjectClass.PERSON) & riding
        candidates = vehicles | riders
        scores = objects.scores[candidates]
        riders = kinds[candidates] == ObjectClass.PERSON
        boxes = lowered(objects.xyxy[candidates], riders)
        sides = np.minimum(boxes[:, 2] - boxes[:, 0], boxes[:, 3] - boxes[:, 1])
        big = sides >= cfg.min_vehicle_side
        boxes, riders, scores = boxes[big], riders[big], scores[big]
        candidates_all = boxes
        due = memory.due(boxes) if memory is not None else np.ones(len(boxes), np.bool_)
        index = np.flatnonzero(due)
        boxes, riders, scores = boxes[due], riders[due], scores[due]
        new = ~memory.seen(boxes) if memory is not None else np.ones(len(boxes), np.bool_)
        h, w = image.shape[:2]
        regions = np.clip(padded(boxes), 0, [w, h, w, h])
        # The cap counts per 1280x720 of frame: a large frame holds as many vehicles as the
        # 720p frames it could be cut into.
        most_crops = cfg.max_vehicle_crops * max(1, math.ceil(h * w / LARGE_AREA))
        # Vehicles first, then riders, each by score.
        order = np.lexsort((-scores, riders))
        chosen: list[int] = []
        group_of: list[CropGroup] = []  # of each chosen box
        groups: list[CropGroup] = []
        for i in order.tolist():
            region = regions[i].tolist()
            own = max(region[2] - region[0], region[3] - region[1])
            if riders[i] and chosen:
                inside = [covered(boxes[i], boxes[j][None]) for j in chosen]
                best = int(np.argmax(inside))
                # Searched with that box's crop, unless the crop would shrink the rider
                # (a bus behind, a crowd of motorcycles boxed as one; see RIDER_SHRINK).
                if inside[best] >= RIDER_INSIDE and group_of[best].long_side <= RIDER_SHRINK * own:
                    group_of[best].searches.append(int(index[i]))
                    continue
            widest = float(boxes[i, 2] - boxes[i, 0]) * MAX_PLATE_SHARE
            mirror = bool(new[i])
            group = next((g for g in groups if g.take(region, widest, own, mirror)), None)
            if group is None:
                if len(groups) >= most_crops:
                    continue
                x1, y1, x2, y2 = region
                group = CropGroup(x1, y1, x2, y2, widest, members=1, smallest=own, mirror=mirror)
                groups.append(group)
            group.searches.append(int(index[i]))
            chosen.append(i)
            group_of.append(group)
        return CropPlan([self._crop(image, group) for group in groups], candidates_all)

    def _crop(self, image: ImageArray, group: CropGroup) -> Crop:
        cfg = self.config
        cx1, cy1 = math.floor(group.x1), math.floor(group.y1)
        crop = image[cy1 : math.ceil(group.y2), cx1 : math.ceil(group.x2)]
        scale = cfg.plate_crop_size / max(crop.shape[:2])
        if cfg.plate_crop_max_scale:
            scale = min(scale, cfg.plate_crop_max_scale)
        view = resized(crop, scale)
        h, w = image.shape[:2]
        edges = (cx1 > 0, cy1 > 0, cx1 + crop.shape[1] < w, cy1 + crop.shape[0] < h)
        return Crop(
            cx1,
            cy1,
            scale,
            view,
            group.widest,
            group.members,
            group.mirror,
            tuple(group.searches),
            edges,
        )
