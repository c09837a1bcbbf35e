"""Stage outputs that appear atomically: a file is whole or absent, a folder's files appear together.

A process killed mid-write (cron's nightly run, a data scientist's Ctrl-C, an OOM kill) must never
leave a 0-byte parquet file beside the previous run's outputs. Files are written under a unique
temporary name in the same folder and renamed over the final name (rename is atomic on POSIX).
A folder of outputs is written into a fresh versioned folder and published by atomically swapping a
symlink, so readers that open `<final>/x.parquet` see either the old set or the new set, never a mix.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import Callable, Iterator

# Published versions kept besides the live one: a reader that resolved the link just before a swap
# can still finish reading the version it started on.
KEEP_PREVIOUS_VERSIONS = 1


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def _fsync_dir(folder: Path) -> None:
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def atomic_write(path: str | os.PathLike, write: Callable[[Path], None]) -> Path:
    """Call `write(tmp_path)` and rename the result over `path`; on any failure nothing changes."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.{os.getpid()}-", suffix=".tmp", dir=path.parent)
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp's 0600 would make outputs private to the writer
        write(tmp)
        with open(tmp, "rb+") as handle:
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    _fsync_dir(path.parent)
    for left in path.parent.glob(f".{path.name}.*-*.tmp"):  # temporaries of writers that were killed
        pid = left.name[len(f".{path.name}.") :].split("-", 1)[0]
        if pid.isdigit() and not _pid_alive(int(pid)):
            left.unlink(missing_ok=True)
    return path


def atomic_write_text(path: str | os.PathLike, text: str) -> Path:
    return atomic_write(path, lambda tmp: tmp.write_text(text))


def atomic_write_json(path: str | os.PathLike, obj) -> Path:
    return atomic_write_text(path, json.dumps(obj, indent=2, default=str) + "\n")


def atomic_write_parquet(frame, path: str | os.PathLike) -> Path:
    """A polars or pandas frame to parquet, atomically."""
    if hasattr(frame, "write_parquet"):
        return atomic_write(path, frame.write_parquet)
    return atomic_write(path, lambda tmp: frame.to_parquet(tmp))


def _versions(final: Path) -> list[Path]:
    return sorted(final.parent.glob(f".{final.name}.v-*"), key=lambda p: p.stat().st_mtime_ns)


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass
    return True


def _abandoned(final: Path) -> list[Path]:
    """Staging folders and half-made links of writers that died (their pid is in the name)."""
    found = []
    for kind in ("staging", "link"):
        for path in final.parent.glob(f".{final.name}.{kind}-*"):
            pid = path.name[len(f".{final.name}.{kind}-") :].split("-", 1)[0]
            if pid.isdigit() and not _pid_alive(int(pid)):
                found.append(path)
    return found


@contextmanager
def publish_directory(final: str | os.PathLike) -> Iterator[Path]:
    """Yield an empty staging folder; when the block succeeds, it becomes `final` in one atomic step.

    `final` is a symlink to the live version (`.<name>.v-<random>` beside it). A block that raises,
    or a process that dies inside it, leaves `final` exactly as it was; the staging folder of a
    writer that died (`.<name>.staging-<pid>-...`) is removed by the next publication. Another
    writer's staging folder is never touched while its process lives.
    """
    final = Path(final)
    final.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{final.name}.staging-{os.getpid()}-", dir=final.parent))
    os.chmod(staging, 0o777 & ~_umask())
    try:
        yield staging
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    for written in staging.rglob("*"):
        if written.is_file():
            with open(written, "rb") as handle:
                os.fsync(handle.fileno())
    version = Path(tempfile.mkdtemp(prefix=f".{final.name}.v-", dir=final.parent))
    os.rename(staging, version)  # onto the empty placeholder: atomic, and the name is unique
    _swap(final, version)


def _swap(final: Path, version: Path) -> None:
    if final.exists() and not final.is_symlink():
        # a folder from before outputs were versioned: it becomes a version like any other
        legacy = Path(tempfile.mkdtemp(prefix=f".{final.name}.v-", dir=final.parent))
        legacy.rmdir()
        os.replace(final, legacy)
    link = final.parent / f".{final.name}.link-{os.getpid()}-{version.name[-8:]}"
    link.unlink(missing_ok=True)
    os.symlink(version.name, link)
    os.replace(link, final)
    _fsync_dir(final.parent)
    # what the link shows now (another writer may have swapped since) and what this writer published
    live = {final.resolve(), version.resolve()}
    stale = [v for v in _versions(final) if v.resolve() not in live]
    for old in stale[: max(len(stale) - KEEP_PREVIOUS_VERSIONS, 0)] + _abandoned(final):
        if old.is_symlink() or old.is_file():
            old.unlink(missing_ok=True)
        else:
            shutil.rmtree(old, ignore_errors=True)
