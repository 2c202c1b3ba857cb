"""The daemon's API in process: a real `Daemon` (gRPC on a Unix socket, REST on loopback) in
this event loop, with a fixed detector behind `Daemon(processor=)`, so that what the API does
with options, streams, limits and errors is tested in milliseconds. The real models are tested
end to end elsewhere (test_daemon, test_rest)."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import cv2
import httpx
import numpy as np
import pytest
from support.fakes import FixedDetector
from support.images import decode_image

from obscura.config import Config, ServerConfig
from obscura.pipeline.frame import FrameProcessor
from obscura.server.app import Daemon
from obscura.types import Detections, ObjectClass
from obscura_client.client import AsyncClient, Result
from obscura_client.errors import InvalidInput
from obscura_client.v1 import anonymizer_pb2 as pb
from obscura_client.wire import Options, Zone, ZoneKind

FACE = (40.0, 30.0, 100.0, 110.0)  # where the fixed detector always sees a face
PLATE = (150.0, 120.0, 210.0, 140.0)


def fixed(delay: float = 0.0) -> FixedDetector:
    """A face and a plate at fixed places, scored 0.9 and 0.4."""
    return FixedDetector(
        Detections(
            np.array([FACE, PLATE], np.float32),
            np.array([0.9, 0.4], np.float32),
            np.array([int(ObjectClass.FACE), int(ObjectClass.LICENSE_PLATE)], np.int32),
        ),
        delay,
    )


def _jpeg() -> bytes:
    rng = np.random.default_rng(0)
    image = rng.integers(0, 255, (160, 240, 3), dtype=np.uint8)
    ok, buf = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, 95])
    assert ok
    return buf.tobytes()


def _run(tmp_path: Path, body: Any, detector: FixedDetector | None = None, **server: Any) -> Any:
    """Starts a Daemon with the fixed detector, runs ``body(daemon, address)``, stops it."""
    socket = tmp_path / "d.sock"
    config = Config(
        server=ServerConfig(
            listen=(f"unix://{socket}",), metrics_listen="", warmup=False, grace_period=1.0,
            **server,
        )
    )  # fmt: skip

    async def main() -> Any:
        daemon = Daemon(config, processor=FrameProcessor(detector or fixed()))
        await daemon.start()
        try:
            return await body(daemon, f"unix://{socket}")
        finally:
            await daemon.stop()

    return asyncio.run(main())


def _hidden(original: bytes, encoded: bytes, box: tuple[float, ...]) -> bool:
    a = decode_image(original, cv2.IMREAD_COLOR).astype(int)
    b = decode_image(encoded, cv2.IMREAD_COLOR).astype(int)
    x1, y1, x2, y2 = (int(v) for v in box)
    return bool(np.abs(a[y1:y2, x1:x2] - b[y1:y2, x1:x2]).mean() > 20)


def test_unary_classes_and_thresholds_reach_the_pipeline(tmp_path: Path) -> None:
    jpeg = _jpeg()

    async def body(daemon: Daemon, address: str) -> None:
        async with AsyncClient(address) as client:
            default = await client.anonymize(pb.AnonymizeRequest(encoded=jpeg))
            labels = [d.type_label for d in default.metadata.detections]
            assert labels == ["face", "license-plate"]
            assert _hidden(jpeg, default.encoded, FACE)
            assert _hidden(jpeg, default.encoded, PLATE)
            surer = Options(thresholds={"license-plate": 0.5})
            only_face = await client.anonymize(
                pb.AnonymizeRequest(encoded=jpeg, options=surer.to_proto())
            )
            assert [d.type_label for d in only_face.metadata.detections] == ["face"]
            assert not _hidden(jpeg, only_face.encoded, PLATE)
            persons = Options(classes={"person": "blur"})
            none = await client.anonymize(
                pb.AnonymizeRequest(encoded=jpeg, options=persons.to_proto())
            )
            assert list(none.metadata.detections) == []
            assert not _hidden(jpeg, none.encoded, FACE)

    _run(tmp_path, body)


def test_a_stream_changes_zones_mid_stream_and_tracks_respect_them(tmp_path: Path) -> None:
    jpeg = _jpeg()
    everything = Zone(ZoneKind.IGNORE, ((0, 0), (240, 0), (240, 160), (0, 160)))

    async def body(daemon: Daemon, address: str) -> list[int]:
        async with AsyncClient(address) as client:

            async def requests() -> Any:
                for i in range(6):
                    options = None
                    if i == 0:
                        options = Options().to_proto()
                    elif i == 3:
                        options = Options(zones=(everything,)).to_proto()
                    req = pb.AnonymizeRequest(encoded=jpeg, frame_index=i)
                    if options is not None:
                        req.options.CopyFrom(options)
                    yield req

            counts = []
            async for result in client.stream(requests()):
                assert isinstance(result, Result), result
                counts.append(len(result.record.detections))
            return counts

    counts = _run(tmp_path, body)
    assert counts == [2, 2, 2, 0, 0, 0]  # the tracks end in the zone too: nothing carried


def test_overload_is_refused_and_the_daemon_keeps_serving(tmp_path: Path) -> None:
    jpeg = _jpeg()
    slow = fixed(delay=0.3)

    async def body(daemon: Daemon, address: str) -> list[str]:
        async with AsyncClient(address, retry_for=0) as client:
            calls = [client.anonymize(pb.AnonymizeRequest(encoded=jpeg)) for _ in range(4)]
            results = await asyncio.gather(*calls, return_exceptions=True)
            outcome = ["ok" if isinstance(r, pb.AnonymizeResponse) else str(r) for r in results]
            again = await client.anonymize(pb.AnonymizeRequest(encoded=jpeg))
            assert len(again.metadata.detections) == 2
            return outcome

    outcome = _run(tmp_path, body, slow, workers=1, max_inflight=1)
    assert outcome.count("ok") >= 1
    refused = [o for o in outcome if o != "ok"]
    assert refused
    assert all("RESOURCE_EXHAUSTED" in o for o in refused)


def test_rest_runs_on_the_same_data_plane(tmp_path: Path) -> None:
    jpeg = _jpeg()
    detector = fixed()

    async def body(daemon: Daemon, address: str) -> dict[str, Any]:
        url = f"http://127.0.0.1:{daemon.http_port}"
        async with httpx.AsyncClient(base_url=url, timeout=30) as http:
            r = await http.post(
                "/v1/file",
                params={"license-plate": "false", "name": "x.jpg"},
                content=jpeg,
                headers={"Content-Type": "image/jpeg"},
            )
            assert r.status_code == 200, r.text
            meta = (await http.get(f"/v1/file/{r.json()['id']}/metadata")).json()
            assert isinstance(meta, dict)
            return meta

    meta = _run(
        tmp_path, body, detector, http_listen="127.0.0.1:0", tasks_dir=str(tmp_path / "tasks")
    )
    assert [d["type_label"] for d in meta["detections"]] == ["face"]
    assert detector.calls == 1


@pytest.mark.parametrize(
    ("bad", "words"), [(b"", "empty image"), (b"\xff\xd8\xff" + b"\0" * 64, "JPEG")]
)
def test_bad_input_is_invalid_argument_naming_the_problem(
    tmp_path: Path, bad: bytes, words: str
) -> None:
    async def body(daemon: Daemon, address: str) -> str:
        async with AsyncClient(address, retry_for=0) as client:
            with pytest.raises(InvalidInput) as refused:
                await client.anonymize(pb.AnonymizeRequest(encoded=bad))
            fine = await client.anonymize(pb.AnonymizeRequest(encoded=_jpeg()))
            assert len(fine.metadata.detections) == 2  # the next good request is served
            return str(refused.value)

    assert words in _run(tmp_path, body)
