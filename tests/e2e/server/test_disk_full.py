"""A full output disk, for real: a 1 MiB tmpfs as the output folder. The CLI reports each file
that did not fit and exits 1; the watch folder keeps those inputs for a retry; neither leaves a
partial file or an incomplete set of outputs behind, and nothing is lost once space is back."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import cv2
import pytest

from obscura.backends import BackendConfig, create_backend
from obscura.cli import main
from obscura.local import local_runner
from obscura.pipeline.detect import Detector
from obscura.pipeline.frame import FrameProcessor
from obscura.pipeline.options import AnonymizeOptions, SaveMask
from obscura.types import ObjectClass
from obscura.zoo.store import ModelStore
from obscura_client.watch import FAILED, PROCESSED, Watcher

pytestmark = pytest.mark.models

PHOTOS = [
    "deface_city.jpg",
    "darknet_dog.jpg",
    "darknet_person.jpg",
    "facerec_obama.jpg",
    "gramps_1897_expedition.jpg",
    "kpa_cold_water.jpg",
    "nodeopencv_car1.jpg",
    "opencv_licenseplate_motion.jpg",
]
OUTPUTS = ("{stem}.jpg", "{stem}_bin_mask.png", "{stem}_ins_mask.png", "{stem}.json")


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    mount = tmp_path / "small"
    mount.mkdir()
    proc = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(mount)],
        capture_output=True,
        text=True,
        check=False,
    )
    if proc.returncode != 0:
        if os.environ.get("CI") and os.geteuid() == 0:
            pytest.fail(f"cannot mount a tmpfs: {proc.stderr}")
        pytest.skip(f"mounting a small tmpfs needs root: {proc.stderr.strip()}")
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=False)


def photos(data_dir: Path, folder: Path) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    out = []
    for name in PHOTOS:
        shutil.copy(data_dir / name, folder / name)
        out.append(folder / name)
    return out


def assert_whole_sets(out: Path) -> set[str]:
    """No temporary file; per input stem, all four outputs (each readable) or none. Returns
    the stems that are there."""
    names = {p.name for p in out.rglob("*") if p.is_file()}
    assert not [n for n in names if n.startswith(".") or n.endswith(".part")], names
    stems = {Path(n).stem for n in names if n.endswith(".json")}
    for stem in {Path(name).stem for name in PHOTOS}:
        expected = {pattern.format(stem=stem) for pattern in OUTPUTS}
        present = expected & names
        assert present in (set(), expected), (stem, present)
        if present:
            assert cv2.imread(str(out / f"{stem}.jpg")) is not None
            json.loads((out / f"{stem}.json").read_text())
    return stems


def test_cli_on_a_full_disk_names_each_file_and_leaves_no_partial_output(
    data_dir: Path, tmp_path: Path, small_disk: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    inputs = photos(data_dir, tmp_path / "in")
    code = main(
        [
            "anonymize",
            *map(str, inputs),
            "-o",
            str(small_disk),
            "--no-progress",
            "--save-mask",
            "all",
        ]
    )
    err = capsys.readouterr().err
    assert code == 1
    assert "No space left on device" in err
    written = assert_whole_sets(small_disk)
    failed = [p for p in inputs if p.stem not in written]
    assert written, "the first photos fit"
    assert failed, "the disk filled up"
    for path in failed:
        assert str(path) in err


def test_watch_folder_keeps_inputs_on_a_full_disk_and_finishes_later(
    data_dir: Path, tmp_path: Path, small_disk: Path
) -> None:
    in_dir = tmp_path / "watch"
    photos(data_dir, in_dir)
    backend = create_backend(BackendConfig())
    processor = FrameProcessor(Detector(ModelStore(), backend))
    options = AnonymizeOptions(
        methods=AnonymizeOptions.choose_methods([ObjectClass.FACE]), save_mask=SaveMask.ALL
    )
    runner = local_runner(processor, options, small_disk, progress=False)
    watcher = Watcher(runner, in_dir, settle=0.0, retry_after=0.0)
    watcher.run_once()  # first sighting: files must stay unchanged for `settle` seconds
    watcher.run_once()
    written = assert_whole_sets(small_disk)
    waiting = sorted(p.name for p in in_dir.glob("*.jpg"))
    assert written
    assert waiting, "the disk filled up: those inputs wait for a retry"
    assert not (in_dir / FAILED).exists(), "a full disk is not the input's fault"
    assert sorted(p.name for p in (in_dir / PROCESSED).glob("*.jpg")) == sorted(
        f"{stem}.jpg" for stem in written
    )

    # Space comes back (the outputs were collected): the waiting inputs are done, none twice.
    collected = tmp_path / "collected"
    shutil.copytree(small_disk, collected)
    for p in small_disk.iterdir():
        p.unlink()
    for _ in range(10):
        watcher.run_once()
        if not list(in_dir.glob("*.jpg")):
            break
        shutil.copytree(small_disk, collected, dirs_exist_ok=True)
        for p in small_disk.iterdir():
            p.unlink()
    assert not list(in_dir.glob("*.jpg"))
    shutil.copytree(small_disk, collected, dirs_exist_ok=True)
    assert assert_whole_sets(collected) == {Path(n).stem for n in PHOTOS}
    assert len(list((in_dir / PROCESSED).glob("*.jpg"))) == len(PHOTOS)


def test_a_set_of_outputs_is_written_whole_or_not_at_all(small_disk: Path) -> None:
    """The second file of a set does not fit: the first, already written, is taken back."""
    from obscura_client.files import write_all_atomic

    filler = small_disk / "filler"
    fd = os.open(filler, os.O_WRONLY | os.O_CREAT)
    try:
        while True:
            os.write(fd, b"\0" * 4096)
    except OSError:
        pass
    os.ftruncate(fd, os.fstat(fd).st_size - 64 * 1024)  # 64 KiB free
    os.close(fd)
    with pytest.raises(OSError, match="No space left on device"):
        write_all_atomic(
            [(small_disk / "a.jpg", b"a" * 16384), (small_disk / "a.json", b"b" * 262144)]
        )
    assert sorted(p.name for p in small_disk.iterdir()) == ["filler"]
    write_all_atomic([(small_disk / "a.jpg", b"a" * 16384), (small_disk / "a.json", b"{}")])
    assert (small_disk / "a.jpg").read_bytes() == b"a" * 16384
