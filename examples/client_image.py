"""Anonymize one image through a running daemon and save the result, its binary mask and metadata.

python examples/client_image.py unix:///run/obscura/obscura.sock street.jpg out/
OBSCURA_TOKEN=... python examples/client_image.py 10.0.0.5:50051,10.0.0.6:50051 street.jpg out/
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import cv2

from obscura_client import Client, Options


def main(address: str, image: str, out_dir: str) -> int:
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    addresses = address.split(",")
    options = Options(classes={"face": "blur", "license-plate": "blur"}, save_mask="binary")
    with Client(
        addresses if len(addresses) > 1 else address, token=os.environ.get("OBSCURA_TOKEN")
    ) as client:
        result = client.anonymize_image(image, options)
    stem = Path(image).stem
    (out / Path(image).name).write_bytes(result.image)
    mask = result.binary_mask()
    if mask is not None:
        cv2.imwrite(str(out / f"{stem}_bin_mask.png"), mask)
    (out / f"{stem}.json").write_text(json.dumps(result.metadata, indent=2))
    total_ms = result.timings["total"] * 1000
    print(f"{len(result.detections)} detections, {total_ms:.0f} ms in the daemon")
    return 0


if __name__ == "__main__":
    if len(sys.argv) != 4:
        print(__doc__, file=sys.stderr)
        sys.exit(2)
    sys.exit(main(*sys.argv[1:]))
