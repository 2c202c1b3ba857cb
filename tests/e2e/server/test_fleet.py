"""Several daemons: round_robin spreads calls, and a daemon killed mid-stream loses nothing."""

from __future__ import annotations

import re
import threading
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
from support import REPO
from support.daemons import DaemonProcess, free_port, tcp_daemon

from obscura_client.client import Client, FrameFailed, Options, request_for
from obscura_client.v1 import anonymizer_pb2 as pb

pytestmark = pytest.mark.models


def metric(port: int, name: str) -> float:
    text = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5).read().decode()
    match = re.search(rf"^{re.escape(name)} ([0-9.e+-]+)$", text, re.MULTILINE)
    return float(match.group(1)) if match else 0.0


@pytest.fixture
def two_daemons(tmp_path: Path) -> Iterator[list[tuple[DaemonProcess, str, int]]]:
    out = []
    for name in ("a", "b"):
        out.append(tcp_daemon(tmp_path / name))
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


NGINX_CONF = REPO / "deploy" / "nginx" / "obscura.conf"


def nginx() -> str:
    import os
    import shutil

    found = shutil.which("nginx") or (
        "/usr/sbin/nginx" if Path("/usr/sbin/nginx").exists() else None
    )
    if found is None:
        if os.environ.get("CI"):
            pytest.fail("nginx is needed (Debian package nginx-light, scripts/install.sh)")
        pytest.skip("nginx not installed")
    return found


def nginx_args(conf: Path, prefix: Path) -> list[str]:
    return [
        nginx(),
        "-c",
        str(conf),
        "-p",
        str(prefix),
        "-e",
        "stderr",
        "-g",
        f"pid {prefix}/nginx.pid;",
    ]


@pytest.mark.parametrize("conf", [NGINX_CONF, NGINX_CONF.with_name("obscura-rest.conf")])
def test_the_nginx_examples_pass_nginx_t(tmp_path: Path, conf: Path) -> None:
    import subprocess

    proc = subprocess.run(
        [*nginx_args(conf, tmp_path), "-t"], capture_output=True, text=True, check=False
    )
    assert proc.returncode == 0, proc.stderr
    assert "test is successful" in proc.stderr


def test_calls_through_nginx_reach_both_daemons(
    two_daemons: list[tuple[DaemonProcess, str, int]], data_dir: Path, tmp_path: Path
) -> None:
    import subprocess
    import time

    port = free_port()
    text = NGINX_CONF.read_text()
    servers = "".join(f"        server {address};\n" for _, address, _ in two_daemons)
    text = re.sub(r"\n\s+server 10\.0\.0\.\d+:50051[^\n]*", "", text)
    text = text.replace("upstream obscura_daemons {\n", "upstream obscura_daemons {\n" + servers)
    assert text.count("server 127.0.0.1:") == 2
    text = text.replace("listen 50051 http2;", f"listen 127.0.0.1:{port} http2;")
    conf = tmp_path / "nginx.conf"
    conf.write_text(text)
    (tmp_path / "logs").mkdir()
    proc = subprocess.Popen(
        [*nginx_args(conf, tmp_path), "-g", "daemon off;"],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        image = data_dir / "gramps_1897_expedition.jpg"
        with Client(f"127.0.0.1:{port}") as client:
            deadline = time.monotonic() + 20
            while True:
                try:
                    assert client.health() == "SERVING"
                    break
                except Exception:
                    if time.monotonic() > deadline or proc.poll() is not None:
                        raise
                    time.sleep(0.2)
            for _ in range(8):
                result = client.anonymize_image(image, Options(classes={"face": "blur"}))
                assert len(result.detections) >= 4
    finally:
        proc.terminate()
        proc.wait(10)
    served = [metric(m, 'obscura_frames_total{status="ok"}') for _, _, m in two_daemons]
    assert sum(served) == 8
    assert all(n >= 1 for n in served), served
