"""The detection core: runs the model set on an image and returns typed detections.

Faces come from the face model (optionally on overlapping tiles as well, for small faces in
large frames), persons and vehicles from the object model, plates from the plate model run on
the full frame and on upscaled crops of the vehicles found, and person pixel masks from the
segmentation model run on padded person crops (batched) and intersected with the boxes.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Collection, Mapping
from dataclasses import dataclass, field
from typing import Any

import cv2
import numpy as np

from obscura.backends import Backend, ImageInput, InferenceModel
from obscura.errors import ConfigError
from obscura.models.base import ModelAdapter, batched_nms, iou_matrix
from obscura.models.registry import adapter_class
from obscura.models.segmentation import IMAGE_INPUT as SEGMENTATION_INPUT
from obscura.models.segmentation import SegmentationAdapter, SegmentationConfig
from obscura.types import Detections, FloatArray, ImageArray, IntArray, ObjectClass
from obscura.zoo.manifest import ModelSpec
from obscura.zoo.store import ModelStore

log = logging.getLogger(__name__)

ALL_CLASSES = frozenset(ObjectClass)
# A plate found in a vehicle crop is at most this share of the vehicle's width (a motorcycle's
# plate about half); a wider box is the vehicle itself, or a sign behind it.
MAX_PLATE_SHARE = 0.6
# Vehicles share a crop when its long side is at most this much longer than each one's own
# (so every one keeps nearly the scale it would have had alone).
CROP_SHARING = 1.25
# With plate_crop_flip, a plate only one of the two looks at a crop sees keeps this share of
# its score.
FLIP_PENALTY = 0.7

# Recall first: a missed face is the worst failure, a blurred patch of wall the mildest.
DEFAULT_THRESHOLDS: Mapping[ObjectClass, float] = {
    ObjectClass.FACE: 0.3,
    ObjectClass.PERSON: 0.25,
    ObjectClass.VEHICLE: 0.3,
    ObjectClass.LICENSE_PLATE: 0.2,
}


@dataclass(frozen=True)
class DetectorConfig:
    """Which models run and how. Model names refer to the model store (or a user's models)."""

    face_model: str | None = "centerface"
    object_model: str | None = "nanodet-m"
    plate_model: str | None = "pyplatex-plates"
    # More plate models run alongside plate_model, their boxes merged by NMS (an ensemble).
    plate_ensemble: tuple[str, ...] = ()
    segmentation_model: str | None = "selfie-segmentation"
    thresholds: Mapping[ObjectClass, float] = field(
        default_factory=lambda: dict(DEFAULT_THRESHOLDS)
    )
    nms_iou: Mapping[ObjectClass, float] = field(default_factory=dict)
    # Per model (by name): the least score its detections need, on top of the class threshold;
    # models of one class in an ensemble are rarely calibrated alike.
    model_thresholds: Mapping[str, float] = field(default_factory=dict)
    model_options: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    # Tiling: the model also runs on overlapping tiles of frames larger than a tile, so that
    # small objects keep their pixels. Costs one inference per tile.
    face_tiles: bool = False
    object_tiles: bool = False
    tile_size: int = 640
    tile_overlap: float = 0.25
    plate_on_vehicles: bool = True
    max_vehicle_crops: int = 48
    # Each vehicle crop is scaled (up or down) to this long side before the plate models see
    # it: a plate is about a tenth of its vehicle, so 320 px gives it some 30 px and more.
    plate_crop_size: int = 320
    # Vehicles found with at least this score are searched for plates (even those under the
    # vehicle threshold), and so are persons (riders) when plate_crop_riders is on.
    plate_crop_score: float = 0.15
    plate_crop_riders: bool = True
    # The most a crop is scaled up (0: always to plate_crop_size): bounds the cost of the
    # many small vehicles of a busy street at little loss.
    plate_crop_max_scale: float = 3.0
    # The most plates kept from one vehicle crop, best first (0: all): a vehicle shows one;
    # a neighbour's plate in the crop is found in the neighbour's own crop.
    plates_per_crop: int = 1
    plate_crop_flip: bool = True  # each crop also mirrored; a plate both looks see is surer
    min_vehicle_side: int = 24  # px: smaller vehicles cannot carry a plate worth finding
    person_masks: bool = True
    # Models decode down to this score (or the lowest threshold, if lower), so that a request
    # may lower a class's threshold this far without reloading anything.
    score_floor: float = 0.1

    def __post_init__(self) -> None:
        for cls, value in self.thresholds.items():
            if not 0.0 <= value <= 1.0:
                raise ConfigError(f"threshold for {cls.label} must be in 0..1, got {value}")
        for name, value in self.model_thresholds.items():
            if not 0.0 <= value <= 1.0:
                raise ConfigError(f"model_thresholds.{name} must be in 0..1, got {value}")
        if self.plate_model is None and self.plate_ensemble:
            raise ConfigError("plate_ensemble needs a plate_model to run alongside")
        if not 0.0 <= self.tile_overlap < 1.0:
            raise ConfigError(f"tile_overlap must be in 0..1, got {self.tile_overlap}")
        if not 0.0 <= self.score_floor <= 1.0:
            raise ConfigError(f"score_floor must be in 0..1, got {self.score_floor}")
        if self.plate_crop_size < 32:
            raise ConfigError(f"plate_crop_size must be >= 32, got {self.plate_crop_size}")
        if self.tile_size < 64:
            raise ConfigError(f"tile_size must be >= 64, got {self.tile_size}")

    def threshold(self, cls: ObjectClass) -> float:
        return self.thresholds.get(cls, DEFAULT_THRESHOLDS[cls])


@dataclass(frozen=True)
class _Crop:
    """A crop searched for plates: its place (x, y) and scale in the frame, its pixels, the
    widest plate it can hold (image px) and how many vehicles it holds."""

    x: int
    y: int
    scale: float
    view: ImageArray
    widest: float
    members: int


@dataclass
class _LoadedDetector:
    spec: ModelSpec
    adapter: ModelAdapter[Any]


class Detector:
    """Runs the configured model set. Thread-safe: adapters keep no per-call state."""

    def __init__(self, store: ModelStore, backend: Backend, config: DetectorConfig | None = None):
        self.config = config or DetectorConfig()
        self.store = store
        self.backend = backend
        # Per loaded model: the device it really runs on and its precision (see model_runs).
        self._runs: dict[str, tuple[str, str]] = {}
        cfg = self.config
        self.faces = self._load(cfg.face_model, {ObjectClass.FACE})
        self.objects = self._load(cfg.object_model, {ObjectClass.PERSON, ObjectClass.VEHICLE})
        self.plates = self._load(cfg.plate_model, {ObjectClass.LICENSE_PLATE})
        self.plate_ensemble = [
            loaded
            for name in cfg.plate_ensemble
            if (loaded := self._load(name, {ObjectClass.LICENSE_PLATE})) is not None
        ]
        self.segmenter: SegmentationAdapter | None = None
        if cfg.segmentation_model and cfg.person_masks:
            spec = store.spec(cfg.segmentation_model)
            options = {**spec.options, **cfg.model_options.get(spec.name, {})}
            self.segmenter = SegmentationAdapter(
                self._load_model(spec.name, SEGMENTATION_INPUT),
                SegmentationConfig.from_mapping(options),
            )

    def _load(self, name: str | None, wanted: set[ObjectClass]) -> _LoadedDetector | None:
        if not name:
            return None
        spec = self.store.spec(name)
        if spec.task != "detect":
            raise ConfigError(f"model {name!r} is a {spec.task} model, not a detector")
        yields = set(spec.classes) & wanted
        if not yields:
            raise ConfigError(
                f"model {name!r} yields {', '.join(c.label for c in spec.classes)}, "
                f"none of {', '.join(c.label for c in wanted)}"
            )
        options = {**spec.options, **self.config.model_options.get(name, {})}
        # The model's own cut-off is the floor; each class is cut at its threshold later (NMS
        # is greedy by score, so boxes under a threshold never change those above it).
        options["score_threshold"] = min(
            self.config.score_floor, *(self.config.threshold(c) for c in yields)
        )
        ious = [self.config.nms_iou[c] for c in yields if c in self.config.nms_iou]
        if ious:
            options["nms_iou"] = min(ious)
        adapter_type = adapter_class(spec.family)
        config = adapter_type.config_type.from_mapping(options)
        model = self._load_model(name, adapter_type.image_input(config))
        adapter = adapter_type(model, config)
        return _LoadedDetector(spec, adapter)

    def _load_model(self, name: str, image: ImageInput | None) -> InferenceModel:
        model = self.backend.load(self.store.files(name), image)
        self._runs[name] = (model.device, str(getattr(model, "precision", "")))
        return model

    def model_runs(self, name: str) -> tuple[str, str]:
        """Where a loaded model really runs: (device, precision), as its backend reports
        them: an OpenVINO device (``CPU``, ``GPU``) or an ONNX Runtime execution provider
        (``CUDAExecutionProvider``), and ``int8``, ``f32``, ... (``""``: not known)."""
        return self._runs.get(name, ("", ""))

    @property
    def loaded_models(self) -> list[ModelSpec]:
        models = (self.faces, self.objects, self.plates, *self.plate_ensemble)
        specs = [m.spec for m in models if m is not None]
        if self.segmenter is not None and self.config.segmentation_model:
            specs.append(self.store.spec(self.config.segmentation_model))
        return specs

    def supported_classes(self) -> frozenset[ObjectClass]:
        out: set[ObjectClass] = set()
        for m in (self.faces, self.objects, self.plates):
            if m is not None:
                out |= set(m.spec.classes)
        return frozenset(out)

    # --- detection ----------------------------------------------------------------------
    def detect(
        self,
        image: ImageArray,
        classes: Collection[ObjectClass] = ALL_CLASSES,
        thresholds: Mapping[ObjectClass, float] | None = None,
        timings: dict[str, float] | None = None,
    ) -> Detections:
        """Detections of ``classes`` in ``image`` (BGR uint8), class ids = ObjectClass codes.

        ``thresholds`` override the configured per-class score thresholds for this call; they
        cannot go below the configured ``score_floor``. ``timings`` collects the seconds spent
        in each model (by model name).
        """
        if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
            raise ValueError(
                f"expected a BGR uint8 image (H, W, 3), got {image.dtype} {image.shape}"
            )
        wanted = set(classes)
        cut = {c: self.config.threshold(c) for c in ObjectClass}
        cut.update(thresholds or {})
        clock = _Clock(timings)
        parts: list[Detections] = []
        crops_wanted = ObjectClass.LICENSE_PLATE in wanted and self.config.plate_on_vehicles
        need_vehicles = ObjectClass.VEHICLE in wanted or crops_wanted
        objects = Detections()
        if self.objects is not None and (ObjectClass.PERSON in wanted or need_vehicles):
            # Vehicles (and riders) to search for plates are taken down to plate_crop_score:
            # a crop costs one small inference, a missed plate is a privacy leak.
            object_cut = dict(cut)
            if crops_wanted:
                for c in (ObjectClass.VEHICLE, ObjectClass.PERSON):
                    object_cut[c] = min(cut[c], self.config.plate_crop_score)
            with clock(self.objects.spec.name):
                objects = self._run(self.objects, image, object_cut, tiled=self.config.object_tiles)
        if ObjectClass.FACE in wanted and self.faces is not None:
            with clock(self.faces.spec.name):
                parts.append(self._run(self.faces, image, cut, tiled=self.config.face_tiles))
        if ObjectClass.LICENSE_PLATE in wanted and self.plates is not None:
            parts.append(self._plates(image, objects, cut, clock))
        objects = objects[objects.scores >= _cuts(objects, cut)]
        if ObjectClass.PERSON in wanted:
            persons = objects[objects.class_ids == ObjectClass.PERSON]
            if self.segmenter is not None and len(persons):
                with clock(self.config.segmentation_model or "segmentation"):
                    persons = persons.with_masks(self.segmenter.person_masks(image, persons.xyxy))
            parts.append(persons)
        if ObjectClass.VEHICLE in wanted:
            parts.append(objects[objects.class_ids == ObjectClass.VEHICLE])
        return Detections.concat(parts)

    def _mapped(
        self, model: _LoadedDetector, raw: Detections, cut: Mapping[ObjectClass, float]
    ) -> Detections:
        """Model class ids to ObjectClass codes; drops unmapped classes and low scores."""
        codes = np.full(len(raw), -1, dtype=np.int32)
        for cls, ids in model.spec.classes.items():
            codes[np.isin(raw.class_ids, ids)] = int(cls)
        mapped = raw.with_class_ids(codes)[codes >= 0]
        if not len(mapped):
            return mapped
        floor = np.array([cut[ObjectClass(c)] for c in mapped.class_ids], dtype=np.float32)
        floor = np.maximum(floor, self.config.model_thresholds.get(model.spec.name, 0.0))
        mapped = mapped[mapped.scores >= floor]
        # Several model classes may map to one (car, truck -> vehicle): one box per object.
        iou = model.adapter.config.nms_iou
        return mapped[batched_nms(mapped.xyxy, mapped.scores, mapped.class_ids, iou)]

    def _run(
        self,
        model: _LoadedDetector,
        image: ImageArray,
        cut: Mapping[ObjectClass, float],
        *,
        tiled: bool,
    ) -> Detections:
        found = self._mapped(model, model.adapter.detect(image), cut)
        if tiled:
            tiles = [
                self._offset(self._mapped(model, model.adapter.detect(crop), cut), x, y)
                for x, y, crop in _tiles(image, self.config.tile_size, self.config.tile_overlap)
            ]
            found = _merge([found, *tiles], model.adapter.config.nms_iou)
        return found

    def _plates(
        self,
        image: ImageArray,
        objects: Detections,
        cut: Mapping[ObjectClass, float],
        clock: _Clock,
    ) -> Detections:
        """Plates on the full frame and on padded crops of the vehicles (and riders) found, by
        every plate model; one box per plate."""
        assert self.plates is not None
        crops = self._vehicle_crops(image, objects) if self.config.plate_on_vehicles else []
        parts = []
        for model in (self.plates, *self.plate_ensemble):
            adapter = model.adapter
            with clock(model.spec.name):
                parts.append(self._mapped(model, adapter.detect(image), cut))
                for crop in crops:
                    found = self._crop_plates(model, crop, cut)
                    parts.append(self._offset(found, crop.x, crop.y))
        merged = _merge(parts, self.plates.adapter.config.nms_iou)
        return merged[_not_nested(merged.xyxy, merged.scores)]

    def _crop_plates(
        self, model: _LoadedDetector, crop: _Crop, cut: Mapping[ObjectClass, float]
    ) -> Detections:
        """The plates ``model`` finds in ``crop``, in the crop's own unscaled pixels."""
        adapter = model.adapter
        flip = self.config.plate_crop_flip
        # With two looks, each is taken down to the floor: a faint box the other look
        # confirms is kept; the class threshold applies once the looks are combined.
        low = {c: min(v, self.config.score_floor) for c, v in cut.items()} if flip else cut
        found = self._mapped(model, adapter.detect(crop.view), low)
        if flip:  # the mirror image too: a second look, other errors
            mirror = self._mapped(model, adapter.detect(crop.view[:, ::-1]), low)
            w = float(crop.view.shape[1])
            back = np.stack(
                [
                    w - mirror.xyxy[:, 2],
                    mirror.xyxy[:, 1],
                    w - mirror.xyxy[:, 0],
                    mirror.xyxy[:, 3],
                ],
                axis=1,
            ).astype(np.float32)
            mirror = Detections(back, mirror.scores, mirror.class_ids)
            found = _merge([_agreed(found, mirror)], adapter.config.nms_iou)
            found = found[found.scores >= _cuts(found, cut)]
        found = found[found.xyxy[:, 2] - found.xyxy[:, 0] <= crop.widest * crop.scale]
        most = self.config.plates_per_crop * crop.members
        if most and len(found) > most:
            found = found[np.argsort(-found.scores)[:most]]
        return Detections(found.xyxy / crop.scale, found.scores, found.class_ids)

    def _vehicle_crops(self, image: ImageArray, objects: Detections) -> list[_Crop]:
        """Padded crops of the most confident vehicles large enough to carry a plate, and of
        persons not inside one of those in frames with a vehicle (a rider hides the motorcycle
        from the object model; the box is taken a third lower, where the plate is), each
        scaled to ``plate_crop_size`` (at most ``plate_crop_max_scale`` up). Neighbours whose
        joint crop is hardly larger than either's own (a rider and the motorcycle beside, a
        queue of scooters) share one crop, so that a busy street costs fewer inferences at
        the same scale."""
        cfg = self.config
        kinds = objects.class_ids
        vehicles = kinds == ObjectClass.VEHICLE
        # Riders only where there is traffic: a frame without a vehicle (a crowd, a room)
        # spends nothing on its persons.
        riding = cfg.plate_crop_riders and bool(vehicles.any())
        candidates = vehicles | ((kinds == ObjectClass.PERSON) & riding)
        boxes, scores = objects.xyxy[candidates].copy(), objects.scores[candidates]
        riders = kinds[candidates] == ObjectClass.PERSON
        boxes[riders, 3] += (boxes[riders, 3] - boxes[riders, 1]) / 3
        sides = np.minimum(boxes[:, 2] - boxes[:, 0], boxes[:, 3] - boxes[:, 1])
        big = sides >= cfg.min_vehicle_side
        boxes, riders, scores = boxes[big], riders[big], scores[big]
        h, w = image.shape[:2]
        pad = (boxes[:, 2:] - boxes[:, :2]) * 0.1
        regions = np.concatenate([boxes[:, :2] - pad, boxes[:, 2:] + pad], axis=1)
        regions = np.clip(regions, 0, [w, h, w, h])
        # Vehicles first, then riders, each by score; a rider inside a chosen vehicle's box
        # adds nothing.
        order = np.lexsort((-scores, riders))
        chosen: list[int] = []
        # merged regions: x1, y1, x2, y2, widest plate, members, smallest member's long side
        groups: list[list[float]] = []
        for i in order.tolist():
            if riders[i] and chosen and _covered(boxes[i], boxes[chosen]) >= 0.7:
                continue
            region, widest = regions[i], float(boxes[i, 2] - boxes[i, 0]) * MAX_PLATE_SHARE
            own = float(max(region[2] - region[0], region[3] - region[1]))
            for group in groups:
                union = [min(group[0], region[0]), min(group[1], region[1]),
                         max(group[2], region[2]), max(group[3], region[3])]  # fmt: skip
                smallest = min(group[6], own)
                if max(union[2] - union[0], union[3] - union[1]) <= CROP_SHARING * smallest:
                    group[:4] = union
                    group[4] = max(group[4], widest)
                    group[5] += 1
                    group[6] = smallest
                    break
            else:
                if len(groups) >= cfg.max_vehicle_crops:
                    continue
                groups.append([*region.tolist(), widest, 1.0, own])
            chosen.append(i)
        crops = []
        for x1, y1, x2, y2, widest, members, _ in groups:
            cx1, cy1 = math.floor(x1), math.floor(y1)
            crop = image[cy1 : math.ceil(y2), cx1 : math.ceil(x2)]
            scale = cfg.plate_crop_size / max(crop.shape[:2])
            if cfg.plate_crop_max_scale:
                scale = min(scale, cfg.plate_crop_max_scale)
            interp = cv2.INTER_LINEAR if scale > 0.5 else cv2.INTER_AREA
            view = np.asarray(
                cv2.resize(crop, None, fx=scale, fy=scale, interpolation=interp), dtype=np.uint8
            )
            crops.append(_Crop(cx1, cy1, scale, view, widest, int(members)))
        return crops

    @staticmethod
    def _offset(det: Detections, x: int, y: int) -> Detections:
        if not len(det):
            return det
        shift = np.array([x, y, x, y], dtype=np.float32)
        return Detections(det.xyxy + shift, det.scores, det.class_ids, det.masks)


class _Clock:
    """``with clock(name):`` adds the block's seconds to ``timings[name]`` (if collecting)."""

    def __init__(self, timings: dict[str, float] | None):
        self.timings = timings
        self._name = ""
        self._start = 0.0

    def __call__(self, name: str) -> _Clock:
        self._name = name
        return self

    def __enter__(self) -> None:
        self._start = time.perf_counter()

    def __exit__(self, *exc: object) -> None:
        if self.timings is not None:
            elapsed = time.perf_counter() - self._start
            self.timings[self._name] = self.timings.get(self._name, 0.0) + elapsed


def _tiles(image: ImageArray, size: int, overlap: float) -> list[tuple[int, int, ImageArray]]:
    """Overlapping square tiles covering the image; none if the image fits one tile."""
    h, w = image.shape[:2]
    if max(h, w) <= size:
        return []
    step = max(1, int(size * (1.0 - overlap)))

    def starts(length: int) -> list[int]:
        if length <= size:
            return [0]
        out = list(range(0, length - size, step))
        out.append(length - size)
        return out

    return [(x, y, image[y : y + size, x : x + size]) for y in starts(h) for x in starts(w)]


def _cuts(det: Detections, cut: Mapping[ObjectClass, float]) -> FloatArray:
    """Each detection's class threshold."""
    out: FloatArray = np.array([cut[ObjectClass(c)] for c in det.class_ids], dtype=np.float32)
    return out


def _agreed(a: Detections, b: Detections, penalty: float = FLIP_PENALTY) -> Detections:
    """Two looks at one crop, one box per plate: a box the other look confirms (IoU 0.5) is
    fused with it (score-weighted mean of the two, the better score), one seen once only
    keeps ``penalty`` of its score."""
    if not len(a) or not len(b):
        only = Detections.concat([a, b])
        return Detections(only.xyxy, only.scores * np.float32(penalty), only.class_ids)
    ious = iou_matrix(a.xyxy, b.xyxy)
    pairs = []
    used_b: set[int] = set()
    for i in np.argsort(-a.scores).tolist():
        row = np.where([j in used_b for j in range(len(b))], -1.0, ious[i])
        j = int(np.argmax(row))
        if row[j] >= 0.5:
            used_b.add(j)
            pairs.append((i, j))
    fused_a = {i for i, _ in pairs}
    boxes, scores, classes = [], [], []
    for i, j in pairs:
        wa, wb = float(a.scores[i]), float(b.scores[j])
        boxes.append((a.xyxy[i] * wa + b.xyxy[j] * wb) / (wa + wb))
        scores.append(max(wa, wb))
        classes.append(a.class_ids[i])
    for d, skip in ((a, fused_a), (b, used_b)):
        for k in range(len(d)):
            if k not in skip:
                boxes.append(d.xyxy[k])
                scores.append(float(d.scores[k]) * penalty)
                classes.append(d.class_ids[k])
    return Detections(
        np.asarray(boxes, np.float32).reshape(-1, 4),
        np.asarray(scores, np.float32),
        np.asarray(classes, np.int32),
    )


def _covered(box: FloatArray, others: FloatArray) -> float:
    """The largest share of ``box``'s area inside one of ``others``."""
    tl = np.maximum(box[:2], others[:, :2])
    br = np.minimum(box[2:], others[:, 2:])
    inter = np.clip(br - tl, 0, None).prod(axis=1)
    area = max(float((box[2:] - box[:2]).prod()), 1e-6)
    return float(inter.max() / area)


def _not_nested(xyxy: FloatArray, scores: FloatArray, share: float = 0.7) -> IntArray:
    """Indices of the boxes to keep when, of two boxes one of which lies mostly (``share`` of
    its area) inside the other, only the better-scored one stays: a plate inside a plate is
    the same plate seen twice (a crop boxed half of a two-line plate), which NMS keeps
    because their IoU is low."""
    order = np.argsort(-scores, kind="stable")
    kept: list[int] = []
    area = (xyxy[:, 2:] - xyxy[:, :2]).clip(0).prod(axis=1)
    for i in order.tolist():
        if kept:
            others = xyxy[kept]
            tl = np.maximum(xyxy[i, :2], others[:, :2])
            br = np.minimum(xyxy[i, 2:], others[:, 2:])
            inter = np.clip(br - tl, 0, None).prod(axis=1)
            smaller = np.minimum(area[i], area[kept])
            if (inter >= share * np.maximum(smaller, 1e-6)).any():
                continue
        kept.append(i)
    return np.asarray(sorted(kept), dtype=np.int64)


def _merge(parts: list[Detections], iou: float) -> Detections:
    """One detection per object and class across overlapping views."""
    merged = Detections.concat(parts)
    if len(merged) < 2:
        return merged
    return merged[batched_nms(merged.xyxy, merged.scores, merged.class_ids, iou)]
