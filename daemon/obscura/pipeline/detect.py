"""The detection core: runs the model set on an image and returns typed detections.

Faces come from the face model (optionally on overlapping tiles as well, for small faces in
large frames), persons and vehicles from the object model, plates from the plate model run on
the full frame and on upscaled crops of the vehicles found (:mod:`obscura.pipeline.plates`),
and person pixel masks from the segmentation model run on padded person crops (batched) and
intersected with the boxes. The settings live in :mod:`obscura.pipeline.settings`, the models
are loaded by :mod:`obscura.pipeline.loading`.
"""

from __future__ import annotations

import time
from collections.abc import Collection, Mapping

import numpy as np

from obscura.backends import Backend
from obscura.errors import ConfigError
from obscura.models.base import iou_matrix
from obscura.models.segmentation import IMAGE_INPUT as SEGMENTATION_INPUT
from obscura.models.segmentation import SegmentationAdapter, SegmentationConfig
from obscura.pipeline.boxes import AGREE_IOU, cuts, join, merge, offset
from obscura.pipeline.light import DARK_LUMA, lift_dark, mean_luma
from obscura.pipeline.loading import LoadedDetector, ModelLoader
from obscura.pipeline.plates import CHECK_INPUT, PlateCheck, PlateMemory, PlateSearch
from obscura.pipeline.settings import DetectorConfig
from obscura.pipeline.tiles import tiles
from obscura.types import Detections, ImageArray, ObjectClass
from obscura.zoo.manifest import ModelSpec
from obscura.zoo.store import ModelStore

ALL_CLASSES = frozenset(ObjectClass)


class Detector:
    """Runs the configured model set. Thread-safe: adapters keep no per-call state."""

    def __init__(self, store: ModelStore, backend: Backend, config: DetectorConfig | None = None):
        self.config = config or DetectorConfig()
        self.store = store
        self.backend = backend
        cfg = self.config
        self.loader = ModelLoader(store, backend, cfg)
        load = self.loader.detector
        self.faces = load(cfg.face_model, {ObjectClass.FACE})
        # No face model (face_model = none): no faces, so no ensemble either.
        self.face_ensemble = [
            loaded
            for name in (cfg.face_ensemble if self.faces is not None else ())
            if (loaded := load(name, {ObjectClass.FACE})) is not None
        ]
        self.objects = load(cfg.object_model, {ObjectClass.PERSON, ObjectClass.VEHICLE})
        self.plates = load(cfg.plate_model, {ObjectClass.LICENSE_PLATE})
        self.plate_ensemble = [
            loaded
            for name in cfg.plate_ensemble
            if (loaded := load(name, {ObjectClass.LICENSE_PLATE})) is not None
        ]
        self.plate_check: PlateCheck | None = None
        if self.plates is not None and cfg.plate_check_model:
            spec = store.spec(cfg.plate_check_model)
            if spec.task != "classify":
                raise ConfigError(
                    f"plate_check_model {spec.name!r} is a {spec.task} model, not a classifier"
                )
            self.plate_check = PlateCheck(self.loader.model(spec.name, CHECK_INPUT))
        self.plate_search = (
            PlateSearch(cfg, [self.plates, *self.plate_ensemble], self.plate_check)
            if self.plates is not None
            else None
        )
        self.segmenter: SegmentationAdapter | None = None
        if cfg.segmentation_model and cfg.person_masks:
            spec = store.spec(cfg.segmentation_model)
            options = {**spec.options, **cfg.model_options.get(spec.name, {})}
            self.segmenter = SegmentationAdapter(
                self.loader.model(spec.name, SEGMENTATION_INPUT),
                SegmentationConfig.from_mapping(options),
            )

    def model_runs(self, name: str) -> tuple[str, str]:
        """Where a loaded model really runs: (device, precision), as its backend reports
        them: an OpenVINO device (``CPU``, ``GPU``) or an ONNX Runtime execution provider
        (``CUDAExecutionProvider``), and ``int8``, ``f32``, ... (``""``: not known)."""
        return self.loader.runs(name)

    @property
    def loaded_models(self) -> list[ModelSpec]:
        models = (self.faces, *self.face_ensemble, self.objects, self.plates, *self.plate_ensemble)
        specs = [m.spec for m in models if m is not None]
        if self.plate_check is not None and self.config.plate_check_model:
            specs.append(self.store.spec(self.config.plate_check_model))
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
            large = tiles(image, self.config.large_tile_size, self.config.tile_overlap)
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
                        self.objects.nms_iou,
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
                    faces = merge([faces, lifted], self.faces.nms_iou)
            every = self.config.face_ensemble_every
            if self.face_ensemble and (frame is None or frame % every == 0):
                looks = []
                for extra in self.face_ensemble:
                    with clock(extra.spec.name):
                        looks.append(self._run(extra, image, cut, tiled=False))
                faces = join(faces, merge(looks, self.faces.nms_iou))
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

    def _run(
        self,
        model: LoadedDetector,
        image: ImageArray,
        cut: Mapping[ObjectClass, float],
        *,
        tiled: bool,
        alone_score: float = 0.0,
    ) -> Detections:
        found = model.detect(image, cut)
        if tiled:
            parts = tiles(image, self.config.tile_size, self.config.tile_overlap)
            seen = merge(self._on_tiles(model, parts, cut), model.nms_iou)
            if alone_score and len(seen):
                # Tiles show textures at a scale the whole frame does not: what only a tile
                # saw needs alone_score (a face too small for the whole-frame look has it).
                near = iou_matrix(seen.xyxy, found.xyxy).max(axis=1) if len(found) else None
                sure = seen.scores >= alone_score
                seen = seen[sure if near is None else sure | (near >= AGREE_IOU)]
            found = merge([found, seen], model.nms_iou)
        return found

    def _on_tiles(
        self,
        model: LoadedDetector,
        parts: list[tuple[int, int, ImageArray]],
        cut: Mapping[ObjectClass, float],
    ) -> list[Detections]:
        """The model's detections on each tile, in frame pixels."""
        return [offset(model.detect(t, cut), x, y) for x, y, t in parts]


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
