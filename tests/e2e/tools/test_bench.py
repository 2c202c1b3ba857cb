"""`obscura bench` runs end to end (small and without the peer: the figures are its output)."""

from __future__ import annotations

from pathlib import Path

import pytest

from obscura_tools.bench import run_bench, write_report

pytestmark = [pytest.mark.models, pytest.mark.slow]


def test_bench_produces_every_figure(data_dir: Path, tmp_path: Path) -> None:
    report = run_bench(
        data_dir / "kpa_movie_face.avi",
        frames=8,
        resolutions=[(320, 240)],
        peer=False,
        soak_frames=40,
        log=lambda _: None,
    )
    r = report.results
    for key in (
        "models-only faces 160x120",
        "models-only default 160x120",
        "models-only all 160x120",
        "daemon unix jpeg faces 160x120",
        "daemon unix jpeg default 160x120",
        "daemon unix raw all 160x120",
        "daemon tcp raw all 160x120",
        "models-only all 320x240",
        "daemon unix jpeg all 320x240",
        "in-process cli default",
        "in-process cli faces",
        "soak default",
    ):
        assert r[key]["fps"] > 0, key
    # The limit replays every inference the pipeline made: each model of the preset ran.
    assert set(r["models-only all 160x120"]["inferences"]) >= {"centerface", "nanodet-m"}
    # The face ensemble (SCRFD) on every fourth frame, as on a tracked video: frames 0 and 4.
    assert r["models-only faces 160x120"]["inferences"] == {"centerface": 8, "scrfd": 2}
    # the default job: faces and plates (the plate model on whole frames at least)
    default = r["models-only default 160x120"]["inferences"]
    assert default["centerface"] == 8
    assert default["pyplatex-plates"] >= 8
    soaked = r["soak default"]
    assert soaked["frames"] == 40
    assert [n for n, _ in soaked["rss_mib"]] == list(range(4, 41, 4))
    assert isinstance(soaked["growth_after_warmup_pct"], float)
    stream = r["daemon unix jpeg all 160x120"]
    assert stream["p50_ms"] <= stream["p95_ms"] <= stream["p99_ms"]
    assert stream["daemon_peak_rss_mib"] > 50
    assert r["unary unix jpeg default 160x120"]["overhead_minus_inference"]["p50_ms"] > 0
    assert r["in-process cli default"]["frames"] == 68
    assert report.ratios["daemon all (raw, unix) / models-only limit"] > 0
    text = write_report(report, tmp_path / "bench.json")
    assert "models-only faces" in text
    assert (tmp_path / "bench.json").read_text().startswith("{")
