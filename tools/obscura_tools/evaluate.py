"""Recall and precision per class at IoU 0.5 against ground-truth boxes.

Annotation format: ``{"image.jpg": [{"label": "face" | "plate" | "person" | "vehicle",
"bbox": [x1, y1, x2, y2], "difficult": bool?}, ...]}``. Detections matching a difficult object
count neither way; the others are matched greedily, best score first.

Recall is also broken down by object width (``by_width``: under 15 px, 15-40, 40-80, 80-160,
160 and over) and by every other string field an object carries (``by_style`` for
``"style": "eu"``, ``by_type`` for ``"type": "car"`` ...), so that a benchmark can say where
a model fails. ``source`` and ``note`` fields are provenance, not groups.

An optional metadata file (``annotations_meta.json`` beside the annotations is used when it
exists) says which labels are complete per image: ``{"public": {"image.jpg":
{"complete_labels": ["face", ...]}}}``. Classes not labelled completely in an image are not
scored there at all.
"""

from __future__ import annotations

import itertools
import json
import time
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from obscura.errors import InvalidInput
from obscura.imageio import read_image
from obscura.models.base import iou_matrix
from obscura.types import Detections, FloatArray, ImageArray, ObjectClass

_LABELS = {"face": ObjectClass.FACE, "plate": ObjectClass.LICENSE_PLATE,
           "license-plate": ObjectClass.LICENSE_PLATE, "person": ObjectClass.PERSON,
           "vehicle": ObjectClass.VEHICLE}  # fmt: skip


WIDTH_BUCKETS = (15, 40, 80, 160)  # px edges of the by_width groups
_NOT_GROUPS = frozenset({"label", "bbox", "difficult", "source", "note"})


def width_bucket(width: float) -> str:
    """The ``by_width`` group of an object ``width`` px wide: "<15", "15-40", ..., "160+"."""
    edges = WIDTH_BUCKETS
    if width < edges[0]:
        return f"<{edges[0]}"
    for low, high in itertools.pairwise(edges):
        if width < high:
            return f"{low}-{high}"
    return f"{edges[-1]}+"


@dataclass(frozen=True)
class GroundTruth:
    xyxy: FloatArray
    difficult: np.ndarray[Any, np.dtype[np.bool_]]
    complete: bool = True
    # Per object: its string fields (style, type ...), the groups its recall is reported in.
    tags: tuple[Mapping[str, str], ...] = ()


@dataclass
class GroupCounts:
    """Recall of one group of objects (those of one width bucket, style, ...)."""

    objects: int = 0
    found: int = 0

    def as_dict(self) -> dict[str, Any]:
        recall = round(self.found / self.objects, 4) if self.objects else None
        return {"objects": self.objects, "found": self.found, "recall": recall}


@dataclass
class ClassCounts:
    tp: int = 0
    fp: int = 0
    fn: int = 0
    # group kind ("width", "style" ...) -> group value -> counts
    groups: dict[str, dict[str, GroupCounts]] = field(default_factory=dict)

    def add(self, other: ClassCounts) -> None:
        self.tp, self.fp, self.fn = self.tp + other.tp, self.fp + other.fp, self.fn + other.fn
        for kind, groups in other.groups.items():
            mine = self.groups.setdefault(kind, {})
            for value, counts in groups.items():
                total = mine.setdefault(value, GroupCounts())
                total.objects += counts.objects
                total.found += counts.found

    @property
    def recall(self) -> float | None:
        return self.tp / (self.tp + self.fn) if self.tp + self.fn else None

    @property
    def precision(self) -> float | None:
        return self.tp / (self.tp + self.fp) if self.tp + self.fp else None

    def as_dict(self) -> dict[str, Any]:
        def r(v: float | None) -> float | None:
            return None if v is None else round(v, 4)

        out: dict[str, Any] = {
            "objects": self.tp + self.fn, "tp": self.tp, "fp": self.fp, "fn": self.fn,
            "recall": r(self.recall), "precision": r(self.precision),
        }  # fmt: skip
        for kind, groups in sorted(self.groups.items()):
            ordered = sorted(groups.items(), key=lambda kv: _group_order(kind, kv[0]))
            out[f"by_{kind}"] = {value: counts.as_dict() for value, counts in ordered}
        return out


def _group_order(kind: str, value: str) -> tuple[float, str]:
    if kind == "width":
        digits = value.strip("<+").split("-")[0]
        return (float(digits) - (0.5 if value.startswith("<") else 0.0), value)
    return (0.0, value)


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
    widths = gt.xyxy[:, 2] - gt.xyxy[:, 0]
    for k in np.flatnonzero(~gt.difficult).tolist():
        tags = {"width": width_bucket(float(widths[k]))}
        if k < len(gt.tags):
            tags.update(gt.tags[k])
        for kind, value in tags.items():
            group = counts.groups.setdefault(kind, {}).setdefault(value, GroupCounts())
            group.objects += 1
            group.found += int(taken[k])
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
        per_class: dict[ObjectClass, tuple[list[list[float]], list[bool], list[dict[str, str]]]] = {
            c: ([], [], []) for c in ObjectClass
        }
        for obj in objects:
            label = obj.get("label")
            if label not in _LABELS:
                raise InvalidInput(f"{path}: {image}: unknown label {label!r}")
            boxes, difficult, tags = per_class[_LABELS[label]]
            boxes.append([float(v) for v in obj["bbox"]])
            difficult.append(bool(obj.get("difficult", False)))
            tags.append(
                {k: v for k, v in obj.items() if k not in _NOT_GROUPS and isinstance(v, str)}
            )
        out[image] = {
            c: GroundTruth(
                np.asarray(b, dtype=np.float32).reshape(-1, 4),
                np.asarray(d, dtype=bool),
                c in complete.get(image, set(ObjectClass)),
                tuple(t),
            )
            for c, (b, d, t) in per_class.items()
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
            report.classes[cls].add(counts)
            report.per_image[name][cls.label] = {"tp": counts.tp, "fp": counts.fp, "fn": counts.fn}
    return report


def report_table(report: Mapping[str, Any]) -> str:
    """A report (``EvalReport.as_dict()``) as text: per class its totals, then recall by width
    and by each annotated field."""
    lines = [f"IoU {report['iou']}, {report['images']} images, "
             f"{report['latency_ms']['mean']:.1f} ms per image (mean)"]  # fmt: skip
    for label, row in report["classes"].items():
        if not row["objects"] and not row["fp"]:
            continue
        lines.append("")
        lines.append(
            f"{label}: recall {_fmt(row['recall'])} ({row['tp']}/{row['objects']}), "
            f"precision {_fmt(row['precision'])} ({row['fp']} false positives)"
        )
        for key, groups in row.items():
            if not key.startswith("by_"):
                continue
            lines.append(f"  by {key[3:]}:")
            for value, g in groups.items():
                lines.append(
                    f"    {value:<12} {_fmt(g['recall']):>6}  ({g['found']}/{g['objects']})"
                )
    return "\n".join(lines)


def _fmt(value: float | None) -> str:
    return "-" if value is None else f"{value:.3f}"
