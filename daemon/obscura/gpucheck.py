"""The CUDA path, measured: ``python -m obscura.gpucheck OUT_DIR --clip CLIP [--device cuda]``.

On a machine with an NVIDIA GPU (``scripts/gpu_check.sh`` sets the library path first), in
one run and within ``--budget-s`` seconds:

1. ONNX Runtime's version and the providers it offers; the GPU's name and memory;
2. the default job (faces and plates, blurred) on every frame of the clip, through a daemon
   with ``runtime = "onnxruntime"`` on ``--device`` (gRPC over a Unix socket), and GetInfo's
   word on which provider each model really runs on;
3. the same through a daemon on ONNX Runtime's CPU provider, and the detections compared:
   the same count per frame and class, IoU >= 0.9 for every matched box, score differences;
4. frames/s and latency p50 / p95 for one and for four concurrent streams of 1920x1080 frames
   (the clip's frames upscaled), with the GPU memory used.

Every step runs on its own: an error is recorded in the report and the next step goes on.
The report (``gpu_check.json``) is rewritten after every step, so a run cut short still
leaves what it measured; the daemons' logs lie beside it. ``--device cpu`` runs the same
code without a GPU (the dry run). Nothing is installed or fetched.
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import json
import logging
import os
import platform
import shutil
import subprocess
import sys
import threading
import time
import traceback
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from obscura.types import ImageArray

log = logging.getLogger("obscura.gpucheck")

REPORT = "gpu_check.json"
MIN_IOU = 0.9
STREAM_SIZE = (1920, 1080)
CLIP_IN_FLIGHT = 4  # frames in flight on the clip runs (parity: order does not matter)
MAX_INFLIGHT = 64  # the daemons' bound: more than the streams here ever send at once


def nvidia_library_dirs() -> list[str]:
    """The library folders of the nvidia-* wheels (CUDA, cuDNN) on this Python's path."""
    found: list[str] = []
    for entry in sys.path:
        base = Path(entry or ".") / "nvidia"
        if base.is_dir():
            found += [str(p) for p in sorted(base.glob("*/lib")) if str(p) not in found]
    return found


class Report:
    """The JSON report, written whole after every change."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.data: dict[str, Any] = {"started": time.strftime("%Y-%m-%dT%H:%M:%S%z")}
        self.started = time.monotonic()

    def set(self, key: str, value: Any) -> None:
        self.data[key] = value
        self.write()

    def write(self) -> None:
        self.data["elapsed_s"] = round(time.monotonic() - self.started, 1)
        tmp = self.path.with_suffix(".tmp")
        tmp.write_text(json.dumps(self.data, indent=2, default=str) + "\n")
        tmp.replace(self.path)

    def step(self, name: str, run: Callable[[], Any]) -> Any:
        """Runs one step; its result, or its error, goes into the report under ``name``."""
        log.info("step %s", name)
        began = time.monotonic()
        try:
            result = run()
        except Exception as exc:
            log.exception("step %s failed", name)
            result = {"error": f"{type(exc).__name__}: {exc}", "trace": traceback.format_exc()}
            self.set(name, result)
            return None
        if isinstance(result, dict):
            result.setdefault("seconds", round(time.monotonic() - began, 1))
        self.set(name, result)
        return result


# --- environment ----------------------------------------------------------------------------


def runtime_info() -> dict[str, Any]:
    from obscura.backends.onnxruntime import cuda_offered, offered_providers, prepare_cuda

    info: dict[str, Any] = {
        "python": platform.python_version(),
        "numpy": np.__version__,
        "nvidia_library_dirs": nvidia_library_dirs(),
        "ld_library_path": os.environ.get("LD_LIBRARY_PATH", ""),
    }
    import onnxruntime as ort

    info["onnxruntime"] = ort.__version__
    info["onnxruntime_location"] = str(Path(ort.__file__).parent)
    with contextlib.suppress(Exception):
        info["onnxruntime_build"] = ort.get_build_info()
    info["providers_before_preload"] = offered_providers(ort)
    prepare_cuda(ort)
    info["providers"] = offered_providers(ort)
    info["cuda_offered"] = cuda_offered(ort)
    for name in ("openvino", "grpc", "av", "cv2"):
        try:
            module = __import__(name)
            info[name] = str(getattr(module, "__version__", "present"))
        except ImportError:
            info[name] = None
    return info


def gpu_memory() -> dict[str, Any]:
    """The GPU's name, memory used / total (MiB) and utilisation, from nvidia-smi."""
    smi = shutil.which("nvidia-smi")
    if smi is None:
        return {"error": "nvidia-smi not found"}
    query = "name,memory.used,memory.total,utilization.gpu,driver_version"
    out = subprocess.run(
        [smi, f"--query-gpu={query}", "--format=csv,noheader,nounits"],
        capture_output=True,
        text=True,
        timeout=20,
        check=True,
    ).stdout
    gpus = []
    for line in out.strip().splitlines():
        name, used, total, util, driver = (v.strip() for v in line.split(","))
        gpus.append({
            "name": name, "memory_used_mib": float(used), "memory_total_mib": float(total),
            "utilization_pct": float(util) if util.replace(".", "").isdigit() else None,
            "driver": driver,
        })  # fmt: skip
    apps = subprocess.run(
        [smi, "--query-compute-apps=pid,used_memory", "--format=csv,noheader,nounits"],
        capture_output=True,
        text=True,
        timeout=20,
        check=False,
    ).stdout
    processes = {}
    for line in apps.strip().splitlines():
        parts = [v.strip() for v in line.split(",")]
        if len(parts) == 2 and parts[0].isdigit():
            with contextlib.suppress(ValueError):
                processes[parts[0]] = float(parts[1])
    return {"gpus": gpus, "process_memory_mib": processes}


class GPUSampler:
    """Samples nvidia-smi in the background; keeps the peaks."""

    def __init__(self, interval_s: float = 0.5) -> None:
        self.interval_s = interval_s
        self.peak_used_mib = 0.0
        self.peak_util_pct = 0.0
        self.peak_process_mib: dict[str, float] = {}
        self.utilization: list[float] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="gpu-sampler", daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                sample = gpu_memory()
            except Exception:
                return
            for gpu in sample.get("gpus", []):
                self.peak_used_mib = max(self.peak_used_mib, gpu["memory_used_mib"])
                if gpu["utilization_pct"] is not None:
                    self.utilization.append(gpu["utilization_pct"])
                    self.peak_util_pct = max(self.peak_util_pct, gpu["utilization_pct"])
            for pid, mib in sample.get("process_memory_mib", {}).items():
                self.peak_process_mib[pid] = max(self.peak_process_mib.get(pid, 0.0), mib)
            self._stop.wait(self.interval_s)

    def __enter__(self) -> GPUSampler:
        if shutil.which("nvidia-smi"):
            self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=5)

    def summary(self) -> dict[str, Any]:
        mean = float(np.mean(self.utilization)) if self.utilization else None
        return {
            "peak_memory_used_mib": self.peak_used_mib,
            "peak_process_memory_mib": self.peak_process_mib,
            "peak_utilization_pct": self.peak_util_pct,
            "mean_utilization_pct": mean,
        }


# --- the clip ----------------------------------------------------------------------------------


def read_clip(path: Path, limit: int) -> list[ImageArray]:
    import cv2

    capture = cv2.VideoCapture(str(path))
    frames: list[ImageArray] = []
    while len(frames) < limit:
        ok, frame = capture.read()
        if not ok:
            break
        frames.append(np.asarray(frame, np.uint8))
    capture.release()
    if not frames:
        raise RuntimeError(f"no frames read from {path}")
    return frames


# --- the daemon ------------------------------------------------------------------------------


@dataclass
class Daemon:
    """An ``obscura serve`` process on a Unix socket in ``work``."""

    name: str
    work: Path
    model_dir: Path
    device: str
    stream_depth: int
    process: subprocess.Popen[bytes] | None = None
    log_path: Path = field(init=False)
    address: str = field(init=False)

    def __post_init__(self) -> None:
        self.log_path = self.work / f"daemon-{self.name}.log"
        # Unix socket paths are short (108 bytes): a folder of its own under /tmp.
        socket_dir = Path(f"/tmp/obscura-gpucheck-{os.getpid()}-{self.name}")
        socket_dir.mkdir(parents=True, exist_ok=True)
        self.address = f"unix://{socket_dir / 'obscura.sock'}"

    def start(self, timeout_s: float) -> float:
        """Starts the daemon; returns the seconds until it was SERVING."""
        from obscura_client.client import wait_serving

        config = self.work / f"daemon-{self.name}.toml"
        config.write_text(
            f'[store]\ncache_dir = "{self.model_dir}"\n'
            f'[backend]\nruntime = "onnxruntime"\ndevice = "{self.device}"\n'
            f'[server]\nlisten = ["{self.address}"]\nmetrics_listen = ""\n'
            f"stream_depth = {self.stream_depth}\nmax_inflight = {MAX_INFLIGHT}\n"
        )
        began = time.monotonic()
        with self.log_path.open("ab") as out:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "obscura.cli", "-v", "serve", "--config", str(config)],
                stdout=out,
                stderr=subprocess.STDOUT,
                env={**os.environ, "OBSCURA_MODEL_DIR": str(self.model_dir)},
            )
        process = self.process
        try:
            wait_serving(self.address, timeout_s, alive=lambda: process.poll() is None)
        except Exception as exc:
            tail = self.log_tail()
            self.stop()
            raise RuntimeError(f"daemon {self.name} did not start: {exc}\n{tail}") from None
        return time.monotonic() - began

    def log_tail(self, lines: int = 25) -> str:
        with contextlib.suppress(OSError):
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        return ""

    def info(self) -> dict[str, Any]:
        from obscura_client.client import Client

        with Client(self.address) as client:
            reply = client.info()
        return {
            "version": reply.version,
            "runtime": reply.runtime,
            "models": [
                {"name": m.name, "device": m.device, "precision": m.precision} for m in reply.models
            ],
        }

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=10)
        shutil.rmtree(Path(self.address.removeprefix("unix://")).parent, ignore_errors=True)


# --- runs through the daemon ----------------------------------------------------------------


def _job_options() -> Any:
    """The default job: faces and license plates, blurred (the client's default options)."""
    from obscura_client.client import Options

    return Options()


@dataclass
class StreamRun:
    latencies_s: list[float] = field(default_factory=list)
    detections: list[list[dict[str, Any]]] = field(default_factory=list)
    detect_s: list[float] = field(default_factory=list)
    failures: int = 0
    failure_examples: list[str] = field(default_factory=list)


def run_stream(
    address: str,
    frames: list[ImageArray],
    *,
    count: int | None = None,
    until: float | None = None,
    warmup: int = 0,
    in_flight: int = 2,
    keep_detections: bool = False,
) -> StreamRun:
    """One AnonymizeStream session: ``count`` frames (cycling through ``frames``), or as many
    as fit before the monotonic time ``until``. The first ``warmup`` answers are not counted."""
    from obscura_client.client import DEFAULT_MAX_MESSAGE, Client, FrameFailed, request_for

    sent: dict[int, float] = {}
    options = _job_options()

    def requests() -> Iterator[Any]:
        i = 0
        while (count is None or i < count) and (until is None or time.monotonic() < until):
            request = request_for(
                frames[i % len(frames)], options if i == 0 else None, frame_index=i
            )
            sent[i] = time.monotonic()
            yield request
            i += 1

    run = StreamRun()
    with Client(address, timeout=None, max_message_bytes=DEFAULT_MAX_MESSAGE) as client:
        for n, result in enumerate(client.frames(requests(), in_flight=in_flight)):
            done = time.monotonic()
            if isinstance(result, FrameFailed):
                run.failures += 1
                if len(run.failure_examples) < 5:
                    run.failure_examples.append(str(result))
                continue
            if keep_detections:
                run.detections.append(result.detections)
            if n >= warmup:
                run.latencies_s.append(done - sent.pop(result.frame_index))
                run.detect_s.append(result.timings.get("detect", 0.0))
            else:
                sent.pop(result.frame_index, None)
    return run


def throughput(
    address: str,
    frames: list[ImageArray],
    streams: int,
    *,
    seconds: float,
    in_flight: int,
    warmup: int = 3,
) -> dict[str, Any]:
    """``streams`` concurrent sessions for ``seconds`` (after ``warmup`` frames each)."""
    runs: list[StreamRun | BaseException] = [StreamRun() for _ in range(streams)]
    # Warm-up first (new shapes for the runtime), untimed, all streams at once.
    threads = [
        threading.Thread(
            target=lambda: run_stream(address, frames, count=warmup, in_flight=in_flight)
        )
        for _ in range(streams)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    began = time.monotonic()
    until = began + seconds

    def one(k: int) -> None:
        try:
            offset = frames[k * 7 % len(frames) :] + frames[: k * 7 % len(frames)]
            runs[k] = run_stream(address, offset, until=until, in_flight=in_flight)
        except BaseException as exc:
            runs[k] = exc

    threads = [threading.Thread(target=one, args=(k,)) for k in range(streams)]
    with GPUSampler() as sampler:
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    wall = time.monotonic() - began
    errors = [f"{type(r).__name__}: {r}" for r in runs if isinstance(r, BaseException)]
    done = [r for r in runs if isinstance(r, StreamRun)]
    latencies = np.array([x for r in done for x in r.latencies_s]) * 1000.0
    detect = np.array([x for r in done for x in r.detect_s]) * 1000.0
    frames_done = int(latencies.size)
    return {
        "streams": streams,
        "frame_size": list(frames[0].shape[1::-1]),
        "in_flight_per_stream": in_flight,
        "frames": frames_done,
        "wall_s": round(wall, 2),
        "frames_per_s": round(frames_done / wall, 2) if wall > 0 else None,
        "frames_per_s_per_stream": round(frames_done / wall / streams, 2) if wall > 0 else None,
        "latency_ms": _percentiles(latencies),
        "server_detect_ms": _percentiles(detect),
        "failed_frames": sum(r.failures for r in done),
        "failure_examples": [e for r in done for e in r.failure_examples][:5],
        "errors": errors,
        "gpu": sampler.summary(),
    }


def _percentiles(values: np.ndarray) -> dict[str, float | None]:
    if values.size == 0:
        return {"p50": None, "p95": None, "mean": None, "max": None}
    return {
        "p50": round(float(np.percentile(values, 50)), 2),
        "p95": round(float(np.percentile(values, 95)), 2),
        "mean": round(float(values.mean()), 2),
        "max": round(float(values.max()), 2),
    }


# --- parity -------------------------------------------------------------------------------------


def compare_detections(
    test: list[list[dict[str, Any]]], reference: list[list[dict[str, Any]]]
) -> dict[str, Any]:
    """Frame by frame and class by class: the same count, and every box matched (greedily, by
    IoU) with IoU >= MIN_IOU; the worst IoU and the largest score difference."""
    from obscura.models.base import iou_matrix

    count_mismatches: list[dict[str, Any]] = []
    low_iou: list[dict[str, Any]] = []
    ious: list[float] = []
    score_diffs: list[float] = []
    totals = {"test": 0, "reference": 0}
    for index, (got, want) in enumerate(zip(test, reference, strict=False)):
        totals["test"] += len(got)
        totals["reference"] += len(want)
        for label in sorted({d["type_label"] for d in got} | {d["type_label"] for d in want}):
            a = [d for d in got if d["type_label"] == label]
            b = [d for d in want if d["type_label"] == label]
            if len(a) != len(b):
                count_mismatches.append(
                    {"frame": index, "class": label, "test": len(a), "reference": len(b)}
                )
            if not a or not b:
                continue
            matrix = iou_matrix(
                np.array([d["bbox"] for d in a], np.float32),
                np.array([d["bbox"] for d in b], np.float32),
            )
            while matrix.size and matrix.max() > 0:
                i, j = np.unravel_index(int(matrix.argmax()), matrix.shape)
                iou = float(matrix[i, j])
                ious.append(iou)
                score_diffs.append(abs(float(a[i]["score"]) - float(b[j]["score"])))
                # Metadata boxes are whole pixels: a box one pixel taller on a 9 x 9 face is
                # IoU 81/90 = 0.9 exactly, which float32 makes 0.8999999.
                if iou < MIN_IOU - 1e-6:
                    low_iou.append({"frame": index, "class": label, "iou": round(iou, 4)})
                matrix[i, :] = -1.0
                matrix[:, j] = -1.0
    return {
        "frames": min(len(test), len(reference)),
        "detections": totals,
        "matched": len(ious),
        "count_mismatches": len(count_mismatches),
        "count_mismatch_examples": count_mismatches[:20],
        "boxes_below_iou": len(low_iou),
        "low_iou_examples": low_iou[:20],
        "min_iou": round(min(ious), 4) if ious else None,
        "mean_iou": round(float(np.mean(ious)), 4) if ious else None,
        "max_score_diff": round(max(score_diffs), 5) if score_diffs else None,
        "passed": not count_mismatches and not low_iou and len(test) == len(reference),
    }


# --- the whole check ----------------------------------------------------------------------------


def run_check(args: argparse.Namespace) -> Report:
    out: Path = args.out
    out.mkdir(parents=True, exist_ok=True)
    report = Report(out / REPORT)
    deadline = time.monotonic() + args.budget_s
    report.set("arguments", {k: str(v) for k, v in vars(args).items()})
    report.step("runtime", runtime_info)
    report.step("gpu_before", gpu_memory)
    held: dict[str, list[ImageArray]] = {}  # the clip's frames, and upscaled ("big")

    def clip() -> dict[str, Any]:
        held["clip"] = read_clip(args.clip, args.frames)
        return {"frames": len(held["clip"]), "size": list(held["clip"][0].shape[1::-1])}

    report.step("clip", clip)
    frames = held.get("clip", [])
    if not frames:
        report.set("finished", False)
        return report

    depth = max(args.in_flight, CLIP_IN_FLIGHT)
    test = Daemon("test", out, args.model_dir, args.device, depth)
    reference = Daemon("cpu", out, args.model_dir, "cpu", depth)
    runs: dict[str, StreamRun] = {}
    try:
        started = report.step("daemon_test", lambda: {"start_s": round(test.start(180), 1)})
        if started is not None:
            report.step("daemon_test_info", test.info)
            report.step("clip_test", lambda: _clip_run(test, frames, runs, "test", args))
        else:
            report.set("note", f"the {args.device} daemon did not start; CPU parts still run")
        if started is not None:
            # 1080p streams while only this daemon holds the GPU (and the CPUs).
            big = report.step("upscale", lambda: _upscale(frames, held))
            for streams in args.streams:
                left = deadline - time.monotonic() - args.reserve_s
                seconds = min(args.seconds, max(3.0, left / 2))
                if big is None or left < 10:
                    report.set(f"throughput_{streams}", {"skipped": f"{left:.0f} s left"})
                    continue
                measure = functools.partial(
                    throughput,
                    test.address,
                    held["big"],
                    streams,
                    seconds=seconds,
                    in_flight=args.in_flight,
                    warmup=args.warmup,
                )
                report.step(f"throughput_{streams}", measure)
        report.step("gpu_after_test", gpu_memory)
        test.stop()
        if args.device == "cpu":  # the dry run: the test daemon was the CPU one
            runs["reference"] = runs.get("test", StreamRun())
            report.set("clip_reference", {"same_as": "clip_test (device cpu)"})
        elif deadline - time.monotonic() > 30 and report.step(
            "daemon_cpu", lambda: {"start_s": round(reference.start(180), 1)}
        ):
            report.step("daemon_cpu_info", reference.info)
            report.step(
                "clip_reference", lambda: _clip_run(reference, frames, runs, "reference", args)
            )
        if "test" in runs and "reference" in runs:
            report.step(
                "parity",
                lambda: compare_detections(runs["test"].detections, runs["reference"].detections),
            )
        else:
            report.set("parity", {"skipped": "a clip run is missing"})
        report.set(
            "batching",
            {
                "implemented": False,
                "note": "no cross-stream batching yet; nothing to measure",
            },
        )
    finally:
        test.stop()
        reference.stop()
    report.set("finished", True)
    return report


def _clip_run(
    daemon: Daemon,
    frames: list[ImageArray],
    runs: dict[str, StreamRun],
    key: str,
    args: argparse.Namespace,
) -> dict[str, Any]:
    began = time.monotonic()
    run = run_stream(
        daemon.address, frames, count=len(frames), in_flight=CLIP_IN_FLIGHT, keep_detections=True
    )
    wall = time.monotonic() - began
    runs[key] = run
    (args.out / f"detections-{key}.json").write_text(json.dumps(run.detections) + "\n")
    return {
        "frames": len(run.detections),
        "failed_frames": run.failures,
        "failure_examples": run.failure_examples,
        "in_flight": CLIP_IN_FLIGHT,
        "detections": sum(len(d) for d in run.detections),
        "frame_size": list(frames[0].shape[1::-1]),
        "frames_per_s": round(len(run.detections) / wall, 2) if wall > 0 else None,
        "latency_ms": _percentiles(np.array(run.latencies_s) * 1000.0),
        "server_detect_ms": _percentiles(np.array(run.detect_s) * 1000.0),
    }


def _upscale(frames: list[ImageArray], box: dict[str, list[ImageArray]]) -> dict[str, Any]:
    import cv2

    box["big"] = [
        np.asarray(cv2.resize(f, STREAM_SIZE, interpolation=cv2.INTER_LINEAR), np.uint8)
        for f in frames
    ]
    return {"frames": len(box["big"]), "size": list(STREAM_SIZE)}


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m obscura.gpucheck", description=__doc__.split("\n\n")[0]
    )
    p.add_argument("out", type=Path, help="folder for gpu_check.json and the logs")
    p.add_argument("--clip", type=Path, default=os.environ.get("OBSCURA_CLIP"), required=False)
    p.add_argument(
        "--model-dir",
        type=Path,
        default=os.environ.get("OBSCURA_MODEL_DIR") or None,
        help="the model store (default: $OBSCURA_MODEL_DIR, else the user's cache)",
    )
    p.add_argument("--device", default="cuda", help="cuda (default), cuda:N or cpu (dry run)")
    p.add_argument("--frames", type=int, default=100, help="clip frames to use (default 100)")
    p.add_argument(
        "--streams", type=int, nargs="+", default=[1, 4], help="concurrent streams to measure"
    )
    p.add_argument("--seconds", type=float, default=25.0, help="per throughput measurement")
    p.add_argument(
        "--in-flight", type=int, default=2, help="frames in flight per stream (default 2)"
    )
    p.add_argument("--warmup", type=int, default=3, help="untimed frames per stream first")
    p.add_argument("--budget-s", type=float, default=360.0, help="the whole run's time budget")
    p.add_argument("--reserve-s", type=float, default=120.0, help="kept for the CPU reference")
    p.add_argument(
        "--print-library-path",
        action="store_true",
        help="print the nvidia-* wheels' library folders (for LD_LIBRARY_PATH) and exit",
    )
    return p


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.print_library_path:
        print(":".join(nvidia_library_dirs()))
        return 0
    if args.clip is None:
        print("--clip (or OBSCURA_CLIP) is required", file=sys.stderr)
        return 2
    if args.model_dir is None:
        from obscura.zoo.store import default_cache_dir

        args.model_dir = default_cache_dir()
    args.out.mkdir(parents=True, exist_ok=True)
    logging.basicConfig(
        level=logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        handlers=[logging.StreamHandler(), logging.FileHandler(args.out / "gpu_check.log")],
    )
    report = run_check(args)
    print(json.dumps(report.data, indent=2, default=str))
    return 0 if report.data.get("finished") else 1


if __name__ == "__main__":
    sys.exit(main())
