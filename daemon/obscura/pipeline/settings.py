"""The detection core's settings: which models run, their thresholds, tiling and the plate
search, with the defaults the daemon ships."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from obscura.errors import ConfigError
from obscura.types import ObjectClass

ALL_CLASSES = frozenset(ObjectClass)
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
    # The most views (crops, their mirror images, a large frame's tiles) of one input shape
    # the plate model takes in one inference, where it takes batches (1: one at a time). The
    # boxes are the same; a batch costs less per view.
    plate_batch: int = 8
    # A plate found where no vehicle or person (down to plate_crop_score) is, on a sign, scene
    # text, a shirt, a screen, needs at least this score (0: the class threshold alone). Only
    # where the object model runs (plate_on_vehicles).
    plate_alone_score: float = 0.5
    # ... and, if at least 24 px wide, a closer second look (the plate and its surroundings
    # scaled up, as it is and mirrored) must box it again at plate_alone_score in both looks.
    plate_alone_check: bool = True
    # A plate the plate model scored under plate_check_below, at least plate_check_width px
    # wide, needs a second opinion: the check model (the project's own small classifier of a
    # plate in its surroundings; "" or None: no check) must give it at least
    # plate_check_score. Most of the plate model's false plates (tail-lights, badges,
    # grilles, signs) score under 0.5, and so do some small and blurred plates: with the low
    # bar the check only drops what it is sure is no plate. Narrower plates are too small
    # for the check to be measured on (the plate benchmark does not count them), so they
    # keep the class threshold alone.
    plate_check_model: str | None = "plate-check"
    plate_check_below: float = 0.5
    plate_check_score: float = 0.05
    plate_check_width: int = 15
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
        if self.plate_check_width < 0:
            raise ConfigError(f"plate_check_width must be >= 0, got {self.plate_check_width}")
        for key in ("plate_check_below", "plate_check_score"):
            if not 0.0 <= getattr(self, key) <= 1.0:
                raise ConfigError(f"{key} must be in 0..1, got {getattr(self, key)}")
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
        if self.plate_batch < 1:
            raise ConfigError(f"plate_batch must be >= 1, got {self.plate_batch}")
        if self.face_ensemble_every < 1:
            raise ConfigError(f"face_ensemble_every must be >= 1, got {self.face_ensemble_every}")
        if self.large_frame_side < 0:
            raise ConfigError(f"large_frame_side must be >= 0, got {self.large_frame_side}")

    def threshold(self, cls: ObjectClass) -> float:
        return self.thresholds.get(cls, DEFAULT_THRESHOLDS[cls])

    def model_threshold(self, name: str) -> float:
        return self.model_thresholds.get(name, DEFAULT_MODEL_THRESHOLDS.get(name, 0.0))
