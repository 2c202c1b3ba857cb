"""The plate check: training the project's own second opinion on unsure plates.

The plate model (a YOLOv8n) also boxes tail-lights, badges, grilles, signs and scene text, with
scores that overlap those of the small and blurred plates it finds. The plate check is a small
CNN (four 3x3 convolutions, 61 k weights) that sees a plate candidate in its surroundings
(:func:`obscura.pipeline.plates.check_patch`, 64x32 px) and says whether it is a plate. The
pipeline asks it about the plates scored under ``plate_check_below`` only.

Recipe (``python -m obscura_tools.platecheck OUT.onnx``; needs PyTorch, CPU is enough, about
three minutes of training on 2 cores after the data):

1. composite plate sets of variant a, seeds 10 to 15, 60 frames each (``obscura plates
   build``): never the sets the figures are measured on (seeds 0 and 1, and variant b, which
   no part of the project is trained or tuned on);
2. the current default detector on each frame, plates down to score 0.1: a candidate at IoU
   0.5 or more with a labelled plate is a plate (one under 15 px wide too, which the
   benchmark does not count); one under 0.2 with every labelled plate is not; the rest (a
   box on part of a plate) is left out;
2b. the everyday pictures of ``platebench/everyday.toml`` (signs, scene text, labels, people,
   screens; no plate and no vehicle in any), with the same detector less its rule for plates
   found alone (so that it boxes what a sign or a shirt shows it), plates down to 0.1: every
   box is not a plate;
3. their patches; training with AdamW, one-cycle schedule, weighted cross-entropy, random
   mirroring, gain, offset and shifts, seed 0;
4. the network written as ONNX (batch normalisation folded into the convolutions, a sigmoid
   at the end), input ``patch`` [N, 3, 32, 64] BGR in 0..1, output ``plate`` [N, 1].

``--photos-half 0|1`` trains on the photos of one half only (by a hash of their names), so
that the other half measures the check on photos it never saw.
"""

from __future__ import annotations

import argparse
import dataclasses
import hashlib
import itertools
import json
import logging
import zlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np
import onnx
from numpy.typing import NDArray
from onnx import TensorProto, helper, numpy_helper

from obscura.models.base import iou_matrix
from obscura.pipeline.plates import CHECK_SIZE, check_patch
from obscura.types import Detections, ImageArray, ObjectClass

log = logging.getLogger(__name__)

SEEDS = (10, 11, 12, 13, 14, 15)
FRAMES = 60
CANDIDATE_SCORE = 0.1  # candidates down to this plate score
PLATE_IOU = 0.5  # a candidate this much on a labelled plate is one
NOT_PLATE_IOU = 0.2  # a candidate under this with every labelled plate is not one
CHANNELS = (16, 32, 64, 64)  # the convolutions' widths; a 2x2 max-pool after each but the last
BN_EPS = 1e-5


@dataclass
class Samples:
    """Patches (N, 32, 64, 3) BGR uint8, labels (1: a plate), the plate model's scores and
    the photo each candidate lies on."""

    patches: NDArray[np.uint8]
    labels: NDArray[np.int64]
    scores: NDArray[np.float32]
    photos: list[str]


def photo_half(photo: str) -> int:
    """The half (0 or 1) a photo falls in, by a hash of its name."""
    return zlib.crc32(photo.encode()) % 2


def label_candidates(boxes: NDArray[np.float32], truth: NDArray[np.float32]) -> NDArray[np.int64]:
    """1 for a plate (a difficult one too: a plate too small to count in the benchmark is
    still a plate), 0 for not one, -1 for neither (a box on part of a plate)."""
    out = np.zeros(len(boxes), np.int64)
    if not len(boxes) or not len(truth):
        return out
    ious = iou_matrix(boxes, truth)
    top = ious.max(axis=1)
    out[top >= NOT_PLATE_IOU] = -1
    out[top >= PLATE_IOU] = 1
    return out


def _photo_at(frame: dict[str, Any], box: Sequence[float], size: tuple[int, int]) -> str:
    grid = int(frame["grid"])
    cx, cy = (box[0] + box[2]) / 2, (box[1] + box[3]) / 2
    col = min(grid - 1, max(0, int(cx // (size[0] / grid))))
    row = min(grid - 1, max(0, int(cy // (size[1] / grid))))
    return str(frame["photos"][row * grid + col])


def collect(set_dir: Path, detect: Any) -> Samples:
    """The labelled candidates of one composite set (``detect(image)``: the plates found)."""
    from obscura.imageio import read_image

    annotations = json.loads((set_dir / "annotations.json").read_text())
    manifest = json.loads((set_dir / "manifest.json").read_text())
    frames = {f["image"]: f for f in manifest["frames"]}
    size = (int(manifest["frame_size"][0]), int(manifest["frame_size"][1]))
    patches: list[ImageArray] = []
    labels: list[int] = []
    scores: list[float] = []
    photos: list[str] = []
    for name in sorted(annotations):
        image = read_image(set_dir / "images" / name)
        found = detect(image)
        plates = [o for o in annotations[name] if o["label"] == "plate"]
        truth = np.asarray([o["bbox"] for o in plates], np.float32).reshape(-1, 4)
        for box, score, label in zip(
            found.xyxy.tolist(),
            found.scores.tolist(),
            label_candidates(found.xyxy, truth).tolist(),
            strict=True,
        ):
            if label < 0:
                continue
            patches.append(check_patch(image, box))
            labels.append(label)
            scores.append(score)
            photos.append(_photo_at(frames[name], box, size))
    return Samples(
        np.stack(patches) if patches else np.zeros((0, CHECK_SIZE[1], CHECK_SIZE[0], 3), np.uint8),
        np.asarray(labels, np.int64),
        np.asarray(scores, np.float32),
        photos,
    )


def everyday_pictures(cache_dir: Path, archives_dir: Path | None = None) -> list[Path]:
    """The pictures ``platebench/everyday.toml`` lists, fetched once into ``cache_dir`` and
    verified."""
    from obscura.zoo.store import fetch_sample
    from obscura_tools.platebench.build import load_photos

    text = resources.files("obscura_tools.platebench").joinpath("everyday.toml").read_text()
    paths: list[Path] = []
    for name, photo in sorted(load_photos(text).items()):
        paths += fetch_sample(photo.sample, cache_dir / name, archives_dir)
    return paths


def collect_everyday(
    pictures: Sequence[Path], detect: Callable[[ImageArray], Detections]
) -> Samples:
    """The candidates ``detect`` finds on ``pictures`` (with no plate): none is a plate."""
    from obscura.imageio import read_image

    patches: list[ImageArray] = []
    scores: list[float] = []
    photos: list[str] = []
    for path in pictures:
        image = read_image(path)
        found = detect(image)
        for box, score in zip(found.xyxy.tolist(), found.scores.tolist(), strict=True):
            patches.append(check_patch(image, box))
            scores.append(score)
            photos.append(f"everyday/{path.name}")
    return Samples(
        np.stack(patches) if patches else np.zeros((0, CHECK_SIZE[1], CHECK_SIZE[0], 3), np.uint8),
        np.zeros(len(patches), np.int64),
        np.asarray(scores, np.float32),
        photos,
    )


def network() -> Any:
    """The check's network (PyTorch), logits out."""
    from torch import nn

    layers: list[Any] = []
    before = 3
    for i, width in enumerate(CHANNELS):
        layers += [nn.Conv2d(before, width, 3, padding=1, bias=False), nn.BatchNorm2d(width)]
        layers.append(nn.ReLU())
        if i < len(CHANNELS) - 1:
            layers.append(nn.MaxPool2d(2))
        before = width
    layers += [nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Dropout(0.3), nn.Linear(before, 1)]
    return nn.Sequential(*layers)


def train(samples: Samples, *, epochs: int = 40, seed: int = 0) -> Any:
    """A trained network (PyTorch, eval mode)."""
    import torch
    from torch import nn

    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    model = network()
    x = torch.from_numpy(samples.patches).permute(0, 3, 1, 2).float() / 255.0
    y = torch.from_numpy(samples.labels).float()
    batch = 64
    steps = epochs * ((len(y) + batch - 1) // batch)
    opt = torch.optim.AdamW(model.parameters(), 2e-3, weight_decay=1e-3)
    schedule = torch.optim.lr_scheduler.OneCycleLR(opt, 3e-3, total_steps=steps)
    positive = float(y.mean())
    loss_of = nn.BCEWithLogitsLoss(pos_weight=torch.tensor((1 - positive) / positive))
    for epoch in range(epochs):
        model.train()
        order = torch.randperm(len(y))
        total = 0.0
        for start in range(0, len(y), batch):
            idx = order[start : start + batch]
            xb = x[idx].clone()
            flip = torch.rand(len(idx)) < 0.5
            xb[flip] = xb[flip].flip(3)
            gain = 0.6 + 0.8 * torch.rand(len(idx), 1, 1, 1)
            bias = 0.15 * (torch.rand(len(idx), 1, 1, 1) - 0.5)
            dx, dy = int(rng.integers(-4, 5)), int(rng.integers(-2, 3))
            xb = torch.roll(xb * gain + bias, (dy, dx), (2, 3)).clamp(0, 1)
            loss = loss_of(model(xb).squeeze(1), y[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
            schedule.step()
            total += float(loss.detach()) * len(idx)
        if epoch % 10 == 9:
            log.info("epoch %d: loss %.4f", epoch + 1, total / len(y))
    model.eval()
    return model


def weights_of(model: Any) -> list[NDArray[np.float32]]:
    """The network's weights as arrays, batch normalisation folded into each convolution:
    (kernel, bias) per convolution, then the linear layer's (weight, bias)."""
    from torch import nn

    out: list[NDArray[np.float32]] = []
    modules = list(model)
    for conv, norm in itertools.pairwise(modules):
        if isinstance(conv, nn.Conv2d) and isinstance(norm, nn.BatchNorm2d):
            std = (norm.running_var + norm.eps).sqrt()
            factor = (norm.weight / std).detach().numpy()
            kernel = conv.weight.detach().numpy() * factor[:, None, None, None]
            bias = (norm.bias - norm.running_mean * norm.weight / std).detach().numpy()
            out += [kernel.astype(np.float32), bias.astype(np.float32)]
    linear = modules[-1]
    out += [linear.weight.detach().numpy().astype(np.float32)]
    out += [linear.bias.detach().numpy().astype(np.float32)]
    return out


def to_onnx(weights: Sequence[NDArray[np.float32]]) -> Any:
    """The check as an ONNX model from :func:`weights_of`'s arrays."""
    nodes = []
    inits = []
    current = "patch"
    convs = (len(weights) - 2) // 2
    for i in range(convs):
        kernel, bias = weights[2 * i], weights[2 * i + 1]
        inits += [numpy_helper.from_array(kernel, f"w{i}"), numpy_helper.from_array(bias, f"b{i}")]
        nodes.append(
            helper.make_node(
                "Conv", [current, f"w{i}", f"b{i}"], [f"c{i}"], kernel_shape=[3, 3], pads=[1] * 4
            )
        )
        nodes.append(helper.make_node("Relu", [f"c{i}"], [f"r{i}"]))
        current = f"r{i}"
        if i < convs - 1:
            nodes.append(
                helper.make_node(
                    "MaxPool", [current], [f"p{i}"], kernel_shape=[2, 2], strides=[2, 2]
                )
            )
            current = f"p{i}"
    inits += [
        numpy_helper.from_array(weights[-2], "fc_w"),
        numpy_helper.from_array(weights[-1], "fc_b"),
    ]
    nodes += [
        helper.make_node("GlobalAveragePool", [current], ["gap"]),
        helper.make_node("Flatten", ["gap"], ["flat"], axis=1),
        helper.make_node("Gemm", ["flat", "fc_w", "fc_b"], ["logit"], transB=1),
        helper.make_node("Sigmoid", ["logit"], ["plate"]),
    ]
    w, h = CHECK_SIZE
    graph = helper.make_graph(
        nodes,
        "plate_check",
        [helper.make_tensor_value_info("patch", TensorProto.FLOAT, ["n", 3, h, w])],
        [helper.make_tensor_value_info("plate", TensorProto.FLOAT, ["n", 1])],
        inits,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    model.producer_name = "obscura-tools platecheck"
    onnx.checker.check_model(model)
    return model


def reference(weights: Sequence[NDArray[np.float32]], patches: NDArray[Any]) -> Any:
    """The check's forward pass in numpy (NCHW float input): what the ONNX model must give."""
    x = patches.astype(np.float64)
    convs = (len(weights) - 2) // 2
    for i in range(convs):
        kernel, bias = weights[2 * i].astype(np.float64), weights[2 * i + 1].astype(np.float64)
        padded = np.pad(x, ((0, 0), (0, 0), (1, 1), (1, 1)))
        n, _, h, w = x.shape
        out = np.zeros((n, kernel.shape[0], h, w))
        for dy in range(3):
            for dx in range(3):
                window = padded[:, :, dy : dy + h, dx : dx + w]
                out += np.einsum("nchw,oc->nohw", window, kernel[:, :, dy, dx])
        x = np.maximum(out + bias[None, :, None, None], 0)
        if i < convs - 1:
            n, c, h, w = x.shape
            x = x[:, :, : h // 2 * 2, : w // 2 * 2].reshape(n, c, h // 2, 2, w // 2, 2)
            x = x.max(axis=(3, 5))
    pooled = x.mean(axis=(2, 3))
    logit = pooled @ weights[-2].T.astype(np.float64) + weights[-1]
    return 1 / (1 + np.exp(-logit))


def build_samples(
    work: Path, seeds: Sequence[int], frames: int, *, everyday: bool = True
) -> Samples:
    """Builds the composite sets (variant a) into ``work`` and collects their candidates with
    the default detector, and (``everyday``) the everyday pictures' candidates."""
    from obscura.cli.common import load_detector
    from obscura.config import load_config
    from obscura_tools.platebench.build import build

    config = load_config(None)
    # The detector without its check: the check must learn from what the plate model gives.
    config = dataclasses.replace(
        config, detector=dataclasses.replace(config.detector, plate_check_model=None)
    )
    detector = load_detector(config)
    cut = {ObjectClass.LICENSE_PLATE: CANDIDATE_SCORE}
    parts = []
    for seed in seeds:
        out = work / f"seed{seed}"
        if not (out / "manifest.json").exists():
            build(out, seed=seed, frames=frames, cache_dir=config.cache_dir / "platebench")
        parts.append(
            collect(out, lambda image: detector.detect(image, [ObjectClass.LICENSE_PLATE], cut))
        )
        log.info(
            "seed %d: %d candidates, %d plates", seed, len(parts[-1].labels), sum(parts[-1].labels)
        )
    if everyday:
        # Nothing vouches for a plate on these pictures: without the alone rule the detector
        # shows what the plate model takes for one there.
        alone = dataclasses.replace(config.detector, plate_check_model=None, plate_alone_score=0.0)
        anywhere = load_detector(dataclasses.replace(config, detector=alone))
        pictures = everyday_pictures(config.cache_dir / "platebench" / "everyday")
        parts.append(
            collect_everyday(
                pictures, lambda image: anywhere.detect(image, [ObjectClass.LICENSE_PLATE], cut)
            )
        )
        log.info("everyday pictures: %d, %d candidates", len(pictures), len(parts[-1].labels))
    return Samples(
        np.concatenate([p.patches for p in parts]),
        np.concatenate([p.labels for p in parts]),
        np.concatenate([p.scores for p in parts]),
        [photo for p in parts for photo in p.photos],
    )


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m obscura_tools.platecheck",
        description="Train the plate check (the plate-check model) and write it as ONNX.",
    )
    parser.add_argument("output", type=Path, help="the ONNX file to write")
    parser.add_argument(
        "--work", type=Path, default=Path("out/platecheck"), help="sets and samples"
    )
    parser.add_argument("--seeds", default=",".join(map(str, SEEDS)), help="composite set seeds")
    parser.add_argument("--frames", type=int, default=FRAMES, help="frames per set")
    parser.add_argument("--epochs", type=int, default=40)
    parser.add_argument("--photos-half", type=int, choices=(0, 1), help="train on one half only")
    parser.add_argument(
        "--no-everyday", action="store_true", help="leave the everyday pictures out (first recipe)"
    )
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    seeds = [int(s) for s in args.seeds.split(",")]
    samples = build_samples(args.work, seeds, args.frames, everyday=not args.no_everyday)
    if args.photos_half is not None:
        keep = np.asarray([photo_half(p) == args.photos_half for p in samples.photos])
        samples = Samples(
            samples.patches[keep],
            samples.labels[keep],
            samples.scores[keep],
            [p for p, k in zip(samples.photos, keep, strict=True) if k],
        )
    log.info("training on %d candidates, %d plates", len(samples.labels), int(samples.labels.sum()))
    model = train(samples, epochs=args.epochs)
    onnx.save(to_onnx(weights_of(model)), str(args.output))
    digest = hashlib.sha256(args.output.read_bytes()).hexdigest()
    print(f"{args.output}: sha256 {digest}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
