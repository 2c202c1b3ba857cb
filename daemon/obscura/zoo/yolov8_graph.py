"""YOLOv8 detection and segmentation graphs rebuilt with OpenVINO's opset API from a
checkpoint's weights.

The module tree comes from :func:`obscura.zoo.torch_pickle.load_checkpoint` (records, numpy
tensors); nothing of torch or ultralytics is needed or run. Batch norms are folded into their
convolutions. The outputs are what a YOLOv8 export gives and the ``yolov8`` / ``yolov8-seg``
adapters read, for a batch of N images (any N):

- ``output0``: ``[N, 4 + classes, anchors]``, boxes as centre x, centre y, width, height in
  input pixels, class scores after the sigmoid; for a segmentation model (ultralytics
  ``Segment`` head) followed by the 32 raw mask coefficients, ``[N, 4 + classes + 32, anchors]``;
- ``output1`` (segmentation only): the mask prototypes ``[N, 32, height / 4, width / 4]``.

``tests/test_yolov8_reference.py`` compares the conversion with the outputs of ultralytics /
torch themselves (recorded by ``tools/yolov8_reference.py``): boxes agree to ~2e-4 input
pixels and scores to ~1e-6 in float32.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import openvino as ov
from openvino import opset13 as ops

from obscura.errors import ModelStoreError
from obscura.zoo.torch_pickle import Record

Node = Any  # an OpenVINO output (ov.Output) or node


def _f32(a: Any) -> np.ndarray:
    return np.asarray(a, dtype=np.float32)


def _kind(module: Record) -> str:
    return module.qualname.rsplit(".", 1)[-1]


def _children(module: Record) -> dict[str, Record]:
    return dict(module.state.get("_modules") or {})


def _conv2d(x: Node, conv: Record, bn: Record | None = None) -> Node:
    p = conv.state["_parameters"]
    weight = _f32(p["weight"])
    bias = _f32(p["bias"]) if p.get("bias") is not None else np.zeros(weight.shape[0], np.float32)
    if bn is not None:  # fold the batch norm into the convolution
        q, b = bn.state["_parameters"], bn.state["_buffers"]
        scale = _f32(q["weight"]) / np.sqrt(_f32(b["running_var"]) + float(bn.state["eps"]))
        weight = weight * scale[:, None, None, None]
        bias = (bias - _f32(b["running_mean"])) * scale + _f32(q["bias"])
    if int(conv.state.get("groups", 1)) != 1:
        raise ModelStoreError("grouped convolutions are not supported in YOLOv8 checkpoints")
    stride = list(conv.state["stride"])
    pad = list(conv.state["padding"])
    dilation = list(conv.state["dilation"])
    out = ops.convolution(x, ops.constant(weight), stride, pad, pad, dilation)
    return ops.add(out, ops.constant(bias.reshape(1, -1, 1, 1)))


def _conv(x: Node, module: Record) -> Node:
    """ultralytics Conv: Conv2d, BatchNorm2d, SiLU."""
    c = _children(module)
    y = _conv2d(x, c["conv"], c.get("bn"))
    act = c.get("act")
    if act is not None and _kind(act) == "SiLU":
        y = ops.multiply(y, ops.sigmoid(y))
    elif act is not None and _kind(act) != "Identity":
        raise ModelStoreError(f"unsupported activation {act.qualname}")
    return y


def _bottleneck(x: Node, module: Record) -> Node:
    c = _children(module)
    y = _conv(_conv(x, c["cv1"]), c["cv2"])
    return ops.add(x, y) if module.state.get("add") else y


def _c2f(x: Node, module: Record) -> Node:
    c = _children(module)
    halves = ops.split(_conv(x, c["cv1"]), 1, 2)
    outs = [halves.output(0), halves.output(1)]
    for block in _children(c["m"]).values():
        outs.append(_bottleneck(outs[-1], block))
    return _conv(ops.concat(outs, 1), c["cv2"])


def _sppf(x: Node, module: Record) -> Node:
    c = _children(module)
    pool = c["m"].state
    k = int(pool["kernel_size"])
    pad = int(pool["padding"])
    y = [_conv(x, c["cv1"])]
    for _ in range(3):
        y.append(ops.max_pool(y[-1], [1, 1], [1, 1], [pad, pad], [pad, pad], [k, k]).output(0))
    return _conv(ops.concat(y, 1), c["cv2"])


def _upsample(x: Node, module: Record) -> Node:
    scale = float(module.state.get("scale_factor") or 2.0)
    if module.state.get("mode", "nearest") != "nearest":
        raise ModelStoreError("only nearest upsampling is supported")
    return ops.interpolate(
        x,
        ops.constant(np.array([scale, scale], np.float32)),
        "nearest",
        "scales",
        axes=ops.constant(np.array([2, 3], np.int64)),
    )


def _conv_transpose2d(x: Node, conv: Record) -> Node:
    """nn.ConvTranspose2d (the prototype branch's learned 2x upsampling)."""
    p = conv.state["_parameters"]
    weight = _f32(p["weight"])  # [in, out, kh, kw], as OpenVINO's backprop-data filters
    if int(conv.state.get("groups", 1)) != 1 or any(int(d) != 1 for d in conv.state["dilation"]):
        raise ModelStoreError("grouped or dilated transposed convolutions are not supported")
    pad = [int(v) for v in conv.state["padding"]]
    out = ops.convolution_backprop_data(
        x,
        ops.constant(weight),
        [int(v) for v in conv.state["stride"]],
        pads_begin=pad,
        pads_end=pad,
        dilations=[1, 1],
        output_padding=[int(v) for v in conv.state.get("output_padding", (0, 0))],
    )
    if p.get("bias") is None:
        return out
    return ops.add(out, ops.constant(_f32(p["bias"]).reshape(1, -1, 1, 1)))


def _sequential(x: Node, module: Record) -> Node:
    for child in _children(module).values():
        kind = _kind(child)
        if kind == "Conv":
            x = _conv(x, child)
        elif kind == "Conv2d":
            x = _conv2d(x, child)
        else:  # e.g. the depthwise classification branch of YOLO11 heads
            raise ModelStoreError(f"unsupported layer {child.qualname} in a YOLOv8 head")
    return x


def _proto(x: Node, module: Record) -> Node:
    """ultralytics Proto: Conv 3x3, ConvTranspose2d 2x2 stride 2, Conv 3x3, Conv 1x1."""
    c = _children(module)
    return _conv(_conv(_conv_transpose2d(_conv(x, c["cv1"]), c["upsample"]), c["cv2"]), c["cv3"])


def _flatten(x: Node) -> Node:
    """[N, C, H, W] -> [N, C, H * W]."""
    return ops.reshape(x, ops.constant(np.array([0, 0, -1], np.int64)), True)


def _grid(feature: Node, stride: float, size: tuple[int, int] | None) -> tuple[Node, Node]:
    """Anchor centres [2, H * W] (x, y in grid cells) and strides [H * W] of one level: constants
    for a fixed input ``size``, computed from the feature's shape for a dynamic one."""
    if size is not None:
        width, height = size
        gh, gw = int(height // stride), int(width // stride)
        ys, xs = np.meshgrid(np.arange(gh) + 0.5, np.arange(gw) + 0.5, indexing="ij")
        return (
            ops.constant(_f32(np.stack([xs.reshape(-1), ys.reshape(-1)]))),
            ops.constant(np.full(gh * gw, stride, np.float32)),
        )
    shape = ops.shape_of(feature, "i64")
    hw = ops.gather(shape, ops.constant(np.array([2, 3], np.int64)), 0)
    h = ops.gather(shape, ops.constant(np.int64(2)), 0)
    w = ops.gather(shape, ops.constant(np.int64(3)), 0)
    half = np.float32(0.5)
    ys = ops.add(ops.range(np.int64(0), h, np.int64(1), "f32"), half)
    xs = ops.add(ops.range(np.int64(0), w, np.int64(1), "f32"), half)
    flat = ops.constant(np.array([1, -1], np.int64))
    gx = ops.reshape(ops.broadcast(ops.unsqueeze(xs, 0), hw), flat, False)
    gy = ops.reshape(ops.broadcast(ops.unsqueeze(ys, 1), hw), flat, False)
    count = ops.reduce_prod(hw, [0], True)
    return ops.concat([gx, gy], 0), ops.broadcast(ops.constant(np.float32(stride)), count)


def _detect(features: list[Node], module: Record, size: tuple[int, int] | None) -> Node:
    """ultralytics Detect, decoded: [N, 4 + classes, anchors] (the export's output)."""
    c = _children(module)
    reg_max = int(module.state.get("reg_max", 16))
    strides = [float(s) for s in np.asarray(module.state["stride"]).reshape(-1)]
    levels, anchors, stride_row = [], [], []
    for i, feature in enumerate(features):
        box = _sequential(feature, _children(c["cv2"])[str(i)])
        cls = _sequential(feature, _children(c["cv3"])[str(i)])
        levels.append(_flatten(ops.concat([box, cls], 1)))
        grid, stride = _grid(feature, strides[i], size)
        anchors.append(grid)
        stride_row.append(stride)
    pred = ops.concat(levels, 2)  # [N, 4 * reg_max + classes, anchors]
    n_box = 4 * reg_max
    parts = ops.variadic_split(pred, 1, ops.constant(np.array([n_box, -1], np.int64)))
    dist = ops.reshape(parts.output(0), ops.constant(np.array([0, 4, reg_max, -1], np.int64)), True)
    weights = _f32(_children(c["dfl"])["conv"].state["_parameters"]["weight"]).reshape(1, 1, -1, 1)
    dist = ops.reduce_sum(ops.multiply(ops.softmax(dist, 2), ops.constant(weights)), [2], False)
    lt_rb = ops.split(dist, 1, 2)  # [N, 2, anchors] each: left-top, right-bottom distances
    grid = ops.unsqueeze(ops.concat(anchors, 1), 0)
    x1y1 = ops.subtract(grid, lt_rb.output(0))
    x2y2 = ops.add(grid, lt_rb.output(1))
    centre = ops.multiply(ops.add(x1y1, x2y2), np.float32(0.5))
    wh = ops.subtract(x2y2, x1y1)
    scale = ops.reshape(
        ops.concat(stride_row, 0), ops.constant(np.array([1, 1, -1], np.int64)), False
    )
    boxes = ops.multiply(ops.concat([centre, wh], 1), scale)
    return ops.concat([boxes, ops.sigmoid(parts.output(1))], 1)


def _segment(features: list[Node], module: Record, size: tuple[int, int] | None) -> list[Node]:
    """ultralytics Segment: the decoded detections with the mask coefficients appended,
    [N, 4 + classes + masks, anchors], and the prototypes [N, masks, H / 4, W / 4]."""
    c = _children(module)
    coeffs = [
        _flatten(_sequential(feature, _children(c["cv4"])[str(i)]))
        for i, feature in enumerate(features)
    ]
    detections = ops.concat([_detect(features, module, size), ops.concat(coeffs, 2)], 1)
    return [detections, _proto(features[0], c["proto"])]


HEADS = {"DetectionModel": "Detect", "SegmentationModel": "Segment"}


def build_detect_model(model: Record, size: tuple[int, int] | None = None) -> ov.Model:
    """The OpenVINO model of a YOLOv8 ``DetectionModel`` or ``SegmentationModel`` record for
    an input of ``size`` (width, height; multiples of the largest stride), or of any such size
    (``None``: height and width dynamic, the anchors computed from the feature maps' shapes),
    for a batch of any size: outputs ``output0`` (and ``output1``, the prototypes, for
    segmentation), as a YOLOv8 export names them."""
    head = HEADS.get(_kind(model))
    if head is None:
        raise ModelStoreError(f"not a YOLOv8 detection or segmentation model: {model.qualname}")
    if size is not None and (size[0] % 32 or size[1] % 32):
        raise ModelStoreError(f"input size {size} must be multiples of 32")
    shape = [-1, 3, -1, -1] if size is None else [-1, 3, size[1], size[0]]
    image = ops.parameter(shape, np.float32, name="images")
    layers = list(_children(_children(model)["model"]).values())
    outputs: list[Node] = []
    x: Node = image
    results: list[Node] = []
    for layer in layers:
        source = layer.state.get("f", -1)
        if isinstance(source, int):
            inputs: Any = x if source == -1 else outputs[source]
        else:
            inputs = [x if j == -1 else outputs[j] for j in source]
        kind = _kind(layer)
        if kind == "Conv":
            x = _conv(inputs, layer)
        elif kind == "C2f":
            x = _c2f(inputs, layer)
        elif kind == "SPPF":
            x = _sppf(inputs, layer)
        elif kind == "Upsample":
            x = _upsample(inputs, layer)
        elif kind == "Concat":
            x = ops.concat(inputs, int(layer.state.get("d", 1)))
        elif kind == head == "Detect":
            x = _detect(inputs, layer, size)
            results = [x]
        elif kind == head == "Segment":
            results = _segment(inputs, layer, size)
            x = results[0]
        else:
            raise ModelStoreError(f"unsupported YOLOv8 layer {layer.qualname}")
        outputs.append(x)
    if not results:
        raise ModelStoreError(f"the model has no {head} head")
    for i, node in enumerate(results):
        node.output(0).get_tensor().set_names({f"output{i}"})
    name = "yolov8-seg" if head == "Segment" else "yolov8"
    return ov.Model([ops.result(r) for r in results], [image], name)


def checkpoint_family(model: ov.Model) -> str:
    """The adapter family that reads a converted model: ``yolov8`` or ``yolov8-seg``."""
    return "yolov8-seg" if len(model.outputs) == 2 else "yolov8"


def convert_checkpoint(path: Path, input_size: Any = None, family: str | None = None) -> ov.Model:
    """A YOLOv8 ``.pt`` checkpoint as an OpenVINO model for ``input_size`` (width, height), or
    for any input size (``None``, the default: height and width dynamic).

    The weights are the EMA ones where the checkpoint has them (a training ``last.pt``), else
    ``model``, as ultralytics loads it. With ``family``, a checkpoint of the other task (a
    segmentation model configured as ``yolov8`` or a detector as ``yolov8-seg``) is an error.
    """
    from obscura.zoo.torch_pickle import load_checkpoint

    checkpoint = load_checkpoint(path)
    model = (
        (checkpoint.get("ema") or checkpoint.get("model")) if isinstance(checkpoint, dict) else None
    )
    if not isinstance(model, Record):
        raise ModelStoreError(f"{path}: no model in the checkpoint")
    size = None if input_size is None else (int(input_size[0]), int(input_size[1]))
    converted = build_detect_model(model, size)
    found = checkpoint_family(converted)
    if family is not None and family != found:
        raise ModelStoreError(
            f"{path}: a {_kind(model)} checkpoint is read as family {found}, not {family}"
        )
    return converted
