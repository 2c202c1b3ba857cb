"""The pipeline in this process as a batch engine: what ``obscura anonymize`` and ``obscura
watch`` run without ``--server``. The remote engine (the daemon's) is in the client package."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

from obscura.imageio import encode_image, read_image
from obscura.pipeline.frame import FrameProcessor
from obscura.pipeline.masks import png_bytes
from obscura.pipeline.options import AnonymizeOptions
from obscura.pipeline.track import Tracker, TrackerConfig
from obscura_client.batch import BatchRunner, FrameOutputs, ImageOutputs
from obscura_client.video import DecodedFrame, VideoTranscoder
from obscura_client.wire import Options


class LocalEngine:
    """Images and video frames through ``processor``, with the options of a run."""

    def __init__(self, processor: FrameProcessor, options: AnonymizeOptions | Options):
        self.processor = processor
        if isinstance(options, Options):
            self.options, self.pipeline = options, AnonymizeOptions.from_wire(options)
        else:
            self.options, self.pipeline = options.to_wire(), options

    def close(self) -> None:
        """Nothing to release: the processor belongs to the caller."""

    def image(self, path: Path, fmt: str, folder: str) -> ImageOutputs:
        image = read_image(path)
        result = self.processor.process(image, self.pipeline, inplace=True)
        save = self.pipeline.save_mask
        return ImageOutputs(
            image=encode_image(result.image, fmt, self.pipeline.quality),
            binary_mask=png_bytes(result.binary_mask()) if save.binary else None,
            instance_mask=png_bytes(result.instance_mask()) if save.instance else None,
            metadata=result.metadata(path.name, path.name, folder),
            counts=result.counts(),
        )

    def video_frames(
        self, tx: VideoTranscoder, filename: str, folder: str
    ) -> Iterator[tuple[DecodedFrame, FrameOutputs]]:
        """Every frame, tracked as ``track_hold`` says, detected every ``detect_every``-th."""
        save = self.pipeline.save_mask
        hold = self.pipeline.track_hold
        every = self.pipeline.detect_every
        tracker = Tracker(TrackerConfig(hold=hold)) if hold else None
        for frame in tx.frames():
            result = self.processor.process(
                frame.image,
                self.pipeline,
                inplace=True,
                tracker=tracker,
                detect=frame.index % every == 0,
            )
            time = None if frame.time is None else round(frame.time, 6)
            yield (
                frame,
                FrameOutputs(
                    image=result.image,
                    binary_mask=result.binary_mask() if save.binary else None,
                    instance_mask=result.instance_mask() if save.instance else None,
                    metadata=result.metadata(
                        frame.index, filename, folder, time=time, timed=True, detect_every=every
                    ),
                    counts=result.counts(),
                ),
            )


def local_runner(
    processor: FrameProcessor,
    options: AnonymizeOptions | Options,
    output_dir: Path,
    **kwargs: Any,
) -> BatchRunner:
    """A batch run of files into ``output_dir`` with the pipeline here."""
    return BatchRunner(LocalEngine(processor, options), output_dir, **kwargs)
