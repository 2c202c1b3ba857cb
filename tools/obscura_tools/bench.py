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
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from obscura.errors import InvalidInput
from obscura.types import ImageArray

PEER = "deface==1.5.0"
# deface's faster backend on the 2-core EPYC: 100 frames of the 768x576 video in 6.8-7.0 s with
# OpenCV DNN against 9.4-11.0 s with ONNX Runtime (what its "auto" picks once onnx is installed).
PEER_BACKEND = "opencv"
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
    """Frames/s of the pipeline's inferences alone: the ceiling for the daemon.

    Every tensor the pipeline feeds its models for these frames as a video with the default
    tracking (full frames, the vehicle crops due for a plate search, person-crop batches for
    segmentation) is recorded once, with the same models and
    precision, then replayed through OpenVINO's async API: THROUGHPUT hint, one
    ``AsyncInferQueue`` per model, all models' requests in flight together. No decode, no
    anonymization, no encode, no gRPC.
    """
    import openvino as ov

    from obscura.backends import BackendConfig, create_backend
    from obscura.backends.openvino import OpenVINOModel
    from obscura.pipeline.detect import Detector
    from obscura.pipeline.options import DEFAULT_TRACK_HOLD
    from obscura.pipeline.track import Tracker, TrackerConfig
    from obscura.quantize import Recorder
    from obscura.types import ObjectClass
    from obscura.zoo.store import ModelStore

    config = BackendConfig(precision=precision, hint="THROUGHPUT")  # type: ignore[arg-type]
    detector = Detector(ModelStore(), create_backend(config))
    loaded = (
        detector.faces,
        *detector.face_ensemble,
        detector.objects,
        detector.plates,
        *detector.plate_ensemble,
    )
    holders: list[Any] = [m.adapter for m in loaded if m is not None]
    if detector.segmenter is not None:
        holders.append(detector.segmenter)
    calls: list[tuple[str, dict[str, Any]]] = []
    compiled: dict[str, ov.CompiledModel] = {}
    for holder in holders:
        model = holder.model
        assert isinstance(model, OpenVINOModel)
        compiled[model.name] = model.compiled
        holder.model = Recorder(model, _keeper(calls, model.name))
    wanted = [ObjectClass.from_label(c) for c in classes]
    # As on a video or stream with the default tracking: plates follow their vehicles, and the
    # face ensemble runs on the frames it runs on there.
    memory = Tracker(TrackerConfig(hold=DEFAULT_TRACK_HOLD)).plate_memory
    for index, frame in enumerate(frames):
        detector.detect(frame, wanted, plate_memory=memory, frame=index)
    queues = {name: ov.AsyncInferQueue(c) for name, c in compiled.items()}
    for name, inputs in calls[: 4 * len(queues)]:  # warm-up
        queues[name].start_async(inputs)
    for queue in queues.values():
        queue.wait_all()
    start = time.perf_counter()
    for name, inputs in calls:
        queues[name].start_async(inputs)
    for queue in queues.values():
        queue.wait_all()
    elapsed = time.perf_counter() - start
    per_model: dict[str, int] = {}
    for name, _ in calls:
        per_model[name] = per_model.get(name, 0) + 1
    return {
        "inferences": per_model,
        "frames": len(frames),
        "fps": round(len(frames) / elapsed, 2),
        "note": "every inference the pipeline makes for these frames, replayed asynchronously",
    }


def _keeper(
    calls: list[tuple[str, dict[str, Any]]], name: str
) -> Callable[[Mapping[str, Any]], None]:
    def keep(inputs: Mapping[str, Any]) -> None:
        calls.append((name, dict(inputs)))

    return keep


# --- the daemon ---------------------------------------------------------------------------
@dataclass
class DaemonRun:
    proc: subprocess.Popen[bytes]
    socket: str
    tcp: str
    folder: Path
    log: Any = None

    def rss_peak(self) -> int:
        return memory_of(self.proc.pid, "VmHWM")

    def cpu_seconds(self) -> float:
        try:
            fields = Path(f"/proc/{self.proc.pid}/stat").read_text().rsplit(")", 1)[1].split()
            ticks = os.sysconf("SC_CLK_TCK")
            return (int(fields[11]) + int(fields[12])) / ticks
        except (OSError, ValueError, IndexError):
            return 0.0


def start_daemon(workdir: Path, extra: Sequence[str] = (), precision: str = "") -> DaemonRun:
    from obscura_client.client import wait_serving

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
        env={**os.environ, **({"OBSCURA_BACKEND_PRECISION": precision} if precision else {})},
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
    from obscura_client.client import Client, FrameFailed, Options, request_for

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
    from obscura_client.client import Client, Options, request_for

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


def memory_of(pid: int, key: str = "VmRSS") -> int:
    """A memory figure of a process in bytes (``VmRSS`` now, ``VmHWM`` its peak; 0 if the
    process is gone)."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith(f"{key}:"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


def soak(
    run: DaemonRun, frames: list[ImageArray], classes: list[str], total: int, every: int = 1000
) -> dict[str, Any]:
    """``total`` JPEG frames on one stream (the frames looped); the daemon's RSS sampled every
    ``every`` frames. Growth is the last sample against the first one after warm-up (the
    first ``every`` frames)."""
    from obscura_client.client import Client, FrameFailed, Options, request_for

    jpegs = [bytes(cv2.imencode(".jpg", f, [cv2.IMWRITE_JPEG_QUALITY, 90])[1]) for f in frames]
    options = Options(classes=dict.fromkeys(classes, "blur"))
    samples: list[tuple[int, float]] = []
    done = 0
    start = time.perf_counter()
    with Client(run.socket) as client:
        requests = (
            request_for(jpegs[i % len(jpegs)], options if i == 0 else None, frame_index=i)
            for i in range(total)
        )
        for result in client.frames(requests, in_flight=4):
            if isinstance(result, FrameFailed):
                raise RuntimeError(str(result))
            done += 1
            if done % every == 0:
                samples.append((done, round(memory_of(run.proc.pid) / 2**20, 1)))
    elapsed = time.perf_counter() - start
    steady = [mib for n, mib in samples if n > every] or [mib for _, mib in samples]
    first = steady[0] if steady else 0.0
    return {
        "frames": done,
        "fps": round(done / elapsed, 2),
        "rss_mib": samples,
        "steady_rss_mib": first,
        "growth_after_warmup_pct": round((steady[-1] - first) / first * 100, 2) if first else 0.0,
        "daemon_peak_rss_mib": round(run.rss_peak() / 2**20, 1),
    }


# --- in-process and the peer --------------------------------------------------------------
def in_process(video: Path, classes: list[str], processor: Any) -> float:
    """Seconds for ``obscura anonymize`` on the video (models loaded beforehand)."""
    from obscura.local import local_runner
    from obscura.pipeline.options import AnonymizeOptions, SaveMask
    from obscura.types import ObjectClass

    options = AnonymizeOptions(
        methods=AnonymizeOptions.choose_methods([ObjectClass.from_label(c) for c in classes]),
        save_mask=SaveMask.NONE,
    )
    with tempfile.TemporaryDirectory() as tmp:
        runner = local_runner(processor, options, Path(tmp), progress=False)
        start = time.perf_counter()
        summary = runner.run([video])
        elapsed = time.perf_counter() - start
    if summary.errors:
        raise RuntimeError(f"obscura anonymize failed: {summary.errors}")
    return elapsed


def cli_through_daemon(
    run: DaemonRun, video: Path, frames: int, classes: Sequence[str]
) -> dict[str, Any]:
    """``obscura anonymize VIDEO --server -a CLASSES`` as a user runs it (a new process)."""
    with tempfile.TemporaryDirectory() as tmp:
        start = time.perf_counter()
        proc = subprocess.run(
            [sys.executable, "-m", "obscura.cli", "anonymize", str(video), "-o", tmp,
             "--server", run.socket, "-a", ",".join(classes), "--no-progress"],
            capture_output=True, text=True, check=False,
        )  # fmt: skip
        elapsed = time.perf_counter() - start
    if proc.returncode != 0:
        raise RuntimeError(f"obscura anonymize --server failed: {proc.stderr[-500:]}")
    return {"seconds": round(elapsed, 2), "fps": round(frames / elapsed, 2)}


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
            [str(venv / "bin" / "deface"), str(video), "-o", str(out), "--backend", PEER_BACKEND],
            capture_output=True, text=True, check=False,
        )  # fmt: skip
        elapsed = time.perf_counter() - start
    if proc.returncode != 0:
        raise RuntimeError(f"deface failed: {proc.stderr[-500:]}")
    return {"seconds": round(elapsed, 2), "fps": round(frames / elapsed, 2)}


_PEER_DETECT = """
import json, sys
import imageio.v2 as imageio
from deface.centerface import CenterFace

# deface's own defaults: the frame at its own size, threshold 0.2, RGB frames from imageio.
centerface = CenterFace(in_shape=None, backend=sys.argv[1])
out = {}
for path in sys.argv[2:]:
    frame = imageio.imread(path)[..., :3]
    centerface.in_shape = None
    dets, _ = centerface(frame, threshold=0.2)
    out[path] = [[float(v) for v in d[:5]] for d in dets]
print(json.dumps(out))
"""


def face_recall(venv: Path, data_dir: Path, detector: Any) -> dict[str, Any]:
    """Face recall and precision at IoU 0.5 on an annotated folder (``annotations.json``):
    deface 1.5.0 at its defaults against Obscura's detector, scored by the same code."""
    from obscura.types import Detections, ObjectClass
    from obscura_tools.evaluate import evaluate, load_annotations

    annotations = load_annotations(data_dir / "annotations.json")
    names = sorted(annotations)
    with tempfile.TemporaryDirectory() as tmp:
        script = Path(tmp) / "peer_detect.py"
        script.write_text(_PEER_DETECT)
        proc = subprocess.run(
            [str(venv / "bin" / "python"), str(script), PEER_BACKEND,
             *[str(data_dir / n) for n in names]],
            capture_output=True, text=True, check=False,
        )  # fmt: skip
    if proc.returncode != 0:
        raise RuntimeError(f"deface detection failed: {proc.stderr[-500:]}")
    boxes = {Path(k).name: v for k, v in json.loads(proc.stdout).items()}
    order = iter(names)

    def peer(_: ImageArray) -> Detections:
        rows = np.asarray(boxes[next(order)], dtype=np.float32).reshape(-1, 5)
        return Detections(rows[:, :4], rows[:, 4], np.full(len(rows), int(ObjectClass.FACE)))

    faces = [ObjectClass.FACE]
    out: dict[str, Any] = {}
    for who, detect in (
        ("deface 1.5.0", peer),
        ("obscura", lambda image: detector.detect(image, faces)),
    ):
        counts = evaluate(detect, annotations, data_dir, faces).classes[ObjectClass.FACE]
        out[who] = counts.as_dict()
    return out


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
                    f"{k} {v}"
                    for k, v in value.items()
                    if k.endswith(("_ms", "_mib", "_s", "_pct"))
                )
                out.append((key, f"{value['fps']} frames/s" + (f" ({extra})" if extra else "")))
            elif isinstance(value, dict) and "overhead_minus_inference" in value:
                o, lat = value["overhead_minus_inference"], value["latency"]
                out.append((key, f"latency p50 {lat['p50_ms']} ms, minus inference p50 "
                                 f"{o['p50_ms']} ms"))  # fmt: skip
            elif key == "face recall":
                out.append((key, "; ".join(
                    f"{who} recall {c['recall']} precision {c['precision']} "
                    f"({c['tp']}/{c['objects']})"
                    for who, c in value.items()
                )))  # fmt: skip
        out += [(f"ratio {k}", f"{v:.2f}") for k, v in self.ratios.items()]
        return out


def run_bench(
    video: Path,
    *,
    frames: int = 100,
    resolutions: Sequence[tuple[int, int]] = (),
    peer: bool = True,
    cache: Path | None = None,
    precision: str = "int8",
    soak_frames: int = 0,
    faces_data: Path | None = None,
    log: Callable[[str], None] = print,
) -> Report:
    report = Report(machine={
        "cpu": cpu_model(), "cores": os.cpu_count(), "python": platform.python_version(),
        "video": video.name, "frames": frames, "precision": precision,
    })  # fmt: skip
    base = load_frames(video, frames)
    native = (base[0].shape[1], base[0].shape[0])
    nat = f"{native[0]}x{native[1]}"
    sizes = [native, *[s for s in resolutions if s != native]]

    def shots() -> Iterator[tuple[tuple[int, int], list[ImageArray]]]:
        # One resolution at a time: 100 frames of 3840x2160 alone take 2.5 GB.
        for size in sizes:
            yield size, base if size == native else load_frames(video, frames, size)

    r = report.results
    for size, shot in shots():
        for preset in ("faces", "default", "all"):
            log(f"models-only limit ({preset}, {size[0]}x{size[1]})")
            r[f"models-only {preset} {size[0]}x{size[1]}"] = models_only(
                shot, PRESETS[preset], precision
            )
    venv = peer_venv(cache or Path(tempfile.gettempdir()) / "obscura-bench") if peer else None
    count = count_frames(video)
    with tempfile.TemporaryDirectory() as tmp:
        run = start_daemon(Path(tmp), precision=precision)
        try:
            for size, shot in shots():
                tag = f"{size[0]}x{size[1]}"
                for preset in ("faces", "default", "all"):
                    log(f"daemon stream, unix, jpeg, {preset}, {tag}")
                    r[f"daemon unix jpeg {preset} {tag}"] = daemon_stream(
                        run, run.socket, shot, PRESETS[preset], encoding="jpeg"
                    )
            for transport, address in (("unix", run.socket), ("tcp", run.tcp)):
                log(f"daemon stream, {transport}, raw bgr, all")
                r[f"daemon {transport} raw all {nat}"] = daemon_stream(
                    run, address, base, PRESETS["all"], encoding="raw"
                )
            log("unary latency, default classes")
            r[f"unary unix jpeg default {nat}"] = unary_overhead(run, base[:50], PRESETS["default"])
            if venv is not None:
                fps_peer, fps_ours = [], []
                fps_e2e: dict[str, list[float]] = {"faces": [], "default": []}
                for _ in range(2):  # alternate so that machine noise cancels
                    log("peer: deface on the video")
                    fps_peer.append(run_peer(venv, video, count)["fps"])
                    log("daemon stream, unix, jpeg, faces (against deface)")
                    stream = daemon_stream(run, run.socket, base, PRESETS["faces"], encoding="jpeg")
                    fps_ours.append(stream["fps"])
                    for preset, runs in fps_e2e.items():
                        log(f"end to end: obscura anonymize VIDEO --server, {preset}")
                        runs.append(cli_through_daemon(run, video, count, PRESETS[preset])["fps"])
                for preset, runs in fps_e2e.items():
                    r[f"end to end: obscura anonymize --server, {preset}"] = {
                        "fps": round(statistics.mean(runs), 2),
                        "runs": runs,
                        "note": "wall time of the command on the video file, as deface's: "
                        f"decode, the daemon's {' and '.join(PRESETS[preset])}, encode and "
                        "write (the daemon already up)",
                    }
                    report.ratios[f"end to end {preset} / deface (faces)"] = statistics.mean(
                        runs
                    ) / statistics.mean(fps_peer)
                r["peer deface 1.5.0"] = {
                    "fps": round(statistics.mean(fps_peer), 2),
                    "runs": fps_peer,
                    "note": f"wall time of `deface --backend {PEER_BACKEND}` on the video, "
                    "model loading included",
                }
                r["daemon faces (alternated with deface)"] = {
                    "fps": round(statistics.mean(fps_ours), 2),
                    "runs": fps_ours,
                }
                report.ratios["daemon faces stream / deface"] = statistics.mean(
                    fps_ours
                ) / statistics.mean(fps_peer)
            if soak_frames:
                log(f"soak: {soak_frames} frames, default classes, RSS sampled")
                every = min(1000, max(1, soak_frames // 10))
                r["soak default"] = soak(run, base, PRESETS["default"], soak_frames, every)
        finally:
            stop_daemon(run)
    from obscura.backends import create_backend
    from obscura.pipeline.detect import Detector
    from obscura.pipeline.frame import FrameProcessor
    from obscura.zoo.store import ModelStore

    detector = Detector(ModelStore(), create_backend(_backend_config(precision)))
    processor = FrameProcessor(detector)
    log("in-process CLI on the video (default classes, faces only)")
    in_process(video, PRESETS["default"], processor)  # warm-up
    for preset in ("default", "faces"):
        seconds = in_process(video, PRESETS[preset], processor)
        r[f"in-process cli {preset}"] = {"fps": round(count / seconds, 2), "frames": count}
    if venv is not None and faces_data is not None:
        log(f"face recall on {faces_data}: deface at its defaults against obscura")
        r["face recall"] = face_recall(venv, faces_data, detector)
    limit = r[f"models-only all {nat}"]["fps"]
    report.ratios["daemon all (raw, unix) / models-only limit"] = (
        r[f"daemon unix raw all {nat}"]["fps"] / limit
    )
    report.ratios["daemon faces (jpeg, unix) / models-only limit"] = (
        r[f"daemon unix jpeg faces {nat}"]["fps"] / r[f"models-only faces {nat}"]["fps"]
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
