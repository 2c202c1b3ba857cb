"""Reading PyTorch checkpoints (``.pt``) without torch, and without running their code.

A ``.pt`` file is a zip archive: ``<root>/data.pkl`` is a pickle of the saved object and
``<root>/data/<key>`` hold the raw bytes of the tensor storages it refers to. Unpickling is
running a program: a pickle may name any importable callable and call it. So the pickle here is
read by a restricted unpickler that knows a short list of names and refuses every other one
(``os.system``, ``builtins.eval``, ``subprocess.Popen`` ...) before anything is called:

- tensors (``torch._utils._rebuild_tensor_v2`` / ``_rebuild_parameter`` on ``torch.*Storage``)
  become numpy arrays read from the archive;
- ``torch.nn`` and ``ultralytics`` modules and objects, and what trainers keep beside them
  (``omegaconf`` configurations of the training arguments, ``typing`` names), become inert
  :class:`Record`\\ s that keep their class name and state (``_modules``, ``_parameters``,
  ``_buffers``, attributes) and can do nothing else;
- ``collections.OrderedDict``, ``dict``, ``list``, ``tuple``, ``set``, ``frozenset``,
  ``torch.Size`` and ``torch.device`` become their plain Python equivalents, and a
  ``collections.defaultdict`` a plain dict of its items (its default factory, itself read by
  these rules, is not kept).
"""

from __future__ import annotations

import io
import pickle
import zipfile
from collections import OrderedDict
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from obscura.errors import ModelStoreError

STORAGE_DTYPES = {
    "HalfStorage": np.float16,
    "FloatStorage": np.float32,
    "DoubleStorage": np.float64,
    "LongStorage": np.int64,
    "IntStorage": np.int32,
    "ShortStorage": np.int16,
    "CharStorage": np.int8,
    "ByteStorage": np.uint8,
    "BoolStorage": np.bool_,
}


def _defaultdict(*args: Any) -> dict[Any, Any]:
    """A defaultdict's items, as a plain dict: its default factory is not kept (nor run)."""
    return {}


PLAIN = {"set": set, "frozenset": frozenset, "dict": dict, "list": list, "tuple": tuple}
RECORD_MODULES = (
    "torch.nn.modules.",
    "ultralytics.nn.",
    "ultralytics.yolo.",
    "ultralytics.utils",
    "omegaconf.",
    "typing",
)


class Record:
    """An object of a class this reader does not run: its class name and its state."""

    qualname = "?"

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self.args = args
        self.state: dict[str, Any] = dict(kwargs)

    def __setstate__(self, state: Any) -> None:
        if isinstance(state, tuple) and len(state) == 2 and isinstance(state[1], dict):
            state = {**(state[0] or {}), **state[1]}  # (dict, slots)
        self.state = dict(state) if isinstance(state, dict) else {"value": state}

    def __getattr__(self, name: str) -> Any:
        try:
            return self.__dict__["state"][name]
        except KeyError:
            raise AttributeError(name) from None

    def __repr__(self) -> str:
        return f"<{self.qualname}>"


class _StorageType:
    def __init__(self, name: str) -> None:
        self.dtype = np.dtype(STORAGE_DTYPES[name])


def _rebuild_tensor(
    storage: NDArray[Any],
    offset: int,
    size: tuple[int, ...],
    stride: tuple[int, ...],
    *_: Any,
) -> NDArray[Any]:
    item = storage.itemsize
    count = int(np.prod(size)) if size else 1
    if count and offset + sum((s - 1) * st for s, st in zip(size, stride, strict=True)) >= len(
        storage
    ):
        raise ModelStoreError("a tensor reaches beyond its storage")
    view = np.lib.stride_tricks.as_strided(
        storage[offset:], shape=tuple(size), strides=tuple(s * item for s in stride)
    )
    return np.array(view)  # a copy: independent of the storage buffer


def _rebuild_parameter(data: NDArray[Any], *_: Any) -> NDArray[Any]:
    return data


def _size(*dims: Any) -> tuple[int, ...]:
    return tuple(dims[0]) if len(dims) == 1 and not isinstance(dims[0], int) else tuple(dims)


def _device(*args: Any) -> str:
    return ":".join(str(a) for a in args)


class _Unpickler(pickle.Unpickler):
    def __init__(self, data: bytes, archive: zipfile.ZipFile, root: str) -> None:
        super().__init__(io.BytesIO(data))
        self._archive = archive
        self._root = root
        self._records: dict[str, type[Record]] = {}

    def find_class(self, module: str, name: str) -> Any:
        if module == "torch._utils" and name == "_rebuild_tensor_v2":
            return _rebuild_tensor
        if module == "torch._utils" and name == "_rebuild_parameter":
            return _rebuild_parameter
        if module == "torch" and name in STORAGE_DTYPES:
            return _StorageType(name)
        if module == "torch" and name == "Size":
            return _size
        if module == "torch" and name == "device":
            return _device
        if module == "collections" and name == "OrderedDict":
            return OrderedDict
        if module == "collections" and name == "defaultdict":
            return _defaultdict
        if module in ("builtins", "__builtin__") and name in PLAIN:
            return PLAIN[name]
        if module.startswith(RECORD_MODULES) and name.isidentifier():
            key = f"{module}.{name}"
            if key not in self._records:
                self._records[key] = type(name, (Record,), {"qualname": key})
            return self._records[key]
        raise ModelStoreError(
            f"refusing to load {module}.{name}: the checkpoint names code that this reader "
            "does not run (only tensors, torch.nn / ultralytics modules and plain data)"
        )

    def persistent_load(self, pid: Any) -> Any:
        if not (isinstance(pid, tuple) and len(pid) >= 5 and pid[0] == "storage"):
            raise ModelStoreError(f"unknown persistent id {pid!r:.80}")
        storage_type, key = pid[1], str(pid[2])
        if not isinstance(storage_type, _StorageType) or not key.isalnum():
            raise ModelStoreError(f"bad storage reference {pid!r:.80}")
        try:
            raw = self._archive.read(f"{self._root}/data/{key}")
        except KeyError:
            raise ModelStoreError(f"the checkpoint lacks storage {key}") from None
        return np.frombuffer(raw, dtype=storage_type.dtype.newbyteorder("<"))


def load_checkpoint(path: Path) -> Any:
    """The object saved in a ``.pt`` checkpoint, with tensors as numpy arrays and modules as
    :class:`Record`\\ s; a clear error for a file that is not one or names unknown code."""
    try:
        archive = zipfile.ZipFile(path)
    except (OSError, zipfile.BadZipFile) as exc:
        raise ModelStoreError(f"{path}: not a PyTorch checkpoint (zip) ({exc})") from None
    with archive:
        pickles = [n for n in archive.namelist() if n.endswith("/data.pkl") and n.count("/") == 1]
        if len(pickles) != 1:
            raise ModelStoreError(f"{path}: expected one <root>/data.pkl, found {pickles}")
        root = pickles[0].split("/")[0]
        try:
            return _Unpickler(archive.read(pickles[0]), archive, root).load()
        except ModelStoreError as exc:
            raise ModelStoreError(f"{path}: {exc}") from None
        except (pickle.UnpicklingError, EOFError, ValueError, TypeError) as exc:
            raise ModelStoreError(f"{path}: unreadable checkpoint ({exc})") from None


def named_tensors(module: Record, prefix: str = "") -> Iterator[tuple[str, NDArray[Any]]]:
    """``(name, array)`` for every parameter and buffer of a module tree, torch's names."""
    state = module.state
    for group in ("_parameters", "_buffers"):
        for name, value in (state.get(group) or {}).items():
            if isinstance(value, np.ndarray):
                yield prefix + name, value
    for name, child in (state.get("_modules") or {}).items():
        if isinstance(child, Record):
            yield from named_tensors(child, f"{prefix}{name}.")
