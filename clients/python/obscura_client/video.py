"""Video in and out with PyAV (FFmpeg bindings from PyPI; no system FFmpeg needed).

:class:`VideoTranscoder` decodes a video, hands every frame to the caller as BGR in display
orientation, and encodes the caller's processed frames into a video that keeps the input's
resolution, frame rate, timestamps, frame count and rotation; audio packets are copied as they
are (no re-encoding). :class:`MaskVideoWriter` stores per-frame masks losslessly (FFV1 in
Matroska) and :func:`read_mask_video` gives them back bit-exact.
"""

from __future__ import annotations

import collections
import contextlib
import errno
import logging
from collections.abc import Iterator
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from types import TracebackType
from typing import Any

import av
import numpy as np
from av.container import InputContainer, OutputContainer
from av.video.stream import VideoStream

from obscura_client.errors import InvalidInput
from obscura_client.types import ImageArray

log = logging.getLogger(__name__)

# Input codec -> encoder to try first; anything else falls back to _FALLBACK in order.
_ENCODER_FOR = {
    "h264": "libx264",
    "hevc": "libx264",
    "mpeg4": "mpeg4",
    "mjpeg": "mjpeg",
    "vp9": "libvpx-vp9",
    "vp8": "libvpx-vp9",
    "av1": "libx264",
}
_FALLBACK = ("libx264", "libvpx-vp9", "mpeg4", "mjpeg")

# AVColorSpace (frame and stream tags) -> swscale colourspace for the BGR -> YUV conversion.
_SWS_COLORSPACE = {1: 1, 4: 4, 5: 5, 6: 5, 7: 7, 9: 9, 10: 9}


@dataclass(frozen=True)
class VideoInfo:
    width: int  # display orientation (rotation applied)
    height: int
    fps: Fraction
    frame_count: int  # as the container says; 0 if it does not say
    rotation: int  # counter-clockwise degrees to display: 0, 90, 180 or 270
    codec: str
    has_audio: bool
    duration: float | None  # seconds


@dataclass(frozen=True, eq=False)
class DecodedFrame:
    index: int  # 0-based, presentation order
    time: float | None  # seconds
    image: ImageArray  # BGR, display orientation, C-contiguous


def _open_input(path: Path) -> tuple[InputContainer, VideoStream]:
    if not path.is_file():
        raise InvalidInput(f"{path}: no such file")
    try:
        container = av.open(str(path), mode="r")
    except (av.FFmpegError, OSError) as exc:
        raise InvalidInput(f"{path}: not a readable video ({exc})") from None
    if not container.streams.video:
        container.close()
        raise InvalidInput(f"{path}: no video stream")
    return container, container.streams.video[0]


def _fps(stream: VideoStream) -> Fraction:
    rate = stream.average_rate or stream.guessed_rate or stream.base_rate
    return Fraction(rate) if rate else Fraction(25)


def _quarter_turns(rotation: float | int | None) -> int:
    return (round((rotation or 0) / 90)) % 4


def probe(path: Path) -> VideoInfo:
    """What a video holds; decodes its first frame to learn the display rotation."""
    container, stream = _open_input(path)
    try:
        rotation = 0
        try:
            for frame in container.decode(stream):
                rotation = _quarter_turns(frame.rotation) * 90
                break
        except av.FFmpegError as exc:
            raise InvalidInput(f"{path}: cannot decode video ({exc})") from None
        cc = stream.codec_context
        width, height = cc.width, cc.height
        if rotation in (90, 270):
            width, height = height, width
        duration = None
        if stream.duration is not None and stream.time_base is not None:
            duration = float(stream.duration * stream.time_base)
        elif container.duration is not None:
            duration = container.duration / 1_000_000
        return VideoInfo(
            width=width,
            height=height,
            fps=_fps(stream),
            frame_count=int(stream.frames or 0),
            rotation=rotation,
            codec=cc.name,
            has_audio=bool(container.streams.audio),
            duration=duration,
        )
    finally:
        container.close()


def _encoder_available(name: str, container: OutputContainer) -> bool:
    try:
        av.Codec(name, "w")
    except (av.FFmpegError, ValueError):
        return False
    supported = getattr(container, "supported_codecs", None)
    return supported is None or name in supported


class VideoTranscoder:
    """Decode, let the caller process, encode; audio copied. Use as a context manager:

    ``for frame in tx.frames(): tx.write(process(frame.image))``

    Every yielded frame must be answered by exactly one :meth:`write`, in order; a caller may
    read ahead. If the block raises, the partial output file is removed.
    """

    def __init__(self, src: Path, dst: Path, *, quality: int = 90) -> None:
        self.src, self.dst, self.quality = src, dst, quality
        if dst.exists() and dst.resolve() == src.resolve():
            raise InvalidInput(f"{dst}: the output would overwrite the input")
        self.info = probe(src)
        self._input, self._video = _open_input(src)
        self._audio_in = list(self._input.streams.audio)
        self._turns = self.info.rotation // 90
        self._output: OutputContainer | None = None
        self._out_video: VideoStream | None = None
        self._audio_out: dict[int, Any] = {}
        self._pending: collections.deque[tuple[DecodedFrame, int]] = collections.deque()
        self._last_pts: int | None = None
        self._tb: Fraction = Fraction(1, 1)
        self._colour: tuple[int, int, int, int] | None = None  # space, range, trc, primaries
        self._closed = False

    # --- output setup ------------------------------------------------------------------------
    def _open_output(self) -> None:
        try:
            out = av.open(str(self.dst), mode="w")
        except (av.FFmpegError, OSError, ValueError) as exc:
            raise InvalidInput(f"{self.dst}: cannot write this video container ({exc})") from None
        self._output = out
        in_cc = self._video.codec_context
        wanted = _ENCODER_FOR.get(in_cc.name)
        candidates = [c for c in (wanted, *_FALLBACK) if c]
        codec = next((c for c in candidates if _encoder_available(c, out)), None)
        if codec is None:
            raise InvalidInput(f"{self.dst}: no video encoder for this container")
        fps = self.info.fps
        stream = out.add_stream(codec, rate=fps)
        assert isinstance(stream, VideoStream)
        cc = stream.codec_context
        cc.width, cc.height = in_cc.width, in_cc.height  # stored orientation
        formats = [f.name for f in (stream.codec_context.codec.video_formats or ())]
        preferred = ("yuvj420p", "yuv420p") if codec == "mjpeg" else ("yuv420p", "yuvj420p")
        for pix in (in_cc.pix_fmt or "", *preferred, *formats):
            if pix in formats:
                cc.pix_fmt = pix
                break
        tb = Fraction(self._video.time_base) if self._video.time_base else 1 / fps
        if codec in ("mpeg4", "mjpeg") and tb.denominator > 65535:
            tb = 1 / fps  # these encoders take coarse time bases only
        self._tb = tb
        cc.time_base = tb
        stream.time_base = tb
        if codec == "libx264":
            crf = max(0, min(51, round(51 - 0.37 * self.quality)))
            cc.options = {"crf": str(crf), "preset": "veryfast"}
        elif codec == "libvpx-vp9":
            crf = max(0, min(63, round(63 - 0.5 * self.quality)))
            cc.options = {"crf": str(crf), "b": "0", "deadline": "realtime", "cpu-used": "8"}
        else:
            # Constant quantiser (like ffmpeg -q:v): 2 is best, 4 at quality 90.
            q = max(2, min(31, round(2 + (100 - self.quality) * 0.2)))
            cc.qscale = True
            cc.global_quality = q * 118  # FF_QP2LAMBDA
        if self.info.rotation:
            stream.set_display_rotation(self.info.rotation)
        self._out_video = stream
        for audio in self._audio_in:
            try:
                self._audio_out[audio.index] = out.add_stream_from_template(audio)
            except (av.FFmpegError, ValueError) as exc:
                log.warning("%s: audio stream %d not copied (%s)", self.src, audio.index, exc)

    # --- the loop ----------------------------------------------------------------------------
    def frames(self) -> Iterator[DecodedFrame]:
        if self._output is None:
            self._open_output()
        index = 0
        try:
            for packet in self._input.demux(self._video, *self._audio_in):
                if packet.stream.index != self._video.index:
                    self._copy_audio(packet)
                    continue
                for frame in packet.decode():
                    if not isinstance(frame, av.VideoFrame):
                        continue
                    if self._colour is None:
                        self._colour = (
                            int(frame.colorspace),
                            int(frame.color_range),
                            int(frame.color_trc),
                            int(frame.color_primaries),
                        )
                    image = np.asarray(frame.to_ndarray(format="bgr24"), dtype=np.uint8)
                    if self._turns:
                        image = np.ascontiguousarray(np.rot90(image, self._turns))
                    time = float(frame.time) if frame.time is not None else None
                    decoded = DecodedFrame(index, time, image)
                    pts = self._next_pts(frame.pts, frame.time_base, index)
                    self._pending.append((decoded, pts))
                    yield decoded
                    index += 1
        except av.FFmpegError as exc:
            if isinstance(exc, OSError) and exc.errno not in (None, errno.EINVAL):
                raise  # writing failed (disk full, ...): not the input's fault
            raise InvalidInput(f"{self.src}: cannot decode video ({exc})") from None

    def _next_pts(self, pts: int | None, time_base: Fraction | None, index: int) -> int:
        """The frame's pts in the output time base, strictly increasing."""
        if pts is None or time_base is None:
            value = round(index / (self.info.fps * self._tb))
        else:
            value = round(pts * Fraction(time_base) / self._tb)
        if self._last_pts is not None and value <= self._last_pts:
            value = self._last_pts + 1
        self._last_pts = value
        return value

    def _copy_audio(self, packet: Any) -> None:
        target = self._audio_out.get(packet.stream.index)
        if target is None or packet.dts is None:
            return  # flush packets carry no data
        assert self._output is not None
        packet.stream = target
        self._output.mux(packet)

    @property
    def pending(self) -> int:
        """Frames yielded and not written yet."""
        return len(self._pending)

    def write(self, image: ImageArray) -> None:
        """Encodes the processed image of the oldest frame yielded and not written yet (so a
        caller may read ahead, e.g. to keep several frames in flight to a daemon)."""
        if not self._pending:
            raise RuntimeError("write() without a frame to answer")
        pending, pts = self._pending[0]
        if image.shape != pending.image.shape or image.dtype != np.uint8:
            raise ValueError(
                f"processed frame must be uint8 {pending.image.shape}, got "
                f"{image.dtype} {image.shape}"
            )
        assert self._output is not None
        assert self._out_video is not None
        stored = np.ascontiguousarray(np.rot90(image, -self._turns)) if self._turns else image
        frame = self._yuv_frame(av.VideoFrame.from_ndarray(stored, format="bgr24"))
        frame.pts = pts
        frame.time_base = self._tb
        for packet in self._out_video.encode(frame):
            self._output.mux(packet)
        self._pending.popleft()

    def _yuv_frame(self, frame: av.VideoFrame) -> av.VideoFrame:
        """BGR to the encoder's format with the input's colour matrix and range, tagged as the
        input was, so that players show the colours the input had (BT.709 HD video included)."""
        assert self._out_video is not None
        if self._colour is None:
            return frame
        space, colour_range, trc, primaries = self._colour
        cc = self._out_video.codec_context
        pix = cc.pix_fmt or "yuv420p"
        full_range_format = pix.startswith("yuvj")
        out = frame.reformat(
            format=pix,
            dst_colorspace=_SWS_COLORSPACE.get(space),
            dst_color_range=None if full_range_format or not colour_range else colour_range,
        )
        if not cc.is_open:
            cc.colorspace, cc.color_trc, cc.color_primaries = space, trc, primaries
            if not full_range_format and colour_range:
                cc.color_range = colour_range
        out.colorspace = space
        if not full_range_format and colour_range:
            out.color_range = colour_range
        return out

    def close(self) -> None:
        if self._closed:
            return
        if self._pending:
            raise RuntimeError(f"{len(self._pending)} frame(s) yielded but never written")
        self._closed = True
        try:
            if self._output is not None and self._out_video is not None:
                for packet in self._out_video.encode(None):
                    self._output.mux(packet)
        finally:
            if self._output is not None:
                self._output.close()
            self._input.close()

    def __enter__(self) -> VideoTranscoder:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if exc_type is None:
            try:
                self.close()
            except BaseException:
                self._abort()
                raise
            return
        self._abort()

    def _abort(self) -> None:
        """Closes everything and removes the partial output."""
        try:
            self._closed = True
            if self._output is not None:
                with contextlib.suppress(Exception):
                    self._output.close()
            self._input.close()
        finally:
            self.dst.unlink(missing_ok=True)


class MaskVideoWriter:
    """Per-frame masks as lossless FFV1 in Matroska: gray for (H, W), BGRA for (H, W, 3) RGB."""

    def __init__(self, path: Path, width: int, height: int, fps: Fraction, channels: int):
        if channels not in (1, 3):
            raise ValueError(f"channels must be 1 or 3, got {channels}")
        self.path, self.width, self.height, self.channels = path, width, height, channels
        self._container = av.open(str(path), mode="w", format="matroska")
        stream = self._container.add_stream("ffv1", rate=fps)
        assert isinstance(stream, VideoStream)
        stream.codec_context.width = width
        stream.codec_context.height = height
        stream.codec_context.pix_fmt = "gray" if channels == 1 else "bgra"
        self._tb = Fraction(fps.denominator, fps.numerator) if fps else Fraction(1, 25)
        stream.codec_context.time_base = self._tb
        self._stream = stream
        self._index = 0
        self._closed = False

    def write(self, mask: ImageArray) -> None:
        expected = (self.height, self.width) if self.channels == 1 else (self.height, self.width, 3)
        if mask.shape != expected or mask.dtype != np.uint8:
            raise ValueError(f"mask must be uint8 {expected}, got {mask.dtype} {mask.shape}")
        if self.channels == 1:
            frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(mask), format="gray")
        else:
            bgra = np.empty((self.height, self.width, 4), dtype=np.uint8)
            bgra[..., 0], bgra[..., 1], bgra[..., 2] = mask[..., 2], mask[..., 1], mask[..., 0]
            bgra[..., 3] = 255
            frame = av.VideoFrame.from_ndarray(bgra, format="bgra")
        frame.pts = self._index
        frame.time_base = self._tb
        self._index += 1
        for packet in self._stream.encode(frame):
            self._container.mux(packet)

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        try:
            for packet in self._stream.encode(None):
                self._container.mux(packet)
        finally:
            self._container.close()

    def __enter__(self) -> MaskVideoWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def read_mask_video(path: Path) -> Iterator[ImageArray]:
    """The masks of a mask video, bit-exact: (H, W) gray or (H, W, 3) RGB uint8."""
    container, stream = _open_input(path)
    try:
        gray = stream.codec_context.pix_fmt == "gray"
        for frame in container.decode(stream):
            if gray:
                yield np.asarray(frame.to_ndarray(format="gray"), dtype=np.uint8)
            else:
                bgra = np.asarray(frame.to_ndarray(format="bgra"), dtype=np.uint8)
                yield np.ascontiguousarray(bgra[..., 2::-1])
    finally:
        container.close()
