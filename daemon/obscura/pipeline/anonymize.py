"""Hiding detections: the shape of each one and the blur / pixelate / blacken methods.

Every detection gets a :class:`Region`: an integer box in image pixels and, inside it, a
box-local boolean shape (an ellipse for faces, the segmentation mask for persons, the whole box
otherwise). Methods write only where a region's shape is set, so the masks built from the same
regions say exactly which pixels were changed.

Blur and pixelate scale with the object: the Gaussian sigma is a sixth of the region's short side
(a 400 px face gets sigma 67, a 400 px kernel in effect), and pixelation leaves about six cells
across the short side. A blur that strong runs on a downscaled copy of the region's
neighbourhood, so its cost does not grow with the object.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import cv2
import numpy as np

from obscura.pipeline.options import AnonymizeOptions, Method
from obscura.types import BoolArray, Detections, ImageArray, ObjectClass

BLUR_SIGMA_RATIO = 1.0 / 6.0  # sigma as a fraction of the region's short side
PIXELATE_CELLS = 6  # cells across the region's short side
_BLUR_WORK_SIGMA = 3.0  # sigma at the downscaled working resolution


@dataclass(frozen=True, eq=False)
class Region:
    """Pixels a detection covers: box [x1, x2) x [y1, y2) and a shape inside it.

    ``shape`` is None when the whole box is covered, else a (y2 - y1, x2 - x1) bool array.
    """

    x1: int
    y1: int
    x2: int
    y2: int
    shape: BoolArray | None = None

    @property
    def width(self) -> int:
        return self.x2 - self.x1

    @property
    def height(self) -> int:
        return self.y2 - self.y1

    @property
    def short_side(self) -> int:
        return min(self.width, self.height)

    def mask(self) -> BoolArray:
        if self.shape is not None:
            return self.shape
        return np.ones((self.height, self.width), dtype=np.bool_)

    @property
    def pixel_count(self) -> int:
        if self.shape is None:
            return self.width * self.height
        return int(np.count_nonzero(self.shape))


def _enlarged_box(
    xyxy: Sequence[float], factor: float, width: int, height: int
) -> tuple[int, int, int, int] | None:
    x1, y1, x2, y2 = (float(v) for v in xyxy)
    cx, cy = (x1 + x2) / 2.0, (y1 + y2) / 2.0
    hw, hh = (x2 - x1) * factor / 2.0, (y2 - y1) * factor / 2.0
    bx1 = max(0, math.floor(cx - hw))
    by1 = max(0, math.floor(cy - hh))
    bx2 = min(width, math.ceil(cx + hw))
    by2 = min(height, math.ceil(cy + hh))
    if bx2 <= bx1 or by2 <= by1:
        return None
    return bx1, by1, bx2, by2


def _ellipse(
    cx: float, cy: float, rx: float, ry: float, box: tuple[int, int, int, int]
) -> BoolArray:
    """The ellipse's pixels (by pixel centre) inside ``box``; at least the centre pixel."""
    x1, y1, x2, y2 = box
    xs = (np.arange(x1, x2, dtype=np.float32) + 0.5 - cx) / max(rx, 0.5)
    ys = (np.arange(y1, y2, dtype=np.float32) + 0.5 - cy) / max(ry, 0.5)
    inside: BoolArray = (ys[:, None] ** 2 + xs[None, :] ** 2) <= 1.0
    if not inside.any():
        inside[min(inside.shape[0] - 1, int(cy) - y1), min(inside.shape[1] - 1, int(cx) - x1)] = (
            True
        )
    return inside


def regions_for(
    det: Detections, size: tuple[int, int], options: AnonymizeOptions
) -> list[Region | None]:
    """The region of every detection (None for one that lies outside the image)."""
    width, height = size
    out: list[Region | None] = []
    for i in range(len(det)):
        cls = ObjectClass(int(det.class_ids[i]))
        factor = options.enlarge_factor(cls)
        box = _enlarged_box(det.xyxy[i], factor, width, height)
        if box is None:
            out.append(None)
            continue
        x1, y1, x2, y2 = box
        shape: BoolArray | None = None
        if not options.bbox:
            if cls is ObjectClass.FACE:
                bx1, by1, bx2, by2 = (float(v) for v in det.xyxy[i])
                shape = _ellipse(
                    (bx1 + bx2) / 2.0,
                    (by1 + by2) / 2.0,
                    (bx2 - bx1) * factor / 2.0,
                    (by2 - by1) * factor / 2.0,
                    box,
                )
            elif (bm := det.mask_at(i)) is not None:
                # The segmentation mask, in the box's frame: pixels outside the box are dropped.
                shape = np.zeros((y2 - y1, x2 - x1), dtype=np.bool_)
                sx1, sy1 = max(x1, bm.x), max(y1, bm.y)
                sx2, sy2 = min(x2, bm.x + bm.width), min(y2, bm.y + bm.height)
                if sx2 > sx1 and sy2 > sy1:
                    shape[sy1 - y1 : sy2 - y1, sx1 - x1 : sx2 - x1] = bm.mask[
                        sy1 - bm.y : sy2 - bm.y, sx1 - bm.x : sx2 - bm.x
                    ]
                if not shape.any():
                    out.append(None)
                    continue
        out.append(Region(x1, y1, x2, y2, shape))
    return out


def blur_sigma(short_side: int) -> float:
    return max(1.0, short_side * BLUR_SIGMA_RATIO)


def pixelate_cell(short_side: int) -> int:
    return max(2, math.ceil(short_side / PIXELATE_CELLS))


def _blurred(image: ImageArray, region: Region) -> tuple[ImageArray, int, int]:
    """The blurred neighbourhood of ``region`` and its top-left corner."""
    h, w = image.shape[:2]
    sigma = blur_sigma(region.short_side)
    margin = math.ceil(2 * sigma)
    wx1, wy1 = max(0, region.x1 - margin), max(0, region.y1 - margin)
    wx2, wy2 = min(w, region.x2 + margin), min(h, region.y2 + margin)
    window = image[wy1:wy2, wx1:wx2]
    down = max(1.0, sigma / _BLUR_WORK_SIGMA)
    if down > 1.0:
        small_size = (max(1, round((wx2 - wx1) / down)), max(1, round((wy2 - wy1) / down)))
        small = cv2.resize(window, small_size, interpolation=cv2.INTER_AREA)
        small = cv2.GaussianBlur(small, (0, 0), sigma / down, borderType=cv2.BORDER_REPLICATE)
        out = cv2.resize(small, (wx2 - wx1, wy2 - wy1), interpolation=cv2.INTER_LINEAR)
    else:
        out = cv2.GaussianBlur(window, (0, 0), sigma, borderType=cv2.BORDER_REPLICATE)
    return np.asarray(out, dtype=np.uint8), wx1, wy1


def _pixelated(image: ImageArray, region: Region) -> ImageArray:
    patch = image[region.y1 : region.y2, region.x1 : region.x2]
    cell = pixelate_cell(region.short_side)
    cells = (max(1, math.ceil(region.width / cell)), max(1, math.ceil(region.height / cell)))
    small = cv2.resize(patch, cells, interpolation=cv2.INTER_AREA)
    out = cv2.resize(small, (region.width, region.height), interpolation=cv2.INTER_NEAREST)
    return np.asarray(out, dtype=np.uint8)


def apply_method(
    image: ImageArray, region: Region, method: Method, fill_bgr: tuple[int, int, int]
) -> None:
    """Hides ``region`` of ``image`` in place; pixels outside the region's shape never change."""
    if method is Method.DETECT:
        return
    target = image[region.y1 : region.y2, region.x1 : region.x2]
    if method is Method.BLACKEN:
        if region.shape is None:
            target[...] = fill_bgr
        else:
            target[region.shape] = fill_bgr
        return
    if method is Method.BLUR:
        blurred, wx1, wy1 = _blurred(image, region)
        source = blurred[region.y1 - wy1 : region.y2 - wy1, region.x1 - wx1 : region.x2 - wx1]
    else:
        source = _pixelated(image, region)
    if region.shape is None:
        target[...] = source
    else:
        np.copyto(target, source, where=region.shape[:, :, None])


def draw_order(det: Detections) -> list[int]:
    """Detection indices bottom to top: vehicles, persons, plates, faces; within one class the
    larger boxes first, so that a smaller object inside a larger one of its class stays on top
    (and visible in the instance mask)."""
    classes = [ObjectClass(int(c)).draw_order for c in det.class_ids]
    xyxy = det.xyxy
    areas = ((xyxy[:, 2] - xyxy[:, 0]) * (xyxy[:, 3] - xyxy[:, 1])).tolist()
    return sorted(range(len(det)), key=lambda i: (classes[i], -areas[i]))


def covered(regions: Sequence[Region | None], order: Sequence[int]) -> list[bool]:
    """Per region: whether the regions drawn after it (``order`` is bottom to top) cover every
    one of its pixels, so that it shows nowhere in the instance mask. A missing region counts
    as covered."""
    result = [True] * len(regions)
    boxes = np.array(
        [(r.x1, r.y1, r.x2, r.y2) if r is not None else (0, 0, 0, 0) for r in regions],
        dtype=np.int64,
    ).reshape(-1, 4)
    for pos, i in enumerate(order):
        region = regions[i]
        if region is None:
            continue
        above = np.asarray(order[pos + 1 :], dtype=np.int64)
        if len(above):
            b = boxes[above]
            overlap = (
                (b[:, 0] < region.x2)
                & (b[:, 2] > region.x1)
                & (b[:, 1] < region.y2)
                & (b[:, 3] > region.y1)
            )
            above = above[overlap]
        visible = region.mask().copy()
        for j in above.tolist():
            other = regions[j]
            assert other is not None
            x1, y1 = max(region.x1, other.x1), max(region.y1, other.y1)
            x2, y2 = min(region.x2, other.x2), min(region.y2, other.y2)
            part = other.mask()[y1 - other.y1 : y2 - other.y1, x1 - other.x1 : x2 - other.x1]
            visible[y1 - region.y1 : y2 - region.y1, x1 - region.x1 : x2 - region.x1] &= ~part
        result[i] = not visible.any()
    return result


def anonymize(
    image: ImageArray,
    det: Detections,
    regions: Sequence[Region | None],
    options: AnonymizeOptions,
    *,
    inplace: bool = False,
) -> tuple[ImageArray, list[bool]]:
    """The anonymized image and, per detection, whether its pixels were changed.

    Regions are hidden in draw order, so where a face lies on a person the face's method is
    the last one applied to those pixels, as the masks say.
    """
    out = image if inplace else image.copy()
    r, g, b = options.fill_rgb
    changed = [False] * len(det)
    for i in draw_order(det):
        region = regions[i]
        method = options.method(ObjectClass(int(det.class_ids[i])))
        if region is None or method is Method.DETECT:
            continue
        apply_method(out, region, method, (b, g, r))
        changed[i] = True
    return out, changed
