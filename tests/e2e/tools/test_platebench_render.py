"""The plate renderer of the composite plate benchmark: fonts fetched from Debian packages and
verified, plates of every style the right size and shape, legible, and reproducible by seed."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import numpy as np
import pytest

from obscura.errors import ModelStoreError
from obscura.zoo.store import default_cache_dir, sha256_of
from obscura_tools.platebench.render import (
    FONT_NAMES,
    PROVINCES,
    STYLES,
    RenderedPlate,
    font_specs,
    load_fonts,
    random_style,
    render_plate,
)

SIZES_MM = {
    "eu": {(520, 110)},
    "uk": {(520, 111)},
    "us": {(305, 152)},
    "cn": {(440, 140), (480, 140)},
    "two_line": {(220, 140), (280, 200), (229, 178), (178, 102)},
}
CJK = f"[{PROVINCES}]"
TEXT = {
    "eu": r"[A-Z0-9][A-Z0-9 \-]{4,10}",
    "uk": r"[A-Z]{2}\d{2} [A-Z]{3}",
    "us": r"[A-Z0-9][A-Z0-9 \-]{4,7}",
    "cn": rf"{CJK}[A-Z]·[A-Z0-9]{{5,6}}",
    "two_line": r"[^\n]{1,6}\n[A-Z0-9]{2,6}",
}


@pytest.fixture(scope="session")
def fonts() -> dict[str, Path]:
    """The plate fonts, fetched once into the model store's cache (as `make plates` does)."""
    return load_fonts(default_cache_dir() / "platebench" / "fonts")


def plates(
    style: str, fonts: dict[str, Path], n: int = 6, height: int = 128
) -> list[RenderedPlate]:
    return [render_plate(style, np.random.default_rng([7, i]), fonts, height) for i in range(n)]


def ink_fraction(plate: RenderedPlate) -> float:
    """The share of the plate's pixels that differ strongly from its background colour."""
    img = plate.image.astype(np.int32)
    inside = img[..., 3] == 255
    background = np.median(img[inside][:, :3], axis=0)
    diff = np.abs(img[..., :3] - background).sum(axis=-1)
    return float((diff[inside] > 250).mean())


# --- without the fonts -------------------------------------------------------------------------


def test_font_manifest_is_pinned() -> None:
    specs = font_specs()
    assert set(specs) == FONT_NAMES
    for name, spec in specs.items():
        source = spec.source
        assert source.registry == "debian", name
        assert re.fullmatch(r"[0-9a-f]{64}", source.archive_sha256), name
        assert "-" in source.version, f"{name}: the Debian revision is part of the version"
        assert spec.licence != "unknown", name
        for f in source.files:
            assert f.path.startswith("usr/share/fonts/"), f.path
            assert re.fullmatch(r"[0-9a-f]{64}", f.sha256), f.path


def test_an_archive_with_another_checksum_is_refused(tmp_path: Path) -> None:
    """A .deb of a font package that fails its pinned checksum is an error, never used."""
    archives = tmp_path / "archives"
    archives.mkdir()
    package = font_specs()["din"].source.package
    (archives / f"{package}_1.0-4_all.deb").write_bytes(b"!<arch>\nnot the real package")
    with pytest.raises(ModelStoreError, match="do\\(es\\) not match the pinned sha256"):
        load_fonts(tmp_path / "fonts", archives)
    assert not any((tmp_path / "fonts").rglob("*.ttf"))


def test_unknown_style_is_named() -> None:
    with pytest.raises(ValueError, match="'motorbike'"):
        render_plate("motorbike", np.random.default_rng(0), {})


def test_random_style_is_balanced() -> None:
    rng = np.random.default_rng(3)
    draws = [random_style(rng) for _ in range(5000)]
    assert set(draws) == set(STYLES)
    for style in STYLES:
        assert abs(draws.count(style) / len(draws) - 1 / len(STYLES)) < 0.03, style


# --- with the fonts (fetched from Debian: network on the first run) ----------------------------


@pytest.mark.models
def test_fonts_are_fetched_and_verified(fonts: dict[str, Path], tmp_path: Path) -> None:
    specs = font_specs()
    assert set(fonts) == set(specs)
    for name, path in fonts.items():
        assert sha256_of(path) == specs[name].source.files[0].sha256, name
    assert load_fonts(default_cache_dir() / "platebench" / "fonts") == fonts  # cached
    # A corrupted cached font is noticed by its checksum and fetched again.
    cache = tmp_path / "fonts"
    shutil.copytree(fonts["din"].parent, cache / fonts["din"].parent.name)
    copied = cache / fonts["din"].parent.name / fonts["din"].name
    copied.write_bytes(b"corrupt")
    again = load_fonts(cache)
    assert again["din"] == copied
    assert sha256_of(copied) == specs["din"].source.files[0].sha256


@pytest.mark.models
@pytest.mark.parametrize("style", STYLES)
@pytest.mark.parametrize("height", [128, 40])
def test_plates_have_the_height_aspect_and_outline(
    style: str, height: int, fonts: dict[str, Path]
) -> None:
    for plate in plates(style, fonts, height=height):
        h, w, channels = plate.image.shape
        assert (h, channels) == (height, 4)
        assert plate.image.dtype == np.uint8
        assert plate.style == style
        assert plate.size_mm in SIZES_MM[style], plate.variant
        mm_w, mm_h = plate.size_mm
        assert abs(w / h - mm_w / mm_h) / (mm_w / mm_h) < 0.03, plate.variant
        alpha = plate.image[..., 3]
        assert alpha[0, 0] == alpha[0, -1] == alpha[-1, 0] == alpha[-1, -1] == 0, plate.variant
        assert alpha[h // 2, w // 2] == 255, plate.variant
        assert (alpha == 255).mean() > 0.85, plate.variant


@pytest.mark.models
@pytest.mark.parametrize("style", STYLES)
def test_plates_carry_plausible_text(style: str, fonts: dict[str, Path]) -> None:
    for plate in plates(style, fonts, n=12, height=64):
        assert re.fullmatch(TEXT[style], plate.text), (plate.variant, plate.text)
        assert plate.lines == (2 if style == "two_line" else 1)
        assert plate.text.count("\n") == plate.lines - 1
        assert any(c.isdigit() for c in plate.text), plate.text
        if style == "cn":
            assert re.match(CJK, plate.text[0])
            assert len(plate.text.split("·")[1]) == (6 if plate.variant == "cn-nev" else 5)
        if plate.variant == "two_line-cn":
            assert plate.text[0] in PROVINCES


@pytest.mark.models
@pytest.mark.parametrize("style", STYLES)
def test_the_characters_are_drawn(style: str, fonts: dict[str, Path]) -> None:
    """Ink covers a plausible share of the plate: characters are there, and not a blot."""
    for plate in plates(style, fonts, n=8, height=96):
        assert 0.08 <= ink_fraction(plate) <= 0.45, (plate.variant, ink_fraction(plate))
    # and a blank plate of the same colours would have almost none
    blank = plates(style, fonts, n=1, height=96)[0].image.copy()
    blank[..., :3] = np.median(blank[blank[..., 3] == 255][:, :3], axis=0)
    assert ink_fraction(RenderedPlate(blank, style, "", 1)) < 0.01


@pytest.mark.models
@pytest.mark.parametrize("style", STYLES)
def test_the_same_seed_gives_the_same_plate(style: str, fonts: dict[str, Path]) -> None:
    a = render_plate(style, np.random.default_rng(11), fonts, 80)
    b = render_plate(style, np.random.default_rng(11), fonts, 80)
    c = render_plate(style, np.random.default_rng(12), fonts, 80)
    assert a.image.tobytes() == b.image.tobytes()
    assert (a.text, a.variant) == (b.text, b.variant)
    assert a.image.shape != c.image.shape or a.image.tobytes() != c.image.tobytes()
    assert a.text != c.text


@pytest.mark.models
def test_every_variant_turns_up(fonts: dict[str, Path]) -> None:
    """The styles' variants (EU countries, the new-energy plate, the motorcycle plates)."""
    seen = {
        render_plate(style, np.random.default_rng([5, i]), fonts, 32).variant
        for style in STYLES
        for i in range(60)
    }
    expected = {"uk", "us", "cn", "cn-nev", "eu-D", "eu-F", "eu-NL"}
    expected |= {f"two_line-{k}" for k in ("cn", "eu", "uk", "us")}
    assert expected <= seen
