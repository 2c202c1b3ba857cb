"""Clients of the daemon: :class:`Client` (synchronous) and :class:`AsyncClient` (asyncio).

```python
from obscura_client.client import Client, Options

with Client("unix:///run/obscura/obscura.sock") as client:
    result = client.anonymize_image("street.jpg", Options(classes={"face": "blur"}))
    open("street-anon.jpg", "wb").write(result.image)
    print(result.metadata["detections"])
```

Several daemons: ``Client(["10.0.0.5:50051", "10.0.0.6:50051"])`` or a DNS name with several
addresses (``Client("dns:///obscura.internal:50051")``) spreads calls with gRPC's own
``round_robin`` balancing. Passing errors (UNAVAILABLE, RESOURCE_EXHAUSTED, DEADLINE_EXCEEDED)
are retried with backoff for up to ``retry_for`` seconds and never taken as a verdict on the
input; :meth:`Client.frames` re-sends the unanswered frames of a stream on another daemon (or the
same one, back) when one goes away, so every frame is answered exactly once and in order.
"""

from __future__ import annotations

import asyncio
import collections
import json
import logging
import queue
import time
from collections.abc import AsyncIterator, Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any

import grpc
import numpy as np
from grpc_health.v1 import health_pb2, health_pb2_grpc

from obscura_client.codec import decode_image, decode_mask_png, raw_mask, raw_pixels
from obscura_client.errors import InvalidInput, ObscuraError
from obscura_client.types import ImageArray
from obscura_client.v1 import anonymizer_pb2 as pb
from obscura_client.v1 import anonymizer_pb2_grpc as pb_grpc
from obscura_client.wire import IMAGE_FORMAT_NAMES, PIXEL_FORMAT_NAMES, FrameMetadata, Options

__all__ = [
    "AsyncClient",
    "Client",
    "FrameFailed",
    "Options",
    "RemoteError",
    "Result",
    "request_for",
    "result_from",
]

log = logging.getLogger(__name__)

DEFAULT_MAX_MESSAGE = 64 * 1024 * 1024
# Passing errors: the daemon busy, away or restarting. Retried with backoff, never final.
TRANSIENT = (
    grpc.StatusCode.UNAVAILABLE,
    grpc.StatusCode.RESOURCE_EXHAUSTED,
    grpc.StatusCode.DEADLINE_EXCEEDED,
)
RETRYABLE = TRANSIENT
DEFAULT_RETRY_FOR = 60.0  # seconds without an answer before a passing error is raised


class RemoteError(ObscuraError):
    """The daemon answered with an error status (``code``: a grpc.StatusCode)."""

    def __init__(self, code: grpc.StatusCode, message: str):
        super().__init__(f"{code.name}: {message}")
        self.code = code
        self.details = message


def status_of(code: int) -> grpc.StatusCode:
    for status in grpc.StatusCode:
        if status.value[0] == code:
            return status
    return grpc.StatusCode.UNKNOWN


def _passing(code: int) -> bool:
    """Whether a per-frame error code is a passing one (the frame is sent again)."""
    return status_of(code) in TRANSIENT


class _Again(Exception):
    """A frame answered with a passing error, or a stream that ended early."""

    def __init__(self, code: int, message: str):
        super().__init__(message)
        self.code = code
        self.message = message


class Backoff:
    """Exponential backoff (0.1 s doubling up to 2 s) for passing errors; raises RemoteError
    once ``budget`` seconds have passed since the last success (or the start)."""

    def __init__(self, budget: float, first: float = 0.1, most: float = 2.0):
        self.budget = budget
        self.first = first
        self.most = most
        self.reset()

    def reset(self) -> None:
        self.since = time.monotonic()
        self.delay = self.first
        self.tries = 0

    def next_delay(self, code: grpc.StatusCode, message: str) -> float:
        """The seconds to wait before the next try; RemoteError when the budget is spent."""
        self.tries += 1
        if time.monotonic() + self.delay - self.since > self.budget:
            raise RemoteError(
                code, f"{message} (still failing after {self.tries} tries in {self.budget:g} s)"
            )
        log.info("%s: %s; trying again in %.1f s", code.name, message, self.delay)
        delay, self.delay = self.delay, min(self.most, self.delay * 2)
        return delay

    def wait(self, code: grpc.StatusCode, message: str) -> None:
        time.sleep(self.next_delay(code, message))


def remote_error(exc: grpc.RpcError) -> ObscuraError:
    code = exc.code() if hasattr(exc, "code") else grpc.StatusCode.UNKNOWN
    message = exc.details() if hasattr(exc, "details") else str(exc)
    if code is grpc.StatusCode.INVALID_ARGUMENT:
        return InvalidInput(message or "invalid argument")
    return RemoteError(code, message or "")


def target_for(address: str | Sequence[str]) -> str:
    """One gRPC target for one address or several: ``HOST:PORT`` items become an ``ipv4:`` /
    ``ipv6:`` address list (IP literals) or stay a single DNS target."""
    if isinstance(address, str):
        return address
    items = list(address)
    if len(items) == 1:
        return items[0]
    if all(a.startswith("[") for a in items):
        return "ipv6:" + ",".join(items)
    if any(a.startswith(("unix:", "dns:", "ipv4:", "ipv6:")) for a in items):
        raise ValueError("several addresses must be HOST:PORT items with IP addresses")
    return "ipv4:" + ",".join(items)


def service_config(retries: int) -> str:
    """round_robin over every address, and retries of unary calls on UNAVAILABLE."""
    return json.dumps(
        {
            "loadBalancingConfig": [{"round_robin": {}}],
            "methodConfig": [
                {
                    "name": [
                        {"service": "obscura.v1.Anonymizer", "method": "Anonymize"},
                        {"service": "obscura.v1.Anonymizer", "method": "GetInfo"},
                    ],
                    "retryPolicy": {
                        "maxAttempts": max(2, retries + 1),
                        "initialBackoff": "0.1s",
                        "maxBackoff": "2s",
                        "backoffMultiplier": 2,
                        "retryableStatusCodes": ["UNAVAILABLE"],
                    },
                }
            ],
        }
    )


@dataclass
class Result:
    """One anonymized image or frame."""

    frame_index: int
    timestamp: float
    image: bytes  # encoded, or raw pixels when ``raw`` is set
    format: str  # jpeg, png, webp, bmp, raw
    raw: pb.RawFrame | None
    binary_mask_data: bytes  # PNG, or raw when ``raw_mask_size`` is set
    instance_mask_data: bytes
    metadata: dict[str, Any]  # the JSON object (DESIGN.md section 4)
    timings: dict[str, float]
    raw_mask_size: tuple[int, int] | None = None  # (width, height) of raw masks

    @property
    def record(self) -> FrameMetadata:
        """The metadata as the typed record."""
        return FrameMetadata.from_dict(self.metadata)

    @property
    def detections(self) -> list[dict[str, Any]]:
        return list(self.metadata["detections"])

    def pixels(self) -> ImageArray:
        """The anonymized image as BGR uint8."""
        if self.raw is not None:
            r = self.raw
            return raw_pixels(r.data, r.width, r.height, PIXEL_FORMAT_NAMES[r.format])
        return decode_image(self.image)

    def binary_mask(self) -> ImageArray | None:
        """The binary mask as a (H, W) uint8 array (0 / 255), if it was asked for."""
        return _mask(self.binary_mask_data, self.raw_mask_size, rgb=False)

    def instance_mask(self) -> ImageArray | None:
        """The instance mask as (H, W, 3) RGB uint8, if it was asked for."""
        return _mask(self.instance_mask_data, self.raw_mask_size, rgb=True)


class FrameFailed(ObscuraError):
    """A frame of a stream that the daemon could not process (the stream went on)."""

    def __init__(self, frame_index: int, code: int, message: str, timestamp: float = 0.0):
        super().__init__(f"frame {frame_index}: {message}")
        self.frame_index = frame_index
        self.code = code
        self.message = message
        self.timestamp = timestamp


def _stream_item(response: pb.AnonymizeResponse) -> Result | FrameFailed:
    if response.HasField("error"):
        return FrameFailed(
            response.frame_index, response.error.code, response.error.message, response.timestamp
        )
    return result_from(response)


def _mask(data: bytes, size: tuple[int, int] | None, *, rgb: bool) -> ImageArray | None:
    if not data:
        return None
    if size is not None:  # raw (mask_format raw): width x height bytes, times 3 for RGB
        return raw_mask(data, *size, rgb=rgb)
    return decode_mask_png(data, rgb=rgb)


def result_from(response: pb.AnonymizeResponse) -> Result:
    which = response.WhichOneof("image")
    t = response.timings
    return Result(
        frame_index=response.frame_index,
        timestamp=response.timestamp,
        image=response.encoded if which == "encoded" else response.raw.data,
        format=IMAGE_FORMAT_NAMES.get(response.format) or "",
        raw=response.raw if which == "raw" else None,
        binary_mask_data=response.binary_mask,
        instance_mask_data=response.instance_mask,
        raw_mask_size=(
            (response.mask_width, response.mask_height)
            if response.mask_format == pb.MASK_FORMAT_RAW
            else None
        ),
        metadata=FrameMetadata.from_proto(response.metadata).to_dict(),
        timings={
            "decode": t.decode,
            "detect": t.detect,
            "anonymize": t.anonymize,
            "encode": t.encode,
            "total": t.total,
            **{f"model:{k}": v for k, v in t.models.items()},
        },
    )


def request_for(
    image: bytes | str | Path | ImageArray,
    options: Options | pb.Options | None = None,
    *,
    name: str = "",
    frame_index: int = 0,
    timestamp: float = 0.0,
) -> pb.AnonymizeRequest:
    """A request for encoded bytes, a file, or a BGR array (sent raw)."""
    request = pb.AnonymizeRequest(frame_index=frame_index, timestamp=timestamp, name=name)
    if isinstance(image, str | Path):
        path = Path(image)
        request.encoded = path.read_bytes()
        request.name = name or path.name
    elif isinstance(image, bytes):
        request.encoded = image
    else:
        array = np.ascontiguousarray(image, dtype=np.uint8)
        if array.ndim != 3 or array.shape[2] != 3:
            raise InvalidInput(f"expected a BGR image (H, W, 3), got {array.shape}")
        request.raw.CopyFrom(
            pb.RawFrame(
                width=array.shape[1],
                height=array.shape[0],
                format=pb.PIXEL_FORMAT_BGR24,
                data=array.tobytes(),
            )
        )
    if options is not None:
        request.options.CopyFrom(options if isinstance(options, pb.Options) else options.to_proto())
    return request


def _channel_options(
    retries: int, max_message_bytes: int, server_name: str | None
) -> list[tuple[str, Any]]:
    options: list[tuple[str, Any]] = [
        ("grpc.max_receive_message_length", max_message_bytes),
        ("grpc.max_send_message_length", max_message_bytes),
        ("grpc.service_config", service_config(retries)),
        ("grpc.enable_retries", 1),
        ("grpc.initial_reconnect_backoff_ms", 200),
        ("grpc.max_reconnect_backoff_ms", 5000),
    ]
    if server_name:
        options.append(("grpc.ssl_target_name_override", server_name))
    return options


def _credentials(
    tls_ca: Path | None, tls_cert: Path | None, tls_key: Path | None
) -> grpc.ChannelCredentials | None:
    if not (tls_ca or tls_cert):
        return None
    return grpc.ssl_channel_credentials(
        root_certificates=tls_ca.read_bytes() if tls_ca else None,
        private_key=tls_key.read_bytes() if tls_key else None,
        certificate_chain=tls_cert.read_bytes() if tls_cert else None,
    )


def _open_channel(module: Any, target: str, options: list[tuple[str, Any]], creds: Any) -> Any:
    """A channel from ``grpc`` or ``grpc.aio``, with TLS when ``creds`` are given."""
    if creds is not None:
        return module.secure_channel(target, creds, options=options)
    return module.insecure_channel(target, options=options)


def _auth_metadata(token: str | None) -> tuple[tuple[str, str], ...]:
    return (("authorization", f"Bearer {token}"),) if token else ()


class _Connection:
    """A channel to one daemon or several, with the stubs and the call settings. ``address``:
    ``unix:///path``, ``HOST:PORT``, ``dns:///NAME:PORT``, or a list of ``HOST:PORT`` (IP
    addresses) to balance over."""

    _grpc: Any = grpc  # grpc, or grpc.aio

    def __init__(
        self,
        address: str | Sequence[str],
        *,
        token: str | None = None,
        tls_ca: Path | None = None,
        tls_cert: Path | None = None,
        tls_key: Path | None = None,
        server_name: str | None = None,
        timeout: float | None = 120.0,
        retries: int = 3,
        retry_for: float = DEFAULT_RETRY_FOR,
        max_message_bytes: int = DEFAULT_MAX_MESSAGE,
    ):
        """``retries``: gRPC's own retries of unary calls on UNAVAILABLE; ``retry_for``:
        seconds a passing error is retried (with backoff) before it is raised."""
        self.target = target_for(address)
        self.retry_for = retry_for
        self.channel = _open_channel(
            self._grpc,
            self.target,
            _channel_options(retries, max_message_bytes, server_name),
            _credentials(tls_ca, tls_cert, tls_key),
        )
        self.metadata = _auth_metadata(token)
        self.timeout = timeout
        self.retries = retries
        self.stub = pb_grpc.AnonymizerStub(self.channel)  # type: ignore[no-untyped-call]
        self.health_stub = health_pb2_grpc.HealthStub(self.channel)


class Client(_Connection):
    """Synchronous client (the connection's arguments: :class:`_Connection`)."""

    # --- unary -----------------------------------------------------------------------------
    def anonymize(self, request: pb.AnonymizeRequest) -> pb.AnonymizeResponse:
        """One call; passing errors (UNAVAILABLE, RESOURCE_EXHAUSTED, DEADLINE_EXCEEDED) are
        retried with backoff for up to ``retry_for`` seconds, then raised as RemoteError."""
        backoff = Backoff(self.retry_for)
        while True:
            try:
                response: pb.AnonymizeResponse = self.stub.Anonymize(
                    request, timeout=self.timeout, metadata=self.metadata
                )
            except grpc.RpcError as exc:
                if exc.code() not in TRANSIENT:
                    raise remote_error(exc) from None
                backoff.wait(exc.code(), exc.details() or "")
            else:
                return response

    def anonymize_image(
        self, image: bytes | str | Path | ImageArray, options: Options | None = None
    ) -> Result:
        """One image (file, encoded bytes, or BGR array) in, a :class:`Result` out."""
        return result_from(self.anonymize(request_for(image, options or Options())))

    # --- streams ---------------------------------------------------------------------------
    def stream(self, requests: Iterable[pb.AnonymizeRequest]) -> Iterator[Result | FrameFailed]:
        """One AnonymizeStream call, as it is (no retries; :meth:`frames` adds them): a
        :class:`Result` per request in order, or a :class:`FrameFailed` for a refused frame.
        The same contract as :meth:`AsyncClient.stream`."""
        try:
            for response in self.stub.AnonymizeStream(iter(requests), metadata=self.metadata):
                yield _stream_item(response)
        except grpc.RpcError as exc:
            raise remote_error(exc) from None

    def frames(
        self,
        requests: Iterable[pb.AnonymizeRequest],
        *,
        in_flight: int = 4,
        raise_errors: bool = False,
    ) -> Iterator[Result | FrameFailed]:
        """Streams ``requests`` with at most ``in_flight`` unanswered and yields one result per
        request, in order: a :class:`Result`, or a :class:`FrameFailed` for a frame the daemon
        refused (raised instead with ``raise_errors``).

        Fail-closed: when the stream breaks (a daemon went away or restarts) or a frame is
        answered with a passing error (UNAVAILABLE, RESOURCE_EXHAUSTED, DEADLINE_EXCEEDED), the
        unanswered frames are sent again on a new stream after a backoff (round_robin puts it
        on another daemon when there is one), with the options in effect for the first of them;
        this goes on until ``retry_for`` seconds pass without an answer. Requests are taken
        from ``requests`` in the caller's thread, one each time a result is handed over.
        """
        source = iter(requests)
        # The unanswered requests, each with the options in effect for it.
        unanswered: collections.deque[tuple[pb.AnonymizeRequest, pb.Options | None]] = (
            collections.deque()
        )
        current: pb.Options | None = None
        exhausted = False
        backoff = Backoff(self.retry_for)

        def pull(feed: queue.Queue[pb.AnonymizeRequest | None]) -> None:
            nonlocal exhausted, current
            if exhausted:
                return
            request = next(source, None)
            if request is None:
                exhausted = True
                feed.put(None)
                return
            if request.HasField("options"):
                current = request.options
            unanswered.append((request, current))
            feed.put(request)

        while True:
            feed: queue.Queue[pb.AnonymizeRequest | None] = queue.Queue()
            for n, (request, options) in enumerate(unanswered):
                if n == 0 and options is not None and not request.HasField("options"):
                    first = pb.AnonymizeRequest()
                    first.CopyFrom(request)
                    first.options.CopyFrom(options)
                    feed.put(first)
                else:
                    feed.put(request)
            if exhausted:
                feed.put(None)
            while len(unanswered) < in_flight and not exhausted:
                pull(feed)
            if not unanswered:
                return
            call = self.stub.AnonymizeStream(iter(feed.get, None), metadata=self.metadata)
            try:
                for response in call:
                    request, _ = unanswered[0]
                    if response.frame_index != request.frame_index:
                        raise RemoteError(
                            grpc.StatusCode.INTERNAL,
                            f"answer for frame {response.frame_index}, expected "
                            f"{request.frame_index}",
                        )
                    if response.HasField("error") and _passing(response.error.code):
                        raise _Again(response.error.code, response.error.message)
                    unanswered.popleft()
                    backoff.reset()
                    if response.HasField("error"):
                        failed = FrameFailed(
                            response.frame_index, response.error.code, response.error.message
                        )
                        if raise_errors:
                            raise failed
                        yield failed
                    else:
                        yield result_from(response)
                    pull(feed)
                if unanswered:  # the stream ended early without an error: count it as one
                    raise _Again(
                        grpc.StatusCode.UNAVAILABLE.value[0],
                        f"the stream ended with {len(unanswered)} frame(s) unanswered",
                    )
            except grpc.RpcError as exc:
                if exc.code() not in TRANSIENT:
                    raise remote_error(exc) from None
                backoff.wait(exc.code(), exc.details() or "")
            except _Again as again:
                backoff.wait(status_of(again.code), again.message)
            finally:
                feed.put(None)  # ends the request stream of a call we leave
                call.cancel()

    # --- the rest --------------------------------------------------------------------------
    def info(self) -> pb.GetInfoResponse:
        try:
            response: pb.GetInfoResponse = self.stub.GetInfo(
                pb.GetInfoRequest(), timeout=self.timeout, metadata=self.metadata
            )
        except grpc.RpcError as exc:
            raise remote_error(exc) from None
        return response

    def health(self, service: str = "", timeout: float = 5.0) -> str:
        """SERVING, NOT_SERVING, ...; raises RemoteError when the daemon cannot be reached."""
        try:
            reply = self.health_stub.Check(
                health_pb2.HealthCheckRequest(service=service), timeout=timeout
            )
        except grpc.RpcError as exc:
            raise remote_error(exc) from None
        return str(health_pb2.HealthCheckResponse.ServingStatus.Name(reply.status))

    def wait_ready(self, timeout: float = 60.0) -> None:
        grpc.channel_ready_future(self.channel).result(timeout=timeout)

    def close(self) -> None:
        self.channel.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


def wait_serving(
    address: str, timeout: float, alive: Callable[[], bool] = lambda: True
) -> list[str]:
    """Polls health until SERVING; returns the statuses seen in order. A fresh channel each
    time: a failed connect would otherwise back off for a second or more (and hide a short
    NOT_SERVING phase). ``alive`` returning False (a daemon process that exited) stops it."""
    statuses: list[str] = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not alive():
            raise RemoteError(grpc.StatusCode.UNAVAILABLE, f"{address}: the daemon is gone")
        with Client(address) as client:
            try:
                status = client.health(timeout=1.0)
            except ObscuraError:
                status = "UNREACHABLE"
        if not statuses or statuses[-1] != status:
            statuses.append(status)
        if status == "SERVING":
            return statuses
        time.sleep(0.02)
    raise TimeoutError(f"{address}: not SERVING after {timeout} s (seen: {statuses})")


class AsyncClient(_Connection):
    """The asyncio client: the same calls, awaited, with the same contract."""

    _grpc = grpc.aio

    async def anonymize(self, request: pb.AnonymizeRequest) -> pb.AnonymizeResponse:
        """One call; passing errors are retried with backoff, as :meth:`Client.anonymize`."""
        backoff = Backoff(self.retry_for)
        while True:
            try:
                response: pb.AnonymizeResponse = await self.stub.Anonymize(
                    request, timeout=self.timeout, metadata=self.metadata
                )
            except grpc.RpcError as exc:
                if exc.code() not in TRANSIENT:
                    raise remote_error(exc) from None
                await asyncio.sleep(backoff.next_delay(exc.code(), exc.details() or ""))
            else:
                return response

    async def anonymize_image(
        self, image: bytes | str | Path | ImageArray, options: Options | None = None
    ) -> Result:
        return result_from(await self.anonymize(request_for(image, options or Options())))

    async def stream(
        self, requests: AsyncIterator[pb.AnonymizeRequest] | Iterable[pb.AnonymizeRequest]
    ) -> AsyncIterator[Result | FrameFailed]:
        """One AnonymizeStream call; results in order, FrameFailed for refused frames."""
        call = self.stub.AnonymizeStream(requests, metadata=self.metadata)
        try:
            async for response in call:
                yield _stream_item(response)
        except grpc.RpcError as exc:
            raise remote_error(exc) from None

    async def info(self) -> pb.GetInfoResponse:
        try:
            response: pb.GetInfoResponse = await self.stub.GetInfo(
                pb.GetInfoRequest(), timeout=self.timeout, metadata=self.metadata
            )
        except grpc.RpcError as exc:
            raise remote_error(exc) from None
        return response

    async def health(self, service: str = "", timeout: float = 5.0) -> str:
        try:
            reply = await self.health_stub.Check(
                health_pb2.HealthCheckRequest(service=service), timeout=timeout
            )
        except grpc.RpcError as exc:
            raise remote_error(exc) from None
        return str(health_pb2.HealthCheckResponse.ServingStatus.Name(reply.status))

    async def close(self) -> None:
        await self.channel.close()

    async def __aenter__(self) -> AsyncClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()
