"""Crash-safe file writing: a writer lock, temp files beside the target, fsync and atomic rename.

A file written through `atomic_path` either keeps its old content or has the complete new one, even under
`kill -9` or a power cut; a reader holding the old file open keeps reading the old version. A write through a
symbolic link replaces the link's target (the link stays a link), and the new file keeps the old one's mode and owner.
Outputs are checked first (`check_output`): never an input, never over a file of another kind.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
import stat
import time
import uuid
from collections.abc import Iterable, Iterator
from pathlib import Path

from embedkit.errors import ConfigError, DiskFullError, StoreError

NO_SPACE_ERRNOS = (errno.ENOSPC, errno.EDQUOT, errno.EFBIG)  # disk full, quota full, file size limit
FULL_BELOW_BYTES = 1 << 20  # a file system with less free space than this is full, for a writer that failed


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


def real_target(path: Path) -> Path:
    """The file a write to `path` replaces: the target of a symbolic link (so the link stays a link), else `path`."""
    path = Path(path)
    return Path(os.path.realpath(path)) if path.is_symlink() else path


def commit(tmp: Path, path: Path) -> None:
    """Give `tmp` the mode and owner of the file it replaces, fsync it, rename it over `path`, fsync the folder:
    the new content is durable and complete, and a 0600 file stays 0600."""
    with contextlib.suppress(FileNotFoundError):
        old = os.stat(path)
        os.chmod(tmp, stat.S_IMODE(old.st_mode))
        with contextlib.suppress(PermissionError):  # only root may give a file away
            os.chown(tmp, old.st_uid, old.st_gid)
    fsync_path(tmp)
    os.replace(tmp, path)
    fsync_path(path.parent)


@contextlib.contextmanager
def atomic_path(path: Path) -> Iterator[Path]:
    """Yield a temp path to write; on a clean exit it replaces `path` (a link's target), on an error it is deleted.

    Running out of space is one DiskFullError naming `path`, with nothing left behind, whatever the writing library
    raised (OSError from Python and NumPy; from torch or FAISS, whatever error, when the file system is full).
    """
    path = Path(path)
    target = real_target(path)
    remove_crashed_temps(target, locked=False)
    tmp = temp_path(target)
    try:
        yield tmp
        commit(tmp, target)
    except Exception as exc:
        if no_space(exc) or folder_full(target.parent):
            raise no_space_error(path) from None
        raise
    finally:
        with contextlib.suppress(OSError):
            tmp.unlink()


def no_space(exc: BaseException) -> bool:
    """Whether `exc` says the disk, the quota or the file size limit is full (HDF5 has the errno only in its text)."""
    if isinstance(exc, OSError) and exc.errno in NO_SPACE_ERRNOS:
        return True
    text = str(exc)
    return any(f"errno = {number}," in text for number in NO_SPACE_ERRNOS) or "No space left" in text


def folder_full(folder: Path) -> bool:
    """Whether `folder`'s file system has (almost) no space left: how a write error that hides its errno (torch's
    "unexpected pos") is recognised as a full disk, checked while the failed temp file still holds its space."""
    with contextlib.suppress(OSError):
        fs = os.statvfs(folder)
        return fs.f_bavail * fs.f_frsize < FULL_BELOW_BYTES
    return False


def no_space_error(path: Path | str) -> DiskFullError:
    """The one line for a write to `path` that ran out of space (the temp file is removed by the caller)."""
    return DiskFullError(
        f"{path}: no space left on the device (or over the file size limit); the file is unchanged "
        "and nothing half-written was kept"
    )


# ---------------------------------------------------------------- inputs and outputs

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
ZIP_MAGIC = b"PK\x03\x04"


def check_regular_file(path: Path | str, what: str = "input") -> None:
    """ConfigError unless an existing `path` is a regular file: a FIFO or a device would block or never end."""
    with contextlib.suppress(FileNotFoundError):
        mode = os.stat(path).st_mode
        if stat.S_ISDIR(mode):
            raise ConfigError(f"{path}: is a folder, not a file ({what})")
        if not stat.S_ISREG(mode):
            raise ConfigError(f"{path}: is a pipe, socket or device, not a regular file (the {what} must be a file)")


def same_file(a: Path | str, b: Path | str) -> bool:
    """Whether `a` and `b` are one file: the same inode (hard links), or paths resolving to the same place."""
    with contextlib.suppress(OSError):
        return os.path.samefile(a, b)
    return os.path.realpath(a) == os.path.realpath(b)


def check_output(path: Path | str, kind: str, inputs: Iterable[Path | str] = ()) -> None:
    """ConfigError unless `path` may be written as a `kind` file ('png', 'json', 'html', 'npz', 'hdf5 results').

    The output must not be one of `inputs` (same inode, or a path or link resolving to it), and an existing file
    there must be a regular file of the same kind: results never replace a store, a figure never replaces data.
    """
    for source in inputs:
        if source is not None and same_file(path, source):
            raise ConfigError(f"{path}: is also an input of this command ({source}); choose another output file")
    if not os.path.exists(path):
        return
    check_regular_file(path, "output")
    if os.stat(path).st_size and not _is_kind(Path(path), kind):
        raise ConfigError(
            f"{path}: exists and is not a {kind} file; not overwriting it (choose another output file or remove it)"
        )


def _is_kind(path: Path, kind: str) -> bool:
    with open(path, "rb") as handle:
        head = handle.read(8)
    if kind == "png":
        return head == PNG_MAGIC
    if kind == "npz":
        return head.startswith(ZIP_MAGIC)
    if kind == "json":
        return head.lstrip()[:1] in (b"{", b"[")
    if kind == "html":
        return head.lstrip()[:2].lower() in (b"<!", b"<h")
    if kind == "hdf5 results":
        return _is_results_h5(path)
    raise ValueError(f"unknown output kind {kind!r}")


def _is_results_h5(path: Path) -> bool:
    """An HDF5 file holding only datasets at its root (a results or pairs file), not a store's groups."""
    import h5py

    try:
        if not h5py.is_hdf5(path):
            return False
        with h5py.File(path, "r", locking=False) as h5:
            return all(
                isinstance(h5.get(name, getlink=True), h5py.HardLink) and isinstance(h5[name], h5py.Dataset)
                for name in h5
            )
    except (OSError, RuntimeError, KeyError, ValueError):
        return False


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
