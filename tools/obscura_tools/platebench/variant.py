"""A second plate renderer, written apart from :mod:`obscura_tools.platebench.render`, for
evaluation.

The plate detector's thresholds were tuned on the first renderer's plates, so recall measured
on them flatters it. This module draws plates of other countries, in other fonts, worn and
photographed in other ways; a build of it (``obscura plates build OUT --variant b``) is never
used to tune anything, and the gap between the two sets' recall is a measure of overfitting.

Styles (sizes in millimetres, as issued):

``ch``
    Swiss, 500 x 110: white, black canton code and number; the rear plate carries the Swiss
    shield on the left and a canton's shield on the right.
``ru``
    Russian, 520 x 112: white with a black rim; letters smaller than the digits and on their
    baseline (``A123BC``), a region block on the right with its code over ``RUS`` and a flag.
``br``
    Brazilian Mercosur, 400 x 130: a blue band with ``BRASIL``, the emblem and the flag over a
    white field with a faint guilloche, ``ABC1D23`` in black (or red, blue, green).
``br_moto``
    The 200 x 170 Mercosur motorcycle plate: the band over two rows, ``ABC`` and ``1D23``.
``jp``
    Japanese-like, 330 x 165: a small top row (region in kanji and a class number) over a
    hiragana and a large four-digit serial (``12-34``, leading digits shown as dots); white and
    green, yellow and black (kei cars), green and white or black and yellow (commercial).
``in``
    Indian high-security, 500 x 120: white (yellow for hire vehicles), black rim, a blue
    hologram and ``IND`` on the left, ``MH 12 AB 1234`` in even-width characters.

Wear of this renderer's own kind: mud rising from the lower edge in an uneven gradient, paint
flaking off the characters, bugs and grit, and a sheen across the reflective sheet. The other
degradations (a bent plate, a roll, a dealer's holder, glare, a defocus disk, lamps at night)
happen where the plate meets the photo: :func:`paste_plate`, :func:`frame_condition`.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
from numpy.typing import NDArray
from PIL import Image, ImageDraw, ImageFont

from obscura.types import FloatArray, ImageArray
from obscura_tools.platebench.render import RenderedPlate, load_fonts

Mask = NDArray[np.float32]
Colour = tuple[int, int, int]  # RGB, 0-255
Matrix = NDArray[np.float64]  # a 3 x 3 homography

STYLES_B: tuple[str, ...] = ("ch", "ru", "br", "br_moto", "jp", "in")
PLATE_MM_B: dict[str, tuple[int, int]] = {
    "ch": (500, 110),
    "ru": (520, 112),
    "br": (400, 130),
    "br_moto": (200, 170),
    "jp": (330, 165),
    "in": (500, 120),
}
# The fonts ``fonts.toml`` lists under ``variant_fonts``, and the first renderer's CJK font
# (the only one with kanji and kana; it draws nothing but the Japanese plates' small print).
VARIANT_FONT_NAMES = frozenset(("dejavu_cond", "dejavu_mono", "freesans", "nimbus_narrow"))
CJK_FONT = "cjk"

# Drawing resolution: at least this many pixels over the plate's height, and at least twice
# the output height, so that the downscale (area averaging) smooths every edge.
MIN_WORK_PX = 240
SUPERSAMPLE = 2
ALPHA_SOLID = 0.5  # alpha above which a pixel counts as plate (for boxes)

LATIN = "ABCDEFGHJKLMNPRSTUVWXYZ"
CYRILLIC_AS_LATIN = "ABEKMHOPCTYX"  # the twelve letters Russian plates share with Latin
CANTONS = ("ZH", "BE", "LU", "UR", "SZ", "OW", "NW", "GL", "ZG", "FR", "SO", "BS", "BL", "SH",
           "AR", "AI", "SG", "GR", "AG", "TG", "TI", "VD", "VS", "NE", "GE", "JU")  # fmt: skip
JP_REGIONS = ("品川", "練馬", "足立", "横浜", "大阪", "神戸", "京都", "札幌", "福岡", "名古屋",
              "仙台", "湘南")  # fmt: skip
HIRAGANA = "さすせそたちつてとなにぬねのはひふほまみむめもやゆよらりるろれわ"
INDIAN_STATES = ("MH", "DL", "KA", "TN", "UP", "GJ", "RJ", "HR", "PB", "KL", "TS", "AP", "WB")
DEALERS = ("CITY MOTORS", "AUTOHAUS NORD", "GARAGE DU LAC", "SUNRISE CARS", "AUTO CENTRO",
           "VALLEY FORD-ISH", "DRIVE & CO", "MOTO PLANET", "www.best-cars.example")  # fmt: skip


# --- fonts -------------------------------------------------------------------------------------


def load_variant_fonts(cache_dir: Path, archives_dir: Path | None = None) -> dict[str, Path]:
    """The fonts this renderer needs, fetched and verified like the first renderer's."""
    fonts = load_fonts(cache_dir, archives_dir, section="variant_fonts")
    first = load_fonts(cache_dir, archives_dir)
    fonts[CJK_FONT] = first[CJK_FONT]
    return fonts


@functools.lru_cache(maxsize=256)
def _face(path: str, size: int) -> ImageFont.FreeTypeFont:
    return ImageFont.truetype(path, size)


@functools.lru_cache(maxsize=32)
def _cap_per_point(path: str, reference: str) -> float:
    """How many pixels of ``reference``'s ink (its cap height) one point of size gives."""
    probe = 256
    _, top, _, bottom = _face(path, probe).getbbox(reference, anchor="ls")
    return max(1, bottom - top) / probe


def _lettering(text: str, font: Path, cap_px: float, tracking: float = 0.08) -> Mask:
    """``text`` as a mask whose rows run from cap top to baseline (plus a tenth above and below
    for overshoot), each character set on its own with ``tracking`` times the cap height
    between them, so that spacing follows the plate rather than the font's kerning."""
    reference = "品" if any(ord(c) > 0x2FFF for c in text) else "H"
    size = max(4, round(cap_px / _cap_per_point(str(font), reference)))
    face = _face(str(font), size)
    margin = max(1, round(cap_px * 0.1))
    rows = round(cap_px) + 2 * margin
    pieces: list[Mask] = []
    for ch in text:
        if ch == " ":
            pieces.append(np.zeros((rows, max(1, round(cap_px * 0.35))), np.float32))
            continue
        left, _, right, _ = face.getbbox(ch, anchor="ls")
        width = max(1, right - left + 2)
        glyph = Image.new("L", (int(width), rows), 0)
        ImageDraw.Draw(glyph).text((1 - left, margin + cap_px), ch, 255, font=face, anchor="ls")
        pieces.append(np.asarray(glyph, np.float32) / 255.0)
        pieces.append(np.zeros((rows, max(1, round(cap_px * tracking))), np.float32))
    if pieces and text and text[-1] != " ":
        pieces.pop()  # no tracking after the last character
    return np.concatenate(pieces, axis=1) if pieces else np.zeros((rows, 1), np.float32)


# --- the sheet a plate is drawn on --------------------------------------------------------------


class _Sheet:
    """A plate being drawn, in millimetres; keeps the background colour and an ink mask (the
    characters) so that wear can act on paint and ground differently."""

    def __init__(self, size_mm: tuple[int, int], height: int, ground: Colour) -> None:
        self.size_mm = size_mm
        self.height = height
        self.width = max(1, round(height * size_mm[0] / size_mm[1]))
        work = max(MIN_WORK_PX, SUPERSAMPLE * height)
        self.scale = work / size_mm[1]  # px per mm
        self.h, self.w = work, round(size_mm[0] * self.scale)
        self.ground = ground
        self.rgb: Mask = np.empty((self.h, self.w, 3), np.float32)
        self.rgb[:] = np.asarray(ground, np.float32) / 255.0
        self.ink: Mask = np.zeros((self.h, self.w), np.float32)

    def px(self, mm: float) -> float:
        return mm * self.scale

    def paint(self, mask: Mask, colour: Colour, *, ink: bool = False) -> None:
        m = mask[..., None]
        self.rgb = self.rgb * (1.0 - m) + m * (np.asarray(colour, np.float32) / 255.0)
        if ink:
            self.ink = np.maximum(self.ink, mask)

    def blank(self) -> Image.Image:
        return Image.new("L", (self.w, self.h), 0)

    def rect(self, box_mm: tuple[float, float, float, float], radius_mm: float = 0.0) -> Mask:
        img = self.blank()
        box = tuple(self.px(v) for v in box_mm)
        ImageDraw.Draw(img).rounded_rectangle(box, radius=self.px(radius_mm), fill=255)
        return np.asarray(img, np.float32) / 255.0

    def ring(
        self, box_mm: tuple[float, float, float, float], radius_mm: float, width_mm: float
    ) -> Mask:
        img = self.blank()
        box = tuple(self.px(v) for v in box_mm)
        width = max(1, round(self.px(width_mm)))
        ImageDraw.Draw(img).rounded_rectangle(box, self.px(radius_mm), outline=255, width=width)
        return np.asarray(img, np.float32) / 255.0

    def polygon(self, points_mm: Sequence[tuple[float, float]]) -> Mask:
        img = self.blank()
        ImageDraw.Draw(img).polygon([(self.px(x), self.px(y)) for x, y in points_mm], fill=255)
        return np.asarray(img, np.float32) / 255.0

    def disc(self, cx_mm: float, cy_mm: float, r_mm: float, width_mm: float = 0.0) -> Mask:
        img = self.blank()
        cx, cy, r = self.px(cx_mm), self.px(cy_mm), self.px(r_mm)
        draw = ImageDraw.Draw(img)
        if width_mm > 0:
            draw.ellipse(
                (cx - r, cy - r, cx + r, cy + r),
                outline=255,
                width=max(1, round(self.px(width_mm))),
            )
        else:
            draw.ellipse((cx - r, cy - r, cx + r, cy + r), fill=255)
        return np.asarray(img, np.float32) / 255.0

    def text(
        self,
        text: str,
        font: Path,
        box_mm: tuple[float, float, float, float],
        cap_mm: float,
        *,
        tracking: float = 0.08,
        align: str = "centre",
    ) -> Mask:
        """A mask of ``text`` with caps ``cap_mm`` high sitting on the bottom of ``box_mm``
        (its baseline), squeezed to the box's width if it would overrun it."""
        x0, _, x1, y1 = (self.px(v) for v in box_mm)
        cap = self.px(cap_mm)
        lettering = _lettering(text, font, cap, tracking)
        margin = (lettering.shape[0] - round(cap)) // 2
        width = lettering.shape[1]
        if width > x1 - x0:
            width = max(1, int(x1 - x0))
            lettering = np.asarray(
                cv2.resize(lettering, (width, lettering.shape[0]), interpolation=cv2.INTER_AREA),
                np.float32,
            )
        left = x0 if align == "left" else x1 - width if align == "right" else (x0 + x1 - width) / 2
        return self.place(lettering, round(left), round(y1 - cap) - margin)

    def place(self, piece: Mask, left: int, top: int) -> Mask:
        out = np.zeros((self.h, self.w), np.float32)
        ph, pw = piece.shape
        sx0, sy0 = max(0, -left), max(0, -top)
        dx0, dy0 = max(0, left), max(0, top)
        dx1, dy1 = min(self.w, left + pw), min(self.h, top + ph)
        if dx1 > dx0 and dy1 > dy0:
            out[dy0:dy1, dx0:dx1] = piece[sy0 : sy0 + dy1 - dy0, sx0 : sx0 + dx1 - dx0]
        return out


def _choice(rng: np.random.Generator, items: Sequence[str]) -> str:
    return items[int(rng.integers(len(items)))]


def _draw(rng: np.random.Generator, alphabet: str, n: int) -> str:
    return "".join(_choice(rng, alphabet) for _ in range(n))


def _digits(rng: np.random.Generator, n: int) -> str:
    return "".join(str(int(d)) for d in rng.integers(0, 10, n))


def _shade(rng: np.random.Generator, colour: Colour, spread: float = 10.0) -> Colour:
    """``colour`` as one batch of paint or sheeting might have come out."""
    c = np.clip(np.asarray(colour, np.float64) + rng.normal(0.0, spread, 3), 0, 255)
    return (int(c[0]), int(c[1]), int(c[2]))


# --- styles ------------------------------------------------------------------------------------


_CANTON_COLOURS: tuple[Colour, ...] = (
    (0, 80, 170), (20, 20, 20), (200, 30, 40), (20, 130, 60), (240, 200, 0))  # fmt: skip


def _swiss(sheet: _Sheet, rng: np.random.Generator, fonts: Mapping[str, Path]) -> tuple[str, str]:
    canton = _choice(rng, CANTONS)
    number = str(int(rng.integers(1, 10 ** int(rng.integers(2, 7)))))
    rear = rng.random() < 0.6
    if rng.random() < 0.5:
        sheet.paint(sheet.ring((1.5, 1.5, 498.5, 108.5), 4, 1.2), (30, 30, 30))
    left, right = (62.0, 438.0) if rear else (18.0, 482.0)
    if rear:
        # The Swiss shield: red, a white cross of arms one sixth longer than wide.
        sheet.paint(sheet.polygon(_shield(14, 18, 36, 74)), _shade(rng, (210, 30, 35)))
        sheet.paint(sheet.rect((28.5, 40, 35.5, 66)), (250, 250, 250))
        sheet.paint(sheet.rect((19, 49.5, 45, 56.5)), (250, 250, 250))
        # A canton's shield, white halved diagonally with one of the cantons' colours.
        tincture = _CANTON_COLOURS[int(rng.integers(len(_CANTON_COLOURS)))]
        sheet.paint(sheet.polygon(_shield(450, 18, 36, 74)), (40, 40, 40))
        sheet.paint(sheet.polygon(_shield(451.5, 19.5, 33, 71)), (250, 250, 250))
        sheet.paint(sheet.polygon([(451.5, 19.5), (484.5, 19.5), (451.5, 80)]), tincture)
    font = fonts["dejavu_cond" if rng.random() < 0.6 else "freesans"]
    text = f"{canton} {number}" if rng.random() < 0.5 else f"{canton}·{number}"
    ink = sheet.text(text, font, (left, 10, right, 93), 75, tracking=0.1)
    sheet.paint(ink, _shade(rng, (15, 15, 15), 6), ink=True)
    return text.replace("·", " "), "ch-rear" if rear else "ch-front"


def _shield(x: float, y: float, w: float, h: float) -> list[tuple[float, float]]:
    """A heater shield's outline: straight sides for 55 % of its height, then a curve to the
    point."""
    top = [(x, y), (x + w, y), (x + w, y + 0.55 * h)]
    curve = [
        (x + w / 2 + w / 2 * math.cos(t), y + 0.55 * h + 0.45 * h * math.sin(t))
        for t in np.linspace(0, math.pi, 12)
    ]
    return top + curve[1:] + [(x, y + 0.55 * h)]


def _russian(sheet: _Sheet, rng: np.random.Generator, fonts: Mapping[str, Path]) -> tuple[str, str]:
    first = _draw(rng, CYRILLIC_AS_LATIN, 1)
    digits = _digits(rng, 3)
    if digits == "000":
        digits = "001"
    last = _draw(rng, CYRILLIC_AS_LATIN, 2)
    region = str(int(rng.integers(1, 200))).zfill(2)
    ink_colour = _shade(rng, (18, 18, 22), 5)
    sheet.paint(sheet.ring((2, 2, 518, 110), 6, 2.5), ink_colour, ink=True)
    sheet.paint(sheet.rect((404, 4, 406.5, 108)), ink_colour, ink=True)
    font = fonts["dejavu_cond" if rng.random() < 0.7 else "nimbus_narrow"]
    # Digits 58 mm, letters 42 mm, all on one baseline; the groups share the main field.
    baseline, gap = 92.0, 9.0
    groups = ((first, 42.0), (digits, 58.0), (last, 42.0))
    masks = [_lettering(t, font, sheet.px(cap), 0.12) for t, cap in groups]
    field = sheet.px(392 - 14)
    natural = sum(m.shape[1] for m in masks) + sheet.px(gap) * 2
    squeeze = min(1.0, field / natural)
    x = sheet.px(14) + (field - natural * squeeze) / 2
    for (_, cap), natural_mask in zip(groups, masks, strict=True):
        width = max(1, round(natural_mask.shape[1] * squeeze))
        rows = natural_mask.shape[0]
        m = np.asarray(
            cv2.resize(natural_mask, (width, rows), interpolation=cv2.INTER_AREA), np.float32
        )
        margin = (rows - round(sheet.px(cap))) // 2
        top = round(sheet.px(baseline) - sheet.px(cap)) - margin
        sheet.paint(sheet.place(m, round(x), top), ink_colour, ink=True)
        x += width + sheet.px(gap) * squeeze
    sheet.paint(sheet.text(region, font, (410, 8, 514, 62), 46, tracking=0.1), ink_colour, ink=True)
    sheet.paint(sheet.text("RUS", font, (412, 80, 470, 100), 13), ink_colour, ink=True)
    for i, stripe in enumerate(((250, 250, 250), (20, 60, 170), (210, 30, 35))):
        sheet.paint(sheet.rect((476, 84 + 5.5 * i, 506, 89.5 + 5.5 * i)), stripe)
    sheet.paint(sheet.ring((476, 84, 506, 100.5), 0, 0.6), (60, 60, 60))
    return f"{first}{digits}{last} {region}", "ru"


# Black for private cars, red for commercial, blue for official, green for dealers' trials.
_MERCOSUR_INK: tuple[tuple[Colour, float], ...] = (
    ((15, 15, 15), 0.7),
    ((190, 20, 25), 0.15),
    ((20, 50, 160), 0.08),
    ((20, 120, 50), 0.07),
)


def _mercosur_band(sheet: _Sheet, rng: np.random.Generator, fonts: Mapping[str, Path]) -> None:
    """The guilloche on the white field, the blue band, ``BRASIL``, the emblem and the flag."""
    w_mm, h_mm = sheet.size_mm
    ys, xs = np.mgrid[0 : sheet.h, 0 : sheet.w].astype(np.float32) / sheet.scale
    waves = 0.5 + 0.5 * np.sin(xs * 0.35 + 4.0 * np.sin(ys * 0.11) + float(rng.uniform(0, 6)))
    sheet.paint((waves > 0.93).astype(np.float32) * 0.18, (120, 140, 190))
    band = 30.0 if h_mm < 150 else 32.0
    sheet.paint(sheet.rect((0, 0, w_mm, band)), _shade(rng, (10, 55, 150), 8))
    name_font = fonts["freesans"]
    sheet.paint(
        sheet.text("BRASIL", name_font, (40, 6, w_mm - 40, band - 7.5), 14.5), (250, 250, 250)
    )
    # The Mercosur emblem: a white ring with four stars (dots) inside it.
    cx, cy = 18.0, band / 2
    sheet.paint(sheet.disc(cx, cy, 9.5, 1.4), (250, 250, 250))
    for dx, dy in ((-3, -3), (3.5, -2), (0, 3.5), (-4.5, 2)):
        sheet.paint(sheet.disc(cx + dx, cy + dy, 1.3), (250, 250, 250))
    # The flag of Brazil: green, a yellow lozenge, a blue disc.
    fx0, fy0, fx1, fy1 = w_mm - 36, band / 2 - 8, w_mm - 8, band / 2 + 8
    sheet.paint(sheet.rect((fx0, fy0, fx1, fy1)), (0, 150, 60))
    mx, my = (fx0 + fx1) / 2, (fy0 + fy1) / 2
    sheet.paint(
        sheet.polygon([(fx0 + 2, my), (mx, fy0 + 1.5), (fx1 - 2, my), (mx, fy1 - 1.5)]),
        (250, 215, 0),
    )
    sheet.paint(sheet.disc(mx, my, 4.2), (20, 40, 120))
    sheet.paint(sheet.ring((0.8, 0.8, w_mm - 0.8, h_mm - 0.8), 4, 1.2), (25, 25, 25))


def _mercosur_text(rng: np.random.Generator) -> tuple[str, str]:
    """``ABC`` and ``1D23``: three letters, a digit, a letter and two digits."""
    return _draw(rng, LATIN, 3), _digits(rng, 1) + _draw(rng, LATIN, 1) + _digits(rng, 2)


def _mercosur_ink(rng: np.random.Generator) -> Colour:
    weights = np.array([w for _, w in _MERCOSUR_INK])
    return _MERCOSUR_INK[int(rng.choice(len(weights), p=weights / weights.sum()))][0]


def _brazil(sheet: _Sheet, rng: np.random.Generator, fonts: Mapping[str, Path]) -> tuple[str, str]:
    _mercosur_band(sheet, rng, fonts)
    letters, rest = _mercosur_text(rng)
    font = fonts["nimbus_narrow" if rng.random() < 0.7 else "dejavu_cond"]
    ink = sheet.text(letters + rest, font, (10, 40, 390, 114), 64, tracking=0.14)
    sheet.paint(ink, _shade(rng, _mercosur_ink(rng), 6), ink=True)
    sheet.paint(
        sheet.text("BR", fonts["freesans"], (5, 112, 22, 124), 7, align="left"), (30, 30, 30)
    )
    return letters + rest, "br"


def _brazil_moto(
    sheet: _Sheet, rng: np.random.Generator, fonts: Mapping[str, Path]
) -> tuple[str, str]:
    _mercosur_band(sheet, rng, fonts)
    letters, rest = _mercosur_text(rng)
    font = fonts["nimbus_narrow" if rng.random() < 0.7 else "dejavu_cond"]
    colour = _shade(rng, _mercosur_ink(rng), 6)
    sheet.paint(sheet.text(letters, font, (14, 40, 186, 96), 52, tracking=0.18), colour, ink=True)
    sheet.paint(sheet.text(rest, font, (10, 104, 190, 161), 52, tracking=0.14), colour, ink=True)
    return f"{letters}\n{rest}", "br_moto"


_JP_SCHEMES: tuple[tuple[str, Colour, Colour], ...] = (
    ("private", (246, 246, 240), (20, 95, 55)),
    ("kei", (248, 208, 20), (25, 25, 25)),
    ("commercial", (20, 95, 55), (245, 245, 240)),
    ("kei-commercial", (25, 25, 25), (248, 208, 20)),
)


def _japan(sheet: _Sheet, rng: np.random.Generator, fonts: Mapping[str, Path]) -> tuple[str, str]:
    weights = np.array([0.6, 0.2, 0.12, 0.08])
    scheme, ground, ink_colour = _JP_SCHEMES[int(rng.choice(4, p=weights))]
    sheet.rgb[:] = np.asarray(_shade(rng, ground, 6), np.float32) / 255.0
    sheet.ground = ground
    ink_colour = _shade(rng, ink_colour, 6)
    sheet.paint(sheet.ring((3, 3, 327, 162), 7, 1.2), ink_colour, ink=True)
    region = _choice(rng, JP_REGIONS)
    klass = _choice(rng, ("300", "330", "500", "530", "580", "30", "50", "3"))
    digits_font = fonts["freesans" if rng.random() < 0.7 else "dejavu_cond"]
    top = sheet.text(region, fonts[CJK_FONT], (70, 14, 170, 48), 27, tracking=0.05, align="right")
    top = np.maximum(top, sheet.text(klass, digits_font, (178, 14, 270, 46), 27, align="left"))
    sheet.paint(top, ink_colour, ink=True)
    kana = _choice(rng, HIRAGANA)
    sheet.paint(sheet.text(kana, fonts[CJK_FONT], (12, 92, 56, 134), 32), ink_colour, ink=True)
    serial = int(rng.integers(1, 10000))
    shown = f"{serial:04d}"
    leading = len(shown) - len(str(serial))  # zeros shown as dots
    # Four slots with a hyphen between the pairs; the serial is 78 mm high.
    slot, hyphen, x = 58.0, 24.0, 64.0
    marks = np.zeros((sheet.h, sheet.w), np.float32)
    for i, ch in enumerate(shown):
        if i == 2:
            if leading < 2:
                marks = np.maximum(marks, sheet.rect((x + 5, 108, x + hyphen - 5, 116)))
            x += hyphen
        if i < leading:
            marks = np.maximum(marks, sheet.disc(x + slot / 2, 112, 6))
        else:
            marks = np.maximum(marks, sheet.text(ch, digits_font, (x, 70, x + slot, 151), 78))
        x += slot
    sheet.paint(marks, ink_colour, ink=True)
    number = ("・" * leading + str(serial)) if leading else f"{shown[:2]}-{shown[2:]}"
    # Chrome bolt heads over the two top holes.
    for bx in (55.0, 275.0):
        sheet.paint(sheet.disc(bx, 23, 7), (175, 178, 182))
        sheet.paint(sheet.disc(bx - 1.5, 21.5, 3), (235, 238, 240))
    return f"{region} {klass}\n{kana} {number}", f"jp-{scheme}"


def _india(sheet: _Sheet, rng: np.random.Generator, fonts: Mapping[str, Path]) -> tuple[str, str]:
    hire = rng.random() < 0.3
    if hire:
        sheet.rgb[:] = np.asarray(_shade(rng, (245, 205, 30), 8), np.float32) / 255.0
        sheet.ground = (245, 205, 30)
    ink_colour = _shade(rng, (20, 20, 20), 5)
    sheet.paint(sheet.ring((2, 2, 498, 118), 5, 1.8), ink_colour, ink=True)
    # The chromium hologram: a blue wheel of 24 spokes, and IND under it.
    blue = _shade(rng, (40, 80, 190), 12)
    wheel = sheet.disc(20, 40, 10, 1.6)
    for k in range(24):
        t = 2 * math.pi * k / 24
        tip = [(20 + 9.5 * math.cos(u), 40 + 9.5 * math.sin(u)) for u in (t, t + 0.05)]
        wheel = np.maximum(wheel, sheet.polygon([(20, 40), *tip]))
    sheet.paint(wheel * 0.85, blue)
    sheet.paint(sheet.text("IND", fonts["freesans"], (6, 80, 36, 96), 11), blue)
    state = _choice(rng, INDIAN_STATES)
    text = f"{state} {int(rng.integers(1, 100)):02d} {_draw(rng, LATIN, int(rng.integers(1, 3)))}"
    text += f" {int(rng.integers(1, 10000)):04d}"
    font = fonts["dejavu_mono" if rng.random() < 0.7 else "freesans"]
    ink = sheet.text(text, font, (42, 20, 492, 92), 62, tracking=0.02)
    sheet.paint(ink, ink_colour, ink=True)
    return text, "in-hire" if hire else "in"


_GROUNDS: dict[str, Colour] = {
    "ch": (248, 248, 246), "ru": (246, 246, 244), "br": (247, 247, 247),
    "br_moto": (247, 247, 247), "jp": (246, 246, 240), "in": (248, 248, 248),
}  # fmt: skip
_CORNER_MM = {"ch": 5.0, "ru": 6.0, "br": 5.0, "br_moto": 8.0, "jp": 8.0, "in": 5.0}
_DRAWERS = {
    "ch": _swiss,
    "ru": _russian,
    "br": _brazil,
    "br_moto": _brazil_moto,
    "jp": _japan,
    "in": _india,
}


# --- wear --------------------------------------------------------------------------------------


def _cloud(rng: np.random.Generator, shape: tuple[int, int], cells: int) -> Mask:
    """Smooth noise in 0-1: a coarse random grid (``cells`` across) upsampled cubically."""
    h, w = shape
    cw = max(2, cells)
    ch = max(2, round(cells * h / max(w, 1)))
    grid = rng.random((ch, cw)).astype(np.float32)
    return np.clip(np.asarray(cv2.resize(grid, (w, h), interpolation=cv2.INTER_CUBIC)), 0, 1)


def _wear(sheet: _Sheet, rng: np.random.Generator) -> None:
    """Mud, flaking paint, grit and the sheen of the reflective sheet (each now and then)."""
    shape = (sheet.h, sheet.w)
    if rng.random() < 0.35:  # paint gone from the characters in patches
        flakes = _cloud(rng, shape, int(rng.integers(20, 60)))
        gone = np.clip((flakes - float(rng.uniform(0.55, 0.75))) * 6, 0, 1) * sheet.ink
        ground = np.asarray(sheet.ground, np.float32) / 255.0 * 0.92
        sheet.rgb += (ground - sheet.rgb) * gone[..., None] * float(rng.uniform(0.5, 0.9))
    if rng.random() < 0.35:  # mud splashed up from the road: thicker towards the bottom
        rows = np.linspace(0.0, 1.0, sheet.h, dtype=np.float32)[:, None]
        start = float(rng.uniform(0.3, 0.8))
        rise = np.clip((rows - start) / (1.0 - start), 0, 1) ** float(rng.uniform(0.6, 1.6))
        lumps = 0.4 + 0.6 * _cloud(rng, shape, int(rng.integers(6, 18)))
        mud = rise * lumps * float(rng.uniform(0.35, 0.8))
        colour = np.asarray(_shade(rng, (105, 82, 55), 15), np.float32) / 255.0
        sheet.rgb = sheet.rgb * (1 - mud[..., None]) + colour * mud[..., None]
    if rng.random() < 0.3:  # grit and squashed insects
        for _ in range(int(rng.integers(5, 40))):
            x, y = rng.uniform(0, sheet.w), rng.uniform(0, sheet.h)
            r = float(rng.uniform(0.4, 1.6)) * sheet.scale
            dot = np.zeros(shape, np.float32)
            cv2.circle(dot, (round(x), round(y)), max(1, round(r)), 1.0, -1, cv2.LINE_AA)
            sheet.rgb *= 1 - dot[..., None] * float(rng.uniform(0.3, 0.7))
    # The sheeting's sheen: a broad diagonal brightness ramp.
    ys, xs = np.mgrid[0 : sheet.h, 0 : sheet.w].astype(np.float32)
    t = (xs / sheet.w) * float(rng.uniform(-1, 1)) + (ys / sheet.h) * float(rng.uniform(-1, 1))
    sheet.rgb *= (1.0 + 0.06 * t)[..., None]
    sheet.rgb = np.clip(sheet.rgb, 0, 1)


def _emboss(sheet: _Sheet) -> None:
    """Raised characters: a light edge above and a dark one below the ink (stamped plates)."""
    k = max(1, round(sheet.px(0.8)))
    up = np.roll(sheet.ink, -k, axis=0)
    down = np.roll(sheet.ink, k, axis=0)
    sheet.rgb += (np.clip(sheet.ink - up, 0, 1) * 0.10)[..., None]
    sheet.rgb -= (np.clip(sheet.ink - down, 0, 1) * 0.18)[..., None]
    sheet.rgb = np.clip(sheet.rgb, 0, 1)


# --- public API --------------------------------------------------------------------------------


def render_plate_b(
    style: str, rng: np.random.Generator, fonts: Mapping[str, Path], height: int = 128
) -> RenderedPlate:
    """A random plate of ``style`` (one of :data:`STYLES_B`), ``height`` px high, its width from
    the real plate's proportions; ``fonts`` is what :func:`load_variant_fonts` returns. The
    image is BGRA with alpha 0 outside the plate's rounded outline."""
    if style not in _DRAWERS:
        raise ValueError(f"unknown plate style {style!r} (known: {', '.join(STYLES_B)})")
    if height < 8:
        raise ValueError(f"plate height {height} px is too small (at least 8)")
    missing = sorted((VARIANT_FONT_NAMES | {CJK_FONT}) - set(fonts))
    if missing:
        raise ValueError(f"fonts missing for the variant renderer: {', '.join(missing)}")
    size = PLATE_MM_B[style]
    sheet = _Sheet(size, height, _shade(rng, _GROUNDS[style], 4))
    text, variant = _DRAWERS[style](sheet, rng, fonts)
    if style in ("ru", "jp", "in") or rng.random() < 0.3:
        _emboss(sheet)
    _wear(sheet, rng)
    alpha = sheet.rect((0, 0, size[0], size[1]), _CORNER_MM[style])
    bgra = np.dstack([sheet.rgb[..., ::-1], alpha])
    small = cv2.resize(bgra, (sheet.width, sheet.height), interpolation=cv2.INTER_AREA)
    image: ImageArray = np.clip(np.rint(small * 255.0), 0, 255).astype(np.uint8)
    return RenderedPlate(image, style, text, text.count("\n") + 1, variant, size)


@dataclass(frozen=True, eq=False)
class Holder:
    """A dealer's plate holder: BGRA ``image`` at the plate's scale, the plate's top-left corner
    at ``offset`` (px) in it."""

    image: ImageArray
    offset: tuple[int, int]


def render_holder(
    plate: RenderedPlate, rng: np.random.Generator, fonts: Mapping[str, Path]
) -> Holder:
    """A plastic or chrome frame around ``plate``, with a dealer's name on a wider strip below
    (or above) it: text and edges right next to the plate that a detector must not take for
    the plate, nor let spoil the plate's box."""
    w_mm, h_mm = plate.size_mm
    side, top, bottom = 6.0, 6.0, float(rng.uniform(12, 20))
    if rng.random() < 0.3:
        top, bottom = bottom, top
    size = (round(w_mm + 2 * side), round(h_mm + top + bottom))
    out_h = max(8, round(plate.image.shape[0] * size[1] / h_mm))
    body = _shade(rng, ((22, 22, 25), (170, 174, 180), (20, 35, 90))[int(rng.integers(3))], 6)
    sheet = _Sheet(size, out_h, body)
    # A moulded lip: lighter along the inner edge.
    sheet.paint(
        sheet.ring((side - 2, top - 2, side + w_mm + 2, top + h_mm + 2), 5, 2) * 0.5,
        (230, 230, 230),
    )
    if bottom > top:
        strip = (side + 10, top + h_mm + 2, side + w_mm - 10, size[1] - 2.5)
    else:
        strip = (side + 10, 2.5, side + w_mm - 10, top - 2)
    cap = min(10.0, (strip[3] - strip[1]) * 0.7)
    colour = (235, 235, 235) if sum(body) < 300 else (25, 25, 30)
    font = fonts["freesans" if rng.random() < 0.5 else "nimbus_narrow"]
    sheet.paint(sheet.text(_choice(rng, DEALERS), font, strip, cap), colour)
    alpha = sheet.rect((0, 0, size[0], size[1]), 7)
    bgra = np.dstack([sheet.rgb[..., ::-1], alpha])
    small = cv2.resize(bgra, (sheet.width, sheet.height), interpolation=cv2.INTER_AREA)
    image: ImageArray = np.clip(np.rint(small * 255.0), 0, 255).astype(np.uint8)
    per_mm = sheet.height / size[1]
    return Holder(image, (round(side * per_mm), round(top * per_mm)))


# --- onto the photo ----------------------------------------------------------------------------


@dataclass(frozen=True)
class Placed:
    """Where a pasted plate ended up in its tile: its box (x1, y1, x2, y2) as drawn, the part of
    it inside the tile, and the share of its area that is inside."""

    box: tuple[float, float, float, float]
    visible: tuple[float, float, float, float]
    share: float


def _bend(image: FloatArray, amount_px: float) -> tuple[FloatArray, int]:
    """``image`` bent like a plate pressed onto a curved bumper: its middle shifted vertically
    by ``amount_px`` against its ends (a parabola), padded to keep it whole; returns the bent
    image and the padding added on top."""
    h, w = image.shape[:2]
    pad = math.ceil(abs(amount_px)) + 1
    ys, xs = np.mgrid[0 : h + 2 * pad, 0:w].astype(np.float32)
    u = 2.0 * xs / max(w - 1, 1) - 1.0
    src_y = ys - pad - amount_px * (1.0 - u * u)
    bent = cv2.remap(
        image, xs, src_y, cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT, borderValue=(0, 0, 0, 0)
    )
    return np.asarray(bent, np.float32), pad


def _disk(radius: float) -> FloatArray:
    """A defocus kernel: a uniform disc (the lens aperture), not a Gaussian."""
    r = max(radius, 0.5)
    n = 2 * math.ceil(r) + 1
    kernel = np.zeros((n, n), np.float32)
    centre = (n // 2) * 8  # fixed point, 3 fractional bits
    cv2.circle(kernel, (centre, centre), round(r * 8), 1.0, -1, cv2.LINE_AA, shift=3)
    return kernel / max(float(kernel.sum()), 1e-6)


def _shrink(image: FloatArray, target_h: float) -> FloatArray:
    """Halves ``image`` (Gaussian pyramid) while it is over twice ``target_h``: cheap, and no
    aliasing in the warp that follows."""
    while image.shape[0] > 2 * max(target_h, 4.0) and min(image.shape[:2]) >= 16:
        image = np.asarray(cv2.pyrDown(image), np.float32)
    return image


def _warp(image: FloatArray, matrix: Matrix, box: tuple[int, int, int, int]) -> FloatArray:
    x0, y0, x1, y1 = box
    shift = np.array([[1, 0, -x0], [0, 1, -y0], [0, 0, 1]], np.float64)
    return np.asarray(
        cv2.warpPerspective(
            image,
            shift @ matrix,
            (x1 - x0, y1 - y0),
            flags=cv2.INTER_LINEAR,
            borderMode=cv2.BORDER_CONSTANT,
            borderValue=(0, 0, 0, 0),
        ),
        np.float32,
    )


def _extent(matrix: Matrix, w: int, h: int) -> tuple[int, int, int, int]:
    corners = np.array([[[0, 0], [w, 0], [w, h], [0, h]]], np.float64)
    pts = cv2.perspectiveTransform(corners, matrix)[0]
    x0, y0 = np.floor(pts.min(axis=0)).astype(int) - 2
    x1, y1 = np.ceil(pts.max(axis=0)).astype(int) + 2
    return int(x0), int(y0), int(x1), int(y1)


def _rolled(quad: FloatArray, degrees: float) -> FloatArray:
    centre = quad.mean(axis=0)
    t = math.radians(degrees)
    rot = np.array([[math.cos(t), -math.sin(t)], [math.sin(t), math.cos(t)]], np.float32)
    out: FloatArray = ((quad - centre) @ rot.T + centre).astype(np.float32)
    return out


def paste_plate(
    tile: ImageArray,
    plate: RenderedPlate,
    quad: FloatArray,
    rng: np.random.Generator,
    *,
    upscale: float,
    holder: Holder | None = None,
) -> Placed | None:
    """Draws ``plate`` (and its ``holder``) onto ``quad`` of ``tile`` in place: bent and rolled
    a little, defocused as much as the photo was scaled up (``upscale``), lit like the photo
    around it, now and then with a streak of glare. Returns where it went, or None when it
    fell outside the tile."""
    if rng.random() < 0.5:
        quad = _rolled(quad, float(rng.uniform(-4.0, 4.0)))
    target_h = float(np.linalg.norm(quad[3] - quad[0]))
    src = plate.image.astype(np.float32) / 255.0
    ph, pw = src.shape[:2]
    rect = np.array([[0, 0], [pw, 0], [pw, ph], [0, ph]], np.float32)
    to_tile = cv2.getPerspectiveTransform(rect, quad.astype(np.float32)).astype(np.float64)
    bend = float(rng.uniform(-0.06, 0.06)) * ph if rng.random() < 0.5 else 0.0
    bent, pad = _bend(src, bend)
    layers: list[tuple[FloatArray, Matrix]] = []
    if holder is not None:
        hsrc = holder.image.astype(np.float32) / 255.0
        ox, oy = holder.offset
        shift = np.array([[1, 0, -ox], [0, 1, -oy], [0, 0, 1]], np.float64)
        layers.append((hsrc, to_tile @ shift))
    layers.append((bent, to_tile @ np.array([[1, 0, 0], [0, 1, -pad], [0, 0, 1]], np.float64)))
    boxes = [_extent(m, img.shape[1], img.shape[0]) for img, m in layers]
    box = (
        min(b[0] for b in boxes),
        min(b[1] for b in boxes),
        max(b[2] for b in boxes),
        max(b[3] for b in boxes),
    )
    x0, y0, x1, y1 = box
    th, tw = tile.shape[:2]
    if x1 <= 0 or y1 <= 0 or x0 >= tw or y0 >= th:
        return None
    radius = float(np.clip(0.55 * upscale + rng.uniform(-0.2, 0.4), 0.5, 4.0))
    kernel = _disk(radius)
    warped = []
    for img, m in layers:
        small = _shrink(img, target_h * img.shape[0] / max(ph, 1))
        kx, ky = img.shape[1] / small.shape[1], img.shape[0] / small.shape[0]
        down = np.array([[kx, 0, 0], [0, ky, 0], [0, 0, 1]], np.float64)
        w = _warp(small, m @ down, box)
        premultiplied = np.dstack([w[..., :3] * w[..., 3:4], w[..., 3]])
        warped.append(np.asarray(cv2.filter2D(premultiplied, -1, kernel), np.float32))
    plate_alpha = warped[-1][..., 3]
    solid = np.argwhere(plate_alpha > ALPHA_SOLID)
    if solid.size == 0:
        return None
    (ry0, rx0), (ry1, rx1) = solid.min(axis=0), solid.max(axis=0) + 1
    drawn = (x0 + float(rx0), y0 + float(ry0), x0 + float(rx1), y0 + float(ry1))
    # The photo's light around the plate: its brightness (a high percentile, as the plate is
    # among the brightest things there) and its colour cast (grey world).
    sx0, sy0, sx1, sy1 = max(0, x0), max(0, y0), min(tw, x1), min(th, y1)
    gx0, gy0 = max(0, sx0 - (x1 - x0)), max(0, sy0 - (y1 - y0))
    gx1, gy1 = min(tw, sx1 + (x1 - x0)), min(th, sy1 + (y1 - y0))
    around = tile[gy0:gy1, gx0:gx1].reshape(-1, 3).astype(np.float32)
    level = float(np.percentile(around.mean(axis=1), 85))
    gain = float(np.clip(level / 185.0, 0.2, 1.15)) * float(rng.uniform(0.8, 1.1))
    cast = (around.mean(axis=0) + 4.0) / (float(around.mean()) + 4.0)
    cast = 1.0 + 0.6 * (cast - 1.0)
    region = tile[sy0:sy1, sx0:sx1].astype(np.float32) / 255.0
    cut = (slice(sy0 - y0, sy1 - y0), slice(sx0 - x0, sx1 - x0))
    rows = np.linspace(0.0, 1.0, y1 - y0, dtype=np.float32)[cut[0], None, None]
    shadow = 1.0 - float(rng.uniform(0.0, 0.3)) * (1.0 - rows)  # the bumper shades the top
    glare = np.zeros((y1 - y0, x1 - x0), np.float32)
    if rng.random() < 0.3:
        yy, xx = np.mgrid[0 : y1 - y0, 0 : x1 - x0].astype(np.float32)
        angle = float(rng.uniform(0, math.pi))
        px, py = float(rng.uniform(0, x1 - x0)), float(rng.uniform(0, y1 - y0))
        dist = (xx - px) * math.sin(angle) - (yy - py) * math.cos(angle)
        width = max(1.0, float(rng.uniform(0.05, 0.2)) * (y1 - y0))
        glare = float(rng.uniform(0.3, 0.9)) * np.exp(-((dist / width) ** 2))
    for index, layer in enumerate(warped):
        a = layer[cut][..., 3:4]
        colour = layer[cut][..., :3] * gain * cast * shadow  # both BGR
        if index == len(warped) - 1:
            colour = colour + glare[cut][..., None] * a
        region = region * (1.0 - a) + colour
    light = np.clip(region, 0, 1) * 255.0
    noise = rng.normal(0.0, 1.0, light.shape).astype(np.float32) * (0.8 + 0.12 * np.sqrt(light))
    tile[sy0:sy1, sx0:sx1] = np.clip(light + noise, 0, 255).astype(np.uint8)
    inside = float(plate_alpha[cut].sum()) / max(float(plate_alpha.sum()), 1e-6)
    vx0, vy0 = max(drawn[0], 0.0), max(drawn[1], 0.0)
    vx1, vy1 = min(drawn[2], float(tw)), min(drawn[3], float(th))
    if vx1 <= vx0 or vy1 <= vy0:
        return None
    return Placed(drawn, (vx0, vy0, vx1, vy1), inside)


# --- the whole frame ---------------------------------------------------------------------------

CONDITIONS_B: tuple[tuple[str, float], ...] = (
    ("clear", 0.45), ("night_lamps", 0.2), ("defocus", 0.12), ("motion", 0.13),
    ("recompressed", 0.1))  # fmt: skip


@dataclass(frozen=True)
class Lamp:
    """A plate's place in the frame and which end of the vehicle it is on, for the lamps that
    shine beside it at night."""

    box: tuple[float, float, float, float]
    view: str


def _bloom(frame: FloatArray, x: float, y: float, radius: float, colour: FloatArray) -> None:
    """A lamp seen by a small sensor: a saturated core and a wide halo (glare in the optics)."""
    h, w = frame.shape[:2]
    reach = int(radius * 6)
    x0, y0 = max(0, int(x) - reach), max(0, int(y) - reach)
    x1, y1 = min(w, int(x) + reach + 1), min(h, int(y) + reach + 1)
    if x1 <= x0 or y1 <= y0:
        return
    yy, xx = np.mgrid[y0:y1, x0:x1].astype(np.float32)
    d2 = ((xx - x) ** 2 + (yy - y) ** 2) / max(radius, 1.0) ** 2
    light = 1.6 * np.exp(-d2 * 2.0) + 0.35 * np.exp(-d2 / 6.0)
    frame[y0:y1, x0:x1] += light[..., None] * colour


def frame_condition(
    frame: ImageArray, condition: str, lamps: Sequence[Lamp], rng: np.random.Generator
) -> ImageArray:
    """The whole frame as a camera of another kind saw it under ``condition``."""
    if condition == "night_lamps":
        f = frame.astype(np.float32) / 255.0
        f = np.power(f, float(rng.uniform(1.8, 2.6))) * float(rng.uniform(0.35, 0.6))
        f *= np.array([1.1, 0.95, 0.85], np.float32)  # BGR: sodium-free, bluish night
        for lamp in lamps:
            x1, y1, x2, y2 = lamp.box
            pw, cy = x2 - x1, (y1 + y2) / 2
            if rng.random() < 0.6:  # the plate lamp lights the plate itself
                sx0, sy0 = max(0, int(x1)), max(0, int(y1))
                f[sy0 : int(y2) + 1, sx0 : int(x2) + 1] *= float(rng.uniform(1.4, 2.2))
            if rng.random() < 0.7:
                red = lamp.view == "rear"
                colour = np.array([0.25, 0.3, 1.0] if red else [0.95, 1.0, 1.0], np.float32)
                spread = pw * float(rng.uniform(0.9, 1.6))
                lift = pw * float(rng.uniform(0.1, 0.5))
                for side in (-1, 1):
                    _bloom(f, (x1 + x2) / 2 + side * spread, cy - lift, pw * 0.18, colour)
        noise = rng.normal(0.0, float(rng.uniform(0.012, 0.03)), f.shape).astype(np.float32)
        chroma = cv2.GaussianBlur(noise, (0, 0), 1.5)
        out: ImageArray = np.clip((f + chroma * 1.5 + noise * 0.5) * 255.0, 0, 255).astype(np.uint8)
        return out
    if condition == "defocus":
        return np.asarray(cv2.filter2D(frame, -1, _disk(float(rng.uniform(1.2, 3.5)))), np.uint8)
    if condition == "motion":
        length = float(rng.uniform(4, 16))
        angle = float(rng.uniform(0, math.pi))
        n = 2 * math.ceil(length / 2) + 1
        kernel = np.zeros((n, n), np.float32)
        dx, dy = math.cos(angle) * length / 2, math.sin(angle) * length / 2
        c = n // 2
        start = (round((c - dx) * 8), round((c - dy) * 8))  # fixed point, 3 fractional bits
        end = (round((c + dx) * 8), round((c + dy) * 8))
        cv2.line(kernel, start, end, 1.0, 1, cv2.LINE_AA, shift=3)
        kernel /= max(float(kernel.sum()), 1e-6)
        return np.asarray(cv2.filter2D(frame, -1, kernel), np.uint8)
    if condition == "recompressed":
        # Shared and re-shared: a low-quality JPEG, shrunk and blown up again, and the build's
        # own JPEG on top of it.
        ok, data = cv2.imencode(
            ".jpg", frame, [cv2.IMWRITE_JPEG_QUALITY, int(rng.integers(25, 50))]
        )
        if not ok:
            raise OSError("cannot encode a frame")
        once = cv2.imdecode(data, cv2.IMREAD_COLOR)
        if once is None:
            raise OSError("cannot decode a frame")
        h, w = frame.shape[:2]
        k = float(rng.uniform(0.55, 0.85))
        small = cv2.resize(once, (round(w * k), round(h * k)), interpolation=cv2.INTER_AREA)
        return np.asarray(cv2.resize(small, (w, h), interpolation=cv2.INTER_CUBIC), np.uint8)
    return frame
