"""Zones: polygons of the frame that are always hidden (privacy zones: a window, a doorway) or
where detections are ignored (ignore zones: a poster, a billboard, a screen).

Points are in pixels of the frame (x, y), in order around the polygon. A detection is ignored
when the centre of its box lies in an ignore zone. Privacy zones are hidden with their own
method before the detections, and appear in the binary mask like any hidden pixel; both kinds
are listed in the frame's metadata.
"""

from __future__ import annotations

import cv2
import numpy as np

from obscura.pipeline.anonymize import Region
from obscura.pipeline.options import Zone, ZoneKind
from obscura.types import BoolArray, Detections, ImageArray


def _polygon(zone: Zone) -> np.ndarray:
    return np.round(np.asarray(zone.points, dtype=np.float64)).astype(np.int32)


def zone_region(zone: Zone, size: tuple[int, int]) -> Region | None:
    """The pixels of a zone inside a frame of ``size`` (w, h); None if it has none there."""
    width, height = size
    poly = _polygon(zone)
    x1, y1 = max(0, int(poly[:, 0].min())), max(0, int(poly[:, 1].min()))
    x2, y2 = min(width, int(poly[:, 0].max()) + 1), min(height, int(poly[:, 1].max()) + 1)
    if x2 <= x1 or y2 <= y1:
        return None
    mask = np.zeros((y2 - y1, x2 - x1), np.uint8)
    cv2.fillPoly(mask, [poly - np.array([x1, y1], np.int32)], 1)
    if not mask.any():
        return None
    return Region(x1, y1, x2, y2, mask.astype(bool))


def ignore_canvas(zones: tuple[Zone, ...], size: tuple[int, int]) -> ImageArray | None:
    """A frame-sized map of the ignore zones (1 inside), or None without any."""
    polygons = [_polygon(z) for z in zones if z.kind is ZoneKind.IGNORE]
    if not polygons:
        return None
    width, height = size
    canvas = np.zeros((height, width), np.uint8)
    cv2.fillPoly(canvas, polygons, 1)
    return canvas


def ignored(det: Detections, canvas: ImageArray | None) -> BoolArray:
    """Per detection: whether the centre of its box lies in an ignore zone (``canvas``)."""
    if canvas is None or not len(det):
        return np.zeros(len(det), dtype=bool)
    height, width = canvas.shape
    cx = np.clip(((det.xyxy[:, 0] + det.xyxy[:, 2]) / 2).astype(np.int64), 0, width - 1)
    cy = np.clip(((det.xyxy[:, 1] + det.xyxy[:, 3]) / 2).astype(np.int64), 0, height - 1)
    return canvas[cy, cx].astype(bool)
