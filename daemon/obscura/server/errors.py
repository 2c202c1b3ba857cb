"""Exceptions to gRPC status codes, in one place, and the interceptors that apply it.

Bad input is INVALID_ARGUMENT with a message that names the problem; overload
RESOURCE_EXHAUSTED; not ready UNAVAILABLE; auth UNAUTHENTICATED / PERMISSION_DENIED; anything
else is a bug: INTERNAL with a generic message, details in the log only.
"""

from __future__ import annotations

import hmac
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Collection
from typing import Any

import grpc

from obscura.errors import ConfigError, InvalidInput
from obscura.service import NotReady, Overloaded, PermissionDenied, Unauthenticated

log = logging.getLogger(__name__)

INTERNAL_MESSAGE = "internal error; the daemon's log has the details"


def status_for(exc: BaseException) -> tuple[grpc.StatusCode, str]:
    """The status code and client-facing message for an exception."""
    if isinstance(exc, InvalidInput | ConfigError):
        return grpc.StatusCode.INVALID_ARGUMENT, str(exc)
    if isinstance(exc, Overloaded):
        return grpc.StatusCode.RESOURCE_EXHAUSTED, str(exc)
    if isinstance(exc, NotReady):
        return grpc.StatusCode.UNAVAILABLE, str(exc)
    if isinstance(exc, Unauthenticated):
        return grpc.StatusCode.UNAUTHENTICATED, str(exc)
    if isinstance(exc, PermissionDenied):
        return grpc.StatusCode.PERMISSION_DENIED, str(exc)
    return grpc.StatusCode.INTERNAL, INTERNAL_MESSAGE


def log_unexpected(exc: BaseException, where: str) -> None:
    code, _ = status_for(exc)
    if code is grpc.StatusCode.INTERNAL:
        log.error("unexpected error in %s", where, exc_info=exc)


def bearer_ok(tokens: Collection[bytes], header: str | bytes | None) -> bool:
    """Whether an ``Authorization`` header value carries one of ``tokens`` as a bearer token
    (any when there are none). Compared against every token, in constant time, so that timing
    says nothing about which one matched. Both protocols call this."""
    if not tokens:
        return True
    raw = header.encode() if isinstance(header, str) else header or b""
    scheme, _, presented = raw.partition(b" ")
    given = presented.strip() if scheme.lower() == b"bearer" else b""
    ok = False
    for token in tokens:
        ok |= hmac.compare_digest(given, token)
    return ok and bool(given)


RpcDone = Callable[[str, str, float], None]  # method, status code name, seconds


def _method_name(full: str) -> str:
    return full.rsplit("/", 1)[-1]


class ErrorInterceptor(grpc.aio.ServerInterceptor):  # type: ignore[misc]
    """Maps exceptions escaping a handler to status codes and reports each RPC's outcome."""

    def __init__(self, on_done: RpcDone | None = None):
        self.on_done = on_done

    async def intercept_service(
        self,
        continuation: Callable[[Any], Awaitable[Any]],
        details: grpc.HandlerCallDetails,
    ) -> Any:
        handler = await continuation(details)
        if handler is None:
            return None
        method = _method_name(details.method)
        on_done = self.on_done

        def finish(start: float, code: grpc.StatusCode) -> None:
            if on_done is not None:
                on_done(method, code.name, time.perf_counter() - start)

        async def failed(exc: Exception, start: float, context: grpc.aio.ServicerContext) -> None:
            """Re-raises an abort as it is; anything else becomes its mapped status."""
            if isinstance(exc, grpc.aio.AbortError):
                finish(start, context.code() or grpc.StatusCode.UNKNOWN)
                raise exc
            code, message = status_for(exc)
            log_unexpected(exc, method)
            finish(start, code)
            await context.abort(code, message)

        if handler.unary_unary is not None:
            inner_uu = handler.unary_unary

            async def unary_unary(request: Any, context: grpc.aio.ServicerContext) -> Any:
                start = time.perf_counter()
                try:
                    response = await inner_uu(request, context)
                except Exception as exc:
                    await failed(exc, start, context)
                finish(start, context.code() or grpc.StatusCode.OK)
                return response

            return grpc.unary_unary_rpc_method_handler(
                unary_unary,
                request_deserializer=handler.request_deserializer,
                response_serializer=handler.response_serializer,
            )
        if handler.stream_stream is not None:
            inner_ss = handler.stream_stream

            async def stream_stream(
                requests: AsyncIterator[Any], context: grpc.aio.ServicerContext
            ) -> AsyncIterator[Any]:
                start = time.perf_counter()
                try:
                    async for response in inner_ss(requests, context):
                        yield response
                except Exception as exc:
                    await failed(exc, start, context)
                finish(start, context.code() or grpc.StatusCode.OK)

            return grpc.stream_stream_rpc_method_handler(
                stream_stream,
                request_deserializer=handler.request_deserializer,
                response_serializer=handler.response_serializer,
            )
        return handler


# Health checks reveal nothing and must work for container runtimes without a token.
OPEN_METHODS = frozenset({"/grpc.health.v1.Health/Check", "/grpc.health.v1.Health/Watch"})


Check = Callable[[grpc.aio.ServicerContext], Awaitable[None]]


def _guarded(handler: Any, check: Check) -> Any:
    """``handler`` with ``check(context)`` awaited before it runs (the check may abort)."""
    kinds = {"request_deserializer": handler.request_deserializer,
             "response_serializer": handler.response_serializer}  # fmt: skip
    if handler.unary_unary is not None:
        inner_uu = handler.unary_unary

        async def unary_unary(request: Any, context: grpc.aio.ServicerContext) -> Any:
            await check(context)
            return await inner_uu(request, context)

        return grpc.unary_unary_rpc_method_handler(unary_unary, **kinds)
    if handler.unary_stream is not None:
        inner_us = handler.unary_stream

        async def unary_stream(request: Any, context: grpc.aio.ServicerContext) -> Any:
            await check(context)
            async for item in inner_us(request, context):
                yield item

        return grpc.unary_stream_rpc_method_handler(unary_stream, **kinds)
    if handler.stream_stream is not None:
        inner_ss = handler.stream_stream

        async def stream_stream(requests: Any, context: grpc.aio.ServicerContext) -> Any:
            await check(context)
            async for item in inner_ss(requests, context):
                yield item

        return grpc.stream_stream_rpc_method_handler(stream_stream, **kinds)
    return handler


class AuthInterceptor(grpc.aio.ServerInterceptor):  # type: ignore[misc]
    """Bearer tokens (``authorization: Bearer <token>``, compared in constant time) and, with
    mutual TLS, an optional allow-list of client certificate common names."""

    def __init__(
        self,
        tokens: Collection[str] = (),
        allowed_clients: Collection[str] = (),
        on_denied: RpcDone | None = None,
    ):
        self.tokens = [t.encode() for t in tokens]
        self.allowed = frozenset(allowed_clients)
        self.on_denied = on_denied

    def _token_ok(self, metadata: Any) -> bool:
        header = next((v for k, v in metadata or () if k == "authorization"), None)
        return bearer_ok(self.tokens, header)

    async def intercept_service(
        self,
        continuation: Callable[[Any], Awaitable[Any]],
        details: grpc.HandlerCallDetails,
    ) -> Any:
        if details.method in OPEN_METHODS:
            return await continuation(details)
        handler = await continuation(details)
        if handler is None:
            return None
        if not self._token_ok(details.invocation_metadata):
            if self.on_denied is not None:
                self.on_denied(_method_name(details.method), "UNAUTHENTICATED", 0.0)

            async def refuse(context: grpc.aio.ServicerContext) -> None:
                await context.abort(
                    grpc.StatusCode.UNAUTHENTICATED, "missing or invalid bearer token"
                )

            return _guarded(handler, refuse)
        if not self.allowed:
            return handler
        allowed = self.allowed

        async def peer_allowed(context: grpc.aio.ServicerContext) -> None:
            names = context.auth_context().get("x509_common_name", [])
            if not any(n.decode() in allowed for n in names):
                await context.abort(
                    grpc.StatusCode.PERMISSION_DENIED, "this client certificate is not allowed"
                )

        return _guarded(handler, peer_allowed)
