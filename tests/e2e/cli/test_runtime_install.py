"""The runtime install (`pip install .`, no extras) carries no model converters and no
measuring tools: the daemon, the CLI and the pipeline run with `onnx`, `nncf` and
`obscura_tools` absent, and converting or measuring says what to add."""

from __future__ import annotations

import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
from support import REPO

ROOT = REPO
CONVERTERS = ("onnx", "nncf")
ABSENT = (*CONVERTERS, "obscura_tools")

# A finder that makes the converters unimportable, as in a runtime install.
BLOCK = """
import importlib.abc, sys
class Absent(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in {blocked!r}:
            raise ImportError(f"No module named {{name!r}} (blocked by the test)")
        return None
sys.meta_path.insert(0, Absent())
"""


def _dependency_names(specs: list[str]) -> set[str]:
    names = set()
    for spec in specs:
        name = spec.split(";")[0].split("[")[0]
        for op in ("<", ">", "=", "!", "~", " "):
            name = name.split(op)[0]
        names.add(name.strip().lower())
    return names


def test_the_runtime_dependencies_leave_out_the_converters() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    runtime = _dependency_names(project["dependencies"])
    assert not runtime & {*CONVERTERS, "obscura-tools", "pillow"}
    assert set(CONVERTERS) <= _dependency_names(project["optional-dependencies"]["convert"])


@pytest.mark.models
def test_the_pipeline_and_the_daemon_run_without_the_converters(
    data_dir: Path, tmp_path: Path
) -> None:
    image = data_dir / "deface_city.jpg"
    script = (
        BLOCK.format(blocked=ABSENT)
        + f"""
from pathlib import Path
from obscura.cli import main
import obscura.server.app, obscura.server.rest, obscura.local  # the daemon's modules load
rc = main(["anonymize", {str(image)!r}, "-o", {str(tmp_path / "out")!r}])
assert rc == 0, rc
assert not any(m.split(".")[0] in {ABSENT!r} for m in sys.modules)
# A measuring tool: it says what to install.
assert main(["eval", {str(image.parent)!r}, "--annotations", "a.json"]) == 2
from obscura.errors import ModelStoreError
from obscura.zoo.store import require_converters
try:
    require_converters()
except ModelStoreError as exc:
    print("HINT", exc)
"""
    )
    proc = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, check=False, timeout=300
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert (tmp_path / "out" / "deface_city.jpg").is_file()
    assert "pip install 'obscura[convert]'" in proc.stdout
    assert "`obscura eval` is one of the measuring tools" in proc.stderr
    assert "pip install ./tools" in proc.stderr
