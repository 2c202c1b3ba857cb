"""Overlapping square tiles of a frame, for looks at a finer scale than the whole frame."""

from __future__ import annotations

from obscura.types import ImageArray


def tiles(image: ImageArray, size: int, overlap: float) -> list[tuple[int, int, ImageArray]]:
    """Overlapping square tiles covering the image; none if the image fits one tile."""
    h, w = image.shape[:2]
    if max(h, w) <= size:
        return []
    step = max(1, int(size * (1.0 - overlap)))

    def starts(length: int) -> list[int]:
        if length <= size:
            return [0]
        out = list(range(0, length - size, step))
        out.append(length - size)
        return out

    return [(x, y, image[y : y + size, x : x + size]) for y in starts(h) for x in starts(w)]
