"""A stop that hangs is cut short: the stacks of every thread are logged and the process exits,
with status 0 when the drain had finished (only the exit hung) and 1 when it had not."""

from __future__ import annotations

import subprocess
import sys

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
