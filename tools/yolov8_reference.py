"""Reference outputs of YOLOv8 checkpoints computed by ultralytics / torch themselves.

The model store converts YOLOv8 ``.pt`` checkpoints without torch
(:mod:`obscura.zoo.yolov8_graph`); ``tests/e2e/models/test_yolov8_reference.py`` compares that
conversion with the numbers this script records in ``tests/data/yolov8/``:

- ``pyplatex_reference.npz``: the pyplatex 0.0.5 plate detector (the store's
  ``pyplatex-plates``), raw inference output ``[1, 5, 8400]`` in float32 for (a) a seeded
  random-uniform input and (b) the test photo ``opencv_licenseplate_motion.jpg`` letterboxed
  to 640x640 as the ``yolov8`` adapter does it (the SHA-256 of that canvas is recorded, so a
  different letterbox is noticed rather than read as a conversion error);
- ``tiny_detect.pt`` / ``tiny_detect_reference.npz``: a tiny randomly initialised YOLOv8
  detection model (3 classes) made here, and its output on a seeded input of 320x256;
- ``tiny_seg.pt`` / ``tiny_seg_reference.npz``: the same for a tiny YOLOv8 segmentation model
  (2 classes, 32 masks): both outputs, ``[1, 4 + 2 + 32, N]`` and the prototypes, on 128x96.

The tiny models' weights are random and our own; their batch-norm statistics and head biases
are randomised too, so folding and the score range are exercised. They have the YOLOv8
layout at 1/32 width (8..16 channels) but ``reg_max`` 8 instead of 16, which keeps the
checkpoints at ~300 / ~400 KB (the box branch is ``4 * reg_max`` channels wide). Their
weights are rounded to float16 before the reference is computed, as they are saved
(ultralytics saves half precision), so both sides run the same numbers.

torch and ultralytics are NOT dependencies of the project (and this file is not part of the
``obscura`` package nor type-checked with it). Run it in a scratch virtualenv::

    python3.11 -m venv /tmp/torchref
    /tmp/torchref/bin/pip install torch ultralytics
    /tmp/torchref/bin/python tools/yolov8_reference.py \\
        --pyplatex ~/.cache/obscura/models/.checkpoints/plate_detector_model_1.pt \\
        --photo "$(make -s media)/opencv_licenseplate_motion.jpg"

(recorded with torch 2.14.1, ultralytics 8.4.190 and opencv-python-headless 4.14.0.94, the
OpenCV the project uses, on CPU in float32).
"""

from __future__ import annotations

import argparse
import hashlib
import io
import zipfile
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import torch
import ultralytics
from ultralytics.nn.tasks import DetectionModel, SegmentationModel, load_checkpoint

OUT = Path(__file__).resolve().parents[1] / "tests" / "data" / "yolov8"
SEED = 20240611  # the random inputs: np.random.default_rng(SEED).random(shape, np.float32)
PAD_VALUE = 114

TINY_BACKBONE = [
    [-1, 1, "Conv", [64, 3, 2]],  # 0-P1/2
    [-1, 1, "Conv", [128, 3, 2]],  # 1-P2/4
    [-1, 1, "C2f", [128, True]],
    [-1, 1, "Conv", [256, 3, 2]],  # 3-P3/8
    [-1, 2, "C2f", [256, True]],
    [-1, 1, "Conv", [512, 3, 2]],  # 5-P4/16
    [-1, 1, "C2f", [512, True]],
    [-1, 1, "Conv", [1024, 3, 2]],  # 7-P5/32
    [-1, 1, "C2f", [1024, True]],
    [-1, 1, "SPPF", [1024, 5]],  # 9
]
TINY_NECK = [
    [-1, 1, "nn.Upsample", [None, 2, "nearest"]],
    [[-1, 6], 1, "Concat", [1]],
    [-1, 1, "C2f", [512]],  # 12
    [-1, 1, "nn.Upsample", [None, 2, "nearest"]],
    [[-1, 4], 1, "Concat", [1]],
    [-1, 1, "C2f", [256]],  # 15 (P3/8)
    [-1, 1, "Conv", [256, 3, 2]],
    [[-1, 12], 1, "Concat", [1]],
    [-1, 1, "C2f", [512]],  # 18 (P4/16)
    [-1, 1, "Conv", [512, 3, 2]],
    [[-1, 9], 1, "Concat", [1]],
    [-1, 1, "C2f", [1024]],  # 21 (P5/32)
]


def tiny_yaml(nc: int, segment: bool) -> dict[str, Any]:
    head = (
        [[15, 18, 21], 1, "Segment", [nc, 32, 256]]
        if segment
        else [[15, 18, 21], 1, "Detect", [nc]]
    )
    return {
        "nc": nc,
        "scales": {"t": [0.33, 0.03125, 512]},  # depth, width, max channels: 8..16 channels
        "scale": "t",
        "reg_max": 8,  # YOLOv8 uses 16; 8 quarters the box branch (and tests that it is read)
        "backbone": TINY_BACKBONE,
        "head": [*TINY_NECK, head],
    }


def random_input(width: int, height: int) -> np.ndarray:
    return np.random.default_rng(SEED).random((1, 3, height, width), dtype=np.float32)


def letterboxed(photo: Path, size: tuple[int, int] = (640, 640)) -> np.ndarray:
    """The photo as the ``yolov8`` adapter feeds it: resized keeping its aspect ratio (area
    averaging below half size, else bilinear), centred on grey 114, RGB, 0..1, NCHW; this
    mirrors obscura.models.base.letterbox."""
    image = cv2.imread(str(photo), cv2.IMREAD_COLOR)
    h, w = image.shape[:2]
    in_w, in_h = size
    scale = min(in_w / w, in_h / h)
    new_w, new_h = max(1, round(w * scale)), max(1, round(h * scale))
    interp = cv2.INTER_AREA if scale < 0.5 else cv2.INTER_LINEAR
    resized = cv2.resize(image, (new_w, new_h), interpolation=interp)
    pad_x, pad_y = (in_w - new_w) // 2, (in_h - new_h) // 2
    canvas = np.full((in_h, in_w, 3), PAD_VALUE, dtype=np.uint8)
    canvas[pad_y : pad_y + new_h, pad_x : pad_x + new_w] = resized
    return canvas


def canvas_to_input(canvas: np.ndarray) -> np.ndarray:
    rgb = canvas[:, :, ::-1].astype(np.float32) / np.float32(255.0)
    return np.ascontiguousarray(rgb.transpose(2, 0, 1)[None])


def run(model: torch.nn.Module, x: np.ndarray) -> list[np.ndarray]:
    """The model's inference outputs (what an export gives), float32."""
    with torch.no_grad():
        y = model(torch.from_numpy(x))
    first = y[0]  # eval: (decoded, raw) for Detect, ((decoded, proto), raw) for Segment
    tensors = list(first) if isinstance(first, tuple | list) else [first]
    return [t.detach().float().numpy() for t in tensors]


def pyplatex(path: Path, photo: Path) -> None:
    model, _ = load_checkpoint(path)  # as ultralytics loads it: ema or model, float32, eval
    model = model.float().eval()
    canvas = letterboxed(photo)
    outputs = {
        "random": run(model, random_input(640, 640))[0],
        "photo": run(model, canvas_to_input(canvas))[0],
    }
    for name, out in outputs.items():
        assert out.shape == (1, 5, 8400), (name, out.shape)
        print(
            f"pyplatex {name}: max score {out[0, 4].max():.4f} at {out[0, :, out[0, 4].argmax()]}"
        )
    np.savez_compressed(
        OUT / "pyplatex_reference.npz",
        **{k: v.astype(np.float32) for k, v in outputs.items()},
        seed=np.int64(SEED),
        photo_canvas_sha256=np.str_(hashlib.sha256(canvas.tobytes()).hexdigest()),
        versions=np.str_(f"torch {torch.__version__}, ultralytics {ultralytics.__version__}"),
    )


def randomise(model: torch.nn.Module, generator: torch.Generator) -> None:
    """Non-trivial batch-norm statistics and affine terms, and spread-out head biases."""
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                n = m.num_features
                m.running_mean.copy_(torch.randn(n, generator=generator) * 0.5)
                m.running_var.copy_(torch.rand(n, generator=generator) * 1.5 + 0.5)
                m.weight.copy_(torch.rand(n, generator=generator) + 0.5)
                m.bias.copy_(torch.randn(n, generator=generator) * 0.2)
        head = model.model[-1]
        for branch in head.cv3:
            last = branch[-1]
            last.bias.copy_(torch.randn(last.bias.shape, generator=generator))


def tiny(name: str, nc: int, segment: bool, size: tuple[int, int]) -> None:
    torch.manual_seed(SEED)
    generator = torch.Generator().manual_seed(SEED)
    cls = SegmentationModel if segment else DetectionModel
    model = cls(tiny_yaml(nc, segment), ch=3, nc=nc, verbose=False)
    randomise(model, generator)
    model = model.half().float().eval()  # the weights as saved (half), run in float32
    outputs = run(model, random_input(*size))
    saved = model.half()
    saved.args = {}
    checkpoint = {
        "date": "2024-06-11T00:00:00",
        "version": ultralytics.__version__,
        "epoch": -1,
        "best_fitness": None,
        "model": saved,
        "ema": None,
        "updates": None,
        "optimizer": None,
        "train_args": {"task": "segment" if segment else "detect", "imgsz": list(size)},
    }
    buffer = io.BytesIO()
    torch.save(checkpoint, buffer)
    (OUT / f"{name}.pt").write_bytes(buffer.getvalue())
    arrays = {f"output{i}": out.astype(np.float32) for i, out in enumerate(outputs)}
    np.savez_compressed(
        OUT / f"{name}_reference.npz",
        **arrays,
        seed=np.int64(SEED),
        input_size=np.array(size, np.int64),
        versions=np.str_(f"torch {torch.__version__}, ultralytics {ultralytics.__version__}"),
    )
    shapes = {k: v.shape for k, v in arrays.items()}
    print(f"{name}: {len(buffer.getvalue())} bytes, outputs {shapes}")
    with zipfile.ZipFile(io.BytesIO(buffer.getvalue())) as zf:
        assert any(n.endswith("/data.pkl") for n in zf.namelist())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--pyplatex", type=Path, help="plate_detector_model_1.pt (pyplatex 0.0.5)")
    parser.add_argument("--photo", type=Path, help="opencv_licenseplate_motion.jpg")
    args = parser.parse_args()
    torch.set_num_threads(1)  # deterministic reductions
    OUT.mkdir(parents=True, exist_ok=True)
    if args.pyplatex:
        pyplatex(args.pyplatex, args.photo)
    tiny("tiny_detect", nc=3, segment=False, size=(320, 256))
    tiny("tiny_seg", nc=2, segment=True, size=(128, 96))


if __name__ == "__main__":
    main()
