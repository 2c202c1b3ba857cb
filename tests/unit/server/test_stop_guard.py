"""A stop that hangs is cut short: the stacks of every thread are logged and the process exits,
with status 0 when the drain had finished (only the exit hung) and 1 when it had not."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

HANGS = """
import logging, threading
from obscura.server.app import StopGuard
logging.basicConfig(level=logging.INFO)
guard = StopGuard(0.5)
guard.drained = {drained}
def stuck_in_a_library():
    threading.Event().wait()
stuck_in_a_library()
"""


@pytest.mark.parametrize(("drained", "code", "where"), [(False, 1, "drain"), (True, 0, "exit")])
def test_a_hung_stop_logs_every_stack_and_exits(drained: bool, code: int, where: str) -> None:
    done = subprocess.run(
        [sys.executable, "-c", HANGS.format(drained=drained)],
        check=False,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == code
    assert f"the {where} did not finish within 0.5 s of the stop's start" in done.stderr
    assert f"exits with status {code}" in done.stderr
    assert "in stuck_in_a_library" in done.stderr  # the main thread's stack, where it hangs


def test_a_stop_that_ends_in_time_is_left_alone() -> None:
    done = subprocess.run(
        [sys.executable, "-c", "from obscura.server.app import StopGuard; StopGuard(30)"],
        check=False,
        capture_output=True,
        text=True,
        timeout=20,
    )
    assert done.returncode == 0
    assert done.stderr == ""


STUCK_DAEMON = """
import asyncio, logging, threading
from support.fakes import FixedDetector
from obscura.config import Config, ServerConfig
from obscura.pipeline.frame import FrameProcessor
from obscura.server.app import Daemon
from obscura.types import Detections
logging.basicConfig(level=logging.INFO)
config = Config(server=ServerConfig(
    listen=("unix://{socket}",), metrics_listen="", warmup=False, grace_period=0.5,
))
daemon = Daemon(config, processor=FrameProcessor(FixedDetector(Detections())), owns_process=True)
def workers_never_end():
    threading.Event().wait()
daemon.dispatcher.shutdown = workers_never_end
async def main():
    await daemon.start()
    await daemon.stop()
asyncio.run(main())
print("the stop returned")
"""


def test_a_daemon_that_owns_its_process_arms_the_guard_when_it_stops(tmp_path: Path) -> None:
    """A real daemon (gRPC on a Unix socket) whose workers never end: 3 s after its grace
    period its stop is cut short, with the stuck worker's stack in the log."""
    tests = Path(__file__).resolve().parents[2]
    done = subprocess.run(
        [sys.executable, "-c", STUCK_DAEMON.format(socket=tmp_path / "d.sock")],
        check=False,
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "PYTHONPATH": str(tests)},
    )
    assert done.returncode == 1, done.stderr[-2000:]
    assert "stopping: draining for up to 0.5 s" in done.stderr
    assert "the drain did not finish within 3.5 s of the stop's start" in done.stderr
    assert "in workers_never_end" in done.stderr
    assert "the stop returned" not in done.stdout
