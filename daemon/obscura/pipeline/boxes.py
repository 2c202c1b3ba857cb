"""Box arithmetic the detection core shares: thresholds per detection, merging looks, nesting,
coverage and offsets."""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
from numpy.typing import NDArray

from obscura.models.base import batched_nms, iou_matrix
from obscura.types import Detections, FloatArray, IntArray, ObjectClass

# Two looks' boxes of one class this close (a tile's and the whole frame's, two models') are one
# object.
AGREE_IOU = 0.3


def cuts(det: Detections, cut: Mapping[ObjectClass, float]) -> FloatArray:
    """Each detection's class threshold."""
    out: FloatArray = np.array([cut[ObjectClass(c)] for c in det.class_ids], dtype=np.float32)
    return out


def merge(parts: list[Detections], iou: float) -> Detections:
    """One detection per object and class across overlapping views."""
    merged = Detections.concat(parts)
    if len(merged) < 2:
        return merged
    return merged[batched_nms(merged.xyxy, merged.scores, merged.class_ids, iou)]


def offset(det: Detections, x: int, y: int) -> Detections:
    """``det`` moved by (x, y): from a crop's pixels to the frame's."""
    if not len(det):
        return det
    shift = np.array([x, y, x, y], dtype=np.float32)
    return Detections(det.xyxy + shift, det.scores, det.class_ids, det.masks)


def covered(box: FloatArray, others: FloatArray) -> float:
    """The largest share of ``box``'s area inside one of ``others``."""
    tl = np.maximum(box[:2], others[:, :2])
    br = np.minimum(box[2:], others[:, 2:])
    inter = np.clip(br - tl, 0, None).prod(axis=1)
    area = max(float((box[2:] - box[:2]).prod()), 1e-6)
    return float(inter.max() / area)


def not_nested(xyxy: FloatArray, scores: FloatArray, share: float = 0.7) -> IntArray:
    """Indices of the boxes to keep when, of two boxes one of which lies mostly (``share`` of
    its area) inside the other, only the better-scored one stays: a plate inside a plate is
    the same plate seen twice (a crop boxed half of a two-line plate), which NMS keeps
    because their IoU is low."""
    order = np.argsort(-scores, kind="stable")
    kept: list[int] = []
    area = (xyxy[:, 2:] - xyxy[:, :2]).clip(0).prod(axis=1)
    for i in order.tolist():
        if kept:
            others = xyxy[kept]
            tl = np.maximum(xyxy[i, :2], others[:, :2])
            br = np.minimum(xyxy[i, 2:], others[:, 2:])
            inter = np.clip(br - tl, 0, None).prod(axis=1)
            smaller = np.minimum(area[i], area[kept])
            if (inter >= share * np.maximum(smaller, 1e-6)).any():
                continue
        kept.append(i)
    return np.asarray(sorted(kept), dtype=np.int64)


def agreed(a: Detections, b: Detections, penalty: float) -> Detections:
    """Two looks at one crop, one box per plate: a box the other look confirms (IoU 0.5) is
    fused with it (score-weighted mean of the two, the better score), one seen once only
    keeps ``penalty`` of its score."""
    if not len(a) or not len(b):
        only = Detections.concat([a, b])
        return Detections(only.xyxy, only.scores * np.float32(penalty), only.class_ids)
    ious = iou_matrix(a.xyxy, b.xyxy)
    pairs = []
    used_b: set[int] = set()
    for i in np.argsort(-a.scores).tolist():
        row = np.where([j in used_b for j in range(len(b))], -1.0, ious[i])
        j = int(np.argmax(row))
        if row[j] >= 0.5:
            used_b.add(j)
            pairs.append((i, j))
    fused_a = {i for i, _ in pairs}
    boxes, scores, classes = [], [], []
    for i, j in pairs:
        wa, wb = float(a.scores[i]), float(b.scores[j])
        boxes.append((a.xyxy[i] * wa + b.xyxy[j] * wb) / (wa + wb))
        scores.append(max(wa, wb))
        classes.append(a.class_ids[i])
    for d, skip in ((a, fused_a), (b, used_b)):
        for k in range(len(d)):
            if k not in skip:
                boxes.append(d.xyxy[k])
                scores.append(float(d.scores[k]) * penalty)
                classes.append(d.class_ids[k])
    return Detections(
        np.asarray(boxes, np.float32).reshape(-1, 4),
        np.asarray(scores, np.float32),
        np.asarray(classes, np.int32),
    )


def join(first: Detections, more: Detections) -> Detections:
    """``first``, and those of ``more`` that no box of ``first`` overlaps (IoU >=
    AGREE_IOU). An object both see keeps the first model's box, with the better of the
    two scores: its box does not change style from frame to frame when the others run on some
    frames only (a track would read that as motion), and it is as sure as either model is."""
    if not len(first) or not len(more):
        return Detections.concat([first, more])
    same_class = first.class_ids[:, None] == more.class_ids[None, :]
    iou = np.where(same_class, iou_matrix(first.xyxy, more.xyxy), 0.0)
    agree = iou >= AGREE_IOU
    backed = np.where(agree, more.scores[None, :], 0.0).max(axis=1)
    scores = np.maximum(first.scores, backed).astype(np.float32)
    kept = Detections(first.xyxy, scores, first.class_ids, first.masks)
    alone = np.asarray(~agree.any(axis=0), dtype=np.bool_)
    return Detections.concat([kept, more[alone]])


def greedy_match(iou: FloatArray, least: float) -> tuple[NDArray[np.int64], NDArray[np.int64]]:
    """Pairs (rows, cols) by descending IoU, each row and column at most once, IoU >= least."""
    rows, cols = np.nonzero(iou >= least)
    if len(rows) == 0:
        return np.zeros(0, np.int64), np.zeros(0, np.int64)
    order = np.argsort(-iou[rows, cols], kind="stable")
    used_r: set[int] = set()
    used_c: set[int] = set()
    out_r, out_c = [], []
    for r, c in zip(rows[order].tolist(), cols[order].tolist(), strict=True):
        if r in used_r or c in used_c:
            continue
        used_r.add(r)
        used_c.add(c)
        out_r.append(r)
        out_c.append(c)
    return np.asarray(out_r, np.int64), np.asarray(out_c, np.int64)
