"""The package's own weights (the plate check): found inside the package, verified by
checksum like a registry model's files."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from obscura.errors import ModelStoreError
from obscura.zoo.manifest import load_manifest
from obscura.zoo.store import ModelStore


def test_the_plate_check_ships_in_the_package_and_matches_its_checksum(tmp_path: Path) -> None:
    spec = load_manifest()["plate-check"]
    assert spec.path is not None
    assert spec.path.is_absolute()
    assert spec.path.parent.parent.name == "zoo"
    assert spec.path.exists()
    assert hashlib.sha256(spec.path.read_bytes()).hexdigest() == spec.sha256
    store = ModelStore(tmp_path, load_manifest())
    assert store.status("plate-check") == "local"
    assert store.files("plate-check").onnx == spec.path


def test_own_weights_with_another_checksum_are_refused(tmp_path: Path) -> None:
    weights = tmp_path / "check.onnx"
    weights.write_bytes(b"not these bytes")
    text = (
        f'[models.check]\npath = "{weights}"\nfamily = "plate-check"\ntask = "classify"\n'
        f'classes = {{ license-plate = [0] }}\nsha256 = "{"0" * 64}"\n'
    )
    store = ModelStore(tmp_path / "cache", load_manifest(text))
    assert store.status("check") == "corrupt"
    with pytest.raises(ModelStoreError, match="expected 0000"):
        store.files("check")
    # A relative path is the package's own: it names the file under the zoo's folder.
    relative = load_manifest(text.replace(str(weights), "weights/none.onnx"))["check"]
    assert relative.path is not None
    assert relative.path.parts[-3:] == ("zoo", "weights", "none.onnx")
