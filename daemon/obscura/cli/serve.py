"""``obscura serve`` (the daemon) and ``obscura config check``."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from obscura.cli.common import SERVER, add_runtime_options, config_from
from obscura.errors import ObscuraError


def add_serve(sub: Any) -> None:
    """``serve``: every [server] key that has a flag."""
    sv = sub.add_parser(
        "serve",
        help="run the daemon (gRPC API, health, reflection, Prometheus metrics)",
        description=(
            "Run the anonymization daemon. Settings come from --config (TOML, [server] and the "
            "other sections), then OBSCURA_<SECTION>_<KEY> environment variables, then these "
            "flags. Listens on a Unix socket by default; TCP only where configured. Health is "
            "NOT_SERVING until the models are loaded and warmed up, and again while draining "
            "after SIGTERM."
        ),
    )
    sv.set_defaults(handler=_cmd_serve)
    sv.add_argument(
        "--listen",
        action="append",
        metavar="ADDR",
        help="unix:///PATH or HOST:PORT; repeatable (default: a Unix socket in the runtime "
        "directory)",
    )
    sv.add_argument(
        "--metrics-listen",
        metavar="HOST:PORT",
        help=f"Prometheus exposition address (default {SERVER.metrics_listen}; '' turns it off)",
    )
    sv.add_argument("--workers", type=int, help="pipeline threads (default: one per core)")
    sv.add_argument("--max-inflight", type=int, help="frames queued or running before refusing")
    sv.add_argument(
        "--stream-depth",
        type=int,
        help=f"frames in flight per stream (default {SERVER.stream_depth})",
    )
    sv.add_argument("--max-pixels", type=int, help="largest image accepted (pixels)")
    sv.add_argument("--max-message-bytes", type=int, help="largest gRPC message (bytes)")
    sv.add_argument(
        "--grace-period",
        type=float,
        help=f"seconds to drain on SIGTERM (default {SERVER.grace_period:g})",
    )
    sv.add_argument(
        "--socket-mode", help=f"file mode of Unix sockets, octal (default {SERVER.socket_mode})"
    )
    sv.add_argument("--tls-cert", help="server certificate (PEM): TLS on TCP listeners")
    sv.add_argument("--tls-key", help="server key (PEM)")
    sv.add_argument("--tls-client-ca", help="CA (PEM) for mutual TLS: clients need certificates")
    sv.add_argument("--tokens-file", help="bearer tokens, one per line: clients must send one")
    sv.add_argument(
        "--http-listen",
        metavar="HOST:PORT",
        help="also serve the REST API (Celantur Container API v1) here (default: off)",
    )
    sv.add_argument(
        "--tasks-dir",
        metavar="DIR",
        help="REST uploads and results (default: $STATE_DIRECTORY/tasks or "
        "~/.local/state/obscura/tasks)",
    )
    sv.add_argument("--no-warmup", action="store_true", help="report SERVING without a warm-up")
    add_runtime_options(sv, classes=False)


def add_config(sub: Any) -> None:
    """``config check``."""
    cfg = sub.add_parser("config", help="configuration files")
    csub = cfg.add_subparsers(dest="config_command", required=True)
    chk = csub.add_parser("check", help="validate a TOML configuration; every error with its key")
    chk.set_defaults(handler=_cmd_config_check)
    chk.add_argument("file", type=Path)


def _cmd_serve(args: argparse.Namespace) -> int:
    from obscura.server.app import serve

    # The daemon runs several frames at once: THROUGHPUT (one OpenVINO stream per worker
    # group) measured faster than LATENCY there; the file, environment or flags may still
    # choose LATENCY.
    return serve(config_from(args, defaults={"backend": {"hint": "THROUGHPUT"}}))


def _cmd_config_check(args: argparse.Namespace) -> int:
    from obscura.config import config_errors, read_config_data

    try:
        data = read_config_data(args.file)
    except ObscuraError as exc:
        print(f"obscura: error: {exc}", file=sys.stderr)
        return 2
    _, errors = config_errors(data)
    if errors:
        for error in errors:
            print(f"{args.file}: {error}", file=sys.stderr)
        return 2
    print(f"{args.file}: OK")
    return 0
