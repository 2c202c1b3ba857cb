"""Recall and precision per class at IoU 0.5 against ground-truth boxes.

Annotation format: ``{"image.jpg": [{"label": "face" | "plate" | "person" | "vehicle",
"bbox": [x1, y1, x2, y2], "difficult": bool?}, ...]}``. Detections matching a difficult object
count neither way; the others are matched greedily, best score first.

An optional metadata file (``annotations_meta.json`` beside the annotations is used when it
exists) says which labels are complete per image: ``{"public": {"image.jpg":
{"complete_labels": ["face", ...]}}}``. Classes not labelled completely in an image are not
scored there at all.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from obscura.errors import InvalidInput
from obscura.imageio import read_image
from obscura.types import Detections, FloatArray, ImageArray, ObjectClass

_LABELS = {"face": ObjectClass.FACE, "plate": ObjectClass.LICENSE_PLATE,
           "license-plate": ObjectClass.LICENSE_PLATE, "person": ObjectClass.PERSON,
           "vehicle": ObjectClass.VEHICLE}  # fmt: skip


@dataclass(frozen=True)
class GroundTruth:
    xyxy: FloatArray
    difficult: np.ndarray[Any, np.dtype[np.bool_]]
    complete: bool = True


@dataclass
class ClassCounts:
    tp: int = 0
    fp: int = 0
    fn: int = 0

    @property
    def recall(self) -> float | None:
        return self.tp / (self.tp + self.fn) if self.tp + self.fn else None

    @property
    def precision(self) -> float | None:
        return self.tp / (self.tp + self.fp) if self.tp + self.fp else None

    def as_dict(self) -> dict[str, Any]:
        def r(v: float | None) -> float | None:
            return None if v is None else round(v, 4)

        return {"objects": self.tp + self.fn, "tp": self.tp, "fp": self.fp, "fn": self.fn,
                "recall": r(self.recall), "precision": r(self.precision)}  # fmt: skip


@dataclass
class EvalReport:
    classes: dict[ObjectClass, ClassCounts] = field(default_factory=dict)
    per_image: dict[str, dict[str, dict[str, Any]]] = field(default_factory=dict)
    seconds: list[float] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        times = np.asarray(self.seconds or [0.0]) * 1000
        return {
            "iou": 0.5,
            "images": len(self.per_image),
            "classes": {c.label: n.as_dict() for c, n in sorted(self.classes.items())},
            "latency_ms": {
                "mean": round(float(times.mean()), 2),
                "p50": round(float(np.percentile(times, 50)), 2),
                "max": round(float(times.max()), 2),
            },
            "per_image": self.per_image,
        }


def iou_matrix(a: FloatArray, b: FloatArray) -> FloatArray:
    """Pairwise IoU of boxes ``a`` (n, 4) and ``b`` (m, 4)."""
    tl = np.maximum(a[:, None, :2], b[None, :, :2])
    br = np.minimum(a[:, None, 2:], b[None, :, 2:])
    inter = np.clip(br - tl, 0, None).prod(axis=2)
    area_a = (a[:, 2:] - a[:, :2]).clip(0).prod(axis=1)
    area_b = (b[:, 2:] - b[:, :2]).clip(0).prod(axis=1)
    union = area_a[:, None] + area_b[None, :] - inter
    out: FloatArray = np.where(union > 0, inter / np.maximum(union, 1e-9), 0.0).astype(np.float32)
    return out


def match(det: FloatArray, scores: FloatArray, gt: GroundTruth, iou: float = 0.5) -> ClassCounts:
    """Greedy matching, best detection first; difficult objects are neutral."""
    counts = ClassCounts()
    taken = np.zeros(len(gt.xyxy), dtype=bool)
    ious = iou_matrix(det, gt.xyxy) if len(det) and len(gt.xyxy) else None
    for i in np.argsort(-scores, kind="stable"):
        if ious is None:
            counts.fp += 1
            continue
        row = np.where(taken, -1.0, ious[i])
        j = int(np.argmax(row))
        if row[j] >= iou:
            taken[j] = True
            if not gt.difficult[j]:
                counts.tp += 1
        elif ious[i][gt.difficult].max(initial=0.0) < iou:
            counts.fp += 1
    counts.fn = int((~taken & ~gt.difficult).sum())
    return counts


def _read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise InvalidInput(f"cannot read {path}: {exc}") from None


def _complete_labels(meta: Any) -> dict[str, set[ObjectClass]]:
    out: dict[str, set[ObjectClass]] = {}
    for group in meta.values():
        if not isinstance(group, dict):
            continue
        for image, info in group.items():
            if isinstance(info, dict) and "complete_labels" in info:
                out[image] = {
                    _LABELS[label] for label in info["complete_labels"] if label in _LABELS
                }
    return out


def load_annotations(
    path: Path, meta_path: Path | None = None
) -> dict[str, dict[ObjectClass, GroundTruth]]:
    raw = _read_json(path)
    if meta_path is None and (path.parent / f"{path.stem}_meta.json").exists():
        meta_path = path.parent / f"{path.stem}_meta.json"
    complete = _complete_labels(_read_json(meta_path)) if meta_path else {}
    out: dict[str, dict[ObjectClass, GroundTruth]] = {}
    for image, objects in raw.items():
        per_class: dict[ObjectClass, tuple[list[list[float]], list[bool]]] = {
            c: ([], []) for c in ObjectClass
        }
        for obj in objects:
            label = obj.get("label")
            if label not in _LABELS:
                raise InvalidInput(f"{path}: {image}: unknown label {label!r}")
            boxes, difficult = per_class[_LABELS[label]]
            boxes.append([float(v) for v in obj["bbox"]])
            difficult.append(bool(obj.get("difficult", False)))
        out[image] = {
            c: GroundTruth(
                np.asarray(b, dtype=np.float32).reshape(-1, 4),
                np.asarray(d, dtype=bool),
                c in complete.get(image, set(ObjectClass)),
            )
            for c, (b, d) in per_class.items()
        }
    return out


def evaluate(
    detect: Callable[[ImageArray], Detections],
    annotations: Mapping[str, Mapping[ObjectClass, GroundTruth]],
    images_dir: Path,
    classes: Collection[ObjectClass] = tuple(ObjectClass),
) -> EvalReport:
    report = EvalReport(classes={c: ClassCounts() for c in classes})
    for name, truth in sorted(annotations.items()):
        image = read_image(images_dir / name)
        start = time.perf_counter()
        det = detect(image)
        report.seconds.append(time.perf_counter() - start)
        report.per_image[name] = {}
        for cls in classes:
            if not truth[cls].complete:
                continue
            picked = det.class_ids == int(cls)
            counts = match(det.xyxy[picked], det.scores[picked], truth[cls])
            total = report.classes[cls]
            total.tp, total.fp, total.fn = (
                total.tp + counts.tp,
                total.fp + counts.fp,
                total.fn + counts.fn,
            )
            report.per_image[name][cls.label] = {"tp": counts.tp, "fp": counts.fp, "fn": counts.fn}
    return report
