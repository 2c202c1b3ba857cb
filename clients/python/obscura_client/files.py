"""Output files of a batch run: names, atomic writes, per-image outputs, video metadata chunks.

For an input ``<folder>/<stem>.<ext>`` the outputs are, in ``<output>/<folder>/``:

- images: ``<stem>.<ext>`` (same format), ``<stem>_bin_mask.png``, ``<stem>_ins_mask.png``,
  ``<stem>.json``;
- videos: ``<stem>.<ext>`` (same container), ``<stem>_bin_mask.mkv`` and ``<stem>_ins_mask.mkv``
  (lossless FFV1, one mask frame per video frame), ``<stem>-<first>-<last>.json`` chunks of at
  most 500 frame objects.
"""

from __future__ import annotations

import json
import os
import secrets
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any

from obscura_client.errors import InvalidInput

# File suffix -> the format written for it (outputs keep the input's format).
IMAGE_SUFFIXES = {
    ".jpg": "jpeg",
    ".jpeg": "jpeg",
    ".jpe": "jpeg",
    ".png": "png",
    ".webp": "webp",
    ".bmp": "bmp",
    ".tif": "tiff",
    ".tiff": "tiff",
}
CHUNK_FRAMES = 500
BIN_SUFFIX = "_bin_mask"
INS_SUFFIX = "_ins_mask"


def write_atomic(path: Path, data: bytes) -> None:
    """Writes ``data`` to a temporary file next to ``path`` and renames it into place, so that
    ``path`` is either absent or complete, even if the process dies or the disk fills up."""
    write_all_atomic([(path, data)])


def write_all_atomic(files: Sequence[tuple[Path, bytes]]) -> None:
    """Writes several files as one: each to a temporary name first, and only when all are
    written are they renamed into place. A failure (a full disk) removes what was written, so
    the outputs of one input are all there or none is."""
    parts: list[tuple[Path, Path]] = []
    try:
        for path, data in files:
            path.parent.mkdir(parents=True, exist_ok=True)
            tmp = path.with_name(f".{path.name}.{secrets.token_hex(4)}.part")
            # O_EXCL: never follow or reuse an existing name; mode 0o666 less the umask.
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
            parts.append((tmp, path))
            with os.fdopen(fd, "wb") as f:
                f.write(data)
        for tmp, path in parts:
            os.replace(tmp, path)
    except BaseException:
        for tmp, _ in parts:
            tmp.unlink(missing_ok=True)
        raise


def _dumps(value: Any, level: int) -> str:
    """Indented JSON whose innermost objects and number lists stay on one line each."""
    pad, inner = "  " * level, "  " * (level + 1)
    if isinstance(value, dict) and _nested(value.values()):
        items = [f"{inner}{json.dumps(k)}: {_dumps(v, level + 1)}" for k, v in value.items()]
        return "{\n" + ",\n".join(items) + "\n" + pad + "}"
    if isinstance(value, list) and _nested(value):
        items = [inner + _dumps(v, level + 1) for v in value]
        return "[\n" + ",\n".join(items) + "\n" + pad + "]"
    return json.dumps(value, separators=(", ", ": "))


def _nested(values: Iterable[Any]) -> bool:
    """Whether any value holds an object, or a list of containers (worth a line each)."""
    return any(
        isinstance(v, dict) or (isinstance(v, list) and any(isinstance(x, (dict, list)) for x in v))
        for v in values
    )


def json_bytes(value: Any) -> bytes:
    return (_dumps(value, 0) + "\n").encode()


NAME_MAX = 255  # bytes in one path component on Linux file systems
SUFFIX_ROOM = 32  # the longest suffix an output adds to its input's stem, with room to spare


@dataclass(frozen=True)
class OutputPaths:
    """Where the outputs of one input go; never outside ``root``."""

    root: Path
    rel: PurePosixPath  # the input's path relative to its input root

    def __post_init__(self) -> None:
        if self.rel.is_absolute() or ".." in self.rel.parts or not self.rel.name:
            raise InvalidInput(f"{self.rel}: output name would leave the output folder")
        if "\x00" in str(self.rel):
            raise InvalidInput(f"{str(self.rel)!r}: output name holds a NUL byte")
        # Outputs add suffixes (_bin_mask.mkv, -0-499.json) to the stem: keep room for them.
        longest = max(len(part.encode("utf-8", "surrogateescape")) for part in self.rel.parts)
        if longest > NAME_MAX - SUFFIX_ROOM:
            raise InvalidInput(
                f"{str(self.rel)[:60]!r}...: a path component of {longest} bytes is too long "
                f"(at most {NAME_MAX - SUFFIX_ROOM})"
            )
        root = self.root.resolve()
        if not (root / self.rel).resolve().is_relative_to(root):
            raise InvalidInput(f"{self.rel}: output name would leave the output folder")

    @property
    def folder(self) -> str:
        """The input's folder relative to the input root ("" at the root), as in metadata."""
        parent = self.rel.parent.as_posix()
        return "" if parent == "." else parent

    @property
    def directory(self) -> Path:
        return self.root / self.rel.parent

    @property
    def stem(self) -> str:
        return self.rel.stem

    @property
    def media(self) -> Path:
        return self.directory / self.rel.name

    def mask(self, suffix: str, ext: str) -> Path:
        return self.directory / f"{self.stem}{suffix}{ext}"

    @property
    def metadata(self) -> Path:
        return self.directory / f"{self.stem}.json"

    def chunk(self, first: int, last: int) -> Path:
        return self.directory / f"{self.stem}-{first}-{last}.json"


class MetadataChunks:
    """Collects per-frame metadata and writes it as ``<stem>-<first>-<last>.json`` files, each a
    JSON list of at most ``size`` frames, aligned to multiples of ``size``."""

    def __init__(self, paths: OutputPaths, size: int = CHUNK_FRAMES):
        self.paths = paths
        self.size = size
        self.frames: list[dict[str, Any]] = []
        self.written: list[Path] = []

    def add(self, index: int, record: dict[str, Any]) -> None:
        if self.frames and index // self.size != self.frames[0]["id"] // self.size:
            self.flush()
        self.frames.append(record)

    def flush(self) -> None:
        if not self.frames:
            return
        path = self.paths.chunk(self.frames[0]["id"], self.frames[-1]["id"])
        write_atomic(path, json_bytes(self.frames))
        self.written.append(path)
        self.frames = []
