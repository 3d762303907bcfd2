"""Exact and approximate k-nearest / k-farthest search with FAISS on arrays in memory.

Distances are TRUE distances, recomputed from the vectors for the rows found:
- metric "l2": Euclidean distance ||q - x|| (not squared);
- metric "cosine": cosine distance 1 - cos(q, x) in [0, 2] (a zero vector has cosine 0 to everything).
Rows are then sorted by that distance (ties by row), so float error in FAISS scores cannot misorder them.

Farthest search is exact and runs at nearest-search speed through an inner-product index:
argmax_x ||q - x||^2 = argmax_x (|x|^2 - 2 q.x) = argmax_x <[q, 1], [-2x, |x|^2]>.
For cosine, the farthest x maximises <-q, x> on unit vectors.

Every row against all the others (a self-join: `knn(x, x, k, exclude_self=True)`, `pairs`) needs no FAISS index:
`embedkit.search.self_join` does it exactly with half the arithmetic of a flat search.
"""

from __future__ import annotations

from typing import Callable

import numpy as np

from embedkit.errors import SearchError
from embedkit.search.self_join import self_join_rows

METRICS = ("l2", "cosine")
INDEX_KINDS = ("flat", "hnsw", "ivf")
HNSW_M = 32
HNSW_EF_CONSTRUCTION = 40
HNSW_EF_SEARCH = 128
IVF_NPROBE = 32
QUERY_BATCH_ROWS = 16384  # queries searched at a time: bounds memory and paces progress reports
RECOMPUTE_ELEMENTS = 1 << 22  # floats gathered at a time to recompute true distances (16 MiB)

ProgressFn = Callable[[int, int], None]


def load_faiss():
    """faiss, with its thread count set once from `embedkit.device.default_threads()`."""
    import faiss

    if not getattr(load_faiss, "_threads_set", False):
        from embedkit.device import default_threads

        faiss.omp_set_num_threads(default_threads())
        load_faiss._threads_set = True
    return faiss


def check_options(metric: str, kind: str, farthest: bool) -> None:
    if metric not in METRICS:
        raise SearchError(f"unknown metric {metric!r}: use {' or '.join(METRICS)}")
    if kind not in INDEX_KINDS:
        raise SearchError(f"unknown index kind {kind!r}: use {', '.join(INDEX_KINDS)}")
    if farthest and kind != "flat":
        raise SearchError(f"farthest search is exact only: use index 'flat', not {kind!r}")


def check_query(n_reference: int, dim_reference: int, queries: np.ndarray, k: int, *, exclude_self: bool,
                where: str = "reference") -> None:
    """Raise SearchError (one line) if `k` neighbours of `queries` (Q, D) cannot be found among N rows."""
    if n_reference == 0:
        raise SearchError(f"{where} is empty (0 rows): nothing to search")
    if queries.ndim != 2 or queries.shape[1] != dim_reference:
        raise SearchError(f"dimension mismatch: queries have shape {queries.shape}, {where} has D={dim_reference}")
    if k < 1:
        raise SearchError(f"k={k}: k must be at least 1")
    allowed = n_reference - 1 if exclude_self else n_reference
    if k > allowed:
        why = " (a row is never its own neighbour)" if exclude_self else ""
        raise SearchError(f"k={k} is larger than {where} allows: {n_reference} rows, at most k={allowed}{why}")
    if not np.isfinite(queries).all():
        raise SearchError(f"queries contain NaN or inf (searching {where})")


def prepare(x: np.ndarray, metric: str) -> np.ndarray:
    """float32, C-contiguous; unit rows for cosine (zero rows stay zero)."""
    x = np.ascontiguousarray(x, dtype=np.float32)
    if metric == "cosine":
        norms = np.linalg.norm(x, axis=1, keepdims=True)
        x = x / np.where(norms > 0, norms, 1).astype(np.float32)
    return x


def index_name(kind: str, metric: str, farthest: bool) -> str:
    """The index's file-name tag: the L2 farthest index is a different (augmented) flat index."""
    return "flat-far" if (farthest and metric == "l2") else kind


def build_index(reference: np.ndarray, kind: str = "flat", metric: str = "l2", *, farthest: bool = False):
    """A FAISS index over `reference` (N, D), already prepared for `metric` (see `prepare`)."""
    faiss = load_faiss()
    n, d = reference.shape
    if kind == "flat" and farthest and metric == "l2":
        augmented = np.hstack([-2.0 * reference, np.einsum("nd,nd->n", reference, reference)[:, None]])
        index = faiss.IndexFlatIP(d + 1)
        index.add(np.ascontiguousarray(augmented, dtype=np.float32))
        return index
    if kind == "flat":
        index = faiss.IndexFlatIP(d) if metric == "cosine" else faiss.IndexFlatL2(d)
    elif kind == "hnsw":  # cosine: L2 on unit vectors ranks like cosine
        index = faiss.IndexHNSWFlat(d, HNSW_M)
        index.hnsw.efConstruction = HNSW_EF_CONSTRUCTION
    else:
        index = _ivf(reference)
    index.add(reference)
    return index


def _ivf(reference: np.ndarray):
    """IVF-Flat with about 4 sqrt(N) lists (at least 39 training points per list, as FAISS asks)."""
    faiss = load_faiss()
    n, d = reference.shape
    nlist = max(1, min(int(4 * np.sqrt(n)), n // 39))
    quantizer = faiss.IndexFlatL2(d)
    index = faiss.IndexIVFFlat(quantizer, d, nlist)
    if nlist == 1:  # one list holds everything: nothing to train
        quantizer.add(reference.mean(axis=0, keepdims=True))
        index.is_trained = True
    else:
        sample = np.random.default_rng(0).choice(n, size=min(n, 64 * nlist), replace=False)
        index.train(reference[np.sort(sample)])
    return index


def _configure(index, kind: str) -> None:
    if kind == "hnsw":
        index.hnsw.efSearch = HNSW_EF_SEARCH
    elif kind == "ivf":
        index.nprobe = min(IVF_NPROBE, index.nlist)


def search_index(index, kind: str, reference: np.ndarray, queries: np.ndarray, k: int, *, farthest: bool = False,
                 metric: str = "l2", self_rows: np.ndarray | None = None,
                 on_progress: ProgressFn | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Search prepared `queries` (Q, D) in `index` built over prepared `reference` (N, D).

    `self_rows` (Q,): each query's own row in reference, never returned as its neighbour.
    Returns (distances (Q, k) float32, rows (Q, k) int64), nearest first (farthest first with `farthest`).
    """
    if kind == "flat" and is_whole_self_join(self_rows, len(reference), len(queries)):
        return self_knn(reference, k, farthest=farthest, metric=metric, on_progress=on_progress)
    _configure(index, kind)
    q_total = len(queries)
    distances = np.empty((q_total, k), np.float32)
    rows = np.empty((q_total, k), np.int64)
    if on_progress is not None:
        on_progress(0, q_total)
    for start in range(0, q_total, QUERY_BATCH_ROWS):
        stop = min(start + QUERY_BATCH_ROWS, q_total)
        own = None if self_rows is None else self_rows[start:stop]
        found = _raw_search(index, kind, reference, queries[start:stop], k + (own is not None), farthest, metric)
        if own is not None:
            found = _drop_self(found, own)
        distances[start:stop], rows[start:stop] = _true_distances(reference, queries[start:stop], found, metric,
                                                                  farthest)
        if on_progress is not None:
            on_progress(stop, q_total)
    return distances, rows


def is_whole_self_join(self_rows: np.ndarray | None, n_reference: int, n_queries: int) -> bool:
    """True when the queries are every reference row, in order (`self_rows` is 0..N-1): a self-join."""
    return (self_rows is not None and n_queries == n_reference
            and np.array_equal(self_rows, np.arange(n_reference)))


def self_knn(reference: np.ndarray, k: int, *, farthest: bool = False, metric: str = "l2",
             on_progress: ProgressFn | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Exact k nearest (farthest) other rows of every row of prepared `reference` (N, D), without an index.

    Returns (distances (N, k) float32, rows (N, k) int64), sorted like `search_index`. Half the arithmetic of a
    flat search of the rows against themselves (see `embedkit.search.self_join`).
    """
    rows = self_join_rows(reference, k, farthest=farthest, metric=metric, on_progress=on_progress)
    return _true_distances(reference, reference, rows, metric, farthest)


def _raw_search(index, kind, reference, queries, kk, farthest, metric) -> np.ndarray:
    if farthest and metric == "l2":
        queries = np.hstack([queries, np.ones((len(queries), 1), np.float32)])
    elif farthest:
        queries = -queries
    rows = index.search(np.ascontiguousarray(queries), kk)[1]
    missing = (rows < 0).any(axis=1)
    if missing.any():  # an approximate index found too few: answer those queries exactly
        exact = build_index(reference, "flat", metric)
        rows[missing] = exact.search(np.ascontiguousarray(queries[missing]), kk)[1]
    return rows


def _drop_self(rows: np.ndarray, self_rows: np.ndarray) -> np.ndarray:
    """Drop each query's own row (by identity, not by distance 0), else the last of the k+1 found."""
    is_self = rows == self_rows[:, None]
    is_self[~is_self.any(axis=1), -1] = True
    return rows[~is_self].reshape(len(rows), -1)


def _true_distances(reference, queries, rows, metric, farthest) -> tuple[np.ndarray, np.ndarray]:
    """Exact distances for the rows found, sorted (ties by row) so float error in FAISS scores cannot reorder."""
    dist = np.empty(rows.shape, np.float32)
    step = max(1, RECOMPUTE_ELEMENTS // (rows.shape[1] * reference.shape[1]))  # bounds the (q, k, D) gather
    for start in range(0, len(rows), step):
        found, q = reference[rows[start : start + step]], queries[start : start + step, None, :]  # (q, k, D)
        if metric == "l2":
            diff = found - q
            dist[start : start + step] = np.sqrt(np.einsum("qkd,qkd->qk", diff, diff))
        else:
            dist[start : start + step] = np.clip(1.0 - np.einsum("qkd,qkd->qk", found, q), 0.0, 2.0)
    order = np.lexsort((rows, -dist if farthest else dist), axis=-1)
    return np.take_along_axis(dist, order, 1), np.take_along_axis(rows, order, 1)


def knn(reference: np.ndarray, queries: np.ndarray, k: int, *, farthest: bool = False, exclude_self: bool = False,
        metric: str = "l2") -> tuple[np.ndarray, np.ndarray]:
    """Exact k nearest (or farthest) rows of `reference` (N, D) for each of `queries` (Q, D).

    `exclude_self=True` means the queries ARE the reference rows, in order: a row is never its own neighbour.
    Returns (distances (Q, k) float32, true L2 or cosine distances; rows (Q, k) int64 row positions in reference).
    """
    check_options(metric, "flat", farthest)
    reference, queries = np.asarray(reference), np.asarray(queries)
    if reference.ndim != 2:
        raise SearchError(f"reference must be (N, D), got shape {reference.shape}")
    if exclude_self and len(queries) != len(reference):
        raise SearchError(f"exclude_self needs the queries to be the {len(reference)} reference rows, got {len(queries)}")
    check_query(len(reference), reference.shape[1], queries, k, exclude_self=exclude_self)
    if not np.isfinite(reference).all():
        raise SearchError("reference contains NaN or inf")
    reference = prepare(reference, metric)
    if exclude_self:
        return self_knn(reference, k, farthest=farthest, metric=metric)
    index = build_index(reference, "flat", metric, farthest=farthest)
    return search_index(index, "flat", reference, prepare(queries, metric), k, farthest=farthest, metric=metric)
