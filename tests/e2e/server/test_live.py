"""`obscura stream` against a real HTTP camera stream served on loopback, through a real daemon:
the source drops and comes back, frames stay in order, skipped frames are counted."""

from __future__ import annotations

import contextlib
import http.server
import io
import json
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import av
import pytest
from support.daemons import DaemonProcess, plain_daemon
from support.videos import decode_all

pytestmark = pytest.mark.models

SKIPPED = range(20, 25)  # frames missing from the camera's stream (a gap in its timestamps)


def camera_ts(data_dir: Path) -> bytes:
    """An MPEG-TS of the street video of the test media at 10 fps, with frames 20-24 left out."""
    frames = decode_all(data_dir / "opencv_vtest_first100.mp4")[:60]
    buf = io.BytesIO()
    with av.open(buf, "w", format="mpegts") as out:
        stream = out.add_stream("mpeg2video", rate=10)
        stream.width, stream.height, stream.pix_fmt = 768, 576, "yuv420p"
        stream.codec_context.bit_rate = 4_000_000
        for i, image in enumerate(frames):
            if i in SKIPPED:
                continue
            frame = av.VideoFrame.from_ndarray(image, format="bgr24")
            frame.pts = i
            for packet in stream.encode(frame):
                out.mux(packet)
        for packet in stream.encode(None):
            out.mux(packet)
    return buf.getvalue()


class Camera(http.server.BaseHTTPRequestHandler):
    """First connection: part of the stream, then the line drops. Later: the whole stream."""

    payload = b""
    connections = 0

    def do_GET(self) -> None:
        type(self).connections += 1
        data = self.payload
        if type(self).connections == 1:
            data = data[: len(data) * 2 // 5]
        self.send_response(200)
        self.send_header("Content-Type", "video/mp2t")
        self.end_headers()
        with contextlib.suppress(BrokenPipeError, ConnectionResetError):
            self.wfile.write(data)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def camera(data_dir: Path) -> Iterator[str]:
    Camera.payload = camera_ts(data_dir)
    Camera.connections = 0
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Camera)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/live.ts"
    server.shutdown()


@pytest.fixture(scope="module")
def daemon(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DaemonProcess]:
    d = plain_daemon(tmp_path_factory.mktemp("lived"))
    yield d
    d.terminate()


def test_a_dropped_camera_comes_back_and_nothing_is_reordered(
    daemon: DaemonProcess, camera: str, tmp_path: Path
) -> None:
    out = tmp_path / "out"
    proc = subprocess.run(
        [sys.executable, "-m", "obscura.cli", "stream", camera, "-o", str(out),
         "--server", daemon.socket, "--name", "gate", "--segment-seconds", "2",
         "--max-frames", "70", "-a", "face,person"],
        capture_output=True, text=True, timeout=300, check=False,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    stats = json.loads(proc.stdout.strip().splitlines()[-1])
    assert stats["reconnects"] >= 1  # the first connection dropped
    assert stats["frames"] == 70
    assert stats["failed"] == 0
    assert stats["dropped_at_source"] >= len(SKIPPED)  # the gap, seen on the full connection
    assert Camera.connections >= 2
    segments = sorted(out.glob("gate-*.mkv"))
    assert [s.name for s in segments] == stats["segments"]
    assert len(segments) >= 2  # rolled over
    ids: list[int] = []
    total = 0
    for segment in segments:
        status = json.loads(segment.with_suffix(".status.json").read_text())
        frames = json.loads(next(out.glob(f"{segment.stem}-0-*.json")).read_text())
        assert status["frames"] == len(frames) == len(decode_all(segment))
        ids += [f["id"] for f in frames]
        total += status["frames"]
        assert all(f["size"] == [768, 576] for f in frames)
        assert any(d["type_label"] == "person" for f in frames for d in f["detections"])
    assert total == 70
    assert ids == sorted(ids)  # never reordered
    assert ids == list(range(70))
    assert (out / "gate.summary.json").exists()
    assert not list(out.glob(".*part*"))
