"""The daemon's data plane without gRPC: header probing, raw frames, ordering, admission,
and protobuf conversions."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import cv2
import numpy as np
import pytest

from obscura.errors import InvalidInput
from obscura.imageio import RAW_PIXEL_FORMATS, bgr_to_raw, decode_image, probe_image, raw_to_bgr
from obscura.pipeline.options import AnonymizeOptions, MaskEncoding, Method, SaveMask
from obscura.server.convert import (
    metadata_from_proto,
    metadata_to_proto,
    options_from_proto,
    options_to_proto,
)
from obscura.service import Dispatcher, Overloaded, ordered
from obscura.types import ObjectClass
from obscura_client.v1 import anonymizer_pb2 as pb


def encoded(ext: str, w: int = 64, h: int = 48) -> bytes:
    ok, buf = cv2.imencode(ext, np.full((h, w, 3), 127, np.uint8))
    assert ok, ext
    return bytes(buf)


@pytest.mark.parametrize(
    ("ext", "fmt"), [(".jpg", "jpeg"), (".png", "png"), (".webp", "webp"), (".bmp", "bmp")]
)
def test_probe_reads_the_size_from_the_header(ext: str, fmt: str) -> None:
    assert probe_image(encoded(ext, 123, 45)) == (fmt, 123, 45)


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"", "empty image"),
        (b"GIF89a....", "unknown signature"),
        (b"\x89PNG\r\n\x1a\n\x00\x00", "truncated PNG"),
        (encoded(".jpg")[:20], "JPEG"),
        (encoded(".png")[:40], "does not decode"),
    ],
)
def test_corrupt_images_are_named(data: bytes, message: str) -> None:
    with pytest.raises(InvalidInput, match=message):
        decode_image(data, 10**8)


def test_decompression_bomb_is_refused_before_decoding() -> None:
    data = bytearray(encoded(".png"))
    data[16:20] = (50_000).to_bytes(4, "big")
    data[20:24] = (50_000).to_bytes(4, "big")
    with pytest.raises(InvalidInput, match="2500000000 pixels exceeds the limit"):
        decode_image(bytes(data), 40_000_000)


@pytest.mark.parametrize("fmt", RAW_PIXEL_FORMATS)
def test_raw_round_trip(fmt: str) -> None:
    ys, xs = np.mgrid[0:48, 0:64]
    image = np.stack([xs * 4, ys * 5, (xs + ys) * 2], axis=2).astype(np.uint8)  # smooth colours
    back = raw_to_bgr(bgr_to_raw(image, fmt), 64, 48, fmt, 10**6)
    assert back.shape == image.shape
    if fmt in ("bgr24", "rgb24"):
        assert (back == image).all()
    elif fmt == "nv12":
        assert np.abs(back.astype(int) - image.astype(int)).mean() < 4


def test_raw_size_mismatch_is_named() -> None:
    with pytest.raises(InvalidInput, match="needs 9216 bytes, got 9215"):
        raw_to_bgr(b"x" * 9215, 64, 48, "bgr24", 10**6)
    with pytest.raises(InvalidInput, match="even width and height"):
        raw_to_bgr(b"x" * 100, 63, 48, "nv12", 10**6)


def test_options_survive_protobuf() -> None:
    options = AnonymizeOptions(
        methods={ObjectClass.FACE: Method.PIXELATE, ObjectClass.VEHICLE: Method.DETECT},
        thresholds={ObjectClass.FACE: 0.2},
        bbox=True,
        fill_rgb=(1, 2, 3),
        save_mask=SaveMask.BINARY,
        mask_scale=25,
        mask_encoding=MaskEncoding.CELANTUR_V26,
        quality=70,
    )
    back = options_from_proto(options_to_proto(options))
    assert back == options
    assert options_from_proto(pb.Options()) == AnonymizeOptions(save_mask=SaveMask.NONE)


def test_metadata_survives_protobuf() -> None:
    meta = {
        "id": "a.jpg", "filename": "a.jpg", "folder": "x/y", "size": [640, 480], "duration": 0.5,
        "detections": [
            {"id": 0, "parent_image": "a.jpg", "offset": [1, 2], "bbox": [1, 2, 30, 40],
             "score": 0.8725, "is_anonymized": True, "type_label": "face", "type": 192,
             "color": [192, 255, 0]},
        ],
    }  # fmt: skip
    assert metadata_from_proto(metadata_to_proto(meta)) == meta


async def _items(n: int, delay: float = 0.0) -> AsyncIterator[int]:
    for i in range(n):
        if delay:
            await asyncio.sleep(delay)
        yield i


def test_ordered_keeps_order_and_bounds_work_in_flight() -> None:
    running = 0
    peak = 0

    async def handle(i: int) -> int:
        nonlocal running, peak
        running += 1
        peak = max(peak, running)
        await asyncio.sleep(0.02 if i % 2 else 0.001)  # odd items finish later
        running -= 1
        return i * 10

    async def collect() -> list[int]:
        return [r async for r in ordered(_items(20), 3, handle)]

    assert asyncio.run(collect()) == [i * 10 for i in range(20)]
    assert peak <= 3


def test_dispatcher_refuses_beyond_its_limit() -> None:
    async def scenario() -> list[str]:
        dispatcher = Dispatcher(workers=1, max_inflight=2)
        release = asyncio.Event()
        outcomes: list[str] = []

        async def one() -> None:
            try:
                with dispatcher.admit():
                    await release.wait()
                    outcomes.append("done")
            except Overloaded as exc:
                outcomes.append(str(exc))

        tasks = [asyncio.ensure_future(one()) for _ in range(3)]
        await asyncio.sleep(0.01)
        release.set()
        await asyncio.gather(*tasks)
        assert dispatcher.inflight == 0
        assert await dispatcher.run(lambda: 42) == 42
        dispatcher.shutdown()
        return outcomes

    outcomes = asyncio.run(scenario())
    assert outcomes.count("done") == 2
    assert any("limit of 2 frames in flight" in o for o in outcomes)


def test_one_metadata_record_on_every_path() -> None:
    """Every field of the Metadata and Detection messages survives the record, both ways."""
    from obscura_client.wire import DetectionRecord, FrameMetadata, Zone, ZoneKind

    record = FrameMetadata(
        id="7",
        filename="cam",
        folder="gate",
        size=(640, 480),
        duration=0.0123,
        detections=(
            DetectionRecord(
                0,
                "7",
                (1, 2),
                (1, 2, 30, 40),
                0.5,
                True,
                "face",
                192,
                (192, 85, 0),
                covered_in_mask=True,
                source="track",
                track_id=4,
            ),
        ),
        detect_every=3,
        zones=(Zone(ZoneKind.PRIVACY, ((0, 0), (10, 0), (10, 10)), Method.BLACKEN),),
        instance_ids_repeat=("person",),
    )
    msg = record.to_proto()
    for descriptor, item in (
        (pb.Metadata.DESCRIPTOR, msg),
        (pb.Detection.DESCRIPTOR, msg.detections[0]),
    ):
        for fd in descriptor.fields:
            value = getattr(item, fd.name)
            assert (len(value) if fd.is_repeated else value) or fd.name == "id", fd.name
    assert FrameMetadata.from_proto(msg) == record
    assert FrameMetadata.from_dict(record.to_dict()) == record
    live = record.as_frame(12, "cam", "", 1.5).to_dict()
    assert (live["id"], live["time"], live["detections"][0]["parent_image"]) == (12, 1.5, 12)
    assert live["detections"][0]["covered_in_mask"] is True
    assert live["zones"][0]["kind"] == "privacy"
    assert (live["detect_every"], live["instance_ids_repeat"]) == (3, ["person"])
