"""One pipeline run per legal entity at a time: `data/locks/<legal_entity>.lock`.

The lock is an OS lock (`fcntl.flock`) on the file, so a holder that dies in any way (SIGKILL, OOM
kill, a crashed machine's reboot) releases it with its last file descriptor; nothing has to be
cleaned up by hand. The file also holds a JSON record of the holder (pid, host, process start time,
start, run folder, pipeline run id) for the message a second run gets, and so that the next run can
tell that the previous one died (its record is still there: a finished run empties the file) and
settle what it left behind.

The file is never deleted: deleting it while another process waits on the old inode would let two
processes hold "the" lock at once.
"""

from __future__ import annotations

import fcntl
import json
import os
import socket
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

from workbench import paths


class LockHeld(RuntimeError):
    """Another live process runs the pipeline for this legal entity; the message names it."""


def process_start_time(pid: int) -> str | None:
    """The kernel's start time of `pid` (clock ticks since boot, Linux /proc), to tell a reused pid
    from the original process; None where /proc is not available."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # the command name (field 2) may contain spaces and parentheses: fields after the last ')'
    return stat.rsplit(")", 1)[1].split()[19]


def this_process() -> dict:
    """pid, host and start time of the calling process: the owner recorded in locks and MLflow runs."""
    return {"pid": os.getpid(), "host": socket.gethostname(), "pid_start": process_start_time(os.getpid())}


def owner_alive(owner: dict) -> bool | None:
    """True / False for an owner on this host; None where it cannot be told (another host, no pid)."""
    if owner.get("host") != socket.gethostname() or not str(owner.get("pid", "")).isdigit():
        return None
    pid = int(owner["pid"])
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass  # alive, someone else's
    started = owner.get("pid_start")
    current = process_start_time(pid)
    if started and current and str(started) != current:
        return False  # the pid was reused by another process
    return True


def lock_path(legal_entity: str) -> Path:
    return paths.locks_dir() / f"{paths.check_legal_entity(legal_entity)}.lock"


def describe(record: dict) -> str:
    parts = [f"pid {record.get('pid', '?')} on {record.get('host', '?')}"]
    if record.get("started"):
        parts.append(f"since {record['started']}")
    if record.get("run_dir"):
        parts.append(f"run folder {record['run_dir']}")
    if record.get("pipeline_run_id"):
        parts.append(f"pipeline run {record['pipeline_run_id']}")
    return ", ".join(parts)


@dataclass
class LegalEntityLock:
    """`with LegalEntityLock("USRT", run_dir=...) as lock:` holds the legal entity's lock.

    `lock.stale` is the record a dead holder left (None after a clean finish); `update(...)` adds
    fields to the holder's record (e.g. the pipeline run id once it exists).
    """

    legal_entity: str
    run_dir: str | None = None
    path: Path = field(init=False)
    record: dict = field(init=False, default_factory=dict)
    stale: dict | None = field(init=False, default=None)
    _fd: int | None = field(init=False, default=None, repr=False)

    def __post_init__(self):
        self.path = lock_path(self.legal_entity)

    def acquire(self) -> "LegalEntityLock":
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o666)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = _read(fd)
            os.close(fd)
            raise LockHeld(
                f"legal entity {self.legal_entity} is already being run by {describe(holder) if holder else 'another process'} "
                f"(lock {self.path}); wait for that run to finish, or stop it, and start again"
            ) from None
        previous = _read(fd)
        self.stale = previous or None
        if self.stale is not None:
            self.stale["alive"] = owner_alive(self.stale)
        self._fd = fd
        self.record = {
            **this_process(),
            "legal_entity": self.legal_entity,
            "started": datetime.now(timezone.utc).isoformat(timespec="seconds"),
            "run_dir": self.run_dir,
        }
        self._write()
        return self

    def update(self, **fields) -> None:
        self.record.update(fields)
        self._write()

    def release(self) -> None:
        if self._fd is None:
            return
        try:
            os.ftruncate(self._fd, 0)  # a clean finish leaves no record: the next run finds nothing stale
        finally:
            fcntl.flock(self._fd, fcntl.LOCK_UN)
            os.close(self._fd)
            self._fd = None

    def _write(self) -> None:
        data = (json.dumps(self.record, default=str) + "\n").encode()
        os.ftruncate(self._fd, 0)
        os.pwrite(self._fd, data, 0)
        os.fsync(self._fd)

    def __enter__(self) -> "LegalEntityLock":
        return self.acquire()

    def __exit__(self, *exc) -> None:
        self.release()


def _read(fd: int) -> dict:
    for _ in range(3):
        raw = os.pread(fd, 1 << 16, 0)
        if not raw.strip():
            return {}
        try:
            return json.loads(raw)
        except ValueError:
            time.sleep(0.05)  # the holder is rewriting it
    return {"pid": "?", "host": "?", "unreadable": raw[:200].decode(errors="replace")}
