"""The daemon's data plane, free of gRPC: one frame in (encoded or raw), outputs out.

Blocking work runs here, on the worker pool; the servicer only converts protobuf to these types
and back. The CLI's in-process mode and the daemon share :class:`FrameProcessor`, the masks and
the metadata, so their outputs are identical.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import threading
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar

import numpy as np

from obscura.errors import InvalidInput, ObscuraError
from obscura.imageio import bgr_to_raw, decode_image, encode_image, raw_to_bgr
from obscura.pipeline.frame import FrameProcessor
from obscura.pipeline.masks import png_bytes
from obscura.pipeline.options import AnonymizeOptions
from obscura.pipeline.track import TrackerLike
from obscura.types import ImageArray
from obscura_client.client import DEFAULT_MAX_MESSAGE

T = TypeVar("T")

ENCODED_FORMATS = ("jpeg", "png", "webp", "bmp")


class Overloaded(ObscuraError):
    """More frames in flight than the daemon takes on (RESOURCE_EXHAUSTED)."""


class Unauthenticated(ObscuraError):
    """No valid credentials (UNAUTHENTICATED)."""


class PermissionDenied(ObscuraError):
    """Valid credentials that may not do this (PERMISSION_DENIED)."""


class NotReady(ObscuraError):
    """Models not loaded or warmed up yet, or draining (UNAVAILABLE)."""


@dataclass(frozen=True)
class RawImage:
    width: int
    height: int
    pixel_format: str  # bgr24, rgb24, nv12, gray8
    data: bytes


@dataclass(frozen=True)
class FrameInput:
    encoded: bytes | None = None
    raw: RawImage | None = None
    name: str = ""
    folder: str = ""


@dataclass
class FrameOutput:
    encoded: bytes | None
    raw: RawImage | None
    format: str  # jpeg, png, webp, bmp or raw
    binary_mask: bytes | None
    instance_mask: bytes | None
    metadata: dict[str, Any]
    mask_size: tuple[int, int] | None = None  # (width, height) when masks are sent
    raw_masks: bool = False  # the masks are uncompressed bytes, not PNG
    timings: dict[str, float] = field(default_factory=dict)
    models: dict[str, float] = field(default_factory=dict)
    counts: dict[str, int] = field(default_factory=dict)


# The daemon's defaults, one place: [server] max_pixels and max_message_bytes start here, and the
# message limit is the clients' own default too.
DEFAULT_MAX_PIXELS = 40_000_000


@dataclass(frozen=True)
class Limits:
    max_pixels: int = DEFAULT_MAX_PIXELS
    max_message_bytes: int = DEFAULT_MAX_MESSAGE


class PipelineService:
    """Decode, anonymize, encode one frame. Blocking and thread-safe."""

    def __init__(self, processor: FrameProcessor, limits: Limits):
        self.processor = processor
        self.limits = limits

    def run(
        self,
        frame: FrameInput,
        options: AnonymizeOptions,
        output_format: str | None = None,
        tracker: TrackerLike | None = None,
        detect: bool = True,
    ) -> FrameOutput:
        t0 = time.perf_counter()
        if frame.encoded is not None:
            in_format, image = decode_image(frame.encoded, self.limits.max_pixels)
            raw_format = "bgr24"
        elif frame.raw is not None:
            raw = frame.raw
            image = raw_to_bgr(
                raw.data, raw.width, raw.height, raw.pixel_format, self.limits.max_pixels
            )
            in_format, raw_format = "raw", raw.pixel_format
        else:
            raise InvalidInput("the request holds no image (set `encoded` or `raw`)")
        fmt = output_format or in_format
        if fmt not in (*ENCODED_FORMATS, "raw"):
            raise InvalidInput(f"unknown output format {fmt!r}")
        t1 = time.perf_counter()
        result = self.processor.process(
            image, options, inplace=True, tracker=tracker, detect=detect
        )
        t2 = time.perf_counter()
        encoded, raw_out = self._encode(result.image, fmt, raw_format, options.quality)
        save = options.save_mask
        masks = [
            result.binary_mask() if save.binary else None,
            result.instance_mask() if save.instance else None,
        ]
        pack = _raw_bytes if options.raw_masks else png_bytes
        binary, instance = (None if m is None else pack(m) for m in masks)
        sizes = [(m.shape[1], m.shape[0]) for m in masks if m is not None]
        t3 = time.perf_counter()
        name = frame.name
        every = options.detect_every if tracker is not None else 1
        metadata = result.metadata(name, name, frame.folder, detect_every=every)
        return FrameOutput(
            encoded=encoded,
            raw=raw_out,
            format=fmt,
            binary_mask=binary,
            instance_mask=instance,
            mask_size=sizes[0] if sizes else None,
            raw_masks=options.raw_masks,
            metadata=metadata,
            timings={
                "decode": t1 - t0,
                "detect": result.timings["detect"],
                "anonymize": result.timings["anonymize"],
                "encode": t3 - t2,
            },
            models=dict(result.model_timings),
            counts=result.counts(),
        )

    @staticmethod
    def _encode(
        image: ImageArray, fmt: str, raw_format: str, quality: int
    ) -> tuple[bytes | None, RawImage | None]:
        if fmt == "raw":
            h, w = image.shape[:2]
            return None, RawImage(w, h, raw_format, bgr_to_raw(image, raw_format))
        return encode_image(image, fmt, quality), None

    def warm_up(self, options: AnonymizeOptions) -> None:
        """Runs every model once (first inferences compile kernels and allocate)."""
        rng = np.random.default_rng(0)
        image = rng.integers(0, 255, size=(480, 640, 3), dtype=np.uint8)
        self.processor.process(image, options)


class Dispatcher:
    """Runs blocking work on a bounded thread pool with admission control.

    At most ``max_inflight`` frames are queued or running across the daemon; one more is
    refused with :class:`Overloaded` rather than queued without bound.
    """

    def __init__(
        self,
        workers: int,
        max_inflight: int,
        *,
        on_change: Callable[[int, int], None] | None = None,
    ):
        self.pool = concurrent.futures.ThreadPoolExecutor(
            max_workers=workers, thread_name_prefix="obscura-worker"
        )
        self.workers = workers
        self.max_inflight = max_inflight
        self.inflight = 0  # changed on the event loop only
        self.running = 0  # changed by worker threads, under the lock
        self._lock = threading.Lock()
        self._on_change = on_change

    def _changed(self) -> None:
        if self._on_change is not None:
            self._on_change(self.inflight, max(0, self.inflight - self.running))

    @contextlib.contextmanager
    def admit(self) -> Any:
        if self.inflight >= self.max_inflight:
            raise Overloaded(
                f"the daemon is at its limit of {self.max_inflight} frames in flight; retry later"
            )
        self.inflight += 1
        self._changed()
        try:
            yield
        finally:
            self.inflight -= 1
            self._changed()

    async def run(self, fn: Callable[[], T]) -> T:
        """``fn`` on the pool; the caller must hold an admission."""
        loop = asyncio.get_running_loop()

        def work() -> T:
            with self._lock:
                self.running += 1
            try:
                return fn()
            finally:
                with self._lock:
                    self.running -= 1

        return await loop.run_in_executor(self.pool, work)

    def shutdown(self) -> None:
        self.pool.shutdown(wait=True, cancel_futures=False)


async def ordered(
    items: AsyncIterator[T], depth: int, handle: Callable[[T], Any]
) -> AsyncIterator[Any]:
    """Starts ``handle(item)`` (a coroutine) for up to ``depth`` items at a time and yields the
    results in item order. The next item is read only when one of the ``depth`` slots is free,
    so a fast producer waits (and gRPC flow control slows the client)."""
    slots = asyncio.Semaphore(depth)
    pending: asyncio.Queue[asyncio.Task[Any] | None] = asyncio.Queue()

    async def feed() -> None:
        try:
            while True:
                await slots.acquire()
                try:
                    item = await anext(items)
                except StopAsyncIteration:
                    slots.release()
                    return
                pending.put_nowait(asyncio.ensure_future(handle(item)))
        finally:
            pending.put_nowait(None)

    feeder = asyncio.ensure_future(feed())
    try:
        while True:
            task = await pending.get()
            if task is None:
                break
            result = await task
            yield result
            slots.release()
        await feeder  # surfaces a broken request stream
    finally:
        feeder.cancel()
        while not pending.empty():
            task = pending.get_nowait()
            if task is not None:
                task.cancel()


def _raw_bytes(mask: ImageArray) -> bytes:
    return np.ascontiguousarray(mask, dtype=np.uint8).tobytes()
