"""The client packages as a gateway installs them: ``pip install ./clients/python`` into a bare
virtual environment (no inference runtime comes with it) against a real daemon, and the Node.js
package's own tests."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import venv
from pathlib import Path

import pytest
from support import REPO
from support.daemons import DaemonProcess, plain_daemon
from support.node import NODE_DIR, node_modules

# What a gateway must not have to install to feed a daemon.
HEAVY = {"openvino", "nncf", "onnx", "onnxruntime", "onnxruntime-gpu", "torch", "tensorflow"}
OPENCV = {"opencv-python", "opencv-python-headless", "opencv-contrib-python"}


@pytest.fixture(scope="module")
def client_venv(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A new virtual environment (no system site packages) with only the client package."""
    root = tmp_path_factory.mktemp("client-venv") / "venv"
    venv.EnvBuilder(with_pip=True, clear=True).create(root)
    proc = subprocess.run(
        [str(root / "bin" / "python"), "-m", "pip", "install", "--quiet",
         "--disable-pip-version-check", str(REPO / "clients" / "python")],
        capture_output=True, text=True, timeout=900, check=False,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    shutil.rmtree(REPO / "clients" / "python" / "build", ignore_errors=True)
    return root


def installed(root: Path) -> set[str]:
    proc = subprocess.run(
        [str(root / "bin" / "python"), "-m", "pip", "list", "--format", "json",
         "--disable-pip-version-check"],
        capture_output=True, text=True, check=True,
    )  # fmt: skip
    return {p["name"].lower() for p in json.loads(proc.stdout)}


def test_the_client_package_installs_no_inference_runtime(client_venv: Path) -> None:
    names = installed(client_venv)
    assert {"obscura-client", "grpcio", "protobuf", "numpy", "av"} <= names
    assert not names & (HEAVY | OPENCV), sorted(names & (HEAVY | OPENCV))
    assert "obscura" not in names
    # Every module of the package imports there: nothing reaches for the daemon's code.
    code = (
        "import sys, obscura_client, obscura_client.cli, obscura_client.batch, "
        "obscura_client.live, obscura_client.watch, obscura_client.video, obscura_client.codec; "
        "print(sorted(m for m in ('cv2', 'obscura', 'openvino') if m in sys.modules))"
    )
    proc = subprocess.run(
        [str(client_venv / "bin" / "python"), "-c", code],
        capture_output=True, text=True, check=False, cwd=client_venv,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "[]"


@pytest.mark.models
def test_obscura_client_anonymize_reaches_a_real_daemon(
    client_venv: Path, tmp_path: Path, data_dir: Path
) -> None:
    """Photos and a video through ``obscura-client`` from the bare environment: anonymized
    outputs, masks from raw bytes (no OpenCV there) and metadata, as ``obscura`` writes them."""
    import numpy as np
    from support.images import read_image

    inputs = tmp_path / "in"
    inputs.mkdir()
    shutil.copy(data_dir / "gramps_1897_expedition.jpg", inputs)
    video = data_dir / "opencv_vtest_first100.mp4"
    shutil.copy(video, inputs / "clip.mp4")
    (tmp_path / "daemon").mkdir()
    d: DaemonProcess = plain_daemon(tmp_path / "daemon")
    command = client_venv / "bin" / "obscura-client"
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    try:
        health = subprocess.run(
            [str(command), "health", "--server", d.socket],
            capture_output=True, text=True, timeout=60, check=False, env=env,
        )  # fmt: skip
        assert health.returncode == 0, health.stderr
        assert health.stdout.strip() == "SERVING"
        out = tmp_path / "out"
        proc = subprocess.run(
            [str(command), "anonymize", str(inputs), "-o", str(out), "--server", d.socket,
             "--save-mask", "all", "-a", "face,person", "--no-progress"],
            capture_output=True, text=True, timeout=600, check=False, env=env,
        )  # fmt: skip
    finally:
        assert d.terminate() == 0
    assert proc.returncode == 0, proc.stderr
    assert "errors: 0" in proc.stdout
    photo = json.loads((out / "gramps_1897_expedition.json").read_text())
    assert sum(d["type_label"] == "face" for d in photo["detections"]) >= 4
    original = read_image(inputs / "gramps_1897_expedition.jpg")
    anonymized = read_image(out / "gramps_1897_expedition.jpg")
    assert anonymized.shape == original.shape
    x0, y0, x1, y1 = next(d["bbox"] for d in photo["detections"] if d["type_label"] == "face")
    assert np.abs(anonymized[y0:y1, x0:x1].astype(int) - original[y0:y1, x0:x1]).mean() > 3
    assert (out / "gramps_1897_expedition_bin_mask.png").stat().st_size > 0
    frames = json.loads((out / "clip-0-99.json").read_text())
    assert [f["id"] for f in frames] == list(range(100))
    assert sum(len(f["detections"]) for f in frames) > 100  # the street's walkers

    from obscura_client.video import read_mask_video

    masks = list(read_mask_video(out / "clip_bin_mask.mkv"))
    assert len(masks) == 100
    boxes = [d["bbox"] for d in frames[50]["detections"] if d["is_anonymized"]]
    assert boxes
    x0, y0, x1, y1 = boxes[0]
    assert masks[50][(y0 + y1) // 2, (x0 + x1) // 2] == 255  # raw masks, written as they came
    instance = list(read_mask_video(out / "clip_ins_mask.mkv"))
    assert instance[50].shape == (*masks[50].shape, 3)


def test_the_node_package_tests_pass() -> None:
    """``npm test`` in clients/node: the library against an in-process fake server."""
    node_modules()
    proc = subprocess.run(
        ["npm", "test", "--silent"], cwd=NODE_DIR, capture_output=True, text=True, timeout=300,
        check=False,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
