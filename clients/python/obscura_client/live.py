"""``obscura stream``: a live source (RTSP / HTTP camera URL, a device, a file) through the
daemon into rolling anonymized segments with their metadata.

The source is read with PyAV on a thread of its own; frames go to the daemon over one
AnonymizeStream (a bounded number in flight, re-sent on another daemon if one goes away) and
come back in order. When the source drops, it is opened again with exponential backoff; frame
numbers go on increasing, so nothing is ever reordered. Frames the source skipped (gaps in its
timestamps) are counted as dropped at the source, and reported in each segment's status and in
the summary.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import Any

import av
import numpy as np

from obscura_client.client import Client, FrameFailed, Options, request_for
from obscura_client.codec import resize
from obscura_client.files import CHUNK_FRAMES, json_bytes, write_atomic
from obscura_client.types import ImageArray

log = logging.getLogger(__name__)


@dataclass
class LiveStats:
    frames: int = 0  # answered by the daemon and written
    failed: int = 0  # refused by the daemon (per-frame errors): left out, never written raw
    dropped_at_source: int = 0  # gaps in the source's timestamps
    reconnects: int = 0
    segments: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class SourceFrame:
    index: int  # Obscura's running number across reconnects
    time: float  # seconds since the stream started (monotonic across reconnects)
    image: ImageArray


class LiveSource:
    """Frames of ``url``, reopened with backoff when the source drops, until ``stop``."""

    def __init__(
        self,
        url: str,
        stats: LiveStats,
        stop: threading.Event,
        *,
        backoff: float = 0.5,
        max_backoff: float = 30.0,
        open_timeout: float = 10.0,
    ):
        self.url = url
        self.stats = stats
        self.stop = stop
        self.backoff = backoff
        self.max_backoff = max_backoff
        self.open_timeout = open_timeout
        self.fps: Fraction = Fraction(25)
        self.size: tuple[int, int] | None = None
        # A file ends for good; a camera URL or a device comes back.
        self.reconnect = not Path(url).exists()
        self._started = time.monotonic()

    def _open(self) -> Any:
        options = {"rw_timeout": str(int(self.open_timeout * 1_000_000))}
        if self.url.startswith("rtsp"):
            options["rtsp_transport"] = "tcp"
        return av.open(self.url, mode="r", options=options, timeout=self.open_timeout)

    def frames(self) -> Iterator[SourceFrame]:
        index = 0
        delay = self.backoff
        first = True
        while not self.stop.is_set():
            try:
                container = self._open()
            except (av.FFmpegError, OSError) as exc:
                log.warning("cannot open %s (%s); again in %.1f s", self.url, exc, delay)
                self.stop.wait(delay)
                delay = min(self.max_backoff, delay * 2)
                continue
            if not first:
                self.stats.reconnects += 1
                log.info("source %s back (reconnect %d)", self.url, self.stats.reconnects)
            first = False
            try:
                stream = container.streams.video[0]
                rate = stream.average_rate or stream.guessed_rate
                if rate:
                    self.fps = Fraction(rate)
                last_pts: float | None = None
                for frame in container.decode(stream):
                    if self.stop.is_set():
                        break
                    delay = self.backoff  # frames flow again: reset the backoff
                    t = float(frame.time) if frame.time is not None else None
                    if t is not None and last_pts is not None:
                        gap = (t - last_pts) * float(self.fps)
                        if gap > 1.5:
                            self.stats.dropped_at_source += round(gap) - 1
                    if t is not None:
                        last_pts = t
                    image = np.asarray(frame.to_ndarray(format="bgr24"), dtype=np.uint8)
                    if self.size is None:
                        self.size = (image.shape[1], image.shape[0])
                    elif (image.shape[1], image.shape[0]) != self.size:
                        image = _fit(image, self.size)
                    yield SourceFrame(index, time.monotonic() - self._started, image)
                    index += 1
            except (av.FFmpegError, OSError, IndexError) as exc:
                log.warning("source %s dropped (%s)", self.url, exc)
            finally:
                container.close()
            if not self.reconnect:
                return
            if not self.stop.is_set():
                log.warning("source %s ended; reopening in %.1f s", self.url, delay)
                self.stop.wait(delay)
                delay = min(self.max_backoff, delay * 2)


def _fit(image: ImageArray, size: tuple[int, int]) -> ImageArray:
    return resize(image, *size)


class SegmentWriter:
    """Rolling segments ``<name>-<n>.mkv`` (H.264) of ``seconds`` each, with metadata chunks
    ``<name>-<n>-<first>-<last>.json`` and a ``<name>-<n>.status.json`` once a segment closes."""

    def __init__(self, out_dir: Path, name: str, seconds: float, fps: Fraction, stats: LiveStats):
        self.out_dir = out_dir
        self.name = name
        self.seconds = seconds
        self.fps = fps
        self.stats = stats
        self.number = 0
        self._container: Any = None
        self._stream: Any = None
        self._path: Path | None = None
        self._start_index = 0
        self._start_time = 0.0
        self._frames: list[dict[str, Any]] = []
        self._chunk_start = 0
        self._dropped_at_open = 0
        self._failed_at_open = 0
        self._failed_counted = 0
        out_dir.mkdir(parents=True, exist_ok=True)

    def _open(self, first_index: int, at: float, size: tuple[int, int]) -> None:
        self.number += 1
        stem = f"{self.name}-{self.number:05d}"
        self._path = self.out_dir / f".{stem}.part.mkv"
        self._final = self.out_dir / f"{stem}.mkv"
        self._stem = stem
        self._container = av.open(str(self._path), mode="w", format="matroska")
        stream = self._container.add_stream("libx264", rate=self.fps)
        stream.width, stream.height = size
        stream.pix_fmt = "yuv420p"
        stream.codec_context.options = {"crf": "20", "preset": "veryfast"}
        self._stream = stream
        self._start_index = first_index
        self._start_time = at
        self._frames = []
        self._chunk_start = 0
        self._written = 0
        self._dropped_at_open = self.stats.dropped_at_source
        self._failed_at_open = self._failed_counted  # failures since the last segment closed

    def write(self, frame: SourceFrame, image: ImageArray, metadata: dict[str, Any]) -> None:
        if self._container is None or frame.time - self._start_time >= self.seconds:
            self.close()
            self._open(frame.index, frame.time, (image.shape[1], image.shape[0]))
        video = av.VideoFrame.from_ndarray(image, format="bgr24")
        video.pts = self._written
        video.time_base = Fraction(self.fps.denominator, self.fps.numerator)
        for packet in self._stream.encode(video):
            self._container.mux(packet)
        self._written += 1
        self._frames.append(metadata)
        if len(self._frames) == CHUNK_FRAMES:
            self._flush_chunk()

    def _flush_chunk(self) -> None:
        if not self._frames:
            return
        first, last = self._chunk_start, self._chunk_start + len(self._frames) - 1
        write_atomic(self.out_dir / f"{self._stem}-{first}-{last}.json", json_bytes(self._frames))
        self._chunk_start = last + 1
        self._frames = []

    def close(self) -> None:
        if self._container is None:
            return
        for packet in self._stream.encode(None):
            self._container.mux(packet)
        self._container.close()
        self._flush_chunk()
        assert self._path is not None
        self._path.replace(self._final)
        status = {
            "segment": self._final.name,
            "first_frame": self._start_index,
            "frames": self._written,
            "dropped_at_source": self.stats.dropped_at_source - self._dropped_at_open,
            # frames the daemon could not anonymize: left out, never written raw
            "failed": self.stats.failed - self._failed_at_open,
            "reconnects_so_far": self.stats.reconnects,
        }
        write_atomic(self.out_dir / f"{self._stem}.status.json", json_bytes(status))
        self._failed_counted = self.stats.failed
        self.stats.segments.append(self._final.name)
        self._container = None


def run_live(
    client: Client,
    url: str,
    out_dir: Path,
    options: Options,
    *,
    name: str = "stream",
    segment_seconds: float = 60.0,
    in_flight: int = 4,
    max_frames: int | None = None,
    stop: threading.Event | None = None,
) -> LiveStats:
    """Runs until ``stop`` is set (or ``max_frames`` are done); returns the counts."""
    stop = stop or threading.Event()
    stats = LiveStats()
    source = LiveSource(url, stats, stop)
    pending: dict[int, SourceFrame] = {}
    lock = threading.Lock()
    wire = options.replace(output_format="raw")

    def requests() -> Iterator[Any]:
        for sent, frame in enumerate(source.frames(), start=1):
            with lock:
                pending[frame.index] = frame
            yield request_for(
                frame.image,
                wire if frame.index == 0 else None,
                frame_index=frame.index,
                timestamp=frame.time,
            )
            if max_frames is not None and sent >= max_frames:
                break

    writer: SegmentWriter | None = None
    last_index = -1
    try:
        for result in client.frames(requests(), in_flight=in_flight):
            with lock:
                frame = pending.pop(result.frame_index)
            if result.frame_index <= last_index:  # never happens: Client.frames keeps order
                raise RuntimeError(f"frame {result.frame_index} out of order")
            last_index = result.frame_index
            if isinstance(result, FrameFailed):
                stats.failed += 1
                log.warning("%s", result)
                continue
            if writer is None:
                writer = SegmentWriter(out_dir, name, segment_seconds, source.fps, stats)
            record = result.record.as_frame(frame.index, name, "", round(frame.time, 6))
            metadata = record.to_dict()
            writer.write(frame, result.pixels(), metadata)
            stats.frames += 1
    finally:
        stop.set()
        if writer is not None:
            writer.close()
    write_atomic(out_dir / f"{name}.summary.json", json_bytes(asdict(stats)))
    return stats


def stats_text(stats: LiveStats) -> str:
    return json.dumps(asdict(stats))
