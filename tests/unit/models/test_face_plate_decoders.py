"""Decoders of the centerface, retinaface and scrfd families on synthetic outputs with known
boxes."""

from __future__ import annotations

import math
from collections.abc import Mapping

import numpy as np
import pytest
from numpy.typing import NDArray
from support.fakes import FakeModel, Outputs

from obscura.models.centerface import CenterFaceAdapter, CenterFaceConfig
from obscura.models.retinaface import RetinaFaceAdapter, RetinaFaceConfig, priors
from obscura.models.scrfd import ScrfdAdapter, ScrfdConfig

CF = CenterFaceAdapter.image_input(CenterFaceConfig())
RF = RetinaFaceAdapter.image_input(RetinaFaceConfig())


def centerface_outputs(
    h: int, w: int, peaks: list[tuple[int, int, float, float, float]]
) -> Outputs:
    """peaks: (y, x, score, box_h, box_w) in input pixels at stride 4, offsets 0.25 / 0.5."""
    heat = np.zeros((1, 1, h // 4, w // 4), np.float32)
    scale = np.zeros((1, 2, h // 4, w // 4), np.float32)
    offset = np.zeros((1, 2, h // 4, w // 4), np.float32)
    offset[0, 0], offset[0, 1] = 0.25, 0.5
    for y, x, s, bh, bw in peaks:
        heat[0, 0, y, x] = s
        scale[0, :, y, x] = [math.log(bh / 4), math.log(bw / 4)]
    return [heat, scale, offset, np.zeros((1, 10, h // 4, w // 4), np.float32)]


def test_centerface_decodes_box_centre_and_size_in_image_pixels() -> None:
    def produce(inputs: Mapping[str, NDArray[np.float32]]) -> Outputs:
        _, _, h, w = inputs["input"].shape
        return centerface_outputs(h, w, [(10, 20, 0.9, 40, 30), (30, 30, 0.1, 40, 40)])

    model = FakeModel(produce, image=CF)
    adapter = CenterFaceAdapter(model, CenterFaceConfig(input_size=(320, 320), score_threshold=0.3))
    image = np.zeros((480, 640, 3), np.uint8)  # scaled by 0.5 into 320x240
    det = adapter.detect(image)
    assert model.calls == [{"input": (1, 3, 256, 320)}]  # fit_aspect: 240 rounded up to 256
    assert len(det) == 1  # the 0.1 peak is below the threshold
    cy, cx = (10 + 0.25 + 0.5) * 4, (20 + 0.5 + 0.5) * 4
    expected = np.array([cx - 15, cy - 20, cx + 15, cy + 20]) * 2
    np.testing.assert_allclose(det.xyxy[0], expected, atol=1e-3)
    assert det.scores[0] == pytest.approx(0.9)


def test_centerface_suppresses_overlapping_peaks() -> None:
    def produce(inputs: Mapping[str, NDArray[np.float32]]) -> Outputs:
        return centerface_outputs(128, 128, [(10, 10, 0.9, 40, 40), (10, 11, 0.8, 40, 40)])

    model = FakeModel(produce, image=CF)
    adapter = CenterFaceAdapter(model, CenterFaceConfig(input_size=(128, 128)))
    det = adapter.detect(np.zeros((128, 128, 3), np.uint8))
    assert len(det) == 1
    assert det.scores[0] == pytest.approx(0.9)


def test_centerface_rejects_unexpected_outputs() -> None:
    adapter = CenterFaceAdapter(
        FakeModel(lambda _: [np.zeros((1, 3, 8, 8), np.float32)], image=CF), CenterFaceConfig()
    )
    with pytest.raises(ValueError, match="centerface expects outputs"):
        adapter.detect(np.zeros((32, 32, 3), np.uint8))


def test_retinaface_prior_layout() -> None:
    table = priors(640, 640, (8, 16, 32), ((16, 32), (64, 128), (256, 512)))
    assert table.shape == ((80 * 80 + 40 * 40 + 20 * 20) * 2, 4)
    # First cell of level 0, both sizes; second cell of level 0; first cell of level 1.
    np.testing.assert_allclose(table[0], [4, 4, 16, 16])
    np.testing.assert_allclose(table[1], [4, 4, 32, 32])
    np.testing.assert_allclose(table[2], [12, 4, 16, 16])
    np.testing.assert_allclose(table[80 * 80 * 2], [8, 8, 64, 64])


def test_retinaface_decodes_with_variances() -> None:
    size = (320, 320)
    table = priors(*size, (8, 16, 32), ((16, 32), (64, 128), (256, 512)))
    target = 40 * 40 * 2 + 5 * 20 * 2 + 7 * 2 + 1  # level 1, row 5, col 7, size 128

    def produce(inputs: Mapping[str, NDArray[np.float32]]) -> Outputs:
        n = len(table)
        loc = np.zeros((1, n, 4), np.float32)
        conf = np.zeros((1, n, 2), np.float32)
        conf[0, :, 0] = 1.0
        loc[0, target] = [1.0, -0.5, math.log(0.5) / 0.2, 0.0]
        conf[0, target] = [0.05, 0.95]
        return [loc, conf, np.zeros((1, n, 10), np.float32)]

    adapter = RetinaFaceAdapter(FakeModel(produce, image=RF), RetinaFaceConfig(input_size=size))
    det = adapter.detect(np.zeros((320, 320, 3), np.uint8))
    cx0, cy0, pw, ph = table[target]
    assert (cx0, cy0, pw) == (7.5 * 16, 5.5 * 16, 128)
    cx, cy = cx0 + 1.0 * 0.1 * pw, cy0 - 0.5 * 0.1 * ph
    w, h = pw * 0.5, ph
    np.testing.assert_allclose(
        det.xyxy[0], [cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2], atol=1e-3
    )
    assert det.scores.tolist() == pytest.approx([0.95])


def test_retinaface_prior_count_mismatch_is_explained() -> None:
    adapter = RetinaFaceAdapter(
        FakeModel(
            lambda _: [np.zeros((1, 10, 4), np.float32), np.zeros((1, 10, 2), np.float32)],
            image=RF,
        ),
        RetinaFaceConfig(input_size=(64, 64)),
    )
    with pytest.raises(ValueError, match="10 predictions but 168 priors"):
        adapter.detect(np.zeros((64, 64, 3), np.uint8))


def scrfd_outputs(size: int, hits: dict[tuple[int, int], tuple[float, list[float]]]) -> Outputs:
    """Per stride (8, 16, 32): scores [1, N, 1], distances [1, N, 4], keypoints [1, N, 10];
    ``hits`` maps (stride, anchor index) to (score, distances in strides)."""
    scores, dists, kps = [], [], []
    for stride in (8, 16, 32):
        n = (size // stride) ** 2 * 2
        s = np.zeros((1, n, 1), np.float32)
        d = np.ones((1, n, 4), np.float32)
        for (at, index), (score, dist) in hits.items():
            if at == stride:
                s[0, index, 0] = score
                d[0, index] = dist
        scores.append(s)
        dists.append(d)
        kps.append(np.zeros((1, n, 10), np.float32))
    return [*scores, *dists, *kps]  # the released graph's order


def test_scrfd_decodes_distances_from_anchor_centres() -> None:
    # Stride 16, row 3, column 5, second anchor: centre (80, 48) in input pixels.
    index = (3 * 20 + 5) * 2 + 1
    hits = {(16, index): (0.9, [1.0, 2.0, 3.0, 0.5]), (32, 0): (0.2, [1.0, 1.0, 1.0, 1.0])}
    model = FakeModel(
        lambda _: scrfd_outputs(320, hits), image=ScrfdAdapter.image_input(ScrfdConfig())
    )
    adapter = ScrfdAdapter(model, ScrfdConfig(input_size=(320, 320), score_threshold=0.5))
    det = adapter.detect(np.zeros((160, 320, 3), np.uint8))  # letterboxed at scale 1
    assert model.calls == [{"input": (1, 3, 320, 320)}]  # a static input, padded below
    assert len(det) == 1  # the 0.2 score is under the threshold
    np.testing.assert_allclose(det.xyxy[0], [80 - 16, 48 - 32, 80 + 48, 48 + 8], atol=1e-3)
    assert det.scores[0] == pytest.approx(0.9)


def test_scrfd_rejects_unexpected_outputs() -> None:
    outputs = scrfd_outputs(320, {})[:4]  # three score outputs, one box output
    image = ScrfdAdapter.image_input(ScrfdConfig())
    adapter = ScrfdAdapter(
        FakeModel(lambda _: outputs, image=image), ScrfdConfig(input_size=(320, 320))
    )
    with pytest.raises(ValueError, match="scrfd expects 3 score and 3 box outputs"):
        adapter.detect(np.zeros((32, 32, 3), np.uint8))
