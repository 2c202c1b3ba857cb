"""Shapes, methods, masks and metadata on synthetic detections (no models needed).

The real-model path is covered by test_anonymize_e2e.py; here a fixed detector stands in for
the detection core so that every code and pixel can be asserted exactly.
"""

from __future__ import annotations

import json
from pathlib import Path, PurePosixPath

import cv2
import numpy as np
import pytest
from support.fakes import FixedDetector
from support.images import as_image

from obscura.errors import InvalidInput
from obscura.pipeline.anonymize import blur_sigma, pixelate_cell, regions_for
from obscura.pipeline.frame import FrameProcessor
from obscura.pipeline.masks import V26_FLAGS, spread_ids
from obscura.pipeline.options import AnonymizeOptions, MaskEncoding, Method, parse_colour
from obscura.types import BoxMask, Detections, ImageArray, ObjectClass
from obscura_client.batch import collect_inputs
from obscura_client.files import MetadataChunks, OutputPaths, json_bytes

F, P, PL, V = ObjectClass.FACE, ObjectClass.PERSON, ObjectClass.LICENSE_PLATE, ObjectClass.VEHICLE
ALL = {F: Method.BLUR, P: Method.BLUR, PL: Method.BLUR, V: Method.BLUR}


def textured(h: int = 240, w: int = 320, seed: int = 0) -> ImageArray:
    rng = np.random.default_rng(seed)
    return rng.integers(1, 255, size=(h, w, 3), dtype=np.uint8)


def scene() -> Detections:
    """A vehicle with a plate, a person (with a segmentation mask) with a face, a second face."""
    person_mask = np.zeros((120, 60), dtype=bool)
    person_mask[10:110, 15:45] = True
    return Detections(
        xyxy=np.array(
            [
                [100, 40, 130, 80],  # face on the person
                [250, 20, 290, 70],  # lone face
                [180, 170, 220, 185],  # plate on the vehicle
                [90, 30, 150, 150],  # person
                [160, 120, 300, 220],  # vehicle
            ],
            dtype=np.float32,
        ),
        scores=np.array([0.9, 0.8, 0.7, 0.6, 0.5], dtype=np.float32),
        class_ids=np.array([F, F, PL, P, V], dtype=np.int32),
        masks=(None, None, None, BoxMask(90, 30, person_mask), None),
    )


def process(options: AnonymizeOptions, image: ImageArray | None = None):  # type: ignore[no-untyped-def]
    return FrameProcessor(FixedDetector(scene())).process(
        textured() if image is None else image, options
    )


# --- shapes --------------------------------------------------------------------------------
def test_face_is_an_ellipse_in_the_enlarged_box() -> None:
    opts = AnonymizeOptions(methods=ALL)
    regions = regions_for(scene(), (320, 240), opts)
    face = regions[0]
    assert face is not None
    # 30x40 box enlarged 1.15x about its centre (115, 60): 34.5 x 46.
    assert (face.x1, face.y1, face.x2, face.y2) == (97, 37, 133, 83)
    assert face.shape is not None
    assert not face.shape[0, 0]
    assert not face.shape[-1, -1]
    assert face.shape[face.height // 2, face.width // 2]
    assert 0.7 < face.shape.mean() < 0.85  # about pi/4 of the box


def test_person_uses_its_segmentation_mask_and_others_their_box() -> None:
    regions = regions_for(scene(), (320, 240), AnonymizeOptions(methods=ALL))
    person, vehicle, plate = regions[3], regions[4], regions[2]
    assert person is not None
    assert person.shape is not None
    assert person.pixel_count == 100 * 30
    assert vehicle is not None
    assert vehicle.shape is None
    assert (vehicle.x1, vehicle.y1, vehicle.x2, vehicle.y2) == (160, 120, 300, 220)
    assert plate is not None
    assert plate.shape is None
    assert (plate.x1, plate.y1, plate.x2, plate.y2) == (178, 169, 222, 186)


def test_bbox_forces_boxes_and_boxes_are_clipped_to_the_image() -> None:
    det = Detections(
        np.array([[300, 200, 360, 260], [400, 400, 420, 420]], dtype=np.float32),
        np.array([0.9, 0.9], dtype=np.float32),
        np.array([F, V], dtype=np.int32),
    )
    regions = regions_for(det, (320, 240), AnonymizeOptions(methods=ALL, bbox=True))
    assert regions[0] is not None
    assert regions[0].shape is None
    assert (regions[0].x2, regions[0].y2) == (320, 240)
    assert regions[1] is None  # wholly outside: nothing to hide, dropped from the result
    result = FrameProcessor(FixedDetector(det)).process(
        textured(), AnonymizeOptions(methods=ALL, bbox=True)
    )
    assert len(result.detections) == 1


# --- methods -------------------------------------------------------------------------------
def test_blacken_changes_exactly_the_binary_mask_pixels() -> None:
    image = textured()
    result = process(AnonymizeOptions(methods=dict.fromkeys(ALL, Method.BLACKEN)), image)
    mask = result.binary_mask() == 255
    assert set(np.unique(result.binary_mask())) == {0, 255}
    assert (result.image[mask] == 0).all()
    assert (result.image[~mask] == image[~mask]).all()
    # The input has no black pixel, so "changed" and "in the mask" are the same set.
    assert ((result.image != image).any(axis=2) == mask).all()
    assert all(result.anonymized)


@pytest.mark.parametrize("method", [Method.BLUR, Method.PIXELATE])
def test_blur_and_pixelate_change_only_masked_pixels(method: Method) -> None:
    image = textured()
    result = process(AnonymizeOptions(methods=dict.fromkeys(ALL, method)), image)
    mask = result.binary_mask() == 255
    changed = (result.image != image).any(axis=2)
    assert not changed[~mask].any()
    assert changed[mask].mean() > 0.95  # noise in, smooth out: nearly every pixel differs


def test_fill_colour_is_rgb() -> None:
    opts = AnonymizeOptions(methods={F: Method.BLACKEN}, fill_rgb=parse_colour("#ff8000"))
    result = process(opts)
    mask = result.binary_mask() == 255
    assert (result.image[mask] == (0, 128, 255)).all()  # BGR in memory


def test_detect_mode_changes_nothing_but_masks_say_where() -> None:
    image = textured()
    result = process(AnonymizeOptions(methods={F: Method.BLUR, V: Method.DETECT}), image)
    assert result.anonymized == [True, True, False]  # two faces, one vehicle
    vehicle = result.regions[2]
    assert vehicle is not None
    region = (slice(vehicle.y1, vehicle.y2), slice(vehicle.x1, vehicle.x2))
    assert (result.image[region] == image[region]).all()
    assert (result.binary_mask()[region] == 255).all()  # would have been hidden


def test_blur_strength_scales_with_the_object() -> None:
    assert blur_sigma(400) >= 60  # a 15 px kernel would be sigma ~2.6
    assert blur_sigma(40) == pytest.approx(40 / 6)
    assert pixelate_cell(400) >= 60
    # A 400 px face of fine texture: after blurring, next to no detail survives; a 15 px
    # kernel would leave much of it.
    rng = np.random.default_rng(1)
    base = as_image(cv2.resize(rng.integers(0, 255, (50, 50, 3), dtype=np.uint8), (500, 500)))
    det = Detections(
        np.array([[50, 50, 450, 450]], dtype=np.float32),
        np.array([0.9], dtype=np.float32),
        np.array([F], dtype=np.int32),
    )
    opts = AnonymizeOptions(methods={F: Method.BLUR}, bbox=True)
    ours = FrameProcessor(FixedDetector(det)).process(base, opts).image[60:440, 60:440]
    weak = as_image(cv2.GaussianBlur(base, (15, 15), 0))[60:440, 60:440]

    def detail(img: ImageArray) -> float:
        return float(cv2.cvtColor(img, cv2.COLOR_BGR2GRAY).astype(np.float32).std())

    assert detail(weak) > 0.8 * detail(base[60:440, 60:440])  # 15 px: texture survives
    assert detail(ours) < 0.1 * detail(weak)


# --- masks ---------------------------------------------------------------------------------
def test_instance_ids_are_spread_evenly() -> None:
    assert spread_ids(1) == [255]
    assert spread_ids(3) == [85, 170, 255]
    assert len(set(spread_ids(255))) == 255
    assert spread_ids(256)[-1] == 1  # beyond 255 they repeat


def test_instance_mask_codes_and_draw_order() -> None:
    result = process(AnonymizeOptions(methods=ALL))
    ins = result.instance_mask()
    assert ins.shape == (240, 320, 3)
    assert (ins[..., 2] == 0).all()
    assert set(np.unique(ins[..., 0])) == {0, 64, 128, 192, 255}
    # Faces get G 128 and 255 (two of them), the rest 255.
    assert result.colours.colours == [
        (192, 128, 0),
        (192, 255, 0),
        (64, 255, 0),
        (128, 255, 0),
        (255, 255, 0),
    ]
    # Where the face lies on the person, the face wins; where the plate lies on the vehicle,
    # the plate wins.
    assert tuple(ins[60, 115]) == (192, 128, 0)
    assert tuple(ins[177, 200]) == (64, 255, 0)
    assert tuple(ins[130, 110]) == (128, 255, 0)
    # Every detection's colour is its pixel value somewhere in the mask.
    colours = {tuple(c) for c in ins.reshape(-1, 3)}
    assert set(result.colours.colours) <= colours
    # Binary mask = union of the instance mask's non-zero pixels.
    assert ((result.binary_mask() == 255) == ins.any(axis=2)).all()


def test_v26_encoding_ors_class_flags() -> None:
    result = process(AnonymizeOptions(methods=ALL, mask_encoding=MaskEncoding.CELANTUR_V26))
    ins = result.instance_mask()
    assert (ins[..., 0] == 0).all()
    assert tuple(ins[60, 115]) == (0, 128, V26_FLAGS[F] | V26_FLAGS[P])  # face over person
    assert tuple(ins[177, 200]) == (0, 255, V26_FLAGS[PL] | V26_FLAGS[V])
    assert tuple(ins[130, 110]) == (0, 255, V26_FLAGS[P])
    assert result.colours.colours[0] == (0, 128, 32)


@pytest.mark.parametrize("scale", [1, 25, 50, 99])
def test_mask_scale_is_nearest_neighbour(scale: int) -> None:
    full = process(AnonymizeOptions(methods=ALL))
    small = process(AnonymizeOptions(methods=ALL, mask_scale=scale))
    ins, binary = small.instance_mask(), small.binary_mask()
    size = (max(1, round(240 * scale / 100)), max(1, round(320 * scale / 100)))
    assert ins.shape[:2] == size
    assert binary.shape == size
    assert set(np.unique(binary)) <= {0, 255}
    full_colours = {tuple(c) for c in full.instance_mask().reshape(-1, 3)}
    assert {tuple(c) for c in ins.reshape(-1, 3)} <= full_colours  # no blended codes


def test_more_than_255_instances_repeat_ids_and_metadata_says_so() -> None:
    n = 300
    xs = np.arange(n, dtype=np.float32) % 20 * 16
    ys = np.arange(n, dtype=np.float32) // 20 * 16
    det = Detections(
        np.stack([xs, ys, xs + 10, ys + 10], axis=1),
        np.full(n, 0.9, dtype=np.float32),
        np.full(n, int(F), dtype=np.int32),
    )
    result = FrameProcessor(FixedDetector(det)).process(
        textured(), AnonymizeOptions(methods={F: Method.BLUR})
    )
    meta = result.metadata("x.png", "x.png", "")
    assert meta["instance_ids_repeat"] == ["face"]
    assert "instance_ids_repeat" not in process(AnonymizeOptions(methods=ALL)).metadata(
        "a", "a", ""
    )


# --- metadata ------------------------------------------------------------------------------
def test_metadata_fields() -> None:
    result = process(AnonymizeOptions(methods={F: Method.BLUR, V: Method.DETECT}))
    meta = result.metadata("cam1.png", "cam1.png", "street")
    assert list(meta) == ["id", "filename", "folder", "size", "duration", "detections"]
    assert meta["id"] == "cam1.png"
    assert meta["folder"] == "street"
    assert meta["size"] == [320, 240]
    assert 0 <= meta["duration"] < 1
    first = meta["detections"][0]
    assert first == {
        "id": 0,
        "parent_image": "cam1.png",
        "offset": [100, 40],
        "bbox": [100, 40, 130, 80],
        "score": 0.9,
        "is_anonymized": True,
        "type_label": "face",
        "type": 192,
        "color": [192, 128, 0],
    }
    assert [d["id"] for d in meta["detections"]] == [0, 1, 2]
    assert meta["detections"][2]["is_anonymized"] is False
    assert json.loads(json_bytes(meta)) == meta


def test_thresholds_reach_the_detector() -> None:
    det = FixedDetector(scene())
    FrameProcessor(det).process(textured(), AnonymizeOptions(thresholds={F: 0.2}))
    assert det.thresholds == [{F: 0.2}]


# --- options -------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"mask_scale": 0}, "mask_scale"),
        ({"mask_scale": 101}, "mask_scale"),
        ({"thresholds": {F: 1.5}}, "threshold for face"),
        ({"quality": 0}, "quality"),
        ({"methods": {}}, "no class"),
        ({"enlarge": {F: 0.5}}, "enlarge factor for face"),
    ],
)
def test_bad_options_name_the_problem(kwargs: dict[str, object], message: str) -> None:
    with pytest.raises(InvalidInput, match=message):
        AnonymizeOptions(**kwargs)  # type: ignore[arg-type]


def test_choose_methods_like_celantur() -> None:
    assert AnonymizeOptions.choose_methods() == {F: Method.BLUR, PL: Method.BLUR}
    chosen = AnonymizeOptions.choose_methods([F], Method.PIXELATE, {V: Method.DETECT})
    assert chosen == {F: Method.PIXELATE, V: Method.DETECT}
    assert parse_colour("10,20,30") == (10, 20, 30)
    with pytest.raises(InvalidInput, match="fill colour"):
        parse_colour("red")


# --- inputs and output names ---------------------------------------------------------------
def test_folders_are_walked_and_mirrored(tmp_path: Path) -> None:
    root = tmp_path / "in"
    for rel in ["a.jpg", "street/b.png", "street/deep/c.mp4", "notes.txt", ".hidden.jpg"]:
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_bytes(b"x")
    (root / "out").mkdir()
    (root / "out" / "old.jpg").write_bytes(b"x")
    files, errors = collect_inputs([root], exclude=root / "out")
    assert [(str(f.rel), f.kind) for f in files] == [
        ("a.jpg", "image"),
        ("street/b.png", "image"),
        ("street/deep/c.mp4", "video"),
    ]
    assert errors == []
    assert OutputPaths(tmp_path, files[2].rel).folder == "street/deep"
    assert OutputPaths(tmp_path, files[0].rel).folder == ""


def test_colliding_and_unsupported_inputs_are_errors(tmp_path: Path) -> None:
    (tmp_path / "a.jpg").write_bytes(b"x")
    (tmp_path / "a.png").write_bytes(b"x")
    (tmp_path / "doc.txt").write_bytes(b"x")
    files, errors = collect_inputs(
        [tmp_path / "a.jpg", tmp_path / "a.png", tmp_path / "doc.txt", tmp_path / "missing"]
    )
    assert [f.path.name for f in files] == ["a.jpg"]
    assert [Path(e[0]).name for e in errors] == ["a.png", "doc.txt", "missing"]
    assert "overwrite" in errors[0][1]
    assert "not a supported" in errors[1][1]


@pytest.mark.parametrize("rel", ["../x.jpg", "/etc/x.jpg", "a/../../x.jpg"])
def test_output_names_never_leave_the_output_folder(tmp_path: Path, rel: str) -> None:
    with pytest.raises(InvalidInput, match="leave the output folder"):
        OutputPaths(tmp_path, PurePosixPath(rel))


def test_metadata_chunks_of_500_frames(tmp_path: Path) -> None:
    chunks = MetadataChunks(OutputPaths(tmp_path, PurePosixPath("v/clip.mp4")))
    for i in range(1001):
        chunks.add(i, {"id": i})
    chunks.flush()
    assert [p.name for p in chunks.written] == [
        "clip-0-499.json",
        "clip-500-999.json",
        "clip-1000-1000.json",
    ]
    second = json.loads((tmp_path / "v" / "clip-500-999.json").read_text())
    assert [f["id"] for f in second] == list(range(500, 1000))


def test_a_smaller_object_inside_a_larger_one_of_its_class_keeps_its_colour() -> None:
    """Within one class the larger boxes are drawn first; an object wholly covered by one
    drawn later shows nowhere in the instance mask, and its metadata says so."""
    det = Detections(
        xyxy=np.array(
            [
                [40, 40, 100, 90],  # small vehicle, listed first ...
                [20, 20, 200, 200],  # ... inside a large one
                [150, 150, 190, 190],  # a person fully under the face below
                [140, 140, 200, 200],  # face drawn over it
            ],
            dtype=np.float32,
        ),
        scores=np.array([0.9, 0.8, 0.7, 0.6], dtype=np.float32),
        class_ids=np.array([V, V, P, F], dtype=np.int32),
    )
    opts = AnonymizeOptions(methods=ALL, bbox=True)
    result = FrameProcessor(FixedDetector(det)).process(textured(240, 320), opts)
    ins = result.instance_mask()
    meta = result.metadata("x.png", "x.png", "")["detections"]
    for i, record in enumerate(meta):
        x1, y1, x2, y2 = record["bbox"]
        shows = (ins[y1:y2, x1:x2] == record["color"]).all(axis=2).any()
        assert shows != record.get("covered_in_mask", False), i
    assert [r.get("covered_in_mask", False) for r in meta] == [False, False, True, False]
    assert tuple(ins[60, 60]) == result.colours.colours[0]  # the small vehicle on top
