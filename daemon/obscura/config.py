"""Configuration: one TOML file; every section optional.

```toml
[store]
cache_dir = "/var/cache/obscura/models"

[backend]
runtime = "openvino"      # or "onnxruntime"
device = "CPU"            # CPU, GPU (Intel iGPU), AUTO; onnxruntime: cuda, cuda:N, auto, cpu
hint = "LATENCY"          # or "THROUGHPUT" (the default of `obscura serve`)
precision = "int8"        # int8 (the store's INT8 variants), f32, f16, bf16, auto

[detector]
face_model = "centerface"
face_ensemble = ["scrfd"]
face_tiles_above = 1440
thresholds = { face = 0.3, person = 0.25, vehicle = 0.3, license-plate = 0.2 }

[detector.model_options.centerface]
input_size = [960, 960]

[models.my-faces]         # a model of your own: OpenVINO IR or ONNX, of a supported family
path = "/opt/models/faces.xml"
family = "yolov8"
classes = { face = [0] }

[server]                  # `obscura serve`; see examples/obscura.toml for every key
listen = ["unix:///run/obscura/obscura.sock"]
```

Every key can also be set by an environment variable ``OBSCURA_<SECTION>_<KEY>`` (for example
``OBSCURA_SERVER_LISTEN="unix:///run/obscura/obscura.sock,127.0.0.1:50051"`` or
``OBSCURA_BACKEND_DEVICE=GPU``); values are read as TOML values where they parse as such (numbers,
booleans, lists), else as strings, and comma-separated for list keys. Flags override both.
"""

from __future__ import annotations

import dataclasses
import os
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from obscura.backends import BackendConfig
from obscura.errors import ConfigError
from obscura.pipeline.settings import DetectorConfig
from obscura.service import DEFAULT_MAX_PIXELS
from obscura.types import ObjectClass
from obscura.zoo.manifest import ModelSpec, load_manifest, parse_model
from obscura.zoo.store import ModelStore, default_cache_dir
from obscura_client.client import DEFAULT_MAX_MESSAGE


def default_socket() -> str:
    """The Unix socket the daemon listens on by default (TCP is off unless configured)."""
    runtime = os.environ.get("RUNTIME_DIRECTORY")  # set by systemd's RuntimeDirectory=
    if runtime:
        return f"unix://{Path(runtime.split(':')[0]) / 'obscura.sock'}"
    xdg = os.environ.get("XDG_RUNTIME_DIR")
    if xdg:
        return f"unix://{Path(xdg) / 'obscura' / 'obscura.sock'}"
    return f"unix:///tmp/obscura-{os.getuid()}/obscura.sock"


@dataclass(frozen=True)
class ServerConfig:
    """The daemon: where it listens, how it protects itself, how much work it takes on."""

    listen: tuple[str, ...] = field(default_factory=lambda: (default_socket(),))
    socket_mode: str = "0660"  # file mode of Unix sockets (octal)
    tls_cert: str = ""  # PEM server certificate (chain); TLS on TCP listeners when set
    tls_key: str = ""
    tls_client_ca: str = ""  # PEM CA bundle: mutual TLS, clients must present a certificate
    tls_allowed_clients: tuple[str, ...] = ()  # with mutual TLS: allowed certificate CNs
    tokens_file: str = ""  # one bearer token per line; required from every client when set
    metrics_listen: str = "127.0.0.1:9464"  # Prometheus exposition; "" turns it off
    max_pixels: int = DEFAULT_MAX_PIXELS  # larger images are refused from their header
    max_message_bytes: int = DEFAULT_MAX_MESSAGE  # 64 MiB; a raw 4K BGR frame is 25 MB
    workers: int = 0  # threads running the pipeline; 0: one per CPU core
    max_inflight: int = 0  # frames queued or running; more are refused; 0: 4 per worker
    stream_depth: int = 2  # frames in flight per stream (order kept)
    grace_period: float = 10.0  # seconds SIGTERM waits for in-flight work
    stuck_timeout: float = 30.0  # an inference running longer stops the systemd watchdog
    warmup: bool = True  # run the pipeline once before reporting SERVING
    # REST mode (the Celantur Container API v1 over HTTP), off unless http_listen is set
    http_listen: str = ""  # HOST:PORT
    tasks_dir: str = ""  # where uploads and results live; "": the state or cache directory
    tasks_max: int = 100  # tasks kept (queued, running, finished); more uploads are refused
    tasks_max_bytes: int = 8 * 1024**3  # disk the tasks may take; more uploads are refused
    upload_max_bytes: int = 2 * 1024**3  # one upload
    tasks_ttl: float = 86_400.0  # seconds a finished task is kept
    tasks_parallel: int = 1  # tasks processed at once (their frames share the worker pool)
    webhook_attempts: int = 5  # a webhook is retried with backoff up to this many times

    def __post_init__(self) -> None:
        problems = self.problems()
        if problems:
            raise ConfigError("; ".join(problems))

    def problems(self) -> list[str]:
        out = []
        if not self.listen:
            out.append("[server].listen: at least one address")
        for address in self.listen:
            if not isinstance(address, str) or not address:
                out.append(f"[server].listen: {address!r} is not an address")
        try:
            mode = int(self.socket_mode, 8)
            if not 0 <= mode <= 0o777:
                raise ValueError
        except (TypeError, ValueError):
            out.append(
                f"[server].socket_mode: an octal file mode such as '0660', got {self.socket_mode!r}"
            )
        if bool(self.tls_cert) != bool(self.tls_key):
            out.append("[server].tls_cert and tls_key: give both or neither")
        if self.tls_client_ca and not self.tls_cert:
            out.append("[server].tls_client_ca: mutual TLS needs tls_cert and tls_key too")
        for key in ("max_pixels", "max_message_bytes"):
            if getattr(self, key) < 1:
                out.append(f"[server].{key}: must be positive")
        for key in ("workers", "max_inflight"):
            if getattr(self, key) < 0:
                out.append(f"[server].{key}: must be >= 0 (0: automatic)")
        if self.stream_depth < 1:
            out.append("[server].stream_depth: must be >= 1")
        if self.http_listen:
            host, sep, port = self.http_listen.rpartition(":")
            if not sep or not host or not port.isdigit():
                out.append(f"[server].http_listen: {self.http_listen!r} is not HOST:PORT")
            if self.tls_allowed_clients:
                out.append(
                    "[server].http_listen: the HTTP listener cannot check client certificate "
                    "names (tls_allowed_clients); use tokens, or a proxy that checks them"
                )
        for key in ("tasks_max", "tasks_max_bytes", "upload_max_bytes", "tasks_parallel"):
            if getattr(self, key) < 1:
                out.append(f"[server].{key}: must be positive")
        if self.tasks_ttl <= 0:
            out.append("[server].tasks_ttl: must be positive (seconds)")
        if self.webhook_attempts < 1:
            out.append("[server].webhook_attempts: must be >= 1")
        if self.grace_period < 0 or self.stuck_timeout <= 0:
            out.append("[server].grace_period / stuck_timeout: must be positive")
        return out

    @property
    def mode(self) -> int:
        return int(self.socket_mode, 8)

    @property
    def worker_count(self) -> int:
        return self.workers or os.cpu_count() or 1

    @property
    def inflight_limit(self) -> int:
        return self.max_inflight or 4 * self.worker_count


@dataclass(frozen=True)
class Config:
    backend: BackendConfig = field(default_factory=BackendConfig)
    detector: DetectorConfig = field(default_factory=DetectorConfig)
    cache_dir: Path = field(default_factory=default_cache_dir)
    models: Mapping[str, ModelSpec] = field(default_factory=load_manifest)
    server: ServerConfig = field(default_factory=ServerConfig)

    def store(self) -> ModelStore:
        return ModelStore(self.cache_dir, self.models)


def _check_type(cls: type[Any], key: str, value: Any, where: str) -> str | None:
    """A message if ``value`` does not fit the field's default type, else None."""
    f = next(f for f in dataclasses.fields(cls) if f.name == key)
    if f.default is not dataclasses.MISSING:
        default = f.default
    elif f.default_factory is not dataclasses.MISSING:
        default = f.default_factory()
    else:
        return None
    if default is None or isinstance(default, Mapping):
        return None
    if isinstance(default, bool):
        ok = isinstance(value, bool)
    elif isinstance(default, int):
        ok = isinstance(value, int) and not isinstance(value, bool)
    elif isinstance(default, float):
        ok = isinstance(value, int | float) and not isinstance(value, bool)
    elif isinstance(default, tuple | list):
        ok = isinstance(value, list | tuple)
    else:
        ok = isinstance(value, type(default))
    if ok:
        return None
    return f"[{where}].{key}: expected {type(default).__name__}, got {value!r}"


def _dataclass_from(cls: type[Any], table: Mapping[str, Any], where: str, errors: list[str]) -> Any:
    """Builds ``cls`` from a table; every problem is appended to ``errors`` (None returned)."""
    if not isinstance(table, Mapping):
        errors.append(f"[{where}]: expected a table, got {table!r}")
        return None
    names = {f.name for f in dataclasses.fields(cls)}
    failed = False
    for key in sorted(set(table) - names):
        errors.append(f"[{where}].{key}: unknown key (known: {', '.join(sorted(names))})")
        failed = True
    for key in sorted(set(table) & names):
        problem = _check_type(cls, key, table[key], where)
        if problem:
            errors.append(problem)
            failed = True
    bad = {m.split(":")[0].rsplit(".", 1)[-1] for m in errors if m.startswith(f"[{where}].")}
    values = {
        k: tuple(v) if isinstance(v, list) else v
        for k, v in table.items()
        if k in names and k not in bad
    }
    try:
        built = cls(**values)  # the keys that typed well: their values are checked too
    except (TypeError, ValueError, ConfigError) as exc:
        for part in str(exc).split("; "):
            errors.append(part if part.startswith("[") else f"[{where}]: {part}")
        return None
    return None if failed else built


def _classes_table(table: Mapping[str, Any], where: str) -> dict[ObjectClass, float]:
    out = {}
    for label, value in table.items():
        try:
            cls = ObjectClass.from_label(label)
        except ValueError as exc:
            raise ConfigError(f"[{where}]: {exc}") from None
        if not isinstance(value, int | float):
            raise ConfigError(f"[{where}].{label}: a number, got {value!r}")
        out[cls] = float(value)
    return out


_SECTIONS = {"store", "backend", "detector", "models", "server"}


def config_errors(data: Mapping[str, Any]) -> tuple[Config | None, list[str]]:
    """The configuration and every problem found in it, each naming its key."""
    errors: list[str] = []
    for section in sorted(set(data) - _SECTIONS):
        errors.append(f"[{section}]: unknown section (known: {', '.join(sorted(_SECTIONS))})")
    backend = _dataclass_from(BackendConfig, data.get("backend", {}), "backend", errors)
    det_table = dict(data.get("detector", {}))
    for key in ("thresholds", "nms_iou"):
        if key in det_table:
            try:
                det_table[key] = _classes_table(det_table[key], f"detector.{key}")
            except ConfigError as exc:
                errors.append(str(exc))
                det_table.pop(key)
    detector = _dataclass_from(DetectorConfig, det_table, "detector", errors)
    server = _dataclass_from(ServerConfig, data.get("server", {}), "server", errors)
    models = load_manifest()
    for name, table in data.get("models", {}).items():
        try:
            models[name] = parse_model(name, table, "models")
        except ConfigError as exc:
            errors.append(str(exc))
    store = data.get("store", {})
    for key in sorted(set(store) - {"cache_dir"}):
        errors.append(f"[store].{key}: unknown key (known: cache_dir)")
    cache_dir = (
        Path(store["cache_dir"]).expanduser() if "cache_dir" in store else default_cache_dir()
    )
    if errors:
        return None, errors
    config = Config(
        backend=backend, detector=detector, cache_dir=cache_dir, models=models, server=server
    )
    return config, []


def parse_config(data: Mapping[str, Any]) -> Config:
    config, errors = config_errors(data)
    if config is None:
        raise ConfigError("; ".join(errors))
    return config


_LIST_KEYS = {("server", "listen")}


def env_overrides(environ: Mapping[str, str]) -> dict[str, dict[str, Any]]:
    """``OBSCURA_<SECTION>_<KEY>`` variables as a partial configuration."""
    out: dict[str, dict[str, Any]] = {}
    for name, raw in environ.items():
        if not name.startswith("OBSCURA_"):
            continue
        rest = name[len("OBSCURA_") :].lower()
        section, _, key = rest.partition("_")
        if section not in ("backend", "detector", "server", "store") or not key:
            continue  # OBSCURA_MODEL_DIR, OBSCURA_TEST_DATA and the like are read elsewhere
        if (section, key) in _LIST_KEYS:
            value: Any = [v.strip() for v in raw.split(",") if v.strip()]
        else:
            try:
                value = tomllib.loads(f"v = {raw}")["v"]
            except tomllib.TOMLDecodeError:
                value = raw
        out.setdefault(section, {})[key] = value
    return out


def merge(base: Mapping[str, Any], extra: Mapping[str, Any]) -> dict[str, Any]:
    out = {k: dict(v) if isinstance(v, Mapping) else v for k, v in base.items()}
    for section, table in extra.items():
        out.setdefault(section, {}).update(table)
    return out


def read_config_data(path: Path | None) -> dict[str, Any]:
    if path is None:
        return {}
    try:
        return tomllib.loads(path.read_text())
    except OSError as exc:
        raise ConfigError(f"cannot read config {path}: {exc.strerror}") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: {exc}") from None


def load_config(
    path: Path | None,
    *,
    environ: Mapping[str, str] | None = None,
    defaults: Mapping[str, Mapping[str, Any]] | None = None,
    overrides: Mapping[str, Mapping[str, Any]] | None = None,
) -> Config:
    """``defaults`` (a command's own), then the file (if any), then ``OBSCURA_*`` environment
    variables, then ``overrides`` (flags)."""
    data = merge(defaults or {}, read_config_data(path))
    data = merge(data, env_overrides(os.environ if environ is None else environ))
    data = merge(data, overrides or {})
    config, errors = config_errors(data)
    if config is None:
        where = f"{path}: " if path else ""
        raise ConfigError(where + "; ".join(errors))
    return config
