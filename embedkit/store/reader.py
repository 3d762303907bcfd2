"""Reading a store group's datasets in whole chunks, through HDF5's checksums.

Every read goes through HDF5's filter pipeline, so each chunk's fletcher32 checksum is verified: a damaged chunk
is a StoreError naming the file, the group, the dataset and the row, never silently wrong numbers.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from embedkit.errors import StoreError
from embedkit.store.schema import GroupInfo, check_finite, h5_errors

CHECK_ROWS = 65536  # rows read and checked at a time (rounded to whole chunks)
COLUMNS = ("embeddings", "labels", "ids")


def checked_chunks(path: Path, h5, info: GroupInfo, out: np.ndarray | None = None) -> Iterator[tuple[int, np.ndarray]]:
    """(first row, rows) of a group's embeddings, about CHECK_ROWS at a time, each checked finite and intact.

    With `out` (N, D) float32, the rows are read straight into it (no copy) and the blocks are views of it.
    """
    where = f"{path}: group '{info.name}'"
    for start, block in blocks(where, h5, info.name, "embeddings", out):
        check_finite(where, block, start)
        yield start, block


def read_column(path: Path, h5, group: str, name: str) -> np.ndarray:
    """A whole (N,) column ('labels' or 'ids'), read chunk by chunk through the checksums."""
    with h5_errors(f"{path}: group '{group}'", f"damaged {name}"):
        out = np.empty(len(h5[group][name]), np.int64)
    for _ in blocks(f"{path}: group '{group}'", h5, group, name, out):
        pass
    return out


def check_intact(where: str, h5, group: str) -> None:
    """Read every chunk of the group's three datasets, so a failed checksum is raised here (and names them)."""
    for name in COLUMNS:
        for _ in blocks(where, h5, group, name):
            pass


def blocks(where: str, h5, group: str, name: str, out: np.ndarray | None = None) -> Iterator[tuple[int, np.ndarray]]:
    """(first row, rows) of dataset `group/name`, whole chunks at a time (about CHECK_ROWS rows).

    With `out` (shaped and typed like the dataset) the rows are read straight into it; blocks are its views.
    """
    with h5_errors(where, f"damaged {name}"):
        dataset = h5[group][name]
        n, step = len(dataset), _rows_per_read(dataset)
    for start in range(0, n, step):
        rows = np.s_[start : min(start + step, n)]
        with h5_errors(where, f"damaged {name} near row {start}"):
            if out is None:
                block = dataset[rows]
            else:
                dataset.read_direct(out, rows, rows)
                block = out[rows]
        yield start, block


def _rows_per_read(dataset) -> int:
    """A whole number of chunks, about CHECK_ROWS rows (so no chunk is decoded twice)."""
    return max(1, CHECK_ROWS // _chunk_rows(dataset)) * _chunk_rows(dataset)


def _chunk_rows(dataset) -> int:
    return dataset.chunks[0] if dataset.chunks else CHECK_ROWS


def row_positions(where: str, rows: Any, n: int) -> np.ndarray:
    """`rows` as (R,) int64 positions, each in 0..n-1 (StoreError naming the first that is not)."""
    rows = np.asarray(rows)
    if rows.size == 0:
        return np.zeros(0, np.int64)
    if rows.ndim != 1 or not np.issubdtype(rows.dtype, np.integer):
        raise StoreError(f"{where}: rows must be a 1-D array of integers, got shape {rows.shape} {rows.dtype}")
    outside = (rows < 0) | (rows >= n)
    if outside.any():
        raise StoreError(f"{where}: row {int(rows[np.argmax(outside)])} is out of range (the group has {n} rows)")
    return rows.astype(np.int64)


def gather(where: str, h5, group: str, name: str, rows: np.ndarray) -> np.ndarray:
    """Dataset `group/name` at sorted unique `rows` (R,): reads only the chunks holding them.

    Consecutive chunks are read together (up to about CHECK_ROWS rows at a time), then the rows are picked in NumPy.
    """
    with h5_errors(where, f"damaged {name}"):
        dataset = h5[group][name]
        chunk_rows, per_read = _chunk_rows(dataset), _rows_per_read(dataset)
        out = np.empty((len(rows), *dataset.shape[1:]), dataset.dtype)
    chunks = np.unique(rows // chunk_rows)
    runs = np.split(chunks, np.flatnonzero(np.diff(chunks) != 1) + 1) if len(chunks) else []
    for run in runs:
        run_stop = (int(run[-1]) + 1) * chunk_rows
        for first in range(int(run[0]) * chunk_rows, run_stop, per_read):
            stop = min(first + per_read, run_stop)
            lo, hi = np.searchsorted(rows, [first, stop])
            with h5_errors(where, f"damaged {name} near row {first}"):
                block = dataset[first:stop]
            out[lo:hi] = block[rows[lo:hi] - first]
    return out
