"""The ``obscura`` command line: one module per command group, each adding its commands with
their handlers (``set_defaults(handler=...)``); :func:`main` parses and runs the chosen one."""

from __future__ import annotations

import argparse
from collections.abc import Sequence

from obscura import __version__
from obscura.cli import models, run, serve, tools
from obscura_client import cli as remote


def _build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="obscura",
        description="Detect and anonymize faces, license plates, persons and vehicles.",
    )
    parser.add_argument("--version", action="version", version=f"obscura {__version__}")
    parser.add_argument(
        "-v",
        "--verbose",
        action="count",
        default=0,
        help="log progress to stderr; -vv: Obscura's debug log too (the daemon logs the "
        "options each call and stream runs with)",
    )
    sub = parser.add_subparsers(dest="command", required=True)

    models.add_models(sub)
    models.add_samples(sub)
    tools.add_plates(sub)
    run.add_detect(sub)
    run.add_anonymize(sub)
    serve.add_serve(sub)
    run.add_watch_and_remote(sub)
    tools.add_bench(sub)
    tools.add_flicker(sub)
    serve.add_config(sub)
    tools.add_eval(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    return remote.run(_build_parser(), argv)
