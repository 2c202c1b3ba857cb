"""Domain types shared by every layer: object classes and columnar detections."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
from numpy.typing import NDArray

from obscura_client.types import ImageArray, ObjectClass

FloatArray = NDArray[np.float32]
IntArray = NDArray[np.int32]
BoolArray = NDArray[np.bool_]

__all__ = [
    "BoolArray",
    "BoxMask",
    "Detections",
    "FloatArray",
    "ImageArray",
    "IntArray",
    "ObjectClass",
]


@dataclass(frozen=True, eq=False)
class BoxMask:
    """A box-local boolean mask whose top-left pixel sits at (x, y) of the image."""

    x: int
    y: int
    mask: BoolArray

    def __post_init__(self) -> None:
        if self.mask.ndim != 2 or self.mask.dtype != np.bool_:
            raise ValueError(
                f"BoxMask.mask must be a 2-D bool array, got {self.mask.dtype} {self.mask.shape}"
            )

    @property
    def width(self) -> int:
        return int(self.mask.shape[1])

    @property
    def height(self) -> int:
        return int(self.mask.shape[0])


def _empty_f(shape: tuple[int, ...]) -> FloatArray:
    return np.zeros(shape, dtype=np.float32)


@dataclass(frozen=True, eq=False)
class Detections:
    """Columnar detections: boxes in image pixels (x1, y1, x2, y2), scores, class ids, masks.

    ``class_ids`` are a model's own class indices inside model adapters, and
    :class:`ObjectClass` codes once the pipeline has mapped them. ``masks`` is either empty
    (no detection has a mask) or holds one optional box-local mask per detection. After
    tracking (video), ``track_ids`` and ``sources`` ("detector" or "track") hold one entry per
    detection; before, they are empty. Indexing filters every column at once.
    """

    xyxy: FloatArray = field(default_factory=lambda: _empty_f((0, 4)))
    scores: FloatArray = field(default_factory=lambda: _empty_f((0,)))
    class_ids: IntArray = field(default_factory=lambda: np.zeros((0,), dtype=np.int32))
    masks: tuple[BoxMask | None, ...] = ()
    track_ids: tuple[int, ...] = ()
    sources: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        n = self.xyxy.shape[0] if self.xyxy.ndim == 2 else -1
        if self.xyxy.ndim != 2 or self.xyxy.shape[1] != 4:
            raise ValueError(f"xyxy must have shape (n, 4), got {self.xyxy.shape}")
        if self.scores.shape != (n,):
            raise ValueError(f"scores must have shape ({n},), got {self.scores.shape}")
        if self.class_ids.shape != (n,):
            raise ValueError(f"class_ids must have shape ({n},), got {self.class_ids.shape}")
        if self.masks and len(self.masks) != n:
            raise ValueError(f"masks must be empty or hold {n} entries, got {len(self.masks)}")
        if len(self.track_ids) != len(self.sources) or (
            self.track_ids and len(self.track_ids) != n
        ):
            raise ValueError(
                f"track_ids and sources must both be empty or hold {n} entries, got "
                f"{len(self.track_ids)} and {len(self.sources)}"
            )
        object.__setattr__(self, "xyxy", np.asarray(self.xyxy, dtype=np.float32))
        object.__setattr__(self, "scores", np.asarray(self.scores, dtype=np.float32))
        object.__setattr__(self, "class_ids", np.asarray(self.class_ids, dtype=np.int32))

    def __len__(self) -> int:
        return int(self.xyxy.shape[0])

    def __getitem__(self, index: NDArray[np.bool_] | NDArray[np.integer] | slice) -> Detections:
        picked = np.arange(len(self))[index].tolist()
        masks = tuple(self.masks[i] for i in picked) if self.masks else ()
        return Detections(
            xyxy=self.xyxy[picked],
            scores=self.scores[picked],
            class_ids=self.class_ids[picked],
            masks=masks,
            track_ids=tuple(self.track_ids[i] for i in picked) if self.track_ids else (),
            sources=tuple(self.sources[i] for i in picked) if self.sources else (),
        )

    def with_tracks(self, track_ids: Sequence[int], sources: Sequence[str]) -> Detections:
        return Detections(
            self.xyxy, self.scores, self.class_ids, self.masks,
            tuple(int(t) for t in track_ids), tuple(sources),
        )  # fmt: skip

    def mask_at(self, i: int) -> BoxMask | None:
        return self.masks[i] if self.masks else None

    def with_class_ids(self, class_ids: IntArray) -> Detections:
        return Detections(
            self.xyxy, self.scores, class_ids, self.masks, self.track_ids, self.sources
        )

    def with_masks(self, masks: Sequence[BoxMask | None]) -> Detections:
        return Detections(
            self.xyxy, self.scores, self.class_ids, tuple(masks), self.track_ids, self.sources
        )

    @staticmethod
    def concat(parts: Sequence[Detections]) -> Detections:
        parts = [p for p in parts if len(p)]
        if not parts:
            return Detections()
        if any(p.masks for p in parts):
            masks: tuple[BoxMask | None, ...] = tuple(
                m for p in parts for m in (p.masks or (None,) * len(p))
            )
        else:
            masks = ()
        tracked = [bool(p.track_ids) for p in parts]
        if any(tracked) and not all(tracked):
            raise ValueError("cannot join tracked and untracked detections")
        return Detections(
            xyxy=np.concatenate([p.xyxy for p in parts]),
            scores=np.concatenate([p.scores for p in parts]),
            class_ids=np.concatenate([p.class_ids for p in parts]),
            masks=masks,
            track_ids=tuple(t for p in parts for t in p.track_ids),
            sources=tuple(s for p in parts for s in p.sources),
        )
