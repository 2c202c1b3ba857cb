"""The TFJS graph-model converter against numpy references of TF's semantics."""

from __future__ import annotations

import base64
import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import onnx
import onnxruntime as ort
import openvino as ov
import pytest
from numpy.lib.stride_tricks import sliding_window_view
from numpy.typing import NDArray

from obscura.zoo.tfjs import TfjsConversionError, tfjs_files, tfjs_graph_to_onnx

Array = NDArray[Any]
RNG = np.random.default_rng(7)

_DT: dict[np.dtype[Any], str] = {
    np.dtype(np.float32): "DT_FLOAT",
    np.dtype(np.int32): "DT_INT32",
    np.dtype(np.int64): "DT_INT64",
}


# --- building TFJS graph models ------------------------------------------------------------


def _s(text: str) -> dict[str, str]:
    return {"s": base64.b64encode(text.encode()).decode()}


def _ints(values: Sequence[int]) -> dict[str, Any]:
    return {"list": {"i": [str(v) for v in values]}}


class Graph:
    """A TFJS graph model under construction: nodes plus weights for its constants."""

    def __init__(self) -> None:
        self.nodes: list[dict[str, Any]] = []
        self.weights: list[tuple[str, Array, dict[str, Any] | None]] = []

    def placeholder(self, name: str, shape: Sequence[int]) -> str:
        dims = [{"size": str(d)} for d in shape]
        attr = {"shape": {"shape": {"dim": dims}}, "dtype": {"type": "DT_FLOAT"}}
        self.nodes.append({"name": name, "op": "Placeholder", "attr": attr})
        return name

    def const(self, name: str, value: Array, quantization: dict[str, Any] | None = None) -> str:
        value = np.asarray(value)
        attr = {"dtype": {"type": _DT[value.dtype]}, "value": {"tensor": {}}}
        self.nodes.append({"name": name, "op": "Const", "attr": attr})
        self.weights.append((name, value, quantization))
        return name

    def op(self, name: str, op: str, inputs: Sequence[str], **attr: Any) -> str:
        self.nodes.append({"name": name, "op": op, "input": list(inputs), "attr": attr})
        return name

    def write(self, directory: Path, outputs: Mapping[str, Array]) -> Path:
        """Writes model.json and weights.bin; ``outputs`` maps Identity nodes to results."""
        blobs: list[bytes] = []
        entries: list[dict[str, Any]] = []
        for name, value, quant in self.weights:
            dtype = "float32" if value.dtype == np.float32 else "int32"
            entry: dict[str, Any] = {"name": name, "shape": list(value.shape), "dtype": dtype}
            if quant is None:
                blobs.append(value.astype(dtype).tobytes())
            else:
                entry["quantization"] = {k: v for k, v in quant.items() if k != "data"}
                blobs.append(np.asarray(quant["data"]).tobytes())
            entries.append(entry)
        (directory / "weights.bin").write_bytes(b"".join(blobs))
        signature = {
            f"{name}:0": {
                "name": f"{name}:0",
                "dtype": "DT_FLOAT",
                "tensorShape": {"dim": [{"size": str(d)} for d in value.shape]},
            }
            for name, value in outputs.items()
        }
        model = {
            "format": "graph-model",
            "signature": {"outputs": signature},
            "modelTopology": {"node": self.nodes, "library": {}, "versions": {}},
            "weightsManifest": [{"paths": ["weights.bin"], "weights": entries}],
        }
        path = directory / "model.json"
        path.write_text(json.dumps(model))
        return path


def run_onnx(model: onnx.ModelProto, feeds: Mapping[str, Array], runtime: str) -> list[Array]:
    if runtime == "onnxruntime":
        session = ort.InferenceSession(
            model.SerializeToString(), providers=["CPUExecutionProvider"]
        )
        return [np.asarray(o) for o in session.run(None, dict(feeds))]
    core = ov.Core()
    compiled = core.compile_model(
        core.read_model(model.SerializeToString(), b""),
        "CPU",
        {"INFERENCE_PRECISION_HINT": "f32"},
    )
    result = compiled(dict(feeds))
    return [np.asarray(result[o]) for o in compiled.outputs]


@pytest.fixture(params=["onnxruntime", "openvino"])
def runtime(request: pytest.FixtureRequest) -> str:
    return str(request.param)


def check(
    tmp_path: Path,
    graph: Graph,
    feeds: Mapping[str, Array],
    expected: Mapping[str, Array],
    runtime: str,
    *,
    atol: float = 1e-4,
) -> onnx.ModelProto:
    for name in expected:  # tests name the tensor an output reads "<output>/src"
        graph.op(name, "Identity", [f"{name}/src"])
    model = tfjs_graph_to_onnx(graph.write(tmp_path, expected))
    outputs = run_onnx(model, feeds, runtime)
    names = [o.name for o in model.graph.output]
    assert sorted(names) == sorted(expected)
    for name, got in zip(names, outputs, strict=True):
        want = expected[name]
        assert got.shape == want.shape, name
        np.testing.assert_allclose(got, want, atol=atol, rtol=1e-4, err_msg=name)
    return model


# --- numpy references of TF semantics ------------------------------------------------------


def same_pads(size: int, kernel: int, stride: int, dilation: int = 1) -> tuple[int, int]:
    effective = (kernel - 1) * dilation + 1
    out = -(-size // stride)
    total = max((out - 1) * stride + effective - size, 0)
    return total // 2, total - total // 2


def windows(
    x: Array,
    kernel: tuple[int, int],
    *,
    strides: tuple[int, int],
    pads: tuple[tuple[int, int], tuple[int, int]],
    fill: float = 0.0,
    dilations: tuple[int, int] = (1, 1),
) -> Array:
    """NHWC input -> [n, oh, ow, c, kh, kw] windows."""
    padded = np.pad(x, ((0, 0), pads[0], pads[1], (0, 0)), constant_values=fill)
    eff = ((kernel[0] - 1) * dilations[0] + 1, (kernel[1] - 1) * dilations[1] + 1)
    view = sliding_window_view(padded, eff, axis=(1, 2))
    return view[:, :: strides[0], :: strides[1], :, :: dilations[0], :: dilations[1]]


def conv_ref(
    x: Array,
    w: Array,
    strides: tuple[int, int],
    padding: str,
    *,
    dilations: tuple[int, int] = (1, 1),
    explicit: tuple[tuple[int, int], tuple[int, int]] = ((0, 0), (0, 0)),
) -> Array:
    kh, kw = w.shape[:2]
    if padding == "SAME":
        pads = (
            same_pads(x.shape[1], kh, strides[0], dilations[0]),
            same_pads(x.shape[2], kw, strides[1], dilations[1]),
        )
    elif padding == "VALID":
        pads = ((0, 0), (0, 0))
    else:
        pads = explicit
    win = windows(x, (kh, kw), strides=strides, pads=pads, dilations=dilations)
    out: Array = np.einsum("nhwcij,ijco->nhwo", win, w).astype(np.float32)
    return out


def resize_ref(x: Array, out_h: int, out_w: int, align: bool, half: bool) -> Array:
    """TF's (non-antialiased) ResizeBilinear on NHWC."""

    def axis(size_in: int, size_out: int) -> tuple[Array, Array, Array]:
        aligned = align and size_out > 1
        scale = (size_in - 1) / (size_out - 1) if aligned else size_in / size_out
        out = np.arange(size_out, dtype=np.float64)
        src = (out + 0.5) * scale - 0.5 if half else out * scale
        low = np.floor(src)
        frac = src - low
        lo = np.clip(low, 0, size_in - 1).astype(int)
        hi = np.clip(low + 1, 0, size_in - 1).astype(int)
        return lo, hi, frac

    y0, y1, fy = axis(x.shape[1], out_h)
    x0, x1, fx = axis(x.shape[2], out_w)
    top = (
        x[:, y0][:, :, x0] * (1 - fx)[None, None, :, None]
        + x[:, y0][:, :, x1] * fx[None, None, :, None]
    )
    bottom = (
        x[:, y1][:, :, x0] * (1 - fx)[None, None, :, None]
        + x[:, y1][:, :, x1] * fx[None, None, :, None]
    )
    out: Array = top * (1 - fy)[None, :, None, None] + bottom * fy[None, :, None, None]
    return out.astype(np.float32)


def f32(*shape: int) -> Array:
    return RNG.normal(size=shape).astype(np.float32)


# --- op tests ------------------------------------------------------------------------------


ConvCase = tuple[str, tuple[int, int], tuple[int, int], tuple[int, int]]


@pytest.mark.parametrize(
    "case",
    [
        ("SAME", (3, 3), (2, 2), (1, 1)),
        ("SAME", (2, 2), (1, 1), (1, 1)),
        ("SAME", (3, 2), (1, 2), (1, 1)),
        ("SAME", (3, 2), (1, 1), (2, 3)),
        ("VALID", (3, 3), (2, 2), (1, 1)),
        ("VALID", (1, 1), (1, 1), (1, 1)),
        ("VALID", (3, 2), (2, 1), (1, 2)),
    ],
)
def test_conv2d_padding_and_strides(tmp_path: Path, runtime: str, case: ConvCase) -> None:
    padding, kernel, strides, dilations = case
    x, w, b = f32(1, 7, 6, 3), f32(*kernel, 3, 4), f32(4)
    g = Graph()
    g.placeholder("x", x.shape)
    g.const("w", w)
    g.const("b", b)
    g.op(
        "conv",
        "Conv2D",
        ["x", "w"],
        padding=_s(padding),
        strides=_ints([1, *strides, 1]),
        dilations=_ints([1, *dilations, 1]),
        data_format=_s("NHWC"),
    )
    g.op("out/src", "AddV2", ["conv", "b"])
    want = conv_ref(x, w, strides, padding, dilations=dilations) + b
    model = check(tmp_path, g, {"x": x}, {"out": want}, runtime)
    # The bias addition is folded into the ONNX Conv.
    assert [n.op_type for n in model.graph.node].count("Add") == 0


def test_conv2d_explicit_padding(tmp_path: Path, runtime: str) -> None:
    x, w = f32(1, 5, 6, 2), f32(3, 3, 2, 3)
    g = Graph()
    g.placeholder("x", x.shape)
    g.const("w", w)
    g.op(
        "out/src",
        "Conv2D",
        ["x", "w"],
        padding=_s("EXPLICIT"),
        explicit_paddings=_ints([0, 0, 2, 0, 1, 3, 0, 0]),
        strides=_ints([1, 1, 1, 1]),
    )
    want = conv_ref(x, w, (1, 1), "EXPLICIT", explicit=((2, 0), (1, 3)))
    check(tmp_path, g, {"x": x}, {"out": want}, runtime)


def test_conv2d_nchw_data_format(tmp_path: Path, runtime: str) -> None:
    x, w = f32(1, 2, 6, 5), f32(3, 3, 2, 4)
    g = Graph()
    g.placeholder("x", x.shape)
    g.const("w", w)
    g.op(
        "out/src",
        "Conv2D",
        ["x", "w"],
        padding=_s("SAME"),
        strides=_ints([1, 1, 2, 2]),
        data_format=_s("NCHW"),
    )
    want = conv_ref(x.transpose(0, 2, 3, 1), w, (2, 2), "SAME").transpose(0, 3, 1, 2)
    check(tmp_path, g, {"x": x}, {"out": want}, runtime)


def test_depthwise_conv(tmp_path: Path, runtime: str) -> None:
    x, w = f32(1, 6, 6, 3), f32(3, 3, 3, 2)  # channel multiplier 2
    g = Graph()
    g.placeholder("x", x.shape)
    g.const("w", w)
    g.op(
        "out/src",
        "DepthwiseConv2dNative",
        ["x", "w"],
        padding=_s("SAME"),
        strides=_ints([1, 2, 2, 1]),
    )
    win = windows(x, (3, 3), strides=(2, 2), pads=(same_pads(6, 3, 2), same_pads(6, 3, 2)))
    want = np.einsum("nhwcij,ijcm->nhwcm", win, w).reshape(1, 3, 3, 6)
    check(tmp_path, g, {"x": x}, {"out": want}, runtime)


@pytest.mark.parametrize(("padding", "stride"), [("SAME", 2), ("SAME", 1), ("VALID", 2)])
def test_maxpool(tmp_path: Path, runtime: str, padding: str, stride: int) -> None:
    x = f32(1, 7, 8, 2)
    g = Graph()
    g.placeholder("x", x.shape)
    g.op(
        "out/src",
        "MaxPool",
        ["x"],
        ksize=_ints([1, 3, 3, 1]),
        strides=_ints([1, stride, stride, 1]),
        padding=_s(padding),
    )
    same = (same_pads(7, 3, stride), same_pads(8, 3, stride))
    pads = same if padding == "SAME" else ((0, 0), (0, 0))
    win = windows(x, (3, 3), strides=(stride, stride), pads=pads, fill=-np.inf)
    check(tmp_path, g, {"x": x}, {"out": win.max(axis=(4, 5))}, runtime)


def test_avgpool_same_leaves_padding_out(tmp_path: Path, runtime: str) -> None:
    x = f32(1, 7, 8, 2)
    g = Graph()
    g.placeholder("x", x.shape)
    g.op(
        "out/src",
        "AvgPool",
        ["x"],
        ksize=_ints([1, 3, 3, 1]),
        strides=_ints([1, 2, 2, 1]),
        padding=_s("SAME"),
    )
    pads = (same_pads(7, 3, 2), same_pads(8, 3, 2))
    total = windows(x, (3, 3), strides=(2, 2), pads=pads).sum(axis=(4, 5))
    count = windows(np.ones_like(x), (3, 3), strides=(2, 2), pads=pads).sum(axis=(4, 5))
    check(tmp_path, g, {"x": x}, {"out": total / count}, runtime)


def test_padv2_then_maxpool_like_onnx_tf(tmp_path: Path, runtime: str) -> None:
    # onnx-tf's pattern: NCHW PadV2 with -inf, transpose to NHWC, VALID MaxPool, back.
    x = f32(1, 2, 6, 6)
    g = Graph()
    g.placeholder("x", x.shape)
    g.const("paddings", np.array([[0, 0], [0, 0], [1, 1], [1, 1]], dtype=np.int32))
    g.const("fill", np.array(-np.inf, dtype=np.float32))
    g.const("to_nhwc", np.array([0, 2, 3, 1], dtype=np.int32))
    g.const("to_nchw", np.array([0, 3, 1, 2], dtype=np.int32))
    g.op("pad", "PadV2", ["x", "paddings", "fill"])
    g.op("t1", "Transpose", ["pad", "to_nhwc"])
    g.op(
        "pool",
        "MaxPool",
        ["t1"],
        ksize=_ints([1, 3, 3, 1]),
        strides=_ints([1, 2, 2, 1]),
        padding=_s("VALID"),
    )
    g.op("out/src", "Transpose", ["pool", "to_nchw"])
    nhwc = x.transpose(0, 2, 3, 1)
    win = windows(nhwc, (3, 3), strides=(2, 2), pads=((1, 1), (1, 1)), fill=-np.inf)
    want = win.max(axis=(4, 5))
    model = check(tmp_path, g, {"x": x}, {"out": want.transpose(0, 3, 1, 2)}, runtime)
    # Every transpose cancels against the converter's own.
    assert "Transpose" not in [n.op_type for n in model.graph.node]


def test_pad_leaky_relu_sigmoid_add(tmp_path: Path, runtime: str) -> None:
    x, bias = f32(1, 3, 4, 5), f32(5)
    g = Graph()
    g.placeholder("x", x.shape)
    g.const("paddings", np.array([[0, 0], [1, 2], [0, 3], [0, 0]], dtype=np.int32))
    g.const("bias", bias)
    g.op("pad", "Pad", ["x", "paddings"])
    g.op("leaky", "LeakyRelu", ["pad"], alpha={"f": 0.1})
    g.op("a/src", "Add", ["leaky", "bias"])
    g.op("s/src", "Sigmoid", ["a/src"])
    padded = np.pad(x, ((0, 0), (1, 2), (0, 3), (0, 0)))
    added = np.where(padded > 0, padded, 0.1 * padded) + bias
    check(tmp_path, g, {"x": x}, {"a": added, "s": 1 / (1 + np.exp(-added))}, runtime, atol=1e-5)


def test_concat_splitv_reshape_transpose(tmp_path: Path, runtime: str) -> None:
    x, y = f32(1, 3, 2, 2), f32(1, 5, 2, 2)
    g = Graph()
    g.placeholder("x", x.shape)
    g.placeholder("y", y.shape)
    g.const("axis", np.array(1, dtype=np.int32))
    g.const("sizes", np.array([2, -1, 1], dtype=np.int32))
    g.const("shape", np.array([1, -1, 4], dtype=np.int64))
    g.const("perm", np.array([0, 2, 1], dtype=np.int32))
    g.op("cat/src", "ConcatV2", ["x", "y", "axis"], N={"i": "2"})
    g.op("split", "SplitV", ["cat/src", "sizes", "axis"], num_split={"i": "3"})
    g.op("r", "Reshape", ["split:1", "shape"])
    g.op("t/src", "Transpose", ["r", "perm"])
    g.op("last/src", "Identity", ["split:2"])
    cat = np.concatenate([x, y], axis=1)
    want = {
        "cat": cat,
        "t": cat[:, 2:7].reshape(1, -1, 4).transpose(0, 2, 1),
        "last": cat[:, 7:],
    }
    model = check(tmp_path, g, {"x": x, "y": y}, want, runtime)
    assert [i.name for i in model.graph.input] == ["x", "y"]


@pytest.mark.parametrize(
    ("size", "align", "half"),
    [
        ((8, 10), False, True),
        ((3, 2), False, True),
        ((8, 10), True, False),
        ((7, 9), False, False),
        ((2, 3), False, False),
    ],
)
def test_resize_bilinear(
    tmp_path: Path, runtime: str, size: tuple[int, int], align: bool, half: bool
) -> None:
    x = f32(1, 4, 5, 3)
    g = Graph()
    g.placeholder("x", x.shape)
    g.const("size", np.array(size, dtype=np.int32))
    g.op(
        "out/src",
        "ResizeBilinear",
        ["x", "size"],
        align_corners={"b": align},
        half_pixel_centers={"b": half},
    )
    check(tmp_path, g, {"x": x}, {"out": resize_ref(x, *size, align, half)}, runtime)


def test_elementwise_ops_and_split(tmp_path: Path, runtime: str) -> None:
    x, y = f32(2, 6), f32(2, 6)
    g = Graph()
    g.placeholder("x", x.shape)
    g.placeholder("y", y.shape)
    g.const("axis", np.array(1, dtype=np.int32))
    g.const("three", np.array(3, dtype=np.int32))
    g.op("three_f", "Cast", ["three"], DstT={"type": "DT_FLOAT"})
    g.op("sub/src", "Sub", ["x", "y"])
    g.op("div/src", "RealDiv", ["x", "three_f"])
    g.op("max/src", "Maximum", ["x", "y"])
    g.op("min/src", "Minimum", ["x", "y"])
    g.op("big", "Mul", ["x", "three_f"])
    g.op("relu/src", "Relu", ["big"])
    g.op("relu6/src", "Relu6", ["big"])
    g.op("tanh/src", "Tanh", ["x"])
    g.op("split", "Split", ["axis", "x"], num_split={"i": "3"})
    g.op("part/src", "Identity", ["split:2"])
    want = {
        "sub": x - y,
        "div": x / 3,
        "max": np.maximum(x, y),
        "min": np.minimum(x, y),
        "relu": np.maximum(3 * x, 0),
        "relu6": np.clip(3 * x, 0, 6),
        "tanh": np.tanh(x),
        "part": x[:, 4:],
    }
    check(tmp_path, g, {"x": x, "y": y}, want, runtime)


def test_sparse_to_dense_shape_is_folded(tmp_path: Path, runtime: str) -> None:
    # onnx-tf's Reshape target: a constant plus a SparseToDense of empty indices.
    x = f32(1, 6, 2, 2)
    g = Graph()
    g.placeholder("x", x.shape)
    g.const("base", np.array([1, 6, -1], dtype=np.int64))
    g.const("indices", np.zeros((1, 1), dtype=np.int64))
    g.const("dense_shape", np.array([3], dtype=np.int64))
    g.const("values", np.array([0], dtype=np.int64))
    g.const("default", np.array(0, dtype=np.int64))
    g.op("sd", "SparseToDense", ["indices", "dense_shape", "values", "default"])
    g.op("target", "AddV2", ["base", "sd"])
    g.op("out/src", "Reshape", ["x", "target"])
    model = check(tmp_path, g, {"x": x}, {"out": x.reshape(1, 6, 4)}, runtime)
    ops = [n.op_type for n in model.graph.node]
    assert ops == ["Reshape", "Identity"]


def test_quantized_weights_are_dequantised(tmp_path: Path, runtime: str) -> None:
    x = f32(1, 4)
    half = f32(4)
    q = np.array([0, 1, 2, 255], dtype=np.uint8)
    g = Graph()
    g.placeholder("x", x.shape)
    g.const("h", half, {"dtype": "float16", "data": half.astype(np.float16)})
    g.const("q", q.astype(np.float32), {"dtype": "uint8", "scale": 0.5, "min": -1.0, "data": q})
    g.op("a", "Add", ["x", "h"])
    g.op("out/src", "Mul", ["a", "q"])
    want = (x + half.astype(np.float16).astype(np.float32)) * (q * 0.5 - 1.0)
    check(tmp_path, g, {"x": x}, {"out": want}, runtime)


def test_outputs_in_natural_name_order(tmp_path: Path) -> None:
    x = f32(1, 2)
    g = Graph()
    g.placeholder("x", x.shape)
    names = ["Identity_10", "Identity_2", "Identity", "Identity_1"]
    for name in names:
        g.op(name, "Identity", ["x"])
    model = tfjs_graph_to_onnx(g.write(tmp_path, dict.fromkeys(names, x)))
    assert [o.name for o in model.graph.output] == [
        "Identity",
        "Identity_1",
        "Identity_2",
        "Identity_10",
    ]


# --- errors and files ----------------------------------------------------------------------


def test_unsupported_op_names_op_and_node(tmp_path: Path) -> None:
    g = Graph()
    g.placeholder("x", (1, 4))
    g.op("weird", "Erf", ["x"])
    g.op("out", "Identity", ["weird"])
    path = g.write(tmp_path, {"out": np.zeros((1, 4), dtype=np.float32)})
    with pytest.raises(TfjsConversionError, match=r"Erf \(node 'weird'\)"):
        tfjs_graph_to_onnx(path)


def test_unsupported_quantization_is_rejected(tmp_path: Path) -> None:
    g = Graph()
    g.placeholder("x", (1, 2))
    data = np.zeros(2, dtype=np.int8)
    g.const("w", np.zeros(2, dtype=np.float32), {"dtype": "int8", "data": data})
    g.op("out/src", "Add", ["x", "w"])
    g.op("out", "Identity", ["out/src"])
    path = g.write(tmp_path, {"out": np.zeros((1, 2), dtype=np.float32)})
    with pytest.raises(TfjsConversionError, match="weight 'w': unsupported quantization"):
        tfjs_graph_to_onnx(path)


def test_same_padding_with_strides_and_dilations_is_rejected(tmp_path: Path) -> None:
    g = Graph()
    g.placeholder("x", (1, 6, 6, 1))
    g.const("w", np.ones((3, 3, 1, 1), dtype=np.float32))
    g.op(
        "c",
        "Conv2D",
        ["x", "w"],
        padding=_s("SAME"),
        strides=_ints([1, 2, 2, 1]),
        dilations=_ints([1, 2, 2, 1]),
    )
    g.op("out", "Identity", ["c"])
    path = g.write(tmp_path, {"out": np.zeros((1, 3, 3, 1), dtype=np.float32)})
    with pytest.raises(TfjsConversionError, match="Conv2D node 'c': SAME padding"):
        tfjs_graph_to_onnx(path)


def test_non_constant_filter_is_rejected(tmp_path: Path) -> None:
    g = Graph()
    g.placeholder("x", (1, 4, 4, 1))
    g.placeholder("w", (1, 1, 1, 1))
    g.op("c", "Conv2D", ["x", "w"], padding=_s("VALID"), strides=_ints([1, 1, 1, 1]))
    g.op("out", "Identity", ["c"])
    path = g.write(tmp_path, {"out": np.zeros((1, 4, 4, 1), dtype=np.float32)})
    with pytest.raises(TfjsConversionError, match="Conv2D node 'c': filter"):
        tfjs_graph_to_onnx(path)


def test_short_weight_file_is_rejected(tmp_path: Path) -> None:
    g = Graph()
    g.placeholder("x", (1, 2))
    g.const("w", np.zeros(2, dtype=np.float32))
    g.op("out/src", "Add", ["x", "w"])
    g.op("out", "Identity", ["out/src"])
    path = g.write(tmp_path, {"out": np.zeros((1, 2), dtype=np.float32)})
    (tmp_path / "weights.bin").write_bytes(b"\0" * 4)
    with pytest.raises(TfjsConversionError, match="runs past the end"):
        tfjs_graph_to_onnx(path)


def test_tfjs_files_lists_shards_and_refuses_escapes(tmp_path: Path) -> None:
    manifest = [{"paths": ["a.bin", "sub/b.bin"], "weights": []}, {"paths": ["c.bin"]}]
    path = tmp_path / "model.json"
    path.write_text(json.dumps({"modelTopology": {"node": []}, "weightsManifest": manifest}))
    assert tfjs_files(path) == [tmp_path / "a.bin", tmp_path / "sub" / "b.bin", tmp_path / "c.bin"]
    manifest[0]["paths"] = ["../evil.bin"]
    path.write_text(json.dumps({"modelTopology": {"node": []}, "weightsManifest": manifest}))
    with pytest.raises(TfjsConversionError, match="must stay next to"):
        tfjs_files(path)


def test_layers_model_is_rejected(tmp_path: Path) -> None:
    path = tmp_path / "model.json"
    path.write_text(json.dumps({"format": "layers-model", "modelTopology": {}}))
    with pytest.raises(TfjsConversionError, match="only graph-model"):
        tfjs_graph_to_onnx(path)
