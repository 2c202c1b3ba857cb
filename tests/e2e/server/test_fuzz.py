"""Bad input, generated: decoders, raw frames, options and output names never fail in any way
but a clear InvalidInput, and the daemon answers each bad request with INVALID_ARGUMENT and
keeps serving.

The number of generated cases comes from the hypothesis profile: ``default`` for `make test`
(a few hundred in all), ``long`` for `make test-slow` (HYPOTHESIS_PROFILE=long, over 10,000).
"""

from __future__ import annotations

import functools
import os
import re
import struct
import zlib
from collections.abc import Callable, Iterator
from pathlib import PurePosixPath
from typing import TypeVar, cast

import cv2
import grpc
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from support import media
from support.daemons import DaemonProcess

from obscura.errors import InvalidInput
from obscura.imageio import RAW_PIXEL_FORMATS, decode_image, raw_size, raw_to_bgr
from obscura.pipeline.options import AnonymizeOptions
from obscura.server.convert import options_from_proto, output_format_from_proto
from obscura_client.client import Client
from obscura_client.files import OutputPaths
from obscura_client.v1 import anonymizer_pb2 as pb

settings.register_profile("default", max_examples=60, deadline=None)
settings.register_profile(
    "long",
    max_examples=2500,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "default"))

MAX_PIXELS = 4_000_000
FORMATS = {"jpeg": ".jpg", "png": ".png", "webp": ".webp", "bmp": ".bmp"}

T = TypeVar("T")


@functools.cache
def samples() -> dict[str, bytes]:
    """Small real images in each format, cut from a photo of the test media."""
    image = cv2.imread(str(media.data_dir() / "deface_city.jpg"), cv2.IMREAD_COLOR)
    assert image is not None
    crop = np.ascontiguousarray(image[100:164, 200:280])
    return {fmt: bytes(cv2.imencode(ext, crop)[1]) for fmt, ext in FORMATS.items()}


def assert_clear_refusal(call: Callable[[], T]) -> T | None:
    """Runs ``call``: a result, or an InvalidInput with a message; anything else fails."""
    try:
        return call()
    except InvalidInput as exc:
        message = str(exc)
    assert message.strip(), "an InvalidInput without a message"
    return None


# --- encoded images ------------------------------------------------------------------------
@st.composite
def mutated_images(draw: st.DrawFn) -> bytes:
    data = bytearray(samples()[draw(st.sampled_from(sorted(FORMATS)))])
    kind = draw(st.sampled_from(["truncate", "flip", "insert", "garbage", "header"]))
    if kind == "truncate":
        del data[draw(st.integers(0, len(data) - 1)) :]
    elif kind == "flip":
        for _ in range(draw(st.integers(1, 8))):
            i = draw(st.integers(0, len(data) - 1))
            data[i] ^= 1 << draw(st.integers(0, 7))
    elif kind == "insert":
        i = draw(st.integers(0, len(data)))
        data[i:i] = draw(st.binary(min_size=1, max_size=64))
    elif kind == "garbage":
        data = bytearray(draw(st.binary(max_size=256)))
    else:  # damage the first bytes, where sizes and markers live
        i = draw(st.integers(0, min(40, len(data) - 1)))
        data[i] = draw(st.integers(0, 255))
    return bytes(data)


@given(mutated_images())
def test_corrupt_images_decode_or_are_refused_clearly(data: bytes) -> None:
    result = assert_clear_refusal(lambda: decode_image(data, MAX_PIXELS))
    if result is not None:
        fmt, image = result
        assert fmt in FORMATS
        assert image.dtype == np.uint8
        assert image.ndim == 3
        assert image.shape[2] == 3
        assert image.shape[0] * image.shape[1] <= MAX_PIXELS


def png_header(width: int, height: int) -> bytes:
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    chunk = b"IHDR" + ihdr
    return (
        b"\x89PNG\r\n\x1a\n"
        + struct.pack(">I", len(ihdr))
        + chunk
        + struct.pack(">I", zlib.crc32(chunk))
        + samples()["png"][33:]
    )


def bmp_header(width: int, height: int) -> bytes:
    data = bytearray(samples()["bmp"])
    data[18:26] = struct.pack("<ii", width, height)
    return bytes(data)


def jpeg_header(width: int, height: int) -> bytes:
    data = bytearray(samples()["jpeg"])
    for marker in (b"\xff\xc0", b"\xff\xc2"):
        at = data.find(marker)
        if at >= 0:
            data[at + 5 : at + 9] = struct.pack(">HH", height, width)
            return bytes(data)
    raise AssertionError("no SOF marker in the sample")


@given(
    st.sampled_from([png_header, bmp_header, jpeg_header]),
    st.integers(1, 65535),
    st.integers(1, 65535),
)
def test_declared_sizes_over_the_limit_are_refused_before_decoding(
    header: Callable[[int, int], bytes], width: int, height: int
) -> None:
    """Decompression bombs: a header that declares more pixels than allowed is refused from
    the header, with the size in the message; smaller ones decode or are refused as corrupt."""
    data = header(width, height)
    if width * height > MAX_PIXELS:
        with pytest.raises(InvalidInput, match=rf"{width}x{height} = \d+ pixels exceeds"):
            decode_image(data, MAX_PIXELS)
    else:
        assert_clear_refusal(lambda: decode_image(data, MAX_PIXELS))


@pytest.mark.parametrize("fmt", sorted(FORMATS))
@pytest.mark.parametrize("size", [(1, 1), (1, 7), (9, 1)])
def test_one_pixel_wide_images_decode(fmt: str, size: tuple[int, int]) -> None:
    image = np.full((size[1], size[0], 3), 77, np.uint8)
    data = bytes(cv2.imencode(FORMATS[fmt], image)[1])
    got_fmt, got = decode_image(data, MAX_PIXELS)
    assert got_fmt == fmt
    assert got.shape == (size[1], size[0], 3)


def test_zero_sized_declarations_are_refused() -> None:
    for header in (png_header, bmp_header, jpeg_header):
        with pytest.raises(InvalidInput, match="empty size 0x5"):
            decode_image(header(0, 5), MAX_PIXELS)


# --- raw frames ----------------------------------------------------------------------------
@given(
    st.sampled_from(RAW_PIXEL_FORMATS),
    st.integers(-2, 3000),
    st.integers(-2, 3000),
    st.integers(-40, 40),
)
def test_raw_frames_need_exactly_their_byte_count(
    fmt: str, width: int, height: int, delta: int
) -> None:
    expected = raw_size(max(width, 0), max(height, 0), fmt)
    data = bytes(max(0, expected + delta))
    result = assert_clear_refusal(lambda: raw_to_bgr(data, width, height, fmt, MAX_PIXELS))
    valid = (
        width >= 1
        and height >= 1
        and width * height <= MAX_PIXELS
        and not (fmt == "nv12" and (width % 2 or height % 2))
        and len(data) == expected
    )
    assert (result is not None) == valid
    if result is not None:
        assert result.shape == (height, width, 3)


def test_raw_byte_count_mismatch_names_both_counts() -> None:
    with pytest.raises(InvalidInput, match=r"bgr24 frame of 4x2 needs 24 bytes, got 23"):
        raw_to_bgr(bytes(23), 4, 2, "bgr24", MAX_PIXELS)


# --- options -------------------------------------------------------------------------------
floats = st.floats(allow_nan=True, allow_infinity=True, width=32)


@st.composite
def option_messages(draw: st.DrawFn) -> pb.Options:
    msg = pb.Options(
        bbox=draw(st.booleans()),
        # Any number, known to the enum or not: the field types are the enums.
        save_mask=cast(pb.SaveMask, draw(st.integers(-3, 8))),
        mask_scale=draw(st.integers(0, 2**32 - 1)),
        mask_encoding=cast(pb.MaskEncoding, draw(st.integers(-3, 8))),
        quality=draw(st.integers(0, 2**32 - 1)),
        output_format=cast(pb.ImageFormat, draw(st.integers(-3, 8))),
    )
    if draw(st.booleans()):
        msg.track_hold = draw(st.integers(0, 2**32 - 1))
    for _ in range(draw(st.integers(0, 5))):
        item = msg.classes.add(
            object_class=draw(st.sampled_from([0, 1, 64, 128, 192, 255, 256, -1])),
            method=draw(st.integers(-2, 8)),
        )
        if draw(st.booleans()):
            item.threshold = draw(floats)
        if draw(st.booleans()):
            item.enlarge = draw(floats)
    return msg


@given(option_messages())
def test_options_are_valid_or_refused_naming_the_field(msg: pb.Options) -> None:
    try:
        options = options_from_proto(msg)
        output_format_from_proto(msg)
    except InvalidInput as exc:
        text = str(exc)
    else:
        text = ""
    if text:
        assert re.search(r"options\.|threshold|enlarge|mask_scale|quality|track_hold", text), text
        return
    assert isinstance(options, AnonymizeOptions)
    assert all(0.0 <= t <= 1.0 for t in options.thresholds.values())
    assert 1 <= options.mask_scale <= 100
    assert 1 <= options.quality <= 100
    assert 0 <= options.track_hold <= 1000


# --- output names --------------------------------------------------------------------------
name_parts = st.one_of(
    st.sampled_from(["..", ".", "", "a", "b.jpg", "\x00", "x\x00.jpg", "~", "/etc/passwd"]),
    st.text(min_size=1, max_size=300),
)


@given(parts=st.lists(name_parts, min_size=1, max_size=5), absolute=st.booleans())
@settings(suppress_health_check=[HealthCheck.function_scoped_fixture])
def test_output_names_never_leave_the_output_folder(
    parts: list[str], absolute: bool, tmp_path_factory: pytest.TempPathFactory
) -> None:
    root = tmp_path_factory.getbasetemp() / "out"
    rel = ("/" if absolute else "") + "/".join(parts)
    paths = assert_clear_refusal(lambda: OutputPaths(root, PurePosixPath(rel)))
    if paths is not None:
        media = paths.media
        assert media.resolve().is_relative_to(root.resolve())
        assert "\x00" not in str(media)
        assert all(len(p.encode("utf-8", "surrogateescape")) <= 255 for p in media.parts)


# --- through the daemon --------------------------------------------------------------------
@pytest.fixture(scope="module")
def daemon(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DaemonProcess]:
    folder = tmp_path_factory.mktemp("fuzz")
    d = DaemonProcess(
        folder,
        {
            "listen": [f"unix://{folder / 'obscura.sock'}"],
            "metrics_listen": "",
            "max_pixels": MAX_PIXELS,
        },
    ).start()
    yield d
    d.terminate()


@st.composite
def bad_requests(draw: st.DrawFn) -> pb.AnonymizeRequest:
    kind = draw(st.sampled_from(["image", "raw", "options", "empty"]))
    if kind == "image":
        data = draw(mutated_images())
        return pb.AnonymizeRequest(encoded=data)
    if kind == "raw":
        width, height = draw(st.integers(0, 64)), draw(st.integers(0, 64))
        fmt = cast(pb.PixelFormat, draw(st.integers(0, 6)))  # known to the enum or not
        size = draw(st.integers(0, 64 * 64 * 3 + 8))
        return pb.AnonymizeRequest(
            raw=pb.RawFrame(width=width, height=height, format=fmt, data=bytes(size))
        )
    if kind == "options":
        return pb.AnonymizeRequest(encoded=samples()["png"], options=draw(option_messages()))
    return pb.AnonymizeRequest()


@pytest.mark.models
@given(request_message=bad_requests())
@settings(suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
def test_daemon_answers_bad_requests_and_keeps_serving(
    daemon: DaemonProcess, request_message: pb.AnonymizeRequest
) -> None:
    with Client(daemon.socket) as client:
        failure: grpc.RpcError | None = None
        try:
            client.stub.Anonymize(request_message, timeout=30)
        except grpc.RpcError as exc:
            failure = exc
        if failure is not None:
            assert failure.code() == grpc.StatusCode.INVALID_ARGUMENT, failure.details()
            assert failure.details()
        good = client.stub.Anonymize(pb.AnonymizeRequest(encoded=samples()["jpeg"]), timeout=30)
        assert good.encoded
