"""TensorFlow.js graph models (``model.json`` plus weight shards) to ONNX.

The converter covers the ops that small TFJS detector graphs use and fails loudly, naming the
op and the node, on anything else. Constant sub-graphs are folded with numpy while converting;
TF's NHWC convolutions, pools and resizes become ONNX NCHW ones wrapped in transposes, and a
clean-up pass then cancels back-to-back transposes and moves bias additions into convolutions.

Limits: ``Conv2D`` is converted without groups (TF infers groups from the input's channel
count, which a graph model does not record), filters must be constants, and quantized weights
are read for the ``float16``, ``uint8`` and ``uint16`` schemes of the TFJS weight manifest.
"""

from __future__ import annotations

import base64
import graphlib
import json
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any

import numpy as np
import onnx
from numpy.typing import NDArray
from onnx import helper, numpy_helper

from obscura.errors import ModelStoreError

OPSET = 17
IR_VERSION = 8  # the IR version that introduced opset 17: readable by older runtimes too

Array = NDArray[Any]

_TF_DTYPES: dict[str, type[np.generic]] = {
    "DT_FLOAT": np.float32,
    "DT_HALF": np.float16,
    "DT_DOUBLE": np.float64,
    "DT_INT8": np.int8,
    "DT_UINT8": np.uint8,
    "DT_INT16": np.int16,
    "DT_INT32": np.int32,
    "DT_INT64": np.int64,
    "DT_BOOL": np.bool_,
}
_MANIFEST_DTYPES: dict[str, type[np.generic]] = {
    "float32": np.float32,
    "int32": np.int32,
    "bool": np.bool_,
}
_QUANT_DTYPES: dict[str, type[np.generic]] = {
    "float16": np.float16,
    "uint8": np.uint8,
    "uint16": np.uint16,
}
_TO_NCHW = (0, 3, 1, 2)
_TO_NHWC = (0, 2, 3, 1)


class TfjsConversionError(ModelStoreError):
    """A TFJS model cannot be converted: malformed file, unsupported op or weight format."""


# --- files and weights --------------------------------------------------------------------


def tfjs_files(model_json: Path) -> list[Path]:
    """The weight files that ``model_json`` names, in manifest order (next to the json)."""
    spec = _read_json(model_json)
    return [_weight_path(model_json, p) for group in _manifest(spec) for p in group["paths"]]


def _read_json(model_json: Path) -> dict[str, Any]:
    try:
        spec = json.loads(model_json.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise TfjsConversionError(f"{model_json}: cannot read TFJS model json: {exc}") from exc
    if not isinstance(spec, dict) or "modelTopology" not in spec:
        raise TfjsConversionError(f"{model_json}: not a TFJS model json (no modelTopology)")
    fmt = spec.get("format", "graph-model")
    if fmt != "graph-model":
        raise TfjsConversionError(f"{model_json}: format {fmt!r}; only graph-model is supported")
    return spec


def _manifest(spec: Mapping[str, Any]) -> list[dict[str, Any]]:
    groups = spec.get("weightsManifest", [])
    if not isinstance(groups, list) or not all(
        isinstance(g, dict) and isinstance(g.get("paths"), list) for g in groups
    ):
        raise TfjsConversionError("weightsManifest must be a list of {paths, weights} groups")
    return groups


def _weight_path(model_json: Path, relative: str) -> Path:
    parts = PurePosixPath(relative)
    if parts.is_absolute() or ".." in parts.parts or not parts.parts:
        raise TfjsConversionError(f"weight path {relative!r} must stay next to {model_json.name}")
    return model_json.parent.joinpath(*parts.parts)


def _read_weights(model_json: Path, spec: Mapping[str, Any]) -> dict[str, Array]:
    weights: dict[str, Array] = {}
    for group in _manifest(spec):
        paths = [_weight_path(model_json, p) for p in group["paths"]]
        try:
            data = b"".join(p.read_bytes() for p in paths)
        except OSError as exc:
            raise TfjsConversionError(f"cannot read TFJS weights: {exc}") from exc
        offset = 0
        for entry in group.get("weights", []):
            array, size = _decode_weight(entry, data, offset)
            weights[entry["name"]] = array
            offset += size
        if offset != len(data):
            names = ", ".join(p.name for p in paths)
            raise TfjsConversionError(
                f"weight files {names} hold {len(data)} bytes, the manifest describes {offset}"
            )
    return weights


def _decode_weight(entry: Mapping[str, Any], data: bytes, offset: int) -> tuple[Array, int]:
    name = entry.get("name", "?")
    dtype = entry.get("dtype")
    if dtype not in _MANIFEST_DTYPES:
        raise TfjsConversionError(f"weight {name!r}: unsupported dtype {dtype!r}")
    target = np.dtype(_MANIFEST_DTYPES[dtype])
    shape = tuple(int(d) for d in entry.get("shape", []))
    count = int(np.prod(shape, dtype=np.int64))
    quant = entry.get("quantization")
    if quant is None:
        stored = target
    elif quant.get("dtype") in _QUANT_DTYPES:
        stored = np.dtype(_QUANT_DTYPES[quant["dtype"]])
    else:
        raise TfjsConversionError(
            f"weight {name!r}: unsupported quantization {quant!r} "
            f"(supported: {', '.join(_QUANT_DTYPES)})"
        )
    size = count * stored.itemsize
    if offset + size > len(data):
        raise TfjsConversionError(f"weight {name!r} runs past the end of the weight files")
    raw = np.frombuffer(data, dtype=stored.newbyteorder("<"), count=count, offset=offset)
    value: Array
    if quant is None:
        value = raw
    elif quant["dtype"] == "float16":
        value = raw.astype(np.float32)
    else:
        try:
            scale, minimum = float(quant["scale"]), float(quant["min"])
        except (KeyError, TypeError, ValueError):
            raise TfjsConversionError(
                f"weight {name!r}: {quant['dtype']} quantization needs numeric scale and min"
            ) from None
        value = raw.astype(np.float32) * np.float32(scale) + np.float32(minimum)
        if np.issubdtype(target, np.integer):
            value = np.round(value)
    return value.astype(target).reshape(shape), size


# --- TF graph nodes -----------------------------------------------------------------------


@dataclass(frozen=True)
class _Node:
    name: str
    op: str
    inputs: tuple[str, ...]  # tensor names: "node" for output 0, "node:i" for output i
    attr: Mapping[str, Any]

    def out(self, index: int = 0) -> str:
        return self.name if index == 0 else f"{self.name}:{index}"

    def fail(self, message: str) -> TfjsConversionError:
        return TfjsConversionError(f"{self.op} node {self.name!r}: {message}")

    def s(self, key: str, default: str) -> str:
        value = self.attr.get(key, {}).get("s")
        return default if value is None else base64.b64decode(value).decode("utf-8")

    def i(self, key: str, default: int) -> int:
        return int(self.attr.get(key, {}).get("i", default))

    def f(self, key: str, default: float) -> float:
        return float(self.attr.get(key, {}).get("f", default))

    def b(self, key: str, default: bool) -> bool:
        return bool(self.attr.get(key, {}).get("b", default))

    def ints(self, key: str, default: Sequence[int]) -> list[int]:
        values = self.attr.get(key, {}).get("list", {}).get("i")
        return [int(v) for v in values] if values else list(default)

    def dtype(self, key: str) -> np.dtype[Any]:
        name = self.attr.get(key, {}).get("type", "DT_FLOAT")
        if name not in _TF_DTYPES:
            raise self.fail(f"unsupported dtype {name}")
        return np.dtype(_TF_DTYPES[name])


def _tensor_name(ref: str) -> str:
    """A TF input reference ("node", "node:0", "node:2") as this converter's tensor name."""
    node, sep, index = ref.rpartition(":")
    if sep and index.isdigit():
        return node if index == "0" else ref
    return ref


def _parse_nodes(topology: Mapping[str, Any]) -> dict[str, _Node]:
    if topology.get("library", {}).get("function"):
        raise TfjsConversionError("graphs with functions (control flow) are not supported")
    nodes: dict[str, _Node] = {}
    for raw in topology.get("node", []):
        inputs = tuple(_tensor_name(r) for r in raw.get("input", []) if not r.startswith("^"))
        nodes[raw["name"]] = _Node(raw["name"], raw["op"], inputs, raw.get("attr", {}))
    return nodes


def _producer(tensor: str) -> str:
    node, sep, index = tensor.rpartition(":")
    return node if sep and index.isdigit() else tensor


def _natural_key(name: str) -> list[Any]:
    return [int(t) if t.isdigit() else t for t in re.split(r"(\d+)", name)]


# --- the converter ------------------------------------------------------------------------


class _Converter:
    def __init__(self, weights: Mapping[str, Array]) -> None:
        self.weights = weights
        self.consts: dict[str, Array] = {}  # folded tensors, by tensor name
        self.initializers: dict[str, Array] = {}
        self.nodes: list[onnx.NodeProto] = []
        self.produced: set[str] = set()  # tensor names a node or graph input provides
        self.inputs: list[onnx.ValueInfoProto] = []
        self._names: set[str] = set()

    def reserve(self, names: Iterable[str]) -> None:
        """Keeps generated names clear of the graph's own node names."""
        self._names.update(names)

    # tensors
    def const(self, node: _Node, index: int, what: str) -> Array:
        if index >= len(node.inputs):
            raise node.fail(f"missing input {what}")
        value = self.consts.get(node.inputs[index])
        if value is None:
            raise node.fail(f"{what} ({node.inputs[index]!r}) must be a constant")
        return value

    def all_const(self, node: _Node, inputs: Iterable[str] | None = None) -> list[Array] | None:
        names = node.inputs if inputs is None else tuple(inputs)
        values = [self.consts.get(n) for n in names]
        return None if any(v is None for v in values) else [v for v in values if v is not None]

    def tensor(self, name: str) -> str:
        """The ONNX name of tensor ``name``, making a folded constant an initializer."""
        if name not in self.produced and name not in self.initializers:
            if name not in self.consts:
                raise TfjsConversionError(f"tensor {name!r} is used before it is produced")
            self.initializers[name] = self.consts[name]
            self._names.add(name)
        return name

    def add_const(self, value: Array, hint: str) -> str:
        name = self.unique(hint)
        self.initializers[name] = np.asarray(value)
        return name

    def unique(self, hint: str) -> str:
        name, k = hint, 1
        while name in self._names or name in self.consts:
            name, k = f"{hint}_{k}", k + 1
        self._names.add(name)
        return name

    def emit(
        self, op_type: str, inputs: Sequence[str], hint: str, outputs: int = 1, **attrs: Any
    ) -> list[str]:
        names = [self.unique(hint if i == 0 else f"{hint}:{i}") for i in range(outputs)]
        return self.emit_to(op_type, inputs, names, **attrs)

    def emit_to(
        self, op_type: str, inputs: Sequence[str], outputs: Sequence[str], **attrs: Any
    ) -> list[str]:
        self._names.update(outputs)
        self.produced.update(outputs)
        name = self.unique(f"{outputs[0]}/{op_type}")
        self.nodes.append(helper.make_node(op_type, list(inputs), list(outputs), name, **attrs))
        return list(outputs)

    def set_const(self, name: str, value: Array) -> None:
        self.consts[name] = np.asarray(value)

    # layout helpers for NHWC ops
    def to_nchw(self, node: _Node, name: str, nhwc: bool) -> str:
        if not nhwc:
            return name
        return self.emit("Transpose", [name], f"{node.name}/nchw", perm=list(_TO_NCHW))[0]

    def finish(
        self, node: _Node, op_type: str, inputs: Sequence[str], nhwc: bool, **attrs: Any
    ) -> None:
        """Emits ``op_type`` in NCHW; its result becomes the node's output in its own layout."""
        if not nhwc:
            self.emit_to(op_type, inputs, [node.out()], **attrs)
            return
        y = self.emit(op_type, inputs, f"{node.name}/{op_type}", **attrs)[0]
        self.emit_to("Transpose", [y], [node.out()], perm=list(_TO_NHWC))


Handler = Callable[[_Converter, _Node], None]
_HANDLERS: dict[str, Handler] = {}


def _handles(*ops: str) -> Callable[[Handler], Handler]:
    def register(fn: Handler) -> Handler:
        for op in ops:
            _HANDLERS[op] = fn
        return fn

    return register


def supported_ops() -> list[str]:
    """The TF ops this converter translates (placeholders become graph inputs)."""
    return sorted([*_HANDLERS, "Placeholder"])


# --- op handlers --------------------------------------------------------------------------


@_handles("Const")
def _op_const(c: _Converter, n: _Node) -> None:
    dtype = n.dtype("dtype")
    value = c.weights[n.name] if n.name in c.weights else _inline_tensor(n)
    c.set_const(n.out(), value.astype(dtype))


def _inline_tensor(n: _Node) -> Array:
    tensor = n.attr.get("value", {}).get("tensor", {})
    dtype = np.dtype(_TF_DTYPES.get(tensor.get("dtype", "DT_FLOAT"), np.float32))
    shape = tuple(int(d.get("size", 0)) for d in tensor.get("tensorShape", {}).get("dim", []))
    if "tensorContent" in tensor:
        raw = base64.b64decode(tensor["tensorContent"])
        return np.frombuffer(raw, dtype=dtype.newbyteorder("<")).reshape(shape).astype(dtype)
    for key in ("floatVal", "doubleVal", "intVal", "int64Val", "boolVal", "halfVal"):
        if key in tensor:
            values = np.asarray(tensor[key], dtype=dtype)
            return np.broadcast_to(values, shape).copy() if values.size == 1 else values
    if int(np.prod(shape, dtype=np.int64)) == 0:
        return np.zeros(shape, dtype=dtype)
    raise n.fail("constant has no value in the weights manifest nor inline")


_BINARY: dict[str, tuple[str, Callable[[Array, Array], Array]]] = {
    "Add": ("Add", np.add),
    "AddV2": ("Add", np.add),
    "Sub": ("Sub", np.subtract),
    "Mul": ("Mul", np.multiply),
    "RealDiv": ("Div", np.divide),
    "Maximum": ("Max", np.maximum),
    "Minimum": ("Min", np.minimum),
}


@_handles(*_BINARY)
def _op_binary(c: _Converter, n: _Node) -> None:
    if len(n.inputs) != 2:
        raise n.fail(f"expects 2 inputs, got {len(n.inputs)}")
    onnx_op, fn = _BINARY[n.op]
    values = c.all_const(n)
    if values is not None:
        c.set_const(n.out(), fn(values[0], values[1]).astype(values[0].dtype))
        return
    c.emit_to(onnx_op, [c.tensor(i) for i in n.inputs], [n.out()])


def _sigmoid(x: Array) -> Array:
    return 1.0 / (1.0 + np.exp(-x))


_UNARY: dict[str, tuple[str, Callable[[Array], Array]]] = {
    "Identity": ("Identity", lambda x: x),
    "Relu": ("Relu", lambda x: np.maximum(x, 0)),
    "Sigmoid": ("Sigmoid", _sigmoid),
    "Tanh": ("Tanh", np.tanh),
}


@_handles(*_UNARY)
def _op_unary(c: _Converter, n: _Node) -> None:
    onnx_op, fn = _UNARY[n.op]
    values = c.all_const(n, n.inputs[:1])
    if values is not None:
        c.set_const(n.out(), fn(values[0]).astype(values[0].dtype))
        return
    c.emit_to(onnx_op, [c.tensor(n.inputs[0])], [n.out()])


@_handles("Relu6")
def _op_relu6(c: _Converter, n: _Node) -> None:
    x = c.tensor(n.inputs[0])
    lo = c.add_const(np.array(0, dtype=np.float32), f"{n.name}/min")
    hi = c.add_const(np.array(6, dtype=np.float32), f"{n.name}/max")
    c.emit_to("Clip", [x, lo, hi], [n.out()])


@_handles("LeakyRelu")
def _op_leaky_relu(c: _Converter, n: _Node) -> None:
    c.emit_to("LeakyRelu", [c.tensor(n.inputs[0])], [n.out()], alpha=n.f("alpha", 0.2))


@_handles("Cast")
def _op_cast(c: _Converter, n: _Node) -> None:
    dtype = n.dtype("DstT")
    values = c.all_const(n, n.inputs[:1])
    if values is not None:
        c.set_const(n.out(), values[0].astype(dtype))
        return
    to = helper.np_dtype_to_tensor_dtype(dtype)
    c.emit_to("Cast", [c.tensor(n.inputs[0])], [n.out()], to=to)


def _layout_nhwc(n: _Node) -> bool:
    fmt = n.s("data_format", "NHWC")
    if fmt not in ("NHWC", "NCHW"):
        raise n.fail(f"unsupported data_format {fmt}")
    return fmt == "NHWC"


def _padding(
    n: _Node, spatial: tuple[int, int], kernel: Sequence[int], dilations: Sequence[int]
) -> dict[str, Any]:
    mode = n.s("padding", "VALID")
    h, w = spatial
    if mode == "VALID":
        return {"pads": [0, 0, 0, 0]}
    if mode == "SAME":
        strides = n.ints("strides", [1, 1, 1, 1])
        if strides[h] == strides[w] == 1:
            # Stride 1: the padding does not depend on the input size; TF puts the odd
            # pixel after (bottom/right).
            totals = [(k - 1) * d for k, d in zip(kernel, dilations, strict=True)]
            return {"pads": [t // 2 for t in totals] + [t - t // 2 for t in totals]}
        if all(d == 1 for d in dilations):
            return {"auto_pad": "SAME_UPPER"}  # ONNX's SAME_UPPER is TF's SAME
        raise n.fail("SAME padding with both strides and dilations above 1 is not supported")
    if mode == "EXPLICIT":
        p = n.ints("explicit_paddings", [])
        if len(p) != 8:
            raise n.fail(f"explicit_paddings must hold 8 values, got {p}")
        return {"pads": [p[2 * h], p[2 * w], p[2 * h + 1], p[2 * w + 1]]}
    raise n.fail(f"unsupported padding {mode}")


def _conv(c: _Converter, n: _Node, weight: Array, group: int) -> None:
    nhwc = _layout_nhwc(n)
    h, w = (1, 2) if nhwc else (2, 3)
    strides = n.ints("strides", [1, 1, 1, 1])
    dilations = n.ints("dilations", [1, 1, 1, 1])
    x = c.to_nchw(n, c.tensor(n.inputs[0]), nhwc)
    wname = c.add_const(weight, f"{n.inputs[1]}/oihw")
    c.finish(
        n,
        "Conv",
        [x, wname],
        nhwc,
        kernel_shape=list(weight.shape[2:]),
        strides=[strides[h], strides[w]],
        dilations=[dilations[h], dilations[w]],
        group=group,
        **_padding(n, (h, w), weight.shape[2:], [dilations[h], dilations[w]]),
    )


@_handles("Conv2D")
def _op_conv2d(c: _Converter, n: _Node) -> None:
    filt = c.const(n, 1, "filter")  # [kh, kw, in, out]
    if filt.ndim != 4:
        raise n.fail(f"filter must be 4-D, got shape {filt.shape}")
    _conv(c, n, np.ascontiguousarray(filt.transpose(3, 2, 0, 1)), group=1)


@_handles("DepthwiseConv2dNative")
def _op_depthwise(c: _Converter, n: _Node) -> None:
    filt = c.const(n, 1, "filter")  # [kh, kw, channels, multiplier]
    if filt.ndim != 4:
        raise n.fail(f"filter must be 4-D, got shape {filt.shape}")
    kh, kw, channels, mult = filt.shape
    # Output channel c * multiplier + m reads input channel c: ONNX groups in that order.
    weight = filt.reshape(kh, kw, 1, channels * mult).transpose(3, 2, 0, 1)
    _conv(c, n, np.ascontiguousarray(weight), group=channels)


@_handles("MaxPool", "AvgPool")
def _op_pool(c: _Converter, n: _Node) -> None:
    nhwc = _layout_nhwc(n)
    h, w = (1, 2) if nhwc else (2, 3)
    ksize = n.ints("ksize", [])
    strides = n.ints("strides", [])
    if len(ksize) != 4 or len(strides) != 4:
        raise n.fail("ksize and strides must hold 4 values")
    x = c.to_nchw(n, c.tensor(n.inputs[0]), nhwc)
    # TF leaves padded cells out of both the max and the average (count_include_pad=0).
    c.finish(
        n,
        "MaxPool" if n.op == "MaxPool" else "AveragePool",
        [x],
        nhwc,
        kernel_shape=[ksize[h], ksize[w]],
        strides=[strides[h], strides[w]],
        **_padding(n, (h, w), [ksize[h], ksize[w]], [1, 1]),
    )


@_handles("Pad", "PadV2")
def _op_pad(c: _Converter, n: _Node) -> None:
    paddings = c.const(n, 1, "paddings").astype(np.int64)
    if paddings.ndim != 2 or paddings.shape[1] != 2:
        raise n.fail(f"paddings must have shape [rank, 2], got {paddings.shape}")
    fill = c.const(n, 2, "constant_values") if n.op == "PadV2" else None
    values = c.all_const(n, n.inputs[:1])
    if values is not None:
        pad_value = 0 if fill is None else fill.item()
        c.set_const(n.out(), np.pad(values[0], paddings, constant_values=pad_value))
        return
    pads = c.add_const(np.concatenate([paddings[:, 0], paddings[:, 1]]), f"{n.name}/pads")
    inputs = [c.tensor(n.inputs[0]), pads]
    if fill is not None:
        inputs.append(c.add_const(fill.reshape(()), f"{n.name}/value"))
    c.emit_to("Pad", inputs, [n.out()], mode="constant")


@_handles("ConcatV2")
def _op_concat(c: _Converter, n: _Node) -> None:
    axis = int(c.const(n, len(n.inputs) - 1, "axis"))
    parts = n.inputs[:-1]
    values = c.all_const(n, parts)
    if values is not None:
        c.set_const(n.out(), np.concatenate(values, axis=axis))
        return
    c.emit_to("Concat", [c.tensor(p) for p in parts], [n.out()], axis=axis)


@_handles("Reshape")
def _op_reshape(c: _Converter, n: _Node) -> None:
    shape = c.const(n, 1, "shape").astype(np.int64).reshape(-1)
    values = c.all_const(n, n.inputs[:1])
    if values is not None:
        c.set_const(n.out(), values[0].reshape(shape))
        return
    sname = c.add_const(shape, f"{n.name}/shape")
    # TF's 0 is an empty dimension, ONNX's 0 copies the input's dimension unless allowzero.
    allowzero = int(bool((shape == 0).any()))
    c.emit_to("Reshape", [c.tensor(n.inputs[0]), sname], [n.out()], allowzero=allowzero)


@_handles("Transpose")
def _op_transpose(c: _Converter, n: _Node) -> None:
    perm = [int(p) for p in c.const(n, 1, "perm").reshape(-1)]
    values = c.all_const(n, n.inputs[:1])
    if values is not None:
        c.set_const(n.out(), values[0].transpose(perm))
        return
    c.emit_to("Transpose", [c.tensor(n.inputs[0])], [n.out()], perm=perm)


@_handles("SplitV")
def _op_split_v(c: _Converter, n: _Node) -> None:
    sizes = c.const(n, 1, "size_splits").astype(np.int64).reshape(-1)
    axis = int(c.const(n, 2, "split_dim"))
    count = n.i("num_split", len(sizes))
    if len(sizes) != count or (sizes < 0).sum() > 1:
        raise n.fail(f"bad size_splits {sizes.tolist()} for num_split {count}")
    outputs = [n.out(i) for i in range(count)]
    values = c.all_const(n, n.inputs[:1])
    if values is not None:
        sizes[sizes < 0] = values[0].shape[axis] - sizes[sizes >= 0].sum()
        for name, part in zip(
            outputs, np.split(values[0], np.cumsum(sizes)[:-1], axis), strict=True
        ):
            c.set_const(name, part)
        return
    x = c.tensor(n.inputs[0])
    split = c.add_const(sizes, f"{n.name}/split")
    if (sizes < 0).any():  # the -1 part takes what the others leave of the axis
        end = None if axis == -1 else axis + 1
        dim = c.emit("Shape", [x], f"{n.name}/dim", start=axis, end=end)[0]
        known = c.add_const(np.array([sizes[sizes >= 0].sum()]), f"{n.name}/known")
        rest = c.emit("Sub", [dim, known], f"{n.name}/rest")[0]
        at = int(np.nonzero(sizes < 0)[0][0])
        parts = [c.add_const(sizes[:at], f"{n.name}/before"), rest]
        parts.append(c.add_const(sizes[at + 1 :], f"{n.name}/after"))
        split = c.emit("Concat", parts, f"{n.name}/sizes", axis=0)[0]
    c.emit_to("Split", [x, split], outputs, axis=axis)


@_handles("Split")
def _op_split(c: _Converter, n: _Node) -> None:
    axis = int(c.const(n, 0, "split_dim"))
    count = n.i("num_split", 1)
    outputs = [n.out(i) for i in range(count)]
    values = c.all_const(n, n.inputs[1:2])
    if values is not None:
        for name, part in zip(outputs, np.split(values[0], count, axis), strict=True):
            c.set_const(name, part)
        return
    c.emit_to("Split", [c.tensor(n.inputs[1])], outputs, axis=axis)


@_handles("ResizeBilinear")
def _op_resize_bilinear(c: _Converter, n: _Node) -> None:
    size = c.const(n, 1, "size").astype(np.int64).reshape(-1)
    if size.shape != (2,):
        raise n.fail(f"size must hold 2 values, got {size.tolist()}")
    align, half = n.b("align_corners", False), n.b("half_pixel_centers", False)
    if align and half:
        raise n.fail("align_corners and half_pixel_centers cannot both be set")
    mode = "align_corners" if align else "half_pixel" if half else "asymmetric"
    x = c.to_nchw(n, c.tensor(n.inputs[0]), True)
    batch_channels = c.emit("Shape", [x], f"{n.name}/shape", start=0, end=2)[0]
    sizes = c.emit(
        "Concat", [batch_channels, c.add_const(size, f"{n.name}/size")], f"{n.name}/sizes", axis=0
    )[0]
    c.finish(
        n,
        "Resize",
        [x, "", "", sizes],
        True,
        mode="linear",
        coordinate_transformation_mode=mode,
    )


@_handles("SparseToDense")
def _op_sparse_to_dense(c: _Converter, n: _Node) -> None:
    indices = c.const(n, 0, "sparse_indices").astype(np.int64)
    shape = c.const(n, 1, "output_shape").astype(np.int64).reshape(-1)
    values = c.const(n, 2, "sparse_values")
    default = c.const(n, 3, "default_value")
    dense = np.full(tuple(shape), default.item(), dtype=values.dtype)
    if indices.size:
        index = indices.reshape(-1, 1) if indices.ndim < 2 else indices
        if ((index < 0) | (index >= shape[: index.shape[1]])).any():
            raise n.fail("sparse_indices out of range")
        dense[tuple(index.T)] = values
    c.set_const(n.out(), dense)


# --- graph assembly -----------------------------------------------------------------------


def _signature_tensors(spec: Mapping[str, Any], key: str) -> list[tuple[str, dict[str, Any]]]:
    entries = spec.get("signature", {}).get(key, {})
    return sorted(
        ((_tensor_name(v.get("name", k)), v) for k, v in entries.items()),
        key=lambda item: _natural_key(item[0]),
    )


def _dims(shape: Mapping[str, Any] | None) -> list[int | str] | None:
    if not shape or shape.get("unknownRank"):
        return None
    dims: list[int | str] = []
    for i, d in enumerate(shape.get("dim", [])):
        size = int(d.get("size", -1))
        dims.append(size if size >= 0 else f"d{i}")
    return dims


def _value_info(name: str, dtype_name: str, dims: list[int | str] | None) -> onnx.ValueInfoProto:
    if dtype_name not in _TF_DTYPES:
        raise TfjsConversionError(f"tensor {name!r}: unsupported dtype {dtype_name}")
    elem = helper.np_dtype_to_tensor_dtype(np.dtype(_TF_DTYPES[dtype_name]))
    return helper.make_tensor_value_info(name, elem, dims)


def _needed_nodes(nodes: Mapping[str, _Node], outputs: Iterable[str]) -> dict[str, _Node]:
    needed: dict[str, _Node] = {}
    stack = [_producer(o) for o in outputs]
    while stack:
        name = stack.pop()
        if name in needed:
            continue
        if name not in nodes:
            raise TfjsConversionError(f"graph references missing node {name!r}")
        needed[name] = nodes[name]
        stack.extend(_producer(i) for i in nodes[name].inputs)
    return needed


def tfjs_graph_to_onnx(model_json: Path) -> onnx.ModelProto:
    """Converts a TFJS graph model (its weights read from the files its manifest names, next
    to ``model_json``) to a checked ONNX model (opset 17). Graph outputs follow the signature's
    output names in natural order (``Identity``, ``Identity_1``, ...), named without ``:0``."""
    spec = _read_json(model_json)
    weights = _read_weights(model_json, spec)
    nodes = _parse_nodes(spec["modelTopology"])

    outputs = _signature_tensors(spec, "outputs")
    if not outputs:  # no signature: every non-constant node that nothing consumes
        consumed = {_producer(i) for n in nodes.values() for i in n.inputs}
        outputs = [
            (name, {})
            for name in sorted(nodes, key=_natural_key)
            if name not in consumed and nodes[name].op not in ("Const", "Placeholder")
        ]
    if not outputs:
        raise TfjsConversionError(f"{model_json}: the graph has no outputs")
    needed = _needed_nodes(nodes, [name for name, _ in outputs])

    unsupported = sorted(
        f"{n.op} (node {n.name!r})"
        for n in needed.values()
        if n.op not in _HANDLERS and n.op != "Placeholder"
    )
    if unsupported:
        raise TfjsConversionError(
            f"{model_json.name}: unsupported TF op(s): {', '.join(unsupported)}"
        )

    conv = _Converter(weights)
    conv.reserve(nodes)
    signature_inputs = dict(_signature_tensors(spec, "inputs"))
    order = graphlib.TopologicalSorter(
        {name: {_producer(i) for i in n.inputs} for name, n in needed.items()}
    ).static_order()
    for name in order:
        node = needed[name]
        if node.op == "Placeholder":
            sig = signature_inputs.get(node.name, {})
            dtype = sig.get("dtype") or node.attr.get("dtype", {}).get("type", "DT_FLOAT")
            dims = _dims(sig.get("tensorShape")) or _dims(node.attr.get("shape", {}).get("shape"))
            conv.inputs.append(_value_info(node.name, dtype, dims))
            conv.produced.add(node.name)
            continue
        _HANDLERS[node.op](conv, node)

    # Inputs in signature order, then in the order the graph lists its placeholders.
    position = {name: i for i, name in enumerate(nodes)}
    rank = {name: i for i, name in enumerate(signature_inputs)}
    conv.inputs.sort(key=lambda vi: (rank.get(vi.name, len(rank)), position[vi.name]))

    graph_outputs: list[onnx.ValueInfoProto] = []
    for name, sig in outputs:
        if name not in conv.produced:  # a folded constant: expose it through an Identity
            value = conv.consts[name]
            conv.emit_to("Identity", [conv.add_const(value, f"{name}/value")], [name])
        graph_outputs.append(
            _value_info(name, sig.get("dtype", "DT_FLOAT"), _dims(sig.get("tensorShape")))
        )
    keep = {o.name for o in graph_outputs}
    graph_nodes = _optimise(conv.nodes, conv.initializers, keep)
    used = {i for node in graph_nodes for i in node.input}
    initializers = [
        numpy_helper.from_array(np.ascontiguousarray(value), name)
        for name, value in conv.initializers.items()
        if name in used
    ]
    graph = helper.make_graph(
        graph_nodes, model_json.stem, conv.inputs, graph_outputs, initializer=initializers
    )
    model = helper.make_model(
        graph,
        opset_imports=[helper.make_opsetid("", OPSET)],
        producer_name="obscura.zoo.tfjs",
        ir_version=IR_VERSION,
    )
    onnx.checker.check_model(model, full_check=True)
    return model


# --- clean-up passes ----------------------------------------------------------------------


def _perm(node: onnx.NodeProto) -> list[int]:
    for attr in node.attribute:
        if attr.name == "perm":
            return list(attr.ints)
    raise TfjsConversionError(f"Transpose {node.name!r} has no perm")


def _set_perm(node: onnx.NodeProto, perm: Sequence[int]) -> None:
    for attr in node.attribute:
        if attr.name == "perm":
            del attr.ints[:]
            attr.ints.extend(perm)


def _optimise(
    nodes: list[onnx.NodeProto], initializers: dict[str, Array], keep: set[str]
) -> list[onnx.NodeProto]:
    """Folds Conv -> Transpose -> Add(bias) into a biased Conv, merges chained transposes and
    drops identity ones, then removes nodes whose results nothing uses."""
    nodes = list(nodes)
    while True:
        changed = _fold_conv_bias(nodes, initializers, keep)
        changed |= _merge_transposes(nodes, keep)
        nodes = _drop_dead(nodes, keep)
        if not changed:
            return nodes


def _consumers(nodes: Sequence[onnx.NodeProto]) -> dict[str, int]:
    counts: dict[str, int] = {}
    for node in nodes:
        for name in node.input:
            counts[name] = counts.get(name, 0) + 1
    return counts


def _fold_conv_bias(
    nodes: list[onnx.NodeProto], initializers: dict[str, Array], keep: set[str]
) -> bool:
    producers = {out: node for node in nodes for out in node.output}
    uses = _consumers(nodes)
    removed: set[int] = set()
    for add in nodes:
        if add.op_type != "Add":
            continue
        for data, bias_name in ((add.input[0], add.input[1]), (add.input[1], add.input[0])):
            tr, bias = producers.get(data), initializers.get(bias_name)
            if bias is None or tr is None or tr.op_type != "Transpose":
                continue
            conv = producers.get(tr.input[0])
            if conv is None or conv.op_type != "Conv" or len(conv.input) != 2:
                continue
            channels = initializers[conv.input[1]].shape[0]
            if (
                _perm(tr) != list(_TO_NHWC)
                or uses.get(data) != 1
                or uses.get(tr.input[0]) != 1
                or data in keep
                or tr.input[0] in keep
                or bias.ndim > 4
                or bias.size != channels
                or bias.shape[-1] != channels
                or bias.dtype != initializers[conv.input[1]].dtype
            ):
                continue
            name = bias_name + "/conv_bias"
            initializers[name] = bias.reshape(channels)
            conv.input.append(name)
            tr.output[0] = add.output[0]
            removed.add(id(add))
            break
    nodes[:] = [n for n in nodes if id(n) not in removed]
    return bool(removed)


def _merge_transposes(nodes: list[onnx.NodeProto], keep: set[str]) -> bool:
    changed = False
    producers = {out: node for node in nodes for out in node.output}
    renames: dict[str, str] = {}
    for node in nodes:
        if node.op_type != "Transpose":
            continue
        src = producers.get(node.input[0])
        if src is not None and src.op_type == "Transpose":
            first, second = _perm(src), _perm(node)
            node.input[0] = src.input[0]
            _set_perm(node, [first[i] for i in second])
            changed = True
        perm = _perm(node)
        if perm == list(range(len(perm))) and node.output[0] not in keep:
            renames[node.output[0]] = node.input[0]
    if renames:
        for node in nodes:
            for i, original in enumerate(node.input):
                name = original
                while name in renames:
                    name = renames[name]
                node.input[i] = name
        changed = True
    return changed


def _drop_dead(nodes: list[onnx.NodeProto], keep: set[str]) -> list[onnx.NodeProto]:
    needed = set(keep)
    live: list[onnx.NodeProto] = []
    for node in reversed(nodes):
        if any(o in needed for o in node.output):
            live.append(node)
            needed.update(i for i in node.input if i)
    live.reverse()
    return live
