"""Protobuf to domain types and back, at the edge of the servicer (and of the client)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from obscura.errors import InvalidInput
from obscura.pipeline.options import AnonymizeOptions
from obscura.service import FrameInput, FrameOutput, RawImage
from obscura_client.v1 import anonymizer_pb2 as pb
from obscura_client.wire import (
    IMAGE_FORMAT_CODES,
    PIXEL_FORMAT_CODES,
    PIXEL_FORMAT_NAMES,
    FrameMetadata,
    Options,
)


def request_options(msg: pb.Options) -> tuple[AnonymizeOptions, str | None]:
    """A request's pipeline options and output format; a bad value is InvalidInput naming
    the field. Protobuf goes through the wire's :class:`Options`, as every client's does."""
    wire = Options.from_proto(msg)
    return AnonymizeOptions.from_wire(wire), wire.output_format


def options_from_proto(msg: pb.Options) -> AnonymizeOptions:
    return request_options(msg)[0]


def output_format_from_proto(msg: pb.Options) -> str | None:
    return request_options(msg)[1]


def options_to_proto(options: AnonymizeOptions, output_format: str | None = None) -> pb.Options:
    """The request message for ``options`` (what a client sends)."""
    return options.to_wire(output_format).to_proto()


def frame_from_proto(req: pb.AnonymizeRequest) -> FrameInput:
    which = req.WhichOneof("image")
    name = req.name or str(req.frame_index)
    if which == "encoded":
        return FrameInput(encoded=req.encoded, name=name, folder=req.folder)
    if which == "raw":
        raw = req.raw
        if raw.format not in PIXEL_FORMAT_NAMES:
            raise InvalidInput(
                f"raw.format: unknown pixel format {raw.format} (BGR24, RGB24, NV12, GRAY8)"
            )
        return FrameInput(
            raw=RawImage(raw.width, raw.height, PIXEL_FORMAT_NAMES[raw.format], raw.data),
            name=name,
            folder=req.folder,
        )
    raise InvalidInput("the request holds no image (set `encoded` or `raw`)")


def metadata_to_proto(meta: Mapping[str, Any] | FrameMetadata) -> pb.Metadata:
    record = meta if isinstance(meta, FrameMetadata) else FrameMetadata.from_dict(meta)
    return record.to_proto()


def metadata_from_proto(msg: pb.Metadata) -> dict[str, Any]:
    """The JSON metadata object (DESIGN.md section 4) from its protobuf form."""
    return FrameMetadata.from_proto(msg).to_dict()


def response_from_output(
    out: FrameOutput, req: pb.AnonymizeRequest, total: float
) -> pb.AnonymizeResponse:
    resp = pb.AnonymizeResponse(
        frame_index=req.frame_index,
        timestamp=req.timestamp,
        format=IMAGE_FORMAT_CODES[out.format],
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
                format=PIXEL_FORMAT_CODES[out.raw.pixel_format],
                data=out.raw.data,
            )
        )
    if out.binary_mask is not None:
        resp.binary_mask = out.binary_mask
    if out.instance_mask is not None:
        resp.instance_mask = out.instance_mask
    if out.mask_size is not None:
        resp.mask_width, resp.mask_height = out.mask_size
        resp.mask_format = pb.MASK_FORMAT_RAW if out.raw_masks else pb.MASK_FORMAT_PNG
    return resp
