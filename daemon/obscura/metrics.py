"""Prometheus metrics of the daemon: base units, bounded labels, no image data or names.

Served on their own HTTP port (``[server] metrics_listen``). ``deploy/README.md`` lists them;
``deploy/grafana/obscura-dashboard.json`` charts them. Every label takes its values from a
fixed set (or, for model names, from at most ``MAX_MODELS`` configured names), so the number
of series a daemon exports is bounded whatever its clients send.
"""

from __future__ import annotations

import contextlib
import importlib.metadata
import platform
import threading
from collections.abc import Mapping, Sequence
from wsgiref.simple_server import WSGIServer

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

__all__ = ["BUCKETS", "MAX_MODELS", "OTHER", "Metrics"]

# Latencies from 1 ms (a small crop on a GPU) to 10 s (a large frame on a busy CPU).
BUCKETS = (
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.15, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0,
    10.0,
)  # fmt: skip
OTHER = "other"
METHODS = frozenset({"Anonymize", "AnonymizeStream", "GetInfo"})
# REST mode: its routes by name, and the HTTP status codes it answers with
HTTP_ROUTES = frozenset(
    {"upload", "task", "delete", "anonymized", "binary-mask", "instance-mask", "metadata",
     "openapi", "healthz"}
)  # fmt: skip
HTTP_CODES = frozenset(
    {"200", "202", "204", "400", "401", "403", "404", "405", "409", "413", "415", "429", "500",
     "503", "507"}
)  # fmt: skip
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
MAX_MODELS = 16  # distinct model label values; further models are counted as "other"
MODEL_INFO_LABELS = ("name", "classes", "family", "precision", "device")


def _dist_version(dist: str) -> str:
    try:
        return importlib.metadata.version(dist)
    except importlib.metadata.PackageNotFoundError:
        return ""


def _parse_listen(listen: str) -> tuple[str, int]:
    """``HOST:PORT`` (``[::1]:9464`` for IPv6; an empty host means all IPv4 addresses)."""
    host, sep, port = listen.strip().rpartition(":")
    if not sep or not port.isdigit() or int(port) > 65535:
        raise ValueError(f"metrics_listen must be HOST:PORT, got {listen!r}")
    if host.startswith("[") != host.endswith("]"):
        raise ValueError(f"metrics_listen: unbalanced brackets in {listen!r}")
    return host.strip("[]") or "0.0.0.0", int(port)


class Metrics:
    """All of the daemon's metrics in one registry (its own CollectorRegistry, with the process
    and platform collectors added)."""

    def __init__(self, registry: CollectorRegistry | None = None, *, version: str = "") -> None:
        self.registry: CollectorRegistry = registry if registry is not None else CollectorRegistry()
        r = self.registry
        for add in (ProcessCollector, PlatformCollector):
            with contextlib.suppress(ValueError):  # a shared registry that has them already
                add(registry=r)
        self._rpc_seconds = Histogram(
            "obscura_rpc_duration_seconds",
            "Duration of calls by protocol (grpc, http), method (REST: route) and status code "
            "(streams: the whole stream).",
            ["protocol", "method", "code"],
            buckets=BUCKETS,
            registry=r,
        )
        self._rpcs = Counter(
            "obscura_rpc",
            "Calls finished, by protocol (grpc, http), method (REST: route) and status code.",
            ["protocol", "method", "code"],
            registry=r,
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
            "Inference time per frame and model (the configured model names).",
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
        self._tracked_only = Counter(
            "obscura_frames_tracked_only",
            "Stream frames hidden from the tracks alone, detectors skipped (detect_every > 1).",
            registry=r,
        )
        self._inflight = Gauge(
            "obscura_inflight_frames", "Frames queued or running in the daemon.", registry=r
        )
        self._queue = Gauge(
            "obscura_queue_depth", "Frames waiting for a pipeline worker.", registry=r
        )
        self._streams = Gauge(
            "obscura_active_streams", "AnonymizeStream calls open now.", registry=r
        )
        self._serving = Gauge(
            "obscura_serving", "1 while the health status is SERVING, else 0.", registry=r
        )
        self._model_info = Gauge(
            "obscura_model_info",
            "The models loaded (value 1): name, classes, family, precision and device.",
            list(MODEL_INFO_LABELS),
            registry=r,
        )
        self._build = Gauge(
            "obscura_build_info",
            "Obscura's version and the versions of its runtime (value 1).",
            ["version", "python", "openvino"],
            registry=r,
        )
        self._build.labels(
            version=version or _dist_version("obscura"),
            python=platform.python_version(),
            openvino=_dist_version("openvino"),
        ).set(1)
        # Series that dashboards take rates of exist from the start, at 0.
        for status in sorted(FRAME_STATUSES):
            self._frames.labels(status=status)
        for cls in sorted(CLASSES):
            self._detections.labels(**{"class": cls})
        self._models_seen: set[str] = set()
        self._lock = threading.Lock()
        self._http: WSGIServer | None = None
        self._http_thread: threading.Thread | None = None

    # --- observations ----------------------------------------------------------------------
    def rpc_done(self, method: str, code: str, seconds: float) -> None:
        """One gRPC call finished: ``method`` its short name, ``code`` a status code name."""
        method = method if method in METHODS else OTHER
        code = code if code in CODES else "UNKNOWN"
        self._call_done("grpc", method, code, seconds)

    def http_done(self, route: str, status: int, seconds: float) -> None:
        """One REST request answered: ``route`` its name, ``status`` the HTTP status."""
        route = route if route in HTTP_ROUTES else OTHER
        code = str(status) if str(status) in HTTP_CODES else OTHER
        self._call_done("http", route, code, seconds)

    def _call_done(self, protocol: str, method: str, code: str, seconds: float) -> None:
        labels = {"protocol": protocol, "method": method, "code": code}
        self._rpc_seconds.labels(**labels).observe(max(0.0, seconds))
        self._rpcs.labels(**labels).inc()

    def stage(self, stage: str, seconds: float) -> None:
        stage = stage if stage in STAGES else OTHER
        self._stage_seconds.labels(stage=stage).observe(max(0.0, seconds))

    def _model_label(self, model: str) -> str:
        with self._lock:
            if model in self._models_seen:
                return model
            if len(self._models_seen) >= MAX_MODELS:
                return OTHER
            self._models_seen.add(model)
            return model

    def inference(self, model: str, seconds: float) -> None:
        label = self._model_label(model)
        self._inference_seconds.labels(model=label).observe(max(0.0, seconds))

    def frame(self, status: str) -> None:
        self._frames.labels(status=status if status in FRAME_STATUSES else OTHER).inc()

    def tracked_only(self) -> None:
        self._tracked_only.inc()

    def detections(self, counts: Mapping[str, int]) -> None:
        for cls, n in counts.items():
            if cls in CLASSES and n > 0:
                self._detections.labels(**{"class": cls}).inc(n)

    def inflight(self, delta: int) -> None:
        self._inflight.inc(delta)

    def queue_depth(self, value: int) -> None:
        self._queue.set(value)

    def stream_opened(self) -> None:
        self._streams.inc()

    def stream_closed(self) -> None:
        self._streams.dec()

    def set_models(self, models: Sequence[Mapping[str, str]]) -> None:
        """Replaces the set of ``obscura_model_info`` series (at most ``MAX_MODELS``)."""
        with self._lock:
            self._model_info.clear()
            for m in models[:MAX_MODELS]:
                self._model_info.labels(*(str(m.get(k, "")) for k in MODEL_INFO_LABELS)).set(1)

    def set_serving(self, serving: bool) -> None:
        self._serving.set(1 if serving else 0)

    # --- exposition ------------------------------------------------------------------------
    def start_http(self, listen: str) -> int:
        """Serves the metrics on ``HOST:PORT`` from a daemon thread; returns the bound port.

        Any path answers (``/metrics`` is the usual one); port 0 picks a free port. A server
        started earlier by this object is stopped first.
        """
        host, port = _parse_listen(listen)
        self.stop_http()
        server, thread = start_http_server(port, addr=host, registry=self.registry)
        self._http, self._http_thread = server, thread
        return int(server.server_address[1])

    def stop_http(self) -> None:
        """Stops the server of :meth:`start_http` and closes its socket (no-op if none)."""
        server, thread = self._http, self._http_thread
        self._http = self._http_thread = None
        if server is not None:
            server.shutdown()
            server.server_close()
        if thread is not None:
            thread.join(timeout=5)

    def exposition(self) -> bytes:
        """The metrics in the Prometheus text format 0.0.4."""
        return generate_latest(self.registry)
