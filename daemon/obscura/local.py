"""The pipeline in this process as a batch engine: what ``obscura anonymize`` and ``obscura
watch`` run without ``--server``. The remote engine (the daemon's) is in the client package.

Both run the same frame job: :class:`PipelineService`, which the daemon's servicer calls too,
takes a frame in (encoded bytes, or raw pixels) and gives the encoded or raw image, the masks
and the metadata out. Video frames go through it raw with raw masks, as they go to a daemon.
"""

from __future__ import annotations

from collections import Counter, deque
from collections.abc import Iterator
from concurrent.futures import Future
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np

from obscura.imageio import encode_image, read_image
from obscura.pipeline.frame import FrameProcessor
from obscura.pipeline.options import AnonymizeOptions
from obscura.pipeline.track import Tracker, TrackerConfig, TrackSequence
from obscura.service import (
    ENCODED_FORMATS,
    FrameInput,
    FrameOutput,
    Limits,
    PipelineService,
    RawImage,
)
from obscura_client.batch import BatchRunner, FrameOutputs, ImageOutputs
from obscura_client.codec import raw_mask
from obscura_client.video import DecodedFrame, VideoTranscoder
from obscura_client.wire import FrameMetadata, Options

# Local files are the user's own: no size limit but memory (the daemon has max_pixels).
_NO_LIMIT = Limits(max_pixels=1 << 40, max_message_bytes=1 << 40)


def _raw(image: np.ndarray[Any, Any], name: str, folder: str) -> FrameInput:
    h, w = image.shape[:2]
    data = np.ascontiguousarray(image, dtype=np.uint8).tobytes()
    return FrameInput(raw=RawImage(w, h, "bgr24", data), name=name, folder=folder)


def _masks(out: FrameOutput) -> tuple[Any, Any]:
    """The raw masks of ``out`` as arrays (None where not asked for)."""
    if out.mask_size is None:
        return None, None
    w, h = out.mask_size
    return (
        None if out.binary_mask is None else raw_mask(out.binary_mask, w, h, rgb=False),
        None if out.instance_mask is None else raw_mask(out.instance_mask, w, h, rgb=True),
    )


class FrameEngine:
    """Images and video frames through the frame job, with the options of a run; where the job
    runs is :meth:`submit`'s business (this process, or the daemon's data plane for REST)."""

    window = 1  # video frames submitted before the first answer is awaited

    def __init__(self, options: AnonymizeOptions | Options):
        if isinstance(options, Options):
            self.options, self.pipeline = options, AnonymizeOptions.from_wire(options)
        else:
            self.options, self.pipeline = options.to_wire(), options

    def submit(
        self,
        frame: FrameInput,
        options: AnonymizeOptions,
        output_format: str,
        track: TrackSequence | None = None,
        detect: bool = True,
    ) -> Future[FrameOutput]:
        """Starts one frame; frames of a track must be submitted in frame order."""
        raise NotImplementedError

    def close(self) -> None:
        """Nothing to release: the processor belongs to the caller."""

    def image(self, path: Path, fmt: str, folder: str) -> ImageOutputs:
        """A JPEG / PNG / WebP / BMP file goes in as its bytes, as to a daemon; other formats
        (TIFF) are read here and go in raw."""
        if fmt in ENCODED_FORMATS:
            frame = FrameInput(encoded=path.read_bytes(), name=path.name, folder=folder)
            out = self.submit(frame, self.pipeline, fmt).result()
            image = out.encoded
        else:
            frame = _raw(read_image(path), path.name, folder)
            out = self.submit(frame, self.pipeline, "raw").result()
            assert out.raw is not None
            r = out.raw
            pixels = np.frombuffer(r.data, np.uint8).reshape(r.height, r.width, 3)
            image = encode_image(pixels, fmt, self.pipeline.quality)
        assert image is not None
        return ImageOutputs(
            image=image,
            binary_mask=out.binary_mask,
            instance_mask=out.instance_mask,
            metadata=out.metadata,
            counts=out.counts,
        )

    def video_frames(
        self, tx: VideoTranscoder, filename: str, folder: str
    ) -> Iterator[tuple[DecodedFrame, FrameOutputs]]:
        """Every frame raw, with raw masks, tracked as ``track_hold`` says and detected every
        ``detect_every``-th frame; up to ``window`` frames in flight, answered in order."""
        options = replace(self.pipeline, raw_masks=True)
        hold = options.track_hold
        every = options.detect_every
        track = TrackSequence(Tracker(TrackerConfig(hold=hold))) if hold else None
        pending: deque[tuple[DecodedFrame, Future[FrameOutput]]] = deque()
        try:
            for frame in tx.frames():
                future = self.submit(
                    _raw(frame.image, str(frame.index), folder),
                    options,
                    "raw",
                    track,
                    frame.index % every == 0,
                )
                pending.append((frame, future))
                while len(pending) >= self.window:
                    yield self._frame_outputs(*pending.popleft(), filename, folder)
            while pending:
                yield self._frame_outputs(*pending.popleft(), filename, folder)
        finally:
            for _, future in pending:
                future.cancel()

    @staticmethod
    def _frame_outputs(
        frame: DecodedFrame, future: Future[FrameOutput], filename: str, folder: str
    ) -> tuple[DecodedFrame, FrameOutputs]:
        out = future.result()
        assert out.raw is not None
        r = out.raw
        time = None if frame.time is None else round(frame.time, 6)
        record = FrameMetadata.from_dict(out.metadata).as_frame(frame.index, filename, folder, time)
        binary, instance = _masks(out)
        return (
            frame,
            FrameOutputs(
                image=np.frombuffer(r.data, np.uint8).reshape(r.height, r.width, 3),
                binary_mask=binary,
                instance_mask=instance,
                metadata=record.to_dict(),
                counts=dict(Counter(d.type_label for d in record.detections)),
            ),
        )


class LocalEngine(FrameEngine):
    """The frame job in this thread, with ``processor``."""

    def __init__(self, processor: FrameProcessor, options: AnonymizeOptions | Options):
        super().__init__(options)
        self.service = PipelineService(processor, _NO_LIMIT)

    def submit(
        self,
        frame: FrameInput,
        options: AnonymizeOptions,
        output_format: str,
        track: TrackSequence | None = None,
        detect: bool = True,
    ) -> Future[FrameOutput]:
        future: Future[FrameOutput] = Future()
        ticket = track.ticket() if track is not None else None
        try:
            future.set_result(self.service.run(frame, options, output_format, ticket, detect))
        finally:
            if ticket is not None:
                ticket.release()
        return future


def local_runner(
    processor: FrameProcessor,
    options: AnonymizeOptions | Options,
    output_dir: Path,
    **kwargs: Any,
) -> BatchRunner:
    """A batch run of files into ``output_dir`` with the pipeline here."""
    return BatchRunner(LocalEngine(processor, options), output_dir, **kwargs)
