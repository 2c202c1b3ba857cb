"""The gRPC servicer: thin; converts protobuf at the edge and delegates to the data plane."""

from __future__ import annotations

import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

import grpc

from obscura import __version__
from obscura.imageio import RAW_PIXEL_FORMATS
from obscura.pipeline.options import AnonymizeOptions, MaskEncoding, Method
from obscura.pipeline.track import Tracker, TrackerConfig, TrackSequence
from obscura.server.convert import (
    frame_from_proto,
    request_options,
    response_from_output,
)
from obscura.server.errors import log_unexpected, status_for
from obscura.service import (
    ENCODED_FORMATS,
    Dispatcher,
    FrameInput,
    FrameOutput,
    NotReady,
    PipelineService,
    ordered,
)
from obscura.types import ObjectClass
from obscura_client.v1 import anonymizer_pb2 as pb
from obscura_client.v1 import anonymizer_pb2_grpc as pb_grpc

if TYPE_CHECKING:
    from obscura.metrics import Metrics
    from obscura.systemd import Heartbeat

log = logging.getLogger(__name__)

_STATUS_LABEL = {
    grpc.StatusCode.INVALID_ARGUMENT: "invalid_argument",
    grpc.StatusCode.RESOURCE_EXHAUSTED: "resource_exhausted",
    grpc.StatusCode.INTERNAL: "internal",
    grpc.StatusCode.CANCELLED: "cancelled",
}


@dataclass
class DaemonState:
    """What the servicer needs from the daemon around it."""

    dispatcher: Dispatcher
    stream_depth: int
    max_pixels: int
    max_message_bytes: int
    runtime: str = ""
    service: PipelineService | None = None  # set once models are loaded and warmed up
    models: list[dict[str, str]] = field(default_factory=list)
    draining: bool = False
    metrics: Metrics | None = None
    heartbeat: Heartbeat | None = None

    def ready_service(self, *, new_call: bool = True) -> PipelineService:
        """The pipeline; new calls are refused while draining, the frames of streams that are
        already open are still served (within the grace period)."""
        if new_call and self.draining:
            raise NotReady("the daemon is shutting down")
        if self.service is None:
            raise NotReady("the daemon is loading its models; retry shortly")
        return self.service

    async def run_frame(
        self,
        frame: FrameInput,
        options: AnonymizeOptions,
        output_format: str | None,
        *,
        new_call: bool = True,
        track: TrackSequence | None = None,
        detect: bool = True,
        admitted: Callable[[], None] | None = None,
    ) -> FrameOutput:
        """One frame through the data plane, whatever the protocol: admission control (an
        :class:`Overloaded` refusal when full), the stream's tracker turn, the worker pool, the
        watchdog's heartbeat and the metrics. ``admitted`` is called once the frame holds its
        admission and its tracker turn (before any await, so that turns follow call order)."""
        service = self.ready_service(new_call=new_call)
        with self.dispatcher.admit():
            queued = time.perf_counter()
            # Taken here, with no await since the frame's task started: frames reach this
            # point, and the worker pool, in stream order, and so take their turns in order.
            ticket = track.ticket() if track is not None else None
            if admitted is not None:
                admitted()
            heartbeat = self.heartbeat

            def work() -> tuple[FrameOutput, float]:
                began = time.perf_counter()
                token = heartbeat.begin() if heartbeat is not None else None
                try:
                    return service.run(frame, options, output_format, ticket, detect), began
                finally:
                    if ticket is not None:
                        ticket.release()
                    if heartbeat is not None and token is not None:
                        heartbeat.end(token)

            out, began = await self.dispatcher.run(work)
        metrics = self.metrics
        if metrics is not None:
            metrics.stage("queue", began - queued)
            for stage, seconds in out.timings.items():
                metrics.stage(stage, seconds)
            for model, seconds in out.models.items():
                metrics.inference(model, seconds)
            metrics.detections(out.counts)
            metrics.frame("ok")
            if not detect:
                metrics.tracked_only()
        return out


@dataclass
class _Session:
    options: AnonymizeOptions
    output_format: str | None
    track: TrackSequence | None = None
    frames: int = 0  # frames of the stream so far (for detect_every)

    def tracking(self) -> TrackSequence | None:
        """The stream's tracker as its options say (kept across option changes)."""
        hold = self.options.track_hold
        if not hold:
            self.track = None  # turned off: turned on again, it starts afresh
            return None
        if self.track is None:
            self.track = TrackSequence(Tracker(TrackerConfig(hold=hold)))
        elif self.track.tracker.config.hold != hold:
            self.track.tracker.config = replace(self.track.tracker.config, hold=hold)
        return self.track


class AnonymizerServicer(pb_grpc.AnonymizerServicer):
    def __init__(self, state: DaemonState):
        self.state = state

    # --- one frame -------------------------------------------------------------------------
    async def _process(
        self,
        req: pb.AnonymizeRequest,
        options: AnonymizeOptions,
        output_format: str | None,
        *,
        new_call: bool = True,
        track: TrackSequence | None = None,
        detect: bool = True,
    ) -> pb.AnonymizeResponse:
        start = time.perf_counter()
        out = await self.state.run_frame(
            frame_from_proto(req), options, output_format,
            new_call=new_call, track=track, detect=detect,
        )  # fmt: skip
        return response_from_output(out, req, time.perf_counter() - start)

    def _frame_failed(self, exc: BaseException) -> None:
        if self.state.metrics is not None:
            code, _ = status_for(exc)
            self.state.metrics.frame(_STATUS_LABEL.get(code, "other"))

    # --- RPCs ------------------------------------------------------------------------------
    async def Anonymize(  # noqa: N802 (gRPC method name)
        self, request: pb.AnonymizeRequest, context: grpc.aio.ServicerContext
    ) -> pb.AnonymizeResponse:
        try:
            options, output_format = request_options(request.options)
            log.debug("Anonymize %s: %r, output %s", request.name, options, output_format)
            return await self._process(request, options, output_format)
        except Exception as exc:
            self._frame_failed(exc)
            raise

    async def AnonymizeStream(  # noqa: N802
        self,
        request_iterator: AsyncIterator[pb.AnonymizeRequest],
        context: grpc.aio.ServicerContext,
    ) -> AsyncIterator[pb.AnonymizeResponse]:
        self.state.ready_service()  # refuse the whole stream early when not ready
        session = _Session(request_options(pb.Options())[0], None)  # the API's defaults
        metrics = self.state.metrics
        if metrics is not None:
            metrics.stream_opened()

        def handle(req: pb.AnonymizeRequest) -> Awaitable[pb.AnonymizeResponse]:
            # Runs synchronously in request order: options apply from this frame on.
            error: BaseException | None = None
            if req.HasField("options"):
                try:
                    session.options, session.output_format = request_options(req.options)
                    log.debug(
                        "AnonymizeStream from frame %d: %r, output %s",
                        req.frame_index,
                        session.options,
                        session.output_format,
                    )
                except Exception as exc:
                    error = exc
            track = session.tracking() if error is None else None
            detect = track is None or session.frames % session.options.detect_every == 0
            session.frames += 1
            return self._stream_frame(
                req, session.options, session.output_format, error, track=track, detect=detect
            )

        try:
            async for response in ordered(request_iterator, self.state.stream_depth, handle):
                yield response
        finally:
            if metrics is not None:
                metrics.stream_closed()

    async def _stream_frame(
        self,
        req: pb.AnonymizeRequest,
        options: AnonymizeOptions,
        output_format: str | None,
        error: BaseException | None,
        *,
        track: TrackSequence | None,
        detect: bool,
    ) -> pb.AnonymizeResponse:
        """A frame's response; a failure becomes a per-frame error and the stream goes on."""
        try:
            if error is not None:
                raise error
            return await self._process(
                req, options, output_format, new_call=False, track=track, detect=detect
            )
        except Exception as exc:
            code, message = status_for(exc)
            log_unexpected(exc, "AnonymizeStream")
            self._frame_failed(exc)
            return pb.AnonymizeResponse(
                frame_index=req.frame_index,
                timestamp=req.timestamp,
                error=pb.FrameError(code=code.value[0], message=message),
            )

    async def GetInfo(  # noqa: N802
        self, request: pb.GetInfoRequest, context: grpc.aio.ServicerContext
    ) -> pb.GetInfoResponse:
        state = self.state
        return pb.GetInfoResponse(
            version=__version__,
            models=[pb.ModelInfo(**m) for m in state.models],
            classes=[c.label for c in ObjectClass],
            methods=[m.value for m in Method],
            pixel_formats=list(RAW_PIXEL_FORMATS),
            image_formats=[*ENCODED_FORMATS, "raw"],
            mask_encodings=[e.value for e in MaskEncoding],
            limits=pb.Limits(
                max_pixels=state.max_pixels,
                max_message_bytes=state.max_message_bytes,
                max_inflight=state.dispatcher.max_inflight,
                stream_depth=state.stream_depth,
            ),
            runtime=state.runtime,
        )


def model_rows(
    specs: list[Any], runs: Callable[[str], tuple[str, str]], device: str, precision: str
) -> list[dict[str, Any]]:
    """GetInfo's models: the device and precision each model really runs at (``runs``,
    by model name), where known, else the configured ones."""
    rows = []
    for spec in specs:
        runs_on, runs_at = runs(spec.name)
        rows.append({
            "name": spec.name,
            "classes": [c.label for c in spec.classes],
            "family": spec.family,
            "precision": runs_at or precision,
            "device": runs_on or device,
            "source": spec.describe_source(),
        })  # fmt: skip
    return rows
