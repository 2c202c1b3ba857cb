"""`obscura bench` runs end to end (small and without the peer: the figures are its output)."""

from __future__ import annotations

from pathlib import Path

import pytest

from obscura.bench import run_bench, write_report

pytestmark = [pytest.mark.models, pytest.mark.slow]


def test_bench_produces_every_figure(data_dir: Path, tmp_path: Path) -> None:
    report = run_bench(data_dir / "kpa_movie_face.avi", frames=8, peer=False, log=lambda _: None)
    r = report.results
    for key in (
        "models-only faces 160x120",
        "models-only all 160x120",
        "daemon unix jpeg faces 160x120",
        "daemon unix raw all 160x120",
        "daemon tcp raw all 160x120",
        "in-process cli default",
    ):
        assert r[key]["fps"] > 0, key
    stream = r["daemon unix jpeg all 160x120"]
    assert stream["p50_ms"] <= stream["p95_ms"] <= stream["p99_ms"]
    assert stream["daemon_peak_rss_mib"] > 50
    assert r["unary unix jpeg default 160x120"]["overhead_minus_inference"]["p50_ms"] > 0
    assert r["in-process cli default"]["frames"] == 68
    assert report.ratios["daemon all (raw, unix) / models-only limit"] > 0
    text = write_report(report, tmp_path / "bench.json")
    assert "models-only faces" in text
    assert (tmp_path / "bench.json").read_text().startswith("{")
