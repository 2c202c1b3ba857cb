"""Several daemons: round_robin spreads calls, and a daemon killed mid-stream loses nothing."""

from __future__ import annotations

import re
import threading
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from obscura.client import Client, FrameFailed, Options, request_for
from obscura.v1 import anonymizer_pb2 as pb

from daemons import DaemonProcess, free_port

pytestmark = pytest.mark.models


def metric(port: int, name: str) -> float:
    text = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5).read().decode()
    match = re.search(rf"^{re.escape(name)} ([0-9.e+-]+)$", text, re.MULTILINE)
    return float(match.group(1)) if match else 0.0


@pytest.fixture
def two_daemons(tmp_path: Path) -> Iterator[list[tuple[DaemonProcess, str, int]]]:
    out = []
    for name in ("a", "b"):
        folder = tmp_path / name
        folder.mkdir()
        port, metrics_port = free_port(), free_port()
        d = DaemonProcess(
            folder,
            {
                "listen": [f"unix://{folder / 'obscura.sock'}", f"127.0.0.1:{port}"],
                "metrics_listen": f"127.0.0.1:{metrics_port}",
                "workers": 1,
                "warmup": False,
            },
        )
        out.append((d, f"127.0.0.1:{port}", metrics_port))
    for d, _, _ in out:
        d.start(wait=False)
    for d, _, _ in out:
        d.wait_serving()
    yield out
    for d, _, _ in out:
        d.kill()


def test_round_robin_spreads_unary_calls(
    two_daemons: list[tuple[DaemonProcess, str, int]], data_dir: Path
) -> None:
    image = data_dir / "gramps_1897_expedition.jpg"
    with Client([address for _, address, _ in two_daemons]) as client:
        client.wait_ready()
        for _ in range(10):
            result = client.anonymize_image(image, Options(classes={"face": "blur"}))
            assert len(result.detections) >= 4
    served = [metric(m, 'obscura_frames_total{status="ok"}') for _, _, m in two_daemons]
    assert sum(served) == 10
    assert all(n >= 3 for n in served), served


def test_a_daemon_killed_mid_stream_loses_no_frame(
    two_daemons: list[tuple[DaemonProcess, str, int]], data_dir: Path
) -> None:
    frame = (data_dir / "gramps_1897_expedition.jpg").read_bytes()
    total = 40
    killed: list[str] = []
    halfway = threading.Event()

    def requests() -> Iterator[pb.AnonymizeRequest]:
        for i in range(total):
            options = Options(classes={"face": "blur"}) if i == 0 else None
            yield request_for(frame, options, frame_index=i, timestamp=i / 10)

    def killer() -> None:
        halfway.wait(120)
        for d, address, metrics_port in two_daemons:
            if metric(metrics_port, "obscura_active_streams") >= 1:
                assert d.proc is not None
                d.proc.kill()  # no drain: the stream breaks
                killed.append(address)
                return

    thread = threading.Thread(target=killer)
    thread.start()
    got = []
    with Client([address for _, address, _ in two_daemons], retries=3) as client:
        client.wait_ready()
        for result in client.frames(requests(), in_flight=4):
            assert not isinstance(result, FrameFailed), result
            got.append(result.frame_index)
            assert len(result.detections) >= 4
            if len(got) == 10:
                halfway.set()
    thread.join()
    assert len(killed) == 1
    assert got == list(range(total))  # every frame answered once, in order
