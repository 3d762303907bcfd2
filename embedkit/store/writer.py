"""Copy-on-write of a store: a writer builds a new file beside the store and renames it over the store.

A writer takes an exclusive lock on `<store>.lock`, copies the other groups into a temp file beside the store
(HDF5 copies their raw chunks, then every chunk of the copy is read back through its checksum, so a damaged
group is refused rather than carried over), streams the new group(s) in chunks, fsyncs and renames the temp file
over the store. A crash, `kill -9`, Ctrl-C or any error leaves the old file exactly as it was. A transaction may
write several groups (train and test of one model): they land together or not at all.

What other tools put in the store (root attributes, datasets, groups, links) is carried over as it is; a store
reached through a symbolic link is rewritten at the link's target, and the new file keeps the old one's mode. The
chunk cache is off while writing, so a full disk is reported by the write that hit it (DiskFullError), not by a
later flush inside HDF5.
"""

from __future__ import annotations

import contextlib
import uuid
from pathlib import Path

import numpy as np

from embedkit._util import atomic
from embedkit._util.signals import DeferredCtrlC
from embedkit.errors import DiskFullError, StoreError
from embedkit.store.reader import check_intact
from embedkit.store.schema import (
    H5_ERRORS,
    SCHEMA_VERSION,
    check_group_name,
    check_root,
    check_unique,
    group_info,
    h5_errors,
    leaf_groups,
    now,
    read_attrs,
    validated,
    version,
    write_attrs,
)

CHUNK_BYTES = 1 << 20  # HDF5 chunks of about 1 MiB
# The HDF5 1.10 file format: the superblock, object headers and chunk indexes carry checksums, so damaged metadata
# is an error, not a misread (or a crash inside HDF5). HDF5 >= 1.10 (h5py >= 2.8) reads it.
LIBVER = ("v110", "latest")


class StoreTransaction:
    """Writes one or more groups into a new copy of the store; they replace the store together on a clean exit.

    The groups are named up front (the copy leaves them out); each is streamed through `new_group`. If the block
    raises, the process dies, or a named group was not written, the store is left exactly as it was.
    """

    def __init__(self, store, groups: list[str], overwrite: bool):
        for group in groups:
            check_group_name(store.path, group)
        if len(set(groups)) != len(groups) or not groups:
            raise StoreError(f"{store.path}: a transaction needs distinct group names, got {list(groups)}")
        self.store, self.groups, self.overwrite = store, tuple(groups), overwrite
        self._writers: dict[str, GroupWriter] = {}
        self._lock_fd: int | None = None
        self._target = store.path
        self._tmp: Path | None = None
        self._h5 = None
        self._ctrl_c = DeferredCtrlC()

    def __enter__(self) -> StoreTransaction:
        self._target = atomic.real_target(self.store.path)  # through a symbolic link: its target is rewritten
        self._target.parent.mkdir(parents=True, exist_ok=True)
        self._lock_fd = atomic.acquire_lock(self._target, self.store.lock_timeout_s)
        try:
            self._ctrl_c.install()
            atomic.remove_crashed_temps(self._target)
            self._tmp = atomic.temp_path(self._target)
            self._h5 = new_copy(self.store, self._tmp, self.groups, self.overwrite)
            self._ctrl_c.check()
        except BaseException:
            self._abort()
            raise
        return self

    def new_group(
        self, group: str, dim: int, attrs: dict | None = None, *, expected_rows: int | None = None
    ) -> GroupWriter:
        """Start writing `group` (one of the transaction's groups); append rows to the returned writer."""
        where = f"{self.store.path}: group '{group}'"
        if self._h5 is None:
            raise StoreError(f"{where}: new_group outside the `with store.transaction(...)` block")
        if group not in self.groups or group in self._writers:
            raise StoreError(f"{where}: not one of this transaction's unwritten groups {list(self.groups)}")
        if dim < 1:
            raise StoreError(f"{where}: dimension must be at least 1, got {dim}")
        writer = GroupWriter(self, group, int(dim), attrs or {}, expected_rows)
        self._writers[group] = writer
        return writer

    def __exit__(self, exc_type, exc, tb) -> bool:
        if exc_type is not None:
            self._abort()
            return False
        try:
            self._ctrl_c.check()  # a Ctrl-C pressed since the last chunk: abandon rather than commit
            missing = [g for g in self.groups if g not in self._writers]
            if missing:
                raise StoreError(f"{self.store.path}: group '{missing[0]}' was never written; the store is unchanged")
            for writer in self._writers.values():
                writer.finish()
            with h5_errors(str(self.store.path), "cannot write"):
                self._h5.close()
            self._h5 = None
            with h5_errors(str(self.store.path), "cannot write"):
                atomic.commit(self._tmp, self._target)
            self._tmp = None
        except BaseException:
            self._abort()
            raise
        finally:
            self._ctrl_c.restore()
            atomic.release_lock(self._lock_fd)
            self._lock_fd = None
        return False

    def _abort(self) -> None:
        if self._h5 is not None:
            with contextlib.suppress(Exception):
                self._h5.close()
            self._h5 = None
        if self._tmp is not None:
            with contextlib.suppress(OSError):
                self._tmp.unlink()
            self._tmp = None
        self._ctrl_c.restore()
        atomic.release_lock(self._lock_fd)
        self._lock_fd = None


class GroupWriter:
    """Streams one group of a transaction in chunks. As a context manager it is a transaction of its own group."""

    def __init__(self, transaction: StoreTransaction, group: str, dim: int, attrs: dict, expected_rows: int | None):
        self.group, self.dim, self.attrs = group, dim, attrs
        self.rows = 0
        self.content_id = uuid.uuid4().hex
        self._transaction = transaction
        self._where = f"{transaction.store.path}: group '{group}'"
        self._owns_transaction = False
        with h5_errors(self._where, "cannot write"):
            self._create_datasets(expected_rows)

    def _create_datasets(self, expected_rows: int | None) -> None:
        rows = max(1, CHUNK_BYTES // (4 * self.dim))
        if expected_rows is not None:
            rows = max(1, min(rows, expected_rows))
        g = self._transaction._h5.create_group(self.group)
        # fletcher32: a checksum per chunk, so flipped bytes on disk are an error, never silent wrong numbers
        g.create_dataset(
            "embeddings", (0, self.dim), np.float32, maxshape=(None, self.dim), chunks=(rows, self.dim), fletcher32=True
        )
        for name in ("labels", "ids"):
            g.create_dataset(name, (0,), np.int64, maxshape=(None,), chunks=(max(rows, 1024),), fletcher32=True)

    def append(self, embeddings: np.ndarray, labels: np.ndarray | None = None, ids: np.ndarray | None = None) -> None:
        """Append rows: embeddings (n, D), labels (n,) or None (-1), ids (n,) or None (running row numbers)."""
        h5 = self._transaction._h5
        if h5 is None:
            raise StoreError(f"{self._where}: append outside the `with store.transaction(...)` block")
        self._transaction._ctrl_c.check()
        emb, labels, ids = validated(self._where, embeddings, labels, ids, dim=self.dim, first_id=self.rows)
        start, stop = self.rows, self.rows + len(emb)
        with h5_errors(self._where, "cannot write"):
            g = h5[self.group]
            for name, values in (("embeddings", emb), ("labels", labels), ("ids", ids)):
                g[name].resize(stop, axis=0)
                g[name][start:stop] = values
        self.rows = stop
        self._transaction._ctrl_c.check()

    def finish(self) -> None:
        """Check the ids and write the attrs; `schema_version` last, as a group without it is incomplete."""
        with h5_errors(self._where, "cannot write"):
            g = self._transaction._h5[self.group]
            check_unique(self._where, g["ids"][()])
            dataset, _, split = self.group.rpartition("/")
            defaults = {"dataset": dataset or split, "split": split if dataset else "", "created": now()}
            write_attrs(self._where, g.attrs, {**defaults, **self.attrs})
            write_attrs(
                self._where, g.attrs, {"embedkit_version": version(), "content_id": self.content_id}, reserved=True
            )
            g.attrs["schema_version"] = SCHEMA_VERSION


class SingleGroupTransaction:
    """`store.group_writer(...)`: a transaction of one group, used as `with ... as writer: writer.append(...)`."""

    def __init__(self, store, group: str, dim: int, attrs: dict, overwrite: bool, expected_rows: int | None):
        self._transaction = StoreTransaction(store, [group], overwrite)
        if dim < 1:
            raise StoreError(f"{store.path}: group '{group}': dimension must be at least 1, got {dim}")
        self._args = (group, dim, attrs, expected_rows)

    def __enter__(self) -> GroupWriter:
        group, dim, attrs, expected_rows = self._args
        self._transaction.__enter__()
        try:
            return self._transaction.new_group(group, dim, attrs, expected_rows=expected_rows)
        except BaseException:
            self._transaction._abort()
            raise

    def __exit__(self, exc_type, exc, tb) -> bool:
        return self._transaction.__exit__(exc_type, exc, tb)


def new_copy(store, tmp: Path, groups: tuple[str, ...], overwrite: bool):
    """A new HDF5 file at `tmp` holding everything the store holds except `groups`, opened for writing.

    Content put there by other tools (root attributes, datasets, groups) is carried over as it is. StoreError (and
    nothing written) if the store or one of the groups to copy is damaged.
    """
    import h5py

    with store._open() as old:
        if old is not None:
            check_root(store.path, old)
        existing = [] if old is None else leaf_groups(store.path, old)
        _check_new_names(store.path, groups, existing, overwrite)
        with h5_errors(store.path):
            created = read_attrs(old.attrs).get("created", now()) if old is not None else now()
        with h5_errors(store.path, f"cannot create the new copy {tmp.name} beside it"):
            new = h5py.File(tmp, "w", locking=False, libver=LIBVER, rdcc_nbytes=0)
        try:
            with h5_errors(store.path, "cannot write the new copy"):
                write_attrs(
                    str(store.path),
                    new.attrs,
                    {"created": created, "embedkit_version": version(), "schema_version": SCHEMA_VERSION},
                    reserved=True,
                )
            if old is not None:
                _copy_tree(store.path, old, new, "", existing, groups, {old["/"].id: "/"})
        except BaseException:
            with contextlib.suppress(*H5_ERRORS):
                new.close()
            raise
    return new


def _check_new_names(path: Path, groups: tuple[str, ...], existing: list[str], overwrite: bool) -> None:
    """StoreError if a group exists (without `overwrite`) or would nest inside, or hold, another group."""
    for group in groups:
        if group in existing and not overwrite:
            raise StoreError(f"{path}: group '{group}' already exists (overwrite it with --overwrite)")
        for other in [*existing, *groups]:
            if other != group and (other.startswith(group + "/") or group.startswith(other + "/")):
                raise StoreError(f"{path}: group '{group}' would nest with group '{other}'")


def _copy_tree(path: Path, old, new, prefix: str, existing: list[str], groups: tuple[str, ...], copied: dict) -> None:
    """Copy the attributes of group `prefix` and its members: embedkit groups checked (`_copy_group`), except the
    `groups` being written; folders above groups walked; any other object (another tool's) copied as it is.

    `copied` maps each old object copied to its new path, so a second hard link to one becomes a link again
    (not a copy: a link to the root would otherwise copy the whole store into itself).
    """
    import h5py

    where = f"{path}: object '{prefix[:-1]}'" if prefix else str(path)
    with h5_errors(where, "damaged, cannot be copied"):
        source, target = (old[prefix], new[prefix]) if prefix else (old, new)
        for key in source.attrs:  # the reserved root attributes are written after this copy
            if not (prefix == "" and key in ("schema_version", "embedkit_version", "created")):
                target.attrs.create(key, source.attrs[key], dtype=source.attrs.get_id(key).dtype)
        keys = list(source)
    for key in keys:
        name = prefix + key
        if name in existing:
            if name not in groups:
                _copy_group(path, old, new, name)
                copied[old[name].id] = name
        elif any(g.startswith(name + "/") for g in (*existing, *groups)):
            with h5_errors(f"{path}: object '{name}'", "damaged, cannot be copied"):
                is_group = isinstance(old[name], h5py.Group)
                if is_group:
                    new.require_group(name)
                    copied[old[name].id] = name
            if not is_group:
                raise StoreError(
                    f"{path}: '{name}' is another tool's dataset, not a folder of groups; writing "
                    f"group '{next(g for g in groups if g.startswith(name + '/'))}' would replace it"
                )
            _copy_tree(path, old, new, name + "/", existing, groups, copied)
        elif name in groups:
            raise StoreError(
                f"{path}: '{name}' holds another tool's data, not an embedkit group; writing group "
                f"'{name}' would replace it (choose another group name)"
            )
        else:
            with h5_errors(f"{path}: object '{name}'", "damaged, cannot be copied"):
                _copy_foreign(old, new, source, target, key, name, copied)


def _copy_foreign(old, new, source, target, key: str, name: str, copied: dict) -> None:
    """Another tool's object, as it is: a soft or external link as a link, a second hard link as a hard link."""
    import h5py

    link = source.get(key, getlink=True)
    if not isinstance(link, h5py.HardLink):
        target[key] = link
    elif old[name].id in copied:
        target[key] = new[copied[old[name].id]]
    else:
        old.copy(old[name], target, name=key)
        copied[old[name].id] = name


def _copy_group(path: Path, old, new, name: str) -> None:
    """Copy group `name` (HDF5 copies its raw chunks), then read the copy back through its checksums.

    HDF5's copy does not decode chunks, so a damaged chunk would be carried over silently: reading every
    chunk of the copy (about as long as `Store.read`) is what catches it, before anything replaces the store.
    """
    where = f"{path}: group '{name}'"
    try:
        group_info(path, old, name)
        with h5_errors(where, "damaged, cannot be copied"):
            parent, _, leaf = name.rpartition("/")
            old.copy(old[name], new.require_group(parent) if parent else new, name=leaf)
        check_intact(where, new, name)
    except DiskFullError:
        raise
    except StoreError as exc:
        raise StoreError(
            f"{exc}; the store is unchanged: rewrite group '{name}' (--overwrite) or write to a new store"
        ) from None
