"""The detection pipeline's own logic (class mapping, thresholds, two-stage plates, tiles) on
a fake backend; the real models are exercised in test_detection.py."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import cv2
import numpy as np
import pytest
from support.fakes import FakeModel, Outputs

from obscura.backends import ImageInput, ModelFiles
from obscura.pipeline import plates
from obscura.pipeline.detect import Detector
from obscura.pipeline.settings import DetectorConfig
from obscura.types import ObjectClass
from obscura.zoo.manifest import load_manifest
from obscura.zoo.store import ModelStore

Row = tuple[int, float, float, float, float, float]  # label, score, x1, y1, x2, y2 (0..1)


def ssd_output(rows: list[Row]) -> Outputs:
    out = np.full((1, 1, len(rows) + 1, 7), -1.0, np.float32)
    for i, row in enumerate(rows):
        out[0, 0, i] = [0, *row]
    return [out]


class FakeBackend:
    name = "fake"

    def __init__(self, models: Mapping[str, FakeModel]) -> None:
        self.models = models

    def load(self, files: ModelFiles, image: ImageInput | None = None) -> FakeModel:
        # The ssd family feeds float tensors itself; the plate check takes BGR patches.
        assert image == (plates.CHECK_INPUT if files.name == "check" else None)
        return self.models[files.name]


def make_store(tmp_path: Path) -> ModelStore:
    text = ""
    for name, classes in [
        ("objects", "{ person = [1], vehicle = [2, 3] }"),
        ("plates", "{ license-plate = [1] }"),
        ("faces", "{ face = [1] }"),
    ]:
        path = tmp_path / f"{name}.xml"
        path.write_text("<net/>")
        text += f'[models.{name}]\npath = "{path}"\nfamily = "ssd"\nclasses = {classes}\n'
        text += "options = { input_size = [300, 300] }\n"
    check = tmp_path / "check.onnx"
    check.write_bytes(b"onnx")
    text += f'[models.check]\npath = "{check}"\nfamily = "plate-check"\ntask = "classify"\n'
    text += "classes = { license-plate = [0] }\n"
    return ModelStore(tmp_path / "cache", load_manifest(text))


def fake(rows: list[Row]) -> FakeModel:
    return FakeModel(lambda _: ssd_output(rows), shape=(1, 3, 300, 300))


def detector(tmp_path: Path, models: Mapping[str, FakeModel], **options: object) -> Detector:
    """A detector on fake models; crops are looked at once (no mirror) and plates away from
    vehicles need no surer score and no closer look, unless asked."""
    options.setdefault("plate_crop_flip", False)
    options.setdefault("plate_alone_score", 0.0)
    options.setdefault("plate_alone_check", False)
    options.setdefault("face_ensemble", ())
    options.setdefault("plate_check_model", None)
    config = DetectorConfig(
        face_model="faces",
        object_model="objects",
        plate_model="plates",
        segmentation_model=None,
        **options,  # type: ignore[arg-type]
    )
    return Detector(make_store(tmp_path), FakeBackend(models), config)


IMAGE = np.zeros((400, 800, 3), np.uint8)


def test_classes_are_mapped_thresholded_and_merged(tmp_path: Path) -> None:
    objects = fake([
        (1, 0.9, 0.1, 0.1, 0.2, 0.5),    # person
        (2, 0.8, 0.5, 0.5, 0.9, 0.9),    # car -> vehicle
        (3, 0.6, 0.51, 0.5, 0.9, 0.9),   # truck, same object -> merged into the car
        (1, 0.2, 0.3, 0.3, 0.4, 0.4),    # person below the 0.25 default threshold
        (7, 0.9, 0.0, 0.0, 0.1, 0.1),    # a class that maps to nothing
    ])  # fmt: skip
    det = detector(tmp_path, {"objects": objects, "plates": fake([]), "faces": fake([])})
    found = det.detect(IMAGE, {ObjectClass.PERSON, ObjectClass.VEHICLE})
    assert sorted(found.class_ids.tolist()) == [int(ObjectClass.PERSON), int(ObjectClass.VEHICLE)]
    vehicle = found[found.class_ids == ObjectClass.VEHICLE]
    np.testing.assert_allclose(vehicle.xyxy[0], [400, 200, 720, 360], atol=1)
    assert vehicle.scores[0] == pytest.approx(0.8)


def test_unrequested_classes_run_no_model(tmp_path: Path) -> None:
    models = {"objects": fake([]), "plates": fake([]), "faces": fake([(1, 0.9, 0, 0, 0.1, 0.1)])}
    found = detector(tmp_path, models).detect(IMAGE, {ObjectClass.FACE})
    assert found.class_ids.tolist() == [int(ObjectClass.FACE)]
    assert models["objects"].calls == []
    assert models["plates"].calls == []


def test_plates_run_on_vehicle_crops_and_map_back(tmp_path: Path) -> None:
    # Vehicles: two large ones and one too small to carry a plate (20 px high).
    objects = fake([
        (2, 0.9, 0.5, 0.5, 0.75, 1.0),       # 200 x 200 px at (400, 200)
        (2, 0.8, 0.0, 0.0, 0.25, 0.5),       # 200 x 200 px at (0, 0)
        (2, 0.7, 0.9, 0.0, 0.95, 0.05),      # 40 x 20 px: skipped
    ])  # fmt: skip
    # The plate model reports a plate in the middle of whatever it is given.
    plates = fake([(1, 0.6, 0.45, 0.45, 0.55, 0.55)])
    det = detector(tmp_path, {"objects": objects, "plates": plates, "faces": fake([])})
    found = det.detect(IMAGE, {ObjectClass.LICENSE_PLATE})
    assert len(plates.calls) == 1 + 2  # full frame + the two large vehicles
    assert set(found.class_ids.tolist()) == {int(ObjectClass.LICENSE_PLATE)}
    centres = sorted(((b[0] + b[2]) / 2, (b[1] + b[3]) / 2) for b in found.xyxy.tolist())
    # Full frame centre (400, 200), and the centres of the padded (and clipped) crops.
    expected = sorted([(400.0, 200.0), (500.0, 290.0), (110.0, 110.0)])
    np.testing.assert_allclose(centres, expected, atol=2)


def test_vehicle_crops_are_capped(tmp_path: Path) -> None:
    rows: list[Row] = [(2, 0.9 - i / 100, i / 10, 0.0, i / 10 + 0.1, 0.5) for i in range(9)]
    plates = fake([])
    det = detector(
        tmp_path, {"objects": fake(rows), "plates": plates, "faces": fake([])}, max_vehicle_crops=3
    )
    det.detect(IMAGE, {ObjectClass.LICENSE_PLATE})
    assert len(plates.calls) == 1 + 3


def test_face_tiles_cover_the_frame_and_merge(tmp_path: Path) -> None:
    faces = fake([(1, 0.9, 0.4, 0.4, 0.6, 0.6)])
    det = detector(
        tmp_path,
        {"objects": fake([]), "plates": fake([]), "faces": faces},
        face_tiles=True,
        tile_size=400,
        tile_overlap=0.5,
    )
    found = det.detect(np.full((400, 1000, 3), 128, np.uint8), {ObjectClass.FACE})  # not dark
    # Full frame + tiles at x = 0, 200, 400, 600 (the last one flush with the right edge).
    assert len(faces.calls) == 1 + 4
    assert len(found) == 5  # one face per view, none overlapping another


def test_bad_threshold_is_a_config_error() -> None:
    from obscura.errors import ConfigError

    with pytest.raises(ConfigError, match=r"threshold for face must be in 0\.\.1"):
        DetectorConfig(thresholds={ObjectClass.FACE: 1.5})


def test_image_must_be_bgr_uint8(tmp_path: Path) -> None:
    det = detector(tmp_path, {"objects": fake([]), "plates": fake([]), "faces": fake([])})
    with pytest.raises(ValueError, match="BGR uint8"):
        det.detect(np.zeros((10, 10), np.uint8))


def test_object_tiles_merge_per_class(tmp_path: Path) -> None:
    # Every view reports a person and a vehicle on the same spot of the view.
    objects = fake([(1, 0.9, 0.4, 0.4, 0.6, 0.6), (2, 0.8, 0.4, 0.4, 0.6, 0.6)])
    det = detector(
        tmp_path,
        {"objects": objects, "plates": fake([]), "faces": fake([])},
        object_tiles=True,
        tile_size=500,
        tile_overlap=0.0,
    )
    found = det.detect(
        np.zeros((500, 1000, 3), np.uint8), {ObjectClass.PERSON, ObjectClass.VEHICLE}
    )
    assert len(objects.calls) == 1 + 2
    # The full-frame box (400..600) overlaps neither tile's box; a person and a vehicle each.
    assert sorted(found.class_ids.tolist()).count(int(ObjectClass.PERSON)) == 3
    assert sorted(found.class_ids.tolist()).count(int(ObjectClass.VEHICLE)) == 3


def test_neighbouring_vehicles_share_a_crop(tmp_path: Path) -> None:
    objects = fake([
        (2, 0.9, 0.10, 0.2, 0.20, 0.6),   # two scooters side by side (80 x 160 px each)...
        (2, 0.8, 0.12, 0.2, 0.22, 0.6),
        (2, 0.7, 0.70, 0.2, 0.80, 0.6),   # ...and one across the street
    ])  # fmt: skip
    plates = fake([])
    det = detector(tmp_path, {"objects": objects, "plates": plates, "faces": fake([])})
    det.detect(IMAGE, {ObjectClass.LICENSE_PLATE})
    assert len(plates.calls) == 1 + 2  # full frame, the pair, the one across


def test_riders_are_searched_unless_inside_a_vehicle(tmp_path: Path) -> None:
    """A person in a frame with a vehicle may ride a motorcycle the object model missed: a
    crop of their own, unless they sit inside a searched vehicle whose crop shows them at
    half their own crop's scale or more; without a vehicle in the frame (a crowd, a room)
    persons cost nothing."""
    rider = (1, 0.9, 0.1, 0.1, 0.2, 0.6)  # a person, no vehicle found under them
    passenger = (1, 0.9, 0.62, 0.25, 0.68, 0.6)  # inside the vehicle's box, 224 px to its 384
    vehicle = (2, 0.9, 0.5, 0.1, 0.9, 0.9)
    bus = (2, 0.9, 0.05, 0.05, 0.95, 0.95)  # 800 px
    small = (1, 0.9, 0.45, 0.4, 0.5, 0.6)  # in front of the bus: 128 px of its own

    def calls(rows: list[Row], **options: object) -> int:
        plates = fake([])
        models = {"objects": fake(rows), "plates": plates, "faces": fake([])}
        detector(tmp_path, models, **options).detect(IMAGE, {ObjectClass.LICENSE_PLATE})
        return len(plates.calls)

    assert calls([rider, passenger, vehicle]) == 1 + 2  # full frame, the vehicle, the rider
    assert calls([rider, passenger]) == 1  # no vehicle: nobody rides
    assert calls([rider, passenger, vehicle], plate_crop_riders=False) == 1 + 1
    assert calls([small, bus]) == 1 + 2  # the bus's crop would shrink the rider 6x


def test_crop_plates_are_one_per_vehicle_and_plate_sized(tmp_path: Path) -> None:
    objects = fake([(2, 0.9, 0.25, 0.25, 0.75, 0.75)])  # 400 x 200 px at (200, 100)
    # In every view: a small plate, a weaker second one, and a box as wide as the view.
    plates = fake([
        (1, 0.8, 0.45, 0.70, 0.55, 0.75),
        (1, 0.5, 0.10, 0.70, 0.20, 0.75),
        (1, 0.7, 0.05, 0.05, 0.95, 0.95),
    ])  # fmt: skip
    det = detector(
        tmp_path, {"objects": objects, "plates": plates, "faces": fake([])}, plate_on_vehicles=True
    )
    full = detector(
        tmp_path,
        {"objects": objects, "plates": plates, "faces": fake([])},
        plate_on_vehicles=False,
    ).detect(IMAGE, {ObjectClass.LICENSE_PLATE})
    found = det.detect(IMAGE, {ObjectClass.LICENSE_PLATE})
    # The crop adds exactly its best small plate (the wide box is the vehicle itself, the
    # weaker one a second plate the vehicle cannot have).
    assert len(found) == len(full) + 1
    centres = (found.xyxy[:, :2] + found.xyxy[:, 2:]) / 2
    # crop: the vehicle padded by 10 %: x 160..640, y 80..320; plate at 0.5, 0.725 of it
    assert np.isclose(centres, [400, 254], atol=3).all(axis=1).any()


def test_a_plate_inside_a_better_plate_is_dropped(tmp_path: Path) -> None:
    plates = fake([
        (1, 0.9, 0.40, 0.40, 0.60, 0.60),
        (1, 0.5, 0.45, 0.45, 0.52, 0.52),  # inside the first: the same plate seen twice
        (1, 0.4, 0.05, 0.05, 0.10, 0.10),  # elsewhere
    ])  # fmt: skip
    det = detector(tmp_path, {"objects": fake([]), "plates": plates, "faces": fake([])})
    found = det.detect(IMAGE, {ObjectClass.LICENSE_PLATE})
    np.testing.assert_allclose(sorted(found.scores.tolist()), [0.4, 0.9], atol=1e-6)


def test_plate_ensemble_with_per_model_thresholds(tmp_path: Path) -> None:
    store = make_store(tmp_path)
    other = tmp_path / "other.xml"
    other.write_text("<net/>")
    text = (
        f'[models.other]\npath = "{other}"\nfamily = "ssd"\n'
        "classes = { license-plate = [1] }\noptions = { input_size = [300, 300] }\n"
    )
    store.models.update(load_manifest(text))
    main = fake([(1, 0.9, 0.1, 0.1, 0.2, 0.2)])
    second = fake([(1, 0.6, 0.5, 0.5, 0.6, 0.6), (1, 0.3, 0.7, 0.7, 0.8, 0.8)])
    config = DetectorConfig(
        face_model=None,
        object_model=None,
        plate_model="plates",
        plate_ensemble=("other",),
        model_thresholds={"other": 0.5},
        segmentation_model=None,
        plate_check_model=None,
    )
    models = {"plates": main, "other": second}
    det = Detector(store, FakeBackend(models), config)
    found = det.detect(IMAGE, {ObjectClass.LICENSE_PLATE})
    np.testing.assert_allclose(sorted(found.scores.tolist()), [0.6, 0.9], atol=1e-6)  # 0.3 < 0.5
    assert [m.name for m in det.loaded_models] == ["plates", "other"]


@pytest.mark.parametrize(
    ("plate", "expected"),
    [
        # centred in the crop: both looks agree, one box, its score kept
        ((1, 0.6, 0.45, 0.60, 0.55, 0.70), [(0.6, 400.0)]),
        # off-centre: the mirror look puts it elsewhere; both kept, each at 0.7 of its score
        ((1, 0.6, 0.10, 0.60, 0.20, 0.70), [(0.42, 232.0), (0.42, 568.0)]),
    ],
)
def test_mirrored_crops_confirm_or_discount_plates(
    tmp_path: Path, plate: Row, expected: list[tuple[float, float]]
) -> None:
    objects = fake([(2, 0.9, 0.25, 0.25, 0.75, 0.75)])  # 400 x 200 px at (200, 100)
    crop_plates = fake([plate])
    models = {"objects": objects, "plates": crop_plates, "faces": fake([])}
    det = detector(tmp_path, models, plate_crop_flip=True, plates_per_crop=0)
    search = det.plate_search
    assert search is not None
    (crop,) = search.crops(IMAGE, det.detect(IMAGE, {ObjectClass.VEHICLE}))
    assert det.plates is not None
    (found,) = search.in_crops(det.plates, [crop], dict.fromkeys(ObjectClass, 0.2))
    assert len(crop_plates.calls) == 2  # the crop and its mirror image
    # back in frame pixels: the crop is the vehicle padded by 10 %, from x = 160
    got = sorted(
        (round(float(s), 2), round(float((b[0] + b[2]) / 2 + crop.x)))
        for s, b in zip(found.scores, found.xyxy, strict=True)
    )
    assert got == [(s, round(x)) for s, x in sorted(expected)]


def test_a_plate_with_no_vehicle_or_person_around_needs_a_surer_score(tmp_path: Path) -> None:
    """A plate on a sign, a shirt or a screen has no vehicle under it: it needs
    ``plate_alone_score``; one on a vehicle or under a rider keeps the class threshold."""
    vehicle = (2, 0.9, 0.5, 0.1, 0.9, 0.9)  # x 400..720, y 40..360
    rider = (1, 0.9, 0.05, 0.1, 0.12, 0.5)  # x 40..96, y 40..200; taken lower: to 253
    plates = [
        (1, 0.4, 0.60, 0.70, 0.68, 0.75),  # on the vehicle
        (1, 0.4, 0.06, 0.55, 0.11, 0.60),  # under the rider (y 220..240)
        (1, 0.4, 0.065, 0.15, 0.105, 0.20),  # on the rider's shirt (y 60..80): alone
        (1, 0.4, 0.30, 0.10, 0.38, 0.15),  # on the wall between them
        (1, 0.6, 0.30, 0.80, 0.38, 0.85),  # on the wall, surer
    ]

    def found(rows: list[Row], **options: object) -> list[float]:
        models = {"objects": fake(rows), "plates": fake(plates), "faces": fake([])}
        # no crops: only the whole-frame look, so that each plate above is seen once
        options.setdefault("plate_alone_score", 0.5)
        det = detector(tmp_path, models, max_vehicle_crops=0, **options)
        got = det.detect(IMAGE, {ObjectClass.LICENSE_PLATE})
        return sorted(round(float(b[0])) for b in got.xyxy)

    assert found([vehicle, rider]) == [48, 240, 480]  # the wall's 0.4 one is dropped
    assert found([vehicle, rider], plate_alone_score=0.0) == [48, 52, 240, 240, 480]
    assert found([vehicle]) == [240, 480]  # no rider: their plate is alone too
    # Without the object model's view there is no context to judge by: all kept.
    assert found([], plate_on_vehicles=False) == [48, 52, 240, 240, 480]


def test_unsure_plates_need_the_checks_word(tmp_path: Path) -> None:
    """A plate the plate model scores under plate_check_below is kept only where the plate
    check gives it plate_check_score; a surer one, or a narrower one than
    plate_check_width, is kept without asking."""
    image = np.zeros((400, 800, 3), np.uint8)
    image[200:220, 100:160] = 255  # a bright plate; the check says "plate" to bright patches
    rows = [
        (1, 0.3, 0.125, 0.5, 0.2, 0.55),  # the bright plate, unsure
        (1, 0.3, 0.5, 0.5, 0.575, 0.55),  # a dark one (a tail-light), unsure
        (1, 0.8, 0.75, 0.5, 0.825, 0.55),  # a dark one, sure
    ]

    def bright(inputs: Mapping[str, np.ndarray]) -> Outputs:
        patches = inputs["patch"]
        assert patches.shape[1:] == (3, 32, 64)  # NCHW, BGR in 0..1
        return [patches.reshape(len(patches), -1).max(axis=1, keepdims=True) / 1.0]

    def found(**options: object) -> tuple[list[int], FakeModel]:
        check = FakeModel(bright, "patch", (-1, 3, 32, 64), plates.CHECK_INPUT)
        models = {"objects": fake([]), "plates": fake(rows), "faces": fake([]), "check": check}
        det = detector(tmp_path, models, max_vehicle_crops=0, **options)
        got = det.detect(image, {ObjectClass.LICENSE_PLATE})
        return sorted(round(float(b[0])) for b in got.xyxy), check

    kept, check = found(plate_check_model="check")
    assert kept == [100, 600]
    assert [c["patch"] for c in check.calls] == [(2, 3, 32, 64)]  # the unsure two, at once
    assert found(plate_check_model="check", plate_check_below=0.9)[0] == [100]
    assert found(plate_check_model="check", plate_check_below=0.2)[0] == [100, 400, 600]
    assert found()[0] == [100, 400, 600]  # no check
    # Plates narrower than plate_check_width (60 px here) keep the class threshold alone.
    assert found(plate_check_model="check", plate_check_width=61)[0] == [100, 400, 600]
    # A runtime with a session per input shape gets one shape: batches padded to full.
    check = FakeModel(bright, "patch", (-1, 3, 32, 64), plates.CHECK_INPUT)
    check.batches_freely = False
    probs = plates.PlateCheck(check)(image, np.array([[100, 200, 160, 220], [400, 200, 460, 220]]))
    assert probs.tolist() == [1.0, 0.0]
    assert [c["patch"] for c in check.calls] == [(plates.CHECK_BATCH, 3, 32, 64)]


def test_the_check_sees_a_plate_in_its_surroundings() -> None:
    """The patch is a 2:1 window at least twice the plate's width and four times its height,
    centred on it; where it leaves the frame, the frame's edge is repeated."""
    image = np.zeros((400, 800, 3), np.uint8)
    image[190:210, 380:420] = 200  # a 40 x 20 plate: the window is 80 x 40 around it
    patch = plates.check_patch(image, (380, 190, 420, 210))
    assert patch.shape == (32, 64, 3)
    lit = np.argwhere(patch[..., 0] > 100)
    assert lit.min(axis=0).tolist() == [8, 16]
    assert lit.max(axis=0).tolist() == [23, 47]
    # A flat plate (60 x 10): the window is 4 x its height tall, so 80 x 40 again.
    flat = plates.check_patch(image, (370, 195, 430, 205))
    assert flat.shape == (32, 64, 3)
    # At the frame's corner: the edge pixels are repeated, never black fill.
    image[:] = 90
    corner = plates.check_patch(image, (0, 0, 20, 10))
    assert corner.shape == (32, 64, 3)
    assert int(corner.min()) == 90
    # Wholly outside the frame: nothing of it to see.
    assert not plates.check_patch(image, (900, 500, 940, 520)).any()


def bright_boxes(widest: float = 1.0) -> FakeModel:
    """A plate model that boxes each bright rectangle of whatever it is given that is at most
    ``widest`` of the view's width: it sees a real plate at any scale (1.0), or a sign only
    from afar (a small share)."""

    def produce(inputs: Mapping[str, np.ndarray]) -> Outputs:
        plane = next(iter(inputs.values()))[0, 0]
        if plane.max() == plane.min():
            return ssd_output([])
        lit = (plane > (plane.min() + plane.max()) / 2).astype(np.uint8)
        count, _, stats, _ = cv2.connectedComponentsWithStats(lit)
        h, w = lit.shape
        rows: list[Row] = []
        for x, y, bw, bh, _ in stats[1:count].tolist():
            if bw / w <= widest:
                rows.append((1, 0.6, x / w, y / h, (x + bw) / w, (y + bh) / h))
        return ssd_output(rows)

    return FakeModel(produce, shape=(1, 3, 300, 300))


def test_a_plate_alone_needs_a_closer_look_to_see_it_again(tmp_path: Path) -> None:
    """With plate_alone_check, a plate found alone (at plate_alone_score) is looked at again
    closer, as it is and mirrored: kept where both looks box it again, dropped where the
    closer view no longer looks like a plate (a sign, a page)."""
    image = np.zeros((400, 800, 3), np.uint8)
    image[180:220, 360:440] = 255  # 80 x 40, on no vehicle

    def found(plates: FakeModel, **options: object) -> list[list[int]]:
        models = {"objects": fake([]), "plates": plates, "faces": fake([])}
        options.setdefault("plate_alone_check", True)
        det = detector(tmp_path, models, plate_alone_score=0.5, **options)
        got = det.detect(image, {ObjectClass.LICENSE_PLATE})
        return [[round(float(v)) for v in b] for b in got.xyxy]

    plate = bright_boxes()
    assert found(plate) == [[360, 180, 440, 220]]
    assert len(plate.calls) == 1 + 2  # the whole frame, then the closer look and its mirror
    # Seen only from afar (at most a fifth of the view; up close it is two fifths): dropped.
    sign = bright_boxes(widest=0.2)
    assert found(sign) == []
    assert len(sign.calls) == 1 + 2
    assert found(bright_boxes(widest=0.2), plate_alone_check=False) == [[360, 180, 440, 220]]
    # Under 24 px wide, a plate is too small for a closer look: plate_alone_score alone.
    image[:] = 0
    image[195:205, 390:410] = 255
    small = bright_boxes(widest=0.05)
    np.testing.assert_allclose(found(small), [[390, 195, 410, 205]], atol=2)
    assert len(small.calls) == 1


def test_tiles_keep_only_plates_that_lie_whole_in_one(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A large frame's tiles keep the plates up to a quarter of a tile: a wider box may be
    cut by every tile edge (a page, a sign); it is the whole-frame look's to judge."""
    wide = np.zeros((1000, 3000, 3), np.uint8)  # tiles of 1280 at x 0, 960 and 1720
    wide[400:700, 700:2300] = 255  # 1600 px wide: cut by every tile
    wide[100:140, 2700:2800] = 255  # 100 x 40: whole in the last tile

    def found() -> list[list[int]]:
        # Half a view at most: the whole frame and the middle tile do not box the wide one,
        # the outer tiles box the pieces their edges cut from it (580 px of 1280).
        models = {"objects": fake([]), "plates": bright_boxes(0.5), "faces": fake([])}
        det = detector(tmp_path, models, large_frame_side=2560)
        got = det.detect(wide, {ObjectClass.LICENSE_PLATE})
        return sorted([round(float(v) / 10) * 10 for v in b] for b in got.xyxy)

    assert found() == [[2700, 100, 2800, 140]]
    monkeypatch.setattr(plates, "TILE_PLATE_SHARE", 1.0)
    assert found() == [[700, 400, 1280, 700], [1720, 400, 2300, 700], [2700, 100, 2800, 140]]


def test_large_frames_are_searched_in_tiles_too(tmp_path: Path) -> None:
    """Over large_frame_side, the object model and the plate model's whole look also run on
    tiles of large_tile_size (a vehicle keeps its 720p pixels), and the crop cap grows with
    the frame's area."""
    wide = np.zeros((1000, 3000, 3), np.uint8)  # tiles of 1280 at x 0, 960 and 1720

    def calls(image: np.ndarray, rows: list[Row], **options: object) -> tuple[int, int]:
        objects, plates = fake(rows), fake([])
        models = {"objects": objects, "plates": plates, "faces": fake([])}
        options.setdefault("large_frame_side", 2560)
        detector(tmp_path, models, **options).detect(image, {ObjectClass.LICENSE_PLATE})
        return len(objects.calls), len(plates.calls)

    assert calls(wide, []) == (1 + 3, 1 + 3)
    assert calls(wide, [], large_frame_side=0) == (1, 1)
    assert calls(IMAGE, []) == (1, 1)  # 800x400: one look each
    # A vehicle in every view: 4 views, 4 crops; with a cap of 1 per 1280x720 of frame, the
    # 3000x1000 frame (3.3 of them) keeps 4.
    vehicle = (2, 0.9, 0.1, 0.1, 0.3, 0.5)
    assert calls(wide, [vehicle]) == (1 + 3, 1 + 3 + 4)
    assert calls(wide, [vehicle], max_vehicle_crops=1) == (1 + 3, 1 + 3 + 4)
    assert calls(IMAGE, [vehicle], max_vehicle_crops=1) == (1, 1 + 1)
