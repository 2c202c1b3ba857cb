"""One frame through the whole pipeline: detect, shape, hide; masks and metadata on demand.

The CLI (images and video, in-process) and the daemon run this same code.
"""

from __future__ import annotations

import functools
import time
from collections.abc import Collection, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np

from obscura.pipeline.anonymize import (
    Region,
    anonymize,
    apply_method,
    covered,
    draw_order,
    regions_for,
)
from obscura.pipeline.boxes import cuts
from obscura.pipeline.masks import InstanceColours, binary_mask, instance_colours, instance_mask
from obscura.pipeline.options import AnonymizeOptions, ZoneKind
from obscura.pipeline.track import TrackerLike
from obscura.pipeline.zones import ignore_canvas, ignored, zone_region
from obscura.types import Detections, ImageArray, ObjectClass
from obscura_client.wire import DetectionRecord, FrameMetadata

if TYPE_CHECKING:
    from obscura.pipeline.plates import PlateMemory


class DetectorLike(Protocol):
    def detect(
        self,
        image: ImageArray,
        classes: Collection[ObjectClass],
        thresholds: Mapping[ObjectClass, float] | None,
        timings: dict[str, float] | None = None,
        *,
        plate_memory: PlateMemory | None = None,
        frame: int | None = None,
    ) -> Detections: ...

    def thresholds_for(
        self, overrides: Mapping[ObjectClass, float] | None
    ) -> dict[ObjectClass, float]:
        """Every class's threshold for a call with these ``overrides``."""
        ...


@dataclass(frozen=True, eq=False)
class FrameResult:
    """The anonymized frame and everything needed for its masks and metadata."""

    image: ImageArray  # anonymized, BGR
    detections: Detections  # class ids are ObjectClass codes
    regions: list[Region | None]
    anonymized: list[bool]
    colours: InstanceColours
    options: AnonymizeOptions
    timings: dict[str, float] = field(default_factory=dict)  # seconds per stage
    model_timings: dict[str, float] = field(default_factory=dict)  # inference seconds per model
    tracked: bool = False  # video: the detections carry their track ids and sources
    zone_regions: list[Region] = field(default_factory=list)  # privacy zones in the frame

    @property
    def track_ids(self) -> list[int] | None:
        """Each detection's track id (None without tracking)."""
        return list(self.detections.track_ids) if self.tracked else None

    @property
    def sources(self) -> list[str] | None:
        """Each detection's source, "detector" or "track" (None without tracking)."""
        return list(self.detections.sources) if self.tracked else None

    @property
    def size(self) -> tuple[int, int]:
        return int(self.image.shape[1]), int(self.image.shape[0])

    @property
    def duration(self) -> float:
        """Seconds spent on inference and anonymization (no I/O)."""
        return self.timings.get("detect", 0.0) + self.timings.get("anonymize", 0.0)

    def counts(self) -> dict[str, int]:
        """Detections per class label."""
        out: dict[str, int] = {}
        for code in self.detections.class_ids:
            label = ObjectClass(int(code)).label
            out[label] = out.get(label, 0) + 1
        return out

    def binary_mask(self) -> ImageArray:
        regions = [*self.regions, *self.zone_regions]
        return binary_mask(self.size, regions, self.options.mask_scale)

    def instance_mask(self) -> ImageArray:
        return instance_mask(
            self.size,
            self.detections,
            self.regions,
            self.colours,
            encoding=self.options.mask_encoding,
            scale=self.options.mask_scale,
        )

    @functools.cached_property
    def covered(self) -> list[bool]:
        """Per detection: whether objects drawn on top of it cover all of its pixels, so that
        its colour appears nowhere in the instance mask."""
        return covered(self.regions, draw_order(self.detections))

    def detection_records(self, parent: str | int) -> list[DetectionRecord]:
        """Per-detection metadata, Celantur field names (DESIGN.md section 4)."""
        det = self.detections
        width, height = self.size
        out = []
        for i in range(len(det)):
            x1, y1, x2, y2 = (float(v) for v in det.xyxy[i])
            box = (
                min(max(round(x1), 0), width),
                min(max(round(y1), 0), height),
                min(max(round(x2), 0), width),
                min(max(round(y2), 0), height),
            )
            cls = ObjectClass(int(det.class_ids[i]))
            r, g, b = self.colours.colours[i]
            out.append(
                DetectionRecord(
                    id=i,
                    parent_image=parent,
                    offset=(box[0], box[1]),
                    bbox=box,
                    score=round(float(det.scores[i]), 4),
                    is_anonymized=self.anonymized[i],
                    type_label=cls.label,
                    type=int(cls),
                    color=(int(r), int(g), int(b)),
                    covered_in_mask=self.covered[i],
                    source=det.sources[i] if self.tracked else "",
                    track_id=det.track_ids[i] if self.tracked else None,
                )
            )
        return out

    def record(
        self,
        image_id: str | int,
        filename: str,
        folder: str,
        *,
        time: float | None = None,
        timed: bool = False,
        detect_every: int = 1,
    ) -> FrameMetadata:
        """The image's (or frame's) metadata record."""
        return FrameMetadata(
            id=image_id,
            filename=filename,
            folder=folder,
            size=self.size,
            duration=round(self.duration, 4),
            detections=tuple(self.detection_records(image_id)),
            time=time,
            timed=timed,
            detect_every=detect_every,
            zones=self.options.zones,
            # More than 255 instances of a class: their G ids repeat in the instance mask.
            instance_ids_repeat=tuple(c.label for c in self.colours.overflow),
        )

    def metadata(
        self,
        image_id: str | int,
        filename: str,
        folder: str,
        *,
        time: float | None = None,
        timed: bool = False,
        detect_every: int = 1,
    ) -> dict[str, Any]:
        """The image's (or frame's) metadata object, as JSON."""
        return self.record(
            image_id, filename, folder, time=time, timed=timed, detect_every=detect_every
        ).to_dict()


class FrameProcessor:
    """Runs detection and anonymization on frames with per-call options. Thread-safe."""

    def __init__(self, detector: DetectorLike):
        self.detector = detector

    def process(
        self,
        image: ImageArray,
        options: AnonymizeOptions,
        *,
        inplace: bool = False,
        tracker: TrackerLike | None = None,
        detect: bool = True,
    ) -> FrameResult:
        """One frame. With a ``tracker`` (one per video or stream, frames in order), objects
        it still follows but the detector missed are hidden too (fail-closed); with
        ``detect=False`` the detectors do not run and the tracks alone are hidden."""
        start = time.perf_counter()
        models: dict[str, float] = {}
        size = (int(image.shape[1]), int(image.shape[0]))
        canvas = ignore_canvas(options.zones, size)

        def kept(found: Detections) -> Detections:
            # No track starts from, or is continued by, a detection in an ignore zone.
            return found if canvas is None else found[~ignored(found, canvas)]

        weak: Detections | None = None
        if detect and tracker is None:
            det = self.detector.detect(image, options.classes, options.thresholds, models)
        elif detect and tracker is not None:
            # Tracked: faces are detected down to the weak score; those under the threshold
            # only continue tracks (hysteresis).
            cut = self.detector.thresholds_for(options.thresholds)
            low = tracker.config.weak_thresholds(cut)
            det = self.detector.detect(
                image,
                options.classes,
                low,
                models,
                plate_memory=tracker.plate_memory,
                frame=tracker.frame,
            )
            strong = det.scores >= cuts(det, cut)
            det, weak = det[strong], kept(det[~strong])

        elif tracker is None:
            raise ValueError("a frame without detection needs a tracker")
        else:
            det = Detections()
        det = kept(det)
        if tracker is not None:
            det = tracker.update(det, size, detect, weak).detections  # with ids and sources
        detected = time.perf_counter()
        regions = regions_for(det, size, options)
        keep = [r is not None for r in regions]  # boxes wholly outside the frame go
        if canvas is not None and tracker is not None:  # and tracks carried into one
            keep = [k and not i for k, i in zip(keep, ignored(det, canvas), strict=True)]
        if not all(keep):
            det = det[np.array(keep, dtype=np.bool_)]
            regions = [r for r, k in zip(regions, keep, strict=True) if k]
        out = image if inplace else image.copy()
        zone_regions: list[Region] = []
        r, g, b = options.fill_rgb
        for zone in options.zones:  # privacy zones first: detections are drawn over them
            region = zone_region(zone, size) if zone.kind is ZoneKind.PRIVACY else None
            if region is not None:
                apply_method(out, region, zone.method, (b, g, r))
                zone_regions.append(region)
        out, changed = anonymize(out, det, regions, options, inplace=True)
        colours = instance_colours(det, options.mask_encoding)
        done = time.perf_counter()
        return FrameResult(
            image=out,
            detections=det,
            regions=regions,
            anonymized=changed,
            colours=colours,
            options=options,
            timings={"detect": detected - start, "anonymize": done - detected},
            model_timings=models,
            tracked=tracker is not None,
            zone_regions=zone_regions,
        )
