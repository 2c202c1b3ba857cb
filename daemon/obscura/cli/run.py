"""``obscura detect``, ``anonymize`` and ``watch`` (in this process, or through a daemon with
``--server``), and the remote commands the client package shares."""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from obscura.cli.common import HELP_DEFAULTS, add_runtime_options, config_from, load_detector
from obscura.types import ObjectClass
from obscura_client import cli as remote

if TYPE_CHECKING:
    from obscura_client.batch import Engine
    from obscura_client.wire import Options


def add_detect(sub: Any) -> None:
    """``detect``: JSON detections of images."""
    detect = sub.add_parser("detect", help="detect objects in images; prints JSON")
    detect.set_defaults(handler=_cmd_detect)
    detect.add_argument("images", nargs="+", type=Path)
    add_runtime_options(detect)


def add_anonymize(sub: Any) -> None:
    """``anonymize``: files and folders, here or through a daemon."""
    an = remote.add_anonymize_command(sub, HELP_DEFAULTS, server_required=False)
    an.set_defaults(handler=_cmd_anonymize)
    add_runtime_options(an, classes=False)


def add_watch_and_remote(sub: Any) -> None:
    """``watch``, and the commands that only talk to a daemon (``health``, ``info``, ...)."""
    wa = remote.add_watch_command(sub, HELP_DEFAULTS, server_required=False)
    wa.set_defaults(handler=_cmd_watch)
    add_runtime_options(wa, classes=False)
    remote.add_remote_commands(sub, HELP_DEFAULTS)


def _cmd_detect(args: argparse.Namespace) -> int:
    from obscura.imageio import read_image

    detector = load_detector(config_from(args))
    out = []
    for path in args.images:
        image = read_image(path)
        start = time.perf_counter()
        det = detector.detect(image, args.classes)
        elapsed = time.perf_counter() - start
        out.append({
            "filename": path.name,
            "size": [int(image.shape[1]), int(image.shape[0])],
            "duration": round(elapsed, 4),
            "detections": [
                {"id": i, "bbox": [round(float(v)) for v in det.xyxy[i]],
                 "score": round(float(det.scores[i]), 4),
                 "type_label": ObjectClass(int(det.class_ids[i])).label,
                 "has_mask": det.mask_at(i) is not None}
                for i in range(len(det))
            ],
        })  # fmt: skip
    print(json.dumps(out, indent=2))
    return 0


def _engine(args: argparse.Namespace, options: Options) -> Engine:
    """The daemon's engine with ``--server``, else the pipeline in this process."""
    if args.server:
        return remote.remote_engine(args, options)
    from obscura.local import LocalEngine
    from obscura.pipeline.frame import FrameProcessor
    from obscura.pipeline.options import AnonymizeOptions

    AnonymizeOptions.from_wire(options)  # every value checked here, before the models load
    return LocalEngine(FrameProcessor(load_detector(config_from(args))), options)


def _cmd_anonymize(args: argparse.Namespace) -> int:
    return remote.cmd_anonymize(args, _engine)


def _cmd_watch(args: argparse.Namespace) -> int:
    return remote.cmd_watch(args, _engine)
