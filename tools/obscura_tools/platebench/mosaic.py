"""Large frames: consecutive frames of an annotated set tiled into one large frame (a 4x4 grid
of 1280x720 frames is 5120x2880, a 6x6 grid 7680x4320), the plates found on the mosaic scored
against each frame's ground truth and compared with the same frames detected one by one. A
camera that films at 8K sees its vehicles at the pixels they would have in a 720p frame; the
detector should find as many plates there as in the frames apart.

A plate found on the mosaic belongs to the frame (cell) that holds its centre and is matched
there, at IoU 0.5, as ``obscura eval`` matches it (difficult objects neither way)."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from obscura.errors import InvalidInput
from obscura.imageio import read_image
from obscura.pipeline.boxes import offset
from obscura.types import Detections, ImageArray, ObjectClass
from obscura_tools.evaluate import ClassCounts, load_annotations, match

PLATE = ObjectClass.LICENSE_PLATE


@dataclass(frozen=True)
class MosaicScore:
    """One mosaic: its frames (by name), its size (w, h), the plate counts on the mosaic and
    on the same frames one by one."""

    frames: tuple[str, ...]
    size: tuple[int, int]
    mosaic: ClassCounts
    alone: ClassCounts

    def as_dict(self) -> dict[str, Any]:
        return {
            "frames": list(self.frames),
            "size": list(self.size),
            "mosaic": self.mosaic.as_dict(),
            "one_by_one": self.alone.as_dict(),
        }


def tiled(frames: Sequence[ImageArray], grid: int) -> ImageArray:
    """``frames`` (all of one size, at most ``grid`` squared) row by row in a ``grid`` x
    ``grid`` mosaic; cells without a frame stay black."""
    if not frames or len(frames) > grid * grid:
        raise ValueError(f"a {grid}x{grid} mosaic takes 1 to {grid * grid} frames")
    h, w = frames[0].shape[:2]
    if any(f.shape != frames[0].shape for f in frames):
        raise InvalidInput("the frames of a mosaic must all have one size")
    out = np.zeros((grid * h, grid * w, 3), np.uint8)
    for i, frame in enumerate(frames):
        row, col = divmod(i, grid)
        out[row * h : (row + 1) * h, col * w : (col + 1) * w] = frame
    return out


def in_cell(found: Detections, cell: tuple[int, int, int, int]) -> Detections:
    """The detections whose centre lies in ``cell`` (x, y, w, h), in the cell's own pixels."""
    x, y, w, h = cell
    cx = (found.xyxy[:, 0] + found.xyxy[:, 2]) / 2
    cy = (found.xyxy[:, 1] + found.xyxy[:, 3]) / 2
    inside = (cx >= x) & (cx < x + w) & (cy >= y) & (cy < y + h)
    return offset(found[inside], -x, -y)


def score_mosaics(
    set_dir: Path,
    detect: Callable[[ImageArray], Detections],
    *,
    grid: int = 4,
    count: int | None = None,
) -> Iterator[MosaicScore]:
    """Mosaics of ``grid`` x ``grid`` consecutive frames of ``set_dir`` (``images/`` and
    ``annotations.json``, frames in name order; ``count``: the first so many mosaics, None:
    every full one), each scored on the mosaic and frame by frame. ``detect`` returns the
    detections of an image; only its plates count."""
    if grid < 1:
        raise ValueError(f"grid must be >= 1, got {grid}")
    truth = load_annotations(set_dir / "annotations.json")
    names = sorted(truth)
    per = grid * grid
    groups = [names[i : i + per] for i in range(0, len(names) - per + 1, per)]
    if not groups:
        raise InvalidInput(
            f"{set_dir} holds {len(names)} annotated frames; a {grid}x{grid} mosaic needs {per}"
        )
    for group in groups[:count]:
        frames = [read_image(set_dir / "images" / name) for name in group]
        h, w = frames[0].shape[:2]
        large = detect(tiled(frames, grid))
        large = large[large.class_ids == PLATE]
        mosaic, alone = ClassCounts(), ClassCounts()
        for i, (name, frame) in enumerate(zip(group, frames, strict=True)):
            gt = truth[name][PLATE]
            row, col = divmod(i, grid)
            own = in_cell(large, (col * w, row * h, w, h))
            mosaic.add(match(own.xyxy, own.scores, gt))
            single = detect(frame)
            single = single[single.class_ids == PLATE]
            alone.add(match(single.xyxy, single.scores, gt))
        yield MosaicScore(tuple(group), (grid * w, grid * h), mosaic, alone)


def total(scores: Sequence[MosaicScore]) -> tuple[ClassCounts, ClassCounts]:
    """The counts of all ``scores`` together: (on the mosaics, one by one)."""
    mosaic, alone = ClassCounts(), ClassCounts()
    for score in scores:
        mosaic.add(score.mosaic)
        alone.add(score.alone)
    return mosaic, alone
