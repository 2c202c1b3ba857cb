"""Running the real daemon (`obscura serve`) as a subprocess in tests."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from obscura_client.client import RemoteError, wait_serving


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'
    if isinstance(value, list | tuple):
        return "[" + ", ".join(toml_value(v) for v in value) + "]"
    return str(value)


@dataclass
class DaemonProcess:
    folder: Path
    server: dict[str, Any]
    env: dict[str, str] = field(default_factory=dict)
    proc: subprocess.Popen[str] | None = None
    statuses: list[str] = field(default_factory=list)
    verbose: int = 1  # 2: the debug log, with the options each call runs with
    detector: dict[str, Any] = field(default_factory=dict)  # the [detector] section

    @property
    def socket(self) -> str:
        return f"unix://{self.folder / 'obscura.sock'}"

    def start(self, wait: bool = True, timeout: float = 120.0) -> DaemonProcess:
        config = self.folder / "obscura.toml"
        lines = ["[server]"] + [f"{k} = {toml_value(v)}" for k, v in self.server.items()]
        if self.detector:
            lines += ["[detector]"] + [f"{k} = {toml_value(v)}" for k, v in self.detector.items()]
        config.write_text("\n".join(lines) + "\n")
        self.log = (self.folder / "daemon.log").open("w")
        self.proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "obscura.cli",
                "-" + "v" * self.verbose,
                "serve",
                "--config",
                str(config),
            ],
            stdout=self.log,
            stderr=subprocess.STDOUT,
            text=True,
            env={**os.environ, **self.env},
        )
        if wait:
            self.wait_serving(timeout)
        return self

    def wait_serving(self, timeout: float = 120.0) -> None:
        """Polls health over the Unix socket, recording each status seen, until SERVING."""
        assert self.proc is not None
        proc = self.proc
        try:
            self.statuses += wait_serving(self.socket, timeout, lambda: proc.poll() is None)
        except (RemoteError, TimeoutError) as exc:
            raise RuntimeError(f"{exc}; daemon log: {self.output()}") from None

    def output(self) -> str:
        return (self.folder / "daemon.log").read_text()

    def terminate(self, timeout: float = 60.0) -> int:
        assert self.proc is not None
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            raise RuntimeError(
                f"the daemon did not stop within {timeout:g} s of SIGTERM; its log ends: "
                + self.output()[-4000:]
            ) from None
        finally:
            self.log.close()

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()


def plain_daemon(folder: Path) -> DaemonProcess:
    """A daemon on a Unix socket in ``folder``, defaults otherwise, no metrics port; started."""
    return DaemonProcess(
        folder, {"listen": [f"unix://{folder / 'obscura.sock'}"], "metrics_listen": ""}
    ).start()


def tcp_daemon(folder: Path, **server: object) -> tuple[DaemonProcess, str, int]:
    """A daemon (not started) on a Unix socket in ``folder`` and a TCP port, one worker, no
    warm-up, metrics on a port of its own: (daemon, TCP address, metrics port)."""
    folder.mkdir(parents=True, exist_ok=True)
    port, metrics_port = free_port(), free_port()
    d = DaemonProcess(
        folder,
        {
            "listen": [f"unix://{folder / 'obscura.sock'}", f"127.0.0.1:{port}"],
            "metrics_listen": f"127.0.0.1:{metrics_port}",
            "workers": 1,
            "warmup": False,
            **server,
        },
    )
    return d, f"127.0.0.1:{port}", metrics_port


def wait_for(condition: Callable[[], bool], timeout: float = 120.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise TimeoutError("condition not met")
        time.sleep(0.05)
