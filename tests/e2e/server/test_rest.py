"""REST mode: the real daemon (`obscura serve --http-listen`, real models) with a real HTTP
client on loopback, a webhook receiver of the test's own, and the API fuzzed from its schema."""

from __future__ import annotations

import io
import json
import os
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import av
import cv2
import httpx
import numpy as np
import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from schemathesis import GenerationMode
from support.daemons import DaemonProcess, free_port
from support.images import decode_image

from obscura.server.rest import openapi_schema
from obscura.server.tasks import FAILED, RESTART_REASON, Task, TaskStore
from obscura_client.client import Client
from obscura_client.v1 import anonymizer_pb2 as pb
from obscura_client.wire import FrameMetadata, Options

pytestmark = pytest.mark.models

TOKEN = "rest-token-for-tests"
IMAGE = "deface_city.jpg"  # faces and a plate
FUZZ_EXAMPLES = int(os.environ.get("OBSCURA_REST_FUZZ", "40"))  # per operation


def _daemon(folder: Path, **server: Any) -> tuple[DaemonProcess, str]:
    folder.mkdir(parents=True, exist_ok=True)
    port = free_port()
    d = DaemonProcess(
        folder,
        {
            "listen": [f"unix://{folder / 'obscura.sock'}"],
            "metrics_listen": "",
            "http_listen": f"127.0.0.1:{port}",
            "tasks_dir": str(folder / "tasks"),
            "warmup": False,
            **server,
        },
    )
    return d, f"http://127.0.0.1:{port}"


@pytest.fixture(scope="module")
def rest(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[DaemonProcess, httpx.Client]]:
    folder = tmp_path_factory.mktemp("rest")
    (folder / "tokens").write_text(f"{TOKEN}\n")
    d, url = _daemon(
        folder,
        tokens_file=str(folder / "tokens"),
        tasks_max=50,
        metrics_listen=f"127.0.0.1:{free_port()}",
    )
    d.start()
    headers = {"Authorization": f"Bearer {TOKEN}"}
    with httpx.Client(base_url=url, headers=headers, timeout=120) as http:
        try:
            yield d, http
        finally:
            d.terminate()


def _done(http: httpx.Client, task_id: str, timeout: float = 120) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        task: dict[str, Any] = http.get(f"/v1/task/{task_id}").json()
        if task["status"] in ("done", "failed"):
            return task
        time.sleep(0.1)
    raise TimeoutError(task_id)


def _png(data: bytes) -> np.ndarray[Any, Any]:
    image = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_UNCHANGED)
    assert image is not None
    return np.asarray(image)


def test_image_sync_and_every_download(
    rest: tuple[DaemonProcess, httpx.Client], data_dir: Path
) -> None:
    _, http = rest
    body = (data_dir / IMAGE).read_bytes()
    r = http.post(
        "/v1/file", params={"name": IMAGE}, content=body, headers={"Content-Type": "image/jpeg"}
    )
    assert r.status_code == 200, r.text
    task = r.json()
    assert task["status"] == "done"
    assert task["type"] == "image"
    assert task["name"] == IMAGE
    assert task["detections"]["face"] >= 1
    tid = task["id"]
    assert http.get(f"/v1/task/{tid}").json() == task

    anonymized = http.get(f"/v1/file/{tid}/anonymized")
    assert anonymized.status_code == 200
    assert anonymized.headers["content-type"] == "image/jpeg"
    original = decode_image(body, cv2.IMREAD_COLOR)
    out = decode_image(anonymized.content, cv2.IMREAD_COLOR)
    assert out.shape == original.shape

    binary = _png(http.get(f"/v1/file/{tid}/binary-mask").content)
    assert binary.shape == original.shape[:2]
    assert set(np.unique(binary)) == {0, 255}
    # No raw pixel under the mask: the anonymized image differs there.
    changed = np.abs(out.astype(int) - original.astype(int)).sum(axis=2) > 30
    assert changed[binary > 0].mean() > 0.5

    instance = _png(http.get(f"/v1/file/{tid}/instance-mask").content)
    assert instance.shape == original.shape
    metadata = http.get(f"/v1/file/{tid}/metadata").json()
    assert isinstance(metadata, dict)
    faces = [d for d in metadata["detections"] if d["type_label"] == "face"]
    assert len(faces) == task["detections"]["face"]


def test_rest_and_grpc_give_the_same_masks_and_metadata(
    rest: tuple[DaemonProcess, httpx.Client], data_dir: Path
) -> None:
    d, http = rest
    body = (data_dir / IMAGE).read_bytes()
    r = http.post("/v1/file", params={"name": IMAGE, "mask-scale": "50"}, content=body,
                  headers={"Content-Type": "image/jpeg"})  # fmt: skip
    assert r.status_code == 200, r.text
    tid = r.json()["id"]
    half_ins = http.get(f"/v1/file/{tid}/instance-mask").content  # the upload's scale: 50
    half_bin = http.get(f"/v1/file/{tid}/binary-mask", params={"mask-scale": "50"}).content
    full_ins = http.get(f"/v1/file/{tid}/instance-mask", params={"mask-scale": "100"}).content
    h, w = _png(full_ins).shape[:2]
    assert _png(half_ins).shape[:2] == (round(h / 2), round(w / 2))
    # Nearest-neighbour: every pixel of the half-size mask is a code of the full one.
    codes = {tuple(c) for c in _png(full_ins).reshape(-1, 3)}
    assert {tuple(c) for c in _png(half_ins).reshape(-1, 3)} <= codes

    options = Options(save_mask="all", mask_scale=50)
    with Client(d.socket, token=TOKEN) as client:
        answer = client.anonymize(
            pb.AnonymizeRequest(encoded=body, options=options.to_proto(), name=IMAGE)
        )
    assert answer.instance_mask == half_ins
    assert answer.binary_mask == half_bin
    grpc_meta = FrameMetadata.from_proto(answer.metadata).to_dict()
    rest_meta = http.get(f"/v1/file/{tid}/metadata").json()
    for meta in (grpc_meta, rest_meta):
        meta.pop("duration", None)
    assert rest_meta == grpc_meta


def test_video_async_tracking_and_downloads(
    rest: tuple[DaemonProcess, httpx.Client], data_dir: Path
) -> None:
    _, http = rest
    video = data_dir / "opencv_vtest_first100.mp4"
    r = http.post(
        "/v1/file",
        params={"name": "street.mp4", "face": "true", "license-plate": "false",
                "person": "true", "mask-scale": "25"},
        content=video.read_bytes(),
        headers={"Content-Type": "video/mp4", "x-is-async": "true"},
    )  # fmt: skip
    assert r.status_code == 202, r.text
    assert r.json()["status"] in ("queued", "processing")
    tid = r.json()["id"]
    assert http.get(f"/v1/file/{tid}/anonymized").status_code in (409, 200)
    task = _done(http, tid)
    assert task["status"] == "done", task
    assert task["frames"] == 100
    assert task["detections"]["person"] > 100

    anonymized = http.get(f"/v1/file/{tid}/anonymized")
    assert anonymized.headers["content-type"] == "video/mp4"
    with av.open(io.BytesIO(anonymized.content), "r") as c:
        stream = c.streams.video[0]
        frames = sum(1 for _ in c.decode(stream))
        assert frames == 100
        assert (stream.width, stream.height) == (768, 576)

    mask = http.get(f"/v1/file/{tid}/binary-mask")
    assert mask.headers["content-type"] == "video/x-matroska"
    with av.open(io.BytesIO(mask.content), "r") as c:
        stream = c.streams.video[0]
        assert (stream.width, stream.height) == (192, 144)  # the upload's 25 %
        assert sum(1 for _ in c.decode(stream)) == 100

    frames_meta = http.get(f"/v1/file/{tid}/metadata").json()
    assert [f["id"] for f in frames_meta] == list(range(100))
    part = http.get(f"/v1/file/{tid}/metadata", params={"start": 10, "end": 19}).json()
    assert [f["id"] for f in part] == list(range(10, 20))
    # Tracking ran: some boxes come from the tracker, not the detector.
    sources = {d.get("source") for f in frames_meta for d in f["detections"]}
    assert "detector" in sources


def test_video_sync_multipart(rest: tuple[DaemonProcess, httpx.Client], data_dir: Path) -> None:
    _, http = rest
    video = data_dir / "kpa_movie_face.avi"
    r = http.post(
        "/v1/file",
        params={"license_plate": "false"},
        files={"file": (video.name, video.read_bytes(), "video/x-msvideo")},
    )
    assert r.status_code == 200, r.text
    task = r.json()
    assert task["status"] == "done"
    assert task["type"] == "video"
    assert task["name"] == video.name
    assert task["detections"]["face"] > 0
    frames = http.get(f"/v1/file/{task['id']}/metadata").json()
    assert len(frames) == task["frames"] > 0
    assert all(f["filename"] == video.name for f in frames)


def test_calls_are_counted_with_their_protocol(rest: tuple[DaemonProcess, httpx.Client]) -> None:
    d, http = rest
    http.get("/v1/task/" + "f" * 32)
    with Client(d.socket, token=TOKEN) as client:
        client.info()
    metrics = httpx.get(f"http://{d.server['metrics_listen']}/metrics").text
    assert 'obscura_rpc_total{code="404",method="task",protocol="http"}' in metrics
    assert 'obscura_rpc_total{code="OK",method="GetInfo",protocol="grpc"}' in metrics


def test_delete_then_404(rest: tuple[DaemonProcess, httpx.Client], data_dir: Path) -> None:
    d, http = rest
    body = (data_dir / "skimage_astronaut.png").read_bytes()
    r = http.post("/v1/file", content=body, headers={"Content-Type": "image/png"})
    assert r.status_code == 200, r.text
    tid = r.json()["id"]
    assert r.json()["name"].endswith(".png")
    folder = d.folder / "tasks" / tid
    assert folder.is_dir()
    assert http.delete(f"/v1/task/{tid}").status_code == 204
    assert not folder.exists()
    for path in (f"/v1/task/{tid}", f"/v1/file/{tid}/anonymized", f"/v1/file/{tid}/metadata"):
        gone = http.get(path)
        assert gone.status_code == 404
        assert gone.json()["status_code"] == 404
        assert tid in gone.json()["error"]
    assert http.delete(f"/v1/task/{tid}").status_code == 404


def test_multipart_upload_and_ignore_zones_reach_the_pipeline(
    rest: tuple[DaemonProcess, httpx.Client], data_dir: Path
) -> None:
    _, http = rest
    body = (data_dir / IMAGE).read_bytes()
    plain = http.post("/v1/file", files={"file": (IMAGE, body, "image/jpeg")})
    assert plain.status_code == 200, plain.text
    assert plain.json()["name"] == IMAGE
    assert plain.json()["detections"]["face"] >= 1
    everything = json.dumps([{"topLeftX": 0, "topLeftY": 0, "width": 9999, "height": 9999}])
    ignored = http.post(
        "/v1/file", params={"ignores": everything}, files={"file": (IMAGE, body, "image/jpeg")}
    )
    assert ignored.status_code == 200, ignored.text
    assert ignored.json()["detections"] == {}
    out = http.get(f"/v1/file/{ignored.json()['id']}/anonymized").content
    assert out == http.get(f"/v1/file/{ignored.json()['id']}/anonymized").content
    meta = http.get(f"/v1/file/{ignored.json()['id']}/metadata").json()
    assert meta["detections"] == []


class _Hook(BaseHTTPRequestHandler):
    received: list[dict[str, Any]] = []  # noqa: RUF012 (the test's inbox)
    fail_first = 1

    def do_POST(self) -> None:
        data = self.rfile.read(int(self.headers["Content-Length"]))
        if _Hook.fail_first > 0:
            _Hook.fail_first -= 1
            self.send_response(503)  # a passing failure: the daemon retries
        else:
            _Hook.received.append(json.loads(data))
            self.send_response(200)
        self.end_headers()

    def log_message(self, *args: Any) -> None:
        pass


def test_webhook_is_called_and_retried(
    rest: tuple[DaemonProcess, httpx.Client], data_dir: Path
) -> None:
    _, http = rest
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Hook)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        hook = f"http://127.0.0.1:{server.server_address[1]}/done"
        r = http.post(
            "/v1/file",
            params={"webhook": hook},
            content=(data_dir / IMAGE).read_bytes(),
            headers={"Content-Type": "image/jpeg", "x-is-async": "true"},
        )
        assert r.status_code == 202, r.text
        tid = r.json()["id"]
        deadline = time.monotonic() + 60
        while not _Hook.received and time.monotonic() < deadline:
            time.sleep(0.1)
        assert _Hook.received
        assert _Hook.received[0]["id"] == tid
        assert _Hook.received[0]["status"] == "done"
        deadline = time.monotonic() + 10
        while http.get(f"/v1/task/{tid}").json()["webhook"]["status"] != "delivered":
            assert time.monotonic() < deadline
            time.sleep(0.1)
        assert http.get(f"/v1/task/{tid}").json()["webhook"]["attempts"] == 2
    finally:
        server.shutdown()


def test_bad_uploads_get_4xx_json_and_the_daemon_keeps_serving(
    rest: tuple[DaemonProcess, httpx.Client], data_dir: Path
) -> None:
    d, http = rest
    jpeg = (data_dir / IMAGE).read_bytes()
    cases = [
        ({}, jpeg[: len(jpeg) // 3] + b"\0" * 64, "image/jpeg", 400, ""),
        ({"method": "smudge"}, jpeg, "image/jpeg", 400, "method"),
        ({"colour": "red"}, jpeg, "image/jpeg", 400, "unknown parameter 'colour'"),
        ({"mask-scale": "0"}, jpeg, "image/jpeg", 400, "mask-scale"),
        ({"ignores": '[{"x": 1}]'}, jpeg, "image/jpeg", 400, "ignores[0]"),
        ({"face": "false", "license-plate": "false"}, jpeg, "image/jpeg", 400, "no class"),
        ({}, jpeg, "text/plain", 415, "text/plain"),
        ({}, b"", "image/jpeg", 400, "empty"),
        ({}, b"not a video at all" * 10, "video/mp4", 400, ""),
    ]
    for params, body, ctype, status, words in cases:
        r = http.post("/v1/file", params=params, content=body, headers={"Content-Type": ctype})
        assert r.status_code == status, (params, ctype, r.text)
        error = r.json()
        assert error["status_code"] == status, error
        assert words in error["error"], error
    assert http.get("/healthz").json() == {"status": "serving"}
    with Client(d.socket, token=TOKEN) as client:
        assert client.info().version
    assert http.post("/v1/file", content=jpeg, headers={"Content-Type": "image/jpeg"}).is_success


def test_tokens_are_enforced(rest: tuple[DaemonProcess, httpx.Client], data_dir: Path) -> None:
    _d, http = rest
    url = str(http.base_url)
    with httpx.Client(base_url=url) as anonymous:
        for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": TOKEN}):
            r = anonymous.post("/v1/file", content=b"x", headers=headers)
            assert r.status_code == 401
            assert r.json()["error"] == "missing or invalid bearer token"
            assert anonymous.get("/v1/task/" + "0" * 32, headers=headers).status_code == 401
        assert anonymous.get("/healthz").status_code == 200  # for load balancers
        assert anonymous.get("/openapi.json").status_code == 200


def test_storage_is_bounded(tmp_path: Path, data_dir: Path) -> None:
    d, url = _daemon(tmp_path / "d", tasks_max=2, upload_max_bytes=1_000_000)
    d.start()
    try:
        with httpx.Client(base_url=url, timeout=120) as http:
            big = b"\xff" * 1_000_001
            r = http.post("/v1/file", content=big, headers={"Content-Type": "image/jpeg"})
            assert r.status_code == 413
            assert "1000000" in r.json()["error"]
            body = (data_dir / "skimage_astronaut.png").read_bytes()
            for _ in range(2):
                r = http.post("/v1/file", content=body, headers={"Content-Type": "image/png"})
                assert r.status_code == 200
            full = http.post("/v1/file", content=body, headers={"Content-Type": "image/png"})
            assert full.status_code == 429
            assert "at most 2 tasks" in full.json()["error"]
            http.delete(f"/v1/task/{r.json()['id']}")
            again = http.post("/v1/file", content=body, headers={"Content-Type": "image/png"})
            assert again.status_code == 200
            assert [p.name for p in (tmp_path / "d" / "tasks").iterdir() if p.name[0] == "."] == []
    finally:
        d.terminate()


def test_after_a_crash_unfinished_tasks_fail_and_half_uploads_go(tmp_path: Path) -> None:
    store = TaskStore(tmp_path, max_tasks=10, max_bytes=1 << 30, ttl=60)
    store.recover()
    running = store.create("a.jpg", "image", {}, "")
    store.add(running)
    running.status = "processing"
    store.save(running)
    (store.out_dir(running)).mkdir()
    (store.out_dir(running) / "a.jpg").write_bytes(b"half")
    done = store.create("b.jpg", "image", {}, "")
    done.status = "done"
    store.add(done)
    cut = store.create("c.jpg", "image", {}, "")  # the upload never completed: no task.json

    again = TaskStore(tmp_path, max_tasks=10, max_bytes=1 << 30, ttl=60)
    failed = again.recover()
    assert [t.id for t in failed] == [running.id]
    task = again.get(running.id)
    assert task.status == FAILED
    assert task.error == RESTART_REASON
    assert not again.out_dir(task).exists()  # no half-written result to serve
    assert again.get(done.id).status == "done"
    assert not again.folder(cut).exists()
    assert cut.id not in again.tasks
    # Finished tasks expire after the time to live.
    assert again.sweep(now=time.time() + 61) == 2
    assert again.tasks == {}


def test_task_json_is_what_the_store_wrote(tmp_path: Path) -> None:
    store = TaskStore(tmp_path, max_tasks=1, max_bytes=1 << 20, ttl=60)
    task = store.create("x.png", "image", {"face": "true"}, "http://127.0.0.1:1/hook")
    store.add(task)
    data = json.loads((store.folder(task) / "task.json").read_text())
    assert Task(**data) == task
    with pytest.raises(Exception, match="at most 1 tasks"):
        store.check_room()


# --- the API fuzzed from its own schema -------------------------------------------------------
@pytest.fixture(scope="module")
def fuzzed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[DaemonProcess, str]]:
    folder = tmp_path_factory.mktemp("fuzz")
    d, url = _daemon(folder, tasks_max=100_000, upload_max_bytes=1_000_000)
    d.start()
    try:
        yield d, url
    finally:
        d.terminate()


OPERATIONS = [(path, method) for path, ops in openapi_schema()["paths"].items() for method in ops]


@pytest.mark.parametrize(("path", "method"), OPERATIONS)
def test_fuzzed_from_the_openapi_schema(
    fuzzed: tuple[DaemonProcess, str], path: str, method: str
) -> None:
    """Requests generated from the schema the daemon serves, valid and invalid ones: no 5xx,
    and every answer as the schema documents it (status, content type, body)."""
    from schemathesis.checks import (
        content_type_conformance,
        not_a_server_error,
        response_schema_conformance,
        status_code_conformance,
    )

    _, url = fuzzed
    operation = schemathesis.openapi.from_url(f"{url}/openapi.json")[path][method.upper()]
    cases = st.one_of(operation.as_strategy(), operation.as_strategy(GenerationMode.NEGATIVE))
    checks = [
        not_a_server_error,
        status_code_conformance,
        content_type_conformance,
        response_schema_conformance,
    ]

    @settings(
        max_examples=FUZZ_EXAMPLES,
        deadline=None,
        database=None,
        suppress_health_check=list(HealthCheck),
    )
    @given(case=cases)
    def run(case: Any) -> None:
        case.call_and_validate(base_url=url, checks=checks, timeout=60)

    run()


def test_still_serving_after_the_fuzzing(fuzzed: tuple[DaemonProcess, str]) -> None:
    d, url = fuzzed
    assert d.proc is not None
    assert d.proc.poll() is None
    with httpx.Client(base_url=url) as http:
        assert http.get("/healthz").json() == {"status": "serving"}
    with Client(d.socket) as client:
        assert client.info().version
