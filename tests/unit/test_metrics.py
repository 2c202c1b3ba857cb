"""Prometheus metrics: names, labels, bounded label values, the HTTP exposition, promtool, and
the Grafana dashboard and scrape configuration, which must not drift from the code."""

from __future__ import annotations

import json
import os
import re
import shutil
import socket
import subprocess
import threading
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import grpc
import pytest
from prometheus_client import CollectorRegistry
from prometheus_client.parser import text_string_to_metric_families
from support import REPO

from obscura.metrics import BUCKETS, MAX_MODELS, Metrics

DEPLOY = REPO / "deploy"
DASHBOARD = DEPLOY / "grafana" / "obscura-dashboard.json"
SCRAPE = DEPLOY / "prometheus" / "scrape.yml"
METRIC_NAME = re.compile(r"\b(?:obscura|process)_[a-z_]+")
SUFFIXES = ("_bucket", "_sum", "_count")
# Labels that Prometheus adds at scrape time (deploy/prometheus/scrape.yml), not the daemon;
# `inference_device`/`exported_device` are obscura_model_info's own `device` after the clash.
TARGET_LABELS = {"job", "instance", "device", "site", "fleet", "inference_device"}
TARGET_LABELS |= {"exported_device"}
OBSCURA_FAMILIES = {
    "obscura_rpc_duration_seconds": ("histogram", {"protocol", "method", "code"}),
    "obscura_rpc": ("counter", {"protocol", "method", "code"}),
    "obscura_stage_duration_seconds": ("histogram", {"stage"}),
    "obscura_inference_duration_seconds": ("histogram", {"model"}),
    "obscura_frames": ("counter", {"status"}),
    "obscura_detections": ("counter", {"class"}),
    "obscura_frames_tracked_only": ("counter", set()),
    "obscura_inflight_frames": ("gauge", set()),
    "obscura_queue_depth": ("gauge", set()),
    "obscura_active_streams": ("gauge", set()),
    "obscura_serving": ("gauge", set()),
    "obscura_model_info": ("gauge", {"name", "classes", "family", "precision", "device"}),
    "obscura_build_info": ("gauge", {"version", "python", "openvino"}),
}

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


GRPC = {"protocol": "grpc"}


def busy_metrics() -> Metrics:
    """A Metrics with every metric observed at least once."""
    m = Metrics(version="9.9.9")
    m.rpc_done("Anonymize", "OK", 0.05)
    m.rpc_done("AnonymizeStream", "INVALID_ARGUMENT", 1.5)
    m.rpc_done("GetInfo", "OK", 0.0004)
    m.http_done("upload", 200, 0.3)
    m.http_done("/v1/anything-else", 999, 0.001)  # bounded: other, other
    for stage in ("queue", "decode", "detect", "anonymize", "encode"):
        m.stage(stage, 0.002)
    m.inference("centerface", 0.04)
    m.frame("ok")
    m.frame("invalid_argument")
    m.detections({"face": 3, "vehicle": 1, "person": 0})
    m.inflight(2)
    m.queue_depth(1)
    m.stream_opened()
    m.set_models(
        [
            {
                "name": "centerface",
                "classes": "face",
                "family": "centerface",
                "precision": "f32",
                "device": "CPU",
            }
        ]
    )
    m.set_serving(True)
    return m


def samples(m: Metrics) -> Samples:
    out: Samples = {}
    for family in text_string_to_metric_families(m.exposition().decode()):
        for s in family.samples:
            out[s.name, frozenset(s.labels.items())] = s.value
    return out


def value(found: Samples, metric: str, /, **labels: str) -> float | None:
    return found.get((metric, frozenset(labels.items())))


def families(m: Metrics) -> dict[str, Any]:
    return {f.name: f for f in text_string_to_metric_families(m.exposition().decode())}


# --- the metrics themselves -----------------------------------------------------------------
def test_every_metric_with_its_labels() -> None:
    m = busy_metrics()
    found = samples(m)
    anonymize = {**GRPC, "method": "Anonymize", "code": "OK"}
    assert value(found, "obscura_rpc_duration_seconds_count", **anonymize) == 1
    assert value(found, "obscura_rpc_duration_seconds_sum", **anonymize) == pytest.approx(0.05)
    assert (
        value(
            found,
            "obscura_rpc_duration_seconds_bucket",
            **GRPC,
            method="AnonymizeStream",
            code="INVALID_ARGUMENT",
            le="2.5",
        )
        == 1
    )
    assert (
        value(found, "obscura_rpc_total", **GRPC, method="AnonymizeStream", code="INVALID_ARGUMENT")
        == 1
    )
    assert value(found, "obscura_rpc_total", **GRPC, method="GetInfo", code="OK") == 1
    assert value(found, "obscura_rpc_total", protocol="http", method="upload", code="200") == 1
    assert value(found, "obscura_rpc_total", protocol="http", method="other", code="other") == 1
    for stage in ("queue", "decode", "detect", "anonymize", "encode"):
        assert value(found, "obscura_stage_duration_seconds_count", stage=stage) == 1
    assert value(found, "obscura_inference_duration_seconds_count", model="centerface") == 1
    assert value(found, "obscura_frames_total", status="ok") == 1
    assert value(found, "obscura_frames_total", status="invalid_argument") == 1
    assert value(found, "obscura_frames_total", status="cancelled") == 0  # exists from the start
    assert value(found, "obscura_detections_total", **{"class": "face"}) == 3
    assert value(found, "obscura_detections_total", **{"class": "vehicle"}) == 1
    assert value(found, "obscura_detections_total", **{"class": "person"}) == 0
    assert value(found, "obscura_inflight_frames") == 2
    assert value(found, "obscura_queue_depth") == 1
    assert value(found, "obscura_active_streams") == 1
    assert value(found, "obscura_serving") == 1
    model = {"name": "centerface", "classes": "face", "family": "centerface"}
    assert value(found, "obscura_model_info", **model, precision="f32", device="CPU") == 1
    build = [labels for name, labels in found if name == "obscura_build_info"]
    assert len(build) == 1
    info = dict(build[0])
    assert info["version"] == "9.9.9"
    assert re.fullmatch(r"3\.\d+\.\d+.*", info["python"])
    assert set(info) == {"version", "python", "openvino"}
    assert any(name == "process_resident_memory_bytes" for name, _ in found)


def test_families_types_labels_and_help() -> None:
    fams = families(busy_metrics())
    for name, (kind, labels) in OBSCURA_FAMILIES.items():
        family = fams[name]
        assert family.type == kind, name
        assert family.documentation.strip(), f"{name} has no HELP text"
        seen = {k for s in family.samples for k in s.labels if k != "le"}
        assert seen == labels, name
    # prometheus_client adds a `_created` gauge beside each counter and histogram
    ours = {n for n in fams if n.startswith("obscura_") and not n.endswith("_created")}
    assert ours == set(OBSCURA_FAMILIES), "a metric was added: list it here and in deploy/"


def test_histogram_buckets_span_1ms_to_10s() -> None:
    found = samples(busy_metrics())
    les = {
        dict(labels)["le"]
        for name, labels in found
        if name == "obscura_stage_duration_seconds_bucket" and ("stage", "decode") in labels
    }
    assert {float(le) for le in les} == {*BUCKETS, float("inf")}
    assert min(BUCKETS) == 0.001
    assert max(BUCKETS) == 10


def test_gauges_move_both_ways_and_models_are_replaced() -> None:
    m = Metrics()
    m.inflight(3)
    m.inflight(-2)
    m.stream_opened()
    m.stream_opened()
    m.stream_closed()
    m.queue_depth(7)
    m.queue_depth(0)
    m.set_serving(True)
    m.set_serving(False)
    m.set_models(
        [{"name": "a", "classes": "face", "family": "f", "precision": "f16", "device": "GPU"}]
    )
    m.set_models([{"name": "b", "classes": "person,vehicle", "family": "g"}])
    found = samples(m)
    assert value(found, "obscura_inflight_frames") == 1
    assert value(found, "obscura_active_streams") == 1
    assert value(found, "obscura_queue_depth") == 0
    assert value(found, "obscura_serving") == 0
    info = [dict(labels) for name, labels in found if name == "obscura_model_info"]
    assert info == [
        {"name": "b", "classes": "person,vehicle", "family": "g", "precision": "", "device": ""}
    ]


def test_label_values_stay_bounded() -> None:
    m = Metrics()
    m.rpc_done("/obscura.v1.Anonymizer/Evil", "SOMETHING", 0.1)
    m.rpc_done("Check", "OK", 0.1)
    m.stage("weird", 0.1)
    m.frame("who-knows")
    m.detections({"cat": 5, "face": -1})
    for i in range(100):
        m.inference(f"model-{i}", 0.01)
    found = samples(m)
    assert value(found, "obscura_rpc_total", **GRPC, method="other", code="UNKNOWN") == 1
    assert value(found, "obscura_rpc_total", **GRPC, method="other", code="OK") == 1
    assert value(found, "obscura_stage_duration_seconds_count", stage="other") == 1
    assert value(found, "obscura_frames_total", status="other") == 1
    classes = {
        dict(labels)["class"] for name, labels in found if name == "obscura_detections_total"
    }
    assert classes == {"face", "license-plate", "person", "vehicle"}
    assert all(v == 0 for (name, _), v in found.items() if name == "obscura_detections_total")
    models = [
        dict(labels)["model"]
        for name, labels in found
        if name == "obscura_inference_duration_seconds_count"
    ]
    assert len(models) == MAX_MODELS + 1 <= 17
    assert "other" in models
    assert value(found, "obscura_inference_duration_seconds_count", model="other") == 100 - 16
    # a name seen before the limit keeps its own series
    m.inference("model-0", 0.01)
    assert value(samples(m), "obscura_inference_duration_seconds_count", model="model-0") == 2


def test_model_limit_holds_under_threads() -> None:
    m = Metrics()

    def work(base: int) -> None:
        for i in range(50):
            m.inference(f"m{base}-{i}", 0.001)

    threads = [threading.Thread(target=work, args=(t,)) for t in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    found = samples(m)
    counts = {
        labels: v for (name, labels), v in found.items()
        if name == "obscura_inference_duration_seconds_count"
    }  # fmt: skip
    assert len(counts) == MAX_MODELS + 1
    assert sum(counts.values()) == 400


@pytest.mark.parametrize("code", [c.name for c in grpc.StatusCode])
def test_every_grpc_status_name_is_a_code(code: str) -> None:
    m = Metrics()
    m.rpc_done("Anonymize", code, 0.01)
    assert value(samples(m), "obscura_rpc_total", **GRPC, method="Anonymize", code=code) == 1


def test_shared_registry() -> None:
    registry = CollectorRegistry()
    m = Metrics(registry, version="1")
    assert m.registry is registry
    assert b"obscura_build_info" in m.exposition()


# --- HTTP ---------------------------------------------------------------------------------------
def fetch(port: int, host: str = "127.0.0.1") -> tuple[str, bytes]:
    with urllib.request.urlopen(f"http://{host}:{port}/metrics", timeout=5) as response:
        return response.headers["Content-Type"], response.read()


def test_http_serves_the_exposition_and_stops() -> None:
    m = busy_metrics()
    port = m.start_http("127.0.0.1:0")
    try:
        assert port > 0
        content_type, body = fetch(port)
        assert content_type.startswith("text/plain; version=0.0.4")
        assert b'obscura_frames_total{status="ok"} 1.0' in body
        m.frame("ok")  # live, not a snapshot
        assert b'obscura_frames_total{status="ok"} 2.0' in fetch(port)[1]
    finally:
        m.stop_http()
    with pytest.raises(urllib.error.URLError):
        fetch(port)
    m.stop_http()  # stopping twice is fine


def test_http_restart_and_ipv6() -> None:
    m = Metrics()
    first = m.start_http("127.0.0.1:0")
    second = m.start_http("localhost:0")  # replaces the first server
    try:
        with pytest.raises(urllib.error.URLError):
            fetch(first)
        assert b"obscura_serving" in fetch(second)[1]
    finally:
        m.stop_http()
    if not socket.has_ipv6:
        return
    try:
        port = m.start_http("[::1]:0")
    except OSError:
        return  # no IPv6 loopback on this machine
    try:
        assert b"obscura_serving" in fetch(port, "[::1]")[1]
    finally:
        m.stop_http()


@pytest.mark.parametrize("listen", ["9464", "localhost", "host:port", "[::1:9464", "h:70000"])
def test_bad_listen_addresses(listen: str) -> None:
    with pytest.raises(ValueError, match="metrics_listen"):
        Metrics().start_http(listen)


# --- promtool -----------------------------------------------------------------------------------
def promtool() -> str:
    tool = shutil.which("promtool")
    if tool is None:
        if os.environ.get("CI"):
            pytest.fail(
                "promtool not found: install the Debian package `prometheus` "
                "(apt-get install -y --no-install-recommends prometheus)"
            )
        pytest.skip("promtool not installed (Debian package prometheus)")
    return tool


def test_promtool_check_metrics() -> None:
    proc = subprocess.run(
        [promtool(), "check", "metrics"],
        input=busy_metrics().exposition(),
        capture_output=True,
        check=False,
        timeout=60,
    )
    output = (proc.stdout + proc.stderr).decode()
    assert proc.returncode == 0, output
    assert not output.strip(), output  # lint problems are printed


def test_promtool_check_scrape_config() -> None:
    proc = subprocess.run(
        [promtool(), "check", "config", str(SCRAPE)],
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "SUCCESS" in proc.stdout


def test_promtool_parses_every_dashboard_query(tmp_path: Path) -> None:
    """Each query as a recording rule: `promtool check rules` parses its PromQL."""
    rules = [
        {"record": f"obscura:dashboard_query_{i}", "expr": grafana_to_promql(expr)}
        for i, (_, expr) in enumerate(dashboard_queries())
    ]
    path = tmp_path / "dashboard-rules.yml"
    path.write_text(json.dumps({"groups": [{"name": "dashboard", "rules": rules}]}))  # JSON is YAML
    proc = subprocess.run(
        [promtool(), "check", "rules", str(path)],
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr


# --- the dashboard and the scrape configuration ----------------------------------------------
def walk_panels(panels: list[dict[str, Any]]) -> Iterator[dict[str, Any]]:
    for panel in panels:
        yield panel
        yield from walk_panels(panel.get("panels", []))


def load_dashboard() -> dict[str, Any]:
    dashboard: dict[str, Any] = json.loads(DASHBOARD.read_text())
    return dashboard


def dashboard_queries() -> list[tuple[str, str]]:
    """(where, PromQL) of every panel target and query variable."""
    dashboard = load_dashboard()
    out = [
        (panel["title"], target["expr"])
        for panel in walk_panels(dashboard["panels"])
        for target in panel.get("targets", [])
    ]
    for var in dashboard["templating"]["list"]:
        if var["type"] == "query":
            query = var["query"]
            out.append((f"${var['name']}", query["query"] if isinstance(query, dict) else query))
    return out


def grafana_to_promql(expr: str) -> str:
    expr = re.sub(r"\$__(rate_)?interval\b", "1m", expr)
    expr = re.sub(r"\$\{?\w+\}?", ".*", expr)  # template variables are regex matchers here
    lv = re.fullmatch(r"label_values\((.+),\s*\w+\)", expr)
    return lv.group(1) if lv else expr


def exported() -> tuple[set[str], dict[str, set[str]]]:
    """The sample names of the exposition, and the labels of each."""
    names: set[str] = set()
    labels: dict[str, set[str]] = {}
    for family in text_string_to_metric_families(busy_metrics().exposition().decode()):
        for s in family.samples:
            names.add(s.name)
            labels.setdefault(s.name, set()).update(s.labels)
        # the family's own name too: histograms are queried through their suffixes
        labels.setdefault(family.name, set()).update(k for s in family.samples for k in s.labels)
    return names, labels


def known_name(name: str, names: set[str]) -> bool:
    return name in names or any(
        name.endswith(sfx) and name.removesuffix(sfx) + "_bucket" in names for sfx in SUFFIXES
    )


def test_dashboard_uses_only_exported_metrics_and_labels() -> None:
    names, labels = exported()
    used: set[str] = set()
    for where, expr in dashboard_queries():
        in_expr = METRIC_NAME.findall(expr)
        assert in_expr, (where, expr)
        for name in in_expr:
            assert known_name(name, names), f"{where}: {name} is not exported by Metrics"
            used.add(name)
        allowed = set().union(*(labels.get(n, set()) for n in in_expr)) | TARGET_LABELS | {"le"}
        for metric, matchers in re.findall(r"([a-z_]+)\{([^}]*)\}", expr):
            for label in re.findall(r"(\w+)\s*(?:=~|!~|!=|=)", matchers):
                assert label in labels.get(metric, set()) | TARGET_LABELS, (where, label)
        for group in re.findall(r"\b(?:by|on|without|ignoring)\s*\(([^)]*)\)", expr):
            for label in filter(None, (x.strip() for x in group.split(","))):
                assert label in allowed, (where, label)
    for panel in walk_panels(load_dashboard()["panels"]):
        for target in panel.get("targets", []):
            for label in re.findall(r"\{\{\s*(\w+)\s*\}\}", target.get("legendFormat", "")):
                assert label in TARGET_LABELS or any(label in v for v in labels.values()), label
    # the metrics the dashboard is about are all charted
    for family in OBSCURA_FAMILIES:
        if family != "obscura_build_info":
            assert any(n.startswith(family) for n in used), f"{family} is on no panel"


def test_dashboard_structure() -> None:
    dashboard = load_dashboard()
    assert 36 <= dashboard["schemaVersion"] <= 41
    variables = {v["name"]: v for v in dashboard["templating"]["list"]}
    assert variables["DS_PROMETHEUS"]["type"] == "datasource"
    assert variables["DS_PROMETHEUS"]["query"] == "prometheus"
    device = variables["device"]
    query = device["query"]["query"] if isinstance(device["query"], dict) else device["query"]
    assert query == "label_values(obscura_build_info, device)"
    panels = list(walk_panels(dashboard["panels"]))
    ids = [p["id"] for p in panels]
    assert len(ids) == len(set(ids))
    charts = [p for p in panels if p["type"] != "row"]
    for panel in charts:
        assert panel["datasource"]["uid"] == "${DS_PROMETHEUS}", panel["title"]
        assert panel["targets"], panel["title"]
        for target in panel["targets"]:
            assert 'device=~"$device"' in target["expr"], panel["title"]
    titles = " | ".join(p["title"].lower() for p in charts)
    for topic in (
        "request latency", "frames per second", "detections", "errors", "queue depth",
        "in-flight", "stage latency", "inference latency", "active streams", "serving",
        "resident memory",
    ):  # fmt: skip
        assert topic in titles, topic
    # panels do not overlap on the 24-column grid
    cells: set[tuple[int, int]] = set()
    for panel in panels:
        g = panel["gridPos"]
        assert g["x"] + g["w"] <= 24, panel["title"]
        area = {
            (x, y) for x in range(g["x"], g["x"] + g["w"]) for y in range(g["y"], g["y"] + g["h"])
        }
        assert not cells & area, panel["title"]
        cells |= area


def test_scrape_config_matches_the_daemon() -> None:
    text = SCRAPE.read_text()
    names, _ = exported()
    for name in METRIC_NAME.findall(text):
        assert known_name(name, names), f"scrape.yml names {name}, which Metrics does not export"
    assert re.search(r"^\s*scrape_interval:\s*15s", text, re.MULTILINE)
    assert re.search(r"^\s*- job_name:\s*obscura\b", text, re.MULTILINE)
    assert re.search(r"^\s*target_label:\s*device\b", text, re.MULTILINE)
    targets = re.findall(r"^\s*- ([\w.-]+):(\d+)\s*$", text, re.MULTILINE)
    assert len(targets) >= 3
    assert {port for _, port in targets} == {"9464"}
