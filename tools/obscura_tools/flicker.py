"""The flicker benchmark: how often a face that is in view flashes into view unhidden.

A test video with known ground truth is built from real pictures: face crops taken from the
annotated faces of a folder (``annotations.json``, as ``obscura eval`` reads it) move along
straight paths over a real background without faces, with detector-hostile moments in each
face's life: a few frames of heavy motion blur, a few of partial occlusion by a bar, a few
darker ones. Every face box in every frame is known.

A face counts as *hidden* in a frame when at least ``COVERED`` of its true box is anonymized
(white in the binary mask, or for deface, turned black by ``--replacewith solid``). The
*flicker rate* is the share of (face, frame) pairs where the face is in view in the frame
before, the frame itself and the frame after, is hidden in both neighbours, and is not hidden
in the frame itself: a face flashing into view. The *miss rate* is the share of in-view
(face, frame) pairs not hidden at all.
"""

from __future__ import annotations

import json
import subprocess
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import cv2
import numpy as np
from numpy.typing import NDArray

from obscura.errors import InvalidInput
from obscura.imageio import read_image
from obscura.types import ImageArray, ObjectClass
from obscura_tools.evaluate import load_annotations

COVERED = 0.5
SIZE = (768, 576)


@dataclass
class FaceTrack:
    crop: ImageArray
    start: int
    end: int  # exclusive
    x0: float
    y0: float
    dx: float
    dy: float
    inner: tuple[float, float, float, float] = (0.0, 0.0, 1.0, 1.0)  # the face in the crop
    blur: set[int] = field(default_factory=set)
    occluded: set[int] = field(default_factory=set)
    dark: set[int] = field(default_factory=set)

    def crop_box(self, frame: int) -> tuple[int, int, int, int]:
        """Where the crop (the face and a margin of background) is pasted."""
        t = frame - self.start
        x, y = round(self.x0 + self.dx * t), round(self.y0 + self.dy * t)
        h, w = self.crop.shape[:2]
        return x, y, x + w, y + h

    def box(self, frame: int) -> tuple[int, int, int, int]:
        """The face itself, as annotated."""
        x, y, _, _ = self.crop_box(frame)
        h, w = self.crop.shape[:2]
        fx1, fy1, fx2, fy2 = self.inner
        return x + round(fx1 * w), y + round(fy1 * h), x + round(fx2 * w), y + round(fy2 * h)

    def visible(self, frame: int) -> tuple[int, int, int, int]:
        """The part of the face in view: its upper half while the bar covers the rest."""
        x1, y1, x2, y2 = self.box(frame)
        return (x1, y1, x2, (y1 + y2) // 2) if frame in self.occluded else (x1, y1, x2, y2)


@dataclass
class TestVideo:
    path: Path
    frames: int
    faces: list[FaceTrack]

    def truth(self, frame: int) -> list[tuple[int, tuple[int, int, int, int]]]:
        """(face number, visible face box) of the faces in view in ``frame``: not those that
        the crops of faces pasted after them (later in the list) cover by more than half."""
        live = [(n, f) for n, f in enumerate(self.faces) if f.start <= frame < f.end]
        out = []
        for k, (n, face) in enumerate(live):
            x1, y1, x2, y2 = face.visible(frame)
            if x2 <= x1 or y2 <= y1:
                continue
            under = np.zeros((y2 - y1, x2 - x1), bool)
            for _, later in live[k + 1 :]:
                cx1, cy1, cx2, cy2 = later.crop_box(frame)
                under[max(0, cy1 - y1) : max(0, cy2 - y1), max(0, cx1 - x1) : max(0, cx2 - x1)] = (
                    True
                )
            if under.mean() <= 0.5:
                out.append((n, (x1, y1, x2, y2)))
        return out


def face_crops(
    data_dir: Path, least: int = 40, half: int | None = None
) -> list[tuple[ImageArray, tuple[float, float, float, float]]]:
    """Crops (the face and a margin) of the non-difficult annotated faces at least ``least``
    pixels tall, each with the face's box in it as fractions of the crop. ``half`` 0 or 1:
    every other face only (in file and box order), so that two halves share no face."""
    annotations = json.loads((data_dir / "annotations.json").read_text())
    crops = []
    for name, objects in sorted(annotations.items()):
        boxes = [o["bbox"] for o in objects if o.get("label") == "face" and not o.get("difficult")]
        boxes = [b for b in boxes if b[3] - b[1] >= least]
        if not boxes:
            continue
        image = read_image(data_dir / name)
        for x1, y1, x2, y2 in boxes:
            mx, my = 0.15 * (x2 - x1), 0.15 * (y2 - y1)
            cx1, cy1 = max(0, int(x1 - mx)), max(0, int(y1 - my))
            crop = image[cy1 : int(y2 + my), cx1 : int(x2 + mx)]
            if crop.size:
                h, w = crop.shape[:2]
                inner = ((x1 - cx1) / w, (y1 - cy1) / h, (x2 - cx1) / w, (y2 - cy1) / h)
                crops.append((np.ascontiguousarray(crop), inner))
    if half is not None:
        crops = crops[half::2]
    if not crops:
        raise InvalidInput(f"{data_dir}: no annotated face of {least} px or more")
    return crops


def background_names(data_dir: Path) -> list[str]:
    """The photos of ``data_dir`` that the faces move over: those its annotations show without
    a face (and with faces labelled completely, where ``annotations_meta.json`` says which
    labels are); of these, the ones without a person too where there are any (a person's face
    may show without being labelled)."""
    annotations = load_annotations(data_dir / "annotations.json")
    faceless = [
        name
        for name, truth in sorted(annotations.items())
        if truth[ObjectClass.FACE].complete and not len(truth[ObjectClass.FACE].xyxy)
    ]
    nobody = [n for n in faceless if not len(annotations[n][ObjectClass.PERSON].xyxy)]
    return nobody or faceless


def build(
    data_dir: Path, path: Path, frames: int = 300, seed: int = 7, half: int | None = None
) -> TestVideo:
    """Writes the test video (MPEG-4, 25 frames/s) and returns its ground truth; ``half``: see
    :func:`face_crops`."""
    import av

    rng = np.random.default_rng(seed)
    crops = face_crops(data_dir, half=half)
    names = background_names(data_dir)
    if not names:
        raise InvalidInput(
            f"{data_dir}: no photo without faces in annotations.json to use as a background"
        )
    backgrounds: list[ImageArray] = [
        np.asarray(cv2.resize(read_image(data_dir / name), SIZE, interpolation=cv2.INTER_AREA))
        for name in names
    ]
    faces: list[FaceTrack] = []
    width, height = SIZE
    for start in range(0, frames - 30, 12):
        crop, inner = crops[int(rng.integers(len(crops)))]
        side = int(rng.integers(48, 130))
        scale = side / crop.shape[0]
        crop = np.asarray(
            cv2.resize(crop, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA), np.uint8
        )
        h, w = crop.shape[:2]
        life = int(rng.integers(30, 90))
        end = min(frames, start + life)
        x0 = float(rng.uniform(0, width - w))
        y0 = float(rng.uniform(0, height - h))
        x1 = float(rng.uniform(0, width - w))
        y1 = float(rng.uniform(0, height - h))
        steps = max(1, end - start - 1)
        face = FaceTrack(crop, start, end, x0, y0, (x1 - x0) / steps, (y1 - y0) / steps, inner)
        for hostile in (face.blur, face.occluded, face.dark):
            at = int(rng.integers(start + 3, max(start + 4, end - 5)))
            hostile.update(range(at, min(end - 1, at + int(rng.integers(1, 4)))))
        faces.append(face)
    video = TestVideo(path, frames, faces)
    with av.open(str(path), "w") as out:
        stream = out.add_stream("mpeg4", rate=25)
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        stream.bit_rate = 8_000_000
        for i in range(frames):
            frame = backgrounds[(i // 100) % len(backgrounds)].copy()
            for face in faces:
                if face.start <= i < face.end:
                    _paste(frame, face, i)
            av_frame = av.VideoFrame.from_ndarray(frame, format="bgr24")
            av_frame.pts = i
            for packet in stream.encode(av_frame):
                out.mux(packet)
        for packet in stream.encode(None):
            out.mux(packet)
    return video


def _paste(frame: ImageArray, face: FaceTrack, i: int) -> None:
    patch: Any = face.crop
    if i in face.blur:
        k = max(9, patch.shape[1] // 3) | 1
        kernel = np.zeros((k, k), np.float32)
        kernel[k // 2, :] = 1.0 / k
        patch = cv2.filter2D(patch, -1, kernel)
    if i in face.dark:
        patch = cv2.convertScaleAbs(patch, alpha=0.35)
    x1, y1, x2, y2 = face.crop_box(i)
    h, w = frame.shape[:2]
    cx1, cy1, cx2, cy2 = max(0, x1), max(0, y1), min(w, x2), min(h, y2)
    if cx2 <= cx1 or cy2 <= cy1:
        return
    frame[cy1:cy2, cx1:cx2] = patch[cy1 - y1 : cy2 - y1, cx1 - x1 : cx2 - x1]
    if i in face.occluded:  # a grey bar from the middle of the face down
        fx1, _, fx2, fy2 = face.box(i)
        _, vy1, _, _ = face.visible(i)
        top = max(0, vy1 + (fy2 - vy1) // 2)
        frame[top:cy2, max(0, fx1 - (fx2 - fx1) // 4) : min(w, fx2 + (fx2 - fx1) // 4)] = 128


def score(video: TestVideo, hidden_masks: Iterator[NDArray[Any]]) -> dict[str, Any]:
    """Flicker and miss rates from per-frame masks of hidden pixels (bool or 0/255)."""
    hidden: list[dict[int, bool]] = []
    for i, frame_mask in enumerate(hidden_masks):
        mask = np.asarray(frame_mask) > 0
        row = {}
        for n, (x1, y1, x2, y2) in video.truth(i):
            h, w = mask.shape[:2]
            box = mask[max(0, y1) : min(h, y2), max(0, x1) : min(w, x2)]
            row[n] = bool(box.size) and float(box.mean()) >= COVERED
        hidden.append(row)
    if len(hidden) != video.frames:
        raise InvalidInput(f"{len(hidden)} masks for {video.frames} frames")
    in_view = sum(len(r) for r in hidden)
    missed = sum(not v for r in hidden for v in r.values())
    eligible = flicker = 0
    for i in range(1, video.frames - 1):
        for n, now in hidden[i].items():
            before, after = hidden[i - 1].get(n), hidden[i + 1].get(n)
            if before is None or after is None:
                continue
            eligible += 1
            if before and after and not now:
                flicker += 1
    return {
        "faces": len(video.faces),
        "face_frames": in_view,
        "miss_rate": round(missed / in_view, 4) if in_view else 0.0,
        "flicker_frames": flicker,
        "flicker_rate": round(flicker / eligible, 4) if eligible else 0.0,
    }


def obscura_masks(
    video: TestVideo, processor: Any, track_hold: int, detect_every: int = 1
) -> tuple[Iterator[NDArray[Any]], float]:
    """Runs the in-process CLI path on the video (faces only); its binary masks and frames/s."""
    import time

    from obscura.local import local_runner
    from obscura.pipeline.options import AnonymizeOptions, SaveMask
    from obscura_client.video import read_mask_video

    options = AnonymizeOptions(
        methods=AnonymizeOptions.choose_methods([ObjectClass.FACE]),
        save_mask=SaveMask.BINARY,
        track_hold=track_hold,
        detect_every=detect_every,
    )
    out = Path(tempfile.mkdtemp(prefix="flicker-"))
    runner = local_runner(processor, options, out, progress=False)
    start = time.perf_counter()
    summary = runner.run([video.path])
    seconds = time.perf_counter() - start
    if summary.errors:
        raise InvalidInput(f"obscura failed on the test video: {summary.errors}")
    masks = list(read_mask_video(out / f"{video.path.stem}_bin_mask.mkv"))
    return iter(masks), video.frames / seconds


def deface_masks(video: TestVideo, venv: Path, backend: str) -> Iterator[NDArray[Any]]:
    """deface at its defaults with ``--replacewith solid``: its hidden pixels are the ones it
    turned black where the input was not."""
    import av

    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "deface.mp4"
        proc = subprocess.run(
            [str(venv / "bin" / "deface"), str(video.path), "-o", str(out),
             "--replacewith", "solid", "--backend", backend],
            capture_output=True, text=True, check=False,
        )  # fmt: skip
        if proc.returncode != 0:
            raise RuntimeError(f"deface failed: {proc.stderr[-500:]}")
        masks: list[NDArray[Any]] = []
        with av.open(str(video.path)) as a, av.open(str(out)) as b:
            for fa, fb in zip(a.decode(video=0), b.decode(video=0), strict=False):
                ya = fa.to_ndarray(format="gray")
                yb = fb.to_ndarray(format="gray")
                masks.append((yb < 24) & (ya > 40))
    return iter(masks)


def run_flicker(
    data_dir: Path,
    *,
    frames: int = 300,
    holds: tuple[int, ...] = (0, 4, 8, 16),
    peer: bool = True,
    half: int | None = None,
    log: Callable[[str], None] = print,
) -> dict[str, Any]:
    from obscura.backends import BackendConfig, create_backend
    from obscura.pipeline.detect import Detector
    from obscura.pipeline.frame import FrameProcessor
    from obscura.zoo.store import ModelStore
    from obscura_tools.bench import PEER_BACKEND, peer_venv

    report: dict[str, Any] = {}
    with tempfile.TemporaryDirectory() as tmp:
        log(f"building the {frames}-frame test video")
        video = build(data_dir, Path(tmp) / "flicker.mp4", frames, half=half)
        processor = FrameProcessor(Detector(ModelStore(), create_backend(BackendConfig())))
        for hold in holds:
            log(f"obscura, track_hold {hold}")
            masks, fps = obscura_masks(video, processor, hold)
            report[f"obscura track_hold {hold}"] = {**score(video, masks), "fps": round(fps, 2)}
        log("obscura, track_hold 8, detect every 3rd frame")
        masks, fps = obscura_masks(video, processor, 8, 3)
        report["obscura track_hold 8 detect_every 3"] = {
            **score(video, masks),
            "fps": round(fps, 2),
        }
        if peer:
            venv = peer_venv(Path(tempfile.gettempdir()) / "obscura-bench")
            log("deface 1.5.0 at its defaults")
            report["deface 1.5.0"] = score(video, deface_masks(video, venv, PEER_BACKEND))
    return report
