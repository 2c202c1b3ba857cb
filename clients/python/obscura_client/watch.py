"""``obscura watch``: a watch folder (Celantur's "stream mode").

Every image or video that appears under IN_DIR is anonymized into OUT_DIR (the same tree) once
it is complete (its size and modification time have not changed for ``settle`` seconds), then
moved to IN_DIR/.processed/ (or deleted, with ``--done delete``). A file the pipeline refuses
(not an image, corrupt) goes to IN_DIR/.failed/ with a note of why; a file that fails for a
passing reason (the daemon unreachable) stays and is tried again.

Crash-safe without a journal: outputs are written under temporary names and renamed, and the
input is moved only after all of its outputs are in place. After a crash or restart, a file that
was being processed is still in IN_DIR and is processed again, writing the same output names:
nothing is lost and nothing is duplicated. Stale temporary files are removed at start.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

from obscura_client.batch import BatchRunner, InputFile, Summary, media_kind
from obscura_client.errors import InvalidInput

log = logging.getLogger(__name__)

PROCESSED = ".processed"
FAILED = ".failed"


@dataclass
class _Seen:
    size: int
    mtime_ns: int
    since: float


@dataclass
class Watcher:
    runner: BatchRunner
    in_dir: Path
    done: str = "move"  # move or delete
    settle: float = 2.0  # seconds a file must stay unchanged to count as complete
    poll: float = 1.0
    retry_after: float = 10.0  # seconds before a file that failed for a passing reason
    summary: Summary = field(default_factory=Summary)
    _seen: dict[Path, _Seen] = field(default_factory=dict)
    _retry: dict[Path, float] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.done not in ("move", "delete"):
            raise InvalidInput(f"--done must be move or delete, got {self.done!r}")
        if not self.in_dir.is_dir():
            raise InvalidInput(f"{self.in_dir}: not a folder")
        out = self.runner.output_dir.resolve()
        if out == self.in_dir.resolve() or out.is_relative_to(self.in_dir.resolve()):
            raise InvalidInput("the output folder must not be the watched folder or inside it")
        self.cleanup()

    def cleanup(self) -> None:
        """Removes temporary outputs left by a run that was killed."""
        for root, _dirs, files in os.walk(self.runner.output_dir):
            for name in files:
                if name.startswith(".") and ".part" in name:
                    (Path(root) / name).unlink(missing_ok=True)
                    log.info("removed a stale temporary file %s", Path(root) / name)

    def complete_files(self, now: float | None = None) -> list[InputFile]:
        """Files whose size and mtime have been stable for ``settle`` seconds, sorted."""
        now = time.monotonic() if now is None else now
        ready: list[InputFile] = []
        present: set[Path] = set()
        for root, dirs, files in os.walk(self.in_dir):
            dirs[:] = sorted(d for d in dirs if not d.startswith("."))
            for name in sorted(files):
                path = Path(root) / name
                kind = media_kind(path)
                if name.startswith(".") or kind is None:
                    continue
                try:
                    st = path.stat()
                except FileNotFoundError:
                    continue
                present.add(path)
                seen = self._seen.get(path)
                if seen is None or (seen.size, seen.mtime_ns) != (st.st_size, st.st_mtime_ns):
                    self._seen[path] = _Seen(st.st_size, st.st_mtime_ns, now)
                    continue
                if now - seen.since < self.settle or st.st_size == 0:
                    continue
                if self._retry.get(path, 0.0) > now:
                    continue
                rel = PurePosixPath(path.relative_to(self.in_dir).as_posix())
                ready.append(InputFile(path, rel, kind))
        for gone in set(self._seen) - present:
            del self._seen[gone]
        return ready

    def _move(self, item: InputFile, folder: str, note: str | None = None) -> None:
        target = self.in_dir / folder / item.rel
        target.parent.mkdir(parents=True, exist_ok=True)
        os.replace(item.path, target)
        if note is not None:
            (target.parent / f"{target.name}.error.txt").write_text(note + "\n")

    def run_once(self) -> int:
        """Processes every complete file; returns how many were handled (either way)."""
        handled = 0
        for item in self.complete_files():
            ok = self.runner.process(item, self.summary)
            self._seen.pop(item.path, None)
            if ok:
                if self.done == "delete":
                    item.path.unlink(missing_ok=True)
                else:
                    self._move(item, PROCESSED)
                log.info("anonymized %s", item.rel)
                handled += 1
            elif isinstance(self.runner.last_error, InvalidInput):
                self._move(item, FAILED, str(self.runner.last_error))
                handled += 1
            else:  # the daemon away, the disk full...: try again later
                self._retry[item.path] = time.monotonic() + self.retry_after
        return handled

    def run(self, stop: threading.Event) -> None:
        while not stop.is_set():
            self.run_once()
            stop.wait(self.poll)
