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


def write_video_with_audio(
    path: Path, images: list[ImageArray], frames: int, *, rate: int = 25
) -> None:
    """Like :func:`write_video`, with a mono AAC tone as long as the video."""
    h, w = images[0].shape[:2]
    sample_rate, chunk = 16000, 1024
    with av.open(str(path), "w") as out:
        video = out.add_stream("mpeg4", rate=rate)
        video.width, video.height, video.pix_fmt = w, h, "yuv420p"
        audio = out.add_stream("aac", rate=sample_rate)
        audio.layout = "mono"
        for i in range(frames):
            frame = av.VideoFrame.from_ndarray(images[i % len(images)], format="bgr24")
            frame.pts = i
            for packet in video.encode(frame):
                out.mux(packet)
        samples = frames * sample_rate // rate
        t = np.arange(samples, dtype=np.float32) / sample_rate
        tone = (0.3 * np.sin(2 * np.pi * 440 * t)).astype(np.float32)
        for start in range(0, samples, chunk):
            part = tone[start : start + chunk]
            if len(part) < chunk:
                part = np.pad(part, (0, chunk - len(part)))
            sound = av.AudioFrame.from_ndarray(part[None, :], format="fltp", layout="mono")
            sound.sample_rate = sample_rate
            sound.pts = start
            for packet in audio.encode(sound):
                out.mux(packet)
        for stream in (video, audio):
            for packet in stream.encode(None):
                out.mux(packet)
