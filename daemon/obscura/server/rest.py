"""REST mode: the Celantur Container API (v1) over HTTP, on the daemon's data plane.

``POST /v1/file`` stores the upload as a task (:mod:`obscura.server.tasks`); a task runs through
the same batch runner as ``obscura anonymize`` (videos: audio copied, tracking, metadata in
frames), and every frame of it through the daemon's admission control, worker pool, watchdog
and metrics, as a gRPC frame would. Starlette serves the routes, uvicorn the HTTP, both in the
daemon's event loop.

Masks are kept at full size; ``mask-scale`` (of the upload, or of the download) rescales them
when they are downloaded, with the nearest-neighbour sampling the pipeline uses, so that a mask
downloaded at scale N is the one a gRPC call with ``mask_scale = N`` returns.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import errno
import io
import json
import logging
import socket
import threading
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any

import av
import cv2
import grpc
import numpy as np
import uvicorn
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import ClientDisconnect, Request
from starlette.responses import FileResponse, JSONResponse, Response
from starlette.routing import Route
from starlette.types import ASGIApp, Receive, Scope, Send

from obscura.config import ServerConfig
from obscura.errors import ConfigError, InvalidInput, ObscuraError
from obscura.local import FrameEngine
from obscura.pipeline.masks import png_bytes, scaled
from obscura.pipeline.options import AnonymizeOptions
from obscura.pipeline.track import TrackSequence
from obscura.server.errors import bearer_ok
from obscura.server.errors import status_for as grpc_status_for
from obscura.server.tasks import (
    DONE,
    FAILED,
    FINISHED,
    PROCESSING,
    QUEUED,
    Conflict,
    NotFound,
    StoreFull,
    Task,
    TaskStore,
    default_tasks_dir,
    safe_name,
)
from obscura.service import FrameInput, FrameOutput, NotReady, Overloaded
from obscura_client.batch import BatchRunner, InputFile, Summary, media_kind
from obscura_client.files import BIN_SUFFIX, INS_SUFFIX, OutputPaths
from obscura_client.wire import Options, SaveMask, Zone, ZoneKind

log = logging.getLogger(__name__)

FRAME_WINDOW = 4  # frames of a video task in flight on the worker pool
RETRY_FIRST, RETRY_MAX = 0.02, 0.5  # seconds between admission attempts of a task's frame
WEBHOOK_TIMEOUT = 10.0  # seconds per attempt
WEBHOOK_BACKOFF = 1.0  # seconds before the second attempt, doubled each time after
SWEEP_EVERY = 60.0  # seconds between sweeps of expired tasks

# Upload types: Content-Type to the suffix the batch runner reads the file by.
CONTENT_TYPES = {
    "image/jpeg": ".jpg",
    "image/png": ".png",
    "image/webp": ".webp",
    "image/bmp": ".bmp",
    "image/x-ms-bmp": ".bmp",
    "image/tiff": ".tif",
    "video/mp4": ".mp4",
    "video/x-matroska": ".mkv",
    "video/quicktime": ".mov",
    "video/webm": ".webm",
    "video/x-msvideo": ".avi",
    "video/mpeg": ".mpg",
    "video/mp2t": ".ts",
}
MEDIA_TYPES = {".jpg": "image/jpeg", ".jpeg": "image/jpeg", ".png": "image/png",
               ".webp": "image/webp", ".bmp": "image/bmp", ".tif": "image/tiff",
               ".tiff": "image/tiff", ".mp4": "video/mp4", ".mkv": "video/x-matroska",
               ".mov": "video/quicktime", ".webm": "video/webm", ".avi": "video/x-msvideo",
               ".mpg": "video/mpeg", ".ts": "video/mp2t"}  # fmt: skip
UNTYPED = ("", "application/octet-stream")

CLASS_PARAMS = {
    "face": "face",
    "license-plate": "license-plate",
    "license_plate": "license-plate",
    "person": "person",
    "vehicle": "vehicle",
}
DEFAULT_ON = frozenset({"face", "license-plate"})  # the default job, as everywhere
UPLOAD_PARAMS = frozenset(
    {"name", "method", "bbox", "save-mask", "mask-scale", "quality", "ignores", "webhook",
     *CLASS_PARAMS}
)  # fmt: skip
METHODS = ("blur", "pixelate", "blacken", "detect")
MAX_IGNORES = 64


class PayloadTooLarge(InvalidInput):
    """An upload over ``upload_max_bytes`` (HTTP 413)."""


class UnsupportedType(InvalidInput):
    """An upload of a type the daemon does not read (HTTP 415)."""


# --- parameters --------------------------------------------------------------------------------
def _bool(name: str, value: str) -> bool:
    text = value.strip().lower()
    if text in ("true", "1", "yes", "on"):
        return True
    if text in ("false", "0", "no", "off"):
        return False
    raise InvalidInput(f"{name}: expected true or false, got {value!r}")


def _int(name: str, value: str, low: int, high: int) -> int:
    try:
        number = int(value)
    except ValueError:
        raise InvalidInput(f"{name}: expected an integer in {low}..{high}, got {value!r}") from None
    if not low <= number <= high:
        raise InvalidInput(f"{name}: expected an integer in {low}..{high}, got {number}")
    return number


def parse_ignores(text: str) -> tuple[Zone, ...]:
    """``[{"topLeftX": 182, "topLeftY": 154, "width": 2000, "height": 2000}, ...]`` to ignore
    zones (rectangles, in pixels of the frame)."""
    try:
        items = json.loads(text)
    except ValueError:
        raise InvalidInput("ignores: not JSON (a list of rectangles)") from None
    if not isinstance(items, list):
        raise InvalidInput("ignores: expected a JSON list of rectangles")
    if len(items) > MAX_IGNORES:
        raise InvalidInput(f"ignores: at most {MAX_IGNORES} rectangles, got {len(items)}")
    zones = []
    keys = ("topLeftX", "topLeftY", "width", "height")
    for n, item in enumerate(items):
        if not isinstance(item, dict) or set(item) != set(keys):
            raise InvalidInput(f"ignores[{n}]: expected an object with {', '.join(keys)}")
        values = [item[k] for k in keys]
        if not all(isinstance(v, int | float) and not isinstance(v, bool) for v in values):
            raise InvalidInput(f"ignores[{n}]: {', '.join(keys)} must be numbers")
        x, y, w, h = (float(v) for v in values)
        if w <= 0 or h <= 0:
            raise InvalidInput(f"ignores[{n}]: width and height must be positive")
        points = ((x, y), (x + w, y), (x + w, y + h), (x, y + h))
        try:
            zones.append(Zone(ZoneKind.IGNORE, points))
        except InvalidInput as exc:
            raise InvalidInput(f"ignores[{n}]: {exc}") from None
    return tuple(zones)


def _webhook(url: str) -> str:
    import httpx

    try:
        parsed = httpx.URL(url)
    except (httpx.InvalidURL, TypeError, ValueError):
        raise InvalidInput(f"webhook: {url!r} is not a URL") from None
    if parsed.scheme not in ("http", "https") or not parsed.host:
        raise InvalidInput(f"webhook: {url!r} is not an http:// or https:// URL")
    return url


@dataclass(frozen=True)
class Upload:
    """What an upload's query parameters ask for."""

    options: Options  # the pipeline's, masks at full size
    mask_scale: int  # the scale masks are downloaded at unless the download says
    name: str
    webhook: str


def parse_upload(params: Mapping[str, str]) -> Upload:
    """The upload's parameters, every one checked; an unknown one is an error."""
    unknown = sorted(set(params) - UPLOAD_PARAMS)
    if unknown:
        raise InvalidInput(
            f"unknown parameter {unknown[0]!r} (known: {', '.join(sorted(UPLOAD_PARAMS))})"
        )
    method = params.get("method", "blur")
    if method not in METHODS:
        raise InvalidInput(f"method: unknown value {method!r} (known: {', '.join(METHODS)})")
    chosen = set(DEFAULT_ON)
    for key, label in CLASS_PARAMS.items():
        if key in params:
            (chosen.add if _bool(key, params[key]) else chosen.discard)(label)
    if not chosen:
        raise InvalidInput("no class to anonymize: face, license-plate, person and vehicle false")
    order = ("face", "license-plate", "person", "vehicle")
    save = params.get("save-mask", "all")
    try:
        SaveMask(save)
    except ValueError:
        known = ", ".join(m.value for m in SaveMask)
        raise InvalidInput(f"save-mask: unknown value {save!r} (known: {known})") from None
    options = Options(
        classes={label: method for label in order if label in chosen},
        bbox=_bool("bbox", params["bbox"]) if "bbox" in params else False,
        save_mask=save,
        quality=_int("quality", params["quality"], 1, 100) if "quality" in params else 90,
        zones=parse_ignores(params["ignores"]) if "ignores" in params else (),
    )
    scale = _int("mask-scale", params["mask-scale"], 1, 100) if "mask-scale" in params else 100
    webhook = _webhook(params["webhook"]) if params.get("webhook") else ""
    return Upload(options, scale, params.get("name", ""), webhook)


def _single(request: Request) -> dict[str, str]:
    items = request.query_params.multi_items()
    seen: dict[str, str] = {}
    for key, value in items:
        if key in seen:
            raise InvalidInput(f"parameter {key!r} given more than once")
        seen[key] = value
    return seen


# --- the engine: a task's frames on the daemon's data plane ------------------------------------
class DataPlaneEngine(FrameEngine):
    """Submits frames from a task's thread to the daemon's data plane on the event loop.

    A frame that finds the daemon full waits and tries again (a task was accepted: its frames
    are not refused). The next frame is submitted only once the one before holds its admission
    and its tracker turn, so that turns follow frame order.
    """

    window = FRAME_WINDOW

    def __init__(self, run_frame: Callable[..., Awaitable[FrameOutput]], options: Options,
                 loop: asyncio.AbstractEventLoop):  # fmt: skip
        super().__init__(options)
        self.run_frame = run_frame
        self.loop = loop
        self.stopping = threading.Event()  # set when the daemon stops: no frame is submitted

    def submit(
        self,
        frame: FrameInput,
        options: AnonymizeOptions,
        output_format: str,
        track: TrackSequence | None = None,
        detect: bool = True,
    ) -> concurrent.futures.Future[FrameOutput]:
        if self.stopping.is_set():
            raise NotReady("the daemon is shutting down")
        admitted: concurrent.futures.Future[None] = concurrent.futures.Future()
        future = asyncio.run_coroutine_threadsafe(
            self._frame(
                frame,
                options=options,
                output_format=output_format,
                track=track,
                detect=detect,
                admitted=admitted,
            ),
            self.loop,
        )
        try:
            while True:
                try:
                    admitted.result(timeout=0.5)
                    break
                except concurrent.futures.TimeoutError:
                    if self.stopping.is_set():
                        raise NotReady("the daemon is shutting down") from None
        except BaseException:
            future.cancel()
            raise
        return future

    async def _frame(
        self,
        frame: FrameInput,
        *,
        options: AnonymizeOptions,
        output_format: str,
        track: TrackSequence | None,
        detect: bool,
        admitted: concurrent.futures.Future[None],
    ) -> FrameOutput:
        delay = RETRY_FIRST
        try:
            while True:
                try:
                    return await self.run_frame(
                        frame, options, output_format, new_call=False, track=track,
                        detect=detect, admitted=lambda: admitted.set_result(None),
                    )  # fmt: skip
                except Overloaded:
                    if admitted.done():
                        raise
                    await asyncio.sleep(delay)
                    delay = min(RETRY_MAX, delay * 2)
        except BaseException as exc:
            if not admitted.done():
                admitted.set_exception(exc)
            raise


# --- failures to HTTP ----------------------------------------------------------------------------
# The gRPC mapping's codes (server/errors.py) as HTTP statuses.
HTTP_STATUS = {
    grpc.StatusCode.INVALID_ARGUMENT: 400,
    grpc.StatusCode.UNAUTHENTICATED: 401,
    grpc.StatusCode.PERMISSION_DENIED: 403,
    grpc.StatusCode.RESOURCE_EXHAUSTED: 429,
    grpc.StatusCode.UNAVAILABLE: 503,
}


def status_for(exc: BaseException) -> tuple[int, str]:
    """The HTTP status and message for an exception; the gRPC mapping's twin."""
    if isinstance(exc, HTTPException):
        return exc.status_code, str(exc.detail)
    if isinstance(exc, ClientDisconnect):
        return 400, "the client went away before its upload was complete"
    if isinstance(exc, PayloadTooLarge):
        return 413, str(exc)
    if isinstance(exc, UnsupportedType):
        return 415, str(exc)
    if isinstance(exc, NotFound):
        return 404, str(exc)
    if isinstance(exc, Conflict):
        return 409, str(exc)
    if isinstance(exc, StoreFull):
        return 429, str(exc)
    if isinstance(exc, av.FFmpegError):
        return 400, f"the file cannot be decoded: {exc}"
    if isinstance(exc, OSError) and exc.errno in (errno.ENOSPC, errno.EDQUOT):
        return 507, "the daemon's disk is full"
    code, message = grpc_status_for(exc)  # the rest as on gRPC, in HTTP's words
    return HTTP_STATUS.get(code, 500), message


def error_response(status: int, message: str, **extra: Any) -> JSONResponse:
    return JSONResponse({"status_code": status, "error": message, **extra}, status_code=status)


# --- the app -------------------------------------------------------------------------------------
class RestApi:
    """The routes, the task queue and the webhooks; ``state`` is the servicer's DaemonState."""

    def __init__(self, state: Any, config: ServerConfig, tokens: list[str], metrics: Any):
        self.state = state
        self.config = config
        self.tokens = [t.encode() for t in tokens]
        self.metrics = metrics
        root = Path(config.tasks_dir) if config.tasks_dir else default_tasks_dir()
        self.store = TaskStore(
            root, max_tasks=config.tasks_max, max_bytes=config.tasks_max_bytes,
            ttl=config.tasks_ttl,
        )  # fmt: skip
        self.queue: asyncio.Queue[str] = asyncio.Queue()
        self.finished: dict[str, asyncio.Event] = {}
        self.background: set[asyncio.Task[Any]] = set()
        self.workers: list[asyncio.Task[None]] = []
        self.engines: set[DataPlaneEngine] = set()
        self.app = self._build_app()

    # --- life ------------------------------------------------------------------------------
    def start(self) -> None:
        for task in self.store.recover():
            log.warning("task %s failed: %s", task.id, task.error)
        for n in range(self.config.tasks_parallel):
            self.workers.append(asyncio.ensure_future(self._worker(n)))
        self._spawn(self._sweeper())

    async def drain(self, timeout: float) -> None:
        """Waits up to ``timeout`` seconds for the tasks being processed to finish."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and any(
            t.status == PROCESSING for t in self.store.tasks.values()
        ):
            await asyncio.sleep(0.05)

    async def stop(self) -> None:
        """Cancels what still runs; its tasks are marked failed (as after a crash)."""
        for engine in self.engines:
            engine.stopping.set()
        for worker in self.workers:
            worker.cancel()
        for job in list(self.background):
            job.cancel()
        await asyncio.gather(*self.workers, *self.background, return_exceptions=True)
        for task in self.store.tasks.values():
            if task.status not in FINISHED:
                task.status, task.error, task.error_status = (
                    FAILED, "the daemon stopped before this task finished", 503,
                )  # fmt: skip
                self.store.save(task)
        for event in self.finished.values():
            event.set()  # synchronous uploads answer with the failure

    def _spawn(self, coro: Awaitable[Any]) -> None:
        job = asyncio.ensure_future(coro)
        self.background.add(job)
        job.add_done_callback(self.background.discard)

    async def _sweeper(self) -> None:
        while True:
            await asyncio.sleep(min(SWEEP_EVERY, self.store.ttl / 2))
            gone = self.store.sweep()
            if gone:
                log.info("removed %d expired task(s)", gone)

    # --- running tasks ---------------------------------------------------------------------
    async def _worker(self, n: int) -> None:
        while True:
            task_id = await self.queue.get()
            task = self.store.tasks.get(task_id)
            if task is None or task.status != QUEUED:  # deleted while queued
                continue
            task.status = PROCESSING
            self.store.save(task)
            try:
                await self._run(task)
            finally:
                self.store.save(task)
                event = self.finished.pop(task.id, None)
                if event is not None:
                    event.set()
            if task.webhook:
                self._spawn(self._notify(task))

    async def _run(self, task: Task) -> None:
        loop = asyncio.get_running_loop()
        try:
            upload = parse_upload(task.params)
            engine = DataPlaneEngine(self.state.run_frame, upload.options, loop)
            runner = BatchRunner(
                engine, self.store.out_dir(task), progress=False, errors=io.StringIO()
            )
            item = InputFile(self.store.input_path(task), PurePosixPath(task.name), task.type)
            summary = Summary()
            self.engines.add(engine)
            try:
                ok = await asyncio.to_thread(runner.process, item, summary)
            finally:
                self.engines.discard(engine)
            error = runner.last_error
        except Exception as exc:  # the parameters were checked at upload: a bug
            ok, error, summary = False, exc, Summary()
        if ok:
            task.status = DONE
            task.frames = summary.frames
            task.detections = dict(summary.detections)
            return
        assert error is not None
        status, message = status_for(error)
        if status == 500 and isinstance(error, ValueError):  # the batch runner's bad input
            status, message = 400, f"the file cannot be read: {error}"
        if status == 500:
            log.error("task %s failed", task.id, exc_info=error)
        task.status, task.error, task.error_status = FAILED, message, status

    # --- webhooks --------------------------------------------------------------------------
    async def _notify(self, task: Task) -> None:
        """POSTs the task's JSON to its webhook, with backoff; the outcome joins the task."""
        import httpx

        attempts = self.config.webhook_attempts
        delay = WEBHOOK_BACKOFF
        result: dict[str, Any] = {"status": "pending", "attempts": 0}
        task.webhook_result = result
        async with httpx.AsyncClient(timeout=WEBHOOK_TIMEOUT) as client:
            for attempt in range(1, attempts + 1):
                result["attempts"] = attempt
                try:
                    answer = await client.post(task.webhook, json=task.public())
                    result["response_status"] = answer.status_code
                    if answer.is_success:
                        result["status"] = "delivered"
                        result.pop("error", None)
                        break
                    result["error"] = f"the webhook answered {answer.status_code}"
                except httpx.HTTPError as exc:
                    result["error"] = f"{type(exc).__name__}: {exc}"
                if attempt < attempts:
                    await asyncio.sleep(delay)
                    delay *= 2
            else:
                result["status"] = "failed"
        if task.id in self.store.tasks:
            self.store.save(task)

    # --- routes ----------------------------------------------------------------------------
    def _build_app(self) -> Starlette:
        routes = [
            Route("/v1/file", self.upload, methods=["POST"], name="upload"),
            Route("/v1/task/{id}", self.task, methods=["GET"], name="task"),
            Route("/v1/task/{id}", self.delete, methods=["DELETE"], name="delete"),
            Route("/v1/file/{id}/anonymized", self.anonymized, methods=["GET"],
                  name="anonymized"),
            Route("/v1/file/{id}/binary-mask", self.binary_mask, methods=["GET"],
                  name="binary-mask"),
            Route("/v1/file/{id}/instance-mask", self.instance_mask, methods=["GET"],
                  name="instance-mask"),
            Route("/v1/file/{id}/metadata", self.metadata, methods=["GET"], name="metadata"),
            Route("/openapi.json", self.openapi, methods=["GET"], name="openapi"),
            Route("/healthz", self.healthz, methods=["GET"], name="healthz"),
        ]  # fmt: skip

        async def failed(request: Request, exc: Exception) -> Response:
            status, message = status_for(exc)
            if status == 500:
                log.error("%s %s failed", request.method, request.url.path, exc_info=exc)
            return error_response(status, message)

        app = Starlette(
            routes=routes,
            # ObscuraError and the others: answered by the exception middleware; anything
            # else is a bug, answered 500 by the outermost middleware (and logged there).
            exception_handlers={
                HTTPException: failed,
                ObscuraError: failed,
                av.FFmpegError: failed,
                OSError: failed,
                Exception: failed,
            },
        )
        app.add_middleware(_Guard, api=self)
        return app

    def _ready(self) -> None:
        self.state.ready_service()  # NotReady while loading or draining

    async def upload(self, request: Request) -> Response:
        self._ready()
        params = _single(request)
        upload = parse_upload(params)  # every parameter checked before a byte is stored
        length = request.headers.get("content-length")
        limit = self.config.upload_max_bytes
        if length is not None and length.isdigit() and int(length) > limit:
            raise PayloadTooLarge(f"the upload is {length} bytes; at most {limit}")
        self.store.check_room(int(length) if length and length.isdigit() else 0)
        content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
        staging = self.store.root / f".upload-{uuid.uuid4().hex}"
        try:
            if content_type == "multipart/form-data":
                name, content_type, data_path = await self._multipart(request, staging)
            else:
                name, data_path = upload.name, await self._body(request, staging)
            # The name parameter wins over a form part's file name.
            task = self._task(upload, params, upload.name or name, content_type)
            data_path.replace(self.store.input_path(task))
        finally:
            self.store.discard(staging)
        self.store.add(task)
        done = self.finished[task.id] = asyncio.Event()
        self.queue.put_nowait(task.id)
        if request.headers.get("x-is-async", "").strip().lower() in ("true", "1", "yes"):
            return JSONResponse(task.public(), status_code=202)
        await done.wait()
        if task.status == FAILED:
            return error_response(task.error_status, task.error, id=task.id, task=task.public())
        return JSONResponse(task.public(), status_code=200)

    def _task(self, upload: Upload, params: dict[str, str], name: str, content_type: str) -> Task:
        suffix = CONTENT_TYPES.get(content_type)
        if suffix is None and content_type not in UNTYPED:
            raise UnsupportedType(
                f"Content-Type {content_type!r} is not an image or video type the daemon reads "
                f"(known: {', '.join(sorted(CONTENT_TYPES))}, or application/octet-stream "
                "with a name that has a known suffix)"
            )
        filename = safe_name(name, suffix or "")
        if suffix is not None and media_kind(Path(filename)) is None:
            filename += suffix  # a name without a media suffix: the type's
        kind = media_kind(Path(filename))  # by suffix, as the batch runner reads it
        if kind is None:
            raise UnsupportedType(
                f"cannot tell the type of {filename!r}: send a Content-Type such as image/jpeg "
                "or video/mp4, or a name with a known suffix"
            )
        OutputPaths(self.store.root, PurePosixPath(filename))  # the name's outputs fit
        stored = {k: v for k, v in params.items() if k != "name"}
        return self.store.create(filename, kind, stored, upload.webhook)

    async def _body(self, request: Request, staging: Path) -> Path:
        return await self._store(request.stream(), staging)

    async def _store(self, chunks: AsyncIterator[bytes], staging: Path) -> Path:
        """Writes an upload's bytes into ``staging``, refusing one over ``upload_max_bytes``."""
        staging.mkdir(parents=True)
        path = staging / "body"
        limit, size = self.config.upload_max_bytes, 0
        with path.open("wb") as f:
            async for chunk in chunks:
                size += len(chunk)
                if size > limit:
                    raise PayloadTooLarge(f"the upload is over {limit} bytes")
                f.write(chunk)
        if size == 0:
            raise InvalidInput("the upload is empty")
        return path

    async def _multipart(self, request: Request, staging: Path) -> tuple[str, str, Path]:
        try:
            form = await request.form(max_files=1, max_fields=16, max_part_size=1024 * 1024)
        except HTTPException as exc:
            raise InvalidInput(f"multipart body: {exc.detail}") from None
        try:
            part = form.get("file")
            if part is None or isinstance(part, str):
                raise InvalidInput("multipart body: no file field named 'file'")
            upload = part

            async def chunks() -> AsyncIterator[bytes]:
                while chunk := await upload.read(1 << 20):
                    yield chunk

            path = await self._store(chunks(), staging)
            part_type = (part.content_type or "").split(";")[0].strip().lower()
            return part.filename or "", part_type, path
        finally:
            await form.close()

    async def task(self, request: Request) -> Response:
        return JSONResponse(self.store.get(request.path_params["id"]).public())

    async def delete(self, request: Request) -> Response:
        task = self.store.get(request.path_params["id"])
        if task.status == PROCESSING:
            raise Conflict(f"task {task.id} is processing; delete it once it has finished")
        self.store.tasks.pop(task.id, None)  # a queued task is skipped by the workers
        event = self.finished.pop(task.id, None)
        if event is not None:
            task.status, task.error, task.error_status = FAILED, "deleted before it ran", 404
            event.set()
        await asyncio.to_thread(self.store.remove, task)
        return Response(status_code=204)

    def _paths(self, task: Task) -> OutputPaths:
        return OutputPaths(self.store.out_dir(task), PurePosixPath(task.name))

    async def anonymized(self, request: Request) -> Response:
        task = self.store.finished(request.path_params["id"])
        path = self._paths(task).media
        return FileResponse(path, media_type=MEDIA_TYPES.get(path.suffix.lower()))

    def _mask_path(self, task: Task, upload: Upload, which: str) -> Path:
        save = SaveMask(upload.options.save_mask)
        if not (save.binary if which == BIN_SUFFIX else save.instance):
            raise NotFound(f"task {task.id} was uploaded with save-mask={save.value}")
        ext = ".mkv" if task.type == "video" else ".png"
        return self._paths(task).mask(which, ext)

    async def binary_mask(self, request: Request) -> Response:
        return await self._mask(request, BIN_SUFFIX)

    async def instance_mask(self, request: Request) -> Response:
        return await self._mask(request, INS_SUFFIX)

    async def _mask(self, request: Request, which: str) -> Response:
        task = self.store.finished(request.path_params["id"])
        params = _single(request)
        unknown = sorted(set(params) - {"mask-scale"})
        if unknown:
            raise InvalidInput(f"unknown parameter {unknown[0]!r} (known: mask-scale)")
        upload = parse_upload(task.params)
        path = self._mask_path(task, upload, which)
        scale = _int("mask-scale", params["mask-scale"], 1, 100) if params else upload.mask_scale
        if task.type == "image":
            if scale == 100:
                return FileResponse(path, media_type="image/png")
            data = await asyncio.to_thread(_scaled_png, path, scale)
            return Response(data, media_type="image/png")
        if scale == 100:
            return FileResponse(path, media_type="video/x-matroska")
        scaled_path = path.with_name(f"{path.stem}-{scale}{path.suffix}")
        if not scaled_path.exists():
            await asyncio.to_thread(_scaled_video, path, scaled_path, scale)
        return FileResponse(scaled_path, media_type="video/x-matroska")

    async def metadata(self, request: Request) -> Response:
        task = self.store.finished(request.path_params["id"])
        params = _single(request)
        unknown = sorted(set(params) - {"start", "end"})
        if unknown:
            raise InvalidInput(f"unknown parameter {unknown[0]!r} (known: start, end)")
        paths = self._paths(task)
        if task.type == "image":
            if params:
                raise InvalidInput("start and end are for videos' metadata")
            return Response(paths.metadata.read_bytes(), media_type="application/json")
        top = max(0, task.frames - 1)
        start = _int("start", params["start"], 0, 1 << 31) if "start" in params else 0
        end = _int("end", params["end"], 0, 1 << 31) if "end" in params else top
        if start > end:
            raise InvalidInput(f"start ({start}) is after end ({end})")
        frames = await asyncio.to_thread(_video_frames, paths, start, end)
        return JSONResponse(frames)

    async def openapi(self, request: Request) -> Response:
        return JSONResponse(openapi_schema())

    async def healthz(self, request: Request) -> Response:
        try:
            self._ready()
        except NotReady as exc:
            return error_response(503, str(exc))
        return JSONResponse({"status": "serving"})


def _scaled_png(path: Path, scale: int) -> bytes:
    mask = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    if mask is None:
        raise OSError(errno.EIO, f"cannot read {path.name}")
    if mask.ndim == 3:
        mask = cv2.cvtColor(mask, cv2.COLOR_BGR2RGB)
    return png_bytes(scaled(np.asarray(mask, dtype=np.uint8), scale))


def _scaled_video(src: Path, dst: Path, scale: int) -> None:
    from obscura_client.video import MaskVideoWriter, read_mask_video

    with av.open(str(src)) as container:
        fps = container.streams.video[0].average_rate
    part = dst.with_name(f".{dst.stem}.{uuid.uuid4().hex}.part{dst.suffix}")
    writer: MaskVideoWriter | None = None
    try:
        for mask in read_mask_video(src):
            small = scaled(mask, scale)
            if writer is None:
                h, w = small.shape[:2]
                channels = 1 if small.ndim == 2 else 3
                writer = MaskVideoWriter(part, w, h, fps or 25, channels)  # type: ignore[arg-type]
            writer.write(small)
        if writer is not None:
            writer.close()
            part.replace(dst)
    finally:
        if writer is not None:
            writer.close()
        part.unlink(missing_ok=True)


def _video_frames(paths: OutputPaths, start: int, end: int) -> list[Any]:
    """The frames ``start``..``end`` of a video's metadata chunks, in order."""
    chunks: list[tuple[int, int, Path]] = []
    for path in paths.directory.glob(f"{paths.stem}-*-*.json"):
        head, _, tail = path.stem[len(paths.stem) + 1 :].partition("-")
        if head.isdigit() and tail.isdigit():
            chunks.append((int(head), int(tail), path))
    out: list[Any] = []
    for first, last, path in sorted(chunks):
        if last < start or first > end:
            continue
        out += [f for f in json.loads(path.read_bytes()) if start <= f["id"] <= end]
    return out


class _Guard:
    """Bearer tokens (constant-time, as on gRPC), and each request's outcome in the metrics."""

    OPEN = frozenset({"/healthz", "/openapi.json"})

    def __init__(self, app: ASGIApp, api: RestApi):
        self.app = app
        self.api = api

    def _token_ok(self, scope: Scope) -> bool:
        if scope["path"] in self.OPEN:
            return True
        header = next((v for k, v in scope.get("headers", ()) if k == b"authorization"), None)
        return bearer_ok(self.api.tokens, header)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        start = time.perf_counter()
        status = [500]

        async def sending(message: Any) -> None:
            if message["type"] == "http.response.start":
                status[0] = message["status"]
            await send(message)

        try:
            if self._token_ok(scope):
                await self.app(scope, receive, sending)
            else:
                response = error_response(401, "missing or invalid bearer token")
                response.headers["www-authenticate"] = "Bearer"
                await response(scope, receive, sending)
        finally:
            metrics = self.api.metrics
            if metrics is not None:
                metrics.http_done(_route(scope), status[0], time.perf_counter() - start)


def _route(scope: Scope) -> str:
    path: str = scope["path"]
    method: str = scope.get("method", "")
    if path == "/v1/file":
        return "upload"
    if path.startswith("/v1/task/"):
        return "delete" if method == "DELETE" else "task"
    if path.startswith("/v1/file/"):
        return path.rsplit("/", 1)[-1]
    return path.strip("/").removesuffix(".json")


# --- the HTTP server -----------------------------------------------------------------------------
class _Server(uvicorn.Server):
    """uvicorn inside the daemon: the daemon owns the signals."""

    @contextlib.contextmanager
    def capture_signals(self) -> Any:
        yield


class HttpServer:
    """uvicorn serving the REST app on ``[server] http_listen``, in the running loop."""

    def __init__(self, api: RestApi, config: ServerConfig):
        self.api = api
        self.config = config
        self.port = 0
        self._server: _Server | None = None
        self._serving: asyncio.Task[None] | None = None

    def _socket(self) -> socket.socket:
        host, _, port = self.config.http_listen.rpartition(":")
        host = host.strip("[]")
        try:
            info = socket.getaddrinfo(host, int(port), type=socket.SOCK_STREAM)[0]
            sock = socket.socket(info[0], socket.SOCK_STREAM)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.bind(info[4])
        except OSError as exc:
            raise ConfigError(
                f"[server].http_listen: cannot bind {self.config.http_listen}: {exc.strerror}"
            ) from None
        sock.listen(128)
        sock.setblocking(False)
        return sock

    async def start(self) -> None:
        cfg = self.config
        sock = self._socket()
        self.port = int(sock.getsockname()[1])
        tls: dict[str, Any] = {}
        if cfg.tls_cert:
            tls = {"ssl_certfile": cfg.tls_cert, "ssl_keyfile": cfg.tls_key}
            if cfg.tls_client_ca:
                import ssl

                tls |= {"ssl_ca_certs": cfg.tls_client_ca, "ssl_cert_reqs": ssl.CERT_REQUIRED}
        uv_config = uvicorn.Config(
            self.api.app,
            lifespan="off",
            log_config=None,
            access_log=False,
            timeout_graceful_shutdown=max(1, int(cfg.grace_period)),
            **tls,
        )
        self.api.start()  # the tasks of an earlier run are known before the first request
        self._server = _Server(uv_config)
        self._serving = asyncio.ensure_future(self._server.serve(sockets=[sock]))
        while not self._server.started:
            if self._serving.done():
                self._serving.result()
                raise ConfigError("[server].http_listen: the HTTP server did not start")
            await asyncio.sleep(0.01)

    async def stop(self, grace: float) -> None:
        """Stops accepting; open requests and running tasks get ``grace`` seconds."""
        deadline = time.monotonic() + grace
        drained = asyncio.ensure_future(self.api.drain(grace))
        if self._server is not None and self._serving is not None:
            self._server.should_exit = True
            with contextlib.suppress(Exception):
                await self._serving
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(drained, max(0.0, deadline - time.monotonic()) + 0.1)
        await self.api.stop()


# --- the schema ----------------------------------------------------------------------------------
def _param(name: str, schema: Any, text: str, where: str = "query") -> dict[str, Any]:
    return {"name": name, "in": where, "required": where == "path", "schema": schema,
            "description": text}  # fmt: skip


_BOOL: dict[str, Any] = {"type": "string", "enum": ["true", "false"]}
_ID_PARAM = _param("id", {"type": "string"}, "the task's id", "path")


def _errors(*codes: int) -> dict[str, Any]:
    ref = {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}
    texts = {400: "bad input", 401: "missing or invalid bearer token", 404: "no such task",
             409: "the task is not done", 413: "upload too large", 415: "unsupported type",
             429: "too many tasks or frames", 503: "loading or draining",
             507: "the daemon's disk is full"}  # fmt: skip
    return {str(c): {"description": texts[c], "content": ref} for c in codes}


def openapi_schema() -> dict[str, Any]:
    """The API's OpenAPI 3 document (served at /openapi.json)."""
    task_ref = {"application/json": {"schema": {"$ref": "#/components/schemas/Task"}}}
    upload_types: dict[str, Any] = {t: {"schema": {"type": "string", "format": "binary"}}
                    for t in ("application/octet-stream", *CONTENT_TYPES)}  # fmt: skip
    upload_types["multipart/form-data"] = {
        "schema": {
            "type": "object",
            "properties": {"file": {"type": "string", "format": "binary"}},
            "required": ["file"],
        }
    }
    upload_params = [
        _param("name", {"type": "string", "maxLength": 200}, "file name (metadata, type)"),
        _param("method", {"type": "string", "enum": list(METHODS)}, "how objects are hidden"),
        *(_param(k, _BOOL, f"anonymize {v}s") for k, v in CLASS_PARAMS.items()),
        _param("bbox", _BOOL, "hide whole boxes instead of shapes"),
        _param("save-mask", {"type": "string", "enum": [m.value for m in SaveMask]},
               "masks kept for download (default all)"),
        _param("mask-scale", {"type": "integer", "minimum": 1, "maximum": 100},
               "default scale of mask downloads, percent"),
        _param("quality", {"type": "integer", "minimum": 1, "maximum": 100}, "JPEG quality"),
        _param("ignores", {"type": "string"},
               'JSON rectangles, e.g. [{"topLeftX":182,"topLeftY":154,"width":200,"height":200}]'),
        _param("webhook", {"type": "string", "format": "uri"}, "URL POSTed when the task ends"),
        _param("x-is-async", _BOOL, "answer at once (202) instead of when done", "header"),
    ]  # fmt: skip
    binary = {"type": "string", "format": "binary"}
    mask_scale = _param("mask-scale", {"type": "integer", "minimum": 1, "maximum": 100},
                        "percent of the frame size (default: the upload's)")  # fmt: skip

    def download(summary: str, types: list[str], params: list[Any]) -> dict[str, Any]:
        return {
            "get": {
                "summary": summary,
                "parameters": [_ID_PARAM, *params],
                "responses": {
                    "200": {"description": summary, "content": {t: {"schema": binary}
                                                                for t in types}},
                    **_errors(400, 401, 404, 409),
                },
            }
        }  # fmt: skip

    mask_types = ["image/png", "video/x-matroska"]
    return {
        "openapi": "3.0.3",
        "info": {"title": "Obscura REST API (Celantur Container API v1)", "version": "1"},
        "paths": {
            "/v1/file": {
                "post": {
                    "summary": "upload an image or a video",
                    "parameters": upload_params,
                    "requestBody": {"required": True, "content": upload_types},
                    "responses": {
                        "200": {"description": "done (synchronous)", "content": task_ref},
                        "202": {"description": "queued (x-is-async)", "content": task_ref},
                        **_errors(400, 401, 413, 415, 429, 503, 507),
                    },
                }
            },
            "/v1/task/{id}": {
                "get": {
                    "summary": "a task's status",
                    "parameters": [_ID_PARAM],
                    "responses": {
                        "200": {"description": "the task", "content": task_ref},
                        **_errors(401, 404),
                    },
                },
                "delete": {
                    "summary": "delete a task and its files",
                    "parameters": [_ID_PARAM],
                    "responses": {"204": {"description": "deleted"}, **_errors(401, 404, 409)},
                },
            },
            "/v1/file/{id}/anonymized": download(
                "the anonymized file", sorted(set(MEDIA_TYPES.values())), []
            ),
            "/v1/file/{id}/binary-mask": download("the binary mask", mask_types, [mask_scale]),
            "/v1/file/{id}/instance-mask": download("the instance mask", mask_types, [mask_scale]),
            "/v1/file/{id}/metadata": {
                "get": {
                    "summary": "the image's metadata, or the video's frames",
                    "parameters": [
                        _ID_PARAM,
                        _param("start", {"type": "integer", "minimum": 0}, "first frame"),
                        _param("end", {"type": "integer", "minimum": 0}, "last frame"),
                    ],
                    "responses": {
                        "200": {
                            "description": "metadata",
                            "content": {
                                "application/json": {
                                    "schema": {"oneOf": [{"type": "object"}, {"type": "array"}]}
                                }
                            },
                        },
                        **_errors(400, 401, 404, 409),
                    },
                }
            },
            "/openapi.json": {
                "get": {
                    "summary": "this document",
                    "responses": {
                        "200": {
                            "description": "OpenAPI 3",
                            "content": {"application/json": {"schema": {"type": "object"}}},
                        }
                    },
                }
            },
            "/healthz": {
                "get": {
                    "summary": "for load balancers",
                    "responses": {
                        "200": {
                            "description": "serving",
                            "content": {"application/json": {"schema": {"type": "object"}}},
                        },
                        **_errors(503),
                    },
                }
            },
        },
        "components": {
            "schemas": {
                "Task": {
                    "type": "object",
                    "required": ["id", "status", "name", "type"],
                    "properties": {
                        "id": {"type": "string"},
                        "status": {"type": "string", "enum": [QUEUED, PROCESSING, DONE, FAILED]},
                        "name": {"type": "string"},
                        "type": {"type": "string", "enum": ["image", "video"]},
                        "created": {"type": "number"},
                        "updated": {"type": "number"},
                        "frames": {"type": "integer"},
                        "detections": {"type": "object"},
                        "error": {"type": "string"},
                        "webhook": {"type": "object"},
                    },
                },
                "Error": {
                    "type": "object",
                    "required": ["status_code", "error"],
                    "properties": {
                        "status_code": {"type": "integer"},
                        "error": {"type": "string"},
                    },
                },
            },
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
        },
        "security": [{"bearer": []}, {}],
    }


__all__ = ["HttpServer", "RestApi", "openapi_schema", "parse_upload"]
