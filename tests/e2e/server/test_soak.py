"""A long run through a real daemon: RSS, open file descriptors and threads sampled while
OBSCURA_SOAK_FRAMES frames (20,000 in `make test-slow`) stream through it; after warm-up
none may grow by more than 10 %. Skipped unless OBSCURA_SOAK_FRAMES is set."""

from __future__ import annotations

import os
from pathlib import Path

import cv2
import pytest
from support.daemons import DaemonProcess

from obscura_client.client import Client, FrameFailed, Options, request_for

pytestmark = [pytest.mark.models, pytest.mark.slow]

FRAMES = int(os.environ.get("OBSCURA_SOAK_FRAMES", "0"))


def sample(pid: int) -> tuple[float, int, int]:
    """RSS (MiB), open file descriptors, threads of a process."""
    status = Path(f"/proc/{pid}/status").read_text().splitlines()
    fields = {line.split(":")[0]: line.split(":")[1].split() for line in status}
    return (
        int(fields["VmRSS"][0]) / 1024,
        len(os.listdir(f"/proc/{pid}/fd")),
        int(fields["Threads"][0]),
    )


@pytest.mark.skipif(FRAMES == 0, reason="set OBSCURA_SOAK_FRAMES (make test-slow: 20000)")
def test_soak_without_growth(data_dir: Path, tmp_path: Path) -> None:
    import av

    frames = []
    with av.open(str(data_dir / "opencv_vtest_first100.mp4")) as container:
        for frame in container.decode(video=0):
            image = frame.to_ndarray(format="bgr24")
            frames.append(bytes(cv2.imencode(".jpg", image)[1]))
    d = DaemonProcess(
        tmp_path, {"listen": [f"unix://{tmp_path / 'obscura.sock'}"], "metrics_listen": ""}
    ).start()
    try:
        assert d.proc is not None
        every = max(1, FRAMES // 20)
        samples: list[tuple[int, tuple[float, int, int]]] = []
        options = Options(classes={"face": "blur"})
        with Client(d.socket) as client:
            requests = (
                request_for(frames[i % len(frames)], options if i == 0 else None, frame_index=i)
                for i in range(FRAMES)
            )
            done = 0
            for result in client.frames(requests, in_flight=4):
                assert not isinstance(result, FrameFailed), result
                assert result.frame_index == done
                done += 1
                if done % every == 0:
                    samples.append((done, sample(d.proc.pid)))
        assert done == FRAMES
        warm = [s for n, s in samples if n > FRAMES // 10]  # after the first 10 %
        for what, index in (("RSS MiB", 0), ("open fds", 1), ("threads", 2)):
            first, peak = warm[0][index], max(s[index] for s in warm)
            print(f"soak {FRAMES} frames: {what} {first} after warm-up, peak {peak}")
            assert peak <= first * 1.10, (what, [(n, s[index]) for n, s in samples])
    finally:
        assert d.terminate() == 0
