"""INT8 variants of the store's models: post-training quantization with NNCF.

Calibration feeds each model exactly what the pipeline feeds it: the detector runs (at full
precision) on the calibration images with every class wanted, and a recorder in front of each
model keeps the input tensors it receives, full frames, tiles, vehicle crops for plates and
person-crop batches for segmentation alike. NNCF then quantizes each model's weights and
activations to INT8 from the activation ranges seen on those tensors.

The default calibration set is the ``city`` sample (a street crowd, fetched from its registry
package like the models) and deterministic variants of it: mirrored, zoomed into each quarter,
scaled down, darker, brighter, blurred. ``--calibration DIR`` takes a camera's own frames, the
better choice where the scenes differ much from a street. The INT8 variant sits next to the
full-precision IR with its own checksums and a record of the calibration used; precision
``int8`` (the default) picks it up.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np
from numpy.typing import NDArray

from obscura.backends import (
    BackendConfig,
    ImageInput,
    InferenceModel,
    TensorInfo,
    create_backend,
)
from obscura.errors import ModelStoreError
from obscura.imageio import read_image
from obscura.types import ImageArray, ObjectClass
from obscura.zoo.store import CONVERTERS_HINT, INT8_QUANTIZER, ModelStore

log = logging.getLogger(__name__)

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".webp", ".bmp")
MAX_SAMPLES = 300  # tensors per model kept for calibration (NNCF's own default subset size)


class Recorder:
    """An :class:`InferenceModel` that hands every input to ``keep`` before running it."""

    def __init__(
        self, model: InferenceModel, keep: Callable[[Mapping[str, NDArray[Any]]], None]
    ) -> None:
        self.model = model
        self._keep = keep

    @property
    def name(self) -> str:
        return self.model.name

    @property
    def inputs(self) -> Sequence[TensorInfo]:
        return self.model.inputs

    @property
    def device(self) -> str:
        return self.model.device

    @property
    def image_input(self) -> ImageInput | None:
        return self.model.image_input

    def infer(self, inputs: Mapping[str, NDArray[Any]]) -> list[NDArray[np.float32]]:
        self._keep({k: np.array(v) for k, v in inputs.items()})
        return self.model.infer(inputs)


def _calibration_keeper(
    model: InferenceModel, seen: list[dict[str, NDArray[Any]]]
) -> Callable[[Mapping[str, NDArray[Any]]], None]:
    """Keeps up to MAX_SAMPLES inputs as the model file's own input (float, its layout): what
    NNCF feeds the model when it collects activation ranges."""
    first = model.inputs[0].name
    image = model.image_input

    def keep(inputs: Mapping[str, NDArray[Any]]) -> None:
        if len(seen) < MAX_SAMPLES:
            seen.append({
                k: image.to_tensor(v) if image is not None and k == first else v
                for k, v in inputs.items()
            })  # fmt: skip

    return keep


def variants(image: ImageArray) -> list[ImageArray]:
    """The image and deterministic variants of it that widen the activation ranges seen."""
    h, w = image.shape[:2]
    out = [
        image,
        np.ascontiguousarray(image[:, ::-1]),
        np.asarray(
            cv2.resize(image, (max(1, w // 2), max(1, h // 2)), interpolation=cv2.INTER_AREA)
        ),
        np.asarray(cv2.convertScaleAbs(image, alpha=0.6)),
        np.asarray(cv2.convertScaleAbs(image, alpha=1.3, beta=10)),
        np.asarray(cv2.GaussianBlur(image, (0, 0), 2.0)),
    ]
    for y, x in ((0, 0), (0, w // 2), (h // 2, 0), (h // 2, w // 2)):
        quarter = image[y : y + h // 2, x : x + w // 2]
        if quarter.size:
            out.append(np.asarray(cv2.resize(quarter, (w, h), interpolation=cv2.INTER_LINEAR)))
    return [np.asarray(v, dtype=np.uint8) for v in out]


def calibration_images(folder: Path | None, cache_dir: Path) -> tuple[list[ImageArray], str]:
    """The calibration images and a digest naming them: the images of ``folder`` as they are,
    or by default the ``city`` sample (fetched into ``cache_dir``) and its variants."""
    digest = hashlib.sha256()
    if folder is not None:
        paths = sorted(p for p in folder.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES)
        if not paths:
            raise ModelStoreError(f"calibration folder {folder} holds no images")
        images = []
        for path in paths:
            images.append(read_image(path))
            digest.update(path.read_bytes())
        return images, digest.hexdigest()[:16]
    from obscura.zoo.manifest import load_samples
    from obscura.zoo.store import fetch_sample

    (city,) = fetch_sample(load_samples()["city"], cache_dir / ".calibration")
    digest.update(city.read_bytes())
    return variants(read_image(city)), "city-" + digest.hexdigest()[:12]


@dataclass(frozen=True)
class QuantizeResult:
    name: str
    action: str  # "quantized" or "cached"
    samples: int
    path: Path


def quantize(
    store: ModelStore,
    names: Iterable[str],
    *,
    calibration: Path | None = None,
    force: bool = False,
) -> list[QuantizeResult]:
    """Makes the INT8 variant of each named registry model that lacks one (or all, ``force``)."""
    import openvino as ov

    todo = [n for n in names if store.spec(n).source is not None]
    results = [
        QuantizeResult(n, "cached", 0, store.int8_dir(store.spec(n)))
        for n in todo
        if not force and store.int8_status(n) == "ready"
    ]
    todo = [n for n in todo if force or store.int8_status(n) != "ready"]
    if not todo:
        return results
    try:
        import nncf
    except ImportError:
        raise ModelStoreError(CONVERTERS_HINT.replace("converting", "quantizing")) from None
    images, calibration_id = calibration_images(calibration, store.cache_dir)
    recorded = _record(store, todo, images)
    core = ov.Core()
    for name in todo:
        samples = recorded.get(name, [])
        if not samples:
            raise ModelStoreError(
                f"model {name!r} saw no input on the calibration images; "
                "calibrate with images that hold what it detects (--calibration DIR)"
            )
        files = store.files(name)
        assert files.ir_xml is not None
        model = core.read_model(str(files.ir_xml))
        key = model.inputs[0].get_any_name()
        if len(model.inputs) != 1 or any(list(s) != [key] for s in samples):
            raise ModelStoreError(f"model {name!r}: only single-input models can be quantized")
        log.info("quantizing %s on %d calibration tensors", name, len(samples))
        quantized = nncf.quantize(
            model,
            nncf.Dataset(samples, lambda s, k=key: s[k]),
            subset_size=len(samples),
            # 7-bit weights in every layer: on CPUs without VNNI (AVX2) the 8-bit products
            # saturate, and the plate model lost 4.5 points of recall on the composite set
            # (0.755 -> 0.710); with the fix it is 0.751 there, as on VNNI CPUs.
            advanced_parameters=nncf.AdvancedQuantizationParameters(
                overflow_fix=nncf.OverflowFix.ENABLE
            ),
        )

        def write(folder: Path, q: ov.Model = quantized) -> None:
            ov.save_model(q, str(folder / "model.xml"), compress_to_fp16=False)

        record = {
            "name": name,
            "quantizer": INT8_QUANTIZER,
            "nncf": nncf.__version__,
            "calibration": calibration_id,
            "samples": len(samples),
        }
        path = store.save_int8(name, write, record)
        results.append(QuantizeResult(name, "quantized", len(samples), path))
    return results


def _record(
    store: ModelStore, names: Sequence[str], images: Sequence[ImageArray]
) -> dict[str, list[dict[str, NDArray[Any]]]]:
    """Runs the full-precision detector on the images with a recorder in front of each model.

    Each model runs in the role it has in the pipeline (a plate model on full frames, a
    segmentation model on the persons the default object model finds).
    """
    from obscura.pipeline.detect import Detector
    from obscura.pipeline.settings import DetectorConfig

    backend = create_backend(BackendConfig(precision="f32"))
    none: dict[str, Any] = {
        "face_model": None,
        "face_ensemble": (),
        "plate_model": None,
        "segmentation_model": None,
    }
    recorded: dict[str, list[dict[str, NDArray[Any]]]] = {}
    for name in names:
        spec = store.spec(name)
        target: Any
        if spec.task == "segment":
            detector = Detector(
                store, backend, DetectorConfig(**{**none, "segmentation_model": name})
            )
            target = detector.segmenter
        else:
            role = _role(spec.classes)
            roles: dict[str, Any] = {**none, "object_model": None, role: name}
            if role == "plate_model":
                # Full frames only: calibrated on the crops of the sample's many pedestrians
                # (rider crops), the plate model lost 4 points of recall and 12 of precision on
                # the plate benchmark.
                roles["plate_on_vehicles"] = False
            detector = Detector(store, backend, DetectorConfig(**roles, person_masks=False))
            target = getattr(detector, _ATTR[role]).adapter
        seen: list[dict[str, NDArray[Any]]] = []
        target.model = Recorder(target.model, _calibration_keeper(target.model, seen))
        for image in images:
            detector.detect(image)
        recorded[name] = seen
    return recorded


_ATTR = {"face_model": "faces", "object_model": "objects", "plate_model": "plates"}


def _role(classes: Mapping[ObjectClass, object]) -> str:
    if ObjectClass.FACE in classes:
        return "face_model"
    if ObjectClass.LICENSE_PLATE in classes:
        return "plate_model"
    return "object_model"
