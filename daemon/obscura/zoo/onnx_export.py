"""The store's own OpenVINO graphs written as ONNX, for ONNX Runtime (the CUDA path).

Two default models are not ONNX at the source: the YOLOv8 plate checkpoint, rebuilt from its
weights by :mod:`obscura.zoo.yolov8_graph`, and the TFLite selfie segmenter, read by
:mod:`obscura.zoo.tflite`. Both become OpenVINO models first; :func:`to_onnx` then writes that
very graph node by node as ONNX (opset 18), so each model has one conversion and two files
that hold the same computation. Only the operations those graphs use are known here; any
other is a :class:`~obscura.errors.ModelStoreError` that names it.

Dynamic dimensions stay dynamic (named ``d<axis>`` or as the caller names them), so the
YOLOv8 graph keeps taking any height and width, the segmenter any batch.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from obscura.errors import ModelStoreError

OPSET = 18
Op = Any  # an OpenVINO node

_ELEMENT_TYPES = {
    "f32": TensorProto.FLOAT,
    "f16": TensorProto.FLOAT16,
    "i64": TensorProto.INT64,
    "i32": TensorProto.INT32,
    "u8": TensorProto.UINT8,
    "boolean": TensorProto.BOOL,
}
_ELEMENTWISE = {
    "Add": "Add",
    "Subtract": "Sub",
    "Multiply": "Mul",
    "Divide": "Div",
    "Relu": "Relu",
    "Sigmoid": "Sigmoid",
    "HSwish": "HardSwish",
    "Concat": "Concat",
}


def _element_type(port: Any) -> int:
    name = port.get_element_type().get_type_name()
    if name not in _ELEMENT_TYPES:
        raise ModelStoreError(f"ONNX export: element type {name} is not supported")
    return _ELEMENT_TYPES[name]


class _Writer:
    """Collects the ONNX nodes and initializers of one graph."""

    def __init__(self) -> None:
        self.nodes: list[onnx.NodeProto] = []
        self.initializers: list[onnx.TensorProto] = []
        self.names: dict[tuple[str, int], str] = {}
        self.pending: dict[tuple[str, int], np.ndarray] = {}  # constants not yet written
        self._count = 0

    def fresh(self, hint: str) -> str:
        self._count += 1
        return f"{hint}_{self._count}"

    def name_of(self, port: Any) -> str:
        """The ONNX value name of an OpenVINO output port."""
        key = (port.get_node().get_name(), port.get_index())
        if key not in self.names:
            self.names[key] = self.fresh(port.get_node().get_type_name().lower())
        return self.names[key]

    def source(self, op: Op, i: int) -> Any:
        return op.input_value(i)

    def input(self, op: Op, i: int) -> str:
        """The name of input ``i``; a constant becomes an initializer when first read as a
        tensor (constants read only as attributes are not written)."""
        port = self.source(op, i)
        name = self.name_of(port)
        data = self.pending.pop((port.get_node().get_name(), port.get_index()), None)
        if data is not None:
            self.initializers.append(numpy_helper.from_array(data, name))
        return name

    def constant(self, op: Op, i: int) -> np.ndarray:
        """The value of input ``i``, which must be a constant (possibly converted)."""
        node = self.constant_node(op, i)
        if node is None:
            raise ModelStoreError(
                f"ONNX export: input {i} of {op.get_type_name()} {op.get_friendly_name()} "
                "must be a constant"
            )
        return np.asarray(node.get_data())

    def constant_node(self, op: Op, i: int) -> Op | None:
        node = self.source(op, i).get_node()
        while node.get_type_name() == "Convert":
            node = node.input_value(0).get_node()
        return node if node.get_type_name() == "Constant" else None

    def const(self, value: Any, hint: str = "const") -> str:
        """A new initializer."""
        name = self.fresh(hint)
        self.initializers.append(numpy_helper.from_array(np.asarray(value), name))
        return name

    def int64(self, op: Op, i: int) -> str:
        """Input ``i`` as int64 (ONNX wants int64 shapes, axes and indices)."""
        if self.source(op, i).get_element_type().get_type_name() == "i64":
            return self.input(op, i)
        if self.constant_node(op, i) is not None:
            return self.const(self.constant(op, i).astype(np.int64), "ints")
        return self.add("Cast", [self.input(op, i)], to=TensorProto.INT64)

    def add(
        self, kind: str, inputs: Sequence[str], outputs: Sequence[str] | None = None, **attrs: Any
    ) -> str:
        """Appends a node; returns its (first) output name."""
        outs = list(outputs) if outputs is not None else [self.fresh(kind.lower())]
        self.nodes.append(helper.make_node(kind, list(inputs), outs, **attrs))
        return outs[0]


def _pads(attrs: Mapping[str, Any]) -> dict[str, Any]:
    """ONNX padding attributes from OpenVINO's ``auto_pad`` / ``pads_begin`` / ``pads_end``."""
    auto = str(attrs.get("auto_pad", "explicit")).lower()
    if auto == "same_upper":
        return {"auto_pad": "SAME_UPPER"}
    if auto == "same_lower":
        return {"auto_pad": "SAME_LOWER"}
    if auto == "valid":
        return {"auto_pad": "VALID"}
    return {"pads": [int(v) for v in attrs["pads_begin"]] + [int(v) for v in attrs["pads_end"]]}


def _convolution(w: _Writer, op: Op, out: str) -> None:
    a = op.get_attributes()
    weights = w.input(op, 1)
    group = 1
    if op.get_type_name() == "GroupConvolution":  # filters [G, O/G, I/G, kh, kw]
        shape = w.source(op, 1).get_partial_shape()
        if not shape.is_static:
            raise ModelStoreError("ONNX export: a group convolution needs static filters")
        dims = [d.get_length() for d in shape]
        group = dims[0]
        merged = np.array([dims[0] * dims[1], *dims[2:]], np.int64)
        weights = w.add("Reshape", [weights, w.const(merged, "filters")])
    w.add(
        "Conv",
        [w.input(op, 0), weights],
        [out],
        strides=[int(v) for v in a["strides"]],
        dilations=[int(v) for v in a["dilations"]],
        group=group,
        **_pads(a),
    )


def _deconvolution(w: _Writer, op: Op, out: str) -> None:
    a = op.get_attributes()
    if op.get_input_size() != 2:
        raise ModelStoreError("ONNX export: ConvolutionBackpropData with an output shape input")
    w.add(
        "ConvTranspose",
        [w.input(op, 0), w.input(op, 1)],
        [out],
        strides=[int(v) for v in a["strides"]],
        dilations=[int(v) for v in a["dilations"]],
        output_padding=[int(v) for v in a["output_padding"]],
        **_pads(a),
    )


def _pool(w: _Writer, op: Op, out: str) -> None:
    a = op.get_attributes()
    attrs: dict[str, Any] = {
        "kernel_shape": [int(v) for v in a["kernel"]],
        "strides": [int(v) for v in a["strides"]],
        "ceil_mode": int(str(a.get("rounding_type", "floor")).lower() == "ceil"),
        **_pads(a),
    }
    if op.get_type_name() == "AvgPool":
        attrs["count_include_pad"] = int(not a["exclude-pad"])
        w.add("AveragePool", [w.input(op, 0)], [out], **attrs)
        return
    if any(t.get_target_inputs() for t in op.outputs()[1:]):
        raise ModelStoreError("ONNX export: MaxPool indices are not supported")
    attrs["dilations"] = [int(v) for v in a.get("dilations", [1, 1])]
    w.add("MaxPool", [w.input(op, 0)], [out], **attrs)


def _interpolate(w: _Writer, op: Op, out: str) -> None:
    """Interpolate-4 (data, sizes, scales[, axes]) or -11 (data, sizes or scales[, axes]), as
    Resize by constant scales over every axis (sizes become scales where the input's size
    along the axes is static)."""
    a = op.get_attributes()
    if any(int(v) for v in [*a.get("pads_begin", []), *a.get("pads_end", [])]):
        raise ModelStoreError("ONNX export: Interpolate with padding")
    by_sizes = a["shape_calculation_mode"] == "sizes"
    if op.get_type_info().version_id == "opset4":
        target, axes_at = (1 if by_sizes else 2), 3
    else:
        target, axes_at = 1, 2
    shape = w.source(op, 0).get_partial_shape()
    rank = shape.rank.get_length()
    axes = (
        [int(v) % rank for v in w.constant(op, axes_at).reshape(-1)]
        if op.get_input_size() > axes_at
        else list(range(rank))
    )
    values = [float(v) for v in w.constant(op, target).reshape(-1)]
    scales = np.ones(rank, np.float32)
    for axis, value in zip(axes, values, strict=True):
        if by_sizes:
            if shape[axis].is_dynamic:
                raise ModelStoreError("ONNX export: Interpolate to sizes along a dynamic axis")
            scales[axis] = value / shape[axis].get_length()
        else:
            scales[axis] = value
    mode = str(a["mode"])
    w.add(
        "Resize",
        [w.input(op, 0), "", w.const(scales, "scales")],
        [out],
        mode={"linear_onnx": "linear", "linear": "linear", "nearest": "nearest"}.get(mode, mode),
        coordinate_transformation_mode=str(a["coordinate_transformation_mode"]),
        nearest_mode=str(a["nearest_mode"]),
        cubic_coeff_a=float(a.get("cube_coeff", -0.75)),
        antialias=int(bool(a.get("antialias", False))),
    )


def _reshape(w: _Writer, op: Op, out: str) -> None:
    # ONNX's allowzero=0 reads 0 as "copy" (OpenVINO's special_zero): the same without zeros
    if not op.get_attributes()["special_zero"] and (
        w.constant_node(op, 1) is None or 0 in w.constant(op, 1)
    ):
        raise ModelStoreError("ONNX export: Reshape with a literal zero dimension")
    w.add("Reshape", [w.input(op, 0), w.int64(op, 1)], [out])


def _split(w: _Writer, op: Op, outs: list[str]) -> None:
    axis = int(w.constant(op, 1))
    if op.get_type_name() == "Split":
        w.add("Split", [w.input(op, 0)], outs, axis=axis, num_outputs=len(outs))
        return
    lengths = [int(v) for v in w.constant(op, 2).reshape(-1)]
    if -1 in lengths:  # ONNX's split sizes are explicit
        dim = w.source(op, 0).get_partial_shape()[axis]
        if dim.is_dynamic:
            raise ModelStoreError("ONNX export: VariadicSplit -1 along a dynamic axis")
        lengths[lengths.index(-1)] = dim.get_length() - sum(v for v in lengths if v != -1)
    split = w.const(np.array(lengths, np.int64), "split")
    w.add("Split", [w.input(op, 0), split], outs, axis=axis)


def _range(w: _Writer, op: Op, out: str) -> None:
    """Range-4: its inputs in the output type (ONNX wants one type for all three)."""
    to = _element_type(op.output(0))
    bounds = [w.add("Cast", [w.input(op, i)], to=to) for i in range(3)]
    w.add("Range", bounds, [out])


def _broadcast(w: _Writer, op: Op, out: str) -> None:
    mode = str(op.get_attributes().get("mode", "numpy")).lower()
    if mode not in ("numpy", "bidirectional"):
        raise ModelStoreError(f"ONNX export: Broadcast mode {mode}")
    w.add("Expand", [w.input(op, 0), w.int64(op, 1)], [out])


def _reduce(w: _Writer, op: Op, out: str) -> None:
    kind = {"ReduceSum": "ReduceSum", "ReduceProd": "ReduceProd", "ReduceMean": "ReduceMean"}
    keep = int(bool(op.get_attributes()["keep_dims"]))
    w.add(kind[op.get_type_name()], [w.input(op, 0), w.int64(op, 1)], [out], keepdims=keep)


def _single(w: _Writer, op: Op, out: str) -> None:
    """Operations with one output and an ONNX twin of the same inputs."""
    kind = op.get_type_name()
    a = op.get_attributes()
    if kind in _ELEMENTWISE:
        attrs = {"axis": int(a["axis"])} if kind == "Concat" else {}
        if str(a.get("auto_broadcast", "numpy")).lower() not in ("numpy", "none"):
            raise ModelStoreError(f"ONNX export: {kind} with {a['auto_broadcast']} broadcasting")
        inputs = [w.input(op, i) for i in range(op.get_input_size())]
        w.add(_ELEMENTWISE[kind], inputs, [out], **attrs)
    elif kind == "Convert":
        w.add("Cast", [w.input(op, 0)], [out], to=_element_type(op.output(0)))
    elif kind == "Unsqueeze":
        w.add("Unsqueeze", [w.input(op, 0), w.int64(op, 1)], [out])
    elif kind == "Transpose":
        perm = [int(v) for v in w.constant(op, 1).reshape(-1)]
        w.add("Transpose", [w.input(op, 0)], [out], perm=perm)
    elif kind == "Softmax":
        w.add("Softmax", [w.input(op, 0)], [out], axis=int(a["axis"]))
    elif kind == "ShapeOf":
        shape = w.add("Shape", [w.input(op, 0)])
        w.add("Cast", [shape], [out], to=_element_type(op.output(0)))
    elif kind == "Gather":
        if int(a.get("batch_dims", 0)):
            raise ModelStoreError("ONNX export: Gather with batch_dims")
        axis = int(w.constant(op, 2))
        w.add("Gather", [w.input(op, 0), w.int64(op, 1)], [out], axis=axis)
    else:
        _HANDLERS[kind](w, op, out)


_HANDLERS: dict[str, Callable[[_Writer, Op, str], None]] = {
    "Convolution": _convolution,
    "GroupConvolution": _convolution,
    "ConvolutionBackpropData": _deconvolution,
    "AvgPool": _pool,
    "MaxPool": _pool,
    "Interpolate": _interpolate,
    "Reshape": _reshape,
    "Range": _range,
    "Broadcast": _broadcast,
    "ReduceSum": _reduce,
    "ReduceProd": _reduce,
    "ReduceMean": _reduce,
}
_KNOWN = {*_HANDLERS, *_ELEMENTWISE, "Convert", "Unsqueeze", "Transpose", "Softmax", "ShapeOf"}
_KNOWN |= {"Gather", "Split", "VariadicSplit"}


def _value_info(port: Any, name: str, dims: Sequence[str | int | None]) -> onnx.ValueInfoProto:
    return helper.make_tensor_value_info(name, _element_type(port), list(dims))


def to_onnx(
    model: Any, name: str = "", dim_names: Mapping[int, str] | None = None
) -> onnx.ModelProto:
    """``model`` (an ``openvino.Model``) as an ONNX model of the same inputs and outputs
    (names kept); dynamic input dimensions are named from ``dim_names`` (axis -> name) or
    ``d<axis>``. Raises :class:`ModelStoreError` naming the first operation it cannot write."""
    w = _Writer()
    graph_inputs = []
    graph_outputs: dict[str, onnx.ValueInfoProto] = {}
    for op in model.get_ordered_ops():
        kind = op.get_type_name()
        if kind == "Parameter":
            port = op.output(0)
            input_name = port.get_any_name()
            w.names[(op.get_name(), 0)] = input_name
            dims = [
                d.get_length() if d.is_static else (dim_names or {}).get(i, f"d{i}")
                for i, d in enumerate(op.get_output_partial_shape(0))
            ]
            graph_inputs.append(_value_info(port, input_name, dims))
        elif kind == "Constant":
            w.pending[(op.get_name(), 0)] = np.asarray(op.get_data()).copy()
        elif kind == "Result":
            source = op.input_value(0)
            names = sorted(source.get_names())
            out_name = names[0] if names else w.fresh("output")
            w.add("Identity", [w.name_of(source)], [out_name])
            rank = op.get_output_partial_shape(0).rank.get_length()
            graph_outputs[op.get_name()] = _value_info(source, out_name, [None] * rank)
        elif kind in ("Split", "VariadicSplit"):
            _split(w, op, [w.name_of(port) for port in op.outputs()])
        elif kind in _KNOWN:
            _single(w, op, w.name_of(op.output(0)))
        else:
            raise ModelStoreError(
                f"ONNX export: operation {kind} ({op.get_friendly_name()}) is not supported"
            )
    outputs = [graph_outputs[r.get_name()] for r in model.get_results()]  # the model's order
    graph = helper.make_graph(
        w.nodes, name or model.get_friendly_name(), graph_inputs, outputs, w.initializers
    )
    proto = helper.make_model(
        graph, opset_imports=[helper.make_opsetid("", OPSET)], producer_name="obscura"
    )
    proto.ir_version = 8  # read by every ONNX Runtime of the last years
    onnx.checker.check_model(proto)
    return proto
