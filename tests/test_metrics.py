"""Prometheus metrics: names, labels, bounded label values, HTTP exposition, promtool, and the
dashboard and scrape configuration that must not drift from the code."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from obscura.metrics import Metrics

DEPLOY = Path(__file__).resolve().parents[1] / "deploy"


def busy_metrics() -> Metrics:
    m = Metrics(version="9.9.9")
    m.rpc_done("Anonymize", "OK", 0.05)
    m.rpc_done("AnonymizeStream", "INVALID_ARGUMENT", 1.5)
    m.stage("decode", 0.002)
    m.stage("detect", 0.08)
    m.inference("centerface", 0.04)
    m.frame("ok")
    m.frame("invalid_argument")
    m.detections({"face": 3, "vehicle": 1})
    m.inflight(2)
    m.queue_depth(1)
    m.stream_opened()
    m.set_models([{"name": "centerface", "classes": "face", "family": "centerface",
                   "precision": "f32", "device": "CPU"}])  # fmt: skip
    m.set_serving(True)
    return m


def test_exposition_names_and_labels() -> None:
    text = busy_metrics().exposition().decode()
    for line in (
        'obscura_rpc_duration_seconds_count{code="OK",method="Anonymize"} 1.0',
        'obscura_rpc_total{code="INVALID_ARGUMENT",method="AnonymizeStream"} 1.0',
        'obscura_stage_duration_seconds_count{stage="decode"} 1.0',
        'obscura_inference_duration_seconds_count{model="centerface"} 1.0',
        'obscura_frames_total{status="ok"} 1.0',
        'obscura_frames_total{status="invalid_argument"} 1.0',
        'obscura_detections_total{class="face"} 3.0',
        'obscura_detections_total{class="vehicle"} 1.0',
        "obscura_inflight_frames 2.0",
        "obscura_queue_depth 1.0",
        "obscura_active_streams 1.0",
        "obscura_serving 1.0",
    ):
        assert line in text, line
    assert re.search(
        r'obscura_build_info\{openvino="[^"]*",python="[^"]+",version="9.9.9"\} 1.0', text
    )
    assert (
        'obscura_model_info{classes="face",device="CPU",family="centerface",name="centerface"'
        in text
    )
    assert "process_resident_memory_bytes" in text
    assert "# HELP obscura_frames_total" in text


def test_label_values_stay_bounded() -> None:
    m = Metrics()
    m.rpc_done("Evil/../method", "SOMETHING", 0.1)
    m.stage("weird", 0.1)
    m.frame("who-knows")
    m.detections({"cat": 5})
    for i in range(100):
        m.inference(f"model-{i}", 0.01)
    text = m.exposition().decode()
    assert 'method="other"' in text
    assert 'code="UNKNOWN"' in text
    assert 'stage="other"' in text
    assert 'status="other"' in text
    assert "cat" not in text
    models = set(re.findall(r'obscura_inference_duration_seconds_count\{model="([^"]+)"\}', text))
    assert len(models) == 17  # 16 names, then "other"
    assert "other" in models


def test_http_exposition() -> None:
    m = busy_metrics()
    port = m.start_http("127.0.0.1:0")
    try:
        body = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5).read()
        assert b'obscura_frames_total{status="ok"} 1.0' in body
    finally:
        m.stop_http()
    with pytest.raises(urllib.error.URLError):
        urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=2)


def promtool() -> str:
    tool = shutil.which("promtool")
    if tool is None:
        if os.environ.get("CI"):
            pytest.fail("promtool is needed (Debian package prometheus, scripts/install.sh)")
        pytest.skip("promtool not installed (Debian package prometheus)")
    return tool


def test_promtool_accepts_the_exposition() -> None:
    proc = subprocess.run(
        [promtool(), "check", "metrics"],
        input=busy_metrics().exposition(),
        capture_output=True,
        check=False,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert not proc.stdout.strip(), proc.stdout  # no lint findings


def test_promtool_accepts_the_scrape_config() -> None:
    proc = subprocess.run(
        [promtool(), "check", "config", str(DEPLOY / "prometheus" / "scrape.yml")],
        capture_output=True,
        text=True,
        check=False,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr


def exported_names() -> set[str]:
    text = busy_metrics().exposition().decode()
    return {line.split()[2] for line in text.splitlines() if line.startswith("# TYPE")}


def test_dashboard_uses_only_exported_metrics() -> None:
    dashboard = json.loads((DEPLOY / "grafana" / "obscura-dashboard.json").read_text())
    names = exported_names()
    used = set()
    for panel in dashboard["panels"]:
        for target in panel["targets"]:
            for name in re.findall(r"\b(?:obscura|process)_[a-z_]+", target["expr"]):
                used.add(name)
                base = re.sub(r"_(bucket|sum|count|total)$", "", name)
                assert name in names or base in names, (panel["title"], name)
    titles = " ".join(p["title"].lower() for p in dashboard["panels"])
    for topic in ("latency", "frames per second", "detections", "errors", "queue depth"):
        assert topic in titles
    assert {"obscura_frames_total", "obscura_queue_depth"} <= used
