"""The GPU check (scripts/gpu_check.sh, obscura.gpucheck): its comparison, and its dry run on
the CPU, which runs the same code as the run on a GPU."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from support import REPO

from obscura.gpucheck import compare_detections
from obscura.zoo.store import ModelStore

CLIP = "opencv_vtest_first100.mp4"


def det(label: str, bbox: list[float], score: float = 0.9) -> dict[str, Any]:
    return {"type_label": label, "bbox": bbox, "score": score}


def test_identical_detections_pass() -> None:
    frames = [[det("face", [0, 0, 10, 10]), det("license-plate", [20, 20, 40, 30])], []]
    result = compare_detections(frames, frames)
    assert result["passed"]
    assert result["matched"] == 2
    assert result["min_iou"] == 1.0


def test_a_missing_box_and_a_moved_box_are_reported() -> None:
    test = [[det("face", [0, 0, 10, 10], 0.8)], [det("face", [0, 0, 10, 10])]]
    reference = [
        [det("face", [0, 0, 10, 10], 0.85), det("face", [50, 50, 60, 60])],
        [det("face", [2, 0, 12, 10])],  # IoU 8/12
    ]
    result = compare_detections(test, reference)
    assert not result["passed"]
    assert result["count_mismatch_examples"] == [
        {"frame": 0, "class": "face", "test": 1, "reference": 2}
    ]
    assert result["low_iou_examples"] == [{"frame": 1, "class": "face", "iou": 0.6667}]
    assert result["max_score_diff"] == pytest.approx(0.05)


def run_check(tmp_path: Path, data_dir: Path, *args: str) -> dict[str, Any]:
    env = {**os.environ, "PYTHON": sys.executable, "OBSCURA_CLIP": str(data_dir / CLIP)}
    env["PYTHONPATH"] = str(REPO / "daemon")
    done = subprocess.run(
        [str(REPO / "scripts" / "gpu_check.sh"), str(tmp_path / "out"), *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=600,
        check=False,
    )
    report: dict[str, Any] = json.loads((tmp_path / "out" / "gpu_check.json").read_text())
    assert done.returncode == 0, done.stderr[-3000:]
    assert report["finished"]
    return report


@pytest.mark.models
def test_the_dry_run_on_the_cpu(tmp_path: Path, data_dir: Path, model_store: ModelStore) -> None:
    """Every step of the GPU run, on ONNX Runtime's CPU provider, briefly, with the models as
    a CUDA machine gets them: a store of their ONNX forms only."""
    models = ["centerface", "scrfd", "nanodet-m", "pyplatex-plates", "selfie-segmentation"]
    model_store.pack_onnx(models, tmp_path / "models")
    report = run_check(
        tmp_path, data_dir, "--device", "cpu", "--frames", "3", "--streams", "1", "2",
        "--seconds", "2", "--warmup", "1", "--reserve-s", "0",
        "--model-dir", str(tmp_path / "models"),
    )  # fmt: skip
    assert "CPUExecutionProvider" in report["runtime"]["providers"]
    models = report["daemon_test_info"]["models"]
    assert {m["name"] for m in models} >= {"centerface", "pyplatex-plates"}
    assert {m["device"] for m in models} == {"CPUExecutionProvider"}
    assert report["clip_test"]["frames"] == 3
    assert report["parity"]["passed"]
    for streams in (1, 2):
        measured = report[f"throughput_{streams}"]
        assert measured["streams"] == streams
        assert measured["frame_size"] == [1920, 1080]
        assert measured["frames"] >= 1
        assert measured["failed_frames"] == 0
        assert measured["latency_ms"]["p95"] > 0
    assert (tmp_path / "out" / "gpu_check.log").exists()
    assert (tmp_path / "out" / "daemon-test.log").exists()


@pytest.mark.models
def test_cuda_missing_is_recorded_and_the_cpu_parts_still_run(
    tmp_path: Path, data_dir: Path
) -> None:
    """Here ONNX Runtime has no CUDA provider: the CUDA daemon's error is in the report, the
    CPU reference still runs."""
    report = run_check(tmp_path, data_dir, "--frames", "2", "--streams", "1", "--seconds", "1")
    if report["runtime"]["cuda_offered"]:
        pytest.skip("this machine has CUDA")
    assert "offers no CUDA execution provider" in report["daemon_test"]["error"]
    assert "throughput_1" not in report
    assert report["clip_reference"]["frames"] == 2
    assert report["parity"] == {"skipped": "a clip run is missing"}
