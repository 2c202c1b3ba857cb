"""Privacy zones (always hidden) and ignore zones (detections inside dropped): geometry, the
real pipeline on a real photo, and a real daemon stream whose zones change mid-stream."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest
from support.daemons import plain_daemon
from support.images import read_image

from obscura.errors import InvalidInput
from obscura.pipeline.detect import Detector
from obscura.pipeline.frame import FrameProcessor
from obscura.pipeline.options import (
    AnonymizeOptions,
    Method,
    SaveMask,
    Zone,
    ZoneKind,
    parse_points,
)
from obscura.pipeline.zones import ignore_canvas, ignored, zone_region
from obscura.server.convert import options_from_proto, options_to_proto
from obscura.types import Detections, ObjectClass
from obscura_client.client import Client, FrameFailed, Result
from obscura_client.v1 import anonymizer_pb2 as pb

TRIANGLE = ((10.0, 10.0), (50.0, 10.0), (10.0, 40.0))


def test_a_zone_covers_its_polygon() -> None:
    region = zone_region(Zone(ZoneKind.PRIVACY, TRIANGLE), (100, 80))
    assert region is not None
    assert (region.x1, region.y1, region.x2, region.y2) == (10, 10, 51, 41)
    assert region.shape is not None
    assert region.shape[0, 0]  # the right-angle corner
    assert not region.shape[-1, -1]  # beyond the hypotenuse
    assert (
        zone_region(Zone(ZoneKind.PRIVACY, ((200, 200), (300, 200), (250, 300))), (100, 80)) is None
    )


def test_detections_are_ignored_by_their_box_centre() -> None:
    det = Detections(
        np.array([[12, 12, 20, 20], [40, 30, 60, 50], [0, 0, 4, 4]], np.float32),
        np.ones(3, np.float32),
        np.full(3, int(ObjectClass.FACE)),
    )
    zones = (Zone(ZoneKind.IGNORE, TRIANGLE), Zone(ZoneKind.PRIVACY, ((0, 0), (5, 0), (0, 5))))
    assert ignored(det, ignore_canvas(zones, (100, 80))).tolist() == [True, False, False]
    assert ignore_canvas(zones[1:], (100, 80)) is None


def test_zone_input_is_checked() -> None:
    assert parse_points("1,2 3,4;5,6") == ((1.0, 2.0), (3.0, 4.0), (5.0, 6.0))
    with pytest.raises(InvalidInput, match="'3' is not X,Y"):
        parse_points("1,2 3 5,6")
    with pytest.raises(InvalidInput, match="3 to 256 points, got 2"):
        Zone(ZoneKind.IGNORE, ((1, 2), (3, 4)))
    with pytest.raises(InvalidInput, match=r"options.zones\[0\].kind"):
        options_from_proto(pb.Options(zones=[pb.Zone(points=[1, 2, 3, 4, 5, 6])]))
    with pytest.raises(InvalidInput, match=r"options.zones\[1\].points: an odd count"):
        options_from_proto(
            pb.Options(
                zones=[
                    pb.Zone(kind=pb.ZONE_KIND_IGNORE, points=[1, 2, 3, 4, 5, 6]),
                    pb.Zone(kind=pb.ZONE_KIND_PRIVACY, points=[1, 2, 3]),
                ]
            )
        )
    options = AnonymizeOptions(zones=(Zone(ZoneKind.PRIVACY, TRIANGLE, Method.BLACKEN),))
    assert options_from_proto(options_to_proto(options)).zones == options.zones


@pytest.mark.models
def test_zones_on_a_real_photo(detector: Detector, load_image) -> None:  # type: ignore[no-untyped-def]
    image = load_image("deface_city.jpg")
    faces = AnonymizeOptions(methods={ObjectClass.FACE: Method.BLUR}, save_mask=SaveMask.ALL)
    processor = FrameProcessor(detector)
    plain = processor.process(image, faces)
    boxes = plain.detections.xyxy
    assert len(boxes) >= 10
    left = boxes[:, 2] < 400  # the faces in the left half of the photo
    assert 0 < left.sum() < len(boxes)
    ignore = Zone(ZoneKind.IGNORE, ((0, 0), (400, 0), (400, 564), (0, 564)))
    window = Zone(
        ZoneKind.PRIVACY, ((600, 300), (780, 300), (780, 540), (600, 540)), Method.BLACKEN
    )
    opts = AnonymizeOptions(
        methods=faces.methods, save_mask=SaveMask.ALL, zones=(ignore, window), fill_rgb=(0, 255, 0)
    )
    result = processor.process(image, opts)
    centres = (result.detections.xyxy[:, 0] + result.detections.xyxy[:, 2]) / 2
    assert len(result.detections) == (~left).sum()  # the faces in the ignore zone are gone
    assert (centres >= 400).all()
    # The privacy zone is filled (green) and white in the binary mask; metadata lists both.
    assert (result.image[310:530, 610:770] == (0, 255, 0)).all()
    mask = result.binary_mask()
    assert (mask[300:540, 600:780] == 255).all()
    meta = result.metadata("city.jpg", "city.jpg", "")
    assert [z["kind"] for z in meta["zones"]] == ["ignore", "privacy"]
    assert meta["zones"][1]["method"] == "blacken"
    assert meta["zones"][0]["points"][1] == [400.0, 0.0]


def passed(result: Result | FrameFailed) -> Result:
    assert isinstance(result, Result), result
    return result


@pytest.mark.models
def test_zones_change_mid_stream(data_dir: Path, tmp_path: Path) -> None:
    image = read_image(data_dir / "deface_city.jpg", cv2.IMREAD_COLOR)
    png = bytes(cv2.imencode(".png", image)[1])
    everything = Zone(ZoneKind.IGNORE, ((0, 0), (800, 0), (800, 564), (0, 564)))
    corner = Zone(ZoneKind.PRIVACY, ((0, 0), (100, 0), (100, 100), (0, 100)))
    base = AnonymizeOptions(methods={ObjectClass.FACE: Method.BLUR}, save_mask=SaveMask.BINARY)
    steps = [
        options_to_proto(base),
        None,
        options_to_proto(
            AnonymizeOptions(methods=base.methods, save_mask=SaveMask.BINARY, zones=(everything,))
        ),
        None,
        options_to_proto(
            AnonymizeOptions(methods=base.methods, save_mask=SaveMask.BINARY, zones=(corner,))
        ),
    ]
    (tmp_path / "d").mkdir()
    daemon = plain_daemon(tmp_path / "d")
    try:
        with Client(daemon.socket) as client:
            requests = []
            for i, options in enumerate(steps):
                req = pb.AnonymizeRequest(encoded=png, frame_index=i)
                if options is not None:
                    req.options.CopyFrom(options)
                requests.append(req)
            results = [passed(r) for r in client.stream(requests)]
    finally:
        daemon.terminate()
    counts = [len(r.detections) for r in results]
    assert counts[0] == counts[1] > 0
    assert counts[2] == counts[3] == 0  # everything ignored
    assert counts[4] == counts[0]
    assert [bool(r.metadata.get("zones")) for r in results] == [False, False, True, True, True]
    mask = results[4].binary_mask()
    assert mask is not None
    assert (mask[:100, :100] == 255).all()
