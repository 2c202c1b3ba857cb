"""The systemd protocol over real datagram sockets, and the unit file through systemd-analyze."""

from __future__ import annotations

import itertools
import os
import re
import shutil
import socket
import subprocess
import tempfile
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from support import REPO

from obscura import systemd
from obscura.config import ServerConfig

UNIT = REPO / "systemd" / "obscura.service"
SUN_PATH_MAX = 107  # sockaddr_un.sun_path holds 108 bytes, the terminating NUL included


class Listener:
    """The receiving end of $NOTIFY_SOCKET, as systemd holds it."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock

    def recv(self, timeout: float = 2.0) -> str:
        self.sock.settimeout(timeout)
        return self.sock.recv(65536).decode()

    def recv_all(self, seconds: float) -> list[tuple[float, str]]:
        """Every message that arrives within ``seconds``, with its arrival time."""
        out: list[tuple[float, str]] = []
        deadline = time.monotonic() + seconds
        while (left := deadline - time.monotonic()) > 0:
            self.sock.settimeout(left)
            try:
                data = self.sock.recv(65536)
            except TimeoutError:
                break
            out.append((time.monotonic(), data.decode()))
        return out

    def wait_for(self, message: str, timeout: float = 2.0) -> list[str]:
        """Messages up to and including the first equal to ``message``."""
        seen: list[str] = []
        deadline = time.monotonic() + timeout
        while (left := deadline - time.monotonic()) > 0:
            seen.append(self.recv(left))
            if seen[-1] == message:
                return seen
        raise AssertionError(f"{message!r} did not arrive; got {seen}")


def _socket_dir(tmp_path: Path) -> Path:
    # AF_UNIX paths are short; pytest's tmp_path can be longer under a deep $TMPDIR.
    if len(str(tmp_path / "notify.sock")) <= SUN_PATH_MAX:
        return tmp_path
    return Path(tempfile.mkdtemp(prefix="obscura-", dir="/tmp"))


@pytest.fixture(params=["path", "abstract"])
def listener(
    request: pytest.FixtureRequest, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[Listener]:
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    if request.param == "path":
        path = _socket_dir(tmp_path) / "notify.sock"
        sock.bind(str(path))
        monkeypatch.setenv("NOTIFY_SOCKET", str(path))
    else:
        name = f"obscura-test-{uuid.uuid4().hex}"
        sock.bind(b"\0" + name.encode())
        monkeypatch.setenv("NOTIFY_SOCKET", "@" + name)
    monkeypatch.delenv("WATCHDOG_USEC", raising=False)
    monkeypatch.delenv("WATCHDOG_PID", raising=False)
    with sock:
        yield Listener(sock)


# --- notify --------------------------------------------------------------------------------
def test_messages_arrive_exactly(listener: Listener) -> None:
    assert systemd.notify("READY=1", "STATUS=serving on unix:///run/obscura/obscura.sock")
    assert listener.recv() == "READY=1\nSTATUS=serving on unix:///run/obscura/obscura.sock"
    assert systemd.ready("serving")
    assert listener.recv() == "READY=1\nSTATUS=serving"
    assert systemd.status("loading models")
    assert listener.recv() == "STATUS=loading models"
    assert systemd.stopping("draining (up to 10 s)")
    assert listener.recv() == "STOPPING=1\nSTATUS=draining (up to 10 s)"
    assert systemd.ready()
    assert listener.recv() == "READY=1"


def test_status_is_kept_on_one_line(listener: Listener) -> None:
    assert systemd.status("two\nlines")
    assert listener.recv() == "STATUS=two lines"


def test_notify_without_socket_does_nothing(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("NOTIFY_SOCKET", raising=False)
    assert systemd.notify("READY=1") is False
    assert systemd.ready("serving") is False
    assert systemd.stopping("bye") is False


def test_notify_failure_is_logged_not_raised(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setenv("NOTIFY_SOCKET", str(_socket_dir(tmp_path) / "nobody-listens.sock"))
    assert systemd.notify("READY=1") is False
    assert "cannot notify systemd" in caplog.text


# --- watchdog_interval ---------------------------------------------------------------------
@pytest.mark.parametrize(
    ("usec", "pid", "expected"),
    [
        (None, None, None),
        ("30000000", None, 30.0),
        ("250000", "self", 0.25),
        ("30000000", "other", None),
        ("30000000", "not-a-pid", None),
        ("0", None, None),
        ("-5", None, None),
        ("thirty", None, None),
        ("", None, None),
    ],
)
def test_watchdog_interval(
    monkeypatch: pytest.MonkeyPatch, usec: str | None, pid: str | None, expected: float | None
) -> None:
    if usec is None:
        monkeypatch.delenv("WATCHDOG_USEC", raising=False)
    else:
        monkeypatch.setenv("WATCHDOG_USEC", usec)
    if pid is None:
        monkeypatch.delenv("WATCHDOG_PID", raising=False)
    else:
        value = {"self": str(os.getpid()), "other": str(os.getpid() + 1)}.get(pid, pid)
        monkeypatch.setenv("WATCHDOG_PID", value)
    assert systemd.watchdog_interval() == expected


# --- Watchdog ------------------------------------------------------------------------------
INTERVAL = 0.2  # pings every 0.1 s


def _pings(messages: list[tuple[float, str]]) -> list[float]:
    return [t for t, m in messages if m == "WATCHDOG=1"]


def test_watchdog_pings_at_half_the_interval_and_stops_when_unhealthy(
    listener: Listener,
) -> None:
    healthy = threading.Event()
    healthy.set()
    dog = systemd.Watchdog(healthy.is_set, interval=INTERVAL)
    dog.start()
    try:
        assert dog.active
        pings = _pings(listener.recv_all(1.0))
        # 1 s at one ping per 0.1 s: about 10 (the first at once), allowing for a slow machine.
        assert 6 <= len(pings) <= 12, pings
        gaps = [b - a for a, b in itertools.pairwise(pings)]
        assert all(0.05 <= g <= 0.3 for g in gaps), gaps
        assert 0.08 <= sorted(gaps)[len(gaps) // 2] <= 0.15, gaps

        healthy.clear()
        # The thread says so once it has noticed; no ping may follow for more than 2 intervals.
        seen = listener.wait_for(
            "STATUS=unhealthy: a job is stuck, watchdog pings withheld", timeout=1.0
        )
        assert set(seen[:-1]) <= {"WATCHDOG=1"}
        after = listener.recv_all(2.5 * INTERVAL)
        assert _pings(after) == [], after
        assert dog.active  # still running, just silent

        healthy.set()  # recovered before systemd gave up: pings resume
        assert _pings(listener.recv_all(3 * INTERVAL))
    finally:
        dog.stop()
    assert not dog.active
    listener.recv_all(0.05)  # a ping sent just before stop() took effect
    assert listener.recv_all(2.5 * INTERVAL) == []


def test_watchdog_unhealthy_when_the_check_raises(listener: Listener) -> None:
    def broken() -> bool:
        raise RuntimeError("boom")

    dog = systemd.Watchdog(broken, interval=INTERVAL)
    dog.start()
    try:
        listener.wait_for("STATUS=unhealthy: a job is stuck, watchdog pings withheld")
        assert _pings(listener.recv_all(2.5 * INTERVAL)) == []
    finally:
        dog.stop()


def test_watchdog_takes_its_interval_from_systemd(
    listener: Listener, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("WATCHDOG_USEC", str(int(INTERVAL * 1_000_000)))
    monkeypatch.setenv("WATCHDOG_PID", str(os.getpid()))
    dog = systemd.Watchdog(lambda: True)
    assert dog.interval == INTERVAL
    dog.start()
    dog.start()  # idempotent: still one thread
    try:
        pings = _pings(listener.recv_all(0.55))
        assert 4 <= len(pings) <= 7, pings
    finally:
        dog.stop()
        dog.stop()


def test_watchdog_without_interval_does_nothing(
    listener: Listener, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("WATCHDOG_USEC", raising=False)
    dog = systemd.Watchdog(lambda: True)
    dog.start()
    assert not dog.active
    assert listener.recv_all(0.3) == []
    dog.stop()


def test_watchdog_with_the_heartbeat(listener: Listener) -> None:
    """The daemon's wiring: pings stop while a job has been running longer than the limit."""
    heartbeat = systemd.Heartbeat()
    stuck_timeout = 0.3
    dog = systemd.Watchdog(lambda: heartbeat.oldest() < stuck_timeout, interval=INTERVAL)
    dog.start()
    try:
        token = heartbeat.begin()
        listener.wait_for("STATUS=unhealthy: a job is stuck, watchdog pings withheld")
        assert heartbeat.oldest() >= stuck_timeout
        assert _pings(listener.recv_all(2.5 * INTERVAL)) == []
        heartbeat.end(token)
        assert _pings(listener.recv_all(3 * INTERVAL))
    finally:
        dog.stop()


# --- Heartbeat -----------------------------------------------------------------------------
def test_heartbeat_oldest_grows_while_a_job_runs() -> None:
    heartbeat = systemd.Heartbeat()
    assert heartbeat.oldest() == 0.0
    first = heartbeat.begin()
    time.sleep(0.05)
    a = heartbeat.oldest()
    assert a >= 0.05
    second = heartbeat.begin()
    time.sleep(0.05)
    b = heartbeat.oldest()
    assert b >= a + 0.05  # the first job still counts
    assert heartbeat.running() == 2
    heartbeat.end(first)
    assert 0.0 < heartbeat.oldest() < b  # now the second job's age
    heartbeat.end(second)
    assert heartbeat.oldest() == 0.0
    heartbeat.end(second)  # ending twice is harmless
    assert heartbeat.running() == 0


def test_heartbeat_tokens_are_unique_across_threads() -> None:
    heartbeat = systemd.Heartbeat()
    tokens: list[int] = []
    lock = threading.Lock()

    def worker() -> None:
        for _ in range(500):
            token = heartbeat.begin()
            with lock:
                tokens.append(token)
            heartbeat.end(token)

    threads = [threading.Thread(target=worker) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(set(tokens)) == len(tokens) == 4000
    assert heartbeat.oldest() == 0.0
    assert heartbeat.running() == 0


# --- the unit file -------------------------------------------------------------------------
def _directives(text: str) -> dict[str, list[str]]:
    """``Key`` -> values, sections ignored (every key of this unit is unique to one section)."""
    out: dict[str, list[str]] = {}
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith(("#", ";", "[")):
            continue
        key, _, value = line.partition("=")
        out.setdefault(key.strip(), []).append(value.strip())
    return out


def test_unit_file_settings() -> None:
    d = _directives(UNIT.read_text())
    assert d["Type"] == ["notify"]
    assert d["NotifyAccess"] == ["main"]
    assert d["ExecStart"] == [
        "/opt/obscura/venv/bin/obscura serve --config /etc/obscura/obscura.toml"
    ]
    assert d["Environment"] == ["OBSCURA_MODEL_DIR=/var/cache/obscura/models"]
    assert d["RuntimeDirectory"] == ["obscura"]
    assert d["MemoryDenyWriteExecute"] == ["no"]
    # The stop timeout leaves the daemon its whole grace period, and a margin.
    assert float(d["TimeoutStopSec"][0]) == ServerConfig().grace_period + 5
    # The watchdog must not fire before a job counts as stuck.
    assert float(d["WatchdogSec"][0]) >= ServerConfig().stuck_timeout


def _verify(unit: Path) -> tuple[int, list[str], list[str]]:
    """Runs ``systemd-analyze verify`` on ``unit``: exit status, lines about it, other lines.

    Tolerated: lines that do not name our file or unit. systemd-analyze also loads the units
    ours refers to (multi-user.target, network.target, sysinit.target, ...) from the host, and on
    a minimal container or an older host it may print warnings about *those* files; they say
    nothing about ours. On Debian 12 (systemd 252) it prints nothing at all. It does not check
    that User= / Group= / SupplementaryGroups= exist, so the missing `obscura` user is silent.
    Everything naming our unit (unknown keys or sections, bad values, a missing executable)
    fails the test.
    """
    exe = shutil.which("systemd-analyze")
    assert exe is not None
    proc = subprocess.run(
        [exe, "verify", "--man=no", "--generators=no", str(unit)],
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
        # Units next to ours (the watch unit requires obscura.service) are found there first.
        env={**os.environ, "SYSTEMD_UNIT_PATH": f"{unit.parent}:"},
    )
    lines = [line for line in (proc.stdout + proc.stderr).splitlines() if line.strip()]
    ours = [line for line in lines if unit.name in line or str(unit) in line]
    return proc.returncode, ours, [line for line in lines if line not in ours]


def _verifiable_copy(tmp_path: Path, extra: str = "", source: Path = UNIT) -> Path:
    # verify fails when ExecStart's program does not exist: point it at one that does.
    text = source.read_text()
    assert "ExecStart=/opt/obscura/venv/bin/obscura " in text
    true = shutil.which("true") or "/bin/true"
    text = text.replace("ExecStart=/opt/obscura/venv/bin/obscura ", f"ExecStart={true} ")
    text = text.replace("[Service]\n", "[Service]\n" + extra, 1)
    unit = tmp_path / source.name
    unit.write_text(text)
    return unit


@pytest.fixture
def analyze() -> None:
    if shutil.which("systemd-analyze") is None:
        if os.environ.get("CI"):
            pytest.fail("systemd-analyze is needed (Debian package systemd)")
        pytest.skip("systemd-analyze not installed (Debian package systemd)")


@pytest.mark.usefixtures("analyze")
@pytest.mark.parametrize("name", ["obscura.service", "obscura-watch.service"])
def test_unit_file_verifies(tmp_path: Path, name: str) -> None:
    _verifiable_copy(tmp_path)  # obscura-watch.service requires obscura.service
    code, ours, others = _verify(_verifiable_copy(tmp_path, source=UNIT.parent / name))
    assert code == 0, ours + others
    assert ours == [], ours
    for line in others:  # tolerated, but never a parse problem
        assert not any(w in line for w in ("Unknown key", "Unknown lvalue", "Unknown section")), (
            line
        )


@pytest.mark.usefixtures("analyze")
def test_unit_file_check_catches_unknown_keys(tmp_path: Path) -> None:
    """The check above would notice a misspelt key (systemd-analyze still exits 0 for one)."""
    _, ours, _ = _verify(_verifiable_copy(tmp_path, extra="WatchdogSecs=30\n"))
    assert any("WatchdogSecs" in line for line in ours), ours  # "Unknown key 'WatchdogSecs' ..."


@pytest.mark.usefixtures("analyze")
@pytest.mark.parametrize(
    ("name", "ceiling"), [("obscura.service", 2.0), ("obscura-watch.service", 1.7)]
)
def test_unit_file_security_exposure(name: str, ceiling: float) -> None:
    """`systemd-analyze security` rates the sandboxing "OK" or better, no worse than measured
    (2.0 for the daemon, which keeps /dev/dri and its network listeners; 1.7 for the watcher)."""
    proc = subprocess.run(
        ["systemd-analyze", "security", "--offline=true", "--no-pager", str(UNIT.parent / name)],
        capture_output=True,
        text=True,
        check=False,
    )
    match = re.search(r"Overall exposure level for \S+: (\d+\.\d+) (\w+)", proc.stdout)
    assert match, proc.stdout[-2000:] + proc.stderr
    score, label = float(match.group(1)), match.group(2)
    print(f"{name}: exposure {score} {label}")
    assert label in ("OK", "SAFE", "PERFECT"), label
    assert score <= ceiling
