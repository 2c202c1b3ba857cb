"""Configuration: one TOML file; every section optional.

```toml
[store]
cache_dir = "/var/cache/obscura/models"

[backend]
runtime = "openvino"      # or "onnxruntime"
device = "CPU"            # CPU, GPU (Intel iGPU), AUTO; onnxruntime: cuda or cpu
hint = "LATENCY"          # or "THROUGHPUT"
precision = "f32"         # f32, f16, bf16, auto

[detector]
face_model = "centerface"
face_tiles = false
thresholds = { face = 0.3, person = 0.3, vehicle = 0.3, license-plate = 0.1 }

[detector.model_options.centerface]
input_size = [960, 960]

[models.my-faces]         # a model of your own: OpenVINO IR or ONNX, of a supported family
path = "/opt/models/faces.xml"
family = "yolov8"
classes = { face = [0] }
```
"""

from __future__ import annotations

import dataclasses
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from obscura.backends import BackendConfig
from obscura.errors import ConfigError
from obscura.pipeline.detect import DetectorConfig
from obscura.types import ObjectClass
from obscura.zoo.manifest import ModelSpec, load_manifest, parse_model
from obscura.zoo.store import ModelStore, default_cache_dir


@dataclass(frozen=True)
class Config:
    backend: BackendConfig = field(default_factory=BackendConfig)
    detector: DetectorConfig = field(default_factory=DetectorConfig)
    cache_dir: Path = field(default_factory=default_cache_dir)
    models: Mapping[str, ModelSpec] = field(default_factory=load_manifest)

    def store(self) -> ModelStore:
        return ModelStore(self.cache_dir, self.models)


def _dataclass_from(cls: type[Any], table: Mapping[str, Any], where: str) -> Any:
    names = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(table) - names)
    if unknown:
        raise ConfigError(
            f"[{where}]: unknown key(s) {', '.join(unknown)} (known: {', '.join(sorted(names))})"
        )
    try:
        return cls(**table)
    except TypeError as exc:
        raise ConfigError(f"[{where}]: {exc}") from None


def _classes_table(table: Mapping[str, Any], where: str) -> dict[ObjectClass, float]:
    out = {}
    for label, value in table.items():
        try:
            cls = ObjectClass.from_label(label)
        except ValueError as exc:
            raise ConfigError(f"[{where}]: {exc}") from None
        if not isinstance(value, int | float):
            raise ConfigError(f"[{where}].{label}: a number, got {value!r}")
        out[cls] = float(value)
    return out


def parse_config(data: Mapping[str, Any]) -> Config:
    unknown = sorted(set(data) - {"store", "backend", "detector", "models"})
    if unknown:
        raise ConfigError(
            f"unknown section(s) {', '.join(unknown)} (known: backend, detector, models, store)"
        )
    backend = _dataclass_from(BackendConfig, data.get("backend", {}), "backend")
    det_table = dict(data.get("detector", {}))
    for key in ("thresholds", "nms_iou"):
        if key in det_table:
            det_table[key] = _classes_table(det_table[key], f"detector.{key}")
    detector = _dataclass_from(DetectorConfig, det_table, "detector")
    models = load_manifest()
    for name, table in data.get("models", {}).items():
        models[name] = parse_model(name, table, "models")
    store = data.get("store", {})
    unknown = sorted(set(store) - {"cache_dir"})
    if unknown:
        raise ConfigError(f"[store]: unknown key(s) {', '.join(unknown)}")
    cache_dir = (
        Path(store["cache_dir"]).expanduser() if "cache_dir" in store else default_cache_dir()
    )
    return Config(backend=backend, detector=detector, cache_dir=cache_dir, models=models)


def load_config(path: Path | None) -> Config:
    if path is None:
        return Config()
    try:
        data = tomllib.loads(path.read_text())
    except OSError as exc:
        raise ConfigError(f"cannot read config {path}: {exc.strerror}") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: {exc}") from None
    try:
        return parse_config(data)
    except ConfigError as exc:
        raise ConfigError(f"{path}: {exc}") from None
