"""What the tests share: real daemons, certificates, fake backends, the test media, videos."""

from __future__ import annotations

from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
"""The checkout's root."""

DATA = REPO / "tests" / "data"
"""The tests' own files: the media manifest, the annotations, recorded reference numbers."""
