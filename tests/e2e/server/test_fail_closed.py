"""Fail-closed against real daemons: passing errors are retried and never fail a file, a daemon
going away mid-video hands its frames to another, a daemon restarting under ``obscura watch``
or ``obscura stream`` loses nothing, and a frame that cannot be anonymized is never written."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import av
import grpc
import pytest
from support.daemons import DaemonProcess, tcp_daemon, wait_for
from support.videos import decode_all, write_video_with_audio

from obscura_client.client import FrameFailed, Result
from obscura_client.v1 import anonymizer_pb2 as pb
from obscura_client.video import read_mask_video

pytestmark = pytest.mark.models

CLI = [sys.executable, "-m", "obscura.cli"]


def metric(port: int, name: str) -> float:
    text = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5).read().decode()
    match = re.search(rf"^{re.escape(name)} ([0-9.e+-]+)$", text, re.MULTILINE)
    return float(match.group(1)) if match else 0.0


def audio_packets(path: Path) -> list[int]:
    with av.open(str(path)) as c:
        return [p.size for p in c.demux(c.streams.audio[0]) if p.size]


@pytest.fixture(scope="module")
def clip(tmp_path_factory: pytest.TempPathFactory, data_dir: Path) -> Path:
    """150 frames of the street video (768x576, 10 frames/s) with an audio track."""
    frames = decode_all(data_dir / "opencv_vtest_first100.mp4")
    path = tmp_path_factory.mktemp("clip") / "clip.mp4"
    write_video_with_audio(path, frames, 150, rate=10)
    return path


def check_video_outputs(out: Path, clip: Path, frames: int) -> None:
    """Every frame once and in order, audio, masks and metadata chunks intact."""
    assert len(decode_all(out / "clip.mp4")) == frames
    assert audio_packets(out / "clip.mp4") == audio_packets(clip)
    meta = json.loads((out / f"clip-0-{frames - 1}.json").read_text())
    assert [f["id"] for f in meta] == list(range(frames))
    assert sum(1 for _ in read_mask_video(out / "clip_bin_mask.mkv")) == frames
    assert sum(1 for _ in read_mask_video(out / "clip_ins_mask.mkv")) == frames
    assert not list(out.glob(".*part*"))


def test_a_video_through_two_daemons_survives_one_going_away(tmp_path: Path, clip: Path) -> None:
    pair = [tcp_daemon(tmp_path / name) for name in ("a", "b")]
    for d, _, _ in pair:
        d.start(wait=False)
    try:
        for d, _, _ in pair:
            d.wait_serving()
        out = tmp_path / "out"
        servers = ",".join(address for _, address, _ in pair)
        proc = subprocess.Popen(
            [*CLI, "anonymize", str(clip), "-o", str(out), "--no-progress", "--server", servers,
             "-a", "face,person", "--save-mask", "all"],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        )  # fmt: skip
        killed = []

        def busy() -> bool:
            for d, address, port in pair:
                if metric(port, 'obscura_frames_total{status="ok"}') >= 20:
                    assert d.proc is not None
                    d.proc.kill()  # no drain: the stream breaks mid-video
                    killed.append(address)
                    return True
            return proc.poll() is not None

        wait_for(busy)
        _, stderr = proc.communicate(timeout=600)
        assert proc.returncode == 0, stderr
        assert len(killed) == 1  # killed while the video was going through it
        survivor = next(port for _, address, port in pair if address not in killed)
        assert metric(survivor, 'obscura_frames_total{status="ok"}') > 0
        check_video_outputs(out, clip, 150)
    finally:
        for d, _, _ in pair:
            d.kill()


def test_a_busy_daemon_never_fails_a_file(tmp_path: Path, clip: Path, data_dir: Path) -> None:
    """One frame at a time in the daemon: every other frame of a window of four is answered
    RESOURCE_EXHAUSTED, and is sent again; the watch folder finishes every file."""
    d, _, metrics_port = tcp_daemon(tmp_path / "d", max_inflight=1, stream_depth=4)
    d.start()
    try:
        in_dir, out_dir = tmp_path / "in", tmp_path / "out"
        in_dir.mkdir()
        shutil.copy(clip, in_dir / "clip.mp4")
        shutil.copy(data_dir / "facerec_obama.jpg", in_dir / "obama.jpg")
        proc = subprocess.run(
            [*CLI, "watch", str(in_dir), str(out_dir), "--once", "--settle", "0.2",
             "--server", d.socket, "-a", "face,person", "--save-mask", "all"],
            capture_output=True, text=True, timeout=600, check=False,
        )  # fmt: skip
        assert proc.returncode == 0, proc.stderr
        assert not (in_dir / ".failed").exists(), proc.stderr
        assert sorted(p.name for p in (in_dir / ".processed").iterdir()) == [
            "clip.mp4",
            "obama.jpg",
        ]
        busy = metric(metrics_port, 'obscura_frames_total{status="resource_exhausted"}')
        assert busy > 0  # the daemon did refuse frames for a while
        check_video_outputs(out_dir, clip, 150)
        assert (out_dir / "obama.json").exists()
    finally:
        d.kill()


@pytest.fixture
def restartable(tmp_path: Path) -> Iterator[tuple[DaemonProcess, str, int]]:
    entry = tcp_daemon(tmp_path / "d")
    entry[0].start()
    yield entry
    entry[0].kill()


def restart(d: DaemonProcess) -> None:
    assert d.proc is not None
    d.proc.kill()
    d.proc.wait()
    d.log.close()
    time.sleep(1.0)  # away for a while
    d.start(wait=False)


def test_a_daemon_restarting_under_obscura_stream_loses_nothing(
    restartable: tuple[DaemonProcess, str, int], clip: Path, tmp_path: Path
) -> None:
    d, _, metrics_port = restartable
    out = tmp_path / "live"
    proc = subprocess.Popen(
        [*CLI, "stream", str(clip), "-o", str(out), "--server", d.socket, "--name", "cam",
         "--max-frames", "60", "-a", "face,person"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    wait_for(lambda: metric(metrics_port, 'obscura_frames_total{status="ok"}') >= 15)
    restart(d)
    stdout, stderr = proc.communicate(timeout=600)
    assert proc.returncode == 0, stderr
    stats = json.loads(stdout.strip().splitlines()[-1])
    assert stats["frames"] == 60
    assert stats["failed"] == 0
    frames = json.loads(next(out.glob("cam-*-0-*.json")).read_text())
    assert [f["id"] for f in frames] == list(range(60))
    segment = next(out.glob("cam-*.mkv"))
    assert len(decode_all(segment)) == 60
    status = json.loads(segment.with_suffix(".status.json").read_text())
    assert status["failed"] == 0


def test_a_daemon_restarting_under_obscura_watch_loses_nothing(
    restartable: tuple[DaemonProcess, str, int], data_dir: Path, tmp_path: Path
) -> None:
    d, _, _ = restartable
    in_dir, out_dir = tmp_path / "in", tmp_path / "out"
    in_dir.mkdir()
    names = ["deface_city.jpg", "gramps_1897_expedition.jpg", "facerec_obama.jpg",
             "kpa_cold_water.jpg", "skimage_astronaut.png", "darknet_person.jpg"] * 2  # fmt: skip
    for i, name in enumerate(names):
        shutil.copy(data_dir / name, in_dir / f"{i:02d}_{name}")
    watcher = subprocess.Popen(
        [*CLI, "-v", "watch", str(in_dir), str(out_dir), "--server", d.socket, "--settle", "0.3",
         "--poll", "0.1", "-a", "face,person"],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )  # fmt: skip
    try:
        processed = in_dir / ".processed"
        wait_for(lambda: processed.exists() and len(list(processed.iterdir())) >= 2)
        restart(d)
        wait_for(lambda: len(list(processed.iterdir())) == len(names), 300)
    finally:
        watcher.terminate()
        output = watcher.communicate(timeout=60)[0]
    assert not (in_dir / ".failed").exists(), output
    assert len(list(out_dir.glob("*.json"))) == len(names)


class RefusingClient:
    """A daemon's answers (the frame blacked out) with frame 3 refused: the layer under test
    is the live writer, not the daemon."""

    def frames(
        self, requests: Iterator[pb.AnonymizeRequest], in_flight: int = 4
    ) -> Iterator[object]:
        for request in requests:
            if request.frame_index == 3:
                yield FrameFailed(3, grpc.StatusCode.INVALID_ARGUMENT.value[0], "bad frame")
                continue
            raw = request.raw
            hidden = pb.RawFrame(
                width=raw.width, height=raw.height, format=raw.format, data=bytes(len(raw.data))
            )
            yield Result(
                frame_index=request.frame_index,
                timestamp=request.timestamp,
                image=hidden.data,
                format="raw",
                raw=hidden,
                binary_mask_data=b"",
                instance_mask_data=b"",
                metadata={
                    "id": str(request.frame_index),
                    "filename": "",
                    "folder": "",
                    "size": [raw.width, raw.height],
                    "duration": 0.0,
                    "detections": [],
                },
                timings={},
            )


def test_a_live_frame_that_was_not_anonymized_is_left_out_and_counted(
    clip: Path, tmp_path: Path
) -> None:
    from obscura_client.live import run_live
    from obscura_client.wire import Options

    stats = run_live(RefusingClient(), str(clip), tmp_path, Options(), max_frames=8)  # type: ignore[arg-type]
    assert (stats.frames, stats.failed) == (7, 1)
    segment = next(tmp_path.glob("stream-*.mkv"))
    images = decode_all(segment)
    assert len(images) == 7
    assert all(int(image.max()) < 16 for image in images)  # no raw frame among them
    status = json.loads(segment.with_suffix(".status.json").read_text())
    assert (status["frames"], status["failed"]) == (7, 1)
    frames = json.loads(next(tmp_path.glob("stream-*-0-*.json")).read_text())
    assert [f["id"] for f in frames] == [0, 1, 2, 4, 5, 6, 7]


def test_the_asyncio_client_retries_a_daemon_that_is_away(
    restartable: tuple[DaemonProcess, str, int], data_dir: Path
) -> None:
    """A unary call made while the daemon restarts is answered once it is back, on the asyncio
    client as on the sync one: a passing error is retried, not raised."""
    import asyncio

    from obscura_client.client import AsyncClient, Client
    from obscura_client.wire import Options

    d, _, _ = restartable
    image = data_dir / "gramps_1897_expedition.jpg"

    async def call() -> tuple[int, float]:
        async with AsyncClient(d.socket, retry_for=120) as client:
            start = time.monotonic()
            result = await client.anonymize_image(image, Options(classes={"face": "blur"}))
            return len(result.detections), time.monotonic() - start

    restart(d)  # killed; back after a second and the model load
    faces, seconds = asyncio.run(call())
    assert faces >= 4
    assert seconds > 0.5  # it waited for the daemon: the first tries met nobody
    with Client(d.socket) as client:
        assert client.health() == "SERVING"
