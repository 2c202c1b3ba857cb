"""Rendered licence plates for the composite plate benchmark.

Plates are drawn in millimetres at a supersampled resolution and scaled down to the requested
height, so that small plates stay as smooth as real ones seen from afar. Five styles:

``eu``
    A 520 x 110 mm EU plate: reflective white (yellow for NL) with a black rim, the blue band
    with the ring of stars and a country code; D, F, NL, I, E, B, A, PL, CZ and S formats
    (German seals between district and letters, French and Italian right-hand bands).
``uk``
    A 520 x 111 mm UK plate: white front or yellow rear, black ``AB12 CDE``, now and then a
    blue UK or green zero-emission band.
``us``
    A 12 x 6 inch (305 x 152 mm) US plate: a white, pale or gradient background, sometimes
    a landscape silhouette, a state name at the top, coloured characters, sometimes a slogan,
    a rim, a registration sticker and bolts or holes in the four slots.
``cn``
    A 440 x 140 mm Chinese plate: blue with white characters and inner border,
    ``京A·12345``; now and then the 480 x 140 mm gradient-green new-energy plate with black
    characters and six alphanumerics (``粤B·D12345``).
``two_line``
    A motorcycle plate with two rows: the Chinese yellow 220 x 140 mm (``沪A`` over
    ``12345``), an EU 280 x 200 mm with the blue band, a UK yellow 229 x 178 mm or a US
    7 x 4 inch (178 x 102 mm) one.

Every plate is mildly worn: a little colour variation, embossed characters with a highlight
and a shadow, uneven light, dirt, specks and scratches. All randomness comes from the caller's
generator, so the same seed gives the same plate, byte for byte.

Fonts come from Debian packages (``fonts.toml``), fetched and verified with the model store's
machinery (:func:`obscura.zoo.store.fetch_sample`); nothing is bundled.
"""

from __future__ import annotations

import functools
import math
import tomllib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

import cv2
import numpy as np
from numpy.typing import NDArray
from PIL import Image, ImageDraw, ImageFont

from obscura.types import ImageArray
from obscura.zoo.manifest import RegistrySource, SampleSpec, parse_source
from obscura.zoo.store import fetch_sample

STYLES: tuple[str, ...] = ("eu", "uk", "us", "cn", "two_line")

Arr = NDArray[np.float32]
RGB = tuple[float, float, float]

LETTERS = "ABCDEFGHJKLMNPRSTUVWXYZ"  # no I, O, Q: rare or banned on most plates
DIGITS = "0123456789"
PROVINCES = "京津沪渝冀豫云辽黑湘皖鲁新苏浙赣鄂桂甘晋蒙陕吉闽贵粤青藏川宁琼"


@dataclass(frozen=True, eq=False)
class RenderedPlate:
    """One plate: ``image`` is H x W x 4 BGRA, alpha 0 outside the plate's outline."""

    image: ImageArray
    style: str
    text: str  # the registration as printed (separators included), rows joined by "\n"
    lines: int
    variant: str = ""  # e.g. "eu-D", "cn-nev", "two_line-uk"
    size_mm: tuple[int, int] = (520, 110)  # the real plate's width and height


# --- fonts -------------------------------------------------------------------------------------


def font_specs(text: str | None = None, section: str = "fonts") -> dict[str, SampleSpec]:
    """The fonts ``fonts.toml`` (or ``text`` in its format) lists under ``section``, by name
    (``variant_fonts``: those of :mod:`obscura_tools.platebench.variant`)."""
    if text is None:
        text = resources.files("obscura_tools.platebench").joinpath("fonts.toml").read_text("utf-8")
    data = tomllib.loads(text)
    return {
        name: SampleSpec(
            f"font {name}",
            table.get("description", ""),
            table.get("licence", "unknown"),
            parse_source(table["source"], f"{section}.{name}.source"),
        )
        for name, table in data.get(section, {}).items()
    }


def load_fonts(
    cache_dir: Path, archives_dir: Path | None = None, section: str = "fonts"
) -> dict[str, Path]:
    """Fetches (once) and verifies the fonts, returning each font file's path by name.

    Fonts of the same package are fetched together, into ``cache_dir/<package>_<version>``;
    files already there are re-verified by checksum. ``archives_dir`` is searched first for
    the .deb files, as for the models. Errors are :class:`~obscura.errors.ModelStoreError`.
    ``section`` picks the table of ``fonts.toml`` (see :func:`font_specs`).
    """
    specs = font_specs(section=section)
    groups: dict[tuple[str, str, str, str], list[str]] = {}
    for name, spec in specs.items():
        s = spec.source
        groups.setdefault((s.registry, s.package, s.version, s.archive_sha256), []).append(name)
    paths: dict[str, Path] = {}
    for names in groups.values():
        first = specs[names[0]].source
        files = tuple(dict.fromkeys(f for n in names for f in specs[n].source.files))
        merged = SampleSpec(
            f"fonts {', '.join(names)} ({first.package})",
            "",
            specs[names[0]].licence,
            RegistrySource(
                first.registry, first.package, first.version, first.archive_sha256, files
            ),
        )
        folder = f"{first.package}_{first.version}".replace(":", "_")
        fetched = fetch_sample(merged, cache_dir / folder, archives_dir)
        by_file = {f.path: p for f, p in zip(files, fetched, strict=True)}
        for name in names:
            paths[name] = by_file[specs[name].source.files[0].path]
    return paths


@functools.lru_cache(maxsize=512)
def _font(path: str, size: int) -> ImageFont.FreeTypeFont:
    return ImageFont.truetype(path, size)


@functools.lru_cache(maxsize=64)
def _cap_ratio(path: str, probe: str) -> float:
    """Height of ``probe``'s ink per point of font size."""
    font = _font(path, 200)
    _, top, _, bottom = font.getbbox(probe, anchor="ls")
    return max(1.0, float(bottom - top)) / 200.0


# --- drawing -----------------------------------------------------------------------------------


def _rgb(colour: Sequence[float]) -> RGB:
    return (colour[0] / 255.0, colour[1] / 255.0, colour[2] / 255.0)


def _jitter(rng: np.random.Generator, colour: Sequence[float], amount: float = 8.0) -> RGB:
    """A colour (0-255) with a little per-plate variation, as 0-1 floats."""
    shift = rng.normal(0.0, amount, 3) + rng.normal(0.0, amount * 0.5)
    c = np.clip(np.asarray(colour, np.float64) + shift, 0, 255)
    return _rgb([float(v) for v in c])


class _Canvas:
    """A plate being drawn: millimetre coordinates, supersampled float RGB in 0-1."""

    def __init__(self, size_mm: tuple[float, float], height: int) -> None:
        self.w_mm, self.h_mm = size_mm
        self.out_h = height
        self.out_w = max(1, round(height * self.w_mm / self.h_mm))
        work_h = height * max(2, math.ceil(160 / height))
        self.k = work_h / self.h_mm
        self.h = work_h
        self.w = round(self.w_mm * self.k)
        self.rgb: Arr = np.ones((self.h, self.w, 3), np.float32)
        self.radius = 6.0  # of the plate's corners, mm

    def px(self, mm: float) -> float:
        return mm * self.k

    def draw(self, fn: Callable[[ImageDraw.ImageDraw], None]) -> Arr:
        """A 0-1 mask of whatever ``fn`` draws (in white) on a blank canvas."""
        img = Image.new("L", (self.w, self.h), 0)
        fn(ImageDraw.Draw(img))
        return np.asarray(img, np.float32) / 255.0

    def ellipse(self, cx: float, cy: float, rx: float, ry: float, width: int = 0) -> Arr:
        """An ellipse (px): filled, or its outline ``width`` px wide."""
        box = (cx - rx, cy - ry, cx + rx, cy + ry)
        img = Image.new("L", (self.w, self.h), 0)
        if width > 0:
            ImageDraw.Draw(img).ellipse(box, outline=255, width=width)
        else:
            ImageDraw.Draw(img).ellipse(box, fill=255)
        return np.asarray(img, np.float32) / 255.0

    def shape(self, points: Sequence[tuple[float, float]], width: int = 0) -> Arr:
        """A filled polygon (px), or a polyline ``width`` px wide."""
        img = Image.new("L", (self.w, self.h), 0)
        if width > 0:
            ImageDraw.Draw(img).line(list(points), fill=255, width=width)
        else:
            ImageDraw.Draw(img).polygon(list(points), fill=255)
        return np.asarray(img, np.float32) / 255.0

    def rrect(
        self, box: tuple[float, float, float, float], radius: float, width: float = 0.0
    ) -> Arr:
        """A rounded rectangle (mm): filled, or its outline ``width`` mm wide."""
        x0, y0, x1, y1 = (self.px(v) for v in box)
        r, w = self.px(radius), round(self.px(width))

        def fn(d: ImageDraw.ImageDraw) -> None:
            if w > 0:
                d.rounded_rectangle((x0, y0, x1, y1), r, outline=255, width=max(1, w))
            else:
                d.rounded_rectangle((x0, y0, x1, y1), r, fill=255)

        return self.draw(fn)

    def paint(self, mask: Arr, colour: RGB | Arr) -> None:
        """Paints ``colour`` (one, or an image) where ``mask`` is, blending at its edges."""
        window = _window(mask, 0)
        if window is None:
            return
        m = mask[window][..., None]
        c = np.asarray(colour, np.float32)
        if c.ndim == 3:
            c = c[window]
        self.rgb[window] = self.rgb[window] * (1.0 - m) + c * m

    def fill(self, colour: RGB) -> None:
        self.rgb[:] = np.asarray(colour, np.float32)

    def vgradient(self, top: RGB, bottom: RGB) -> None:
        t = np.linspace(0.0, 1.0, self.h, dtype=np.float32)[:, None, None]
        grad = np.asarray(top, np.float32) * (1 - t) + np.asarray(bottom, np.float32) * t
        self.rgb = np.broadcast_to(grad, self.rgb.shape).astype(np.float32)

    def ink(self, mask: Arr, colour: RGB, relief: float = 1.0) -> None:
        """Characters (or other raised shapes) with an embossed edge: a soft shadow below
        right, a highlight above left, the shape itself slightly darker at its edges."""
        d = max(1, round(self.px(0.7) * relief))
        blur = max(1.0, self.px(0.5))
        window = _window(mask, d + math.ceil(blur * 5))
        if window is None:
            return
        m = mask[window]
        rgb = self.rgb[window]
        shadow = cv2.GaussianBlur(_shift(m, d, d), (0, 0), blur) * (1 - m)
        light = cv2.GaussianBlur(_shift(m, -d, -d), (0, 0), blur) * (1 - m)
        rgb = rgb * (1 - 0.28 * relief * shadow[..., None])
        rgb = rgb + (1 - rgb) * (0.22 * relief * light[..., None])
        inner = cv2.GaussianBlur(m, (0, 0), blur * 1.5)
        shade = np.clip(1.0 - 0.18 * relief * (1 - inner), 0.0, 1.0)[..., None]
        m3 = m[..., None]
        self.rgb[window] = rgb * (1 - m3) + np.asarray(colour, np.float32) * shade * m3


def _window(mask: Arr, margin: int) -> tuple[slice, slice] | None:
    """The bounding box of ``mask``'s non-zero pixels, ``margin`` px larger (None: empty)."""
    rows = np.flatnonzero(mask.any(axis=1))
    if rows.size == 0:
        return None
    cols = np.flatnonzero(mask.any(axis=0))
    h, w = mask.shape
    return (
        slice(max(0, int(rows[0]) - margin), min(h, int(rows[-1]) + 1 + margin)),
        slice(max(0, int(cols[0]) - margin), min(w, int(cols[-1]) + 1 + margin)),
    )


def _resize(mask: Arr, width: int, height: int) -> Arr:
    return np.asarray(cv2.resize(mask, (width, height), interpolation=cv2.INTER_AREA), np.float32)


def _shift(mask: Arr, dx: int, dy: int) -> Arr:
    out = np.zeros_like(mask)
    h, w = mask.shape
    out[max(0, dy) : h + min(0, dy), max(0, dx) : w + min(0, dx)] = mask[
        max(0, -dy) : h + min(0, -dy), max(0, -dx) : w + min(0, -dx)
    ]
    return out


@dataclass(frozen=True)
class _Run:
    """A rendered line of characters: a 0-1 mask cropped to its ink left and right and
    from the cap line (row 0) to below the baseline (row ``cap``)."""

    mask: Arr
    cap: int
    gaps: tuple[float, ...] = ()  # x centres of the gaps between parts


def _text_run(
    text: str,
    font: Path,
    cap_px: float,
    *,
    tracking: float = 0.08,
    space: float = 0.45,
    bold: float = 0.0,
    probe: str = "H",
) -> _Run:
    """``text`` with capitals ``cap_px`` high; ``tracking`` and ``space`` in units of cap."""
    path = str(font)
    size = max(6, round(cap_px / _cap_ratio(path, probe)))
    f = _font(path, size)
    stroke = round(bold * size)
    ascent, descent = f.getmetrics()
    pad = stroke + 4
    layout: list[tuple[float, str]] = []
    x = float(pad)
    for ch in text:
        if ch == " ":
            x += space * cap_px
            continue
        layout.append((x, ch))
        x += f.getlength(ch) + tracking * cap_px + stroke
    width = int(x + 2 * pad)
    base = pad + ascent
    img = Image.new("L", (max(1, width), ascent + descent + 2 * pad), 0)
    draw = ImageDraw.Draw(img)
    for cx, ch in layout:
        draw.text((cx, base), ch, fill=255, font=f, anchor="ls", stroke_width=stroke)
    mask = np.asarray(img, np.float32) / 255.0
    cols = np.flatnonzero(mask.max(axis=0) > 0.05)
    if cols.size == 0:
        return _Run(np.zeros((max(1, round(cap_px)), 1), np.float32), round(cap_px))
    _, top, _, _ = f.getbbox(probe, anchor="ls")
    top_row = max(0, base + int(top) - stroke)
    rows = np.flatnonzero(mask.max(axis=1) > 0.05)
    bottom = max(base + stroke, int(rows[-1]) + 1)
    return _Run(mask[top_row:bottom, cols[0] : cols[-1] + 1], base - top_row)


def _join(runs: Sequence[_Run], gap: float) -> _Run:
    """Runs side by side with ``gap`` px between them, aligned on their baselines."""
    cap = max(r.cap for r in runs)
    below = max(r.mask.shape[0] - r.cap for r in runs)
    width = sum(r.mask.shape[1] for r in runs) + round(gap) * (len(runs) - 1)
    out = np.zeros((cap + below, width), np.float32)
    x = 0
    gaps = []
    for i, r in enumerate(runs):
        h, w = r.mask.shape
        out[cap - r.cap : cap - r.cap + h, x : x + w] = r.mask
        x += w
        if i < len(runs) - 1:
            gaps.append(x + gap / 2)
            x += round(gap)
    return _Run(out, cap, tuple(gaps))


def _place(
    canvas: _Canvas,
    run: _Run,
    x0: float,
    x1: float,
    cap_top: float,
    *,
    align: str = "center",
    stretch: bool = False,
) -> tuple[Arr, float, float]:
    """Places ``run`` (px) with its cap line at ``cap_top`` within ``x0..x1`` (mm); squeezed
    to fit (or stretched to fill). Returns the full-size mask, and the run's left edge and
    horizontal scale, to place things in its gaps."""
    h, w = run.mask.shape
    avail = canvas.px(x1 - x0)
    scale = 1.0 if w <= avail and not stretch else avail / w
    mask = run.mask
    if scale != 1.0:
        mask = _resize(mask, max(1, round(w * scale)), h)
    nw = mask.shape[1]
    if align == "left":
        left = canvas.px(x0)
    elif align == "right":
        left = canvas.px(x1) - nw
    else:
        left = canvas.px((x0 + x1) / 2) - nw / 2
    top = round(canvas.px(cap_top))
    full = np.zeros((canvas.h, canvas.w), np.float32)
    lx, ty = round(left), top
    sx0, sy0 = max(0, -lx), max(0, -ty)
    dx0, dy0 = max(0, lx), max(0, ty)
    dx1, dy1 = min(canvas.w, lx + nw), min(canvas.h, ty + h)
    if dx1 > dx0 and dy1 > dy0:
        full[dy0:dy1, dx0:dx1] = mask[sy0 : sy0 + dy1 - dy0, sx0 : sx0 + dx1 - dx0]
    return full, float(lx), scale


def _boxed_char(
    canvas: _Canvas,
    ch: str,
    font: Path,
    box: tuple[float, float, float, float],
    *,
    stretch: bool,
    bold: float = 0.0,
) -> Arr:
    """One character fitted to a box (mm): to its height, and to its width too if
    ``stretch`` (CJK province characters), else at most its width."""
    x0, y0, x1, y1 = box
    bw, bh = round(canvas.px(x1 - x0)), round(canvas.px(y1 - y0))
    run = _text_run(ch, font, bh * 1.1, bold=bold, probe=ch if stretch else "H")
    m = run.mask
    rows = np.flatnonzero(m.max(axis=1) > 0.05)
    if rows.size:
        m = m[rows[0] : rows[-1] + 1]
    h, w = m.shape
    tw = bw if stretch else min(bw, max(1, round(w * bh / h)))
    m = _resize(m, max(1, tw), max(1, bh))
    full = np.zeros((canvas.h, canvas.w), np.float32)
    left = round(canvas.px((x0 + x1) / 2) - tw / 2)
    top = round(canvas.px(y0))
    hh, ww = m.shape
    hh, ww = min(hh, canvas.h - top), min(ww, canvas.w - left)
    full[top : top + hh, left : left + ww] = m[:hh, :ww]
    return full


def _star(cx: float, cy: float, r: float) -> list[tuple[float, float]]:
    pts = []
    for i in range(10):
        rad = r if i % 2 == 0 else r * 0.4
        a = -math.pi / 2 + i * math.pi / 5
        pts.append((cx + rad * math.cos(a), cy + rad * math.sin(a)))
    return pts


def _eu_band(
    canvas: _Canvas,
    rng: np.random.Generator,
    fonts: Mapping[str, Path],
    box: tuple[float, float, float, float],
    code: str,
) -> None:
    """The blue EU band: a ring of twelve yellow stars over the white country code."""
    x0, y0, x1, y1 = box
    blue = _jitter(rng, (0, 51, 153), 10)
    canvas.paint(canvas.rrect(box, 1.5), blue)
    bw, bh = x1 - x0, y1 - y0
    cx = canvas.px((x0 + x1) / 2)
    cy = canvas.px(y0 + bh * 0.32)
    ring = canvas.px(min(bw * 0.3, bh * 0.2))
    star_r = ring * 0.22

    stars = np.zeros((canvas.h, canvas.w), np.float32)
    for i in range(12):
        a = i * math.pi / 6
        star = _star(cx + ring * math.cos(a), cy + ring * math.sin(a), star_r)
        stars = np.maximum(stars, canvas.shape(star))
    canvas.paint(stars, _jitter(rng, (255, 204, 0), 8))
    cap = min(bh * 0.24, bw * 0.9 / max(1, len(code)) * 1.3)
    run = _text_run(code, fonts["din"], canvas.px(cap), tracking=0.05)
    mask, _, _ = _place(canvas, run, x0 + bw * 0.08, x1 - bw * 0.08, y0 + bh * 0.62)
    canvas.paint(mask, _jitter(rng, (250, 250, 250), 4))


def _seals(canvas: _Canvas, rng: np.random.Generator, x: float, cap_top: float, cap: float) -> None:
    """German plate seals in the gap at ``x`` (px): the round inspection sticker above,
    the state's seal below."""
    r = canvas.px(cap) * 0.15
    ctop = canvas.px(cap_top + cap * 0.3)
    cbot = canvas.px(cap_top + cap * 0.72)
    year = [(60, 110, 200), (240, 200, 40), (230, 120, 170), (90, 170, 80), (240, 140, 40)]
    canvas.paint(canvas.ellipse(x, ctop, r, r), _jitter(rng, _pick(rng, year), 10))
    canvas.paint(canvas.ellipse(x, ctop, r, r, width=2), _rgb((40, 40, 40)))
    canvas.paint(canvas.ellipse(x, cbot, r, r), _jitter(rng, (225, 225, 220), 6))
    rr = r * 0.55
    emblem = [(200, 40, 40), (30, 30, 30), (40, 90, 170), (40, 130, 60)]
    shield = [(x - rr * 0.7, cbot - rr), (x + rr * 0.7, cbot - rr), (x + rr * 0.7, cbot + rr * 0.3),
              (x, cbot + rr), (x - rr * 0.7, cbot + rr * 0.3)]  # fmt: skip
    canvas.paint(canvas.shape(shield), _jitter(rng, _pick(rng, emblem), 10))


def _bolt(canvas: _Canvas, rng: np.random.Generator, cx: float, cy: float, r: float) -> Arr:
    """A bolt head (mm) at a mounting hole; returns a mask of holes left empty (alpha 0)."""
    x, y, rp = canvas.px(cx), canvas.px(cy), canvas.px(r)
    slot = canvas.ellipse(x, y, rp * 1.5, rp)
    if rng.random() < 0.3:
        return slot  # an empty slot
    canvas.paint(slot, _rgb((40, 40, 40)))
    canvas.ink(canvas.ellipse(x, y, rp, rp), _jitter(rng, (170, 170, 165), 15), relief=0.8)
    groove = canvas.shape([(x - rp * 0.6, y), (x + rp * 0.6, y)], max(1, round(rp * 0.25)))
    canvas.paint(groove, _rgb((70, 70, 70)))
    return np.zeros((canvas.h, canvas.w), np.float32)


# --- registrations -----------------------------------------------------------------------------


def _pick(rng: np.random.Generator, items: Sequence[Any]) -> Any:
    return items[int(rng.integers(len(items)))]


def _chars(rng: np.random.Generator, alphabet: str, n: int) -> str:
    return "".join(alphabet[int(i)] for i in rng.integers(0, len(alphabet), n))


def _num(rng: np.random.Generator, n: int) -> str:
    return str(int(rng.integers(1, 10))) + _chars(rng, DIGITS, n - 1)


_DISTRICTS = ("B", "M", "HH", "K", "F", "S", "KA", "MZ", "HD", "BN", "DO", "LEV", "WOB", "GÖ",
              "OF", "MTK", "DA", "N", "H", "D", "E", "HB", "RE", "GL", "SU")  # fmt: skip


def _eu_registration(rng: np.random.Generator, country: str) -> list[str]:
    """The parts of a registration; the gaps between parts are wide (German seals, or the
    space / hyphen the parts are joined with when printed)."""
    if country == "D":
        district = str(_pick(rng, _DISTRICTS)).replace("Ö", "O")
        letters = _chars(rng, LETTERS, int(rng.integers(1, 3)))
        digits = _num(rng, int(rng.integers(1, 5)))
        return [district, f"{letters} {digits}"]
    if country == "F":
        return [f"{_chars(rng, LETTERS, 2)}-{_chars(rng, DIGITS, 3)}-{_chars(rng, LETTERS, 2)}"]
    if country == "NL":
        fmt = _pick(rng, ("99-XXX-9", "9-XXX-99", "XX-999-X", "X-999-XX", "XXX-99-X"))
        return ["".join(_chars(rng, DIGITS if c == "9" else "BDFGHJKLNPRSTVXZ", 1)
                        if c in "9X" else c for c in fmt)]  # fmt: skip
    if country == "I":
        return [f"{_chars(rng, LETTERS, 2)} {_chars(rng, DIGITS, 3)}{_chars(rng, LETTERS, 2)}"]
    if country == "E":
        return [f"{_chars(rng, DIGITS, 4)} {_chars(rng, 'BCDFGHJKLMNPRSTVWXYZ', 3)}"]
    if country == "B":
        return [f"{int(rng.integers(1, 3))}-{_chars(rng, LETTERS, 3)}-{_chars(rng, DIGITS, 3)}"]
    if country == "A":
        return [f"{_pick(rng, ('W', 'L', 'G', 'S', 'K', 'I', 'WU', 'GU', 'BL'))}-"
                f"{_num(rng, int(rng.integers(3, 6)))}{_chars(rng, LETTERS, 1)}"]  # fmt: skip
    if country == "PL":
        return [f"{_chars(rng, LETTERS, 2)} {_num(rng, 5)}"]
    if country == "CZ":
        return [f"{int(rng.integers(1, 10))}{_chars(rng, 'ABCEHJKLMPSTUZ', 1)}"
                f"{_chars(rng, LETTERS, 1)} {_chars(rng, DIGITS, 4)}"]  # fmt: skip
    # S
    return [f"{_chars(rng, LETTERS, 3)} {_chars(rng, DIGITS, 2)}{_chars(rng, LETTERS + DIGITS, 1)}"]


_EU_COUNTRIES = ("D", "D", "D", "F", "F", "NL", "I", "E", "B", "A", "PL", "CZ", "S")
_EU_FONT = {"D": "din", "F": "narrow", "NL": "beteckna", "I": "narrow", "E": "din",
            "B": "narrow", "A": "din", "PL": "din", "CZ": "din", "S": "beteckna"}  # fmt: skip

# --- styles ------------------------------------------------------------------------------------


def _outline(canvas: _Canvas, radius: float) -> Arr:
    """The plate's outline (its alpha): a rounded rectangle, its corners at least 3.6 output
    pixels round, so that the corner pixels stay transparent even on small plates."""
    radius = max(radius, 3.6 * canvas.h_mm / canvas.out_h)
    return canvas.rrect((0, 0, canvas.w_mm - 1 / canvas.k, canvas.h_mm - 1 / canvas.k), radius)


def _rim(canvas: _Canvas, colour: RGB, *, inset: float, width: float, radius: float) -> None:
    box = (inset, inset, canvas.w_mm - inset, canvas.h_mm - inset)
    canvas.ink(canvas.rrect(box, max(0.5, radius - inset), width), colour, relief=0.6)


def _render_eu(
    canvas: _Canvas, rng: np.random.Generator, fonts: Mapping[str, Path]
) -> tuple[str, str]:
    country = str(_pick(rng, _EU_COUNTRIES))
    bg = _jitter(rng, (247, 208, 20) if country == "NL" else (246, 246, 242), 5)
    ink_col = _jitter(rng, (150, 20, 30) if country == "B" else (18, 18, 20), 6)
    canvas.fill(bg)
    canvas.radius = float(rng.uniform(4.5, 7))
    _rim(canvas, ink_col, inset=1.2, width=2.0, radius=6.0)
    band = (4.0, 4.0, 46.0, canvas.h_mm - 4.0)
    _eu_band(canvas, rng, fonts, band, country)
    right = canvas.w_mm - 10.0
    if country in ("F", "I"):
        rb = (canvas.w_mm - 46.0, 4.0, canvas.w_mm - 4.0, canvas.h_mm - 4.0)
        canvas.paint(canvas.rrect(rb, 1.5), _jitter(rng, (0, 51, 153), 10))
        if country == "F":  # a region logo over the department number
            logo = _jitter(rng, _pick(rng, ((220, 60, 40), (250, 200, 40), (60, 160, 90))), 12)
            lx = canvas.w_mm - 25
            canvas.paint(canvas.rrect((lx - 12, 12, lx + 12, 50), 6), logo)
        label = _chars(rng, DIGITS, 2)  # department number (F) or year (I)
        run = _text_run(label, fonts["din"], canvas.px(22))
        m, _, _ = _place(canvas, run, rb[0] + 4, rb[2] - 4, 62)
        canvas.paint(m, _rgb((250, 250, 250)))
        right = rb[0] - 8.0
    parts = _eu_registration(rng, country)
    font = fonts[_EU_FONT[country]]
    # German plates fill the height; the stripes of Austria and the two bands of F and I less
    cap = float(rng.uniform(64, 70)) if country in ("A", "F", "I") else float(rng.uniform(70, 77))
    runs = [_text_run(p, font, canvas.px(cap), tracking=0.1, space=0.4) for p in parts]
    run = _join(runs, canvas.px(cap * 0.62)) if len(runs) > 1 else runs[0]
    cap_top = (canvas.h_mm - cap) / 2
    if country == "A":  # the red-white-red stripes along the top and bottom
        red = _jitter(rng, (200, 16, 46), 8)
        for y in (4.0, canvas.h_mm - 11.0):
            canvas.paint(canvas.rrect((band[2] + 2, y, canvas.w_mm - 4.5, y + 7.0), 1.0), red)
    mask, left, scale = _place(canvas, run, band[2] + 8.0, right, cap_top)
    for gx in run.gaps:
        _seals(canvas, rng, left + gx * scale, cap_top, cap)
    canvas.ink(mask, ink_col)
    return " ".join(parts), f"eu-{country}"


def _render_uk(canvas: _Canvas, rng: np.random.Generator, fonts: Mapping[str, Path]) -> str:
    rear = rng.random() < 0.5
    bg = _jitter(rng, (250, 206, 10) if rear else (246, 246, 242), 5)
    black = _jitter(rng, (15, 15, 15), 5)
    canvas.fill(bg)
    canvas.radius = float(rng.uniform(4.5, 8))
    if rng.random() < 0.35:
        _rim(canvas, black, inset=2.0, width=1.5, radius=6.0)
    left = 16.0
    band = rng.random()
    if band < 0.4:
        box = (3.0, 3.0, 50.0, canvas.h_mm - 3.0)
        green = band < 0.08
        canvas.paint(canvas.rrect(box, 2.0), _jitter(rng, (0, 160, 80) if green else (0, 51, 153)))
        code = "UK" if rng.random() < 0.7 else "GB"
        run = _text_run(code, fonts["din"], canvas.px(22))
        m, _, _ = _place(canvas, run, box[0] + 4, box[2] - 4, canvas.h_mm * 0.62)
        canvas.paint(m, _rgb((250, 250, 250)))
        if not green:  # a simple flag above the code
            fx0, fy0, fx1, fy1 = box[0] + 10, 14.0, box[2] - 10, 40.0
            canvas.paint(canvas.rrect((fx0, fy0, fx1, fy1), 0.5), _rgb((1, 33, 105)))
            cx, cy = (fx0 + fx1) / 2, (fy0 + fy1) / 2
            canvas.paint(canvas.rrect((fx0, cy - 3.5, fx1, cy + 3.5), 0.1), _rgb((250, 250, 250)))
            canvas.paint(canvas.rrect((cx - 3.5, fy0, cx + 3.5, fy1), 0.1), _rgb((250, 250, 250)))
            canvas.paint(canvas.rrect((fx0, cy - 2, fx1, cy + 2), 0.1), _rgb((200, 16, 46)))
            canvas.paint(canvas.rrect((cx - 2, fy0, cx + 2, fy1), 0.1), _rgb((200, 16, 46)))
        left = box[2] + 9.0
    area, age = _chars(rng, LETTERS, 2), _chars(rng, DIGITS, 2)
    text = f"{area}{age} {_chars(rng, LETTERS, 3)}"
    cap = float(rng.uniform(72, 79))
    run = _text_run(text, fonts["tiresias"], canvas.px(cap), tracking=0.18, space=0.62)
    cap_top = (canvas.h_mm - cap) / 2 - 1.5
    mask, _, _ = _place(canvas, run, left, canvas.w_mm - 16.0, cap_top)
    canvas.ink(mask, black)
    if rng.random() < 0.5:  # the supplier's line at the bottom
        dealer = str(_pick(rng, ("AUTO PLATES LTD", "PLATE CENTRE", "MOTOR SERVICES", "BS AU")))
        run = _text_run(dealer, fonts["narrow"], canvas.px(3.5), tracking=0.05)
        m, _, _ = _place(canvas, run, 150, canvas.w_mm - 150, canvas.h_mm - 8.5)
        canvas.paint(m * 0.85, black)
    return text


_STATES = (
    ("CALIFORNIA", "dmv.ca.gov"), ("TEXAS", "THE LONE STAR STATE"), ("NEW YORK", "EMPIRE STATE"),
    ("FLORIDA", "SUNSHINE STATE"), ("OHIO", "BIRTHPLACE OF AVIATION"), ("OREGON", ""),
    ("ARIZONA", "GRAND CANYON STATE"), ("NEVADA", "THE SILVER STATE"), ("COLORADO", ""),
    ("MICHIGAN", "PURE MICHIGAN"), ("GEORGIA", "PEACH STATE"), ("WASHINGTON", ""),
    ("ILLINOIS", "LAND OF LINCOLN"), ("VIRGINIA", "IS FOR LOVERS"), ("UTAH", "LIFE ELEVATED"),
    ("MAINE", "VACATIONLAND"), ("IOWA", ""), ("NEW JERSEY", "GARDEN STATE"),
    ("MINNESOTA", "10,000 LAKES"), ("IDAHO", "FAMOUS POTATOES"),
)  # fmt: skip
_US_INK = ((20, 40, 110), (120, 20, 30), (20, 20, 25), (20, 90, 50), (10, 60, 140))
_US_BG = ((248, 248, 246), (236, 242, 250), (250, 246, 228), (238, 246, 236), (250, 238, 238))


def _us_background(canvas: _Canvas, rng: np.random.Generator) -> None:
    kind = rng.random()
    if kind < 0.35:
        canvas.fill(_jitter(rng, _US_BG[0], 4))
    elif kind < 0.6:
        canvas.fill(_jitter(rng, _pick(rng, _US_BG[1:]), 5))
    else:
        top = _jitter(rng, _pick(rng, ((190, 215, 240), (250, 225, 180), (250, 250, 250))), 8)
        canvas.vgradient(top, _jitter(rng, (250, 250, 248), 4))
    if rng.random() < 0.45:  # a landscape silhouette in pale colour
        base = canvas.h_mm * float(rng.uniform(0.7, 0.85))
        n = int(rng.integers(3, 7))
        xs = np.linspace(-10, canvas.w_mm + 10, n * 2 + 1)
        ys = [base - (float(rng.uniform(10, 40)) if i % 2 else float(rng.uniform(0, 8)))
              for i in range(len(xs))]  # fmt: skip
        pts = [(canvas.px(float(x)), canvas.px(y)) for x, y in zip(xs, ys, strict=True)]
        pts += [(canvas.px(canvas.w_mm + 10), canvas.px(canvas.h_mm + 5)),
                (canvas.px(-10), canvas.px(canvas.h_mm + 5))]  # fmt: skip
        hill = _pick(rng, ((200, 220, 200), (215, 205, 230), (230, 210, 190), (200, 215, 235)))
        canvas.paint(canvas.shape(pts), _jitter(rng, hill, 8))


def _us_registration(rng: np.random.Generator) -> str:
    fmt = str(_pick(rng, ("9XXX999", "XXX 9999", "XXX-9999", "999 XXX", "XX9 9999", "9XX X99",
                          "XXX9999")))  # fmt: skip
    return "".join(_chars(rng, DIGITS if c == "9" else LETTERS, 1) if c in "9X" else c
                   for c in fmt)  # fmt: skip


def _render_us(canvas: _Canvas, rng: np.random.Generator, fonts: Mapping[str, Path]) -> str:
    canvas.fill((1.0, 1.0, 1.0))
    canvas.radius = float(rng.uniform(6, 10))
    _us_background(canvas, rng)
    ink_col = _jitter(rng, _pick(rng, _US_INK), 8)
    state_col = ink_col if rng.random() < 0.5 else _jitter(rng, _pick(rng, _US_INK), 8)
    if rng.random() < 0.6:
        _rim(canvas, ink_col, inset=2.5, width=1.5, radius=7.0)
    state, slogan = _pick(rng, _STATES)
    state_font = fonts["serif"] if rng.random() < 0.5 else fonts["highway_d"]
    run = _text_run(str(state), state_font, canvas.px(float(rng.uniform(15, 20))),
                    tracking=0.12, space=0.5)  # fmt: skip
    m, _, _ = _place(canvas, run, 70, canvas.w_mm - 70, 9.0)
    canvas.ink(m, state_col, relief=0.5)
    text = _us_registration(rng)
    cap = float(rng.uniform(64, 74))
    font = fonts["highway_c"] if rng.random() < 0.6 else fonts["highway_d"]
    run = _text_run(text, font, canvas.px(cap), tracking=0.1, space=0.35)
    cap_top = 33.0 + (74 - cap) / 2
    mask, _, _ = _place(canvas, run, 14, canvas.w_mm - 14, cap_top)
    canvas.ink(mask, ink_col)
    if slogan and rng.random() < 0.7:
        run = _text_run(str(slogan), fonts["serif"], canvas.px(9.0), tracking=0.1)
        m, _, _ = _place(canvas, run, 60, canvas.w_mm - 60, canvas.h_mm - 17)
        canvas.ink(m, state_col, relief=0.3)
    if rng.random() < 0.6:  # a registration sticker in a top corner
        sx = 14.0 if rng.random() < 0.5 else canvas.w_mm - 44.0
        sticker = _jitter(rng, _pick(rng, ((240, 200, 30), (60, 140, 210), (220, 60, 60),
                                           (90, 180, 90), (250, 250, 250))), 10)  # fmt: skip
        box = (sx, 5.0, sx + 30.0, 27.0)
        canvas.paint(canvas.rrect(box, 1.0), sticker)
        run = _text_run(_chars(rng, DIGITS, 2), fonts["din"], canvas.px(12))
        m, _, _ = _place(canvas, run, sx + 3, sx + 27, 10)
        canvas.paint(m, _rgb((20, 20, 20)))
    return text


def _holes(canvas: _Canvas, rng: np.random.Generator, spots: Sequence[tuple[float, float]],
           r: float) -> Arr:  # fmt: skip
    holes = np.zeros((canvas.h, canvas.w), np.float32)
    for x, y in spots:
        holes = np.maximum(holes, _bolt(canvas, rng, x, y, r))
    return holes


def _cn_alnum(rng: np.random.Generator, n: int, letters: int) -> str:
    chars = list(_chars(rng, DIGITS, n))
    for i in rng.choice(n, size=min(letters, n), replace=False):
        chars[int(i)] = _chars(rng, LETTERS, 1)
    return "".join(chars)


def _cn_row(
    canvas: _Canvas,
    fonts: Mapping[str, Path],
    chars: str,
    *,
    x0: float,
    char_w: float,
    gap: float,
    dot_after: int,
    dot_gap: float,
    y0: float,
    y1: float,
) -> Arr:
    """Chinese plate characters in their fixed boxes, the province character stretched to
    its box like the real narrow lettering; a round dot after ``dot_after`` characters."""
    mask = np.zeros((canvas.h, canvas.w), np.float32)
    x = x0
    for i, ch in enumerate(chars):
        cjk = ord(ch) > 0x2FFF
        box = (x, y0, x + char_w, y1)
        glyph = _boxed_char(canvas, ch, fonts["cjk" if cjk else "din"], box, stretch=cjk,
                            bold=0.035 if cjk else 0.0)  # fmt: skip
        mask = np.maximum(mask, glyph)
        x += char_w + gap
        if i + 1 == dot_after:
            cx, cy, r = canvas.px(x - gap + dot_gap / 2), canvas.px((y0 + y1) / 2), canvas.px(5)
            mask = np.maximum(mask, canvas.ellipse(cx, cy, r, r))
            x += dot_gap - gap
    return mask


def _render_cn(canvas: _Canvas, rng: np.random.Generator, fonts: Mapping[str, Path]) -> str:
    province = PROVINCES[int(rng.integers(len(PROVINCES)))]
    letter = _chars(rng, LETTERS, 1)
    if canvas.w_mm > 460:  # the new-energy plate
        canvas.fill((1.0, 1.0, 1.0))
        canvas.radius = float(rng.uniform(4, 6))
        canvas.vgradient(_jitter(rng, (236, 248, 236), 5), _jitter(rng, (60, 190, 110), 10))
        black = _jitter(rng, (15, 15, 15), 5)
        _rim(canvas, black, inset=2.0, width=1.0, radius=4.0)
        rest = str(_pick(rng, "DF")) + _cn_alnum(rng, 5, int(rng.integers(0, 2)))
        count, char_w, gap, dot_gap, colour = 8, 43, 9, 25, black
    else:
        canvas.fill(_jitter(rng, (12, 62, 170), 10))
        canvas.radius = float(rng.uniform(4, 6))
        white = _jitter(rng, (245, 245, 245), 4)
        _rim(canvas, white, inset=3.0, width=1.6, radius=4.0)
        rest = _cn_alnum(rng, 5, int(rng.choice(3, p=[0.5, 0.35, 0.15])))
        count, char_w, gap, dot_gap, colour = 7, 45, 12, 34, white
    total = count * char_w + (count - 2) * gap + dot_gap  # the dot's gap after the 2nd
    mask = _cn_row(
        canvas,
        fonts,
        f"{province}{letter}{rest}",
        x0=(canvas.w_mm - total) / 2,
        char_w=char_w,
        gap=gap,
        dot_after=2,
        dot_gap=dot_gap,
        y0=25,
        y1=115,
    )
    canvas.ink(mask, colour)
    if count == 8:
        return f"{province}{letter}·{rest}"
    if rng.random() < 0.5:  # the seal rivets over the top of the 2nd and 6th characters
        _holes(canvas, rng, [(140.0, 12.5), (330.0, 12.5)], 3.2)
    return f"{province}{letter}·{rest}"


def _render_two_line(
    canvas: _Canvas, rng: np.random.Generator, fonts: Mapping[str, Path], variant: str
) -> tuple[str, Arr]:
    holes = np.zeros((canvas.h, canvas.w), np.float32)
    w_mm, h_mm = canvas.w_mm, canvas.h_mm
    if variant == "cn":
        canvas.fill(_jitter(rng, (245, 190, 20), 8))
        black = _jitter(rng, (15, 15, 15), 5)
        _rim(canvas, black, inset=2.5, width=1.5, radius=4.0)
        province = PROVINCES[int(rng.integers(len(PROVINCES)))]
        top = f"{province}{_chars(rng, LETTERS, 1)}"
        bottom = _cn_alnum(rng, 5, int(rng.integers(0, 2)))
        m1 = _cn_row(
            canvas,
            fonts,
            top,
            x0=w_mm / 2 - 36,
            char_w=32,
            gap=8,
            dot_after=0,
            dot_gap=0,
            y0=10,
            y1=50,
        )
        m2 = _cn_row(
            canvas,
            fonts,
            bottom,
            x0=(w_mm - (5 * 34 + 4 * 6)) / 2,
            char_w=34,
            gap=6,
            dot_after=0,
            dot_gap=0,
            y0=60,
            y1=128,
        )
        canvas.ink(np.maximum(m1, m2), black)
        holes = _holes(canvas, rng, [(w_mm * 0.22, 55.0), (w_mm * 0.78, 55.0)], 2.8)
        return f"{top}\n{bottom}", holes
    if variant == "uk":
        canvas.fill(_jitter(rng, (250, 206, 10), 5))
        black = _jitter(rng, (15, 15, 15), 5)
        top = f"{_chars(rng, LETTERS, 2)}{_chars(rng, DIGITS, 2)}"
        bottom = _chars(rng, LETTERS, 3)
        cap = 62.0
        for text, y in ((top, 18.0), (bottom, 98.0)):
            run = _text_run(text, fonts["tiresias"], canvas.px(cap), tracking=0.18)
            m, _, _ = _place(canvas, run, 10, w_mm - 10, y)
            canvas.ink(m, black)
        return f"{top}\n{bottom}", holes
    if variant == "us":
        canvas.fill((1.0, 1.0, 1.0))
        _us_background(canvas, rng)
        ink_col = _jitter(rng, _pick(rng, _US_INK), 8)
        _rim(canvas, ink_col, inset=2.0, width=1.2, radius=5.0)
        state, _ = _pick(rng, _STATES)
        run = _text_run(str(state), fonts["highway_d"], canvas.px(10), tracking=0.1, space=0.5)
        m, _, _ = _place(canvas, run, 35, w_mm - 35, 5.0)
        canvas.ink(m, ink_col, relief=0.4)
        top = _chars(rng, LETTERS + DIGITS, int(rng.integers(2, 4)))
        bottom = _chars(rng, DIGITS, int(rng.integers(3, 5)))
        for text, y in ((top, 21.0), (bottom, 60.0)):
            run = _text_run(text, fonts["highway_c"], canvas.px(35), tracking=0.12)
            m, _, _ = _place(canvas, run, 12, w_mm - 12, y)
            canvas.ink(m, ink_col)
        holes = _holes(canvas, rng, [(14.0, 10.0), (w_mm - 14.0, 10.0)], 2.6)
        return f"{top}\n{bottom}", holes
    # eu
    country = str(_pick(rng, ("D", "D", "A", "PL", "I", "CZ")))
    bg = _jitter(rng, (246, 246, 242), 5)
    black = _jitter(rng, (18, 18, 20), 6)
    canvas.fill(bg)
    _rim(canvas, black, inset=1.5, width=2.0, radius=6.0)
    _eu_band(canvas, rng, fonts, (4.0, 4.0, 40.0, h_mm - 4.0), country)
    parts = " ".join(_eu_registration(rng, country)).replace("-", " ").split(" ")
    # letters on top, the number below ("DA TR" over "4705"; "1AB" over "2345")
    cut = next((i for i in range(1, len(parts)) if parts[i][0].isdigit()), 1)
    top, bottom = " ".join(parts[:cut]), " ".join(parts[cut:])
    cap = 70.0
    for text, y in ((top, 18.0), (bottom, 110.0)):
        run = _text_run(text, fonts["din"], canvas.px(cap), tracking=0.1, space=0.4)
        m, _, _ = _place(canvas, run, 46, w_mm - 8, y)
        canvas.ink(m, black)
    return f"{top}\n{bottom}", holes


FONT_NAMES = frozenset(("din", "narrow", "beteckna", "tiresias", "highway_c", "highway_d",
                        "serif", "cjk"))  # fmt: skip
_TWO_LINE_MM = {"cn": (220, 140), "eu": (280, 200), "uk": (229, 178), "us": (178, 102)}


# --- wear --------------------------------------------------------------------------------------


def _wear(canvas: _Canvas, rng: np.random.Generator) -> None:
    """Uneven light, dirt, specks, scratches and grain."""
    h, w = canvas.h, canvas.w
    yy = np.linspace(-0.5, 0.5, h, dtype=np.float32)[:, None]
    xx = np.linspace(-0.5, 0.5, w, dtype=np.float32)[None, :]
    gx, gy = rng.uniform(-0.1, 0.1, 2)
    light = 1.0 + gx * xx + gy * yy
    # a soft diagonal sheen of the reflective sheeting
    pos, width = float(rng.uniform(-0.6, 0.6)), float(rng.uniform(0.1, 0.3))
    sheen = np.exp(-(((xx + 0.4 * yy - pos) / width) ** 2)) * float(rng.uniform(0, 0.06))
    rgb = canvas.rgb * light[..., None] + sheen[..., None]
    coarse = rng.random((int(rng.integers(3, 7)), int(rng.integers(6, 16)))).astype(np.float32)
    dirt = cv2.resize(coarse, (w, h), interpolation=cv2.INTER_CUBIC)
    dirt = np.clip(dirt - float(rng.uniform(0.2, 0.7)), 0, 1) * float(rng.uniform(0, 0.35))
    brown = np.asarray(_jitter(rng, (95, 80, 60), 12), np.float32)
    rgb = rgb * (1 - dirt[..., None]) + brown * dirt[..., None]
    marks = np.zeros((h, w), np.float32)
    for _ in range(int(rng.integers(0, 40))):
        x, y = int(rng.integers(w)), int(rng.integers(h))
        r = max(1, round(canvas.px(float(rng.uniform(0.2, 0.9)))))
        cv2.circle(marks, (x, y), r, float(rng.uniform(0.2, 0.7)), -1)
    scratches = np.zeros((h, w), np.float32)
    for _ in range(int(rng.integers(0, 5))):
        x0, y0 = int(rng.integers(w)), int(rng.integers(h))
        ang, length = float(rng.uniform(0, math.pi)), canvas.px(float(rng.uniform(10, 80)))
        x1, y1 = int(x0 + length * math.cos(ang)), int(y0 + length * math.sin(ang))
        cv2.line(scratches, (x0, y0), (x1, y1), float(rng.uniform(0.2, 0.5)), 1, cv2.LINE_AA)
    rgb = rgb * (1 - marks[..., None] * 0.6)
    rgb = rgb + (1 - rgb) * scratches[..., None] * 0.7
    grain = rng.normal(0.0, float(rng.uniform(0.005, 0.02)), (h, w, 1)).astype(np.float32)
    canvas.rgb = np.clip(rgb + grain, 0.0, 1.0).astype(np.float32)


def _edge(canvas: _Canvas, alpha: Arr) -> None:
    """The bent edge of the plate: slightly darker along its outline."""
    inner = cv2.GaussianBlur(alpha, (0, 0), max(1.0, canvas.px(1.0)))
    canvas.rgb = canvas.rgb * (0.8 + 0.2 * np.clip(inner * 2 - 1, 0, 1))[..., None]


# --- public API --------------------------------------------------------------------------------


def random_style(rng: np.random.Generator) -> str:
    """One of :data:`STYLES`, each equally likely."""
    return STYLES[int(rng.integers(len(STYLES)))]


def render_plate(
    style: str, rng: np.random.Generator, fonts: Mapping[str, Path], height: int = 128
) -> RenderedPlate:
    """A random plate of ``style`` (one of :data:`STYLES`), ``height`` px high, its width from
    the real plate's proportions; ``fonts`` is what :func:`load_fonts` returns."""
    if style not in STYLES:
        raise ValueError(f"unknown plate style {style!r} (known: {', '.join(STYLES)})")
    if height < 8:
        raise ValueError(f"plate height {height} px is too small (at least 8)")
    missing = sorted(FONT_NAMES - set(fonts))
    if missing:
        raise ValueError(f"fonts missing for the plate renderer: {', '.join(missing)}")
    holes: Arr | None = None
    if style == "eu":
        canvas = _Canvas((520, 110), height)
        text, variant = _render_eu(canvas, rng, fonts)
    elif style == "uk":
        canvas = _Canvas((520, 111), height)
        text, variant = _render_uk(canvas, rng, fonts), "uk"
    elif style == "us":
        canvas = _Canvas((305, 152), height)
        text, variant = _render_us(canvas, rng, fonts), "us"
        c = canvas.w_mm / 2
        spots = [(c - 89, 16.0), (c + 89, 16.0), (c - 89, 136.0), (c + 89, 136.0)]
        holes = _holes(canvas, rng, spots, 3.0)
    elif style == "cn":
        nev = rng.random() < 0.25
        canvas = _Canvas((480, 140) if nev else (440, 140), height)
        text, variant = _render_cn(canvas, rng, fonts), "cn-nev" if nev else "cn"
    else:
        kind = str(_pick(rng, sorted(_TWO_LINE_MM)))
        canvas = _Canvas(_TWO_LINE_MM[kind], height)
        text, holes = _render_two_line(canvas, rng, fonts, kind)
        variant = f"two_line-{kind}"
    alpha = _outline(canvas, canvas.radius)
    if holes is not None:
        alpha = alpha * (1 - holes)
    _wear(canvas, rng)
    _edge(canvas, alpha)
    bgra = np.concatenate([canvas.rgb[..., ::-1], alpha[..., None]], axis=2)
    small = cv2.resize(bgra, (canvas.out_w, canvas.out_h), interpolation=cv2.INTER_AREA)
    image: ImageArray = np.clip(np.rint(small * 255.0), 0, 255).astype(np.uint8)
    size = (round(canvas.w_mm), round(canvas.h_mm))
    return RenderedPlate(image, style, text, text.count("\n") + 1, variant, size)
