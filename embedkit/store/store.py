"""The HDF5 embedding store: one file, a group per dataset split, validated reads and atomic writes.

Schema (version 1), readable with plain h5py:

    /                    attrs schema_version, embedkit_version, created
    /<dataset>/<split>   attrs schema_version, content_id, dataset, split, created, embedkit_version and
                         optional class_names, checkpoint, checkpoint_digest, config (JSON text)
        embeddings (N, D) float32
        labels     (N,)   int64   (-1 when unknown)
        ids        (N,)   int64   (the row in the source split, unique)

Datasets are chunked (about 1 MiB) with a fletcher32 checksum per chunk; text attributes are fixed-length UTF-8
(h5py reads them as bytes), kept in the checksummed object headers of the HDF5 1.10 format.

Writes are copy-on-write (`embedkit.store.writer`): a writer takes an exclusive lock on `<store>.lock`, builds a
new file beside the store (the other groups copied and checked against their checksums, the new group streamed in
chunks), fsyncs it and renames it over the store. A crash, `kill -9`, Ctrl-C or a damaged group leaves the old file
as it was; readers see the old or the new file, never a mix. Reads go chunk by chunk through the checksums
(`embedkit.store.reader`); any damage is one StoreError line naming the file and the group.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from embedkit._util.atomic import check_regular_file
from embedkit._util.progress import ProgressFn
from embedkit.errors import StoreError
from embedkit.store.reader import CHECK_ROWS, checked_chunks, gather, read_column, row_positions
from embedkit.store.schema import (
    H5_ERRORS,
    SCHEMA_VERSION,
    GroupInfo,
    check_finite,
    check_root,
    check_unique,
    group_info,
    int_column,
    leaf_groups,
    open_h5,
    reason,
    validated,
)
from embedkit.store.writer import GroupWriter, SingleGroupTransaction, StoreTransaction

__all__ = [
    "SCHEMA_VERSION",
    "GroupData",
    "class_name",
    "class_names_of",
    "GroupInfo",
    "GroupWriter",
    "Store",
    "StoreTransaction",
    "add_npy",
    "open_store",
]

LOCK_TIMEOUT_S = 60.0


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

    @property
    def class_names(self) -> tuple[str, ...]:
        """The group's `class_names` attribute (label i is class_names[i]); () when it has none."""
        return class_names_of(self.attrs)

    def rows_of_ids(self, wanted: Any, where: str = "") -> np.ndarray:
        """Row positions (M,) of the `ids` values `wanted` (M,), in that order (StoreError naming absent ids)."""
        where = where or f"group '{self.name}'"
        try:
            wanted = np.asarray(wanted, dtype=np.int64).reshape(-1)
        except OverflowError:  # an id of 20+ digits: no store id (int64) can match it
            huge = [int(i) for i in np.ravel(np.asarray(wanted, dtype=object)) if not -(2**63) <= int(i) < 2**63]
            raise StoreError(f"id {huge[0]} is outside the int64 range of the ids of {where}") from None
        if wanted.size == 0:
            raise StoreError(f"no ids given for {where}")
        order = np.argsort(self.ids)
        pos = np.clip(np.searchsorted(self.ids[order], wanted), 0, max(len(order) - 1, 0))
        found = self.ids[order[pos]] == wanted if len(order) else np.zeros(len(wanted), bool)
        if not found.all():
            absent = ", ".join(str(i) for i in wanted[~found][:5])
            raise StoreError(f"ids not in {where}: {absent}")
        return order[pos]


def class_names_of(attrs: dict) -> tuple[str, ...]:
    """A group's class names from its attributes (label i is class_names[i]); () when it has none."""
    names = attrs.get("class_names")
    if names is None:
        return ()
    return (names,) if isinstance(names, str) else tuple(str(name) for name in names)


def class_name(attrs: dict, label: int) -> str:
    """The name of class `label` from a group's attributes; the number if unnamed, '?' if unknown (-1)."""
    names = class_names_of(attrs)
    if label < 0:
        return "?"
    return names[label] if label < len(names) else str(label)


def open_store(path: Path | str, *, create: bool = False, lock_timeout_s: float = LOCK_TIMEOUT_S) -> Store:
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
        """The open h5py.File (None when the store does not exist yet).

        Every h5py call on it goes through `h5_errors`, so a damaged file is one StoreError line naming the
        file and the group; errors of the caller's own code (inside `snapshot`) pass through unchanged.
        """
        if self._snapshot is not None:
            yield self._snapshot
            return
        if not self.path.exists():
            yield None
            return
        h5 = open_h5(self.path)
        try:
            yield h5
        finally:
            with contextlib.suppress(*H5_ERRORS):
                h5.close()

    @contextlib.contextmanager
    def snapshot(self) -> Iterator[Store]:
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
            return [] if h5 is None else leaf_groups(self.path, h5)

    def __contains__(self, group: str) -> bool:
        return group in self.groups()

    def describe(self) -> list[GroupInfo]:
        """Shape and attributes of every group, validating the file and each group's layout."""
        with self._open() as h5:
            if h5 is None:
                return []
            check_root(self.path, h5)
            return [group_info(self.path, h5, name) for name in leaf_groups(self.path, h5)]

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
            for _ in checked_chunks(self.path, h5, info, out=emb):
                pass
            labels, ids = read_column(self.path, h5, group, "labels"), read_column(self.path, h5, group, "ids")
        check_unique(f"{self.path}: group '{group}'", ids)
        return GroupData(group, emb, labels, ids, info.attrs)

    def read_rows(self, group: str, rows: Any) -> GroupData:
        """Some rows of a group, in the order given (repeats allowed): embeddings (R, D), labels (R,), ids (R,).

        `rows` (R,) are row positions 0..N-1 (StoreError naming the first one out of range). Only the HDF5 chunks
        holding those rows are read, each checksum-verified, and the rows are checked finite: a few rows of a
        large group cost a few chunks, not the group. Ids are not checked unique (that needs the whole column).
        """
        where = f"{self.path}: group '{group}'"
        with self._open() as h5:
            info = group_info(self.path, h5, group)
            unique, order = np.unique(row_positions(where, rows, info.n), return_inverse=True)
            emb, labels, ids = (gather(where, h5, group, name, unique) for name in ("embeddings", "labels", "ids"))
        check_finite(where, emb, 0, rows=unique)
        return GroupData(group, emb[order], labels[order], ids[order], info.attrs)

    def verify(self, group: str, on_progress: ProgressFn | None = None) -> GroupInfo:
        """Check a group's values (finite, unique ids) without keeping it in memory; returns its info."""
        with self._open() as h5:
            info = group_info(self.path, h5, group)
            for start, chunk in checked_chunks(self.path, h5, info):
                if on_progress is not None:
                    on_progress(start + len(chunk), info.n)
            check_unique(f"{self.path}: group '{group}'", read_column(self.path, h5, group, "ids"))
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
        return self.write_groups([GroupData(group, embeddings, labels, ids, attrs or {})], overwrite=overwrite)[0]

    def write_groups(self, groups: list[GroupData], *, overwrite: bool = False) -> list[str]:
        """Write whole groups in one transaction (labels and ids may be None): all land, or none. Content ids back.

        Everything is validated before the store is touched.
        """
        checked = []
        for data in groups:
            where = f"{self.path}: group '{data.name}'"
            emb, labels, ids = validated(where, data.embeddings, data.labels, data.ids, dim=None, first_id=0)
            check_unique(where, ids)
            checked.append((data.name, emb, labels, ids, data.attrs))
        with self.transaction([name for name, *_ in checked], overwrite=overwrite) as transaction:
            writers = []
            for name, emb, labels, ids, attrs in checked:
                writers.append(transaction.new_group(name, emb.shape[1], attrs, expected_rows=len(emb)))
                writers[-1].append(emb, labels, ids)
        return [writer.content_id for writer in writers]

    def group_writer(
        self,
        group: str,
        dim: int,
        attrs: dict[str, Any] | None = None,
        *,
        overwrite: bool = False,
        expected_rows: int | None = None,
    ) -> SingleGroupTransaction:
        """A context manager to stream a group in chunks (`w.append(emb, labels, ids)`); atomic on a clean exit.

        If the block raises (or the process dies), the store is left exactly as it was.
        """
        return SingleGroupTransaction(self, group, int(dim), attrs or {}, overwrite, expected_rows)

    def transaction(self, groups: list[str], *, overwrite: bool = False) -> StoreTransaction:
        """A context manager writing several groups at once (`t.new_group(...)`): all of them land, or none.

        Used where one command writes related groups (train and test of an encoder), so an interrupted run never
        leaves one without the other and a rerun needs no --overwrite.
        """
        return StoreTransaction(self, list(groups), overwrite)


def add_npy(
    store_path: Path | str,
    group: str,
    embeddings_path: Path | str,
    labels_path: Path | str | None = None,
    ids_path: Path | str | None = None,
    *,
    attrs: dict[str, Any] | None = None,
    overwrite: bool = False,
    on_progress: ProgressFn | None = None,
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
    with store.group_writer(
        group, emb.shape[1], {**source, **(attrs or {})}, overwrite=overwrite, expected_rows=len(emb)
    ) as writer:
        for start in range(0, len(emb), CHECK_ROWS):
            part = np.s_[start : start + CHECK_ROWS]
            writer.append(emb[part], None if labels is None else labels[part], None if ids is None else ids[part])
            if on_progress is not None:
                on_progress(min(start + CHECK_ROWS, len(emb)), len(emb))
    return store.info(group)


def _load_npy(path: Path | str, *, mmap: bool) -> np.ndarray:
    check_regular_file(path, ".npy file")  # a FIFO would block np.load for ever
    try:
        array = np.load(path, mmap_mode="r" if mmap else None, allow_pickle=False)
    except FileNotFoundError:
        raise
    except (ValueError, EOFError, OSError) as exc:
        raise StoreError(f"{path}: not a readable NumPy .npy file ({reason(exc)})") from None
    if not isinstance(array, np.ndarray):
        raise StoreError(f"{path}: an .npz archive, not a single array: save it with np.save as .npy")
    return array
