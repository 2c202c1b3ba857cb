"""NanoDet decoding on synthetic raw outputs with known boxes."""

from __future__ import annotations

import itertools
from collections.abc import Mapping, Sequence

import numpy as np
import pytest
from numpy.typing import NDArray

from obscura.backends.base import ImageInput, TensorInfo
from obscura.errors import ConfigError
from obscura.models.base import Letterbox
from obscura.models.nanodet import NanoDetAdapter, NanoDetConfig

Tensor = NDArray[np.float32]
SIZE = 416
STRIDES = (8, 16, 32)
CLASSES = 80
BINS = 11


class FakeModel:
    """Stands in for a loaded model: returns the outputs it was given."""

    def __init__(self, image: ImageInput, outputs: list[Tensor] | None = None) -> None:
        self.outputs = outputs or []
        self.image_input = image
        self.seen: list[Mapping[str, Tensor]] = []

    @property
    def name(self) -> str:
        return "fake"

    @property
    def inputs(self) -> Sequence[TensorInfo]:
        return [TensorInfo("input_1", (1, 3, SIZE, SIZE), "f32")]

    @property
    def device(self) -> str:
        return "CPU"

    def infer(self, inputs: Mapping[str, Tensor]) -> list[Tensor]:
        self.seen.append(inputs)
        return self.outputs


def adapter(**options: object) -> NanoDetAdapter:
    config = NanoDetConfig.from_mapping(options)
    return NanoDetAdapter(FakeModel(NanoDetAdapter.image_input(config)), config)


def peaked(distances: Sequence[float]) -> Tensor:
    """Bin logits for 4 sides whose softmax expectation is ``distances`` (in bins): one peak
    for whole numbers, two equal peaks for halves."""
    logits = np.full((4, BINS), -50.0, dtype=np.float32)
    for side, d in enumerate(distances):
        logits[side, int(np.floor(d))] = 20.0
        logits[side, int(np.ceil(d))] = 20.0
    return logits.reshape(-1)


def raw_outputs(
    anchors: Sequence[tuple[int, int, int, int, float, Sequence[float]]],
) -> list[Tensor]:
    """Per stride: scores [1, cells, 80], then boxes [1, cells, 44]; each anchor is
    (stride, x, y, class, score, distances in bins)."""
    cls = {s: np.zeros((1, (SIZE // s) ** 2, CLASSES), dtype=np.float32) for s in STRIDES}
    reg = {s: np.zeros((1, (SIZE // s) ** 2, 4 * BINS), dtype=np.float32) for s in STRIDES}
    for stride, x, y, label, score, distances in anchors:
        cell = y * (SIZE // stride) + x
        cls[stride][0, cell, label] = score
        reg[stride][0, cell] = peaked(distances)
    return [cls[s] for s in STRIDES] + [reg[s] for s in STRIDES]


def identity_letterbox(scale: float = 1.0) -> Letterbox:
    side = round(SIZE / scale)
    return Letterbox(scale, 0, 0, side, side, SIZE, SIZE)


def test_one_anchor_decodes_to_its_box() -> None:
    # Stride 16, cell (10, 7): anchor point ((10 + 0.5) * 16, (7 + 0.5) * 16) = (168, 120).
    outputs = raw_outputs([(16, 10, 7, 2, 0.9, (3, 2, 4, 5))])
    det = adapter().postprocess(outputs, identity_letterbox())
    assert len(det) == 1
    np.testing.assert_allclose(det.xyxy[0], [168 - 48, 120 - 32, 168 + 64, 120 + 80], atol=1)
    assert det.class_ids.tolist() == [2]
    assert det.scores[0] == pytest.approx(0.9)


def test_fractional_distances_and_image_scale() -> None:
    # Stride 8, cell (20, 30): anchor (164, 244); distances 2.5, 1, 0.5, 6 bins of 8 px.
    outputs = raw_outputs([(8, 20, 30, 0, 0.6, (2.5, 1, 0.5, 6))])
    det = adapter().postprocess(outputs, identity_letterbox(scale=0.5))
    expected = np.array([164 - 20, 244 - 8, 164 + 4, 244 + 48]) / 0.5
    np.testing.assert_allclose(det.xyxy[0], expected, atol=1)
    assert det.class_ids.tolist() == [0]


def test_outputs_are_picked_by_shape_not_position() -> None:
    outputs = raw_outputs(
        [
            (8, 5, 5, 0, 0.8, (1, 2, 3, 4)),
            (16, 12, 3, 7, 0.7, (2, 2, 2, 2)),
            (32, 9, 11, 3, 0.5, (1, 3, 2, 0)),
        ]
    )
    a = adapter()
    want = a.postprocess(outputs, identity_letterbox())
    assert sorted(want.class_ids.tolist()) == [0, 3, 7]
    for order in itertools.islice(itertools.permutations(range(6)), 0, None, 37):
        shuffled = [outputs[i] for i in order]
        got = a.postprocess(shuffled, identity_letterbox())
        np.testing.assert_array_equal(got.xyxy, want.xyxy)
        np.testing.assert_array_equal(got.class_ids, want.class_ids)
    # Without the batch dimension too.
    got = a.postprocess([o[0] for o in reversed(outputs)], identity_letterbox())
    np.testing.assert_array_equal(got.xyxy, want.xyxy)


def test_threshold_best_class_and_multi_label() -> None:
    outputs = raw_outputs([(16, 4, 4, 5, 0.8, (2, 2, 2, 2)), (16, 20, 20, 1, 0.2, (1, 1, 1, 1))])
    outputs[1][0, 4 * 26 + 4, 7] = 0.6  # the same anchor also scores truck
    best = adapter().postprocess(outputs, identity_letterbox())
    assert best.class_ids.tolist() == [5]  # the 0.2 anchor is below the 0.35 threshold
    multi = adapter(multi_label=True).postprocess(outputs, identity_letterbox())
    assert sorted(multi.class_ids.tolist()) == [5, 7]
    np.testing.assert_allclose(multi.xyxy[0], multi.xyxy[1])


def test_wrong_outputs_are_reported() -> None:
    outputs = raw_outputs([])
    with pytest.raises(ValueError, match="nanodet expects"):
        adapter().postprocess(outputs[:5], identity_letterbox())
    with pytest.raises(ValueError, match="nanodet expects"):
        adapter(reg_max=7).postprocess(outputs, identity_letterbox())


def test_preprocess_letterboxes_and_normalises_bgr() -> None:
    a = adapter()
    image = np.zeros((208, 416, 3), dtype=np.uint8)
    image[..., 0], image[..., 1], image[..., 2] = 10, 20, 30  # B, G, R
    inputs, meta = a.preprocess(image)
    assert inputs["input_1"].dtype == np.uint8  # the backend normalises (in-graph on OpenVINO)
    image_input = a.model.image_input
    assert image_input is not None
    tensor = image_input.to_tensor(inputs["input_1"])
    assert tensor.shape == (1, 3, SIZE, SIZE)
    assert tensor.dtype == np.float32
    assert (meta.scale, meta.pad_x, meta.pad_y) == (1.0, 0, 0)
    for channel, value in enumerate((10, 20, 30)):
        want = (value - a.config.mean[channel]) / a.config.std[channel]
        assert tensor[0, channel, 0, 0] == pytest.approx(want, abs=1e-5)
    # The padding below the image is black, normalised.
    assert tensor[0, 0, SIZE - 1, 0] == pytest.approx(-a.config.mean[0] / a.config.std[0])


def test_config_defaults_and_validation() -> None:
    config = NanoDetConfig()
    assert config.input_size == (416, 416)
    assert config.strides == (8, 16, 32)
    assert config.reg_max == 10
    assert (config.score_threshold, config.nms_iou) == (0.35, 0.5)
    with pytest.raises(ConfigError, match="strides"):
        NanoDetConfig(strides=(8, 0))
    with pytest.raises(ConfigError, match="reg_max"):
        NanoDetConfig(reg_max=0)
