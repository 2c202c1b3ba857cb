"""Overload, faults and secrets with a real daemon and real models: every accepted frame is
answered exactly once and in order, excess work is refused with RESOURCE_EXHAUSTED (never
dropped), health stays responsive, cancelled and timed-out calls leave nothing behind, a
corrupt model stops the daemon before it ever reports SERVING, and the metrics reveal no
secrets."""

from __future__ import annotations

import re
import shutil
import threading
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import cv2
import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from support.daemons import DaemonProcess, free_port

from obscura.zoo.store import ModelStore
from obscura_client.client import Client
from obscura_client.v1 import anonymizer_pb2 as pb

pytestmark = [pytest.mark.models, pytest.mark.slow]

TOKEN = "s3cret-token-for-the-reliability-tests"
FACES = pb.Options(
    classes=[pb.ClassOptions(object_class=pb.OBJECT_CLASS_FACE, method=pb.METHOD_BLUR)]
)


@pytest.fixture(scope="module")
def daemon(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DaemonProcess]:
    folder = tmp_path_factory.mktemp("reliability")
    (folder / "tokens").write_text(TOKEN + "\n")
    metrics_port = free_port()
    d = DaemonProcess(
        folder,
        {
            "listen": [f"unix://{folder / 'obscura.sock'}"],
            "metrics_listen": f"127.0.0.1:{metrics_port}",
            "tokens_file": str(folder / "tokens"),
            "workers": 2,
            "max_inflight": 4,
            "stream_depth": 3,
        },
    )
    d.metrics_url = f"http://127.0.0.1:{metrics_port}/metrics"  # type: ignore[attr-defined]
    d.start()
    yield d
    d.terminate()


@pytest.fixture(scope="module")
def frame(data_dir: Path) -> bytes:
    image = cv2.imread(str(data_dir / "deface_city.jpg"), cv2.IMREAD_COLOR)
    assert image is not None
    small = cv2.resize(image, (400, 282), interpolation=cv2.INTER_AREA)
    return bytes(cv2.imencode(".jpg", small)[1])


def metric(daemon: DaemonProcess, name: str) -> float:
    text = urllib.request.urlopen(daemon.metrics_url, timeout=5).read().decode()  # type: ignore[attr-defined]
    match = re.search(rf"^{name} (\S+)$", text, re.MULTILINE)
    assert match, name
    return float(match.group(1))


def threads_of(daemon: DaemonProcess) -> int:
    assert daemon.proc is not None
    for line in Path(f"/proc/{daemon.proc.pid}/status").read_text().splitlines():
        if line.startswith("Threads:"):
            return int(line.split()[1])
    raise AssertionError("no thread count")


def rss_mib(daemon: DaemonProcess) -> float:
    assert daemon.proc is not None
    for line in Path(f"/proc/{daemon.proc.pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise AssertionError("no RSS")


def settle(daemon: DaemonProcess, timeout: float = 20.0) -> None:
    """Waits until no frame is in flight and no stream is open."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if (
            metric(daemon, "obscura_inflight_frames") == 0
            and metric(daemon, "obscura_active_streams") == 0
        ):
            return
        time.sleep(0.1)
    raise AssertionError("work still in flight after the calls ended")


def test_overload_answers_every_frame_once_in_order(daemon: DaemonProcess, frame: bytes) -> None:
    """Six streams push 30 frames each as fast as they can into a daemon that takes 4 frames
    at a time: every frame is answered exactly once, in order, with the image or with
    RESOURCE_EXHAUSTED; health checks keep answering SERVING within a second throughout."""
    streams, per_stream = 6, 30
    results: dict[int, list[pb.AnonymizeResponse]] = {}
    health: list[tuple[float, int]] = []
    stop = threading.Event()

    def check_health() -> None:
        with grpc.insecure_channel(daemon.socket) as channel:
            stub = health_pb2_grpc.HealthStub(channel)
            while not stop.is_set():
                t = time.monotonic()
                reply = stub.Check(health_pb2.HealthCheckRequest(), timeout=5)
                health.append((time.monotonic() - t, reply.status))
                time.sleep(0.05)

    def push(n: int) -> None:
        with Client(daemon.socket, token=TOKEN) as client:
            requests = (
                pb.AnonymizeRequest(encoded=frame, frame_index=i, options=FACES if i == 0 else None)
                for i in range(per_stream)
            )
            results[n] = list(client.stub.AnonymizeStream(requests, metadata=client.metadata))

    rss_before = rss_mib(daemon)
    started = time.monotonic()
    checker = threading.Thread(target=check_health)
    checker.start()
    pushers = [threading.Thread(target=push, args=(n,)) for n in range(streams)]
    for t in pushers:
        t.start()
    for t in pushers:
        t.join(300)
    elapsed = time.monotonic() - started
    stop.set()
    checker.join(10)

    answered = refused = 0
    for n in range(streams):
        got = results[n]
        assert [r.frame_index for r in got] == list(range(per_stream)), f"stream {n}"
        for r in got:
            if r.HasField("error"):
                assert r.error.code == grpc.StatusCode.RESOURCE_EXHAUSTED.value[0], r.error
                assert "frames in flight" in r.error.message
                refused += 1
            else:
                assert r.encoded
                answered += 1
    assert answered + refused == streams * per_stream
    assert answered >= 4  # the daemon kept working through the overload (4 = max_inflight)
    assert health
    assert all(status == health_pb2.HealthCheckResponse.SERVING for _, status in health)
    assert max(seconds for seconds, _ in health) < 1.0
    assert rss_mib(daemon) < rss_before + 300  # bounded: nothing queued without limit
    settle(daemon)
    print(
        f"overload: {streams} streams, {answered} frames answered ({answered / elapsed:.1f}/s), "
        f"{refused} refused, {len(health)} health checks (slowest "
        f"{max(s for s, _ in health) * 1000:.0f} ms), RSS {rss_before:.0f} -> "
        f"{rss_mib(daemon):.0f} MiB"
    )


def test_cancelled_streams_leave_nothing_behind(daemon: DaemonProcess, frame: bytes) -> None:
    settle(daemon)
    threads = threads_of(daemon)
    with Client(daemon.socket, token=TOKEN) as client:
        for _ in range(10):
            requests = iter([pb.AnonymizeRequest(encoded=frame, frame_index=i) for i in range(50)])
            call = client.stub.AnonymizeStream(requests, metadata=client.metadata)
            for _, response in zip(range(2), call, strict=False):
                assert response.encoded
            call.cancel()
            # the daemon learns of the cancel asynchronously: until it has, the cancelled
            # stream's frames still count against max_inflight and a new stream could be
            # refused. Each cancel must release them promptly.
            settle(daemon)
        assert threads_of(daemon) <= threads + 2
        assert client.stub.Anonymize(
            pb.AnonymizeRequest(encoded=frame), metadata=client.metadata, timeout=30
        ).encoded


def test_deadline_exceeded_and_the_daemon_goes_on(daemon: DaemonProcess, frame: bytes) -> None:
    with Client(daemon.socket, token=TOKEN) as client:
        with pytest.raises(grpc.RpcError) as caught:
            client.stub.Anonymize(
                pb.AnonymizeRequest(encoded=frame), metadata=client.metadata, timeout=0.001
            )
        assert caught.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED
        settle(daemon)
        assert client.stub.Anonymize(
            pb.AnonymizeRequest(encoded=frame), metadata=client.metadata, timeout=30
        ).encoded


def test_metrics_reveal_no_secrets_and_no_image_data(daemon: DaemonProcess, frame: bytes) -> None:
    with Client(daemon.socket, token=TOKEN) as client:
        client.stub.Anonymize(
            pb.AnonymizeRequest(encoded=frame, name="secret-name.jpg"),
            metadata=client.metadata,
            timeout=30,
        )
    raw = urllib.request.urlopen(daemon.metrics_url, timeout=5).read()  # type: ignore[attr-defined]
    text = raw.decode("ascii")  # exposition is plain text: no image bytes
    assert TOKEN not in text
    assert "secret-name" not in text
    assert str(daemon.folder / "tokens") not in text
    for line in text.splitlines():
        assert line.startswith(("#", "obscura_", "python_", "process_")), line


@pytest.mark.parametrize(
    ("fault", "message"),
    [("corrupt", "int8/model.bin is missing or corrupt"), ("missing", "not in the model store")],
)
def test_a_broken_model_stops_the_daemon_before_serving(
    tmp_path: Path, fault: str, message: str
) -> None:
    """A model file that fails its checksum, or a model not fetched: a clear error naming the
    model, health never SERVING, and a non-zero exit (so that systemd sees the failure)."""
    store = ModelStore()
    cache = tmp_path / "models"
    shutil.copytree(store.cache_dir, cache)
    files = ModelStore(cache).files("centerface")
    assert files.ir_int8 is not None
    if fault == "corrupt":
        data = bytearray(files.ir_int8.with_suffix(".bin").read_bytes())
        data[len(data) // 2] ^= 0xFF
        files.ir_int8.with_suffix(".bin").write_bytes(bytes(data))
    else:
        shutil.rmtree(cache / "centerface")

    d = DaemonProcess(
        tmp_path, {"listen": [f"unix://{tmp_path / 'obscura.sock'}"], "metrics_listen": ""}
    )
    d.env = {"OBSCURA_MODEL_DIR": str(cache)}
    d.start(wait=False)
    assert d.proc is not None
    seen: list[int] = []
    deadline = time.monotonic() + 120
    while d.proc.poll() is None and time.monotonic() < deadline:
        if (tmp_path / "obscura.sock").exists():
            try:
                with grpc.insecure_channel(d.socket) as channel:
                    reply = health_pb2_grpc.HealthStub(channel).Check(
                        health_pb2.HealthCheckRequest(), timeout=1
                    )
                    seen.append(reply.status)
            except grpc.RpcError:
                pass
        time.sleep(0.05)
    code = d.terminate()
    assert code != 0
    assert health_pb2.HealthCheckResponse.SERVING not in seen
    output = d.output()
    assert "'centerface'" in output
    assert message in output
