"""Binary and instance masks, built from the detections' regions at encode time.

Binary: one channel, 0 background, 255 wherever a region's shape is set. Instance (Celantur):
R = class code, G = instance id, B = 0, later draw order on top. Instance (Celantur v26):
R = 0, G = instance id of the top object, B = class bit flags OR-ed where objects overlap.
Masks may be scaled to ``mask_scale`` percent of the image with nearest-neighbour sampling,
so every pixel still holds an exact code.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import cv2
import numpy as np

from obscura.pipeline.anonymize import Region, draw_order
from obscura.pipeline.options import MaskEncoding
from obscura.types import Detections, ImageArray, IntArray, ObjectClass

# Celantur v26 bit flags in the B channel.
V26_FLAGS = {
    ObjectClass.PERSON: 128,
    ObjectClass.LICENSE_PLATE: 64,
    ObjectClass.FACE: 32,
    ObjectClass.VEHICLE: 16,
}


def spread_ids(count: int) -> list[int]:
    """Instance ids 1..255 spread evenly (3 -> 85, 170, 255); beyond 255 they repeat."""
    if count <= 255:
        return [round(255 * (k + 1) / count) for k in range(count)]
    return [k % 255 + 1 for k in range(count)]


@dataclass(frozen=True)
class InstanceColours:
    """Per detection: its instance id (G) and its RGB colour in the instance mask."""

    ids: IntArray
    colours: list[tuple[int, int, int]]
    overflow: list[ObjectClass]  # classes with more than 255 instances (ids repeat)


def instance_colours(det: Detections, encoding: MaskEncoding) -> InstanceColours:
    ids = np.zeros(len(det), dtype=np.int32)
    overflow = []
    for cls in ObjectClass:
        members = np.flatnonzero(det.class_ids == int(cls))
        if len(members) > 255:
            overflow.append(cls)
        ids[members] = spread_ids(len(members))
    colours = []
    for i in range(len(det)):
        cls = ObjectClass(int(det.class_ids[i]))
        if encoding is MaskEncoding.CELANTUR:
            colours.append((int(cls), int(ids[i]), 0))
        else:
            colours.append((0, int(ids[i]), V26_FLAGS[cls]))
    return InstanceColours(ids, colours, overflow)


def scaled(mask: ImageArray, scale: int) -> ImageArray:
    """``mask`` at ``scale`` percent of its size, nearest-neighbour (class codes stay exact)."""
    if scale == 100:
        return mask
    h, w = mask.shape[:2]
    size = (max(1, round(w * scale / 100)), max(1, round(h * scale / 100)))
    return np.asarray(cv2.resize(mask, size, interpolation=cv2.INTER_NEAREST), dtype=np.uint8)


def binary_mask(
    size: tuple[int, int], regions: Sequence[Region | None], scale: int = 100
) -> ImageArray:
    """(H, W) uint8: 255 where any region is set, else 0."""
    width, height = size
    out = np.zeros((height, width), dtype=np.uint8)
    for r in regions:
        if r is None:
            continue
        view = out[r.y1 : r.y2, r.x1 : r.x2]
        if r.shape is None:
            view[...] = 255
        else:
            view[r.shape] = 255
    return scaled(out, scale)


def instance_mask(
    size: tuple[int, int],
    det: Detections,
    regions: Sequence[Region | None],
    colours: InstanceColours,
    *,
    encoding: MaskEncoding,
    scale: int = 100,
) -> ImageArray:
    """(H, W, 3) uint8 RGB instance mask in the chosen encoding."""
    width, height = size
    out = np.zeros((height, width, 3), dtype=np.uint8)
    for i in draw_order(det):
        r = regions[i]
        if r is None:
            continue
        view = out[r.y1 : r.y2, r.x1 : r.x2]
        sel = r.mask()
        red, green, blue = colours.colours[i]
        if encoding is MaskEncoding.CELANTUR:
            view[sel] = (red, green, blue)
        else:
            view[..., 1][sel] = green
            view[..., 2][sel] |= np.uint8(blue)
    return scaled(out, scale)


def png_bytes(mask: ImageArray) -> bytes:
    """Lossless PNG of a (H, W) mask or an (H, W, 3) RGB mask."""
    data = mask if mask.ndim == 2 else cv2.cvtColor(mask, cv2.COLOR_RGB2BGR)
    ok, buf = cv2.imencode(".png", data, [cv2.IMWRITE_PNG_COMPRESSION, 3])
    if not ok:
        raise RuntimeError("PNG encoding of a mask failed")
    return bytes(buf)
