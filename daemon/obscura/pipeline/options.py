"""What a caller asks for: classes, methods, thresholds, mask outputs. Validated once, here.

Requests arrive as the wire's :class:`obscura_client.wire.Options` (from the CLI, a client or the
daemon's protobuf); :meth:`AnonymizeOptions.from_wire` is the one way into the pipeline."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from obscura.errors import InvalidInput
from obscura.types import ObjectClass
from obscura_client.wire import (
    DEFAULT_ENLARGE,
    DEFAULT_TRACK_HOLD,
    MAX_POINTS,
    MAX_ZONES,
    MaskEncoding,
    Method,
    SaveMask,
    Zone,
    ZoneKind,
    parse_colour,
    parse_points,
)

if TYPE_CHECKING:
    from obscura_client.wire import Options

__all__ = [
    "DEFAULT_CLASSES",
    "DEFAULT_ENLARGE",
    "DEFAULT_TRACK_HOLD",
    "MAX_DETECT_EVERY",
    "MAX_POINTS",
    "MAX_TRACK_HOLD",
    "MAX_ZONES",
    "AnonymizeOptions",
    "MaskEncoding",
    "Method",
    "SaveMask",
    "Zone",
    "ZoneKind",
    "parse_colour",
    "parse_points",
]


DEFAULT_CLASSES = (ObjectClass.FACE, ObjectClass.LICENSE_PLATE)

MAX_TRACK_HOLD = 1000  # frames
MAX_DETECT_EVERY = 100


@dataclass(frozen=True)
class AnonymizeOptions:
    """Per request (or per stream): which classes are found and how each is hidden.

    ``methods`` names every class that is detected; a class absent from it is not detected at
    all. ``detect`` as a method finds the class for metadata and masks without changing pixels.
    """

    methods: Mapping[ObjectClass, Method] = field(
        default_factory=lambda: dict.fromkeys(DEFAULT_CLASSES, Method.BLUR)
    )
    thresholds: Mapping[ObjectClass, float] = field(default_factory=dict)
    bbox: bool = False  # boxes for every class (no ellipses, no segmentation masks)
    enlarge: Mapping[ObjectClass, float] = field(default_factory=lambda: dict(DEFAULT_ENLARGE))
    fill_rgb: tuple[int, int, int] = (0, 0, 0)
    save_mask: SaveMask = SaveMask.NONE
    mask_scale: int = 100
    mask_encoding: MaskEncoding = MaskEncoding.CELANTUR
    quality: int = 90
    # Video and streams: frames a lost object stays hidden (tracking); 0: every frame alone.
    track_hold: int = DEFAULT_TRACK_HOLD
    # Video and streams: run the detectors on every N-th frame only and carry the tracks in
    # between (weak devices); needs tracking.
    detect_every: int = 1
    # Polygons always hidden (privacy) or where detections are ignored (ignore).
    zones: tuple[Zone, ...] = ()
    # How masks leave the daemon: uncompressed (True) or as PNG.
    raw_masks: bool = False

    def __post_init__(self) -> None:
        if not self.methods:
            raise InvalidInput("no class to anonymize or detect")
        for cls, value in self.thresholds.items():
            if not 0.0 <= value <= 1.0:
                raise InvalidInput(f"threshold for {cls.label} must be in 0..1, got {value}")
        for cls, factor in self.enlarge.items():
            if not 1.0 <= factor <= 3.0:
                raise InvalidInput(f"enlarge factor for {cls.label} must be in 1..3, got {factor}")
        if not 1 <= self.mask_scale <= 100:
            raise InvalidInput(f"mask_scale must be an integer in 1..100, got {self.mask_scale}")
        if not 1 <= self.quality <= 100:
            raise InvalidInput(f"quality must be in 1..100, got {self.quality}")
        if not 0 <= self.track_hold <= MAX_TRACK_HOLD:
            raise InvalidInput(f"track_hold must be in 0..{MAX_TRACK_HOLD}, got {self.track_hold}")
        if not 1 <= self.detect_every <= MAX_DETECT_EVERY:
            raise InvalidInput(
                f"detect_every must be in 1..{MAX_DETECT_EVERY}, got {self.detect_every}"
            )
        if len(self.zones) > MAX_ZONES:
            raise InvalidInput(f"at most {MAX_ZONES} zones, got {len(self.zones)}")
        if self.detect_every > 1 and not self.track_hold:
            raise InvalidInput(
                "detect_every > 1 needs tracking (track_hold > 0): frames without detection "
                "are anonymized from the tracks"
            )
        object.__setattr__(self, "fill_rgb", parse_colour(self.fill_rgb))

    @staticmethod
    def choose_methods(
        anonymize: list[ObjectClass] | None = None,
        method: Method = Method.BLUR,
        class_methods: Mapping[ObjectClass, Method] | None = None,
    ) -> dict[ObjectClass, Method]:
        """Celantur-style choice: the classes to anonymize with one method, and per-class
        methods that override it (a class given only a method, such as ``vehicle=detect``, is
        added)."""
        chosen = list(anonymize) if anonymize is not None else list(DEFAULT_CLASSES)
        methods = dict.fromkeys(chosen, method)
        methods.update(class_methods or {})
        return methods

    @property
    def classes(self) -> frozenset[ObjectClass]:
        return frozenset(self.methods)

    def method(self, cls: ObjectClass) -> Method:
        return self.methods[cls]

    def enlarge_factor(self, cls: ObjectClass) -> float:
        return self.enlarge.get(cls, DEFAULT_ENLARGE[cls])

    @classmethod
    def from_wire(cls, wire: Options) -> AnonymizeOptions:
        """The pipeline's options for a request: every field of the wire options, validated."""
        methods = {ObjectClass.from_label(k): Method(v) for k, v in wire.classes.items()}
        enlarge = dict(DEFAULT_ENLARGE)
        enlarge.update({ObjectClass.from_label(k): v for k, v in wire.enlarge.items()})
        return cls(
            methods=methods,
            thresholds={ObjectClass.from_label(k): v for k, v in wire.thresholds.items()},
            bbox=wire.bbox,
            enlarge=enlarge,
            fill_rgb=wire.fill_color if wire.fill_color is not None else (0, 0, 0),
            save_mask=SaveMask(wire.save_mask),
            mask_scale=wire.mask_scale or 100,
            mask_encoding=MaskEncoding(wire.mask_encoding),
            quality=wire.quality or 90,
            track_hold=DEFAULT_TRACK_HOLD if wire.track_hold is None else wire.track_hold,
            detect_every=wire.detect_every or 1,
            zones=wire.zones,
            raw_masks=wire.mask_format == "raw",
        )

    def to_wire(self, output_format: str | None = None) -> Options:
        """The wire options that ask for these (what a client sends)."""
        from obscura_client.wire import Options

        return Options(
            classes={cls.label: method for cls, method in self.methods.items()},
            thresholds={cls.label: v for cls, v in self.thresholds.items() if cls in self.methods},
            enlarge={
                cls.label: self.enlarge_factor(cls)
                for cls in self.methods
                if self.enlarge_factor(cls) != DEFAULT_ENLARGE[cls]
            },
            bbox=self.bbox,
            save_mask=self.save_mask,
            mask_scale=self.mask_scale,
            mask_encoding=self.mask_encoding,
            output_format=output_format,
            quality=self.quality,
            fill_color=None if self.fill_rgb == (0, 0, 0) else self.fill_rgb,
            track_hold=self.track_hold,
            detect_every=self.detect_every,
            zones=self.zones,
            mask_format="raw" if self.raw_masks else "png",
        )
