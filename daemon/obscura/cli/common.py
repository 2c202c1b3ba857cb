"""What the command groups share: runtime options, the configuration they load, the detector."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import TYPE_CHECKING

from obscura.config import Config, ServerConfig, load_config
from obscura.pipeline.settings import DEFAULT_THRESHOLDS
from obscura.types import ObjectClass
from obscura_client.cli import HelpDefaults, classes_arg, per_class

if TYPE_CHECKING:
    from obscura.pipeline.detect import Detector

CLASS_LABELS = [c.label for c in ObjectClass]
# Help texts state the defaults the code uses: the pipeline's, as it runs here.
HELP_DEFAULTS = HelpDefaults(thresholds=per_class(DEFAULT_THRESHOLDS))
SERVER = ServerConfig(listen=("unix:///run/obscura.sock",))


def add_runtime_options(p: argparse.ArgumentParser, *, classes: bool = True) -> None:
    p.add_argument("--config", type=Path, help="TOML configuration file")
    p.add_argument(
        "--runtime",
        choices=["openvino", "onnxruntime"],
        help="inference runtime (default openvino)",
    )
    p.add_argument("--device", help="OpenVINO: CPU, GPU, AUTO; ONNX Runtime: cuda, auto, cpu")
    if not classes:
        return
    p.add_argument(
        "--classes",
        type=classes_arg,
        default=list(ObjectClass),
        help=f"comma-separated classes to detect (default all: {','.join(CLASS_LABELS)})",
    )


SERVER_FLAGS = (
    "listen",
    "metrics_listen",
    "http_listen",
    "tasks_dir",
    "workers",
    "max_inflight",
    "stream_depth",
    "max_pixels",
    "max_message_bytes",
    "grace_period",
    "socket_mode",
    "tls_cert",
    "tls_key",
    "tls_client_ca",
    "tokens_file",
)


def config_from(
    args: argparse.Namespace, defaults: dict[str, dict[str, object]] | None = None
) -> Config:
    overrides: dict[str, dict[str, object]] = {}
    if getattr(args, "runtime", None):
        overrides.setdefault("backend", {})["runtime"] = args.runtime
    if getattr(args, "device", None):
        overrides.setdefault("backend", {})["device"] = args.device
    for key in SERVER_FLAGS:
        value = getattr(args, key, None)
        if value is not None:
            overrides.setdefault("server", {})[key] = value
    if getattr(args, "no_warmup", False):
        overrides.setdefault("server", {})["warmup"] = False
    return load_config(getattr(args, "config", None), defaults=defaults, overrides=overrides)


def load_detector(config: Config) -> Detector:
    from obscura.backends import create_backend
    from obscura.pipeline.detect import Detector

    return Detector(config.store(), create_backend(config.backend), config.detector)
