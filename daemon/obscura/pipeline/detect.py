"""The detection core: runs the model set on an image and returns typed detections.

Faces come from the face model (optionally on overlapping tiles as well, for small faces in
large frames), persons and vehicles from the object model, plates from the plate model run on
the full frame and on upscaled crops of the vehicles found, and person pixel masks from the
segmentation model run on padded person crops (batched) and intersected with the boxes.
"""

from __future__ import annotations

import logging
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
from obscura.pipeline.boxes import cuts, merge, offset
from obscura.pipeline.plates import PlateMemory, PlateSearch
from obscura.types import Detections, ImageArray, ObjectClass
from obscura.zoo.manifest import ModelSpec
from obscura.zoo.store import ModelStore

log = logging.getLogger(__name__)

ALL_CLASSES = frozenset(ObjectClass)
TILE_AGREE_IOU = 0.3  # a tile's box and a whole-frame box this close are one object
# A frame whose mean luma is under DARK_LUMA (of 255: a night scene with little light) is also
# shown to the face model lifted by a gamma curve to a mean of LIFTED_LUMA.
# (Test photos darkened to a mean luma of 3: face recall 0.51 plain, 0.96 with the lifted look;
# at 6: 0.90 and 0.98; at 10: 0.98 and 0.99.)
DARK_LUMA = 12.0
LIFTED_LUMA = 60.0
# Recall first: a missed face is the worst failure, a blurred patch of wall the mildest.
DEFAULT_THRESHOLDS: Mapping[ObjectClass, float] = {
    ObjectClass.FACE: 0.3,
    ObjectClass.PERSON: 0.25,
    ObjectClass.VEHICLE: 0.3,
    ObjectClass.LICENSE_PLATE: 0.2,
}
# SCRFD's scores run higher than CenterFace's for the same faces: at 0.5 it adds no false face
# on the test photos while it finds faces CenterFace misses on video (see README, "Video").
DEFAULT_MODEL_THRESHOLDS: Mapping[str, float] = {"scrfd": 0.5}


@dataclass(frozen=True)
class DetectorConfig:
    """Which models run and how. Model names refer to the model store (or a user's models)."""

    face_model: str | None = "centerface"
    # More face models run alongside face_model on the whole frame (not on its tiles): a face
    # face_model also found keeps face_model's box with the better score, the others are
    # added (see join); model_thresholds may ask more of each. On tracked video they run on
    # every face_ensemble_every-th frame only: the tracks carry what they found in between,
    # and weak detections of face_model continue them.
    face_ensemble: tuple[str, ...] = ("scrfd",)
    face_ensemble_every: int = 6
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
    # models of one class in an ensemble are rarely calibrated alike (DEFAULT_MODEL_THRESHOLDS
    # for the models not named).
    model_thresholds: Mapping[str, float] = field(default_factory=dict)
    model_options: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    # Tiling: the model also runs on overlapping tiles of frames larger than a tile, so that
    # small objects keep their pixels. Costs one inference per tile.
    face_tiles: bool = False
    # Frames whose long side exceeds this (px; 0: never) get face tiles without face_tiles:
    # the whole-frame look sees at most 960 px, so a 1920x1080 frame's faces at half their
    # size (mosaics of the test photos at 1920x1080: face recall 0.84 without, 1.00 with).
    face_tiles_above: int = 1440
    # A face only a tile found (none in the whole-frame look there) needs this score: on
    # mosaics of the test photos from 1920x1080 to 8000x4000, tile-only false faces 28 -> 10
    # for 2 faces fewer of 564 (0: the class threshold alone).
    face_tile_alone_score: float = 0.4
    object_tiles: bool = False
    tile_size: int = 640
    tile_overlap: float = 0.25
    # Large frames (long side over large_frame_side px; 0: none): the object model and the
    # whole-frame plate look also run on overlapping tiles of large_tile_size, so that a
    # vehicle and its plate keep the pixels they would have in a 720p frame (a 7680x4320
    # mosaic of 36 composite 1280x720 frames: plate recall 0.08 without, 0.74 with, 0.76 for
    # the frames one by one). max_vehicle_crops then counts per 1280x720 of the frame's area.
    large_frame_side: int = 2560
    large_tile_size: int = 1280
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
    # A plate found where no vehicle or person (down to plate_crop_score) is, on a sign, scene
    # text, a shirt, a screen, needs at least this score (0: the class threshold alone). Only
    # where the object model runs (plate_on_vehicles).
    plate_alone_score: float = 0.5
    # Video with tracking: a vehicle whose box has not changed since its plate search is not
    # searched again for track_hold / 2 frames, the tracker carrying its plate (see
    # PlateMemory). Off by default: under a moving camera it costs some plate recall.
    plate_memory: bool = False
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
        if not 0.0 <= self.face_tile_alone_score <= 1.0:
            raise ConfigError(
                f"face_tile_alone_score must be in 0..1, got {self.face_tile_alone_score}"
            )
        if not 0.0 <= self.plate_alone_score <= 1.0:
            raise ConfigError(f"plate_alone_score must be in 0..1, got {self.plate_alone_score}")
        if not 0.0 <= self.score_floor <= 1.0:
            raise ConfigError(f"score_floor must be in 0..1, got {self.score_floor}")
        if self.plate_crop_size < 32:
            raise ConfigError(f"plate_crop_size must be >= 32, got {self.plate_crop_size}")
        if self.tile_size < 64 or self.large_tile_size < 64:
            raise ConfigError(
                f"tile_size and large_tile_size must be >= 64, got {self.tile_size} and "
                f"{self.large_tile_size}"
            )
        if self.face_tiles_above < 0:
            raise ConfigError(f"face_tiles_above must be >= 0, got {self.face_tiles_above}")
        if self.face_ensemble_every < 1:
            raise ConfigError(f"face_ensemble_every must be >= 1, got {self.face_ensemble_every}")
        if self.large_frame_side < 0:
            raise ConfigError(f"large_frame_side must be >= 0, got {self.large_frame_side}")

    def threshold(self, cls: ObjectClass) -> float:
        return self.thresholds.get(cls, DEFAULT_THRESHOLDS[cls])

    def model_threshold(self, name: str) -> float:
        return self.model_thresholds.get(name, DEFAULT_MODEL_THRESHOLDS.get(name, 0.0))


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
        # No face model (face_model = none): no faces, so no ensemble either.
        self.face_ensemble = [
            loaded
            for name in (cfg.face_ensemble if self.faces is not None else ())
            if (loaded := self._load(name, {ObjectClass.FACE})) is not None
        ]
        self.objects = self._load(cfg.object_model, {ObjectClass.PERSON, ObjectClass.VEHICLE})
        self.plates = self._load(cfg.plate_model, {ObjectClass.LICENSE_PLATE})
        self.plate_ensemble = [
            loaded
            for name in cfg.plate_ensemble
            if (loaded := self._load(name, {ObjectClass.LICENSE_PLATE})) is not None
        ]
        self.plate_search = (
            PlateSearch(cfg, [self.plates, *self.plate_ensemble], self._mapped)
            if self.plates is not None
            else None
        )
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
        models = (self.faces, *self.face_ensemble, self.objects, self.plates, *self.plate_ensemble)
        specs = [m.spec for m in models if m is not None]
        if self.segmenter is not None and self.config.segmentation_model:
            specs.append(self.store.spec(self.config.segmentation_model))
        return specs

    def thresholds_for(
        self, overrides: Mapping[ObjectClass, float] | None
    ) -> dict[ObjectClass, float]:
        """Every class's threshold for a call: the configured ones, then ``overrides``."""
        cut = {c: self.config.threshold(c) for c in ObjectClass}
        cut.update(overrides or {})
        return cut

    # --- detection ----------------------------------------------------------------------
    def detect(
        self,
        image: ImageArray,
        classes: Collection[ObjectClass] = ALL_CLASSES,
        thresholds: Mapping[ObjectClass, float] | None = None,
        timings: dict[str, float] | None = None,
        *,
        plate_memory: PlateMemory | None = None,
        frame: int | None = None,
    ) -> Detections:
        """Detections of ``classes`` in ``image`` (BGR uint8), class ids = ObjectClass codes.

        ``thresholds`` override the configured per-class score thresholds for this call; they
        cannot go below the configured ``score_floor``. ``timings`` collects the seconds spent
        in each model (by model name). ``plate_memory`` (one per video or stream, see
        :class:`PlateMemory`) spares vehicles searched for plates a few frames ago. ``frame``:
        the frame's number in its tracked video or stream (None: an image alone), which
        decides whether the face ensemble runs (``face_ensemble_every``).
        """
        if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
            raise ValueError(
                f"expected a BGR uint8 image (H, W, 3), got {image.dtype} {image.shape}"
            )
        wanted = set(classes)
        cut = self.thresholds_for(thresholds)
        clock = _Clock(timings)
        large: list[tuple[int, int, ImageArray]] = []
        if self.config.large_frame_side and max(image.shape[:2]) > self.config.large_frame_side:
            large = _tiles(image, self.config.large_tile_size, self.config.tile_overlap)
        parts: list[Detections] = []
        crops_wanted = ObjectClass.LICENSE_PLATE in wanted and self.config.plate_on_vehicles
        need_vehicles = ObjectClass.VEHICLE in wanted or crops_wanted
        objects: Detections | None = None
        if self.objects is not None and (ObjectClass.PERSON in wanted or need_vehicles):
            # Vehicles (and riders) to search for plates are taken down to plate_crop_score:
            # a crop costs one small inference, a missed plate is a privacy leak.
            object_cut = dict(cut)
            if crops_wanted:
                for c in (ObjectClass.VEHICLE, ObjectClass.PERSON):
                    object_cut[c] = min(cut[c], self.config.plate_crop_score)
            with clock(self.objects.spec.name):
                objects = self._run(self.objects, image, object_cut, tiled=self.config.object_tiles)
                if large:
                    objects = merge(
                        [objects, *self._on_tiles(self.objects, large, object_cut)],
                        self.objects.adapter.config.nms_iou,
                    )
        if ObjectClass.FACE in wanted and self.faces is not None:
            with clock(self.faces.spec.name):
                faces = self._run(
                    self.faces,
                    image,
                    cut,
                    tiled=self._face_tiles(image),
                    alone_score=self.config.face_tile_alone_score,
                )
                luma = mean_luma(image)
                if luma < DARK_LUMA:  # a night frame: the face model also sees it lifted
                    lifted = self._run(self.faces, lift_dark(image, luma), cut, tiled=False)
                    faces = merge([faces, lifted], self.faces.adapter.config.nms_iou)
            every = self.config.face_ensemble_every
            if self.face_ensemble and (frame is None or frame % every == 0):
                looks = []
                for extra in self.face_ensemble:
                    with clock(extra.spec.name):
                        looks.append(self._run(extra, image, cut, tiled=False))
                faces = join(faces, merge(looks, self.faces.adapter.config.nms_iou))
            parts.append(faces)
        if ObjectClass.LICENSE_PLATE in wanted and self.plate_search is not None:
            parts.append(
                self.plate_search.find(image, objects, cut, clock, plate_memory, tiles=large)
            )
        objects = Detections() if objects is None else objects[objects.scores >= cuts(objects, cut)]
        if ObjectClass.PERSON in wanted:
            persons = objects[objects.class_ids == ObjectClass.PERSON]
            if self.segmenter is not None and len(persons):
                with clock(self.config.segmentation_model or "segmentation"):
                    persons = persons.with_masks(self.segmenter.person_masks(image, persons.xyxy))
            parts.append(persons)
        if ObjectClass.VEHICLE in wanted:
            parts.append(objects[objects.class_ids == ObjectClass.VEHICLE])
        return Detections.concat(parts)

    def _face_tiles(self, image: ImageArray) -> bool:
        above = self.config.face_tiles_above
        return self.config.face_tiles or bool(above and max(image.shape[:2]) > above)

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
        floor = np.maximum(floor, self.config.model_threshold(model.spec.name))
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
        alone_score: float = 0.0,
    ) -> Detections:
        found = self._mapped(model, model.adapter.detect(image), cut)
        if tiled:
            tiles = _tiles(image, self.config.tile_size, self.config.tile_overlap)
            seen = merge(self._on_tiles(model, tiles, cut), model.adapter.config.nms_iou)
            if alone_score and len(seen):
                # Tiles show textures at a scale the whole frame does not: what only a tile
                # saw needs alone_score (a face too small for the whole-frame look has it).
                near = iou_matrix(seen.xyxy, found.xyxy).max(axis=1) if len(found) else None
                sure = seen.scores >= alone_score
                seen = seen[sure if near is None else sure | (near >= TILE_AGREE_IOU)]
            found = merge([found, seen], model.adapter.config.nms_iou)
        return found

    def _on_tiles(
        self,
        model: _LoadedDetector,
        tiles: list[tuple[int, int, ImageArray]],
        cut: Mapping[ObjectClass, float],
    ) -> list[Detections]:
        """The model's detections on each tile, in frame pixels."""
        return [
            offset(self._mapped(model, model.adapter.detect(t), cut), x, y) for x, y, t in tiles
        ]


def join(first: Detections, more: Detections) -> Detections:
    """``first``, and those of ``more`` that no box of ``first`` overlaps (IoU >=
    TILE_AGREE_IOU). An object both see keeps the first model's box, with the better of the
    two scores: its box does not change style from frame to frame when the others run on some
    frames only (a track would read that as motion), and it is as sure as either model is."""
    if not len(first) or not len(more):
        return Detections.concat([first, more])
    same_class = first.class_ids[:, None] == more.class_ids[None, :]
    iou = np.where(same_class, iou_matrix(first.xyxy, more.xyxy), 0.0)
    agree = iou >= TILE_AGREE_IOU
    backed = np.where(agree, more.scores[None, :], 0.0).max(axis=1)
    scores = np.maximum(first.scores, backed).astype(np.float32)
    kept = Detections(first.xyxy, scores, first.class_ids, first.masks)
    alone = np.asarray(~agree.any(axis=0), dtype=np.bool_)
    return Detections.concat([kept, more[alone]])


def mean_luma(image: ImageArray) -> float:
    """The mean luma of ``image`` (BGR), from every fourth pixel of every fourth row."""
    sample = image[::4, ::4].reshape(-1, 3).astype(np.float32)
    if not len(sample):
        return 0.0
    return float((sample @ np.array([0.114, 0.587, 0.299], np.float32)).mean())


def lift_dark(image: ImageArray, luma: float | None = None) -> ImageArray:
    """``image`` lifted by a gamma curve that brings its mean luma to LIFTED_LUMA (``luma``:
    its mean luma, if known), so that a face model trained on lit faces sees one."""
    mean = max(mean_luma(image) if luma is None else luma, 1.0) / 255.0
    gamma = float(np.log(LIFTED_LUMA / 255.0) / np.log(mean))
    table = ((np.arange(256) / 255.0) ** min(gamma, 1.0) * 255.0).clip(0, 255).astype(np.uint8)
    return np.asarray(cv2.LUT(image, table), np.uint8)


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
