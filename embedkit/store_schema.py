"""The store's schema: layout checks, value checks and attribute conversion, shared by reads and writes.

Every check raises StoreError with one line naming the file, the group and the problem.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from embedkit.errors import StoreError

SCHEMA_VERSION = 1
RESERVED_ATTRS = ("schema_version", "content_id", "embedkit_version")


@dataclass(frozen=True)
class GroupInfo:
    """A group's shape and attributes, read without loading its arrays."""

    name: str
    n: int
    dim: int
    attrs: dict[str, Any]


def open_h5(path: Path):
    import h5py

    if not os.access(path, os.R_OK):
        raise StoreError(f"{path}: permission denied (cannot read the store)")
    if path.stat().st_size == 0:
        raise StoreError(f"{path}: empty file (0 bytes), not an HDF5 store")
    if not h5py.is_hdf5(path):
        raise StoreError(f"{path}: not an HDF5 file")
    try:
        return h5py.File(path, "r", locking=False)
    except OSError as exc:
        raise StoreError(f"{path}: truncated or corrupt HDF5 file ({reason(exc)})") from None


def reason(exc: BaseException) -> str:
    return str(exc).splitlines()[0] if str(exc) else type(exc).__name__


def leaf_groups(h5) -> list[str]:
    """Groups holding embeddings (or claiming to, through a schema_version attribute)."""
    import h5py

    names: list[str] = []

    def visit(name: str, obj) -> None:
        if isinstance(obj, h5py.Group) and ("embeddings" in obj or "schema_version" in obj.attrs):
            names.append(name)

    h5.visititems(visit)
    return sorted(names)


def check_root(path: Path, h5) -> None:
    version = h5.attrs.get("schema_version")
    if version is None:
        raise StoreError(f"{path}: not an embedkit store (no schema_version attribute on the file)")
    if int(version) > SCHEMA_VERSION:
        raise StoreError(f"{path}: schema version {int(version)} is newer than this embedkit reads ({SCHEMA_VERSION})")


def group_info(path: Path, h5, name: str) -> GroupInfo:
    import h5py

    if h5 is None or name not in leaf_groups(h5):
        known = ", ".join(leaf_groups(h5)) if h5 is not None else ""
        raise StoreError(f"{path}: group '{name}' not found (groups: {known or 'none'})")
    g, where = h5[name], f"{path}: group '{name}'"
    version = g.attrs.get("schema_version")
    if version is None or "content_id" not in g.attrs:
        raise StoreError(f"{where}: incomplete group (no schema_version or content_id attribute)")
    if int(version) > SCHEMA_VERSION:
        raise StoreError(f"{where}: schema version {int(version)} is newer than this embedkit reads ({SCHEMA_VERSION})")
    for key in ("embeddings", "labels", "ids"):
        if not isinstance(g.get(key), h5py.Dataset):
            raise StoreError(f"{where}: missing dataset '{key}'")
    emb = g["embeddings"]
    if emb.ndim != 2 or emb.dtype != np.float32:
        raise StoreError(f"{where}: embeddings must be (N, D) float32, got {emb.shape} {emb.dtype}")
    for key in ("labels", "ids"):
        ds = g[key]
        if ds.ndim != 1 or ds.dtype != np.int64:
            raise StoreError(f"{where}: {key} must be (N,) int64, got {ds.shape} {ds.dtype}")
        if ds.shape[0] != emb.shape[0]:
            raise StoreError(f"{where}: {key} has {ds.shape[0]} rows but embeddings has {emb.shape[0]}")
    return GroupInfo(name, int(emb.shape[0]), int(emb.shape[1]), read_attrs(g.attrs))


def check_finite(where: str, emb: np.ndarray, first_row: int) -> None:
    if emb.size and not np.isfinite(emb).all():
        row = first_row + int(np.flatnonzero(~np.isfinite(emb).all(axis=1))[0])
        raise StoreError(f"{where}: embeddings row {row} contains NaN or inf")


def check_unique(where: str, ids: np.ndarray) -> None:
    unique, counts = np.unique(ids, return_counts=True)
    if len(unique) != len(ids):
        raise StoreError(f"{where}: ids must be unique, id {int(unique[np.argmax(counts)])} appears more than once")


def validated(where: str, embeddings, labels, ids, *, dim: int | None, first_id: int):
    """Embeddings as (n, D) float32, labels and ids as (n,) int64, or StoreError naming the problem."""
    emb = np.asarray(embeddings)
    if emb.ndim != 2 or (dim is not None and emb.shape[1] != dim) or emb.shape[1] < 1:
        want = f"(n, {dim})" if dim is not None else "(N, D) with D >= 1"
        raise StoreError(f"{where}: embeddings must be {want}, got shape {emb.shape}")
    if not (np.issubdtype(emb.dtype, np.floating) or np.issubdtype(emb.dtype, np.integer)):
        raise StoreError(f"{where}: embeddings must be numbers, got dtype {emb.dtype}")
    with np.errstate(over="ignore"):  # values beyond float32 become inf, refused just below
        emb = np.ascontiguousarray(emb, dtype=np.float32)
    check_finite(where, emb, first_id)
    n = len(emb)
    labels = np.full(n, -1, np.int64) if labels is None else int_column(where, "labels", labels, n)
    ids = np.arange(first_id, first_id + n, dtype=np.int64) if ids is None else int_column(where, "ids", ids, n)
    return emb, labels, ids


def int_column(where: str, name: str, values, n: int) -> np.ndarray:
    values = np.asarray(values)
    if values.ndim != 1 or len(values) != n:
        raise StoreError(f"{where}: {name} must have shape ({n},) like the embeddings, got {values.shape}")
    if values.size and not np.issubdtype(values.dtype, np.integer):
        raise StoreError(f"{where}: {name} must be integers, got dtype {values.dtype}")
    return values.astype(np.int64)


def read_attrs(attrs) -> dict[str, Any]:
    """HDF5 attributes as plain Python: str, int, float, list; `config` parsed from its JSON text."""
    out: dict[str, Any] = {}
    for key, value in attrs.items():
        if isinstance(value, bytes):
            value = value.decode()
        elif isinstance(value, np.ndarray):
            value = [v.decode() if isinstance(v, bytes) else v for v in value.tolist()]
        elif isinstance(value, np.generic):
            value = value.item()
        out[key] = value
    if isinstance(out.get("config"), str):
        with contextlib.suppress(ValueError):
            out["config"] = json.loads(out["config"])
    return out


def write_attrs(where: str, target, attrs: dict[str, Any]) -> None:
    """Store attributes: dicts as JSON text, paths as text, lists of str as HDF5 string arrays."""
    import h5py

    for key, value in attrs.items():
        if key in RESERVED_ATTRS or value is None:
            continue
        if isinstance(value, dict):
            value = json.dumps(value, sort_keys=True, default=str)
        elif isinstance(value, Path):
            value = str(value)
        elif isinstance(value, (list, tuple)) and all(isinstance(v, str) for v in value):
            value = np.array(list(value), dtype=h5py.string_dtype())
        try:
            target[key] = value
        except (TypeError, ValueError) as exc:
            raise StoreError(f"{where}: attribute {key!r} cannot be stored in HDF5 ({reason(exc)})") from None


def check_group_name(path: Path, group: str) -> None:
    parts = group.split("/")
    if not group or any(part in ("", ".", "..") for part in parts):
        raise StoreError(f"{path}: invalid group name {group!r} (use names like 'cifar10/train')")


def now() -> str:
    return dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")


def version() -> str:
    from embedkit import __version__

    return __version__
