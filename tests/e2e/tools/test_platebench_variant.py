"""The second plate renderer (variant b of the composite plate benchmark): its own fonts, pinned
and apart from the first renderer's; plates of every style the right shape, reproducible by seed;
its pasting and camera conditions; and a build of the variant with ground truth as for variant a.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest
from support.media import tree_digest

from obscura.errors import ConfigError
from obscura.zoo.store import default_cache_dir
from obscura_tools.platebench.build import build
from obscura_tools.platebench.render import RenderedPlate, font_specs
from obscura_tools.platebench.variant import (
    CONDITIONS_B,
    PLATE_MM_B,
    STYLES_B,
    VARIANT_FONT_NAMES,
    Lamp,
    frame_condition,
    load_variant_fonts,
    paste_plate,
    render_holder,
    render_plate_b,
)

CACHE = default_cache_dir() / "platebench"
ANNOTATION_KEYS = {"label", "bbox", "style", "condition", "vehicle", "view", "source"}
HEIGHTS = (24, 64, 150)


@pytest.fixture(scope="session")
def fonts() -> dict[str, Path]:
    """Variant b's fonts (and the CJK one it borrows), fetched once into the model store's
    cache, as `make plates PLATES_VARIANT=b` does."""
    return load_variant_fonts(CACHE / "fonts")


def _plate(style: str, seed: int, fonts: dict[str, Path], height: int = 64) -> RenderedPlate:
    return render_plate_b(style, np.random.default_rng([13, seed]), fonts, height)


def _solid_plate(width: int = 120, height: int = 40) -> RenderedPlate:
    """A plain white plate with a black bar: enough to paste without fonts."""
    image = np.full((height, width, 4), 255, np.uint8)
    image[height // 3 : 2 * height // 3, width // 5 : 4 * width // 5, :3] = 0
    return RenderedPlate(image, "ru", "X", 1, "ru", (520, 112))


# --- without the fonts -------------------------------------------------------------------------


def test_variant_fonts_are_pinned_and_new() -> None:
    """Its own fonts, from Debian packages the first renderer does not use."""
    specs = font_specs(section="variant_fonts")
    assert set(specs) == VARIANT_FONT_NAMES
    first = {spec.source.package for spec in font_specs().values()}
    for name, spec in specs.items():
        source = spec.source
        assert source.registry == "debian", name
        assert source.package not in first, name
        assert re.fullmatch(r"[0-9a-f]{64}", source.archive_sha256), name
        assert "-" in source.version, name
        assert spec.licence != "unknown", name
        for f in source.files:
            assert f.path.startswith("usr/share/fonts/"), f.path
            assert re.fullmatch(r"[0-9a-f]{64}", f.sha256), f.path


def test_styles_differ_from_the_first_renderers() -> None:
    assert set(STYLES_B) == set(PLATE_MM_B)
    assert not set(STYLES_B) & {"eu", "uk", "us", "cn", "two_line"}


def test_unknown_style_and_variant_are_named(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="'eu'"):
        render_plate_b("eu", np.random.default_rng(0), {})
    with pytest.raises(ConfigError, match="'c'"):
        build(tmp_path / "out", cache_dir=tmp_path, variant="c")


def test_a_pasted_plate_lands_on_its_quad() -> None:
    tile = np.full((200, 300, 3), 90, np.uint8)
    quad = np.array([[100, 80], [220, 84], [220, 124], [100, 120]], np.float32)
    placed = paste_plate(tile, _solid_plate(), quad, np.random.default_rng(1), upscale=1.0)
    assert placed is not None
    x1, y1, x2, y2 = placed.box
    # Rolled by at most 4 degrees and bent by at most 6 % of its height: near the quad.
    np.testing.assert_allclose([x1, x2], [100, 220], atol=6)
    np.testing.assert_allclose([y1, y2], [80, 124], atol=10)
    assert placed.share == pytest.approx(1.0, abs=0.01)
    assert placed.visible == placed.box
    assert tile[100, 160].max() < 90 < tile[86, 110].min()  # the bar and the white plate


def test_a_plate_half_outside_the_tile_is_cut() -> None:
    tile = np.zeros((100, 100, 3), np.uint8)
    quad = np.array([[60, 40], [160, 40], [160, 70], [60, 70]], np.float32)
    placed = paste_plate(tile, _solid_plate(), quad, np.random.default_rng(2), upscale=1.0)
    assert placed is not None
    assert placed.visible[2] == 100.0
    assert 0.3 < placed.share < 0.5
    far = quad + 500
    assert paste_plate(tile, _solid_plate(), far, np.random.default_rng(2), upscale=1.0) is None


@pytest.mark.parametrize("condition", [name for name, _ in CONDITIONS_B])
def test_frame_conditions_keep_the_frame_and_change_it(condition: str) -> None:
    rng = np.random.default_rng(4)
    frame = rng.integers(0, 255, (72, 128, 3), dtype=np.uint8)
    frame[20:40, 30:90] = 230
    lamps = [Lamp((40.0, 50.0, 80.0, 60.0), "rear"), Lamp((10.0, 10.0, 30.0, 16.0), "front")]
    out = frame_condition(frame.copy(), condition, lamps, np.random.default_rng(5))
    assert out.shape == frame.shape
    assert out.dtype == np.uint8
    if condition == "clear":
        assert np.array_equal(out, frame)
    else:
        assert np.abs(out.astype(int) - frame).mean() > 2, condition
    if condition == "night_lamps":
        assert out.mean() < frame.mean()


# --- with the fonts (fetched from Debian: network on the first run) ----------------------------


@pytest.mark.models
@pytest.mark.parametrize("style", STYLES_B)
@pytest.mark.parametrize("height", HEIGHTS)
def test_plates_have_the_height_aspect_and_outline(
    style: str, height: int, fonts: dict[str, Path]
) -> None:
    for seed in range(4):
        plate = _plate(style, seed, fonts, height)
        h, w, channels = plate.image.shape
        assert (h, channels) == (height, 4)
        assert plate.image.dtype == np.uint8
        assert (plate.style, plate.size_mm) == (style, PLATE_MM_B[style])
        mm_w, mm_h = plate.size_mm
        assert abs(w / h - mm_w / mm_h) / (mm_w / mm_h) < 0.03, plate.variant
        alpha = plate.image[..., 3]
        assert max(alpha[0, 0], alpha[-1, -1]) < 250, plate.variant  # rounded corners
        assert alpha[h // 2, w // 2] == 255, plate.variant
        assert (alpha == 255).mean() > 0.85, plate.variant
        assert plate.lines == (2 if style in ("br_moto", "jp") else 1)
        assert any(c.isdigit() for c in plate.text), plate.text


@pytest.mark.models
@pytest.mark.parametrize("style", STYLES_B)
def test_the_characters_are_drawn(style: str, fonts: dict[str, Path]) -> None:
    """Dark-on-light or light-on-dark strokes: the plate is far from uniform."""
    for seed in range(4):
        grey = _plate(style, seed, fonts, 96).image[..., :3].mean(axis=-1)
        assert np.percentile(grey, 95) - np.percentile(grey, 5) > 80, (style, seed)


@pytest.mark.models
@pytest.mark.parametrize("style", STYLES_B)
def test_the_same_seed_gives_the_same_plate(style: str, fonts: dict[str, Path]) -> None:
    a, b, c = (_plate(style, seed, fonts, 80) for seed in (11, 11, 12))
    assert a.image.tobytes() == b.image.tobytes()
    assert (a.text, a.variant) == (b.text, b.variant)
    assert a.image.tobytes() != c.image.tobytes()
    assert a.text != c.text


@pytest.mark.models
def test_a_holder_frames_the_plate(fonts: dict[str, Path]) -> None:
    plate = _plate("ru", 3, fonts, 60)
    holder = render_holder(plate, np.random.default_rng(3), fonts)
    ox, oy = holder.offset
    ph, pw = plate.image.shape[:2]
    hh, hw = holder.image.shape[:2]
    assert min(ox, oy) > 0
    assert hw >= ox + pw
    assert hh >= oy + ph + 2
    assert holder.image[oy + ph // 2, ox // 2, 3] == 255  # solid beside the plate


@pytest.mark.models
def test_a_variant_b_build_has_frames_and_ground_truth(tmp_path: Path) -> None:
    report = build(tmp_path / "b", seed=2, frames=3, cache_dir=CACHE, variant="b")
    assert report.frames == 3
    images = sorted((report.out / "images").glob("*.jpg"))
    assert len(images) == 3
    annotations = json.loads((report.out / "annotations.json").read_text())
    manifest = json.loads((report.out / "manifest.json").read_text())
    assert manifest["variant"] == "b"
    assert set(annotations) == {p.name for p in images}
    plates = [p for objects in annotations.values() for p in objects if p["label"] == "plate"]
    assert report.plates == len(plates) > 0
    # The photos' vehicles and persons are in the ground truth too (see test_platebench).
    others = {p["label"] for objects in annotations.values() for p in objects} - {"plate"}
    assert others == {"vehicle", "person"}
    conditions = {name for name, _ in CONDITIONS_B}
    for p in plates:
        assert ANNOTATION_KEYS <= set(p) <= ANNOTATION_KEYS | {"difficult"}, p
        assert p["label"] == "plate"
        assert p["style"] in STYLES_B, p
        assert p["condition"] in conditions, p
        x1, y1, x2, y2 = p["bbox"]
        assert 0 <= x1 < x2 <= 1280, p
        assert 0 <= y1 < y2 <= 720, p
    again = build(tmp_path / "again", seed=2, frames=3, cache_dir=CACHE, variant="b")
    assert tree_digest(again.out) == tree_digest(report.out)
    first = build(tmp_path / "a", seed=2, frames=3, cache_dir=CACHE)
    assert tree_digest(first.out / "images") != tree_digest(report.out / "images")
