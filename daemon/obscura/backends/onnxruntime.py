"""ONNX Runtime backend: the CUDA execution provider on NVIDIA GPUs, or the CPU.

``backend.device`` chooses:

- ``cuda`` (or ``cuda:N``, ``gpu``): every model on the CUDA execution provider. Where the
  provider is missing (a CPU-only ONNX Runtime) or does not load (a CUDA or cuDNN library
  missing), loading fails with a message that says so: never a quiet run on the CPU.
- ``auto``: CUDA where the provider loads, else OpenVINO on the CPU (else, without
  OpenVINO, ONNX Runtime's CPU provider); the log says which.
- ``cpu``: ONNX Runtime's CPU provider.

Each loaded model reports the provider it really runs on (the first of the session's
providers), which the daemon logs and returns in ``GetInfo``.
"""

from __future__ import annotations

import dataclasses
import logging
import threading
from collections import OrderedDict
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from types import ModuleType
from typing import Any, Literal

import numpy as np
from numpy.typing import NDArray

from obscura.backends.base import (
    Backend,
    BackendConfig,
    ImageInput,
    InferenceModel,
    LoadedModelBase,
    ModelFiles,
    TensorInfo,
)
from obscura.errors import ConfigError, ModelStoreError

log = logging.getLogger(__name__)

CUDA = "CUDAExecutionProvider"
CPU = "CPUExecutionProvider"
# cuDNN picks convolution algorithms by heuristics rather than by timing each one: the plate
# model sees a new input shape with nearly every vehicle crop, and timing every shape would
# cost seconds each.
CUDA_OPTIONS = {"cudnn_conv_algo_search": "HEURISTIC"}
# Sessions per model on CUDA, one per input shape (see ONNXRuntimeModel): the plate model
# sees about 20 shapes (the full frame, vehicle crops up to 320 px in steps of 32).
MAX_SHAPE_SESSIONS = 32
_CUDA_HELP = (
    "install onnxruntime-gpu built for the machine's CUDA major version (not the CPU-only "
    "onnxruntime) and put its CUDA and cuDNN libraries on the library path "
    "(LD_LIBRARY_PATH, or the nvidia-* wheels next to onnxruntime)"
)


@dataclass(frozen=True)
class DeviceRequest:
    """What ``backend.device`` asks of ONNX Runtime."""

    kind: Literal["cpu", "cuda", "auto"]
    device_id: int = 0


def parse_device(text: str) -> DeviceRequest:
    """``cpu``, ``cuda``, ``cuda:N``, ``gpu`` (= ``cuda``) or ``auto``, any case."""
    value = text.strip().lower()
    if value in ("cpu", "auto"):
        return DeviceRequest(value)  # type: ignore[arg-type]
    if value in ("cuda", "gpu"):
        return DeviceRequest("cuda")
    if value.startswith("cuda:") and value[5:].isdigit():
        return DeviceRequest("cuda", int(value[5:]))
    raise ConfigError(
        f"backend.device for runtime onnxruntime must be cuda, cuda:N, auto or cpu, not {text!r}"
    )


def _dim(d: object) -> int:
    return d if isinstance(d, int) else -1


class ONNXRuntimeModel(LoadedModelBase):
    """A model in ONNX Runtime. With ``new_session`` (CUDA) each input shape runs in a session
    of its own, up to ``MAX_SHAPE_SESSIONS`` of them, least recently used dropped first: the
    CUDA provider's convolutions keep the state (cuDNN plans) of the last shape they ran, so
    one session fed alternating shapes (a full frame, then vehicle crops of several sizes)
    rebuilds that state at nearly every call, which measured 0.2 to 1.5 s per model call on
    an H200 against 4 to 6 ms at a shape seen before."""

    def __init__(
        self,
        name: str,
        session: Any,
        device: str,
        image: ImageInput | None = None,
        new_session: Callable[[], Any] | None = None,
    ) -> None:
        inputs = [
            TensorInfo(i.name, tuple(_dim(d) for d in i.shape), str(i.type))
            for i in session.get_inputs()
        ]
        super().__init__(name, inputs, device, image, precision="f32")
        self._session = session
        self._new_session = new_session
        # On CUDA each batch size would be one more shape, with a session of its own.
        self.batches_freely = new_session is None
        self._by_shape: OrderedDict[tuple[int, ...], Any] = OrderedDict()
        self._lock = threading.Lock()

    def session_for(self, shape: tuple[int, ...]) -> Any:
        """The session that runs inputs of this shape."""
        if self._new_session is None:
            return self._session
        with self._lock:
            session = self._by_shape.get(shape)
            if session is not None:
                self._by_shape.move_to_end(shape)
                return session
            # The first shape takes the session made at load time.
            session = self._session if not self._by_shape else self._new_session()
            self._by_shape[shape] = session
            if len(self._by_shape) > MAX_SHAPE_SESSIONS:
                self._by_shape.popitem(last=False)
            return session

    @property
    def sessions(self) -> int:
        """Sessions held (one per recent input shape on CUDA, else one)."""
        return len(self._by_shape) or 1

    def infer(self, inputs: Mapping[str, NDArray[Any]]) -> list[NDArray[np.float32]]:
        feed = {k: np.ascontiguousarray(v) for k, v in inputs.items()}
        if self.image_input is not None:
            first = self.inputs[0].name
            feed[first] = self.image_input.to_tensor(feed[first])
        shape = tuple(int(d) for v in feed.values() for d in (*v.shape, -1))
        outputs = self.session_for(shape).run(None, feed)
        return [np.asarray(o) for o in outputs]


def _import_onnxruntime() -> ModuleType:
    try:
        import onnxruntime
    except ImportError as exc:  # pragma: no cover - depends on the installation
        raise ConfigError(
            "backend.runtime = onnxruntime needs the onnx extra: pip install 'obscura[onnx]'"
        ) from exc
    module: ModuleType = onnxruntime
    return module


def prepare_cuda(ort: Any) -> None:
    """Lets ONNX Runtime find CUDA and cuDNN libraries installed as nvidia-* wheels, where
    this ONNX Runtime can (``preload_dlls``, ONNX Runtime 1.21 and later)."""
    preload = getattr(ort, "preload_dlls", None)
    if preload is None:
        return
    try:
        preload()
    except Exception as exc:  # a missing library shows again, clearly, when a session loads
        log.debug("onnxruntime.preload_dlls: %s", exc)


def cuda_offered(ort: Any) -> bool:
    """Whether this ONNX Runtime has a CUDA execution provider (built in or as a plugin)."""
    if CUDA in ort.get_available_providers():
        return True
    devices = getattr(ort, "get_ep_devices", None)
    return devices is not None and any(d.ep_name == CUDA for d in devices())


def offered_providers(ort: Any) -> list[str]:
    """The providers this ONNX Runtime offers, plugin ones included."""
    names = list(ort.get_available_providers())
    devices = getattr(ort, "get_ep_devices", None)
    if devices is not None:
        names += [d.ep_name for d in devices() if d.ep_name not in names]
    return names


class ONNXRuntimeBackend:
    name = "onnxruntime"

    def __init__(self, config: BackendConfig, ort: Any = None) -> None:
        self._ort = ort if ort is not None else _import_onnxruntime()
        self._config = config
        self.request = parse_device(config.device)
        self._fallback: Backend | None = None  # auto without CUDA: where models go instead
        self._on_cuda = 0  # models loaded on CUDA so far
        if self.request.kind == "cpu":
            return
        prepare_cuda(self._ort)
        if cuda_offered(self._ort):
            return
        offered = ", ".join(offered_providers(self._ort))
        version = getattr(self._ort, "__version__", "?")
        if self.request.kind == "cuda":
            raise ConfigError(
                f"backend.device = {config.device}: ONNX Runtime {version} offers no CUDA "
                f"execution provider (it offers {offered}); {_CUDA_HELP}"
            )
        self._fall_back(f"ONNX Runtime {version} offers no CUDA execution provider ({offered})")

    def _fall_back(self, why: str) -> None:
        """device = auto without CUDA: OpenVINO on the CPU, or ONNX Runtime's CPU provider
        where OpenVINO is not installed."""
        try:
            from obscura.backends.openvino import OpenVINOBackend
        except ImportError:
            log.warning("device auto: %s, and OpenVINO is not installed; models run on "
                        "ONNX Runtime's CPU provider", why)  # fmt: skip
            self.request = DeviceRequest("cpu")
            return
        log.warning("device auto: %s; models run on OpenVINO CPU", why)
        self._fallback = OpenVINOBackend(
            dataclasses.replace(self._config, runtime="openvino", device="CPU")
        )

    def load(self, files: ModelFiles, image: ImageInput | None = None) -> InferenceModel:
        if self._fallback is not None:
            return self._fallback.load(files, image)
        if files.onnx is None or not files.onnx.exists():
            return self._load_ir(files, image)
        try:
            session = self._session(files)
            provider = session.get_providers()[0]
            failure = ""
        except Exception as exc:
            if self.request.kind == "cpu":
                raise
            provider, failure = "", f": {exc}"
        if self.request.kind != "cpu" and provider != CUDA:
            reason = (
                f"the CUDA execution provider did not load for model {files.name!r}"
                f"{failure or ' (ONNX Runtime logs the library it missed)'}"
            )
            if self.request.kind == "cuda" or self._on_cuda:
                raise ConfigError(f"backend.device = {self._config.device}: {reason}; {_CUDA_HELP}")
            self._fall_back(reason)
            return self.load(files, image)
        self._on_cuda += provider == CUDA
        log.info("model %s runs on ONNX Runtime %s", files.name, provider)
        per_shape = (lambda: self._session(files)) if provider == CUDA else None
        return ONNXRuntimeModel(files.name, session, provider, image, new_session=per_shape)

    def _options(self) -> Any:
        options = self._ort.SessionOptions()
        if self._config.num_threads:
            options.intra_op_num_threads = self._config.num_threads
        options.log_severity_level = 3
        return options

    def _cuda_options(self) -> dict[str, str]:
        return {**CUDA_OPTIONS, "cudnn_conv_algo_search": self._config.cuda_conv_search}

    def _session(self, files: ModelFiles) -> Any:
        ort = self._ort
        path = str(files.onnx)
        if self.request.kind == "cpu":
            return ort.InferenceSession(path, sess_options=self._options(), providers=[CPU])
        if CUDA in ort.get_available_providers():
            cuda_options = {**self._cuda_options(), "device_id": str(self.request.device_id)}
            return ort.InferenceSession(
                path, sess_options=self._options(), providers=[(CUDA, cuda_options), CPU]
            )
        # A CUDA plugin execution provider (registered as a library): chosen by its device;
        # should it not take the options of the built-in provider, with its defaults.
        devices = [d for d in ort.get_ep_devices() if d.ep_name == CUDA]
        device = devices[min(self.request.device_id, len(devices) - 1)]
        options = self._options()
        try:
            options.add_provider_for_devices([device], self._cuda_options())
        except Exception as exc:
            log.warning(
                "the CUDA provider refused %s (%s); it runs with its defaults",
                self._cuda_options(),
                exc,
            )
            options = self._options()
            options.add_provider_for_devices([device], {})
        return ort.InferenceSession(path, sess_options=options)

    def _load_ir(self, files: ModelFiles, image: ImageInput | None) -> InferenceModel:
        """A model without an ONNX form (a user's own OpenVINO IR): OpenVINO on the CPU,
        except where CUDA was asked for."""
        if files.ir_xml is None or not files.ir_xml.exists():
            raise ModelStoreError(
                f"model {files.name!r} has no ONNX or OpenVINO IR file; run `obscura models fetch`"
            )
        if self.request.kind == "cuda":
            raise ModelStoreError(
                f"model {files.name!r} has no ONNX form (only OpenVINO IR {files.ir_xml}); "
                f"backend.device = {self._config.device} runs ONNX models only"
            )
        from obscura.backends.openvino import OpenVINOBackend

        log.warning("%s has no ONNX form; running it with OpenVINO on CPU", files.name)
        cpu = dataclasses.replace(self._config, runtime="openvino", device="CPU")
        return OpenVINOBackend(cpu).load(files, image)
