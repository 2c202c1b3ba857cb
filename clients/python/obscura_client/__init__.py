"""Clients of the Obscura anonymization daemon: the gRPC stubs (``obscura_client.v1``), the
sync and asyncio clients, the typed wire (options and metadata records), and the commands a
gateway runs (``obscura-client``)."""

from obscura_client.client import (
    AsyncClient,
    Client,
    FrameFailed,
    RemoteError,
    Result,
    request_for,
)
from obscura_client.errors import InvalidInput, ObscuraError
from obscura_client.types import ObjectClass
from obscura_client.wire import DetectionRecord, FrameMetadata, Options, Zone

__version__ = "0.1.0"

__all__ = [
    "AsyncClient",
    "Client",
    "DetectionRecord",
    "FrameFailed",
    "FrameMetadata",
    "InvalidInput",
    "ObjectClass",
    "ObscuraError",
    "Options",
    "RemoteError",
    "Result",
    "Zone",
    "__version__",
    "request_for",
]
