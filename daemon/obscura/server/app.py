"""``obscura serve``: the long-lived daemon around the servicer.

Start-up: listen (health NOT_SERVING), load the models, warm them up, then SERVING and systemd
READY=1. SIGTERM / SIGINT: NOT_SERVING and STOPPING=1, in-flight work (streams included) gets
the grace period to finish, then exit 0. A systemd watchdog is pinged while no inference has
been running for longer than ``stuck_timeout``.
"""

from __future__ import annotations

import asyncio
import contextlib
import faulthandler
import ipaddress
import logging
import os
import signal
import stat
import sys
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection

from obscura import __version__, systemd
from obscura.config import Config
from obscura.errors import ConfigError
from obscura.metrics import Metrics
from obscura.pipeline.frame import FrameProcessor
from obscura.pipeline.options import AnonymizeOptions, Method
from obscura.server.errors import AuthInterceptor, ErrorInterceptor
from obscura.server.servicer import AnonymizerServicer, DaemonState, model_rows
from obscura.service import Dispatcher, Limits, PipelineService
from obscura.types import ObjectClass
from obscura_client.v1 import anonymizer_pb2 as pb
from obscura_client.v1 import anonymizer_pb2_grpc as pb_grpc

log = logging.getLogger(__name__)

SERVICE_NAME = "obscura.v1.Anonymizer"
DRAIN_NOTICE = 1.0  # seconds of NOT_SERVING before the listeners close
STOP_MARGIN = 3.0  # seconds past the grace period after which a stop that hangs is cut short


@dataclass(frozen=True)
class Listener:
    address: str  # as configured
    unix_path: Path | None  # for unix:// addresses
    target: str  # what grpc binds

    @property
    def is_loopback(self) -> bool:
        if self.unix_path is not None:
            return True
        host = self.target.rsplit(":", 1)[0].strip("[]")
        if host == "localhost":
            return True
        try:
            return ipaddress.ip_address(host).is_loopback
        except ValueError:
            return False


def parse_listen(address: str) -> Listener:
    """``unix:///run/obscura/obscura.sock``, ``unix:relative.sock``, ``HOST:PORT``."""
    if address.startswith("unix://"):
        path = Path(address[len("unix://") :])
        return Listener(address, path, f"unix://{path}")
    if address.startswith("unix:"):
        path = Path(address[len("unix:") :])
        return Listener(address, path, f"unix:{path}")
    host, sep, port = address.rpartition(":")
    if not sep or not host or not port.isdigit():
        raise ConfigError(f"[server].listen: {address!r} is not unix://PATH or HOST:PORT")
    return Listener(address, None, address)


def _read(path: str, what: str) -> bytes:
    try:
        return Path(path).read_bytes()
    except OSError as exc:
        raise ConfigError(f"[server].{what}: cannot read {path}: {exc.strerror}") from None


def load_tokens(path: str) -> list[str]:
    text = _read(path, "tokens_file").decode()
    tokens = [line.strip() for line in text.splitlines()]
    tokens = [t for t in tokens if t and not t.startswith("#")]
    if not tokens:
        raise ConfigError(f"[server].tokens_file: {path} holds no token")
    return tokens


@dataclass
class Daemon:
    """The server, its state and its lifecycle; ``processor`` may be given (tests)."""

    config: Config
    processor: FrameProcessor | None = None
    metrics: Metrics = field(default_factory=lambda: Metrics(version=__version__))
    ports: dict[str, int] = field(default_factory=dict)
    metrics_port: int | None = None
    # The daemon is the process (``serve``): a stop that hangs then ends it (see StopGuard).
    owns_process: bool = False

    def __post_init__(self) -> None:
        cfg = self.config.server
        self.listeners = [parse_listen(a) for a in cfg.listen]
        self.tokens = load_tokens(cfg.tokens_file) if cfg.tokens_file else []
        self.heartbeat = systemd.Heartbeat()
        metrics = self.metrics
        self._inflight_seen = 0
        self.dispatcher = Dispatcher(
            cfg.worker_count, cfg.inflight_limit, on_change=self._load_changed
        )
        self.state = DaemonState(
            dispatcher=self.dispatcher,
            stream_depth=cfg.stream_depth,
            max_pixels=cfg.max_pixels,
            max_message_bytes=cfg.max_message_bytes,
            runtime=self.config.backend.runtime,
            metrics=metrics,
            heartbeat=self.heartbeat,
        )
        self.health = health.aio.HealthServicer()
        self.server: grpc.aio.Server | None = None
        self.http: Any = None  # REST mode's HttpServer, when [server].http_listen is set
        self.http_port: int | None = None
        self.watchdog = systemd.Watchdog(lambda: self.heartbeat.oldest() < cfg.stuck_timeout)
        self._stopping = asyncio.Event()

    def _load_changed(self, inflight: int, queued: int) -> None:
        self.metrics.inflight(inflight - self._inflight_seen)
        self._inflight_seen = inflight
        self.metrics.queue_depth(queued)

    # --- start -----------------------------------------------------------------------------
    async def _set_serving(self, serving: bool) -> None:
        status = (
            health_pb2.HealthCheckResponse.SERVING
            if serving
            else health_pb2.HealthCheckResponse.NOT_SERVING
        )
        for name in ("", SERVICE_NAME):
            await self.health.set(name, status)
        self.metrics.set_serving(serving)

    def _credentials(self) -> grpc.ServerCredentials | None:
        cfg = self.config.server
        if not cfg.tls_cert:
            return None
        key, cert = _read(cfg.tls_key, "tls_key"), _read(cfg.tls_cert, "tls_cert")
        ca = _read(cfg.tls_client_ca, "tls_client_ca") if cfg.tls_client_ca else None
        return grpc.ssl_server_credentials(
            [(key, cert)], root_certificates=ca, require_client_auth=ca is not None
        )

    async def start(self) -> None:
        """Listens (NOT_SERVING), loads and warms up the models, then SERVING."""
        cfg = self.config.server
        interceptors: list[Any] = [
            ErrorInterceptor(on_done=self.metrics.rpc_done),
        ]
        if self.tokens or cfg.tls_allowed_clients:
            interceptors.insert(
                0,
                AuthInterceptor(
                    self.tokens, cfg.tls_allowed_clients, on_denied=self.metrics.rpc_done
                ),
            )
        options = [
            ("grpc.max_receive_message_length", cfg.max_message_bytes),
            ("grpc.max_send_message_length", cfg.max_message_bytes),
            ("grpc.so_reuseport", 0),
        ]
        server = grpc.aio.server(interceptors=interceptors, options=options)
        pb_grpc.add_AnonymizerServicer_to_server(  # type: ignore[no-untyped-call]
            AnonymizerServicer(self.state), server
        )
        health_pb2_grpc.add_HealthServicer_to_server(self.health, server)
        reflection.enable_server_reflection(
            (
                pb.DESCRIPTOR.services_by_name["Anonymizer"].full_name,
                health_pb2.DESCRIPTOR.services_by_name["Health"].full_name,
                reflection.SERVICE_NAME,
            ),
            server,
        )
        await self._set_serving(False)
        credentials = self._credentials()
        for listener in self.listeners:
            self.ports[listener.address] = self._bind(server, listener, credentials)
        self.server = server
        await server.start()
        for listener in self.listeners:
            if listener.unix_path is not None:
                os.chmod(listener.unix_path, cfg.mode)
        if cfg.metrics_listen:
            self.metrics_port = self.metrics.start_http(cfg.metrics_listen)
        if cfg.http_listen:
            await self._start_http()
        log.info("listening on %s", ", ".join(f"{a} ({p})" for a, p in self.ports.items()))
        systemd.status("loading models")
        await self._load()
        await self._set_serving(True)
        self.watchdog.start()
        systemd.ready("serving on " + ", ".join(self.ports))
        log.info("serving")

    def _bind(
        self,
        server: grpc.aio.Server,
        listener: Listener,
        credentials: grpc.ServerCredentials | None,
    ) -> int:
        if listener.unix_path is not None:
            path = listener.unix_path
            path.parent.mkdir(parents=True, exist_ok=True)
            with contextlib.suppress(FileNotFoundError):
                if stat.S_ISSOCK(path.lstat().st_mode):
                    path.unlink()  # a stale socket of an earlier run
            port = server.add_insecure_port(listener.target)
        elif credentials is not None:
            port = server.add_secure_port(listener.target, credentials)
        else:
            if not listener.is_loopback:
                log.warning(
                    "listening on %s without TLS: anyone on the network can connect "
                    "(set [server] tls_cert / tls_key, and tokens_file)",
                    listener.address,
                )
            port = server.add_insecure_port(listener.target)
        if port == 0 and listener.unix_path is None:
            raise ConfigError(f"[server].listen: cannot bind {listener.address}")
        return int(port)

    async def _start_http(self) -> None:
        from obscura.server.rest import HttpServer, RestApi

        cfg = self.config.server
        host = cfg.http_listen.rpartition(":")[0]
        if not cfg.tls_cert and not parse_listen(f"{host}:0").is_loopback:
            log.warning(
                "REST on %s without TLS: anyone on the network can connect "
                "(set [server] tls_cert / tls_key, and tokens_file)",
                cfg.http_listen,
            )
        self.http = HttpServer(RestApi(self.state, cfg, self.tokens, self.metrics), cfg)
        await self.http.start()
        self.http_port = self.http.port
        log.info("REST API on %s (%d)", cfg.http_listen, self.http_port)

    async def _load(self) -> None:
        loop = asyncio.get_running_loop()
        if self.processor is None:
            self.processor = await loop.run_in_executor(None, self._build_processor)
        service = PipelineService(
            self.processor,
            Limits(self.config.server.max_pixels, self.config.server.max_message_bytes),
        )
        if self.config.server.warmup:
            everything = AnonymizeOptions(methods=dict.fromkeys(ObjectClass, Method.BLUR))
            await loop.run_in_executor(None, service.warm_up, everything)
        self.state.service = service

    def _build_processor(self) -> FrameProcessor:
        from obscura.backends import create_backend
        from obscura.pipeline.detect import Detector

        cfg = self.config
        detector = Detector(cfg.store(), create_backend(cfg.backend), cfg.detector)
        rows = model_rows(
            detector.loaded_models, detector.model_runs, cfg.backend.device, cfg.backend.precision
        )
        for row in rows:
            log.info("model %s runs on %s at %s", row["name"], row["device"], row["precision"])
        self.state.models = rows
        self.metrics.set_models([{**r, "classes": ",".join(r["classes"])} for r in rows])
        return FrameProcessor(detector)

    # --- run and stop ----------------------------------------------------------------------
    def request_stop(self) -> None:
        self._stopping.set()

    async def run(self) -> None:
        """Starts, serves until SIGTERM / SIGINT (or :meth:`request_stop`), drains, stops."""
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            with contextlib.suppress(NotImplementedError, RuntimeError):
                loop.add_signal_handler(sig, self.request_stop)
        try:
            await self.start()
            await self._stopping.wait()
        finally:
            await self.stop()

    async def stop(self) -> None:
        grace = self.config.server.grace_period
        self.state.draining = True
        log.info("stopping: draining for up to %g s", grace)
        guard = StopGuard(grace + STOP_MARGIN) if self.owns_process else None
        systemd.stopping(f"draining (up to {grace:g} s)")
        await self._set_serving(False)
        self.watchdog.stop()
        if self.server is not None:
            # A moment in which health says NOT_SERVING (and new calls get UNAVAILABLE) while
            # connections are still accepted, so that balancers and clients move away first.
            await asyncio.sleep(min(DRAIN_NOTICE, grace))
            rest = grace - DRAIN_NOTICE
            stops = [self.server.stop(max(0.0, rest))]
            if self.http is not None:
                stops.append(self.http.stop(max(0.0, rest)))
            await asyncio.gather(*stops)
            log.debug("calls closed")
        loop = asyncio.get_running_loop()
        await loop.run_in_executor(None, self.dispatcher.shutdown)
        log.debug("workers done")
        self.metrics.stop_http()
        for listener in self.listeners:
            if listener.unix_path is not None:
                with contextlib.suppress(FileNotFoundError):
                    listener.unix_path.unlink()
        if guard is not None:
            guard.drained = True
        log.info("stopped")


class StopGuard:
    """Ends the process if a stop has not ended it within ``limit`` seconds.

    A stop can hang in a library: gRPC's server stop with a call it never learnt was cancelled,
    or a thread that the interpreter's exit waits for. Rather than wait for systemd's (or
    Docker's) SIGKILL with nothing in the log, the guard logs every thread's stack and exits:
    with status 0 once the drain has finished (nothing accepted is lost then, only the exit
    hung), with status 1 before that.
    """

    def __init__(self, limit: float):
        self.limit = limit
        self.drained = False
        timer = threading.Timer(limit, self._expired)
        timer.daemon = True
        timer.name = "stop-guard"
        timer.start()

    def _expired(self) -> None:
        code = 0 if self.drained else 1
        where = "the exit" if self.drained else "the drain"
        log.error(
            "%s did not finish within %g s of the stop's start; the threads' stacks follow, "
            "and the daemon exits with status %d",
            where,
            self.limit,
            code,
        )
        for handler in logging.getLogger().handlers:
            handler.flush()
        faulthandler.dump_traceback(file=sys.stderr, all_threads=True)
        sys.stderr.flush()
        os._exit(code)


def serve(config: Config) -> int:
    daemon = Daemon(config, owns_process=True)
    asyncio.run(daemon.run())
    return 0
