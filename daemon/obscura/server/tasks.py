"""REST mode's tasks on disk: one folder per upload, bounded in count, bytes and age, and safe
across crashes.

A task folder holds ``task.json`` (written under a temporary name and renamed), the upload in
``in/`` (renamed into place once complete) and the results in ``out/`` (written by the batch
runner, which stages its files and renames them too). Results are served only from a task whose
status is ``done``; ``done`` is written only after every result file is in place. After a
restart, a task that was queued or processing is ``failed`` with a reason and its partial
results are removed: a half-written result is never served.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import re
import shutil
import time
import uuid
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from obscura.errors import InvalidInput, ObscuraError

log = logging.getLogger(__name__)

QUEUED, PROCESSING, DONE, FAILED = "queued", "processing", "done", "failed"
STATUSES = (QUEUED, PROCESSING, DONE, FAILED)
FINISHED = (DONE, FAILED)
TASK_FILE = "task.json"
_ID = re.compile(r"^[0-9a-f]{32}$")
RESTART_REASON = "the daemon stopped before this task finished; upload the file again"


class StoreFull(ObscuraError):
    """The task store is at its count or size limit (HTTP 429)."""


class NotFound(ObscuraError):
    """No such task, or no such result of a task (HTTP 404)."""


class Conflict(ObscuraError):
    """The task is not in a state that allows this (HTTP 409)."""


def default_tasks_dir() -> Path:
    """``$STATE_DIRECTORY/tasks`` under systemd (``StateDirectory=``), else the user's state
    folder (``$XDG_STATE_HOME/obscura/tasks``, ``~/.local/state/obscura/tasks``)."""
    state = os.environ.get("STATE_DIRECTORY")
    if state:
        return Path(state.split(":")[0]) / "tasks"
    base = os.environ.get("XDG_STATE_HOME") or str(Path.home() / ".local" / "state")
    return Path(base) / "obscura" / "tasks"


@dataclass
class Task:
    """One upload and what became of it; ``params`` are the upload's query parameters, parsed
    again when the task runs (one parser for both moments)."""

    id: str
    name: str
    type: str  # image | video
    status: str
    created: float
    updated: float
    params: dict[str, str] = field(default_factory=dict)
    webhook: str = ""
    error: str = ""
    error_status: int = 0  # the HTTP status a failure maps to
    frames: int = 0
    detections: dict[str, int] = field(default_factory=dict)
    webhook_result: dict[str, Any] = field(default_factory=dict)

    def public(self) -> dict[str, Any]:
        """The task as the API shows it."""
        out: dict[str, Any] = {
            "id": self.id,
            "status": self.status,
            "name": self.name,
            "type": self.type,
            "created": round(self.created, 3),
            "updated": round(self.updated, 3),
            "detections": dict(self.detections),
        }
        if self.type == "video":
            out["frames"] = self.frames
        if self.error:
            out["error"] = self.error
        if self.webhook:
            out["webhook"] = {"url": self.webhook, **self.webhook_result}
        return out


def _write_atomic(path: Path, data: bytes) -> None:
    part = path.with_name(f".{path.name}.part")
    with part.open("wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    part.replace(path)


def _size(path: Path) -> int:
    total = 0
    for dirpath, _, filenames in os.walk(path):
        for name in filenames:
            with contextlib.suppress(OSError):
                total += (Path(dirpath) / name).stat().st_size
    return total


class TaskStore:
    """The tasks folder. Called from the event loop only (the batch runner writes into a
    task's ``out/`` from a thread, but the store's index changes on the loop)."""

    def __init__(self, root: Path, *, max_tasks: int, max_bytes: int, ttl: float):
        self.root = root
        self.max_tasks = max_tasks
        self.max_bytes = max_bytes
        self.ttl = ttl
        self.tasks: dict[str, Task] = {}

    # --- places ----------------------------------------------------------------------------
    def folder(self, task: Task) -> Path:
        return self.root / task.id

    def input_path(self, task: Task) -> Path:
        return self.folder(task) / "in" / task.name

    def out_dir(self, task: Task) -> Path:
        return self.folder(task) / "out"

    # --- life ------------------------------------------------------------------------------
    def recover(self) -> list[Task]:
        """Loads the tasks of an earlier run: unfinished ones become ``failed``, folders
        without a readable ``task.json`` (an upload cut short) are removed."""
        self.root.mkdir(parents=True, exist_ok=True)
        failed = []
        for path in sorted(self.root.iterdir()):
            if not path.is_dir() or not _ID.match(path.name):
                continue
            try:
                data = json.loads((path / TASK_FILE).read_text())
                task = Task(**data)
                if task.id != path.name or task.status not in STATUSES:
                    raise ValueError(task.id)
            except (OSError, ValueError, TypeError) as exc:
                log.warning("removing task folder %s: no readable task (%s)", path, exc)
                shutil.rmtree(path, ignore_errors=True)
                continue
            if task.status not in FINISHED:
                shutil.rmtree(self.out_dir(task), ignore_errors=True)
                task.status, task.error, task.error_status = FAILED, RESTART_REASON, 503
                task.updated = time.time()
                self.save(task)
                failed.append(task)
            self.tasks[task.id] = task
        return failed

    def usage(self) -> tuple[int, int]:
        """Tasks kept and the bytes their folders take."""
        return len(self.tasks), _size(self.root) if self.root.exists() else 0

    def check_room(self, incoming: int = 0) -> None:
        """Raises :class:`StoreFull` when one more task of ``incoming`` bytes does not fit."""
        self.sweep()
        count, used = self.usage()
        if count >= self.max_tasks:
            raise StoreFull(
                f"the daemon keeps at most {self.max_tasks} tasks; delete finished tasks "
                "(DELETE /v1/task/{id}) or wait until they expire"
            )
        if used + incoming > self.max_bytes:
            raise StoreFull(
                f"task storage is full ({used} of {self.max_bytes} bytes used); delete finished "
                "tasks or wait until they expire"
            )

    def create(self, name: str, kind: str, params: dict[str, str], webhook: str) -> Task:
        now = time.time()
        task = Task(
            id=uuid.uuid4().hex,
            name=name,
            type=kind,
            status=QUEUED,
            created=now,
            updated=now,
            params=params,
            webhook=webhook,
        )
        self.input_path(task).parent.mkdir(parents=True)
        return task

    def save(self, task: Task) -> None:
        task.updated = time.time()
        _write_atomic(self.folder(task) / TASK_FILE, json.dumps(asdict(task)).encode())

    def add(self, task: Task) -> None:
        """The upload is complete: the task exists from now on."""
        self.save(task)
        self.tasks[task.id] = task

    def get(self, task_id: str) -> Task:
        task = self.tasks.get(task_id) if _ID.match(task_id) else None
        if task is None:
            raise NotFound(f"no task {task_id!r} (unknown, deleted or expired)")
        return task

    def finished(self, task_id: str) -> Task:
        """A task whose results may be served."""
        task = self.get(task_id)
        if task.status != DONE:
            raise Conflict(f"task {task_id} is {task.status}; results exist once it is done")
        return task

    def remove(self, task: Task) -> None:
        self.tasks.pop(task.id, None)
        shutil.rmtree(self.folder(task), ignore_errors=True)

    def discard(self, path: Path) -> None:
        """A folder of an upload that never became a task."""
        shutil.rmtree(path, ignore_errors=True)

    def expired(self, now: float | None = None) -> Iterator[Task]:
        now = time.time() if now is None else now
        for task in list(self.tasks.values()):
            if task.status in FINISHED and now - task.updated > self.ttl:
                yield task

    def sweep(self, now: float | None = None) -> int:
        """Removes finished tasks older than the time to live; returns how many."""
        gone = 0
        for task in self.expired(now):
            self.remove(task)
            gone += 1
        return gone


def safe_name(name: str, suffix: str) -> str:
    """A plain file name for an upload: the last path part, no control characters, and the
    ``suffix`` its type gives when it has none of its own."""
    base = re.split(r"[\\/]", name)[-1]
    base = "".join(c for c in base if c.isprintable()).strip()
    if base in ("", ".", ".."):
        base = "upload"
    if base.startswith("."):
        base = "upload" + base
    if not Path(base).suffix and suffix:
        base += suffix
    if len(base.encode()) > 200:
        raise InvalidInput(f"name: at most 200 bytes, got {len(base.encode())}")
    return base
