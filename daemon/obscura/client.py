"""A small synchronous client of the daemon (the CLI's ``--server`` mode uses it).

``Client("unix:///run/obscura/obscura.sock")`` or ``Client("host:50051", tls_ca=..., token=...)``.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from pathlib import Path
from types import TracebackType
from typing import Any

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from obscura.errors import InvalidInput, ObscuraError
from obscura.v1 import anonymizer_pb2 as pb
from obscura.v1 import anonymizer_pb2_grpc as pb_grpc

DEFAULT_MAX_MESSAGE = 64 * 1024 * 1024


class RemoteError(ObscuraError):
    """The daemon answered with an error status."""

    def __init__(self, code: grpc.StatusCode, message: str):
        super().__init__(f"{code.name}: {message}")
        self.code = code
        self.details = message


def remote_error(exc: grpc.RpcError) -> ObscuraError:
    code = exc.code() if hasattr(exc, "code") else grpc.StatusCode.UNKNOWN
    message = exc.details() if hasattr(exc, "details") else str(exc)
    if code is grpc.StatusCode.INVALID_ARGUMENT:
        return InvalidInput(message or "invalid argument")
    return RemoteError(code, message or "")


class Client:
    def __init__(
        self,
        address: str,
        *,
        token: str | None = None,
        tls_ca: Path | None = None,
        tls_cert: Path | None = None,
        tls_key: Path | None = None,
        server_name: str | None = None,
        timeout: float | None = 120.0,
        max_message_bytes: int = DEFAULT_MAX_MESSAGE,
    ):
        options: list[tuple[str, Any]] = [
            ("grpc.max_receive_message_length", max_message_bytes),
            ("grpc.max_send_message_length", max_message_bytes),
        ]
        if server_name:
            options.append(("grpc.ssl_target_name_override", server_name))
        if tls_ca or tls_cert:
            creds = grpc.ssl_channel_credentials(
                root_certificates=tls_ca.read_bytes() if tls_ca else None,
                private_key=tls_key.read_bytes() if tls_key else None,
                certificate_chain=tls_cert.read_bytes() if tls_cert else None,
            )
            self.channel = grpc.secure_channel(address, creds, options=options)
        else:
            self.channel = grpc.insecure_channel(address, options=options)
        self.metadata: tuple[tuple[str, str], ...] = (
            (("authorization", f"Bearer {token}"),) if token else ()
        )
        self.timeout = timeout
        self.stub = pb_grpc.AnonymizerStub(self.channel)  # type: ignore[no-untyped-call]
        self.health_stub = health_pb2_grpc.HealthStub(self.channel)

    def anonymize(self, request: pb.AnonymizeRequest) -> pb.AnonymizeResponse:
        try:
            response: pb.AnonymizeResponse = self.stub.Anonymize(
                request, timeout=self.timeout, metadata=self.metadata
            )
        except grpc.RpcError as exc:
            raise remote_error(exc) from None
        return response

    def stream(self, requests: Iterable[pb.AnonymizeRequest]) -> Iterator[pb.AnonymizeResponse]:
        try:
            yield from self.stub.AnonymizeStream(iter(requests), metadata=self.metadata)
        except grpc.RpcError as exc:
            raise remote_error(exc) from None

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
