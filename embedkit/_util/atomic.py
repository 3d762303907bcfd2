"""Crash-safe file writing: a writer lock, temp files beside the target, fsync and atomic rename.

A file written through `atomic_path` either keeps its old content or has the complete new one, even under
`kill -9` or a power cut; a reader holding the old file open keeps reading the old version.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import time
import uuid
from pathlib import Path
from typing import Iterator

from embedkit.errors import StoreError


def temp_path(path: Path) -> Path:
    """A fresh hidden temp name beside `path` (same folder, so the final rename is atomic)."""
    return path.with_name(f".{path.name}.tmp-{os.getpid()}-{uuid.uuid4().hex[:8]}")


def remove_crashed_temps(path: Path, *, locked: bool = True) -> None:
    """Delete temp files left beside `path` by writers that died.

    Holding `path`'s writer lock (`locked`), every temp file is a dead writer's; without the lock, only those
    whose process (the pid in the name) no longer exists are removed.
    """
    for tmp in path.parent.glob(f".{path.name}.tmp-*"):
        if locked or not _process_alive(tmp.name.rsplit(".tmp-", 1)[1].split("-")[0]):
            with contextlib.suppress(OSError):
                tmp.unlink()


def _process_alive(pid_text: str) -> bool:
    try:
        os.kill(int(pid_text), 0)
    except (ValueError, ProcessLookupError):
        return False
    except PermissionError:  # exists, owned by someone else
        return True
    return True


def fsync_path(path: Path) -> None:
    """Flush a file (or a folder's entries) to disk."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def commit(tmp: Path, path: Path) -> None:
    """fsync `tmp`, rename it over `path`, fsync the folder: the new content is durable and complete."""
    fsync_path(tmp)
    os.replace(tmp, path)
    fsync_path(path.parent)


@contextlib.contextmanager
def atomic_path(path: Path) -> Iterator[Path]:
    """Yield a temp path to write; on a clean exit it replaces `path`, on an error it is deleted."""
    path = Path(path)
    remove_crashed_temps(path, locked=False)
    tmp = temp_path(path)
    try:
        yield tmp
        commit(tmp, path)
    finally:
        with contextlib.suppress(OSError):
            tmp.unlink()


def acquire_lock(path: Path, timeout_s: float) -> int:
    """Exclusive lock on `<path>.lock`: one writer at a time; the next waits up to `timeout_s`, then fails.

    Returns the lock's file descriptor, for `release_lock`. The lock dies with the process (flock), so a
    killed writer never leaves the store locked.
    """
    lock_path = path.with_name(path.name + ".lock")
    fd = os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o644)
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return fd
        except BlockingIOError:
            if time.monotonic() >= deadline:
                os.close(fd)
                raise StoreError(
                    f"{path}: another process is writing this file (lock {lock_path.name} held for over "
                    f"{timeout_s:g} s); try again when it has finished"
                ) from None
            time.sleep(0.05)


def release_lock(fd: int | None) -> None:
    if fd is not None:
        fcntl.flock(fd, fcntl.LOCK_UN)
        os.close(fd)
