"""The Node.js client's folder and its pinned npm dependencies, installed once."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

from support import REPO

NODE_DIR = REPO / "clients" / "node"


def node_modules() -> Path:
    """Installs the pinned @grpc/grpc-js and @grpc/proto-loader with npm (once)."""
    npm, node = shutil.which("npm"), shutil.which("node")
    if npm is None or node is None:
        if os.environ.get("CI"):
            pytest.fail("node and npm are needed for the Node.js client test")
        pytest.skip("node / npm not installed")
    marker = NODE_DIR / "node_modules" / ".installed"
    manifest = (NODE_DIR / "package.json").read_text()
    if not marker.exists() or marker.read_text() != manifest:
        proc = subprocess.run(
            [npm, "install", "--no-audit", "--no-fund", "--no-package-lock", "--silent"],
            cwd=NODE_DIR,
            capture_output=True,
            text=True,
            check=False,
        )
        assert proc.returncode == 0, proc.stderr
        marker.write_text(manifest)
    return NODE_DIR / "node_modules"
