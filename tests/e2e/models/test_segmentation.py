"""Person segmentation: the TFLite custom op, mask geometry, batching, and the real model."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np
import openvino as ov
import openvino.opset13 as ops
import pytest
from numpy.typing import NDArray
from openvino.frontend import ConversionExtension

from obscura.backends import BackendConfig, ImageInput, ModelFiles, TensorInfo
from obscura.errors import ConfigError
from obscura.models.segmentation import IMAGE_INPUT, SegmentationAdapter, SegmentationConfig
from obscura.types import ImageArray
from obscura.zoo.tflite import TRANSPOSE_CONV_BIAS, extensions, same_padding, transpose_conv_bias

# --- Convolution2DTransposeBias -----------------------------------------------------------


def _reference_transpose_conv(
    x: NDArray[np.floating[Any]],
    w: NDArray[np.floating[Any]],
    b: NDArray[np.floating[Any]],
    stride: int,
) -> NDArray[np.float64]:
    """Transposed conv from its definition: NHWC data, OHWI filters, SAME, output = stride*in."""
    n, h, wd, _ = x.shape
    out_c, kh, kw, _ = w.shape
    full = np.zeros((n, (h - 1) * stride + kh, (wd - 1) * stride + kw, out_c))
    for ky in range(kh):
        for kx in range(kw):
            contribution = np.einsum("nhwc,oc->nhwo", x, w[:, ky, kx, :])
            full[
                :, ky : ky + stride * (h - 1) + 1 : stride, kx : kx + stride * (wd - 1) + 1 : stride
            ] += contribution
    begin_y, begin_x = max(kh - stride, 0) // 2, max(kw - stride, 0) // 2
    cropped = full[:, begin_y : begin_y + h * stride, begin_x : begin_x + wd * stride]
    out = np.zeros((n, h * stride, wd * stride, out_c))
    out[:, : cropped.shape[1], : cropped.shape[2]] = cropped
    out += b
    return out


@pytest.mark.parametrize(
    ("kernel", "stride"), [((2, 2), 2), ((3, 3), 2), ((4, 3), 2), ((1, 1), 2), ((5, 4), 3)]
)
def test_transpose_conv_bias_matches_reference(kernel: tuple[int, int], stride: int) -> None:
    rng = np.random.default_rng(0)
    x = rng.standard_normal((2, 5, 7, 3)).astype(np.float32)
    w = rng.standard_normal((4, *kernel, 3)).astype(np.float32)
    b = rng.standard_normal(4).astype(np.float32)
    data = ops.parameter([-1, 5, 7, 3], np.float32)
    out = transpose_conv_bias(
        data.output(0), ops.constant(w).output(0), ops.constant(b).output(0), stride=stride
    )
    compiled = ov.Core().compile_model(
        ov.Model(out, [data]), "CPU", {"INFERENCE_PRECISION_HINT": "f32"}
    )
    got = compiled(x)[0]
    want = _reference_transpose_conv(x, w, b, stride)
    assert got.shape == (2, 5 * stride, 7 * stride, 4)
    np.testing.assert_allclose(got, want, atol=1e-4)


def test_same_padding() -> None:
    assert same_padding(2, 2) == (0, 0, 0)
    assert same_padding(3, 2) == (0, 1, 0)
    assert same_padding(4, 2) == (1, 1, 0)
    assert same_padding(1, 2) == (0, 0, 1)


def test_extension_targets_the_custom_op() -> None:
    exts = extensions()
    assert len(exts) == 1
    assert isinstance(exts[0], ConversionExtension)
    assert TRANSPOSE_CONV_BIAS == "Convolution2DTransposeBias"


# --- adapter with a fake model -------------------------------------------------------------


class RedModel:
    """Fake segmentation model: a pixel's person probability is its red channel (0..1)."""

    def __init__(self, batch: int = -1, size: tuple[int, int] = (256, 256)) -> None:
        self._inputs = [TensorInfo("image", (batch, size[1], size[0], 3), "f32")]
        self.batch_sizes: list[int] = []

    @property
    def name(self) -> str:
        return "fake-segmentation"

    @property
    def inputs(self) -> Sequence[TensorInfo]:
        return self._inputs

    @property
    def device(self) -> str:
        return "CPU"

    @property
    def image_input(self) -> ImageInput:
        return IMAGE_INPUT

    def infer(self, inputs: Mapping[str, NDArray[np.uint8]]) -> list[NDArray[np.float32]]:
        assert inputs["image"].dtype == np.uint8
        x = IMAGE_INPUT.to_tensor(inputs["image"])  # what a backend feeds the model
        assert x.ndim == 4
        assert x.shape[3] == 3
        static = self._inputs[0].shape[0]
        assert static in (-1, x.shape[0])
        self.batch_sizes.append(int(x.shape[0]))
        return [np.ascontiguousarray(x[..., :1])]


def _paint_red(image: NDArray[np.uint8], x1: int, y1: int, x2: int, y2: int) -> None:
    image[y1:y2, x1:x2] = (0, 0, 255)  # BGR


@pytest.mark.parametrize("keep_aspect", [True, False])
def test_mask_origin_and_size_are_the_clipped_integer_box(keep_aspect: bool) -> None:
    image = np.full((120, 100, 3), (0, 0, 255), dtype=np.uint8)
    boxes = np.array(
        [
            [10.3, 20.7, 50.2, 80.1],  # inside: floor / ceil
            [-5.0, -3.0, 30.0, 40.0],  # clipped at the top-left
            [90.5, 50.0, 130.0, 125.0],  # clipped at the bottom-right
            [150.0, 10.0, 170.0, 30.0],  # outside the image
            [40.0, 40.0, 40.0, 60.0],  # zero width
        ],
        dtype=np.float32,
    )
    adapter = SegmentationAdapter(RedModel(), SegmentationConfig(keep_aspect=keep_aspect))
    masks = adapter.person_masks(image, boxes)
    assert len(masks) == 5
    expected = [(10, 20, 41, 61), (0, 0, 30, 40), (90, 50, 10, 70)]
    for mask, (x, y, w, h) in zip(masks[:3], expected, strict=True):
        assert mask is not None
        assert (mask.x, mask.y, mask.width, mask.height) == (x, y, w, h)
        assert mask.mask.all()
    assert masks[3] is None
    assert masks[4] is None


@pytest.mark.parametrize("keep_aspect", [True, False])
def test_mask_is_the_segmentation_inside_the_box(keep_aspect: bool) -> None:
    image = np.zeros((200, 300, 3), dtype=np.uint8)
    _paint_red(image, 120, 40, 160, 180)  # the "person"
    _paint_red(image, 20, 20, 60, 60)  # someone else, outside the box
    adapter = SegmentationAdapter(RedModel(), SegmentationConfig(keep_aspect=keep_aspect))
    (mask,) = adapter.person_masks(image, np.array([[100.0, 30.0, 180.0, 190.0]], np.float32))
    assert mask is not None
    assert (mask.x, mask.y, mask.width, mask.height) == (100, 30, 80, 160)
    truth = np.zeros((160, 80), dtype=bool)
    truth[10:150, 20:60] = True
    iou = (mask.mask & truth).sum() / (mask.mask | truth).sum()
    assert iou > 0.95


def test_nearly_empty_mask_falls_back_to_the_full_box() -> None:
    image = np.zeros((100, 100, 3), dtype=np.uint8)
    _paint_red(image, 10, 10, 12, 50)  # 2 of 40 columns: 5 % of the first box
    _paint_red(image, 60, 10, 68, 50)  # 8 of 40 columns: 20 % of the second box
    boxes = np.array([[10.0, 10.0, 50.0, 50.0], [60.0, 10.0, 100.0, 50.0]], np.float32)
    adapter = SegmentationAdapter(RedModel(), SegmentationConfig(min_coverage=0.1))
    low, high = adapter.person_masks(image, boxes)
    assert low is not None
    assert high is not None
    assert low.mask.all()
    assert 0.15 < high.mask.mean() < 0.3

    black = np.zeros((100, 100, 3), dtype=np.uint8)
    (empty,) = SegmentationAdapter(RedModel()).person_masks(black, boxes[:1])
    assert empty is not None
    assert empty.mask.shape == (40, 40)
    assert empty.mask.all()


def test_crops_run_in_batches_of_max_batch() -> None:
    image = np.zeros((100, 100, 3), dtype=np.uint8)
    boxes = np.array([[i, i, i + 20 + i, i + 30] for i in range(10)], dtype=np.float32)
    model = RedModel()
    masks = SegmentationAdapter(model, SegmentationConfig(max_batch=4)).person_masks(image, boxes)
    assert len(masks) == 10
    assert model.batch_sizes == [4, 4, 2]

    model = RedModel()
    SegmentationAdapter(model, SegmentationConfig(max_batch=8)).person_masks(image, boxes[:8])
    assert model.batch_sizes == [8]

    model = RedModel()
    SegmentationAdapter(model).person_masks(image, np.zeros((0, 4), np.float32))
    assert model.batch_sizes == []


def test_static_batch_model_runs_one_crop_at_a_time() -> None:
    image = np.zeros((100, 100, 3), dtype=np.uint8)
    boxes = np.array([[0, 0, 20, 20], [10, 10, 50, 60], [5, 5, 9, 90]], dtype=np.float32)
    model = RedModel(batch=1)
    masks = SegmentationAdapter(model).person_masks(image, boxes)
    assert model.batch_sizes == [1, 1, 1]
    assert all(m is not None for m in masks)


def test_segment_returns_maps_at_each_crop_size() -> None:
    crops = [np.zeros((h, w, 3), dtype=np.uint8) for h, w in [(1, 1), (300, 40), (17, 512)]]
    crops[1][:, :20] = (0, 0, 255)
    maps = SegmentationAdapter(RedModel()).segment(crops)
    assert [m.shape for m in maps] == [(1, 1), (300, 40), (17, 512)]
    assert all(m.dtype == np.float32 for m in maps)
    assert maps[1][:, :18].min() > 0.9
    assert maps[1][:, 22:].max() < 0.1


def test_config_from_mapping() -> None:
    config = SegmentationConfig.from_mapping({"input_size": [144, 256], "threshold": 0.6})
    assert config.input_size == (144, 256)
    assert config.threshold == 0.6
    with pytest.raises(ConfigError, match="bogus, other"):
        SegmentationConfig.from_mapping({"bogus": 1, "other": 2, "threshold": 0.5})
    with pytest.raises(ConfigError, match="max_batch"):
        SegmentationConfig(max_batch=0)


def test_input_size_must_match_the_model() -> None:
    with pytest.raises(ConfigError, match="input_size"):
        SegmentationAdapter(RedModel(size=(144, 256)), SegmentationConfig())
    SegmentationAdapter(RedModel(size=(144, 256)), SegmentationConfig(input_size=(144, 256)))


# --- the real model --------------------------------------------------------------------------


@pytest.mark.models
def test_real_model_masks_the_person(
    model_files: Callable[[str], ModelFiles], load_image: Callable[[str], ImageArray]
) -> None:
    from obscura.backends.openvino import OpenVINOBackend

    model = OpenVINOBackend(BackendConfig()).load(model_files("selfie-segmentation"), IMAGE_INPUT)
    adapter = SegmentationAdapter(model)
    image = load_image("darknet_person.jpg")
    box = np.array([[190.0, 100.0, 275.0, 373.0]], np.float32)  # hand-drawn person box
    (mask,) = adapter.person_masks(image, box)
    assert mask is not None
    assert (mask.x, mask.y, mask.width, mask.height) == (190, 100, 85, 273)
    # Measured 0.59: the silhouette, not the full-box fallback and not an empty mask.
    assert 0.45 < mask.mask.mean() < 0.8
    w = mask.width
    assert mask.mask[:, w // 2 - 5 : w // 2 + 5].mean() > 0.9  # the body's central column
    assert mask.mask[:, -(w // 10) :].mean() < 0.2  # background on the right of the person

    # Batched inference gives the same maps as one crop at a time.
    crops = [image[50:400, 150:300], image[0:200], image[100:373, 190:275]]
    batched = adapter.segment(crops)
    single = [adapter.segment([crop])[0] for crop in crops]
    for a, b in zip(batched, single, strict=True):
        np.testing.assert_allclose(a, b, atol=1e-4)
