"""The systemd service protocol, without third-party dependencies.

- :func:`notify` sends ``sd_notify(3)`` messages (``READY=1``, ``STATUS=...``, ``STOPPING=1``,
  ``WATCHDOG=1``) to ``$NOTIFY_SOCKET``; outside systemd (no ``NOTIFY_SOCKET``) it does nothing.
- :class:`Heartbeat` tracks the jobs (inferences) that are running, so that one that hangs can be
  noticed.
- :class:`Watchdog` pings ``WATCHDOG=1`` every half ``WatchdogSec=`` while a health predicate
  holds; when it stops holding (``lambda: heartbeat.oldest() < stuck_timeout``) the pings stop
  and systemd kills and restarts the service after ``WatchdogSec=``.

Typical use::

    heartbeat = Heartbeat()
    watchdog = Watchdog(lambda: heartbeat.oldest() < stuck_timeout)
    status("loading models")
    ...  # load and warm up
    watchdog.start()
    ready("serving on unix:///run/obscura/obscura.sock")
    ...
    stopping("draining")
    watchdog.stop()
"""

from __future__ import annotations

import itertools
import logging
import os
import socket
import threading
import time
from collections.abc import Callable

log = logging.getLogger(__name__)

__all__ = [
    "Heartbeat",
    "Watchdog",
    "notify",
    "ready",
    "status",
    "stopping",
    "watchdog_interval",
]


def _address(value: str) -> str | bytes:
    """``$NOTIFY_SOCKET`` as a socket address: ``@name`` is the abstract namespace."""
    if value.startswith("@"):
        return b"\0" + value[1:].encode()
    return value


def notify(*states: str) -> bool:
    """Sends ``states`` (``"READY=1"``, ``"STATUS=..."``) as one datagram to ``$NOTIFY_SOCKET``.

    Returns False, doing nothing, when ``NOTIFY_SOCKET`` is unset (not run by systemd, or run
    with ``NotifyAccess=none``) or when sending fails (logged, never raised); True once sent.
    """
    target = os.environ.get("NOTIFY_SOCKET")
    if not target or not states:
        return False
    message = "\n".join(states).encode()
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:  # not inherited
            sock.connect(_address(target))
            sock.sendall(message)
    except OSError as exc:
        log.warning("cannot notify systemd through %s: %s", target, exc)
        return False
    return True


def _one_line(text: str) -> str:
    # A newline would start another assignment in the message.
    return " ".join(text.splitlines())


def ready(status: str = "") -> bool:
    """``READY=1`` (with ``STATUS=``): the service is up; ``systemctl start`` returns."""
    states = ["READY=1"]
    if status:
        states.append(f"STATUS={_one_line(status)}")
    return notify(*states)


def status(text: str) -> bool:
    """``STATUS=text``: the line ``systemctl status`` shows."""
    return notify(f"STATUS={_one_line(text)}")


def stopping(status: str = "") -> bool:
    """``STOPPING=1`` (with ``STATUS=``): the service is shutting down."""
    states = ["STOPPING=1"]
    if status:
        states.append(f"STATUS={_one_line(status)}")
    return notify(*states)


def watchdog_interval() -> float | None:
    """``WatchdogSec=`` in seconds (from ``$WATCHDOG_USEC``), or None when there is none.

    None too when ``$WATCHDOG_PID`` names another process (the variables were inherited), or
    when a variable is not a positive integer.
    """
    usec = os.environ.get("WATCHDOG_USEC")
    if not usec:
        return None
    pid = os.environ.get("WATCHDOG_PID")
    if pid:
        try:
            if int(pid) != os.getpid():
                return None
        except ValueError:
            return None
    try:
        value = int(usec)
    except ValueError:
        return None
    if value <= 0:
        return None
    return value / 1_000_000


class Heartbeat:
    """Tracks running jobs so that a stuck one can be noticed. Thread-safe."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._lock = threading.Lock()
        self._tokens = itertools.count(1)
        self._started: dict[int, float] = {}

    def begin(self) -> int:
        """A token for a job that starts now; pass it to :meth:`end`."""
        with self._lock:
            token = next(self._tokens)
            self._started[token] = self._clock()
            return token

    def end(self, token: int) -> None:
        """The job of ``token`` has finished (unknown tokens are ignored)."""
        with self._lock:
            self._started.pop(token, None)

    def running(self) -> int:
        """How many jobs are running."""
        with self._lock:
            return len(self._started)

    def oldest(self) -> float:
        """Age in seconds of the oldest running job, 0.0 if none."""
        with self._lock:
            if not self._started:
                return 0.0
            first = min(self._started.values())
            return max(0.0, self._clock() - first)


class Watchdog:
    """Pings WATCHDOG=1 every interval/2 from a daemon thread while healthy() is true.

    When ``healthy()`` returns False (or raises) the pings stop, so that systemd kills and
    restarts the service once ``WatchdogSec=`` has passed; they resume if it turns true again
    before that. ``interval`` defaults to :func:`watchdog_interval`; when there is none
    (not under systemd, or no ``WatchdogSec=``), :meth:`start` does nothing.
    """

    def __init__(self, healthy: Callable[[], bool], interval: float | None = None) -> None:
        self._healthy = healthy
        self._interval = interval
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()

    @property
    def interval(self) -> float | None:
        """The watchdog timeout in seconds the pings are spaced for (None: no watchdog)."""
        return self._interval if self._interval is not None else watchdog_interval()

    def start(self) -> None:
        """Starts pinging (a first ping at once when healthy); idempotent."""
        with self._lock:
            if self._thread is not None:
                return
            interval = self.interval
            if interval is None or interval <= 0:
                log.debug("no systemd watchdog (WATCHDOG_USEC unset)")
                return
            self._stop.clear()
            self._thread = threading.Thread(
                target=self._run, args=(interval / 2,), name="systemd-watchdog", daemon=True
            )
            self._thread.start()

    def stop(self) -> None:
        """Stops pinging and waits for the thread; idempotent."""
        with self._lock:
            thread, self._thread = self._thread, None
        if thread is None:
            return
        self._stop.set()
        if thread is not threading.current_thread():
            thread.join()

    @property
    def active(self) -> bool:
        """Whether the pinging thread runs (it may be withholding pings while unhealthy)."""
        thread = self._thread
        return thread is not None and thread.is_alive()

    def _check(self) -> bool:
        try:
            return bool(self._healthy())
        except Exception:
            log.exception("watchdog health check failed")
            return False

    def _run(self, period: float) -> None:
        withheld = False
        while not self._stop.is_set():
            if self._check():
                if withheld:
                    log.warning("healthy again: resuming systemd watchdog pings")
                    withheld = False
                notify("WATCHDOG=1")
            elif not withheld:
                log.error("unhealthy: withholding systemd watchdog pings (systemd will restart)")
                status("unhealthy: a job is stuck, watchdog pings withheld")
                withheld = True
            self._stop.wait(period)
