"""YOLOv8 checkpoints converted without torch (:mod:`obscura.zoo.yolov8_graph`) against the
numbers ultralytics / torch give for the same checkpoints and inputs.

The references in ``tests/data/yolov8/`` were recorded by ``tools/yolov8_reference.py`` (torch
and ultralytics in a scratch virtualenv; they are not dependencies of the project), in float32:

- ``pyplatex_reference.npz``: the pyplatex plate detector (the store's ``pyplatex-plates``) on
  a seeded random input and on the test photo letterboxed as the ``yolov8`` adapter does it;
- ``tiny_detect.pt`` / ``tiny_seg.pt``: tiny random YOLOv8 detection (3 classes) and
  segmentation (2 classes, 32 masks) checkpoints of our own, with their outputs on a seeded
  random input (both outputs of the segmentation model).

The conversion is compiled with ``INFERENCE_PRECISION_HINT`` f32 and must match to
``BOX_ATOL`` = 2e-3 input pixels (measured: 2.4e-4 px for pyplatex, 5e-5 px for the tiny models)
and ``SCORE_ATOL`` = 1e-4 for scores, mask coefficients and prototypes (measured: 1.2e-6 and
2e-7), and rank the same candidates on top. The IR the store saves has FP16 weights (its batch
norms folded in float32 first), which moves pyplatex's boxes by up to ~0.5 px and its scores by
up to ~1e-3: that IR is held to ``STORED_BOX_ATOL`` / ``STORED_SCORE_ATOL`` and the same top
detections.

The ONNX forms (:mod:`obscura.zoo.onnx_export`, what ONNX Runtime and its CUDA provider run)
are held to the same tolerances, run with ONNX Runtime on the CPU at sizes other than the one
they were recorded at too.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import onnxruntime as ort
import openvino as ov
import pytest
from numpy.typing import NDArray
from support import DATA
from support.images import read_image

from obscura.errors import ModelStoreError
from obscura.models.base import Letterbox, letterbox
from obscura.models.yolov8 import PAD_VALUE, YOLOv8Adapter, YOLOv8Config
from obscura.zoo.onnx_export import to_onnx
from obscura.zoo.store import ModelStore
from obscura.zoo.yolov8_graph import convert_checkpoint

YOLO_DATA = DATA / "yolov8"
BOX_ATOL = 2e-3  # input pixels
SCORE_ATOL = 1e-4
STORED_BOX_ATOL = 1.0  # the store's IR: FP16 weights
STORED_SCORE_ATOL = 2e-3
F32 = NDArray[np.float32]


def reference(name: str) -> dict[str, Any]:
    with np.load(YOLO_DATA / f"{name}_reference.npz") as npz:
        return {key: npz[key] for key in npz.files}


def random_input(seed: int, width: int, height: int) -> F32:
    """The recorded inputs: ``np.random.default_rng(seed).random(shape, np.float32)``."""
    return np.random.default_rng(seed).random((1, 3, height, width), dtype=np.float32)


def photo_input(data_dir: Path, expected_sha256: str) -> F32:
    """The test photo as the ``yolov8`` adapter feeds it (letterboxed, RGB, 0..1)."""
    image = read_image(data_dir / "opencv_licenseplate_motion.jpg", cv2.IMREAD_COLOR)
    canvas, _ = letterbox(image, (640, 640), center=True, pad_value=PAD_VALUE)
    # The same pixels the reference was computed on (else a letterbox change would show up
    # as a conversion error).
    assert hashlib.sha256(canvas.tobytes()).hexdigest() == expected_sha256
    rgb = canvas[:, :, ::-1].astype(np.float32) / np.float32(255.0)
    return np.ascontiguousarray(rgb.transpose(2, 0, 1)[None])


def infer_f32(model: ov.Model | Path, x: F32) -> dict[str, F32]:
    """The model's outputs by name, compiled on CPU in float32."""
    core = ov.Core()
    compiled = core.compile_model(
        model if isinstance(model, ov.Model) else core.read_model(str(model)),
        "CPU",
        {"INFERENCE_PRECISION_HINT": "f32"},
    )
    result = compiled(x)
    return {out.get_any_name(): np.asarray(result[out]) for out in compiled.outputs}


def infer_onnx(model: ov.Model | Path, x: F32) -> dict[str, F32]:
    """The outputs by name of the model's ONNX form (``model`` converted here, or a stored
    ``.onnx`` file) on ONNX Runtime's CPU provider."""
    source = model if isinstance(model, Path) else to_onnx(model).SerializeToString()
    session = ort.InferenceSession(source, providers=["CPUExecutionProvider"])
    outputs = session.run(None, {session.get_inputs()[0].name: x})
    return {o.name: np.asarray(v) for o, v in zip(session.get_outputs(), outputs, strict=True)}


def best_scores(output: F32, num_classes: int) -> F32:
    return np.asarray(output[0, 4 : 4 + num_classes].max(axis=0), dtype=np.float32)


def assert_same_top(
    actual: F32, expected: F32, num_classes: int, atol: float, count: int = 10
) -> None:
    """The same best candidates: every anchor clearly (by more than 2 * ``atol``) among the
    ``count`` best of the reference is among the best of the conversion, and the best one is
    the same unless it is a tie (a random model has many)."""
    got, want = best_scores(actual, num_classes), best_scores(expected, num_classes)
    top_want = np.argsort(-want, kind="stable")[:count]
    top_got = np.argsort(-got, kind="stable")[:count]
    cut = want[top_want[-1]]
    sure = {int(i) for i in top_want if want[i] > cut + 2 * atol}
    assert sure <= {int(i) for i in top_got}, (top_want, top_got)
    if want[top_want[0]] > want[top_want[1]] + 2 * atol:
        assert top_got[0] == top_want[0]
    np.testing.assert_allclose(got[top_got], want[top_want], rtol=0, atol=atol)


def assert_detections_match(
    actual: F32, expected: F32, num_classes: int, box_atol: float, score_atol: float
) -> tuple[float, float]:
    """Boxes and the rest within tolerance, the same best candidates; the differences."""
    assert actual.shape == expected.shape
    box = float(np.abs(actual[:, :4] - expected[:, :4]).max())
    rest = float(np.abs(actual[:, 4:] - expected[:, 4:]).max())
    assert box <= box_atol, f"boxes differ by {box} px"
    assert rest <= score_atol, f"scores / coefficients differ by {rest}"
    assert_same_top(actual, expected, num_classes, score_atol)
    return box, rest


def decoded(output: F32, num_classes: int, threshold: float) -> tuple[F32, F32, F32]:
    """What the ``yolov8`` adapter makes of an output (boxes in input pixels: identity
    letterbox), after thresholding and NMS."""
    adapter = YOLOv8Adapter.__new__(YOLOv8Adapter)  # postprocess needs only the config
    adapter.config = YOLOv8Config(score_threshold=threshold, num_classes=num_classes)
    meta = Letterbox(1.0, 0, 0, 640, 640, 640, 640)
    found = adapter.postprocess([output], meta)
    return found.xyxy, found.scores, found.class_ids.astype(np.float32)


# --- the pyplatex plate detector (the store's `pyplatex-plates`) -------------------------------


@pytest.fixture(scope="module")
def pyplatex_checkpoint(model_store: ModelStore) -> Path:
    """The checkpoint the store verified (checksums in ready.json) when it fetched the model."""
    files = model_store.files("pyplatex-plates")  # a clear error if not fetched
    assert files.ir_xml is not None
    path = model_store.model_dir(model_store.spec("pyplatex-plates")) / "source"
    return path / "plate_detector_model_1.pt"


@pytest.mark.models
@pytest.mark.parametrize(
    ("static", "infer"),
    [(True, infer_f32), (False, infer_f32), (False, infer_onnx)],
    ids=["static", "dynamic", "dynamic-onnx"],
)
@pytest.mark.parametrize("case", ["random", "photo"])
def test_pyplatex_matches_ultralytics(
    pyplatex_checkpoint: Path, data_dir: Path, case: str, static: bool, infer: Any
) -> None:
    """Converted for 640x640, or for any size (height and width dynamic, the anchors computed
    in the graph: what the store saves), and run at 640x640 with OpenVINO, or as ONNX with
    ONNX Runtime."""
    ref = reference("pyplatex")
    x = (
        random_input(int(ref["seed"]), 640, 640)
        if case == "random"
        else photo_input(data_dir, str(ref["photo_canvas_sha256"]))
    )
    model = convert_checkpoint(pyplatex_checkpoint, (640, 640) if static else None, "yolov8")
    out = infer(model, x)
    assert list(out) == ["output0"]
    expected = ref[case]
    assert_detections_match(out["output0"], expected, 1, BOX_ATOL, SCORE_ATOL)
    # The adapter keeps the same detections (low threshold: the random input scores ~0.02).
    mine, theirs = decoded(out["output0"], 1, 0.01), decoded(expected, 1, 0.01)
    assert len(theirs[0]) >= 1
    np.testing.assert_array_equal(mine[2], theirs[2])
    np.testing.assert_allclose(mine[0], theirs[0], atol=BOX_ATOL)
    np.testing.assert_allclose(mine[1], theirs[1], atol=SCORE_ATOL)
    if case == "photo":  # the plate: centre (291, 256) in the image, pad_y 63, scale 16/15
        np.testing.assert_allclose(expected[0, :2, expected[0, 4].argmax()], [309, 334], atol=3)


@pytest.mark.models
@pytest.mark.parametrize("form", ["ir", "onnx"])
def test_the_stored_pyplatex_matches_ultralytics(
    model_store: ModelStore, data_dir: Path, form: str
) -> None:
    """The files `obscura models fetch` saved: the IR (FP16 weights) run in float32 by
    OpenVINO, and the ONNX form (float32 weights: the tight tolerances) by ONNX Runtime."""
    ref = reference("pyplatex")
    files = model_store.files("pyplatex-plates")
    path = files.ir_xml if form == "ir" else files.onnx
    assert path is not None
    x = photo_input(data_dir, str(ref["photo_canvas_sha256"]))
    out = (infer_f32 if form == "ir" else infer_onnx)(path, x)
    assert list(out) == ["output0"]
    box, score = (STORED_BOX_ATOL, STORED_SCORE_ATOL) if form == "ir" else (BOX_ATOL, SCORE_ATOL)
    assert_detections_match(out["output0"], ref["photo"], 1, box, score)


@pytest.mark.models
def test_the_stored_pyplatex_onnx_takes_any_size(model_store: ModelStore) -> None:
    """Height and width are dynamic in the ONNX form: at other multiples of 32 it agrees with
    the OpenVINO conversion (anchors: 8400 at 640x640, 5040 at 640x384, 1260 at 320x192)."""
    files = model_store.files("pyplatex-plates")
    assert files.onnx is not None
    model = convert_checkpoint(
        model_store.model_dir(model_store.spec("pyplatex-plates"))
        / "source"
        / "plate_detector_model_1.pt",
        None,
        "yolov8",
    )
    for width, height in [(640, 384), (320, 192)]:
        x = random_input(1, width, height)
        got, want = infer_onnx(files.onnx, x)["output0"], infer_f32(model, x)["output0"]
        assert got.shape == (1, 5, sum((width // s) * (height // s) for s in (8, 16, 32)))
        assert_detections_match(got, want, 1, BOX_ATOL, SCORE_ATOL)


# --- tiny random checkpoints of our own: several classes, and the segmentation head -----------


@pytest.mark.parametrize(
    ("static", "infer"),
    [(True, infer_f32), (False, infer_f32), (False, infer_onnx)],
    ids=["static", "dynamic", "dynamic-onnx"],
)
@pytest.mark.parametrize(
    ("name", "family"), [("tiny_detect", "yolov8"), ("tiny_seg", "yolov8-seg")]
)
def test_tiny_checkpoints_match_ultralytics(
    name: str, family: str, static: bool, infer: Any
) -> None:
    ref = reference(name)
    width, height = (int(v) for v in ref["input_size"])
    size = (width, height) if static else None
    model = convert_checkpoint(YOLO_DATA / f"{name}.pt", size, family)
    out = infer(model, random_input(int(ref["seed"]), width, height))
    expected = [ref[k] for k in sorted(k for k in ref if k.startswith("output"))]
    assert list(out) == [f"output{i}" for i in range(len(expected))]
    num_classes = 3 if name == "tiny_detect" else 2
    assert_detections_match(out["output0"], expected[0], num_classes, BOX_ATOL, SCORE_ATOL)
    if family == "yolov8-seg":  # [1, 4 + 2 + 32, anchors] and prototypes [1, 32, H/4, W/4]
        anchors = sum((width // s) * (height // s) for s in (8, 16, 32))
        assert expected[0].shape == (1, 4 + 2 + 32, anchors)
        assert out["output1"].shape == expected[1].shape == (1, 32, height // 4, width // 4)
        np.testing.assert_allclose(out["output1"], expected[1], rtol=0, atol=SCORE_ATOL)


@pytest.mark.parametrize(("name", "wrong"), [("tiny_detect", "yolov8-seg"), ("tiny_seg", "yolov8")])
def test_a_checkpoint_of_the_other_task_is_named(name: str, wrong: str) -> None:
    with pytest.raises(ModelStoreError, match=f"read as family .*, not {wrong}$"):
        convert_checkpoint(YOLO_DATA / f"{name}.pt", (128, 96), wrong)


def test_a_training_checkpoint_converts_its_ema_weights(monkeypatch: pytest.MonkeyPatch) -> None:
    """A training `last.pt` holds its weights as `ema` (`model` None): used as ultralytics
    does."""
    from obscura.zoo import torch_pickle

    saved = torch_pickle.load_checkpoint(YOLO_DATA / "tiny_detect.pt")
    training = {**saved, "model": None, "ema": saved["model"]}
    monkeypatch.setattr(torch_pickle, "load_checkpoint", lambda path: training)
    ref = reference("tiny_detect")
    width, height = (int(v) for v in ref["input_size"])
    model = convert_checkpoint(YOLO_DATA / "tiny_detect.pt", (width, height), "yolov8")
    out = infer_f32(model, random_input(int(ref["seed"]), width, height))
    assert_detections_match(out["output0"], ref["output0"], 3, BOX_ATOL, SCORE_ATOL)


def test_bring_your_own_yolov8_seg_checkpoint(tmp_path: Path) -> None:
    """A `[models]` entry with a segmentation `.pt` and family yolov8-seg: the store converts
    it (output0 detections with mask coefficients, output1 prototypes), the IR it saves
    matches ultralytics, and the pipeline's detector runs it and returns masks."""
    from obscura.backends import BackendConfig, create_backend
    from obscura.config import parse_config
    from obscura.pipeline.detect import Detector
    from obscura.types import ObjectClass

    ref = reference("tiny_seg")
    width, height = (int(v) for v in ref["input_size"])
    options = {"input_size": [width, height], "num_classes": 2}
    config = parse_config({
        "store": {"cache_dir": str(tmp_path / "cache")},
        "models": {"my-seg": {"path": str(YOLO_DATA / "tiny_seg.pt"), "family": "yolov8-seg",
                              "classes": {"license-plate": [0, 1]}, "options": options}},
        "detector": {"face_model": "", "object_model": "", "plate_model": "my-seg",
                     "person_masks": False},
    })  # fmt: skip
    store = config.store()
    files = store.files("my-seg")
    assert files.ir_xml is not None
    assert files.onnx is not None  # its ONNX form, for ONNX Runtime, beside the IR
    x = random_input(int(ref["seed"]), width, height)
    for name, value in infer_onnx(files.onnx, x).items():
        np.testing.assert_allclose(value, ref[name], rtol=0, atol=SCORE_ATOL)
    out = infer_f32(files.ir_xml, x)
    assert list(out) == ["output0", "output1"]
    # FP16 weights: the tolerances of the store's IR (measured: 3e-3 px, 1.2e-4, 2e-4).
    assert_detections_match(out["output0"], ref["output0"], 2, STORED_BOX_ATOL, STORED_SCORE_ATOL)
    np.testing.assert_allclose(out["output1"], ref["output1"], rtol=0, atol=STORED_SCORE_ATOL)

    detector = Detector(store, create_backend(BackendConfig(precision="f32")), config.detector)
    rng = np.random.default_rng(0)
    image = rng.integers(0, 256, (192, 256, 3), dtype=np.uint8)
    found = detector.detect(image, [ObjectClass.LICENSE_PLATE])
    assert len(found) >= 1  # random weights: scores spread over 0.07..0.75
    assert len(found.masks) == len(found)
