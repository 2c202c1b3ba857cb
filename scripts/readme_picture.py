"""Builds docs/demo.jpg, the README's picture: the demo photo anonymized (top) and its
instance mask (bottom), both written by `obscura anonymize`.

Run after `make demo`:  .venv/bin/python scripts/readme_picture.py
"""

from __future__ import annotations

import subprocess
import sys
import tempfile
from pathlib import Path

import cv2
import numpy as np

REPO = Path(__file__).resolve().parents[1]


def main() -> int:
    source = REPO / "out" / "samples" / "city.jpg"
    if not source.exists():
        print(f"{source} is missing: run `make demo` first", file=sys.stderr)
        return 1
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp)
        subprocess.run(
            [sys.executable, "-m", "obscura.cli", "anonymize", str(source), "-o", str(out),
             "-a", "face,license-plate,person,vehicle", "-m", "person=detect",
             "--no-progress"],
            check=True,
        )  # fmt: skip
        image = cv2.imread(str(out / "city.jpg"))
        mask = cv2.imread(str(out / "city_ins_mask.png"))
    # The mask's codes are dark; brighten them for the eye (the file itself keeps exact codes).
    shown = np.where(mask.any(axis=2, keepdims=True), mask // 2 + 100, 0).astype(np.uint8)
    picture = np.hstack([image, shown])
    picture = cv2.resize(picture, None, fx=0.6, fy=0.6, interpolation=cv2.INTER_AREA)
    target = REPO / "docs" / "demo.jpg"
    cv2.imwrite(str(target), picture, [cv2.IMWRITE_JPEG_QUALITY, 85])
    print(target)
    return 0


if __name__ == "__main__":
    sys.exit(main())
