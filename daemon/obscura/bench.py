"""``obscura bench``: how fast Obscura is on this machine, against its own ceiling and a peer.

Runs, in one invocation and on the same frames:

- *models-only limit*: the pipeline's detectors run straight through OpenVINO's async API in
  THROUGHPUT mode on pre-processed frames (no decode, no anonymization, no gRPC): the ceiling;
- *daemon*: a real ``obscura serve`` subprocess, frames streamed over a Unix socket and over TCP,
  as JPEG and as raw BGR; frames/s, latency percentiles, the daemon's CPU time and peak RSS;
- *in-process*: ``obscura anonymize`` on the video file, in this process;
- *peer*: deface 1.5.0 (installed by the benchmark into a virtual environment of its own) on the
  same video, faces only, against Obscura faces only, run alternately so machine noise cancels.

Ratios are computed from runs of the same invocation. The JSON report holds every figure and
the CPU model.
"""

from __future__ import annotations

import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from obscura.errors import InvalidInput
from obscura.types import ImageArray

PEER = "deface==1.5.0"
PRESETS = {
    "faces": ["face"],
    "default": ["face", "license-plate"],
    "all": ["face", "license-plate", "person", "vehicle"],
}


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def load_frames(video: Path, count: int, size: tuple[int, int] | None = None) -> list[ImageArray]:
    import av

    frames: list[ImageArray] = []
    with av.open(str(video)) as container:
        for frame in container.decode(video=0):
            image = np.asarray(frame.to_ndarray(format="bgr24"), dtype=np.uint8)
            if size is not None and (image.shape[1], image.shape[0]) != size:
                image = np.asarray(cv2.resize(image, size, interpolation=cv2.INTER_LINEAR))
            frames.append(image)
            if len(frames) >= count:
                break
    if not frames:
        raise InvalidInput(f"{video}: no frames")
    decoded = len(frames)
    while len(frames) < count:  # loop a short video
        frames.append(frames[len(frames) % decoded])
    return frames


def count_frames(video: Path) -> int:
    import av

    with av.open(str(video)) as container:
        return sum(1 for _ in container.decode(video=0))


def percentiles(values: Sequence[float]) -> dict[str, float]:
    ms = np.array(values) * 1000
    p50, p95, p99 = np.percentile(ms, [50, 95, 99])
    return {"p50_ms": round(float(p50), 2), "p95_ms": round(float(p95), 2),
            "p99_ms": round(float(p99), 2)}  # fmt: skip


def _backend_config(precision: str) -> Any:
    from obscura.backends import BackendConfig

    return BackendConfig(precision=precision)  # type: ignore[arg-type]


# --- models-only limit ------------------------------------------------------------------
def models_only(frames: list[ImageArray], classes: list[str], precision: str) -> dict[str, Any]:
    """Frames/s of the detectors alone, OpenVINO async API, THROUGHPUT hint."""
    import openvino as ov

    from obscura.backends import create_backend
    from obscura.pipeline.detect import Detector
    from obscura.types import ObjectClass
    from obscura.zoo.store import ModelStore

    store = ModelStore()
    wanted = {ObjectClass.from_label(c) for c in classes}
    detector = Detector(store, create_backend(_backend_config(precision)))
    loaded = []
    if ObjectClass.FACE in wanted and detector.faces is not None:
        loaded.append(detector.faces)
    if wanted & {ObjectClass.PERSON, ObjectClass.VEHICLE, ObjectClass.LICENSE_PLATE} and (
        detector.objects is not None
    ):
        loaded.append(detector.objects)
    if ObjectClass.LICENSE_PLATE in wanted and detector.plates is not None:
        loaded.append(detector.plates)
    core = ov.Core()
    precisions = {"f32": "f32", "f16": "f16", "bf16": "bf16"}
    queues = []
    for model in loaded:
        files = store.files(model.spec.name)
        properties: dict[str, Any] = {"PERFORMANCE_HINT": "THROUGHPUT"}
        if precision in precisions:
            properties["INFERENCE_PRECISION_HINT"] = precisions[precision]
        compiled = core.compile_model(str(files.ir_xml), "CPU", properties)
        tensors = [model.adapter.preprocess(f)[0] for f in frames]
        queues.append((model.spec.name, ov.AsyncInferQueue(compiled), tensors))
    for _, queue, tensors in queues:  # warm-up
        for t in tensors[:4]:
            queue.start_async(t)
        queue.wait_all()
    start = time.perf_counter()
    for i in range(len(frames)):
        for _, queue, tensors in queues:
            queue.start_async(tensors[i])
    for _, queue, _ in queues:
        queue.wait_all()
    elapsed = time.perf_counter() - start
    return {
        "models": [name for name, _, _ in queues],
        "frames": len(frames),
        "fps": round(len(frames) / elapsed, 2),
        "note": "full-frame passes of each detector; person-mask and vehicle-crop passes excluded",
    }


# --- the daemon ---------------------------------------------------------------------------
@dataclass
class DaemonRun:
    proc: subprocess.Popen[bytes]
    socket: str
    tcp: str
    folder: Path
    log: Any = None

    def rss_peak(self) -> int:
        try:
            for line in Path(f"/proc/{self.proc.pid}/status").read_text().splitlines():
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) * 1024
        except OSError:
            pass
        return 0

    def cpu_seconds(self) -> float:
        try:
            fields = Path(f"/proc/{self.proc.pid}/stat").read_text().rsplit(")", 1)[1].split()
            ticks = os.sysconf("SC_CLK_TCK")
            return (int(fields[11]) + int(fields[12])) / ticks
        except (OSError, ValueError, IndexError):
            return 0.0


def start_daemon(workdir: Path, extra: Sequence[str] = ()) -> DaemonRun:
    from obscura.client import wait_serving

    sock = workdir / "bench.sock"
    import socket as socketlib

    with socketlib.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    log = (workdir / "daemon.log").open("wb")
    proc = subprocess.Popen(
        [sys.executable, "-m", "obscura.cli", "serve", "--listen", f"unix://{sock}",
         "--listen", f"127.0.0.1:{port}", "--metrics-listen", "", *extra],
        stdout=log, stderr=subprocess.STDOUT,
    )  # fmt: skip
    run = DaemonRun(proc, f"unix://{sock}", f"127.0.0.1:{port}", workdir, log)
    try:
        wait_serving(run.socket, 300, lambda: proc.poll() is None)
    except Exception as exc:
        raise RuntimeError(f"{exc}: {(workdir / 'daemon.log').read_text()}") from None
    return run


def stop_daemon(run: DaemonRun) -> None:
    run.proc.terminate()
    run.proc.wait(60)
    run.log.close()


def daemon_stream(
    run: DaemonRun,
    address: str,
    frames: list[ImageArray],
    classes: list[str],
    *,
    encoding: str,
    in_flight: int = 4,
) -> dict[str, Any]:
    from obscura.client import Client, FrameFailed, Options, request_for

    payloads: list[bytes | ImageArray] = (
        [bytes(cv2.imencode(".jpg", f, [cv2.IMWRITE_JPEG_QUALITY, 90])[1]) for f in frames]
        if encoding == "jpeg"
        else list(frames)
    )
    options = Options(classes=dict.fromkeys(classes, "blur"))
    sent: dict[int, float] = {}

    def requests() -> Iterator[Any]:
        for i, payload in enumerate(payloads):
            sent[i] = time.perf_counter()
            yield request_for(payload, options if i == 0 else None, frame_index=i)

    latencies: list[float] = []
    cpu0 = run.cpu_seconds()
    with Client(address) as client:
        # Warm-up stream (not counted).
        list(client.frames((request_for(p, options) for p in payloads[:4]), in_flight=2))
        start = time.perf_counter()
        for result in client.frames(requests(), in_flight=in_flight):
            if isinstance(result, FrameFailed):
                raise RuntimeError(str(result))
            latencies.append(time.perf_counter() - sent[result.frame_index])
        elapsed = time.perf_counter() - start
    return {
        "frames": len(frames),
        "fps": round(len(frames) / elapsed, 2),
        **percentiles(latencies),
        "daemon_cpu_s": round(run.cpu_seconds() - cpu0, 2),
        "daemon_peak_rss_mib": round(run.rss_peak() / 2**20, 1),
    }


def unary_overhead(run: DaemonRun, frames: list[ImageArray], classes: list[str]) -> dict[str, Any]:
    """Unary JPEG calls over the Unix socket: latency minus model inference time."""
    from obscura.client import Client, Options, request_for

    options = Options(classes=dict.fromkeys(classes, "blur"))
    jpegs = [bytes(cv2.imencode(".jpg", f, [cv2.IMWRITE_JPEG_QUALITY, 90])[1]) for f in frames]
    latency, overhead = [], []
    with Client(run.socket) as client:
        for jpeg in jpegs[:3]:
            client.anonymize(request_for(jpeg, options))
        for jpeg in jpegs:
            t = time.perf_counter()
            response = client.anonymize(request_for(jpeg, options))
            elapsed = time.perf_counter() - t
            latency.append(elapsed)
            overhead.append(elapsed - sum(response.timings.models.values()))
    return {
        "calls": len(jpegs),
        "latency": percentiles(latency),
        "overhead_minus_inference": percentiles(overhead),
    }


# --- in-process and the peer --------------------------------------------------------------
def in_process(video: Path, classes: list[str], processor: Any) -> float:
    """Seconds for ``obscura anonymize`` on the video (models loaded beforehand)."""
    from obscura.batch import BatchRunner
    from obscura.pipeline.options import AnonymizeOptions, SaveMask
    from obscura.types import ObjectClass

    options = AnonymizeOptions(
        methods=AnonymizeOptions.choose_methods([ObjectClass.from_label(c) for c in classes]),
        save_mask=SaveMask.NONE,
    )
    with tempfile.TemporaryDirectory() as tmp:
        runner = BatchRunner(processor, options, Path(tmp), progress=False)
        start = time.perf_counter()
        summary = runner.run([video])
        elapsed = time.perf_counter() - start
    if summary.errors:
        raise RuntimeError(f"obscura anonymize failed: {summary.errors}")
    return elapsed


def peer_venv(cache: Path) -> Path:
    """deface in a virtual environment of its own (created once)."""
    venv = cache / "deface-1.5.0"
    marker = venv / ".installed"
    if not marker.exists():
        shutil.rmtree(venv, ignore_errors=True)
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
        subprocess.run(
            [str(venv / "bin" / "python"), "-m", "pip", "install", "--quiet",
             "--disable-pip-version-check", PEER, "onnxruntime"],
            check=True,
        )  # fmt: skip
        marker.write_text(PEER)
    return venv


def run_peer(venv: Path, video: Path, frames: int) -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / f"out{video.suffix}"
        start = time.perf_counter()
        proc = subprocess.run(
            [str(venv / "bin" / "deface"), str(video), "-o", str(out)],
            capture_output=True, text=True, check=False,
        )  # fmt: skip
        elapsed = time.perf_counter() - start
    if proc.returncode != 0:
        raise RuntimeError(f"deface failed: {proc.stderr[-500:]}")
    return {"seconds": round(elapsed, 2), "fps": round(frames / elapsed, 2)}


# --- the whole benchmark -----------------------------------------------------------------
@dataclass
class Report:
    machine: dict[str, Any] = field(default_factory=dict)
    results: dict[str, Any] = field(default_factory=dict)
    ratios: dict[str, float] = field(default_factory=dict)

    def rows(self) -> list[tuple[str, str]]:
        out = []
        for key, value in self.results.items():
            if isinstance(value, dict) and "fps" in value:
                extra = ", ".join(
                    f"{k} {v}" for k, v in value.items() if k.endswith(("_ms", "_mib", "_s"))
                )
                out.append((key, f"{value['fps']} frames/s" + (f" ({extra})" if extra else "")))
            elif isinstance(value, dict) and "overhead_minus_inference" in value:
                o, lat = value["overhead_minus_inference"], value["latency"]
                out.append((key, f"latency p50 {lat['p50_ms']} ms, minus inference p50 "
                                 f"{o['p50_ms']} ms"))  # fmt: skip
        out += [(f"ratio {k}", f"{v:.2f}") for k, v in self.ratios.items()]
        return out


def run_bench(
    video: Path,
    *,
    frames: int = 100,
    resolutions: Sequence[tuple[int, int]] = (),
    peer: bool = True,
    cache: Path | None = None,
    precision: str = "f32",
    log: Callable[[str], None] = print,
) -> Report:
    report = Report(machine={
        "cpu": cpu_model(), "cores": os.cpu_count(), "python": platform.python_version(),
        "video": video.name, "frames": frames,
    })  # fmt: skip
    base = load_frames(video, frames)
    native = (base[0].shape[1], base[0].shape[0])
    sizes = [native, *[s for s in resolutions if s != native]]
    r = report.results
    for preset in ("faces", "all"):
        log(f"models-only limit ({preset})")
        r[f"models-only {preset} {native[0]}x{native[1]}"] = models_only(
            base, PRESETS[preset], precision
        )
    with tempfile.TemporaryDirectory() as tmp:
        run = start_daemon(Path(tmp))
        try:
            for size in sizes:
                shot = base if size == native else load_frames(video, frames, size)
                tag = f"{size[0]}x{size[1]}"
                for preset in ("faces", "all"):
                    log(f"daemon stream, unix, jpeg, {preset}, {tag}")
                    r[f"daemon unix jpeg {preset} {tag}"] = daemon_stream(
                        run, run.socket, shot, PRESETS[preset], encoding="jpeg"
                    )
                if size == native:
                    for transport, address in (("unix", run.socket), ("tcp", run.tcp)):
                        log(f"daemon stream, {transport}, raw bgr, all")
                        r[f"daemon {transport} raw all {tag}"] = daemon_stream(
                            run, address, shot, PRESETS["all"], encoding="raw"
                        )
                    log("unary latency, default classes")
                    r[f"unary unix jpeg default {tag}"] = unary_overhead(
                        run, shot[:50], PRESETS["default"]
                    )
        finally:
            stop_daemon(run)
    from obscura.backends import create_backend
    from obscura.pipeline.detect import Detector
    from obscura.pipeline.frame import FrameProcessor
    from obscura.zoo.store import ModelStore

    processor = FrameProcessor(Detector(ModelStore(), create_backend(_backend_config(precision))))
    log("in-process CLI on the video (default classes)")
    in_process(video, PRESETS["default"], processor)  # warm-up
    count = count_frames(video)
    seconds = in_process(video, PRESETS["default"], processor)
    r["in-process cli default"] = {"fps": round(count / seconds, 2), "frames": count}
    if peer:
        venv = peer_venv(cache or Path(tempfile.gettempdir()) / "obscura-bench")
        fps_peer, fps_ours = [], []
        for _ in range(2):  # alternate so that machine noise cancels
            log("peer: deface on the video")
            fps_peer.append(run_peer(venv, video, count)["fps"])
            log("obscura faces-only in-process on the video")
            fps_ours.append(count / in_process(video, PRESETS["faces"], processor))
        r["peer deface 1.5.0"] = {
            "fps": round(statistics.mean(fps_peer), 2),
            "note": "wall time of the deface command, model loading included",
        }
        r["in-process cli faces"] = {"fps": round(statistics.mean(fps_ours), 2)}
        stream = r[f"daemon unix jpeg faces {native[0]}x{native[1]}"]["fps"]
        report.ratios["daemon faces stream / deface"] = stream / statistics.mean(fps_peer)
        report.ratios["in-process faces / deface"] = statistics.mean(fps_ours) / statistics.mean(
            fps_peer
        )
    limit = r[f"models-only all {native[0]}x{native[1]}"]["fps"]
    report.ratios["daemon all (raw, unix) / models-only limit"] = (
        r[f"daemon unix raw all {native[0]}x{native[1]}"]["fps"] / limit
    )
    return report


def write_report(report: Report, path: Path | None) -> str:
    text = json.dumps(
        {"machine": report.machine, "results": report.results, "ratios": report.ratios}, indent=2
    )
    if path is not None:
        path.write_text(text + "\n")
    width = max(len(k) for k, _ in report.rows())
    lines = [f"{report.machine['cpu']}, {report.machine['cores']} cores"]
    lines += [f"{k.ljust(width)}  {v}" for k, v in report.rows()]
    return "\n".join(lines)
