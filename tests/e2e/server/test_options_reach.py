"""Every option reaches the pipeline on every path (fail-closed: an accepted privacy option is
never dropped on the way).

One set of options sets every field of the API's ``Options`` message (walked through its
descriptor) and every anonymize option of the CLI to a value that is not its default. Each path
runs it, against real daemons where there is one, and the options the pipeline ran with are
compared with what was asked for: in-process (recorded at the frame processor), unary, stream,
``obscura stream``, ``obscura watch`` and ``obscura anonymize --server`` with two daemons (read
from the daemons' debug log, which names the options each call and stream runs with).
"""

from __future__ import annotations

import argparse
import itertools
import json
import re
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from support.daemons import DaemonProcess, free_port
from support.images import read_image
from support.videos import decode_all, write_video

from obscura import cli
from obscura.pipeline.frame import FrameProcessor
from obscura.pipeline.options import AnonymizeOptions
from obscura_client import cli as remote
from obscura_client.cli import HelpDefaults
from obscura_client.client import Client, FrameFailed, Result, request_for
from obscura_client.v1 import anonymizer_pb2 as pb
from obscura_client.wire import Method, Options, Zone, ZoneKind

pytestmark = pytest.mark.models

FILL = (10, 200, 30)
PRIVACY = ((0.0, 0.0), (200.0, 0.0), (200.0, 120.0), (0.0, 120.0))
IGNORE = ((500.0, 400.0), (700.0, 400.0), (700.0, 560.0))

PROBE = Options(
    classes={"face": "blacken", "license-plate": "pixelate", "person": "detect"},
    thresholds={"face": 0.37, "person": 0.55},
    enlarge={"face": 1.25, "license-plate": 1.5},
    bbox=True,
    save_mask="all",
    mask_scale=50,
    mask_encoding="celantur-v26",
    output_format="png",
    quality=77,
    fill_color=FILL,
    track_hold=5,
    detect_every=2,
    zones=(Zone(ZoneKind.PRIVACY, PRIVACY, Method.BLACKEN), Zone(ZoneKind.IGNORE, IGNORE)),
    mask_format="raw",
)
# What the command line asks for: masks as PNG on the wire (videos switch to raw themselves).
CLI_PROBE = PROBE.replace(output_format=None, mask_format="png")

# The same, on the command line (output_format is the path's own: files keep their format).
PROBE_ARGS = [
    "-a", "face", "-m", "blacken", "-m", "license-plate=pixelate,person=detect",
    "-t", "face=0.37,person=0.55", "--enlarge", "face=1.25", "--enlarge", "license-plate=1.5",
    "--bbox", "--save-mask", "all", "--mask-scale", "50", "--mask-encoding", "celantur-v26",
    "--quality", "77", "--fill-color", "10,200,30", "--track-hold", "5", "--detect-every", "2",
    "--privacy-zone", "0,0 200,0 200,120 0,120", "--zone-method", "blacken",
    "--ignore-zone", "500,400 700,400 700,560", "--ins-mask-suffix", "_probe_ins",
]  # fmt: skip
# CLI options that name outputs, not what the pipeline does; each is checked on its path.
OUTPUT_NAMING = {"ins_mask_suffix"}


def expected(output_format: str | None = None, mask_format: str = "png") -> AnonymizeOptions:
    """What the pipeline must run with: the probe as the daemon reads it off the wire."""
    probe = PROBE.replace(output_format=output_format, mask_format=mask_format)
    return AnonymizeOptions.from_wire(Options.from_proto(probe.to_proto()))


def probe_args(*, masks: bool = True) -> list[str]:
    if masks:
        return PROBE_ARGS
    out = list(PROBE_ARGS)
    i = out.index("--save-mask")
    del out[i : i + 2]
    return out


def _unset(msg: Any, name: str) -> bool:
    fd = msg.DESCRIPTOR.fields_by_name[name]
    if fd.is_repeated:
        return len(getattr(msg, name)) == 0
    if fd.has_presence:
        return not msg.HasField(name)
    return bool(getattr(msg, name) == fd.default_value)


def test_the_probe_sets_every_field_of_the_proto() -> None:
    """A field added to the proto fails here until the wire options carry it."""
    msg = PROBE.to_proto()
    for fd in pb.Options.DESCRIPTOR.fields:
        assert not _unset(msg, fd.name), f"Options.{fd.name} is not carried by wire Options"
    for sub, items in ((pb.ClassOptions, msg.classes), (pb.Zone, msg.zones)):
        for fd in sub.DESCRIPTOR.fields:
            assert any(not _unset(item, fd.name) for item in items), f"{sub.__name__}.{fd.name}"
    assert Options.from_proto(msg) == PROBE  # and back, every field


def _anonymize_actions() -> list[argparse.Action]:
    parser = argparse.ArgumentParser()
    remote.add_anonymize_options(parser, HelpDefaults())
    return [a for a in parser._actions if a.dest != "help"]


def test_the_probe_sets_every_anonymize_option_of_the_cli() -> None:
    parser = argparse.ArgumentParser()
    remote.add_anonymize_options(parser, HelpDefaults())
    args = parser.parse_args(PROBE_ARGS)
    defaults = parser.parse_args([])
    for action in _anonymize_actions():
        assert getattr(args, action.dest) != getattr(defaults, action.dest), action.dest
    assert remote.wire_options(args) == CLI_PROBE
    # watch, stream and anonymize share these options, in `obscura` and in `obscura-client`
    commands = (["anonymize", "x", "-o", "y"], ["watch", "a", "b"], ["stream", "s", "-o", "o"])
    for parser, command in itertools.product(
        (cli._build_parser(), remote.build_parser()), commands
    ):
        sub = parser.parse_args(
            [*command, "--server", "x", *probe_args(masks=command[0] != "stream")]
        )
        wire = remote.wire_options(sub)
        want = CLI_PROBE
        if command[0] == "stream":
            want = want.replace(save_mask="none")
        assert wire == want, command[0]


# --- the paths ------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def daemons(tmp_path_factory: pytest.TempPathFactory) -> Iterator[list[tuple[DaemonProcess, str]]]:
    out = []
    for name in ("a", "b"):
        folder = tmp_path_factory.mktemp(f"reach-{name}")
        port = free_port()
        d = DaemonProcess(
            folder,
            {
                "listen": [f"unix://{folder / 'obscura.sock'}", f"127.0.0.1:{port}"],
                "metrics_listen": "",
                "workers": 1,
                "warmup": False,
            },
            verbose=2,
        )
        out.append((d, f"127.0.0.1:{port}"))
    for d, _ in out:
        d.start(wait=False)
    for d, _ in out:
        d.wait_serving()
    yield out
    for d, _ in out:
        d.terminate()


class LogMark:
    """The daemons' logs from now on."""

    def __init__(self, daemons: list[tuple[DaemonProcess, str]]):
        self.daemons = [d for d, _ in daemons]
        self.offsets = [len(d.output()) for d in self.daemons]

    def new(self) -> str:
        return "".join(d.output()[o:] for d, o in zip(self.daemons, self.offsets, strict=True))

    def runs(self, call: str) -> list[tuple[str, str]]:
        """(options repr, output format) of each ``call`` (Anonymize, AnonymizeStream)."""
        pattern = (
            rf"DEBUG obscura\.server\.servicer: {call} [^:]*: "
            r"(AnonymizeOptions\(.*\)), output (\S+)$"
        )
        return re.findall(pattern, self.new(), re.MULTILINE)


@pytest.fixture(scope="module")
def clip(tmp_path_factory: pytest.TempPathFactory, data_dir: Path) -> Path:
    frames = decode_all(data_dir / "opencv_vtest_first100.mp4")[:6]
    path = tmp_path_factory.mktemp("clip") / "clip.mp4"
    write_video(path, frames, 6, rate=10)
    return path


IMAGE = "gramps_1897_expedition.jpg"


def test_in_process(tmp_path: Path, data_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    seen: list[AnonymizeOptions] = []
    original = FrameProcessor.process

    def recording(self: FrameProcessor, image: Any, options: AnonymizeOptions, **kw: Any) -> Any:
        seen.append(options)
        return original(self, image, options, **kw)

    monkeypatch.setattr(FrameProcessor, "process", recording)
    (tmp_path / "in").mkdir()
    shutil.copy(data_dir / IMAGE, tmp_path / "in" / IMAGE)
    code = cli.main(["anonymize", str(tmp_path / "in"), "-o", str(tmp_path / "out"),
                     "--no-progress", *PROBE_ARGS])  # fmt: skip
    assert code == 0
    assert seen
    assert all(s == expected() for s in seen)
    assert (tmp_path / "out" / "gramps_1897_expedition_probe_ins.png").exists()


def test_unary(daemons: list[tuple[DaemonProcess, str]], data_dir: Path) -> None:
    mark = LogMark(daemons)
    with Client(daemons[0][0].socket) as client:
        result = client.anonymize_image(data_dir / IMAGE, PROBE)
    assert result.format == "png"
    assert mark.runs("Anonymize") == [(repr(expected("png", "raw")), "png")]
    binary, instance = result.binary_mask(), result.instance_mask()  # raw on the wire
    assert binary is not None
    assert instance is not None
    height, width = result.pixels().shape[:2]
    assert binary.shape == instance.shape[:2]
    assert abs(binary.shape[0] - height / 2) <= 1
    assert abs(binary.shape[1] - width / 2) <= 1


def test_stream(daemons: list[tuple[DaemonProcess, str]], data_dir: Path) -> None:
    mark = LogMark(daemons)
    frame = (data_dir / IMAGE).read_bytes()
    requests = [request_for(frame, PROBE if i == 0 else None, frame_index=i) for i in range(3)]
    with Client(daemons[0][0].socket) as client:
        results = list(client.frames(requests))
    assert not [r for r in results if isinstance(r, FrameFailed)]
    assert mark.runs("AnonymizeStream") == [(repr(expected("png", "raw")), "png")]
    assert [r.metadata.get("detect_every") for r in results if isinstance(r, Result)] == [2, 2, 2]


def test_obscura_stream(
    daemons: list[tuple[DaemonProcess, str]], clip: Path, tmp_path: Path
) -> None:
    mark = LogMark(daemons)
    out = tmp_path / "live"
    proc = subprocess.run(
        [sys.executable, "-m", "obscura.cli", "stream", str(clip), "-o", str(out),
         "--server", daemons[0][0].socket, "--max-frames", "6", *probe_args(masks=False)],
        capture_output=True, text=True, timeout=300, check=False,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    want = AnonymizeOptions.from_wire(
        Options.from_proto(CLI_PROBE.replace(save_mask="none", output_format="raw").to_proto())
    )
    assert mark.runs("AnonymizeStream") == [(repr(want), "raw")]
    # The privacy zone is hidden in the recorded frames (with the fill colour, H.264 aside).
    segment = next(out.glob("stream-*.mkv"))
    for image in decode_all(segment):
        zone = image[5:115, 5:195].reshape(-1, 3).astype(np.int32)
        assert np.abs(zone.mean(axis=0) - np.array(FILL[::-1])).max() < 12
    # Live metadata carries what the frame ran with, as every other path's does.
    frames = json.loads(next(out.glob("stream-*-0-*.json")).read_text())
    assert [f["id"] for f in frames] == list(range(6))
    assert all(f["zones"] == [z.as_dict() for z in PROBE.zones] for f in frames)
    assert all(f["detect_every"] == 2 for f in frames)
    assert all(d["source"] in ("detector", "track") for f in frames for d in f["detections"])


def test_obscura_watch(
    daemons: list[tuple[DaemonProcess, str]], data_dir: Path, tmp_path: Path
) -> None:
    mark = LogMark(daemons)
    in_dir, out_dir = tmp_path / "in", tmp_path / "out"
    in_dir.mkdir()
    shutil.copy(data_dir / IMAGE, in_dir / IMAGE)
    proc = subprocess.run(
        [sys.executable, "-m", "obscura.cli", "watch", str(in_dir), str(out_dir), "--once",
         "--settle", "0.2", "--server", daemons[0][0].socket, *PROBE_ARGS],
        capture_output=True, text=True, timeout=300, check=False,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert mark.runs("Anonymize") == [(repr(expected()), "None")]
    assert (out_dir / "gramps_1897_expedition_probe_ins.png").exists()
    assert (in_dir / ".processed" / IMAGE).exists()


def test_server_with_two_daemons(
    daemons: list[tuple[DaemonProcess, str]], data_dir: Path, clip: Path, tmp_path: Path
) -> None:
    mark = LogMark(daemons)
    in_dir = tmp_path / "in"
    in_dir.mkdir()
    shutil.copy(clip, in_dir / "clip.mp4")
    for n in range(3):
        shutil.copy(data_dir / IMAGE, in_dir / f"{n}_{IMAGE}")
    servers = ",".join(address for _, address in daemons)
    proc = subprocess.run(
        [sys.executable, "-m", "obscura.cli", "anonymize", str(in_dir), "-o", str(tmp_path / "out"),
         "--no-progress", "--server", servers, *PROBE_ARGS],
        capture_output=True, text=True, timeout=300, check=False,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert mark.runs("Anonymize") == [(repr(expected()), "None")] * 3
    assert mark.runs("AnonymizeStream") == [(repr(expected("raw", "raw")), "raw")]
    assert all(mark_one.runs("Anonymize") for mark_one in _per_daemon(mark))  # both served
    out = tmp_path / "out"
    assert (out / "clip_probe_ins.mkv").exists()
    assert (out / "0_gramps_1897_expedition_probe_ins.png").exists()
    image = read_image(out / f"0_{IMAGE}")
    zone = image[5:115, 5:195].reshape(-1, 3).astype(np.int32)
    assert np.abs(zone.mean(axis=0) - np.array(FILL[::-1])).max() < 12


def _per_daemon(mark: LogMark) -> list[LogMark]:
    out = []
    for d, offset in zip(mark.daemons, mark.offsets, strict=True):
        one = LogMark([])
        one.daemons, one.offsets = [d], [offset]
        out.append(one)
    return out
