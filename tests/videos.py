"""Builders of test videos (written with PyAV into a test's tmp_path)."""

from __future__ import annotations

from pathlib import Path

import av
import numpy as np

from obscura.types import ImageArray


def write_video(
    path: Path, images: list[ImageArray], frames: int, *, rate: int = 25, rotation: int = 0
) -> None:
    """``frames`` frames cycling through ``images`` (BGR, one size), MPEG-4, with an optional
    display rotation (counter-clockwise degrees)."""
    h, w = images[0].shape[:2]
    with av.open(str(path), "w") as out:
        stream = out.add_stream("mpeg4", rate=rate)
        stream.width, stream.height, stream.pix_fmt = w, h, "yuv420p"
        if rotation:
            stream.set_display_rotation(rotation)
        for i in range(frames):
            frame = av.VideoFrame.from_ndarray(images[i % len(images)], format="bgr24")
            frame.pts = i
            for packet in stream.encode(frame):
                out.mux(packet)
        for packet in stream.encode(None):
            out.mux(packet)


def decode_all(path: Path) -> list[ImageArray]:
    with av.open(str(path)) as c:
        return [np.asarray(f.to_ndarray(format="bgr24")) for f in c.decode(video=0)]
