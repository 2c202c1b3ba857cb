"""TFLite models read with OpenVINO's TFLite frontend, plus the custom ops it lacks.

MediaPipe's segmentation models end in the custom op ``Convolution2DTransposeBias``: a
transposed 2-D convolution with a bias as its third input. Its inputs are the NHWC feature
map, filters laid out (out channels, kernel height, kernel width, in channels) and a bias of
one value per output channel. The op's options (padding SAME, stride 2) sit in an opaque
custom-options blob that the frontend does not expose, so they are fixed here; every
MediaPipe model that uses the op uses it with those options.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import openvino as ov
import openvino.opset13 as ops
from openvino.frontend import ConversionExtension, NodeContext

TRANSPOSE_CONV_BIAS = "Convolution2DTransposeBias"
TRANSPOSE_CONV_STRIDE = 2

_NHWC_TO_NCHW = [0, 3, 1, 2]
_NCHW_TO_NHWC = [0, 2, 3, 1]
_OHWI_TO_IOHW = [3, 0, 1, 2]


def same_padding(kernel: int, stride: int) -> tuple[int, int, int]:
    """TFLite's SAME padding of a transposed convolution along one axis, making the output
    exactly ``stride`` times the input: (begin, end) cropped off the full output, and the
    rows added at the end when the kernel is smaller than the stride."""
    total = kernel - stride
    if total < 0:
        return 0, 0, -total
    return total // 2, total - total // 2, 0


def transpose_conv_bias(
    data: Any, filters: Any, bias: Any, *, stride: int = TRANSPOSE_CONV_STRIDE
) -> list[Any]:
    """OpenVINO graph of ``Convolution2DTransposeBias``: NHWC data, OHWI filters, bias.

    Output pixel ``(s*i + ky - pad_y, s*j + kx - pad_x)``, channel ``o`` sums
    ``data[i, j, c] * filters[o, ky, kx, c]`` over every input position and channel, plus
    ``bias[o]`` (no kernel flip: the gradient of a convolution, like TFLite's TRANSPOSE_CONV).
    """
    shape = filters.get_partial_shape()
    if shape.rank.is_dynamic or not all(shape[i].is_static for i in (1, 2)):
        raise ValueError(f"{TRANSPOSE_CONV_BIAS}: the filters need a static kernel size")
    kernel_h, kernel_w = shape[1].get_length(), shape[2].get_length()
    pad_y = same_padding(kernel_h, stride)
    pad_x = same_padding(kernel_w, stride)
    nchw = ops.transpose(data, ops.constant(_NHWC_TO_NCHW))
    iohw = ops.transpose(filters, ops.constant(_OHWI_TO_IOHW))
    deconv = ops.convolution_backprop_data(
        nchw,
        iohw,
        strides=[stride, stride],
        pads_begin=[pad_y[0], pad_x[0]],
        pads_end=[pad_y[1], pad_x[1]],
        dilations=[1, 1],
        output_padding=[pad_y[2], pad_x[2]],
    )
    nhwc = ops.transpose(deconv, ops.constant(_NCHW_TO_NHWC))
    # The bias is one value per output channel: the last NHWC axis, broadcast numpy-style.
    return [ops.add(nhwc, bias).output(0)]


def _convert_transpose_conv_bias(context: NodeContext) -> list[Any]:
    if context.get_input_size() != 3:
        raise ValueError(
            f"{TRANSPOSE_CONV_BIAS} expects 3 inputs (data, filters, bias), "
            f"got {context.get_input_size()}"
        )
    return transpose_conv_bias(context.get_input(0), context.get_input(1), context.get_input(2))


def extensions() -> list[ConversionExtension]:
    """The conversion extensions for the custom ops of MediaPipe TFLite models."""
    return [ConversionExtension(TRANSPOSE_CONV_BIAS, _convert_transpose_conv_bias)]


def convert_tflite(path: Path, *, dynamic_batch: bool = True) -> ov.Model:
    """Reads a TFLite model into an OpenVINO model, converting MediaPipe's custom ops.

    With ``dynamic_batch`` the first dimension of every input is made dynamic, so that one
    inference can run several images (TFLite models are saved with batch 1).
    """
    model = ov.convert_model(str(path), extension=extensions())
    if dynamic_batch:
        shapes: dict[Any, ov.PartialShape] = {}
        for port in model.inputs:
            shape = port.get_partial_shape()
            if shape.rank.is_static and shape.rank.get_length() > 0:
                shape[0] = ov.Dimension()
                shapes[port] = shape
        if shapes:
            model.reshape(shapes)
    return model
