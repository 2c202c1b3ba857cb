"""Prometheus metrics of the daemon: base units, bounded labels, no image data or names.

Served on their own HTTP port (``[server] metrics_listen``). ``deploy/README.md`` lists them;
``deploy/grafana/obscura-dashboard.json`` charts them.
"""

from __future__ import annotations

import importlib.metadata
import platform
import threading
from collections.abc import Mapping, Sequence
from typing import Any

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    PlatformCollector,
    ProcessCollector,
    generate_latest,
    start_http_server,
)

BUCKETS = (
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.15, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0,
    10.0,
)  # fmt: skip
METHODS = frozenset({"Anonymize", "AnonymizeStream", "GetInfo"})
STAGES = frozenset({"decode", "detect", "anonymize", "encode", "queue"})
FRAME_STATUSES = frozenset(
    {"ok", "invalid_argument", "resource_exhausted", "internal", "cancelled"}
)
CLASSES = frozenset({"face", "license-plate", "person", "vehicle"})
CODES = frozenset(
    {
        "OK", "CANCELLED", "UNKNOWN", "INVALID_ARGUMENT", "DEADLINE_EXCEEDED", "NOT_FOUND",
        "ALREADY_EXISTS", "PERMISSION_DENIED", "RESOURCE_EXHAUSTED", "FAILED_PRECONDITION",
        "ABORTED", "OUT_OF_RANGE", "UNIMPLEMENTED", "INTERNAL", "UNAVAILABLE", "DATA_LOSS",
        "UNAUTHENTICATED",
    }
)  # fmt: skip
MAX_MODELS = 16


def _version(dist: str) -> str:
    try:
        return importlib.metadata.version(dist)
    except importlib.metadata.PackageNotFoundError:
        return ""


def _parse_listen(listen: str) -> tuple[str, int]:
    host, sep, port = listen.rpartition(":")
    if not sep or not port.isdigit():
        raise ValueError(f"metrics_listen must be HOST:PORT, got {listen!r}")
    return host.strip("[]") or "0.0.0.0", int(port)


class Metrics:
    """All of the daemon's metrics in one registry (with process and platform collectors)."""

    def __init__(self, registry: CollectorRegistry | None = None, *, version: str = "") -> None:
        self.registry = registry or CollectorRegistry()
        r = self.registry
        ProcessCollector(registry=r)
        PlatformCollector(registry=r)
        self._rpc_seconds = Histogram(
            "obscura_rpc_duration_seconds",
            "Duration of gRPC calls by method and status code (streams: the whole stream).",
            ["method", "code"],
            buckets=BUCKETS,
            registry=r,
        )
        self._rpcs = Counter(
            "obscura_rpc", "gRPC calls by method and status code.", ["method", "code"], registry=r
        )
        self._stage_seconds = Histogram(
            "obscura_stage_duration_seconds",
            "Time per frame in each stage: queue, decode, detect, anonymize, encode.",
            ["stage"],
            buckets=BUCKETS,
            registry=r,
        )
        self._inference_seconds = Histogram(
            "obscura_inference_duration_seconds",
            "Inference time per frame and model.",
            ["model"],
            buckets=BUCKETS,
            registry=r,
        )
        self._frames = Counter(
            "obscura_frames", "Frames handled, by outcome.", ["status"], registry=r
        )
        self._detections = Counter(
            "obscura_detections", "Objects detected, by class.", ["class"], registry=r
        )
        self._inflight = Gauge(
            "obscura_inflight_frames", "Frames queued or running in the daemon.", registry=r
        )
        self._queue = Gauge(
            "obscura_queue_depth", "Frames waiting for a pipeline worker.", registry=r
        )
        self._streams = Gauge("obscura_active_streams", "Open AnonymizeStream calls.", registry=r)
        self._serving = Gauge("obscura_serving", "1 while health is SERVING, else 0.", registry=r)
        self._model_info = Gauge(
            "obscura_model_info",
            "The models loaded (value 1).",
            ["name", "classes", "family", "precision", "device"],
            registry=r,
        )
        self._build = Gauge(
            "obscura_build_info",
            "Obscura's version and its runtime (value 1).",
            ["version", "python", "openvino"],
            registry=r,
        )
        self._build.labels(
            version=version or _version("obscura"),
            python=platform.python_version(),
            openvino=_version("openvino"),
        ).set(1)
        self._models_seen: set[str] = set()
        self._lock = threading.Lock()
        self._http: Any = None
        self._http_thread: threading.Thread | None = None

    # --- observations ----------------------------------------------------------------------
    def rpc_done(self, method: str, code: str, seconds: float) -> None:
        method = method if method in METHODS else "other"
        code = code if code in CODES else "UNKNOWN"
        self._rpc_seconds.labels(method=method, code=code).observe(seconds)
        self._rpcs.labels(method=method, code=code).inc()

    def stage(self, stage: str, seconds: float) -> None:
        self._stage_seconds.labels(stage=stage if stage in STAGES else "other").observe(seconds)

    def inference(self, model: str, seconds: float) -> None:
        with self._lock:
            if model not in self._models_seen:
                if len(self._models_seen) >= MAX_MODELS:
                    model = "other"
                else:
                    self._models_seen.add(model)
        self._inference_seconds.labels(model=model).observe(seconds)

    def frame(self, status: str) -> None:
        self._frames.labels(status=status if status in FRAME_STATUSES else "other").inc()

    def detections(self, counts: Mapping[str, int]) -> None:
        for label, n in counts.items():
            if label in CLASSES and n > 0:
                self._detections.labels(**{"class": label}).inc(n)

    def inflight(self, delta: int) -> None:
        self._inflight.inc(delta)

    def queue_depth(self, value: int) -> None:
        self._queue.set(value)

    def stream_opened(self) -> None:
        self._streams.inc()

    def stream_closed(self) -> None:
        self._streams.dec()

    def set_models(self, models: Sequence[Mapping[str, str]]) -> None:
        self._model_info.clear()
        for m in models[:MAX_MODELS]:
            self._model_info.labels(
                name=m.get("name", ""),
                classes=m.get("classes", ""),
                family=m.get("family", ""),
                precision=m.get("precision", ""),
                device=m.get("device", ""),
            ).set(1)

    def set_serving(self, serving: bool) -> None:
        self._serving.set(1 if serving else 0)

    # --- exposition ------------------------------------------------------------------------
    def start_http(self, listen: str) -> int:
        """Serves /metrics on ``HOST:PORT`` from a daemon thread; returns the bound port."""
        host, port = _parse_listen(listen)
        server, thread = start_http_server(port, addr=host, registry=self.registry)
        self._http, self._http_thread = server, thread
        return int(server.server_address[1])

    def stop_http(self) -> None:
        if self._http is not None:
            self._http.shutdown()
            self._http.server_close()
            self._http = None
        if self._http_thread is not None:
            self._http_thread.join(timeout=5)
            self._http_thread = None

    def exposition(self) -> bytes:
        return bytes(generate_latest(self.registry))
