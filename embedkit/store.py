"""The HDF5 embedding store: one file, a group per dataset split, validated reads and atomic writes.

Schema (version 1), readable with plain h5py:

    /                    attrs schema_version, embedkit_version, created
    /<dataset>/<split>   attrs schema_version, content_id, dataset, split, created, embedkit_version and
                         optional class_names, checkpoint, checkpoint_digest, config (JSON text)
        embeddings (N, D) float32
        labels     (N,)   int64   (-1 when unknown)
        ids        (N,)   int64   (the row in the source split, unique)

Writes are copy-on-write: a writer takes an exclusive lock on `<store>.lock`, builds a new file beside the store
(the other groups copied by HDF5, the new group streamed in chunks), fsyncs it and renames it over the store.
A crash, `kill -9` or Ctrl-C leaves the old file as it was; readers see the old or the new file, never a mix.
"""

from __future__ import annotations

import contextlib
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterator

import numpy as np

from embedkit import atomic
from embedkit.errors import StoreError
from embedkit.store_schema import (
    SCHEMA_VERSION,
    GroupInfo,
    check_finite,
    check_group_name,
    check_root,
    check_unique,
    group_info,
    int_column,
    leaf_groups,
    now,
    open_h5,
    reason,
    validated,
    version,
    write_attrs,
)

__all__ = ["SCHEMA_VERSION", "GroupData", "GroupInfo", "GroupWriter", "Store", "add_npy", "open_store"]

LOCK_TIMEOUT_S = 60.0
_CHUNK_BYTES = 1 << 20  # HDF5 chunks of about 1 MiB
_CHECK_ROWS = 65536  # rows read and checked at a time when validating values


@dataclass(frozen=True)
class GroupData:
    """One group in memory: embeddings (N, D) float32, labels (N,) int64, ids (N,) int64 and its attributes."""

    name: str
    embeddings: np.ndarray
    labels: np.ndarray
    ids: np.ndarray
    attrs: dict[str, Any]

    @property
    def content_id(self) -> str:
        return self.attrs["content_id"]


def open_store(path: Path | str, *, create: bool = False, lock_timeout_s: float = LOCK_TIMEOUT_S) -> "Store":
    """Open the store at `path`, validating the file and the layout of every group (StoreError on any problem).

    With `create=True` a missing file is fine: it is created by the first write, so a failed command leaves nothing.
    """
    path = Path(path)
    store = Store(path, lock_timeout_s)
    if path.is_dir():
        raise StoreError(f"{path}: is a folder, not an HDF5 store")
    if path.exists():
        store.describe()
    elif not create:
        raise StoreError(f"{path}: no such store (write one with `embedkit encode` or `embedkit add`)")
    return store


class Store:
    """An HDF5 embedding store. Every call opens the file afresh, so it always sees the latest complete version."""

    def __init__(self, path: Path, lock_timeout_s: float = LOCK_TIMEOUT_S):
        self.path = Path(path)
        self.lock_timeout_s = lock_timeout_s
        self._snapshot = None

    def __repr__(self) -> str:
        return f"Store({str(self.path)!r})"

    @contextlib.contextmanager
    def _open(self) -> Iterator[Any]:
        """The open h5py.File (None when the store does not exist yet); HDF5 errors become StoreError."""
        if self._snapshot is not None:
            yield self._snapshot
            return
        if not self.path.exists():
            yield None
            return
        h5 = open_h5(self.path)
        try:
            yield h5
        except OSError as exc:
            raise StoreError(f"{self.path}: unreadable HDF5 data ({reason(exc)})") from None
        finally:
            h5.close()

    @contextlib.contextmanager
    def snapshot(self) -> Iterator["Store"]:
        """Read several groups from one version of the file, even if a writer replaces it meanwhile."""
        with self._open() as h5:
            self._snapshot = h5
            try:
                yield self
            finally:
                self._snapshot = None

    def groups(self) -> list[str]:
        """Names of the groups, e.g. ['cifar10/test', 'cifar10/train']."""
        with self._open() as h5:
            return [] if h5 is None else leaf_groups(h5)

    def __contains__(self, group: str) -> bool:
        return group in self.groups()

    def describe(self) -> list[GroupInfo]:
        """Shape and attributes of every group, validating the file and each group's layout."""
        with self._open() as h5:
            if h5 is None:
                return []
            check_root(self.path, h5)
            return [group_info(self.path, h5, name) for name in leaf_groups(h5)]

    def info(self, group: str) -> GroupInfo:
        """Shape and attributes of one group (StoreError if it is missing or malformed)."""
        with self._open() as h5:
            return group_info(self.path, h5, group)

    def content_id(self, group: str) -> str:
        """An id that changes whenever the group is rewritten (indexes and pairs files record it)."""
        return self.info(group).attrs["content_id"]

    def read(self, group: str) -> GroupData:
        """Load one group, checking every value is finite and ids are unique (read and checked in chunks)."""
        with self._open() as h5:
            info = group_info(self.path, h5, group)
            emb = np.empty((info.n, info.dim), np.float32)
            for start, chunk in _checked_chunks(self.path, h5, info):
                emb[start : start + len(chunk)] = chunk
            labels, ids = _read_column(self.path, h5, group, "labels"), _read_column(self.path, h5, group, "ids")
        check_unique(f"{self.path}: group '{group}'", ids)
        return GroupData(group, emb, labels, ids, info.attrs)

    def verify(self, group: str, on_progress: Callable[[int, int], None] | None = None) -> GroupInfo:
        """Check a group's values (finite, unique ids) without keeping it in memory; returns its info."""
        with self._open() as h5:
            info = group_info(self.path, h5, group)
            for start, chunk in _checked_chunks(self.path, h5, info):
                if on_progress is not None:
                    on_progress(start + len(chunk), info.n)
            check_unique(f"{self.path}: group '{group}'", _read_column(self.path, h5, group, "ids"))
        return info

    def write_group(
        self,
        group: str,
        embeddings: np.ndarray,
        labels: np.ndarray | None = None,
        ids: np.ndarray | None = None,
        attrs: dict[str, Any] | None = None,
        *,
        overwrite: bool = False,
    ) -> str:
        """Write a whole group atomically: embeddings (N, D), labels (N,), ids (N,). Returns its content id.

        Everything is validated before the store is touched.
        """
        where = f"{self.path}: group '{group}'"
        emb, labels, ids = validated(where, embeddings, labels, ids, dim=None, first_id=0)
        check_unique(where, ids)
        with self.group_writer(group, emb.shape[1], attrs, overwrite=overwrite, expected_rows=len(emb)) as writer:
            writer.append(emb, labels, ids)
        return writer.content_id

    def group_writer(
        self,
        group: str,
        dim: int,
        attrs: dict[str, Any] | None = None,
        *,
        overwrite: bool = False,
        expected_rows: int | None = None,
    ) -> "GroupWriter":
        """A context manager to stream a group in chunks (`w.append(emb, labels, ids)`); atomic on a clean exit.

        If the block raises (or the process dies), the store is left exactly as it was.
        """
        return GroupWriter(self, group, int(dim), attrs or {}, overwrite, expected_rows)


def _checked_chunks(path: Path, h5, info: GroupInfo) -> Iterator[tuple[int, np.ndarray]]:
    """(first row, rows) of a group's embeddings, _CHECK_ROWS at a time, each checked finite and intact."""
    where = f"{path}: group '{info.name}'"
    dataset = h5[info.name]["embeddings"]
    for start in range(0, info.n, _CHECK_ROWS):
        try:
            chunk = dataset[start : start + _CHECK_ROWS]
        except OSError as exc:
            raise StoreError(f"{where}: damaged embeddings near row {start} ({reason(exc)})") from None
        check_finite(where, chunk, start)
        yield start, chunk


def _read_column(path: Path, h5, group: str, name: str) -> np.ndarray:
    try:
        return h5[group][name][()]
    except OSError as exc:
        raise StoreError(f"{path}: group '{group}': damaged {name} ({reason(exc)})") from None


class GroupWriter:
    """Streams one group into a new copy of the store; the copy replaces the store only on a clean exit."""

    def __init__(self, store: Store, group: str, dim: int, attrs: dict, overwrite: bool, expected_rows: int | None):
        check_group_name(store.path, group)
        if dim < 1:
            raise StoreError(f"{store.path}: group '{group}': dimension must be at least 1, got {dim}")
        self.store, self.group, self.dim = store, group, dim
        self.attrs, self.overwrite, self.expected_rows = attrs, overwrite, expected_rows
        self.rows = 0
        self.content_id = uuid.uuid4().hex
        self._where = f"{store.path}: group '{group}'"
        self._lock_fd: int | None = None
        self._tmp: Path | None = None
        self._h5 = None

    def __enter__(self) -> "GroupWriter":
        path = self.store.path
        path.parent.mkdir(parents=True, exist_ok=True)
        self._lock_fd = atomic.acquire_lock(path, self.store.lock_timeout_s)
        try:
            atomic.remove_crashed_temps(path)
            self._tmp = atomic.temp_path(path)
            self._h5 = _new_copy(self.store, self._tmp, self.group, self.overwrite)
            self._create_datasets()
        except BaseException:
            self._abort()
            raise
        return self

    def _create_datasets(self) -> None:
        rows = max(1, _CHUNK_BYTES // (4 * self.dim))
        if self.expected_rows is not None:
            rows = max(1, min(rows, self.expected_rows))
        g = self._h5.create_group(self.group)
        # fletcher32: a checksum per chunk, so flipped bytes on disk are an error, never silent wrong numbers
        g.create_dataset("embeddings", (0, self.dim), np.float32, maxshape=(None, self.dim), chunks=(rows, self.dim),
                         fletcher32=True)
        for name in ("labels", "ids"):
            g.create_dataset(name, (0,), np.int64, maxshape=(None,), chunks=(max(rows, 1024),), fletcher32=True)

    def append(self, embeddings: np.ndarray, labels: np.ndarray | None = None, ids: np.ndarray | None = None) -> None:
        """Append rows: embeddings (n, D), labels (n,) or None (-1), ids (n,) or None (running row numbers)."""
        if self._h5 is None:
            raise StoreError(f"{self._where}: append outside the `with store.group_writer(...)` block")
        emb, labels, ids = validated(self._where, embeddings, labels, ids, dim=self.dim, first_id=self.rows)
        g, start, stop = self._h5[self.group], self.rows, self.rows + len(emb)
        for name, values in (("embeddings", emb), ("labels", labels), ("ids", ids)):
            g[name].resize(stop, axis=0)
            g[name][start:stop] = values
        self.rows = stop

    def __exit__(self, exc_type, exc, tb) -> bool:
        if exc_type is not None:
            self._abort()
            return False
        try:
            self._commit()
        except BaseException:
            self._abort()
            raise
        finally:
            atomic.release_lock(self._lock_fd)
            self._lock_fd = None
        return False

    def _commit(self) -> None:
        g = self._h5[self.group]
        check_unique(self._where, g["ids"][()])
        dataset, _, split = self.group.rpartition("/")
        defaults = {"dataset": dataset or split, "split": split if dataset else "", "created": now()}
        write_attrs(self._where, g.attrs, {**defaults, **self.attrs})
        g.attrs["embedkit_version"] = version()
        g.attrs["content_id"] = self.content_id
        g.attrs["schema_version"] = SCHEMA_VERSION  # written last: a group without it is incomplete
        self._h5.close()
        self._h5 = None
        atomic.commit(self._tmp, self.store.path)
        self._tmp = None

    def _abort(self) -> None:
        if self._h5 is not None:
            with contextlib.suppress(Exception):
                self._h5.close()
            self._h5 = None
        if self._tmp is not None:
            with contextlib.suppress(OSError):
                self._tmp.unlink()
            self._tmp = None
        atomic.release_lock(self._lock_fd)
        self._lock_fd = None


def _new_copy(store: Store, tmp: Path, group: str, overwrite: bool):
    """A new HDF5 file at `tmp` holding every group of the store except `group`, opened for writing."""
    import h5py

    with store._open() as old:
        existing = [] if old is None else leaf_groups(old)
        if old is not None:
            check_root(store.path, old)
        if group in existing and not overwrite:
            raise StoreError(f"{store.path}: group '{group}' already exists (overwrite it with --overwrite)")
        for other in existing:
            if other != group and (other.startswith(group + "/") or group.startswith(other + "/")):
                raise StoreError(f"{store.path}: group '{group}' would nest with existing group '{other}'")
        new = h5py.File(tmp, "w", locking=False)
        try:
            new.attrs["created"] = old.attrs.get("created", now()) if old is not None else now()
            new.attrs["embedkit_version"] = version()
            new.attrs["schema_version"] = SCHEMA_VERSION
            for other in existing:
                if other != group:
                    parent, _, leaf = other.rpartition("/")
                    old.copy(old[other], new.require_group(parent) if parent else new, name=leaf)
        except BaseException:
            new.close()
            raise
    return new


def add_npy(
    store_path: Path | str,
    group: str,
    embeddings_path: Path | str,
    labels_path: Path | str | None = None,
    ids_path: Path | str | None = None,
    *,
    attrs: dict[str, Any] | None = None,
    overwrite: bool = False,
    on_progress: Callable[[int, int], None] | None = None,
) -> GroupInfo:
    """Add a group from `.npy` files: embeddings (N, D), optional labels (N,) and ids (N,).

    The embeddings are memory-mapped and streamed in chunks, so they may be larger than memory.
    Shapes are checked before the store is touched; a NaN found while streaming abandons the write.
    """
    store = open_store(store_path, create=True)
    emb = _load_npy(embeddings_path, mmap=True)
    where = f"{store.path}: group '{group}'"
    if emb.ndim != 2:
        raise StoreError(f"{embeddings_path}: embeddings must be a 2-D (N, D) array, got shape {emb.shape}")
    labels = None if labels_path is None else _load_npy(labels_path, mmap=False)
    ids = None if ids_path is None else _load_npy(ids_path, mmap=False)
    labels = None if labels is None else int_column(where, "labels", labels, len(emb))
    ids = None if ids is None else int_column(where, "ids", ids, len(emb))
    if ids is not None:
        check_unique(where, ids)
    source = {"source": str(Path(embeddings_path).resolve())}
    with store.group_writer(group, emb.shape[1], {**source, **(attrs or {})}, overwrite=overwrite,
                            expected_rows=len(emb)) as writer:
        for start in range(0, len(emb), _CHECK_ROWS):
            part = np.s_[start : start + _CHECK_ROWS]
            writer.append(emb[part], None if labels is None else labels[part], None if ids is None else ids[part])
            if on_progress is not None:
                on_progress(min(start + _CHECK_ROWS, len(emb)), len(emb))
    return store.info(group)


def _load_npy(path: Path | str, *, mmap: bool) -> np.ndarray:
    try:
        array = np.load(path, mmap_mode="r" if mmap else None, allow_pickle=False)
    except FileNotFoundError:
        raise
    except (ValueError, EOFError, OSError) as exc:
        raise StoreError(f"{path}: not a readable NumPy .npy file ({reason(exc)})") from None
    if not isinstance(array, np.ndarray):
        raise StoreError(f"{path}: an .npz archive, not a single array: save it with np.save as .npy")
    return array
