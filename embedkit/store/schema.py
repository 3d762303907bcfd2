"""The store's schema: layout checks, value checks and attribute conversion, shared by reads and writes.

Every check raises StoreError with one line naming the file, the group and the problem.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import math
import os
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from embedkit import __version__
from embedkit._util.atomic import check_regular_file, no_space, no_space_error
from embedkit.errors import StoreError

SCHEMA_VERSION = 1
RESERVED_ATTRS = ("schema_version", "content_id", "embedkit_version")
MAX_COMPRESSION = 1100  # deflate, the best common HDF5 filter, cannot shrink data more than about 1032 times
UNCOMPRESSING_FILTERS = (2, 3)  # H5Z_FILTER_SHUFFLE, H5Z_FILTER_FLETCHER32: same number of bytes out as in
CONTENT_ID = re.compile(r"[A-Za-z0-9_-]{1,128}")
# What h5py raises on a damaged file: HDF5's error classes map to OSError, RuntimeError, KeyError or ValueError
# (e.g. "Object visitation failed" is a RuntimeError, "bad version number for datatype message" a KeyError).
H5_ERRORS = (OSError, RuntimeError, KeyError, ValueError)


@dataclass(frozen=True)
class GroupInfo:
    """A group's shape and attributes, read without loading its arrays."""

    name: str
    n: int
    dim: int
    attrs: dict[str, Any]


def open_h5(path: Path):
    import h5py

    check_regular_file(path, "store")  # a FIFO or a device would block or never end
    if not os.access(path, os.R_OK):
        raise StoreError(f"{path}: permission denied (cannot read the store)")
    if path.stat().st_size == 0:
        raise StoreError(f"{path}: empty file (0 bytes), not an HDF5 store")
    if not h5py.is_hdf5(path):
        raise StoreError(f"{path}: not an HDF5 file")
    with h5_errors(path, "unreadable HDF5 file"):
        return h5py.File(path, "r", locking=False)


def reason(exc: BaseException) -> str:
    text = str(exc.args[0]) if isinstance(exc, KeyError) and exc.args else str(exc)  # KeyError quotes its text
    return text.splitlines()[0] if text else type(exc).__name__


@contextlib.contextmanager
def h5_errors(where: str | Path, problem: str = "damaged HDF5 data") -> Iterator[None]:
    """Turn h5py's errors on a damaged (or unwritable) file into one StoreError line: '<where>: <problem> (<why>)'.

    A full disk is said as such (HDF5 reports it in many guises), never mistaken for damage.
    """
    try:
        yield
    except StoreError:
        raise
    except H5_ERRORS as exc:
        if no_space(exc):
            raise no_space_error(where) from None
        raise StoreError(f"{where}: {problem} ({reason(exc)})") from None


def leaf_groups(path: Path, h5) -> list[str]:
    """Groups holding embeddings (or claiming to, through a schema_version attribute), sorted.

    Walks the groups without opening any group's datasets, so a damaged dataset is reported by whoever reads
    that group (naming it), and the other groups stay readable. Only hard links are followed, each group once:
    a soft or external link (embedkit writes none) can lead to another file or round in a cycle.
    """
    import h5py

    names: list[str] = []
    seen = {h5["/"].id}

    def walk(group, prefix: str) -> None:
        with h5_errors(f"{path}: object '{prefix[:-1]}'" if prefix else path):
            keys = list(group)
        for key in keys:
            name = prefix + (key if isinstance(key, str) else key.decode(errors="replace"))  # bytes: not UTF-8
            with h5_errors(f"{path}: object '{name}'"):
                if isinstance(key, str) and not isinstance(group.get(key, getlink=True), h5py.HardLink):
                    continue
                obj = group[key]
                is_group = isinstance(obj, h5py.Group) and obj.id not in seen
                seen.add(obj.id)
                is_leaf = is_group and ("embeddings" in obj or "schema_version" in obj.attrs)
            if is_leaf:
                names.append(name)
            elif is_group:
                walk(obj, name + "/")

    walk(h5, "")
    return sorted(names)


def check_root(path: Path, h5) -> None:
    with h5_errors(path):
        version = h5.attrs.get("schema_version")
    if version is None:
        raise StoreError(f"{path}: not an embedkit store (no schema_version attribute on the file)")
    check_version(str(path), version)


def check_version(where: str, version: Any) -> None:
    """A schema_version attribute this embedkit reads: a whole number, at most SCHEMA_VERSION."""
    try:
        number = int(version)
    except (TypeError, ValueError):
        raise StoreError(f"{where}: schema_version {version!r} is not a number (damaged or foreign file)") from None
    if number > SCHEMA_VERSION:
        raise StoreError(f"{where}: schema version {number} is newer than this embedkit reads ({SCHEMA_VERSION})")


def group_info(path: Path, h5, name: str) -> GroupInfo:
    """A group's shape and attributes, checking its layout (StoreError naming the file, the group and the problem)."""
    groups = leaf_groups(path, h5) if h5 is not None else []
    if name not in groups:
        raise StoreError(f"{path}: group '{name}' not found (groups: {', '.join(groups) or 'none'})")
    where = f"{path}: group '{name}'"
    with h5_errors(where):
        return _checked_layout(where, h5[name], name)


def _checked_layout(where: str, g, name: str) -> GroupInfo:
    import h5py

    version = g.attrs.get("schema_version")
    if version is None or "content_id" not in g.attrs:
        raise StoreError(f"{where}: incomplete group (no schema_version or content_id attribute)")
    check_version(where, version)
    check_content_id(where, g.attrs["content_id"])
    for key in ("embeddings", "labels", "ids"):
        if key not in g:  # the link only: g.get() would also answer None for a damaged dataset
            raise StoreError(f"{where}: missing dataset '{key}'")
        with h5_errors(where, f"damaged dataset '{key}'"):
            is_dataset = isinstance(g[key], h5py.Dataset)
        if not is_dataset:
            raise StoreError(f"{where}: '{key}' is not a dataset")
    emb = g["embeddings"]
    if emb.ndim != 2 or emb.dtype != np.float32:
        raise StoreError(f"{where}: embeddings must be (N, D) float32, got {emb.shape} {emb.dtype}")
    if emb.shape[1] < 1:  # no value to search, map or cluster (`add` refuses to write one; h5py can)
        raise StoreError(f"{where}: embeddings have dimension D=0")
    for key in ("labels", "ids"):
        ds = g[key]
        if ds.ndim != 1 or ds.dtype != np.int64:
            raise StoreError(f"{where}: {key} must be (N,) int64, got {ds.shape} {ds.dtype}")
        if ds.shape[0] != emb.shape[0]:
            raise StoreError(f"{where}: {key} has {ds.shape[0]} rows but embeddings has {emb.shape[0]}")
    for key in ("embeddings", "labels", "ids"):
        check_declared_size(where, key, g[key])
    return GroupInfo(name, int(emb.shape[0]), int(emb.shape[1]), read_attrs(g.attrs))


MAX_ROW_NORM = float(np.sqrt(np.finfo(np.float32).max) / 2)  # about 9.2e18


def check_declared_size(where: str, key: str, dataset) -> None:
    """StoreError if the dataset declares more bytes than its file could hold (a hostile or damaged header).

    Stored as is, the data cannot be larger than the file; compressed, not more than MAX_COMPRESSION times it. So
    a 12 KB file declaring 10^12 rows fails here, in one line, before anything is allocated or iterated.
    """
    declared = math.prod(dataset.shape) * dataset.dtype.itemsize
    file_bytes = dataset.file.id.get_filesize()
    plist = dataset.id.get_create_plist()
    compressed = any(plist.get_filter(i)[0] not in UNCOMPRESSING_FILTERS for i in range(plist.get_nfilters()))
    if declared > file_bytes * (MAX_COMPRESSION if compressed else 1):
        raise StoreError(
            f"{where}: dataset '{key}' declares shape {dataset.shape} ({declared:,} bytes), more than "
            f"the {file_bytes:,}-byte file can hold (damaged or hostile file)"
        )


def check_content_id(where: str, content_id: Any) -> None:
    """A content id is a short token of letters, digits, '-' and '_' (embedkit writes 32 hex digits): it names
    index files, so one holding '/' or '..' is refused as damaged or hostile, never used in a path."""
    text = content_id.decode(errors="replace") if isinstance(content_id, bytes) else content_id
    if not isinstance(text, str) or not CONTENT_ID.fullmatch(text):
        raise StoreError(
            f"{where}: content_id {text!r} is not a valid id (letters, digits, '-' and '_' only; "
            "damaged or hostile file)"
        )


def check_finite(where: str, emb: np.ndarray, first_row: int, *, rows: np.ndarray | None = None) -> None:
    """StoreError naming the first row holding NaN or inf, or longer than MAX_ROW_NORM (two such rows can be
    2 * MAX_ROW_NORM apart, a squared distance float32 cannot hold); the rows are `first_row`, ... or `rows`."""
    if not emb.size:
        return
    if not np.isfinite(emb).all():
        at = int(np.flatnonzero(~np.isfinite(emb).all(axis=1))[0])
        row = first_row + at if rows is None else int(rows[at])
        raise StoreError(f"{where}: embeddings row {row} contains NaN or inf")
    peak = np.abs(emb).max(axis=1)
    suspect = np.flatnonzero(peak * np.sqrt(emb.shape[1]) > MAX_ROW_NORM)  # a row's norm <= sqrt(D) * its peak
    norms = np.linalg.norm(emb[suspect].astype(np.float64), axis=1)
    if (norms > MAX_ROW_NORM).any():
        at = int(np.argmax(norms > MAX_ROW_NORM))
        row = first_row + int(suspect[at]) if rows is None else int(rows[suspect[at]])
        raise StoreError(
            f"{where}: embeddings row {row} has norm {norms[at]:.3g}, beyond {MAX_ROW_NORM:.3g}: its "
            f"squared distances overflow float32, so it cannot be searched (rescale the embeddings)"
        )


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


def write_attrs(where: str, target, attrs: dict[str, Any], *, reserved: bool = False) -> None:
    """Store attributes (see `hdf5_value`); the reserved ones (schema_version, ...) only with `reserved`."""
    for key, value in attrs.items():
        if (key in RESERVED_ATTRS and not reserved) or value is None:
            continue
        try:
            target[key] = hdf5_value(value)
        except (TypeError, ValueError) as exc:
            raise StoreError(f"{where}: attribute {key!r} cannot be stored in HDF5 ({reason(exc)})") from None


def hdf5_value(value: Any) -> Any:
    """An attribute value as stored: dicts as JSON text, paths as text, text (and lists of text) as fixed-length
    UTF-8, kept in the object header under its checksum. Variable-length strings would live in a global heap,
    which has no checksum: damaged, it can send HDF5 into an endless loop. h5py reads them back as bytes."""
    import h5py

    if isinstance(value, dict):
        value = json.dumps(value, sort_keys=True, default=str)
    elif isinstance(value, Path):
        value = str(value)
    texts = [value] if isinstance(value, str) else value
    if not isinstance(texts, (list, tuple)) or not all(isinstance(t, str) for t in texts):
        return value
    encoded = [t.encode() for t in texts]
    dtype = h5py.string_dtype("utf-8", max([1, *map(len, encoded)]))
    return np.array(encoded[0] if isinstance(value, str) else encoded, dtype=dtype)


def check_group_name(path: Path, group: str) -> None:
    """StoreError unless `group` is '/'-separated names, none empty, '.' or '..', with no control characters
    (a name is shown in one-line messages and becomes part of figure and index file names)."""
    parts = group.split("/")
    if not group or any(part in ("", ".", "..") for part in parts) or any(ord(c) < 32 or ord(c) == 127 for c in group):
        raise StoreError(f"{path}: invalid group name {group!r} (use names like 'cifar10/train')")


def now() -> str:
    return dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")


def version() -> str:
    return __version__
