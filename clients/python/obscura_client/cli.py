"""``obscura-client``: the commands a gateway runs against daemons (anonymize, stream, watch,
health, info). The daemon distribution's ``obscura`` command builds the same subcommands from
here and adds the in-process pipeline to ``anonymize`` and ``watch``."""

from __future__ import annotations

import argparse
import json
import logging
import signal
import sys
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from obscura_client import __version__
from obscura_client.errors import ObscuraError
from obscura_client.types import ObjectClass
from obscura_client.wire import (
    DEFAULT_CLASSES,
    DEFAULT_ENLARGE,
    DEFAULT_TRACK_HOLD,
    Method,
    Options,
    SaveMask,
    Zone,
    ZoneKind,
    parse_colour,
    parse_points,
)

if TYPE_CHECKING:
    from obscura_client.batch import Engine
    from obscura_client.client import Client

log = logging.getLogger("obscura")

_DEFAULT = Options()
SERVER_HELP = (
    "the daemon at ADDR (unix:///run/obscura/obscura.sock, HOST:PORT, dns:///NAME:PORT, or "
    "several IP:PORT separated by commas, balanced round-robin; frames a daemon leaves "
    "unanswered go to another)"
)


@dataclass(frozen=True)
class HelpDefaults:
    """What the help texts name as defaults: the daemon's own values where the command runs the
    pipeline itself, the API's otherwise."""

    thresholds: str = "the daemon's"
    enlarge: Mapping[ObjectClass, float] = field(default_factory=lambda: dict(DEFAULT_ENLARGE))


def per_class(values: Mapping[ObjectClass, float]) -> str:
    return ", ".join(f"{cls.label} {values[cls]:g}" for cls in ObjectClass if cls in values)


# --- argument types ---------------------------------------------------------------------------
def classes_arg(text: str) -> list[ObjectClass]:
    try:
        return [ObjectClass.from_label(t.strip()) for t in text.split(",") if t.strip()]
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _pairs(text: str, value_type: str) -> dict[ObjectClass, str]:
    out: dict[ObjectClass, str] = {}
    for item in text.split(","):
        if not item.strip():
            continue
        label, sep, value = item.partition("=")
        if not sep:
            raise argparse.ArgumentTypeError(f"{item!r} is not CLASS={value_type}")
        try:
            out[ObjectClass.from_label(label.strip())] = value.strip()
        except ValueError as exc:
            raise argparse.ArgumentTypeError(str(exc)) from None
    return out


def _methods(text: str) -> dict[ObjectClass | None, Method]:
    """``blur`` (every chosen class) or ``face=pixelate,vehicle=detect``."""
    known = ", ".join(m.value for m in Method)
    try:
        if "=" not in text:
            return {None: Method(text.strip())}
        return {cls: Method(v) for cls, v in _pairs(text, "METHOD").items()}
    except ValueError:
        raise argparse.ArgumentTypeError(f"unknown method in {text!r} (known: {known})") from None


def _class_floats(text: str) -> dict[ObjectClass, float]:
    out = {}
    for cls, value in _pairs(text, "NUMBER").items():
        try:
            out[cls] = float(value)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{value!r} is not a number") from None
    return out


def int_in(low: int, high: int, unit: str = "") -> Callable[[str], int]:
    """An argparse type: an integer in ``low..high``."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not an integer") from None
        if not low <= value <= high:
            raise argparse.ArgumentTypeError(f"must be in {low}..{high}{unit}, got {value}")
        return value

    return parse


# --- option groups ----------------------------------------------------------------------------
def add_client_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--token-file", type=Path, help="file holding the bearer token to send")
    p.add_argument("--tls-ca", type=Path, help="CA certificate (PEM) to verify the daemon's TLS")
    p.add_argument("--tls-cert", type=Path, help="client certificate (PEM) for mutual TLS")
    p.add_argument("--tls-key", type=Path, help="client key (PEM) for mutual TLS")
    p.add_argument("--server-name", help="expected name in the daemon's certificate")


def add_anonymize_options(an: argparse.ArgumentParser, defaults: HelpDefaults) -> None:
    an.add_argument(
        "--privacy-zone",
        action="append",
        default=[],
        metavar="POINTS",
        help='a polygon always hidden, in pixels: "X,Y X,Y X,Y ..." (repeatable)',
    )
    an.add_argument(
        "--ignore-zone",
        action="append",
        default=[],
        metavar="POINTS",
        help='a polygon where detections are ignored (box centre inside): "X,Y X,Y X,Y ..."',
    )
    an.add_argument(
        "--zone-method",
        choices=["blur", "pixelate", "blacken"],
        default="blur",
        help="how privacy zones are hidden (default blur)",
    )
    an.add_argument(
        "--detect-every",
        type=int,
        default=1,
        metavar="N",
        help="videos: run the detectors on every N-th frame only and hide the tracked objects "
        "in between (weak devices; needs tracking; default 1: every frame)",
    )
    an.add_argument(
        "--track-hold",
        type=int,
        default=DEFAULT_TRACK_HOLD,
        metavar="N",
        help="videos: follow objects across frames and keep hiding one the detector lost for up "
        'to N frames, reported as source "track" in metadata (default '
        f"{DEFAULT_TRACK_HOLD}; 0: every frame on its own)",
    )
    an.add_argument(
        "-a",
        "--anonymize",
        type=classes_arg,
        action="extend",
        help=f"comma-separated classes to anonymize (default {','.join(DEFAULT_CLASSES)})",
    )
    an.add_argument(
        "-m",
        "--method",
        type=_methods,
        action="append",
        default=[],
        help="blur (default), pixelate, blacken or detect; or CLASS=METHOD pairs such as "
        "face=pixelate,vehicle=detect (a class named only here is added)",
    )
    an.add_argument(
        "-t",
        "--threshold",
        type=_class_floats,
        action="append",
        default=[],
        help=f"CLASS=SCORE pairs for chosen classes, e.g. face=0.2 (defaults: "
        f"{defaults.thresholds})",
    )
    an.add_argument(
        "--save-mask",
        choices=[m.value for m in SaveMask],
        default=_DEFAULT.save_mask,
        help=f"which masks to write (default {_DEFAULT.save_mask}: metadata only; all: both)",
    )
    an.add_argument(
        "--mask-scale",
        type=int_in(1, 100, " (percent)"),
        default=_DEFAULT.mask_scale,
        help="masks at this percent of the image size, nearest-neighbour "
        f"(1..100, default {_DEFAULT.mask_scale})",
    )
    an.add_argument(
        "--mask-encoding",
        choices=["celantur", "celantur-v26"],
        default=_DEFAULT.mask_encoding,
        help="instance mask: R = class code, G = instance (celantur, default); or G = instance, "
        "B = class bit flags (celantur-v26)",
    )
    an.add_argument("--bbox", action="store_true", help="hide boxes for every class")
    an.add_argument(
        "--enlarge",
        type=_class_floats,
        action="append",
        default=[],
        help="CLASS=FACTOR box enlargement before hiding, for chosen classes "
        f"(defaults: {per_class(defaults.enlarge)})",
    )
    an.add_argument(
        "--fill-color", default="0,0,0", help="blacken colour as R,G,B or #RRGGBB (default black)"
    )
    an.add_argument(
        "--quality",
        type=int_in(1, 100),
        default=_DEFAULT.quality,
        help=f"JPEG / WebP / video quality (default {_DEFAULT.quality})",
    )
    an.add_argument(
        "--ins-mask-suffix",
        default="_ins_mask",
        help="file name suffix of instance masks (default _ins_mask; Celantur's page spells it "
        "_ins_maks)",
    )


def wire_options(args: argparse.Namespace) -> Options:
    """Every anonymize option of the command line as the wire's options: what is sent to a
    daemon, and what the pipeline runs with in process."""
    method = Method.BLUR
    class_methods: dict[ObjectClass, Method] = {}
    for item in args.method:
        for cls, m in item.items():
            if cls is None:
                method = m
            else:
                class_methods[cls] = m
    chosen = (
        [c.label for c in args.anonymize] if args.anonymize is not None else list(DEFAULT_CLASSES)
    )
    classes: dict[str, Method] = dict.fromkeys(chosen, method)
    classes.update({cls.label: m for cls, m in class_methods.items()})
    fill = parse_colour(args.fill_color)
    return Options(
        classes=classes,
        thresholds={k.label: v for item in args.threshold for k, v in item.items()},
        enlarge={k.label: v for item in args.enlarge for k, v in item.items()},
        bbox=args.bbox,
        save_mask=args.save_mask,
        mask_scale=args.mask_scale,
        mask_encoding=args.mask_encoding,
        quality=args.quality,
        fill_color=None if fill == (0, 0, 0) else fill,
        track_hold=args.track_hold,
        detect_every=args.detect_every,
        zones=tuple(
            Zone(kind, parse_points(text), Method(args.zone_method))
            for kind, texts in (
                (ZoneKind.PRIVACY, args.privacy_zone),
                (ZoneKind.IGNORE, args.ignore_zone),
            )
            for text in texts
        ),
    )


def client_from_args(args: argparse.Namespace, address: str) -> Client:
    from obscura_client.client import Client

    token = None
    if args.token_file:
        try:
            token = args.token_file.read_text().strip().splitlines()[0].strip()
        except (OSError, IndexError):
            raise ObscuraError(f"cannot read a token from {args.token_file}") from None
    addresses = [a.strip() for a in address.split(",") if a.strip()]
    return Client(
        addresses if len(addresses) > 1 else address,
        token=token,
        tls_ca=args.tls_ca,
        tls_cert=args.tls_cert,
        tls_key=args.tls_key,
        server_name=args.server_name,
    )


# --- the commands -----------------------------------------------------------------------------
# How a command gets its engine: the daemon's (here), or the pipeline in process (``obscura``).
EngineFactory = Callable[[argparse.Namespace, Options], "Engine"]


def remote_engine(args: argparse.Namespace, options: Options) -> Engine:
    from obscura_client.batch import RemoteEngine

    if not args.server:
        raise ObscuraError("--server is needed (the daemon to send the files to)")
    return RemoteEngine(client_from_args(args, args.server), options)


def cmd_anonymize(args: argparse.Namespace, make_engine: EngineFactory = remote_engine) -> int:
    from obscura_client.batch import BatchRunner, print_summary

    engine = make_engine(args, wire_options(args))
    try:
        runner = BatchRunner(
            engine,
            args.output,
            progress=False if args.no_progress else None,
            ins_suffix=args.ins_mask_suffix,
        )
        summary = runner.run(args.inputs)
    finally:
        engine.close()
    print_summary(summary)
    print(f"outputs: {args.output}")
    return 1 if summary.errors else 0


def _stop_on_signals() -> threading.Event:
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    return stop


def cmd_watch(args: argparse.Namespace, make_engine: EngineFactory = remote_engine) -> int:
    from obscura_client.batch import BatchRunner
    from obscura_client.watch import Watcher

    engine = make_engine(args, wire_options(args))
    runner = BatchRunner(engine, args.output, progress=False, ins_suffix=args.ins_mask_suffix)
    watcher = Watcher(runner, args.in_dir, done=args.done, settle=args.settle, poll=args.poll)
    stop = _stop_on_signals()
    log.info("watching %s", args.in_dir)
    try:
        if args.once:
            watcher.complete_files()  # a first look; files unchanged after --settle are done
            time.sleep(args.settle)
            watcher.run_once()
        else:
            watcher.run(stop)
    finally:
        engine.close()
    return 0


def cmd_stream(args: argparse.Namespace) -> int:
    from obscura_client.live import run_live, stats_text

    options = wire_options(args)
    if options.save_mask != "none":
        raise ObscuraError("stream: segments carry no masks; --save-mask must be none")
    stop = _stop_on_signals()
    with client_from_args(args, args.server) as client:
        stats = run_live(
            client,
            args.source,
            args.output,
            options,
            name=args.name,
            segment_seconds=args.segment_seconds,
            in_flight=args.in_flight,
            max_frames=args.max_frames,
            stop=stop,
        )
    print(stats_text(stats))
    return 0


def cmd_health(args: argparse.Namespace) -> int:
    with client_from_args(args, args.server) as client:
        try:
            status = client.health(args.service, timeout=args.timeout)
        except ObscuraError as exc:
            print(f"{args.prog}: {args.server}: {exc}", file=sys.stderr)
            return 1
    print(status)
    return 0 if status == "SERVING" else 1


def cmd_info(args: argparse.Namespace) -> int:
    from google.protobuf.json_format import MessageToDict

    with client_from_args(args, args.server) as client:
        info = client.info()
    print(json.dumps(MessageToDict(info), indent=2))
    return 0


ANONYMIZE_DESCRIPTION = (
    "Anonymize image and video files, or folders of them (walked recursively; the output "
    "tree mirrors the input tree). Writes <stem>.<ext> (same format) and <stem>.json per "
    "image, with --save-mask also <stem>_bin_mask.png and <stem>_ins_mask.png; per video, "
    "the anonymized video (audio copied), <stem>-<first>-<last>.json metadata chunks of 500 "
    "frames and, with --save-mask, <stem>_bin_mask.mkv / <stem>_ins_mask.mkv (lossless "
    "FFV1). Exit status 1 if any file failed."
)
WATCH_DESCRIPTION = (
    "Anonymize every image or video that appears under IN_DIR (once it has stopped changing "
    "for --settle seconds) into OUT_DIR, mirroring the tree, then move it to "
    "IN_DIR/.processed/ (or delete it). Files the pipeline refuses go to IN_DIR/.failed/ with "
    "an .error.txt note; files that fail for a passing reason (the daemon away or busy) are "
    "tried again. Outputs are written under temporary names and renamed, inputs moved only "
    "afterwards: after a crash or restart nothing is lost or duplicated. SIGTERM finishes the "
    "current file and exits 0."
)
STREAM_DESCRIPTION = (
    "Read a live source (rtsp://, http://, a device such as /dev/video0, or a file) with "
    "PyAV, anonymize its frames through the daemon, and write rolling H.264 segments "
    "<name>-<n>.mkv with their metadata chunks and a status file each. A dropped source is "
    "reopened with backoff; frames are never reordered; frames the source skipped are "
    "counted; frames the daemon could not anonymize are left out and counted. The anonymize "
    "options apply as in `anonymize`, but segments carry no masks (--save-mask none). A "
    "daemon away or busy is retried with backoff. SIGTERM ends the run cleanly."
)


def add_anonymize_command(
    sub: argparse._SubParsersAction[argparse.ArgumentParser],
    defaults: HelpDefaults,
    *,
    server_required: bool,
) -> argparse.ArgumentParser:
    an = sub.add_parser(
        "anonymize",
        help="anonymize images and videos into an output folder (masks and metadata too)",
        description=ANONYMIZE_DESCRIPTION,
    )
    an.set_defaults(handler=cmd_anonymize)
    an.add_argument("inputs", nargs="+", type=Path, metavar="INPUT", help="files or folders")
    an.add_argument("-o", "--output", type=Path, required=True, help="output folder")
    add_anonymize_options(an, defaults)
    an.add_argument("--no-progress", action="store_true", help="no progress bar")
    an.add_argument(
        "--server",
        metavar="ADDR",
        required=server_required,
        help="use " + SERVER_HELP + ("" if server_required else " instead of running here"),
    )
    add_client_options(an)
    return an


def add_watch_command(
    sub: argparse._SubParsersAction[argparse.ArgumentParser],
    defaults: HelpDefaults,
    *,
    server_required: bool,
) -> argparse.ArgumentParser:
    wa = sub.add_parser(
        "watch",
        help="watch folder: anonymize every file that appears in IN_DIR into OUT_DIR",
        description=WATCH_DESCRIPTION,
    )
    wa.set_defaults(handler=cmd_watch)
    wa.add_argument("in_dir", type=Path, metavar="IN_DIR")
    wa.add_argument("output", type=Path, metavar="OUT_DIR")
    wa.add_argument("--done", choices=["move", "delete"], default="move", help="processed inputs")
    wa.add_argument("--settle", type=float, default=2.0, help="seconds unchanged (default 2)")
    wa.add_argument("--poll", type=float, default=1.0, help="seconds between scans (default 1)")
    wa.add_argument("--once", action="store_true", help="process what is complete now, then exit")
    add_anonymize_options(wa, defaults)
    wa.add_argument(
        "--server",
        metavar="ADDR",
        required=server_required,
        help="daemon address(es), as for anonymize",
    )
    add_client_options(wa)
    return wa


def add_remote_commands(
    sub: argparse._SubParsersAction[argparse.ArgumentParser], defaults: HelpDefaults
) -> None:
    """``stream``, ``health`` and ``info``: the commands that only talk to daemons."""
    st = sub.add_parser(
        "stream",
        help="a live source (camera URL, device, file) through the daemon into segments",
        description=STREAM_DESCRIPTION,
    )
    st.set_defaults(handler=cmd_stream)
    st.add_argument("source", help="camera URL, device or file")
    st.add_argument("-o", "--output", type=Path, required=True, help="output folder")
    st.add_argument("--server", metavar="ADDR", required=True, help="daemon address(es)")
    st.add_argument("--name", default="stream", help="segment file name prefix")
    st.add_argument("--segment-seconds", type=float, default=60.0, help="segment length")
    st.add_argument("--in-flight", type=int, default=4, help="frames in flight to the daemon")
    st.add_argument("--max-frames", type=int, help="stop after this many frames")
    add_anonymize_options(st, defaults)
    add_client_options(st)

    hc = sub.add_parser("health", help="ask a daemon whether it is SERVING (exit 0 if so)")
    hc.set_defaults(handler=cmd_health)
    hc.add_argument("--server", metavar="ADDR", required=True, help="daemon address")
    hc.add_argument("--service", default="", help="service name (default: the whole daemon)")
    hc.add_argument("--timeout", type=float, default=5.0, help="seconds (default 5)")
    add_client_options(hc)

    inf = sub.add_parser("info", help="a daemon's version, models, options and limits (JSON)")
    inf.set_defaults(handler=cmd_info)
    inf.add_argument("--server", metavar="ADDR", required=True, help="daemon address")
    add_client_options(inf)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="obscura-client",
        description="Send images, videos, watch folders and live sources to Obscura daemons.",
    )
    parser.add_argument("--version", action="version", version=f"obscura-client {__version__}")
    parser.add_argument("-v", "--verbose", action="count", default=0, help="log to stderr")
    sub = parser.add_subparsers(dest="command", required=True)
    defaults = HelpDefaults()
    add_anonymize_command(sub, defaults, server_required=True)
    add_watch_command(sub, defaults, server_required=True)
    add_remote_commands(sub, defaults)
    return parser


def run(parser: argparse.ArgumentParser, argv: Sequence[str] | None) -> int:
    """Parses, sets up logging, runs the chosen command's handler; an ObscuraError is a
    message and exit status 2."""
    args = parser.parse_args(argv)
    args.prog = parser.prog
    logging.basicConfig(
        level=logging.INFO if args.verbose else logging.WARNING,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    if args.verbose > 1:
        logging.getLogger("obscura").setLevel(logging.DEBUG)
    try:
        return int(args.handler(args))
    except ObscuraError as exc:
        print(f"{parser.prog}: error: {exc}", file=sys.stderr)
        return 2


def main(argv: Sequence[str] | None = None) -> int:
    return run(build_parser(), argv)


if __name__ == "__main__":
    sys.exit(main())
