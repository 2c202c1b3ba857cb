"""Protobuf to domain types and back, at the edge of the servicer (and of the client)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from obscura.errors import InvalidInput
from obscura.pipeline.options import (
    DEFAULT_ENLARGE,
    DEFAULT_TRACK_HOLD,
    AnonymizeOptions,
    MaskEncoding,
    Method,
    SaveMask,
    Zone,
    ZoneKind,
)
from obscura.server.service import FrameInput, FrameOutput, RawImage
from obscura.types import ObjectClass
from obscura.v1 import anonymizer_pb2 as pb

METHODS = {
    pb.METHOD_UNSPECIFIED: Method.BLUR,
    pb.METHOD_BLUR: Method.BLUR,
    pb.METHOD_PIXELATE: Method.PIXELATE,
    pb.METHOD_BLACKEN: Method.BLACKEN,
    pb.METHOD_DETECT: Method.DETECT,
}
METHODS_BACK = {v: k for k, v in METHODS.items() if k != pb.METHOD_UNSPECIFIED}
ZONE_KINDS = {pb.ZONE_KIND_PRIVACY: ZoneKind.PRIVACY, pb.ZONE_KIND_IGNORE: ZoneKind.IGNORE}
ZONE_KINDS_BACK = {v: k for k, v in ZONE_KINDS.items()}


def zones_from_proto(items: Iterable[pb.Zone]) -> tuple[Zone, ...]:
    zones = []
    for n, item in enumerate(items):
        where = f"options.zones[{n}]"
        kind = _enum(ZONE_KINDS, item.kind, f"{where}.kind")
        if len(item.points) % 2:
            raise InvalidInput(f"{where}.points: an odd count ({len(item.points)}), not x, y pairs")
        points = tuple(zip(item.points[::2], item.points[1::2], strict=True))
        try:
            zones.append(Zone(kind, points, _enum(METHODS, item.method, f"{where}.method")))
        except InvalidInput as exc:
            raise InvalidInput(f"{where}: {exc}") from None
    return tuple(zones)


def zones_to_proto(zones: Iterable[Zone]) -> list[pb.Zone]:
    return [
        pb.Zone(
            kind=ZONE_KINDS_BACK[z.kind],
            points=[v for point in z.points for v in point],
            method=METHODS_BACK[z.method] if z.kind is ZoneKind.PRIVACY else pb.METHOD_UNSPECIFIED,
        )
        for z in zones
    ]


SAVE_MASKS = {
    pb.SAVE_MASK_UNSPECIFIED: SaveMask.NONE,
    pb.SAVE_MASK_ALL: SaveMask.ALL,
    pb.SAVE_MASK_INSTANCE: SaveMask.INSTANCE,
    pb.SAVE_MASK_BINARY: SaveMask.BINARY,
    pb.SAVE_MASK_NONE: SaveMask.NONE,
}
SAVE_MASKS_BACK = {v: k for k, v in SAVE_MASKS.items() if k != pb.SAVE_MASK_UNSPECIFIED}
ENCODINGS = {
    pb.MASK_ENCODING_UNSPECIFIED: MaskEncoding.CELANTUR,
    pb.MASK_ENCODING_CELANTUR: MaskEncoding.CELANTUR,
    pb.MASK_ENCODING_CELANTUR_V26: MaskEncoding.CELANTUR_V26,
}
ENCODINGS_BACK = {v: k for k, v in ENCODINGS.items() if k != pb.MASK_ENCODING_UNSPECIFIED}
IMAGE_FORMATS = {
    pb.IMAGE_FORMAT_UNSPECIFIED: None,
    pb.IMAGE_FORMAT_JPEG: "jpeg",
    pb.IMAGE_FORMAT_PNG: "png",
    pb.IMAGE_FORMAT_WEBP: "webp",
    pb.IMAGE_FORMAT_BMP: "bmp",
    pb.IMAGE_FORMAT_RAW: "raw",
}
IMAGE_FORMATS_BACK = {v: k for k, v in IMAGE_FORMATS.items() if v is not None}
PIXEL_FORMATS = {
    pb.PIXEL_FORMAT_BGR24: "bgr24",
    pb.PIXEL_FORMAT_RGB24: "rgb24",
    pb.PIXEL_FORMAT_NV12: "nv12",
    pb.PIXEL_FORMAT_GRAY8: "gray8",
}
PIXEL_FORMATS_BACK = {v: k for k, v in PIXEL_FORMATS.items()}


def _enum(table: Mapping[Any, Any], value: int, what: str) -> Any:
    if value not in table:
        raise InvalidInput(f"unknown {what} value {value}")
    return table[value]


def options_from_proto(msg: pb.Options) -> AnonymizeOptions:
    """Validated domain options; a bad value is InvalidInput naming the field."""
    methods: dict[ObjectClass, Method] = {}
    thresholds: dict[ObjectClass, float] = {}
    enlarge = dict(DEFAULT_ENLARGE)
    for item in msg.classes:
        try:
            cls = ObjectClass(item.object_class)
        except ValueError:
            raise InvalidInput(
                f"options.classes: unknown object_class {item.object_class} "
                "(LICENSE_PLATE 64, PERSON 128, FACE 192, VEHICLE 255)"
            ) from None
        if cls in methods:
            raise InvalidInput(f"options.classes: {cls.label} given twice")
        methods[cls] = _enum(METHODS, item.method, f"options.classes[{cls.label}].method")
        if item.HasField("threshold"):
            thresholds[cls] = round(item.threshold, 6)  # float32 on the wire
        if item.HasField("enlarge"):
            enlarge[cls] = round(item.enlarge, 6)
    fill = (0, 0, 0)
    if msg.HasField("fill_color"):
        fill = (msg.fill_color.r, msg.fill_color.g, msg.fill_color.b)
    return AnonymizeOptions(
        methods=methods or AnonymizeOptions.choose_methods(),
        thresholds=thresholds,
        bbox=msg.bbox,
        enlarge=enlarge,
        fill_rgb=fill,
        save_mask=_enum(SAVE_MASKS, msg.save_mask, "options.save_mask"),
        mask_scale=msg.mask_scale or 100,
        mask_encoding=_enum(ENCODINGS, msg.mask_encoding, "options.mask_encoding"),
        quality=msg.quality or 90,
        track_hold=msg.track_hold if msg.HasField("track_hold") else DEFAULT_TRACK_HOLD,
        detect_every=msg.detect_every or 1,
        zones=zones_from_proto(msg.zones),
    )


def output_format_from_proto(msg: pb.Options) -> str | None:
    fmt: str | None = _enum(IMAGE_FORMATS, msg.output_format, "options.output_format")
    return fmt


def options_to_proto(options: AnonymizeOptions, output_format: str | None = None) -> pb.Options:
    """The request message for ``options`` (what a client sends)."""
    msg = pb.Options(
        bbox=options.bbox,
        save_mask=SAVE_MASKS_BACK[options.save_mask],
        mask_scale=options.mask_scale,
        mask_encoding=ENCODINGS_BACK[options.mask_encoding],
        quality=options.quality,
        track_hold=options.track_hold,
        detect_every=options.detect_every,
        output_format=(
            IMAGE_FORMATS_BACK[output_format] if output_format else pb.IMAGE_FORMAT_UNSPECIFIED
        ),
    )
    for cls, method in options.methods.items():
        item = msg.classes.add(object_class=int(cls), method=METHODS_BACK[method])
        if cls in options.thresholds:
            item.threshold = options.thresholds[cls]
        if options.enlarge_factor(cls) != DEFAULT_ENLARGE[cls]:
            item.enlarge = options.enlarge_factor(cls)
    msg.zones.extend(zones_to_proto(options.zones))
    if options.fill_rgb != (0, 0, 0):
        r, g, b = options.fill_rgb
        msg.fill_color.CopyFrom(pb.Color(r=r, g=g, b=b))
    return msg


def frame_from_proto(req: pb.AnonymizeRequest) -> FrameInput:
    which = req.WhichOneof("image")
    name = req.name or str(req.frame_index)
    if which == "encoded":
        return FrameInput(encoded=req.encoded, name=name, folder=req.folder)
    if which == "raw":
        raw = req.raw
        if raw.format not in PIXEL_FORMATS:
            raise InvalidInput(
                f"raw.format: unknown pixel format {raw.format} (BGR24, RGB24, NV12, GRAY8)"
            )
        return FrameInput(
            raw=RawImage(raw.width, raw.height, PIXEL_FORMATS[raw.format], raw.data),
            name=name,
            folder=req.folder,
        )
    raise InvalidInput("the request holds no image (set `encoded` or `raw`)")


def metadata_to_proto(meta: Mapping[str, Any]) -> pb.Metadata:
    msg = pb.Metadata(
        id=str(meta["id"]),
        filename=str(meta["filename"]),
        folder=str(meta["folder"]),
        size=list(meta["size"]),
        duration=float(meta["duration"]),
        instance_ids_repeat=list(meta.get("instance_ids_repeat", [])),
        detect_every=int(meta.get("detect_every", 0)),
    )
    for zone in meta.get("zones", []):
        kind = ZoneKind(zone["kind"])
        msg.zones.add(
            kind=ZONE_KINDS_BACK[kind],
            points=[v for point in zone["points"] for v in point],
            method=METHODS_BACK[Method(zone["method"])]
            if kind is ZoneKind.PRIVACY
            else pb.METHOD_UNSPECIFIED,
        )
    for d in meta["detections"]:
        msg.detections.add(
            id=d["id"],
            parent_image=str(d["parent_image"]),
            offset=d["offset"],
            bbox=d["bbox"],
            score=d["score"],
            is_anonymized=d["is_anonymized"],
            type_label=d["type_label"],
            type=d["type"],
            color=d["color"],
            source=d.get("source", ""),
            track_id=d.get("track_id"),
            covered_in_mask=d.get("covered_in_mask", False),
        )
    return msg


def metadata_from_proto(msg: pb.Metadata) -> dict[str, Any]:
    """The JSON metadata object (DESIGN.md section 4) from its protobuf form."""
    out: dict[str, Any] = {
        "id": msg.id,
        "filename": msg.filename,
        "folder": msg.folder,
        "size": list(msg.size),
        "duration": round(msg.duration, 4),
        "detections": [
            {
                "id": d.id,
                "parent_image": d.parent_image,
                "offset": list(d.offset),
                "bbox": list(d.bbox),
                "score": round(d.score, 4),
                "is_anonymized": d.is_anonymized,
                "type_label": d.type_label,
                "type": d.type,
                "color": list(d.color),
                **({"covered_in_mask": True} if d.covered_in_mask else {}),
                **({"source": d.source, "track_id": d.track_id} if d.source else {}),
            }
            for d in msg.detections
        ],
    }
    if msg.instance_ids_repeat:
        out["instance_ids_repeat"] = list(msg.instance_ids_repeat)
    if msg.detect_every:
        out["detect_every"] = msg.detect_every
    if msg.zones:
        out["zones"] = [
            Zone(ZONE_KINDS[z.kind], tuple(zip(z.points[::2], z.points[1::2], strict=True)),
                 METHODS[z.method]).as_dict()
            for z in msg.zones
        ]  # fmt: skip
    return out


def response_from_output(
    out: FrameOutput, req: pb.AnonymizeRequest, total: float
) -> pb.AnonymizeResponse:
    resp = pb.AnonymizeResponse(
        frame_index=req.frame_index,
        timestamp=req.timestamp,
        format=IMAGE_FORMATS_BACK[out.format],
        metadata=metadata_to_proto(out.metadata),
        timings=pb.Timings(
            decode=out.timings["decode"],
            detect=out.timings["detect"],
            anonymize=out.timings["anonymize"],
            encode=out.timings["encode"],
            total=total,
            models=out.models,
        ),
    )
    if out.encoded is not None:
        resp.encoded = out.encoded
    elif out.raw is not None:
        resp.raw.CopyFrom(
            pb.RawFrame(
                width=out.raw.width,
                height=out.raw.height,
                format=PIXEL_FORMATS_BACK[out.raw.pixel_format],
                data=out.raw.data,
            )
        )
    if out.binary_mask is not None:
        resp.binary_mask = out.binary_mask
    if out.instance_mask is not None:
        resp.instance_mask = out.instance_mask
    return resp
