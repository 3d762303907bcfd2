"""Indexes persisted beside the store, and the store-level queries: neighbors, pairs files.

Indexes are saved as `<store>.index/<group>.<metric>.<kind>.<content_id>.faiss` (IVF: one file per shard, kind
`ivf~2of4`): the group's content id is in the file name, so a rewritten group never finds a stale index; it is
rebuilt on first use, and files of older contents are removed then. Distances are true L2 (or cosine distance);
see `embedkit.search.arrays`.
"""

from __future__ import annotations

import contextlib
import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote, unquote

import numpy as np

from embedkit._util.atomic import atomic_path, check_output
from embedkit._util.progress import ProgressFn
from embedkit.errors import ConfigError, DiskFullError, SearchError, StoreError
from embedkit.search.approximate import DEFAULT_RECALL, RecallEstimate, auto_kind, check_recall, tune_and_estimate
from embedkit.search.arrays import (
    Frame,
    approximate_rows,
    build_index,
    check_options,
    check_query,
    index_name,
    is_whole_self_join,
    knn,
    load_faiss,
    prepare,
    search_index,
    self_knn,
    trained_ivf,
)
from embedkit.search.engines import check_engine, ray_knn, ray_session
from embedkit.store.schema import SCHEMA_VERSION, h5_errors, now
from embedkit.store.store import GroupData, open_store

PERSISTED_KINDS = ("hnsw", "ivf")  # flat is rebuilt from the store in memory: faster than reading a copy
IVF_SHARD_ROWS = 250_000  # rows per saved IVF shard
SELF_JOIN_STATUS = "exact self-join, no index"  # every row of a group against the group itself
RAY_STATUS = "exact, on Ray actors"

__all__ = [
    "GroupIndex",
    "NeighborResult",
    "describe_store",
    "knn",
    "list_index_files",
    "make_pairs",
    "neighbors",
    "neighbors_json",
    "open_group_index",
    "save_neighbors",
]


# ---------------------------------------------------------------- indexes persisted beside the store


def index_folder(store_path: Path) -> Path:
    return Path(store_path).with_name(Path(store_path).name + ".index")


def _index_path(store_path: Path, group: str, metric: str, name: str, content_id: str) -> Path:
    """The index file's path: every field read from the store is escaped, so the file stays in the index folder
    whatever a (hostile) store's group names and content ids say."""
    return index_folder(store_path) / (".".join(map(_escape, (group, metric, name, content_id))) + ".faiss")


def _escape(field: str) -> str:
    """`field` as one safe piece of a file name: no '/', and no '.' (dots separate the name's fields)."""
    return quote(str(field), safe="").replace(".", "%2E")


def load_or_build_index(
    store_path: Path,
    group: str,
    content_id: str,
    reference: np.ndarray,
    kind: str,
    metric: str,
    farthest: bool,
    *,
    frame: Frame | None = None,
) -> tuple[Any, str]:
    """The index over prepared `reference` (N, D); returns (index, status).

    Flat indexes are built in memory ("built in memory"): that is faster than reading a saved copy
    (0.2 s against 0.8-1.3 s for 200,000 x 128 here) and cannot go stale. HNSW and IVF indexes are loaded
    from beside the store when their content id matches ("loaded"), else built and saved ("built", or
    "built (not saved: <why>)" when the folder is not writable). An IVF index is saved as shards of
    IVF_SHARD_ROWS rows (`ivf~2of4`), each filled with `add_with_ids` from one trained, empty index, and merged
    when loaded: the shard is the unit of work a distributed build can hand to one worker.
    """
    if kind not in PERSISTED_KINDS:
        return build_index(reference, kind, metric, farthest=farthest, frame=frame), "built in memory"
    paths = _index_paths(store_path, group, metric, index_name(kind, metric, farthest), content_id, len(reference))
    index = _load_index(paths, len(reference), reference.shape[1] + (metric == "cosine"))  # cosine rows: flagged
    if index is not None:
        return index, "loaded"
    if kind == "ivf":
        return _build_ivf_shards(reference, metric, paths)
    index = build_index(reference, kind, metric, farthest=farthest)
    return index, _saved(index, paths[0])


def _index_paths(store_path: Path, group: str, metric: str, name: str, content_id: str, n_rows: int) -> list[Path]:
    """The files of one index: one, or for IVF one per shard of IVF_SHARD_ROWS rows."""
    if name != "ivf":
        return [_index_path(store_path, group, metric, name, content_id)]
    n = max(1, math.ceil(n_rows / IVF_SHARD_ROWS))
    return [_index_path(store_path, group, metric, f"{name}~{i}of{n}", content_id) for i in range(1, n + 1)]


def _load_index(paths: list[Path], n_rows: int, dim: int):
    """The saved index, its shards merged; None when a file is missing, unreadable or of another shape."""
    if not all(path.is_file() for path in paths):
        return None
    faiss = load_faiss()
    try:
        index = faiss.read_index(str(paths[0]))
        for path in paths[1:]:
            index.merge_from(faiss.read_index(str(path)), 0)  # ids were added with the shard: keep them
    except RuntimeError:
        return None
    return index if index.ntotal == n_rows and index.d == dim else None


def _build_ivf_shards(reference: np.ndarray, metric: str, paths: list[Path]) -> tuple[Any, str]:
    """Train IVF once, fill each shard with its rows' ids and save it, merge them all: (index, status)."""
    faiss = load_faiss()
    rows = approximate_rows(reference, metric)
    trained = trained_ivf(rows)
    index, status, saved = faiss.clone_index(trained), "built", []
    for path, start in zip(paths, range(0, len(rows), IVF_SHARD_ROWS)):
        stop = min(start + IVF_SHARD_ROWS, len(rows))
        shard = faiss.clone_index(trained)
        shard.add_with_ids(rows[start:stop], np.arange(start, stop, dtype=np.int64))
        if status == "built":
            status = _saved(shard, path)
            saved.append(path)
        index.merge_from(shard, 0)  # moves the shard's lists: memory holds one copy
    if status != "built":  # a shard could not be saved: leave none, as a half-saved index would never load
        for path in saved:
            with contextlib.suppress(OSError):
                path.unlink()
    return index, status


def _saved(index, path: Path) -> str:
    """Save `index` to `path`: "built", or "built (not saved: why)" (the search still stands)."""
    try:
        _save_index(index, path)
    except OSError as exc:
        return f"built (not saved: {exc.strerror or exc})"
    except DiskFullError:
        return "built (not saved: no space left)"
    return "built"


def _save_index(index, path: Path) -> None:
    """Write atomically (temp file + rename), then remove the group's indexes built from older contents."""
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        with atomic_path(path) as tmp:
            load_faiss().write_index(index, str(tmp))
    except RuntimeError as exc:  # FAISS reports I/O errors as RuntimeError
        raise OSError(str(exc).splitlines()[0]) from None
    group_part, content_id = path.name.split(".")[0], path.name.split(".")[3]
    for old in path.parent.glob(f"{group_part}.*.faiss"):
        parts = old.name.split(".")
        if len(parts) == 5 and parts[3] != content_id:
            with contextlib.suppress(OSError):
                old.unlink()


@dataclass(frozen=True)
class IndexFile:
    """A persisted index file: its group, metric, kind, the content id it was built from, its size, and for an IVF
    shard which one (`2of4`)."""

    group: str
    metric: str
    kind: str
    content_id: str
    path: Path
    size_bytes: int
    shard: str | None = None


def list_index_files(store_path: Path) -> list[IndexFile]:
    """Every persisted index of a store (compare `content_id` with the group's to tell fresh from stale)."""
    found = []
    for path in sorted(index_folder(store_path).glob("*.faiss")):
        parts = path.name.split(".")
        if len(parts) == 5 and not path.name.startswith("."):
            group, metric, name, content_id = map(unquote, parts[:4])
            kind, _, shard = name.partition("~")
            found.append(IndexFile(group, metric, kind, content_id, path, path.stat().st_size, shard or None))
    return found


# ---------------------------------------------------------------- store-level queries


@dataclass(frozen=True)
class NeighborResult:
    """Neighbours of each query: ids (Q, k) are the group's `ids` values, rows (Q, k) its row positions."""

    group: str
    query_group: str
    k: int
    farthest: bool
    metric: str
    index_kind: str
    index_status: str
    query_ids: np.ndarray
    query_labels: np.ndarray
    ids: np.ndarray
    rows: np.ndarray
    labels: np.ndarray
    distances: np.ndarray
    content_id: str
    class_names: tuple[str, ...] = ()
    recall_estimate: RecallEstimate | None = None  # approximate searches only: how approximate
    engine: str = "local"


@dataclass(frozen=True)
class GroupIndex:
    """A group ready for many searches: its data, its vectors prepared for the metric, its FAISS index."""

    store_path: Path
    data: GroupData
    kind: str
    metric: str
    farthest: bool
    reference: np.ndarray
    index: Any
    status: str
    frame: Frame | None = None  # the flat index's frame, kept so each search does not compute it again

    def search(
        self,
        queries: np.ndarray,
        k: int,
        *,
        self_rows: np.ndarray | None = None,
        on_progress: ProgressFn | None = None,
        nprobe: int | None = None,
    ) -> tuple[np.ndarray, np.ndarray]:
        """(distances (Q, k) float32, rows (Q, k) int64) for `queries` (Q, D); `self_rows` (Q,) are excluded;
        `nprobe`: IVF lists to search (see `search_index`)."""
        where = f"group '{self.data.name}' of {self.store_path}"
        check_query(
            len(self.reference), self.reference.shape[1], queries, k, exclude_self=self_rows is not None, where=where
        )
        return search_index(
            self.index,
            self.kind,
            self.reference,
            prepare(queries, self.metric),
            k,
            farthest=self.farthest,
            metric=self.metric,
            self_rows=self_rows,
            on_progress=on_progress,
            frame=self.frame,
            nprobe=nprobe,
        )


def open_group_index(
    store_path: Path | str,
    group: str,
    *,
    metric: str = "l2",
    kind: str = "flat",
    farthest: bool = False,
    data: GroupData | None = None,
) -> GroupIndex:
    """Load `group` (or use `data`, already read) and its index, to search it many times."""
    check_options(metric, kind, farthest)
    store_path = Path(store_path)
    data = open_store(store_path).read(group) if data is None else data
    if len(data.ids) == 0:
        raise SearchError(f"group '{group}' of {store_path} is empty (0 rows): nothing to search")
    reference = prepare(data.embeddings, metric)
    frame = Frame(reference, metric) if kind == "flat" else None
    index, status = load_or_build_index(
        store_path, group, data.content_id, reference, kind, metric, farthest, frame=frame
    )
    return GroupIndex(store_path, data, kind, metric, farthest, reference, index, status, frame)


def neighbors(
    store_path: Path | str,
    group: str,
    k: int,
    *,
    farthest: bool = False,
    query_group: str | None = None,
    query_ids: Any = None,
    metric: str = "l2",
    index_kind: str = "flat",
    on_progress: ProgressFn | None = None,
    recall: float = DEFAULT_RECALL,
    engine: str = "local",
    ray_address: str | None = None,
) -> NeighborResult:
    """The k nearest (or farthest) rows of `group` for queries from `query_group` (default: `group` itself).

    `query_ids` picks query rows by their `ids` value; by default every row is a query. When the queries come
    from the indexed group, no row is its own neighbour. Every check (k, sizes, dimensions, an empty group) runs
    before an index is built or any file written; every row of a group against itself with the exact (flat)
    index is a self-join that needs no index at all (`embedkit.search.self_join`).
    `index_kind="auto"`: flat up to `AUTO_FLAT_MAX_ROWS` rows, else IVF tuned to `recall` (see
    `embedkit.search.approximate`); an approximate result carries its `recall_estimate`. `engine="ray"` runs the
    search on Ray actors (`embedkit.search.engines`), with the same answer: exact search there, or for another
    index the one built or loaded here (and tuned here), sent once to the actors.
    """
    check_engine(engine, ray_address)
    check_recall(recall)
    check_options(metric, "flat" if index_kind == "auto" else index_kind, farthest)
    store_path, query_group = Path(store_path), query_group or group
    store = open_store(store_path)
    with store.snapshot():
        ref = store.read(group)
        qdata = ref if query_group == group else store.read(query_group)
    q_rows = (
        np.arange(len(qdata.ids))
        if query_ids is None
        else qdata.rows_of_ids(query_ids, f"group '{qdata.name}' of {store_path}")
    )
    queries = qdata.embeddings[q_rows]
    if queries.shape[1] != ref.embeddings.shape[1]:
        raise SearchError(
            f"dimension mismatch: query group '{query_group}' has D={queries.shape[1]}, "
            f"group '{group}' of {store_path} has D={ref.embeddings.shape[1]}"
        )
    self_rows = q_rows if query_group == group else None
    check_query(
        len(ref.ids),
        ref.embeddings.shape[1],
        queries,
        k,
        exclude_self=self_rows is not None,
        where=f"group '{group}' of {store_path}",
    )
    if index_kind == "auto":
        index_kind = auto_kind(len(ref.ids), farthest)
    estimate, searcher = None, None
    if index_kind != "flat" or not (engine == "ray" or is_whole_self_join(self_rows, len(ref.ids), len(queries))):
        searcher = open_group_index(store_path, group, metric=metric, kind=index_kind, farthest=farthest, data=ref)
    if index_kind != "flat":
        estimate = tune_and_estimate(
            searcher.index,
            index_kind,
            searcher.reference,
            prepare(queries, metric),
            k,
            metric=metric,
            self_rows=self_rows,
            target=recall,
        )
    nprobe = estimate and estimate.nprobe
    if engine == "ray":  # exact search built by the actors, or the index built (and tuned) here, sent to them
        with ray_session(ray_address):
            distances, rows = ray_knn(
                ref.embeddings,
                queries,
                k,
                farthest=farthest,
                metric=metric,
                self_rows=self_rows,
                on_progress=on_progress,
                index=None if searcher is None else searcher.index,
                kind=index_kind,
                nprobe=nprobe,
            )
        status = RAY_STATUS if searcher is None else f"{searcher.status}, searched on Ray actors"
    elif searcher is None:  # every row against the others, exactly: no index needed
        distances, rows = self_knn(
            prepare(ref.embeddings, metric), k, farthest=farthest, metric=metric, on_progress=on_progress
        )
        status = SELF_JOIN_STATUS
    else:
        distances, rows = searcher.search(queries, k, self_rows=self_rows, on_progress=on_progress, nprobe=nprobe)
        status = searcher.status
    return NeighborResult(
        group,
        query_group,
        k,
        farthest,
        metric,
        index_kind,
        status,
        qdata.ids[q_rows],
        qdata.labels[q_rows],
        ref.ids[rows],
        rows,
        ref.labels[rows],
        distances,
        ref.content_id,
        ref.class_names,
        estimate,
        engine,
    )


def make_pairs(
    store_path: Path | str,
    group: str,
    k: int,
    out_path: Path | str,
    *,
    metric: str = "l2",
    on_progress: ProgressFn | None = None,
    index_kind: str = "flat",
    recall: float = DEFAULT_RECALL,
    engine: str = "local",
    ray_address: str | None = None,
) -> Path:
    """Write each row's k nearest neighbours (never itself) to an HDF5 pairs file; returns its path.

    Pairs file: ids (N,), neighbor_ids (N, k), neighbor_rows (N, k) int64, distances (N, k) float32;
    attrs store, group, k, metric, index, content_id (of the group searched), schema_version, created, and
    recall / recall_queries for an approximate search. `index_kind`, `recall`, `engine`, `ray_address`: as in
    `neighbors`.
    """
    import h5py

    store_path, out_path = Path(store_path), Path(out_path)
    check_results_out(out_path, store_path, "hdf5 results")
    result = neighbors(
        store_path,
        group,
        k,
        metric=metric,
        on_progress=on_progress,
        index_kind=index_kind,
        recall=recall,
        engine=engine,
        ray_address=ray_address,
    )
    estimate = (
        {}
        if result.recall_estimate is None
        else {"recall": result.recall_estimate.recall, "recall_queries": result.recall_estimate.n_queries}
    )
    with (
        h5_errors(out_path, "cannot write the pairs file"),
        atomic_path(out_path) as tmp,
        h5py.File(tmp, "w", locking=False) as out,
    ):
        out["ids"], out["neighbor_ids"] = result.query_ids, result.ids
        out["neighbor_rows"], out["distances"] = result.rows, result.distances
        out.attrs.update(
            {
                "store": str(store_path.resolve()),
                "group": group,
                "k": k,
                "metric": metric,
                "index": result.index_kind,
                "content_id": result.content_id,
                "schema_version": SCHEMA_VERSION,
                "created": now(),
                **estimate,
            }
        )
    return out_path


def pairs_attributes(path: Path | str) -> dict[str, Any]:
    """A pairs file's attributes (store, group, k, metric, index, recall, ...) as plain Python values."""
    import h5py

    path = Path(path)
    with h5_errors(path, "cannot read the pairs file"), h5py.File(path, "r", locking=False) as pairs:
        return {key: value.item() if hasattr(value, "item") else value for key, value in pairs.attrs.items()}


RESULT_KINDS = {".json": "json", ".h5": "hdf5 results", ".hdf5": "hdf5 results", ".npz": "npz"}


def check_results_out(path: Path | str, store_path: Path | str | None, kind: str | None = None) -> str:
    """Check, before any work, that a results file can be written at `path`; returns its kind.

    `kind` None: from the suffix (.json, .h5, .hdf5 or .npz). The folder must exist and be writable; `path` must
    not be the store searched, nor an existing file of another kind (a store, a figure): ConfigError or StoreError.
    """
    path = Path(path)
    suffix = path.suffix.lower()
    if kind is None and suffix not in RESULT_KINDS:
        raise ConfigError(f"{path}: unknown output format {suffix or '(none)'!r}: use .json, .h5 or .npz")
    if not path.parent.is_dir():
        raise StoreError(f"{path}: folder {path.parent} does not exist")
    if not os.access(path.parent, os.W_OK):
        raise StoreError(f"{path}: folder {path.parent} is not writable")
    kind = kind or RESULT_KINDS[suffix]
    check_output(path, kind, [store_path])
    return kind


def neighbors_json(result: NeighborResult) -> dict[str, Any]:
    """The `--json` object: {"group", "k", "farthest", "index", "engine", "recall_estimate" (approximate searches:
    {"n_queries", "k", "recall", "nprobe", "target"}, else null), "results": [{"query_id", "ids", "distances"}]}."""
    results = [
        {"query_id": int(qid), "ids": ids.tolist(), "distances": [round(float(d), 6) for d in dist]}
        for qid, ids, dist in zip(result.query_ids, result.ids, result.distances)
    ]
    estimate = None if result.recall_estimate is None else result.recall_estimate.to_json()
    return {
        "group": result.group,
        "k": result.k,
        "farthest": result.farthest,
        "index": result.index_kind,
        "engine": result.engine,
        "recall_estimate": estimate,
        "results": results,
    }


def save_neighbors(result: NeighborResult, path: Path | str, store_path: Path | str | None = None) -> Path:
    """Write the full result atomically: `.json` (as `neighbors_json`), `.h5`/`.hdf5` or `.npz` arrays
    query_ids (Q,), ids (Q, k), rows (Q, k), distances (Q, k) float32 (HDF5 attrs: group, query_group, k,
    farthest, metric, index_kind, content_id). `path` is checked first (`check_results_out`)."""
    import json

    path = Path(path)
    kind = check_results_out(path, store_path)
    arrays = {"query_ids": result.query_ids, "ids": result.ids, "rows": result.rows, "distances": result.distances}
    with atomic_path(path) as tmp:
        if kind == "json":
            tmp.write_text(json.dumps(neighbors_json(result)) + "\n")
        elif kind == "npz":
            with open(tmp, "wb") as handle:
                np.savez(handle, **arrays)
        else:
            with h5_errors(path, "cannot write"):
                _write_h5(tmp, arrays, result)
    return path


def _write_h5(tmp: Path, arrays: dict[str, np.ndarray], result: NeighborResult) -> None:
    import h5py

    with h5py.File(tmp, "w", locking=False) as out:
        for name, values in arrays.items():
            out[name] = values
        out.attrs.update(
            {
                "group": result.group,
                "query_group": result.query_group,
                "k": result.k,
                "farthest": result.farthest,
                "metric": result.metric,
                "index_kind": result.index_kind,
                "content_id": result.content_id,
            }
        )


def describe_store(store_path: Path | str, *, check_values: bool = True) -> dict[str, Any]:
    """A JSON-ready summary: file, schema, and per group its shape, provenance and persisted indexes.

    With `check_values`, every group is also read in chunks and checked for NaN/inf and duplicate ids.
    """
    store = open_store(store_path)
    indexes = list_index_files(store.path)
    groups = []
    with store.snapshot():
        for info in store.describe():
            if check_values:
                store.verify(info.name)
            files = [
                {
                    "metric": f.metric,
                    "kind": f.kind,
                    "shard": f.shard,
                    "fresh": f.content_id == info.attrs["content_id"],
                    "size_bytes": f.size_bytes,
                    "file": str(f.path),
                }
                for f in indexes
                if f.group == info.name
            ]
            groups.append({**info.attrs, "name": info.name, "n": info.n, "dim": info.dim, "indexes": files})
    return {"store": str(store.path), "size_bytes": store.path.stat().st_size, "groups": groups}
