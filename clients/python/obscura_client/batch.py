"""Files and folders in, a mirrored output tree out, through an engine: the daemon's (remote,
here) or the pipeline in this process (``obscura.local``, in the daemon's distribution).

A file that cannot be read or written is reported and skipped; the run goes on and the summary
(and the exit code) say that something failed.
"""

from __future__ import annotations

import collections
import logging
import os
import sys
import time
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING, Any, Protocol, TextIO

from obscura_client.errors import InvalidInput, ObscuraError
from obscura_client.files import (
    BIN_SUFFIX,
    IMAGE_SUFFIXES,
    INS_SUFFIX,
    MetadataChunks,
    OutputPaths,
    json_bytes,
    write_all_atomic,
)
from obscura_client.types import ImageArray
from obscura_client.wire import Options, SaveMask

if TYPE_CHECKING:
    from obscura_client.client import Client
    from obscura_client.video import DecodedFrame, VideoTranscoder

log = logging.getLogger(__name__)

VIDEO_SUFFIXES = frozenset(
    {".mp4", ".m4v", ".mov", ".avi", ".mkv", ".webm", ".mpg", ".mpeg", ".ts", ".wmv", ".flv"}
)


@dataclass(frozen=True)
class InputFile:
    path: Path
    rel: PurePosixPath  # relative to its input root: mirrored under the output folder
    kind: str  # "image" or "video"


def media_kind(path: Path) -> str | None:
    suffix = path.suffix.lower()
    if suffix in IMAGE_SUFFIXES:
        return "image"
    if suffix in VIDEO_SUFFIXES:
        return "video"
    return None


def collect_inputs(
    inputs: Sequence[Path], exclude: Path | None = None
) -> tuple[list[InputFile], list[tuple[str, str]]]:
    """The files to process (folders walked recursively, in sorted order) and the errors found.

    Files under ``exclude`` (the output folder) are skipped, so that a run over ``.`` does not
    take its own outputs as inputs. Two inputs whose outputs would share names (``a.jpg`` and
    ``a.png`` in one folder, or the same relative path under two roots) are an error for the
    second one.
    """
    found: list[InputFile] = []
    errors: list[tuple[str, str]] = []
    taken: dict[tuple[str, str], Path] = {}
    skip = exclude.resolve() if exclude is not None else None

    def add(path: Path, rel: PurePosixPath, kind: str) -> None:
        key = (rel.parent.as_posix(), rel.stem)
        if key in taken:
            errors.append((str(path), f"its outputs would overwrite those of {taken[key]}"))
            return
        taken[key] = path
        found.append(InputFile(path, rel, kind))

    for root in inputs:
        if root.is_dir():
            for dirpath, dirnames, filenames in os.walk(root):
                here = Path(dirpath)
                if skip is not None and here.resolve().is_relative_to(skip):
                    dirnames.clear()
                    continue
                dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
                for name in sorted(filenames):
                    path = here / name
                    kind = media_kind(path)
                    if kind is None or name.startswith("."):
                        continue
                    add(path, PurePosixPath(path.relative_to(root).as_posix()), kind)
        elif root.is_file():
            kind = media_kind(root)
            if kind is None:
                errors.append((str(root), "not a supported image or video file (by its suffix)"))
                continue
            add(root, PurePosixPath(root.name), kind)
        else:
            errors.append((str(root), "no such file or folder"))
    return found, errors


@dataclass
class Summary:
    images: int = 0
    videos: int = 0
    frames: int = 0
    image_seconds: float = 0.0
    video_seconds: float = 0.0
    detections: Counter[str] = field(default_factory=Counter)
    errors: list[tuple[str, str]] = field(default_factory=list)

    def lines(self) -> list[str]:
        out = []
        if self.images:
            rate = self.images / self.image_seconds if self.image_seconds else 0.0
            out.append(f"images: {self.images} in {self.image_seconds:.1f} s ({rate:.2f} images/s)")
        if self.videos:
            rate = self.frames / self.video_seconds if self.video_seconds else 0.0
            out.append(
                f"videos: {self.videos}, {self.frames} frames in {self.video_seconds:.1f} s "
                f"({rate:.1f} frames/s)"
            )
        if self.detections:
            out.append(
                "detections: " + ", ".join(f"{k} {v}" for k, v in sorted(self.detections.items()))
            )
        else:
            out.append("detections: none")
        out.append(f"errors: {len(self.errors)}")
        return out


class Progress:
    """A one-line progress display on a terminal; silent otherwise."""

    def __init__(self, total: int, stream: TextIO | None = None, enabled: bool | None = None):
        self.total = total
        self.stream = stream or sys.stderr
        self.enabled = self.stream.isatty() if enabled is None else enabled
        self.done = 0
        self.start = time.perf_counter()
        self._last = 0.0
        self._width = 0

    def show(self, label: str, *, force: bool = False) -> None:
        if not self.enabled:
            return
        now = time.perf_counter()
        if not force and now - self._last < 0.1:
            return
        self._last = now
        filled = int(30 * self.done / self.total) if self.total else 30
        bar = "#" * filled + "-" * (30 - filled)
        line = f"[{bar}] {self.done}/{self.total} {label}"[:120]
        self.stream.write("\r" + line.ljust(self._width))
        self.stream.flush()
        self._width = len(line)

    def advance(self, label: str) -> None:
        self.done += 1
        self.show(label, force=True)

    def close(self) -> None:
        if self.enabled and self._width:
            self.stream.write("\r" + " " * self._width + "\r")
            self.stream.flush()


@dataclass
class ImageOutputs:
    image: bytes
    binary_mask: bytes | None
    instance_mask: bytes | None
    metadata: dict[str, Any]
    counts: dict[str, int]


class Engine(Protocol):
    """Where the work is done: one image file, or the decoded frames of one video, with the
    run's ``options``."""

    options: Options

    def image(self, path: Path, fmt: str, folder: str) -> ImageOutputs: ...

    def video_frames(
        self, tx: VideoTranscoder, filename: str, folder: str
    ) -> Iterator[tuple[DecodedFrame, FrameOutputs]]: ...

    def close(self) -> None: ...


class RemoteEngine:
    """The daemon(s) do the work. An image file's bytes go over gRPC as they are; a video's
    frames go as raw BGR through the client's frames path, ``STREAM_WINDOW`` in flight."""

    def __init__(self, client: Client, options: Options):
        self.client = client
        self.options = options
        self.request_options = options.to_proto()

    def close(self) -> None:
        self.client.close()

    def image(self, path: Path, fmt: str, folder: str) -> ImageOutputs:
        from obscura_client.v1 import anonymizer_pb2 as pb
        from obscura_client.wire import FrameMetadata

        if not path.is_file():
            raise InvalidInput(f"{path}: no such file")
        request = pb.AnonymizeRequest(
            encoded=path.read_bytes(), options=self.request_options, name=path.name, folder=folder
        )
        try:
            response = self.client.anonymize(request)
        except InvalidInput as exc:
            raise InvalidInput(f"{path}: {exc}") from None
        record = FrameMetadata.from_proto(response.metadata)
        save = self.options.save_mask
        return ImageOutputs(
            image=response.encoded,
            binary_mask=response.binary_mask if SaveMask(save).binary else None,
            instance_mask=response.instance_mask if SaveMask(save).instance else None,
            metadata=record.to_dict(),
            counts=dict(Counter(d.type_label for d in record.detections)),
        )

    def video_frames(
        self, tx: VideoTranscoder, filename: str, folder: str
    ) -> Iterator[tuple[DecodedFrame, FrameOutputs]]:
        """Frames through the daemon(s) as raw BGR, ``STREAM_WINDOW`` in flight, with the
        client's frames path: a daemon that goes away or is busy hands its unanswered frames
        to another (or to itself, back), so every frame is answered once and in order.

        The frames are decoded in this thread (the client takes the next request each time it
        hands over a result), so the video containers are only touched here.
        """
        import grpc

        from obscura_client.client import FrameFailed, RemoteError, request_for, status_of

        # Raw pixels and raw masks: what the video and mask writers take, with no codec between.
        options = self.options.replace(output_format="raw", mask_format="raw")
        window: collections.deque[DecodedFrame] = collections.deque()

        def requests() -> Iterator[Any]:
            for frame in tx.frames():
                window.append(frame)
                yield request_for(
                    frame.image,
                    options if frame.index == 0 else None,
                    frame_index=frame.index,
                    timestamp=frame.time or 0.0,
                )

        for result in self.client.frames(requests(), in_flight=STREAM_WINDOW):
            frame = window.popleft()
            if isinstance(result, FrameFailed):
                text = f"frame {frame.index}: the daemon says {result}"
                if status_of(result.code) is grpc.StatusCode.INVALID_ARGUMENT:
                    raise InvalidInput(text)
                raise RemoteError(status_of(result.code), text)  # tried again later
            time = None if frame.time is None else round(frame.time, 6)
            record = result.record.as_frame(frame.index, filename, folder, time)
            yield (
                frame,
                FrameOutputs(
                    image=result.pixels(),
                    binary_mask=result.binary_mask(),
                    instance_mask=result.instance_mask(),
                    metadata=record.to_dict(),
                    counts=dict(Counter(d.type_label for d in record.detections)),
                ),
            )
        if window:
            raise RemoteError(
                grpc.StatusCode.UNAVAILABLE, f"{len(window)} frame(s) were not answered"
            )


class BatchRunner:
    """Anonymizes files into ``output_dir`` with ``engine``: :class:`RemoteEngine` (the daemon)
    or the daemon distribution's ``obscura.local.LocalEngine`` (the pipeline here)."""

    def __init__(
        self,
        engine: Engine,
        output_dir: Path,
        *,
        progress: bool | None = None,
        errors: TextIO | None = None,
        ins_suffix: str = INS_SUFFIX,
    ):
        """Videos are tracked as ``options.track_hold`` says: objects the detector loses stay
        hidden that many frames (0: every frame on its own)."""
        if not ins_suffix or "/" in ins_suffix or "\\" in ins_suffix or ".." in ins_suffix:
            raise InvalidInput(f"instance mask suffix {ins_suffix!r} must be a plain name part")
        self.ins_suffix = ins_suffix
        self.engine = engine
        self.options = engine.options
        self.output_dir = output_dir
        self.last_error: BaseException | None = None  # of the last process() call
        self.progress_enabled = progress
        self.err = errors or sys.stderr

    def run(self, inputs: Sequence[Path]) -> Summary:
        files, problems = collect_inputs(inputs, exclude=self.output_dir)
        summary = Summary()
        for name, message in problems:
            self._error(summary, name, message)
        progress = Progress(len(files), enabled=self.progress_enabled)
        for item in files:
            progress.show(str(item.rel), force=True)
            self.process(item, summary, progress)
            progress.advance(str(item.rel))
        progress.close()
        return summary

    def process(self, item: InputFile, summary: Summary, progress: Progress | None = None) -> bool:
        """One file; a failure is reported and counted, and False returned."""
        progress = progress or Progress(1, enabled=False)
        start = time.perf_counter()
        self.last_error = None
        try:
            paths = OutputPaths(self.output_dir, item.rel)
            if item.kind == "image":
                self._image(item, paths, summary)
                summary.images += 1
                summary.image_seconds += time.perf_counter() - start
            else:
                frames = self._video(item, paths, summary, progress)
                summary.videos += 1
                summary.frames += frames
                summary.video_seconds += time.perf_counter() - start
        except (ObscuraError, OSError, ValueError) as exc:
            progress.close()
            self.last_error = exc
            self._error(summary, str(item.path), str(exc))
            return False
        except Exception as exc:  # a bug: report it, keep going with the next file
            progress.close()
            self.last_error = exc
            log.exception("failed on %s", item.path)
            self._error(summary, str(item.path), f"internal error ({type(exc).__name__})")
            return False
        return True

    def _error(self, summary: Summary, name: str, message: str) -> None:
        summary.errors.append((name, message))
        # The message may already name the file.
        text = message if message.startswith(name) else f"{name}: {message}"
        print(f"obscura: error: {text}", file=self.err)

    def _image(self, item: InputFile, paths: OutputPaths, summary: Summary) -> None:
        fmt = IMAGE_SUFFIXES[item.path.suffix.lower()]
        out = self.engine.image(item.path, fmt, paths.folder)
        files = [(paths.media, out.image)]
        if out.binary_mask is not None:
            files.append((paths.mask(BIN_SUFFIX, ".png"), out.binary_mask))
        if out.instance_mask is not None:
            files.append((paths.mask(self.ins_suffix, ".png"), out.instance_mask))
        files.append((paths.metadata, json_bytes(out.metadata)))
        write_all_atomic(files)  # all of an image's outputs, or none (a full disk)
        summary.detections.update(out.counts)

    def _video(
        self, item: InputFile, paths: OutputPaths, summary: Summary, progress: Progress
    ) -> int:
        from obscura_client.video import MaskVideoWriter, VideoTranscoder

        paths.directory.mkdir(parents=True, exist_ok=True)
        save = SaveMask(self.options.save_mask)
        scale = self.options.mask_scale
        tmp: list[tuple[Path, Path]] = []

        def staged(final: Path) -> Path:
            part = final.with_name(f".{final.stem}.part{final.suffix}")
            tmp.append((part, final))
            return part

        chunks = MetadataChunks(paths)
        frames = 0
        try:
            with VideoTranscoder(
                item.path, staged(paths.media), quality=self.options.quality
            ) as tx:
                info = tx.info
                mw, mh = (
                    max(1, round(info.width * scale / 100)),
                    max(1, round(info.height * scale / 100)),
                )
                writers: list[tuple[MaskVideoWriter, str]] = []
                if save.binary:
                    writers.append(
                        (
                            MaskVideoWriter(
                                staged(paths.mask(BIN_SUFFIX, ".mkv")), mw, mh, info.fps, 1
                            ),
                            "binary",
                        )
                    )
                if save.instance:
                    writers.append(
                        (
                            MaskVideoWriter(
                                staged(paths.mask(self.ins_suffix, ".mkv")), mw, mh, info.fps, 3
                            ),
                            "instance",
                        )
                    )
                try:
                    for frame, out in self.engine.video_frames(tx, item.path.name, paths.folder):
                        tx.write(out.image)
                        for writer, which in writers:
                            mask = out.binary_mask if which == "binary" else out.instance_mask
                            assert mask is not None
                            writer.write(mask)
                        chunks.add(frame.index, out.metadata)
                        summary.detections.update(out.counts)
                        frames += 1
                        progress.show(f"{item.rel} frame {frames}/{info.frame_count or '?'}")
                finally:
                    for writer, _ in writers:
                        writer.close()
            chunks.flush()
            for part, final in tmp:
                part.replace(final)
        except BaseException:
            for part, _ in tmp:
                part.unlink(missing_ok=True)
            for path in chunks.written:
                path.unlink(missing_ok=True)
            raise
        return frames


STREAM_WINDOW = 4  # frames of a video in flight to the daemon


@dataclass
class FrameOutputs:
    image: ImageArray  # BGR
    binary_mask: ImageArray | None
    instance_mask: ImageArray | None  # RGB
    metadata: dict[str, Any]
    counts: dict[str, int]


def print_summary(summary: Summary, stream: TextIO | None = None) -> None:
    out = stream or sys.stdout
    for line in summary.lines():
        print(line, file=out)


def remote_runner(client: Client, options: Options, output_dir: Path, **kwargs: Any) -> BatchRunner:
    """A batch run of files into ``output_dir`` through the daemon(s) of ``client``."""
    return BatchRunner(RemoteEngine(client, options), output_dir, **kwargs)
