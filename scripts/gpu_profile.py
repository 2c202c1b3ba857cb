"""Where the default job's time goes on ONNX Runtime's CUDA provider, in-process.

Runs the default job (faces and plates) on the first frames of a clip, frame by frame in one
thread, with one session per model and with one session per model and input shape (what the
backend does on CUDA): a first pass (new input shapes) and a second pass over the same frames
(shapes seen). Then profiles each model on the inputs the pipeline gave it (ONNX Runtime's
profiler: time per operator type and execution provider). Writes OUT/gpu_profile.json.

    python3 scripts/gpu_profile.py OUT --model-dir DIR --clip CLIP [--device cuda]
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

import cv2
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "daemon"))

from obscura.backends import BackendConfig, create_backend
from obscura.backends import onnxruntime as ort_backend
from obscura.pipeline.detect import Detector
from obscura.pipeline.frame import FrameProcessor
from obscura.pipeline.options import AnonymizeOptions
from obscura.pipeline.settings import DetectorConfig
from obscura.zoo.store import ModelStore

VARIANTS = [  # name, one session per model (not one per input shape), num_threads
    ("one_session", True, 0),
    ("session_per_shape", False, 0),
]


def read_frames(clip: Path, count: int) -> list[Any]:
    capture = cv2.VideoCapture(str(clip))
    frames = []
    while len(frames) < count:
        ok, frame = capture.read()
        if not ok:
            break
        frames.append(frame)
    capture.release()
    return frames


class Capture:
    """Records the feeds each model gets (as its session sees them) and their shapes."""

    def __init__(self) -> None:
        self.one_session = False
        self.feeds: dict[str, list[dict[str, Any]]] = defaultdict(list)
        self.shapes: dict[str, set[tuple[int, ...]]] = defaultdict(set)
        self._infer = ort_backend.ONNXRuntimeModel.infer

    def install(self) -> None:
        capture = self

        def infer(model: Any, inputs: Any) -> Any:
            feed = {k: np.ascontiguousarray(v) for k, v in inputs.items()}
            if model.image_input is not None:
                first = model.inputs[0].name
                feed[first] = model.image_input.to_tensor(feed[first])
            shape = tuple(next(iter(feed.values())).shape)
            if shape not in capture.shapes[model.name] and len(capture.feeds[model.name]) < 6:
                capture.feeds[model.name].append(feed)
            capture.shapes[model.name].add(shape)
            key = tuple(int(d) for v in feed.values() for d in (*v.shape, -1))
            session = model._session if capture.one_session else model.session_for(key)
            return [np.asarray(o) for o in session.run(None, feed)]

        ort_backend.ONNXRuntimeModel.infer = infer  # type: ignore[method-assign]


def run_variant(
    store: ModelStore, frames: list[Any], device: str, threads: int, cap_s: float
) -> dict[str, Any]:
    backend = create_backend(
        BackendConfig(runtime="onnxruntime", device=device, num_threads=threads)
    )
    start = time.perf_counter()
    processor = FrameProcessor(Detector(store, backend, DetectorConfig()))
    out: dict[str, Any] = {"load_s": round(time.perf_counter() - start, 2)}
    options = AnonymizeOptions()
    deadline = time.perf_counter() + cap_s
    for name in ("pass1", "pass2"):
        walls: list[float] = []
        models: dict[str, float] = defaultdict(float)
        for frame in frames:
            if time.perf_counter() > deadline:
                out["capped"] = True
                break
            t0 = time.perf_counter()
            result = processor.process(frame, options)
            walls.append(time.perf_counter() - t0)
            for model, seconds in result.model_timings.items():
                models[model] += seconds
        n = max(1, len(walls))
        out[name] = {
            "frames": len(walls),
            "ms_per_frame_mean": round(1000 * float(np.mean(walls)), 1) if walls else None,
            "ms_per_frame_median": round(1000 * float(np.median(walls)), 1) if walls else None,
            "model_ms_per_frame": {k: round(1000 * v / n, 1) for k, v in models.items()},
        }
    return out


def profile_model(path: Path, feeds: list[dict[str, Any]], providers: list[Any]) -> dict[str, Any]:
    ort = ort_backend._import_onnxruntime()
    options = ort.SessionOptions()
    options.enable_profiling = True
    options.log_severity_level = 3
    with tempfile.TemporaryDirectory() as tmp:
        options.profile_file_prefix = str(Path(tmp) / "prof")
        session = ort.InferenceSession(str(path), sess_options=options, providers=providers)
        runs: list[float] = []
        for feed in feeds:
            session.run(None, feed)  # first run at a shape: set-up
            for _ in range(3):
                t0 = time.perf_counter()
                session.run(None, feed)
                runs.append(time.perf_counter() - t0)
        events = json.loads(Path(session.end_profiling()).read_text())
    by_op: dict[str, float] = defaultdict(float)
    by_provider: dict[str, float] = defaultdict(float)
    for event in events:
        if event.get("cat") != "Node" or not str(event.get("name", "")).endswith("_kernel_time"):
            continue
        args = event.get("args", {})
        key = f"{args.get('op_name', '?')}@{args.get('provider', '?')}"
        by_op[key] += event.get("dur", 0) / 1000.0
        by_provider[str(args.get("provider", "?"))] += event.get("dur", 0) / 1000.0
    top = sorted(by_op.items(), key=lambda kv: -kv[1])[:10]
    return {
        "providers": session.get_providers()[:1],
        "shapes": [list(next(iter(f.values())).shape) for f in feeds],
        "run_ms_median": round(1000 * float(np.median(runs)), 2),
        "kernel_ms_by_provider": {k: round(v, 1) for k, v in by_provider.items()},
        "top_ops_ms": {k: round(v, 1) for k, v in top},
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out", type=Path)
    parser.add_argument("--model-dir", type=Path, required=True)
    parser.add_argument("--clip", type=Path, required=True)
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--frames", type=int, default=12)
    parser.add_argument("--cap-s", type=float, default=25.0, help="per setting")
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    report: dict[str, Any] = {"variants": {}}
    target = args.out / "gpu_profile.json"

    def save() -> None:
        target.write_text(json.dumps(report, indent=1) + "\n")

    frames = read_frames(args.clip, args.frames)
    store = ModelStore(args.model_dir)
    capture = Capture()
    capture.install()
    for name, one_session, threads in VARIANTS:
        capture.one_session = one_session
        try:
            report["variants"][name] = run_variant(store, frames, args.device, threads, args.cap_s)
        except Exception as exc:  # recorded; the next setting still runs
            report["variants"][name] = {"error": f"{type(exc).__name__}: {exc}"}
        save()
        print(name, json.dumps(report["variants"][name]), flush=True)
    report["input_shapes"] = {k: sorted(map(list, v)) for k, v in capture.shapes.items()}
    cuda = ("CUDAExecutionProvider", {"cudnn_conv_algo_search": "HEURISTIC"})
    report["profile"] = {}
    for model, feeds in capture.feeds.items():
        files = store.files(model)
        assert files.onnx is not None
        for label, providers in (("cuda", [cuda, "CPUExecutionProvider"]),
                                 ("cpu", ["CPUExecutionProvider"])):  # fmt: skip
            try:
                result = profile_model(files.onnx, feeds[:3], providers)
            except Exception as exc:
                result = {"error": f"{type(exc).__name__}: {exc}"}
            report["profile"][f"{model}/{label}"] = result
            save()
            print(model, label, json.dumps(result), flush=True)
    save()
    return 0


if __name__ == "__main__":
    sys.exit(main())
