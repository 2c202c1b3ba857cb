"""The bring-your-own-weights families (ssd, yolov8, yolov8-seg, ssd-tflite) decoded from
small OpenVINO graphs whose outputs are chosen constants, run through the real backend."""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

import numpy as np
import openvino as ov
import openvino.opset16 as ops
import pytest
from numpy.typing import NDArray
from support.fakes import FakeModel

from obscura.backends import BackendConfig, ImageInput, InferenceModel, ModelFiles
from obscura.backends.openvino import OpenVINOBackend
from obscura.errors import ConfigError
from obscura.models.base import letterbox
from obscura.models.prep import image_tensor
from obscura.models.registry import adapter_class
from obscura.models.ssd import SSDAdapter, SSDConfig
from obscura.models.ssd_tflite import SSDTFLiteAdapter, SSDTFLiteConfig
from obscura.models.yolov8 import (
    YOLOv8Adapter,
    YOLOv8Config,
    YOLOv8SegAdapter,
    YOLOv8SegConfig,
)
from obscura.types import Detections, ImageArray

F32 = NDArray[np.float32]
ModelFactory = Callable[..., InferenceModel]
YOLO_INPUT = ImageInput(rgb=True, scale=(255.0, 255.0, 255.0))


@pytest.fixture
def const_model(tmp_path: Path) -> ModelFactory:
    """An IR model whose outputs are the given constants plus 0 * sum(input), saved to disk
    and loaded through the OpenVINO backend."""

    def build(
        input_shape: Sequence[int], outputs: Sequence[F32], image: ImageInput | None = None
    ) -> InferenceModel:
        param = ops.parameter(list(input_shape), np.float32, name="image")
        axes = ops.constant(np.arange(len(input_shape), dtype=np.int64))
        zero = ops.multiply(ops.reduce_sum(param, axes, keep_dims=False), np.float32(0.0))
        results = [ops.add(ops.constant(np.asarray(o, np.float32)), zero) for o in outputs]
        path = tmp_path / f"const{len(list(tmp_path.iterdir()))}.xml"
        ov.save_model(ov.Model(results, [param], "const"), str(path), compress_to_fp16=False)
        files = ModelFiles(name="const", ir_xml=path)
        return OpenVINOBackend(BackendConfig(precision="f32")).load(files, image)

    return build


def blank(width: int, height: int) -> ImageArray:
    return np.full((height, width, 3), 100, dtype=np.uint8)


def assert_detections(
    det: Detections, boxes: Sequence[Sequence[float]], scores: Sequence[float], classes: list[int]
) -> None:
    assert det.class_ids.tolist() == classes
    np.testing.assert_allclose(det.scores, scores, atol=1e-4)
    np.testing.assert_allclose(det.xyxy, np.asarray(boxes, np.float32), atol=1.0)


def test_families_are_registered() -> None:
    assert adapter_class("ssd") is SSDAdapter
    assert adapter_class("yolov8") is YOLOv8Adapter
    assert adapter_class("yolov8-seg") is YOLOv8SegAdapter
    assert adapter_class("ssd-tflite") is SSDTFLiteAdapter


# --- ssd: DetectionOutput [1, 1, N, 7] --------------------------------------------------------

SSD_ROWS = [
    [0, 1, 0.90, 0.10, 0.20, 0.50, 0.60],
    [0, 1, 0.80, 0.11, 0.21, 0.50, 0.60],  # duplicate of the first: suppressed
    [0, 2, 0.70, 0.10, 0.20, 0.50, 0.60],  # same box, other class: kept
    [0, 1, 0.20, 0.60, 0.60, 0.90, 0.90],  # below the threshold
    [-1, 0, 0, 0, 0, 0, 0],  # end of the list
    [0, 3, 0.99, 0.00, 0.00, 0.50, 0.50],  # after the end: ignored
]


@pytest.mark.parametrize(
    ("resize", "image_wh", "expected_box"),
    [
        # Stretch 450x600 into 300x200: x * 450, y * 600.
        ("stretch", (450, 600), [45.0, 120.0, 225.0, 360.0]),
        # Letterbox 300x400 into 300x200: scale 0.5, no padding: x * 600, y * 400.
        ("letterbox", (300, 400), [60.0, 80.0, 300.0, 240.0]),
    ],
)
def test_ssd_detection_output(
    const_model: ModelFactory, resize: str, image_wh: tuple[int, int], expected_box: list[float]
) -> None:
    rows = np.asarray(SSD_ROWS, np.float32)[None, None]
    model = const_model([1, 3, 200, 300], [rows])
    config = SSDConfig.from_mapping({"input_size": [300, 200], "resize": resize})
    det = SSDAdapter(model, config).detect(blank(*image_wh))
    assert_detections(det, [expected_box, expected_box], [0.9, 0.7], [1, 2])
    assert det.masks == ()


def test_ssd_rejects_a_wrong_input_size(const_model: ModelFactory) -> None:
    model = const_model([1, 3, 200, 300], [np.zeros((1, 1, 2, 7), np.float32)])
    with pytest.raises(ConfigError, match=r"takes 300x200 inputs.*input_size = \[300, 200\]"):
        SSDAdapter(model, SSDConfig(input_size=(300, 300)))


def test_ssd_config_names_bad_values() -> None:
    with pytest.raises(ConfigError, match="layout must be bgr or rgb"):
        SSDConfig.from_mapping({"layout": "rgba"})
    with pytest.raises(ConfigError, match="resize must be stretch or letterbox"):
        SSDConfig.from_mapping({"resize": "crop"})


def test_image_tensor_order_and_normalisation() -> None:
    image = np.zeros((2, 3, 3), np.uint8)
    image[..., 0], image[..., 1], image[..., 2] = 10, 20, 30  # B, G, R
    bgr = image_tensor(image, order="bgr", mean=(0, 0, 0), scale=(1, 1, 1))
    assert bgr.shape == (1, 3, 2, 3)
    assert bgr[0, :, 0, 0].tolist() == [10, 20, 30]
    half = (127.5, 127.5, 127.5)
    rgb = image_tensor(image, order="rgb", mean=half, scale=half, channels_last=True)
    assert rgb.shape == (1, 2, 3, 3)
    np.testing.assert_allclose(rgb[0, 0, 0], np.array([30, 20, 10]) / 127.5 - 1, rtol=1e-6)


# --- yolov8: [1, 4 + C, N] ---------------------------------------------------------------------

# Input 64x64, image 128x96: letterbox scale 0.5, 64x48 centred, pad_y 8.
# Image coordinates: x = 2 * x_in, y = 2 * (y_in - 8).
YOLO_ROWS = [
    # cx, cy, w, h, class 0, class 1, class 2
    [20, 30, 16, 20, 0.0, 0.9, 0.1],  # A, class 1
    [21, 30, 16, 20, 0.0, 0.8, 0.0],  # A shifted by 1 px: suppressed
    [20, 30, 16, 20, 0.0, 0.0, 0.7],  # A, class 2: kept
    [48, 40, 10, 8, 0.6, 0.0, 0.0],  # B, class 0
    [40, 40, 10, 10, 0.1, 0.1, 0.1],  # below the threshold
]
YOLO_BOX_A = [24.0, 24.0, 56.0, 64.0]
YOLO_BOX_B = [86.0, 56.0, 106.0, 72.0]


def yolo_candidates(rows: list[list[float]], count: int) -> F32:
    """[count, F] candidate rows, padded with zero rows (score 0)."""
    out = np.zeros((count, len(rows[0])), np.float32)
    out[: len(rows)] = rows
    return out


@pytest.mark.parametrize("transposed", [False, True])
@pytest.mark.parametrize("num_classes", [0, 3])
def test_yolov8_decodes_both_layouts(
    const_model: ModelFactory, transposed: bool, num_classes: int
) -> None:
    rows = yolo_candidates(YOLO_ROWS, 12)  # N = 12 > 4 + C: the layout can be inferred
    output = rows[None] if transposed else rows.T[None]
    model = const_model([1, 3, 64, 64], [np.ascontiguousarray(output)], YOLO_INPUT)
    config = YOLOv8Config(input_size=(64, 64), score_threshold=0.25, num_classes=num_classes)
    det = YOLOv8Adapter(model, config).detect(blank(128, 96))
    assert_detections(det, [YOLO_BOX_A, YOLO_BOX_A, YOLO_BOX_B], [0.9, 0.7, 0.6], [1, 2, 0])


def test_yolov8_threshold_filters(const_model: ModelFactory) -> None:
    output = yolo_candidates(YOLO_ROWS, 12).T[None]
    model = const_model([1, 3, 64, 64], [np.ascontiguousarray(output)], YOLO_INPUT)
    det = YOLOv8Adapter(model, YOLOv8Config(input_size=(64, 64), score_threshold=0.75)).detect(
        blank(128, 96)
    )
    assert_detections(det, [YOLO_BOX_A], [0.9], [1])


def test_yolov8_names_a_wrong_class_count(const_model: ModelFactory) -> None:
    output = yolo_candidates(YOLO_ROWS, 12).T[None]
    model = const_model([1, 3, 64, 64], [np.ascontiguousarray(output)], YOLO_INPUT)
    adapter = YOLOv8Adapter(model, YOLOv8Config(input_size=(64, 64), num_classes=80))
    with pytest.raises(ValueError, match=r"4 \+ 80 classes = 84"):
        adapter.detect(blank(128, 96))


def test_yolov8_input_is_centred_grey_letterbox(const_model: ModelFactory) -> None:
    model = const_model([1, 3, 64, 64], [np.zeros((1, 7, 12), np.float32)], YOLO_INPUT)
    adapter = YOLOv8Adapter(model, YOLOv8Config(input_size=(64, 64)))
    inputs, meta = adapter.preprocess(blank(128, 96))
    assert (meta.scale, meta.pad_x, meta.pad_y) == (0.5, 0, 8)
    assert model.image_input is not None
    tensor = model.image_input.to_tensor(inputs[model.inputs[0].name])
    np.testing.assert_allclose(tensor[0, :, 0, 0], 114 / 255, rtol=1e-6)
    np.testing.assert_allclose(tensor[0, :, 32, 32], 100 / 255, rtol=1e-6)


def brightness_boxes(inputs: Mapping[str, F32]) -> list[F32]:
    """A yolov8 output ``[N, 5, 1]`` with one box per image of the batch, placed and scored
    by that image's mean brightness: a batch decoded into the wrong images shows."""
    (tensor,) = inputs.values()
    mean = tensor.mean(axis=(1, 2, 3))
    rows = np.stack(
        [mean * 100 + 10, mean * 50 + 10, np.full_like(mean, 8), np.full_like(mean, 6), mean]
    )
    return [rows.transpose(1, 0)[:, :, None].astype(np.float32)]


@pytest.mark.parametrize(
    ("batch", "free", "calls"),
    [
        ((-1, 3, -1, -1), True, [2, 1, 2]),
        ((1, 3, -1, -1), True, [1] * 5),
        ((-1, 3, -1, -1), False, [1] * 5),
    ],
)
def test_yolov8_runs_images_of_one_shape_as_one_batch(
    batch: tuple[int, ...], free: bool, calls: list[int]
) -> None:
    """Images whose inputs have the same shape run together (up to ``most``) where the model
    takes any batch size, and each gets exactly what it gets alone; a model with a fixed batch
    of 1, or on a runtime for which a new batch size is a costly new shape, runs them one by
    one."""
    model = FakeModel(brightness_boxes, "images", batch, YOLO_INPUT)
    model.batches_freely = free
    config = YOLOv8Config(input_size=(64, 64), fit_aspect=True, num_classes=1, score_threshold=0.05)
    adapter = YOLOv8Adapter(model, config)
    images = [np.full((h, w, 3), v, np.uint8) for v, (w, h) in zip(
        (40, 90, 140, 190, 240), [(64, 32), (64, 32), (64, 32), (32, 64), (32, 64)], strict=True
    )]  # fmt: skip
    batched = adapter.detect_many(images, 2)
    assert [shape["images"][0] for shape in model.calls] == calls
    model.calls.clear()
    alone = [adapter.detect(image) for image in images]
    assert len(model.calls) == 5
    for got, want in zip(batched, alone, strict=True):
        assert len(got) == 1
        np.testing.assert_array_equal(got.xyxy, want.xyxy)
        np.testing.assert_array_equal(got.scores, want.scores)
    assert len({float(d.scores[0]) for d in batched}) == 5  # each image its own box


# --- yolov8-seg: [1, 4 + C + M, N] and prototypes [1, M, H/4, W/4] ---------------------------


def seg_prototypes() -> F32:
    """Two 16x16 prototypes (stride 4 on the 64x64 input), +-10 logits.

    With the letterbox above, prototype cell (row r, column c) covers image pixels
    x in [8c, 8c + 8) and y in [8(r - 2), 8(r - 2) + 8).
    """
    protos = np.full((1, 2, 16, 16), -10.0, np.float32)
    protos[0, 0, 4:8, 4:8] = 10.0  # image x [32, 64), y [16, 48)
    protos[0, 1, 8:12, 8:16] = 10.0  # image x [64, 128), y [48, 80)
    return protos


def input_box(x1: float, y1: float, x2: float, y2: float) -> list[float]:
    """An image-pixel box as (cx, cy, w, h) on the 64x64 input (scale 0.5, pad_y 8)."""
    a, b, c, d = x1 / 2, y1 / 2 + 8, x2 / 2, y2 / 2 + 8
    return [(a + c) / 2, (b + d) / 2, c - a, d - b]


SEG_BOX_0 = (20.5, 10.25, 60.75, 40.5)
SEG_BOX_1 = (70.0, 40.0, 128.0, 96.0)
SEG_ROWS = [
    # box, class 0, class 1, coefficient 0, coefficient 1
    [*input_box(*SEG_BOX_0), 0.9, 0.0, 1.0, 0.0],
    [*input_box(*SEG_BOX_1), 0.0, 0.8, 0.0, 1.0],
    [*input_box(21, 11, 60, 40), 0.5, 0.0, 0.0, 1.0],  # duplicate of box 0: suppressed
    [*input_box(0, 0, 20, 20), 0.1, 0.0, 1.0, 0.0],  # below the threshold
]


def expected_mask(prototype: int, region: tuple[int, int, int, int]) -> NDArray[np.bool_]:
    """Bilinear samples of sigmoid(prototype) at the centres of the region's image pixels
    (x0, y0, x1, y1), thresholded at 0.5: the block with its corners rounded off."""
    prob = 1 / (1 + np.exp(-seg_prototypes()[0, prototype].astype(np.float64)))
    x0, y0, x1, y1 = region
    px = (np.arange(x0, x1) + 0.5) * 0.5 / 4 - 0.5
    py = ((np.arange(y0, y1) + 0.5) * 0.5 + 8) / 4 - 0.5
    px, py = np.clip(px, 0, 15), np.clip(py, 0, 15)
    ix, iy = np.minimum(px.astype(int), 14), np.minimum(py.astype(int), 14)
    fx, fy = (px - ix)[None, :], (py - iy)[:, None]
    r, c = iy[:, None], ix[None, :]
    value = (
        prob[r, c] * (1 - fy) * (1 - fx)
        + prob[r, c + 1] * (1 - fy) * fx
        + prob[r + 1, c] * fy * (1 - fx)
        + prob[r + 1, c + 1] * fy * fx
    )
    return np.asarray(value > 0.5, dtype=np.bool_)


@pytest.mark.parametrize("transposed", [False, True])
@pytest.mark.parametrize("protos_first", [False, True])
def test_yolov8_seg_box_masks(
    const_model: ModelFactory, transposed: bool, protos_first: bool
) -> None:
    rows = yolo_candidates(SEG_ROWS, 20)
    preds = np.ascontiguousarray(rows[None] if transposed else rows.T[None])
    outputs = [seg_prototypes(), preds] if protos_first else [preds, seg_prototypes()]
    model = const_model([1, 3, 64, 64], outputs, YOLO_INPUT)
    config = YOLOv8SegConfig(input_size=(64, 64), score_threshold=0.25, num_classes=2)
    det = YOLOv8SegAdapter(model, config).detect(blank(128, 96))

    assert_detections(det, [SEG_BOX_0, SEG_BOX_1], [0.9, 0.8], [0, 1])
    assert len(det.masks) == 2
    first, second = det.masks
    assert first is not None
    assert second is not None
    # Box 0 touches pixels x 20..60, y 10..40; its mask is prototype 0's block there.
    assert (first.x, first.y, first.width, first.height) == (20, 10, 41, 31)
    np.testing.assert_array_equal(first.mask, expected_mask(0, (20, 10, 61, 41)))
    # Across its middle (image row 32) the mask spans exactly the block's columns 32..63.
    assert np.flatnonzero(first.mask[32 - 10]).tolist() == list(range(32 - 20, 61 - 20))
    # Box 1 reaches the image's right and bottom edges; prototype 1's block.
    assert (second.x, second.y, second.width, second.height) == (70, 40, 58, 56)
    np.testing.assert_array_equal(second.mask, expected_mask(1, (70, 40, 128, 96)))
    # Down its middle (image column 100) the mask spans exactly the block's rows 48..79.
    assert np.flatnonzero(second.mask[:, 100 - 70]).tolist() == list(range(48 - 40, 80 - 40))


def test_yolov8_seg_without_detections(const_model: ModelFactory) -> None:
    preds = np.zeros((1, 8, 20), np.float32)
    model = const_model([1, 3, 64, 64], [preds, seg_prototypes()], YOLO_INPUT)
    det = YOLOv8SegAdapter(model, YOLOv8SegConfig(input_size=(64, 64))).detect(blank(128, 96))
    assert len(det) == 0
    assert det.masks == ()


# --- ssd-tflite: box encodings [1, A, 4], class scores [1, A, C + 1] -------------------------

LAYER_SIZES = [19, 10, 5, 3, 2, 1]
SCALES = [0.2 + 0.15 * i for i in range(6)] + [1.0]


def anchor(layer: int, row: int, col: int, shape: int) -> tuple[int, list[float]]:
    """Index and (cy, cx, h, w) of one anchor of the 300x300 SSD grid, worked out directly
    from the generator's definition."""
    per_cell = [3, 6, 6, 6, 6, 6]
    start = sum(n * n * k for n, k in zip(LAYER_SIZES[:layer], per_cell[:layer], strict=True))
    size = LAYER_SIZES[layer]
    index = start + (row * size + col) * per_cell[layer] + shape
    if layer == 0:
        scale, ratio = [(0.1, 1.0), (0.2, 2.0), (0.2, 0.5)][shape]
    elif shape == 5:
        scale, ratio = math.sqrt(SCALES[layer] * SCALES[layer + 1]), 1.0
    else:
        scale, ratio = SCALES[layer], [1.0, 2.0, 0.5, 3.0, 1 / 3][shape]
    box = [(row + 0.5) / size, (col + 0.5) / size, scale / math.sqrt(ratio)]
    return index, [*box, scale * math.sqrt(ratio)]


def decoded(a: list[float], t: list[float], width: float, height: float) -> list[float]:
    cy, cx = a[0] + t[0] / 10 * a[2], a[1] + t[1] / 10 * a[3]
    h, w = a[2] * math.exp(t[2] / 5), a[3] * math.exp(t[3] / 5)
    return [
        (cx - w / 2) * width,
        (cy - h / 2) * height,
        (cx + w / 2) * width,
        (cy + h / 2) * height,
    ]


@pytest.mark.parametrize("scores_are_logits", [True, False])
def test_ssd_tflite_decodes_chosen_anchors(
    const_model: ModelFactory, scores_are_logits: bool
) -> None:
    index_a, anchor_a = anchor(0, 5, 7, 1)  # layer 0, row 5, column 7, ratio 2
    index_b, anchor_b = anchor(2, 2, 3, 5)  # layer 2, row 2, column 3, interpolated scale
    index_d, anchor_d = anchor(0, 5, 8, 1)  # the next column: a duplicate of A
    assert (index_a, index_b, index_d) == (307, 1766, 310)
    t_a, t_b = [1.0, -2.0, 0.5, -0.5], [-0.5, 0.8, -1.0, 1.5]
    # Shift the duplicate's anchor back onto A's decoded centre.
    t_d = [t_a[0], t_a[1] + 10 * (anchor_a[1] - anchor_d[1]) / anchor_d[3], t_a[2], t_a[3]]

    encodings = np.zeros((1, 1917, 4), np.float32)
    encodings[0, [index_a, index_b, index_d]] = [t_a, t_b, t_d]
    probs = np.zeros((1, 1917, 6), np.float32)
    probs[0, :, 0] = 0.99
    probs[0, index_a, 3] = 0.9
    probs[0, index_b, 1] = 0.7
    probs[0, index_d, 3] = 0.6
    probs[0, 100, 2] = 0.3  # below the threshold
    clipped = np.clip(probs, 1e-6, 1 - 1e-6)
    logits = np.log(clipped) - np.log1p(-clipped)
    scores = (logits if scores_are_logits else probs).astype(np.float32)
    model = const_model([1, 300, 300, 3], [scores, encodings])  # NHWC input, scores first

    config = SSDTFLiteConfig(score_threshold=0.5, scores_are_logits=scores_are_logits)
    adapter = SSDTFLiteAdapter(model, config)
    assert adapter.anchors[index_a].tolist() == pytest.approx(anchor_a, abs=1e-6)
    assert adapter.anchors[index_b].tolist() == pytest.approx(anchor_b, abs=1e-6)
    det = adapter.detect(blank(600, 450))  # stretched: x * 600, y * 450

    expected = [decoded(anchor_a, t_a, 600, 450), decoded(anchor_b, t_b, 600, 450)]
    assert_detections(det, expected, [0.9, 0.7], [3, 1])


@pytest.mark.parametrize(
    ("size", "count"),
    [
        ((300, 300), 1917),
        ((320, 320), 2034),
        # 512x256: grids 16x32, 8x16, 4x8, 2x4, 1x2, 1x1.
        ((512, 256), 16 * 32 * 3 + (8 * 16 + 4 * 8 + 2 * 4 + 1 * 2 + 1) * 6),
    ],
)
def test_ssd_tflite_anchor_count(size: tuple[int, int], count: int) -> None:
    model = _never_run((1, size[1], size[0], 3))
    anchors = SSDTFLiteAdapter(model, SSDTFLiteConfig(input_size=size)).anchors
    assert anchors.shape == (count, 4)


def test_ssd_tflite_anchor_order() -> None:
    config = SSDTFLiteConfig()
    model = _never_run((1, 300, 300, 3))
    anchors = SSDTFLiteAdapter(model, config).anchors
    # The first cell holds the reduced set: scale 0.1 ratio 1, then scale 0.2 ratios 2, 0.5.
    c = 0.5 / 19
    np.testing.assert_allclose(anchors[0], [c, c, 0.1, 0.1], atol=1e-6)
    np.testing.assert_allclose(
        anchors[1], [c, c, 0.2 / math.sqrt(2), 0.2 * math.sqrt(2)], atol=1e-6
    )
    np.testing.assert_allclose(anchors[3, :2], [c, 1.5 / 19], atol=1e-6)  # then the next column
    np.testing.assert_allclose(anchors[19 * 3, :2], [1.5 / 19, c], atol=1e-6)  # then the next row
    np.testing.assert_allclose(anchors[-1], [0.5, 0.5, math.sqrt(0.95), math.sqrt(0.95)], atol=1e-6)


def test_ssd_tflite_names_an_anchor_mismatch(const_model: ModelFactory) -> None:
    outputs = [np.zeros((1, 100, 4), np.float32), np.zeros((1, 100, 3), np.float32)]
    model = const_model([1, 300, 300, 3], outputs)
    with pytest.raises(ValueError, match="100 box encodings but 1917 anchors"):
        SSDTFLiteAdapter(model, SSDTFLiteConfig()).detect(blank(300, 300))


def _never_run(shape: tuple[int, ...]) -> FakeModel:
    """A model whose input description is read but which is never run."""

    def fail(_: Mapping[str, F32]) -> list[F32]:
        raise AssertionError("not run")

    return FakeModel(fail, input_name="image", shape=shape)


def test_letterbox_reference() -> None:
    """The letterbox the yolov8 tests assume: 128x96 into 64x64, centred."""
    _, meta = letterbox(blank(128, 96), (64, 64), center=True, pad_value=114)
    assert (meta.scale, meta.pad_x, meta.pad_y) == (0.5, 0, 8)


@pytest.mark.parametrize(
    ("image", "shape"),
    [
        (ImageInput(rgb=True, mean=(1.0, 2.0, 3.0), scale=(2.0, 4.0, 8.0)), [1, 3, -1, -1]),
        (ImageInput(mean=(104.0, 117.0, 123.0)), [1, 3, -1, -1]),
        (ImageInput(rgb=True, scale=(255.0, 255.0, 255.0), channels_last=True), [-1, 6, 5, 3]),
    ],
)
def test_image_input_in_graph_equals_numpy(
    tmp_path: Path, image: ImageInput, shape: list[int]
) -> None:
    """OpenVINO's in-graph conversion of BGR uint8 batches equals the numpy one that ONNX
    Runtime uses, for both layouts, so both backends feed a model the same tensor."""
    param = ops.parameter(shape, np.float32, name="x")
    out = ops.multiply(param, np.float32(1.0))
    path = tmp_path / "identity.xml"
    ov.save_model(ov.Model([out], [param], "identity"), str(path), compress_to_fp16=False)
    model = OpenVINOBackend(BackendConfig(precision="f32")).load(
        ModelFiles("identity", ir_xml=path), image
    )
    assert model.inputs[0].shape == tuple(shape)  # the file's own input, as declared
    batch = np.random.default_rng(3).integers(0, 256, (2 if shape[0] < 0 else 1, 6, 5, 3))
    pixels = batch.astype(np.uint8)
    (got,) = model.infer({"x": pixels})
    np.testing.assert_allclose(got, image.to_tensor(pixels), rtol=1e-6, atol=1e-5)
