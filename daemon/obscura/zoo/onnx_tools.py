"""Small ONNX clean-ups applied before a model is cached."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import onnx


def load(path: Path) -> Any:
    return onnx.load(str(path))


def save(model: Any, path: Path) -> None:
    onnx.checker.check_model(model)
    onnx.save(model, str(path))


def normalise(model: Any, input_name: str | None, shape: tuple[int, ...] | None) -> Any:
    """Drops initializers listed as graph inputs (old exporters did that; it blocks constant
    folding) and, if ``shape`` is given, sets the named input's shape, -1 marking a dynamic
    dimension; shapes recorded for intermediate values and outputs are cleared so that
    runtimes infer them again."""
    graph = model.graph
    initializers = {i.name for i in graph.initializer}
    real_inputs = [i for i in graph.input if i.name not in initializers]
    del graph.input[:]
    graph.input.extend(real_inputs)
    if shape is not None:
        matches = [i for i in graph.input if input_name in (None, i.name)]
        if len(matches) != 1:
            names = [i.name for i in graph.input]
            raise ValueError(f"input {input_name!r} not found among model inputs {names}")
        dims = matches[0].type.tensor_type.shape.dim
        if len(dims) != len(shape):
            raise ValueError(f"input has rank {len(dims)}, the manifest gives shape {shape}")
        for i, (dim, size) in enumerate(zip(dims, shape, strict=True)):
            if size < 0:
                dim.Clear()
                dim.dim_param = f"d{i}"
            else:
                dim.Clear()
                dim.dim_value = size
        del graph.value_info[:]
        for out in graph.output:
            for dim in out.type.tensor_type.shape.dim:
                dim.Clear()
    return model
