"""The test media's manifest and fetcher (tests/media.py)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from support import media


def test_the_manifest_names_every_annotated_file_once() -> None:
    names = [name for _, names in media.manifest() for name in names]
    assert len(set(names)) == len(names)
    annotated = json.loads((media.DATA / "annotations.json").read_text())
    assert set(annotated) <= set(names)
    assert media.VTEST in names


def test_a_failed_fetch_names_the_package(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    archives = tmp_path / "archives"
    archives.mkdir()
    (archives / "darknet_0.0.0_amd64.deb").write_bytes(b"not the pinned archive")
    monkeypatch.setenv("OBSCURA_TEST_MEDIA_DIR", str(tmp_path / "cache"))
    monkeypatch.setenv("OBSCURA_TEST_ARCHIVES", str(archives))
    with pytest.raises(media.MediaError, match=r"darknet_dog\.jpg.* debian package darknet 0\.0"):
        media.fetch()


@pytest.mark.parametrize(
    ("ci", "outcome"), [("1", pytest.fail.Exception), ("", pytest.skip.Exception)]
)
def test_missing_media_fails_under_ci_and_skips_elsewhere(
    monkeypatch: pytest.MonkeyPatch, ci: str, outcome: type[BaseException]
) -> None:
    monkeypatch.delenv("OBSCURA_TEST_DATA", raising=False)
    monkeypatch.setenv("CI", ci)
    monkeypatch.setattr(media, "_fetch_once", lambda: media.MediaError("no package"))
    with pytest.raises(outcome, match="no package"):
        media.data_dir()
