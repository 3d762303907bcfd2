"""Exact and approximate k-nearest / k-farthest search with FAISS on arrays in memory.

Distances are TRUE distances, recomputed from the vectors for the rows found:
- metric "l2": Euclidean distance ||q - x|| (not squared);
- metric "cosine": cosine distance 1 - cos(q, x) in [0, 2] (a zero vector has cosine 0 to everything, so
  distance 1, on every index kind: HNSW and IVF hold unit rows plus a flag column that puts a zero row at
  L2 distance sqrt(2), cosine distance 1, from every unit query).
Exact searches (flat, the self-join) are exact on any float32 data, however far from the origin. Candidates are
ranked in float32 by squared L2 on rows moved to their mean and scaled by a power of two (a `Frame`; cosine ranks
flagged unit rows, half of whose squared L2 is the cosine distance), so a large common offset costs no precision
(L2 is translation invariant); a margin of `MARGIN_ROWS` candidates beyond k is then re-ranked with
distances computed directly in float64, and a query whose margin cannot be proven enough by a worst-case bound on
the float32 rounding (`score_error`) is answered by a full scan of the rows that bound cannot rule out.
Equal distances are ordered by row, on every path.

Farthest search is exact and runs at nearest-search speed through an inner-product index:
argmax_x ||q - x||^2 = argmax_x (|x|^2 - 2 q.x) = argmax_x <[q, 1], [-2x, |x|^2]> (for either metric, in the frame).

Every row against all the others (a self-join: `knn(x, x, k, exclude_self=True)`, `pairs`) needs no FAISS index:
`embedkit.search.self_join` does it exactly with half the arithmetic of a flat search.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from embedkit._util.progress import ProgressFn
from embedkit.device import default_threads
from embedkit.errors import SearchError
from embedkit.search.self_join import self_join_rows

METRICS = ("l2", "cosine")
INDEX_KINDS = ("flat", "hnsw", "ivf")
HNSW_M = 32
HNSW_EF_CONSTRUCTION = 40
HNSW_EF_SEARCH = 128
IVF_NPROBE = 32
IVF_HNSW_MIN_LISTS = 1024  # below, comparing a query with every list centre is as fast as walking a graph
IVF_HNSW_EF_SEARCH = 16  # at 1M x 128 and nprobe 4: the lists a flat quantizer picks (recall 0.981 against 0.982)
QUERY_BATCH_ROWS = 16384  # queries searched at a time: bounds memory and paces progress reports
RECOMPUTE_ELEMENTS = 1 << 22  # floats gathered at a time to recompute true distances (16 MiB)
MARGIN_ROWS = 2  # candidates beyond k that exact searches re-rank in float64 (more cost the self-join ~10% each)
FLOAT32_UNIT = 2.0**-24  # unit roundoff of float32


def load_faiss():
    """faiss, with its thread count set once from `embedkit.device.default_threads()`."""
    import faiss

    if not getattr(load_faiss, "_threads_set", False):
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


def check_query(
    n_reference: int, dim_reference: int, queries: np.ndarray, k: int, *, exclude_self: bool, where: str = "reference"
) -> None:
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
    if metric == "cosine":  # normalised in float64: unit rows correctly rounded to float32
        norms = np.sqrt(np.einsum("nd,nd->n", x, x, dtype=np.float64))[:, None]
        x = np.ascontiguousarray(x / np.where(norms > 0, norms, 1), dtype=np.float32)
    return x


class Frame:
    """Where exact searches rank candidates, by squared L2 in float32: rows minus their mean, times a power of two
    (exact) that puts them within the unit ball. L2 ranks are translation and scale invariant, so an offset far
    larger than the spread costs no float32 precision, and no score over- or underflows. Cosine rows are `flagged`
    unit rows first: half their squared L2 is the cosine distance (1 from a zero row), and nearly parallel rows,
    moved to their mean, are told apart as well as any others.
    """

    def __init__(self, reference: np.ndarray, metric: str):
        self.metric = metric
        self.half = 0.5 if metric == "cosine" else 1.0  # measure = half * squared L2 between framed rows / scale^2
        base = flagged(reference) if metric == "cosine" else reference
        if len(base) == 0:
            self.mean, self.scale, self.radius = np.zeros(base.shape[1], np.float32), 1.0, 1.0
            return
        self.mean = base.mean(axis=0, dtype=np.float64).astype(np.float32)
        with np.errstate(over="ignore"):  # rows near float32's limit (not from a store): scanned, in float64
            centred = base - self.mean  # what __call__ computes, before its exact power-of-two scaling
        longest = float(np.sqrt(np.einsum("nd,nd->n", centred, centred, dtype=np.float64).max()))
        self.scale = float(2.0 ** -np.ceil(np.log2(longest))) if longest > 0 else 1.0
        self.radius = longest * self.scale * (1 + 1e-6)  # no framed reference row is longer

    def __call__(self, x: np.ndarray) -> np.ndarray:
        """Prepared rows `x` (n, D) in the frame, float32 (n, D), or (n, D + 1) for cosine."""
        base = flagged(x) if self.metric == "cosine" else x
        with np.errstate(over="ignore"):  # a query far outside the frame: its bound is inf, so it is scanned
            return np.ascontiguousarray((base - self.mean) * np.float32(self.scale), dtype=np.float32)

    def measure(self, squared: np.ndarray) -> np.ndarray:
        """Squared L2 between framed rows (float64) as the measure: squared L2 or cosine distance of the rows."""
        return squared * (self.half / self.scale**2)


def score_error(framed_queries: np.ndarray, radius: float) -> np.ndarray:
    """(Q,) float64: a worst-case bound on the float32 rounding of any score (a squared distance) between a framed
    query and a framed row no longer than `radius`, in the frame's units (see `Frame.measure`).

    A score is a dot product of D + 2 terms plus two squared norms of D terms: about 2D + 4 roundings, each at
    most FLOAT32_UNIT times (|q| + |x|)^2; 2D + 16 of them leave room for the centring's own roundings.
    """
    d = framed_queries.shape[1]
    norms = np.sqrt(np.einsum("qd,qd->q", framed_queries, framed_queries, dtype=np.float64))
    return (2 * d + 16) * FLOAT32_UNIT * (norms + radius) ** 2


def index_name(kind: str, metric: str, farthest: bool) -> str:
    """The index's file-name tag: the L2 farthest index is a different (augmented) flat index."""
    return "flat-far" if (farthest and metric == "l2") else kind


def build_index(
    reference: np.ndarray, kind: str = "flat", metric: str = "l2", *, farthest: bool = False, frame: Frame | None = None
):
    """A FAISS index over `reference` (N, D), already prepared for `metric` (see `prepare`).

    Flat indexes hold the rows in their `Frame` (`frame`, if the caller made it already, is `Frame(reference,
    metric)`: pass the same one to `search_index`); HNSW and IVF cosine indexes hold `flagged` rows.
    """
    faiss = load_faiss()
    if kind == "flat":  # squared L2 in the frame, for either metric
        framed = (frame or Frame(reference, metric))(reference)
        if farthest:
            augmented = np.hstack([-2.0 * framed, np.einsum("nd,nd->n", framed, framed)[:, None]])
            index = faiss.IndexFlatIP(framed.shape[1] + 1)
            index.add(np.ascontiguousarray(augmented, dtype=np.float32))
        else:
            index = faiss.IndexFlatL2(framed.shape[1])
            index.add(framed)
        return index
    rows = approximate_rows(reference, metric)
    if kind == "hnsw":
        index = faiss.IndexHNSWFlat(rows.shape[1], HNSW_M)
        index.hnsw.efConstruction = HNSW_EF_CONSTRUCTION
    else:
        index = trained_ivf(rows)
    index.add(rows)
    return index


def approximate_rows(reference: np.ndarray, metric: str) -> np.ndarray:
    """The rows an HNSW or IVF index holds: prepared rows, `flagged` for cosine (L2 on them ranks like cosine)."""
    return flagged(reference) if metric == "cosine" else reference


def flagged(x: np.ndarray) -> np.ndarray:
    """Prepared cosine rows (N, D) plus a column that is 1 on zero rows, 0 on unit rows (N, D + 1).

    L2 between flagged rows ranks like cosine distance with flat's definition: a unit query q is at
    |q - (0, 1)|^2 = 2 = 2 - 2 cos from a zero row, so cosine 0 (distance 1), as from an orthogonal row.
    """
    return np.ascontiguousarray(np.hstack([x, (~x.any(axis=1))[:, None].astype(np.float32)]))


def trained_ivf(reference: np.ndarray):
    """An empty IVF-Flat index for `reference` (N, D), trained: about 4 sqrt(N) lists (at least 39 training points
    per list, as FAISS asks), their centres from k-means on a seeded sample of up to 64 rows per list. From
    IVF_HNSW_MIN_LISTS lists on, an HNSW graph over the centres picks the lists to probe (measured at 1M x 128:
    the same recall at nprobe 4, and 1.4x the queries/s of comparing every centre)."""
    faiss = load_faiss()
    n, d = reference.shape
    nlist = max(1, min(int(4 * np.sqrt(n)), n // 39))
    if nlist >= IVF_HNSW_MIN_LISTS:
        index = faiss.index_factory(d, f"IVF{nlist}_HNSW{HNSW_M},Flat")
    else:
        quantizer = faiss.IndexFlatL2(d)
        index = faiss.IndexIVFFlat(quantizer, d, nlist)
    if nlist == 1:  # one list holds everything: nothing to train
        quantizer.add(reference.mean(axis=0, keepdims=True))
        index.is_trained = True
    else:
        sample = np.random.default_rng(0).choice(n, size=min(n, 64 * nlist), replace=False)
        index.train(reference[np.sort(sample)])
    return index


def _configure(index, kind: str, nprobe: int | None = None) -> None:
    if kind == "hnsw":
        index.hnsw.efSearch = HNSW_EF_SEARCH
    elif kind == "ivf":
        index.nprobe = min(nprobe or IVF_NPROBE, index.nlist)
        faiss = load_faiss()
        quantizer = faiss.downcast_index(index.quantizer)
        if isinstance(quantizer, faiss.IndexHNSW):  # its search must look at least nprobe centres deep
            quantizer.hnsw.efSearch = max(IVF_HNSW_EF_SEARCH, index.nprobe)


def search_index(
    index,
    kind: str,
    reference: np.ndarray,
    queries: np.ndarray,
    k: int,
    *,
    farthest: bool = False,
    metric: str = "l2",
    self_rows: np.ndarray | None = None,
    on_progress: ProgressFn | None = None,
    frame: Frame | None = None,
    nprobe: int | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Search prepared `queries` (Q, D) in `index` built over prepared `reference` (N, D) by `build_index`
    (with `frame`, the flat index's `Frame`, when the caller kept it: it is computed again otherwise).
    `nprobe`: the IVF lists searched (default IVF_NPROBE; `embedkit.search.approximate` tunes it).

    `self_rows` (Q,): each query's own row in reference, never returned as its neighbour. A flat index answers
    exactly (k + MARGIN_ROWS candidates re-ranked in float64, see the module docstring).
    Returns (distances (Q, k) float32, rows (Q, k) int64), nearest first (farthest first with `farthest`).
    """
    if kind == "flat" and is_whole_self_join(self_rows, len(reference), len(queries)):
        return self_knn(reference, k, farthest=farthest, metric=metric, on_progress=on_progress)
    _configure(index, kind, nprobe)
    exact = kind == "flat"
    frame = (frame or Frame(reference, metric)) if exact else None
    kk = min(len(reference), k + (self_rows is not None) + (MARGIN_ROWS if exact else 0))
    q_total = len(queries)
    distances = np.empty((q_total, k), np.float32)
    rows = np.empty((q_total, k), np.int64)
    if on_progress is not None:
        on_progress(0, q_total)
    for start in range(0, q_total, QUERY_BATCH_ROWS):
        stop = min(start + QUERY_BATCH_ROWS, q_total)
        own = None if self_rows is None else self_rows[start:stop]
        batch = queries[start:stop]
        searched = frame(batch) if exact else batch
        scores, found = _raw_search(index, kind, reference, searched, kk, farthest, metric)
        if own is not None:
            found = _drop_self(found, own)
        if exact:
            last = (
                _index_measure(scores[:, -1], searched, farthest, frame)
                if kk < len(reference)
                else np.full(len(batch), -np.inf if farthest else np.inf)
            )
            distances[start:stop], rows[start:stop] = _refine(
                reference, batch, found, last, k, metric, farthest, frame, searched, own
            )
        else:
            measure, found = _ranked(reference, batch, found, metric, farthest)
            distances[start:stop], rows[start:stop] = _distances(measure[:, :k], metric), found[:, :k]
        if on_progress is not None:
            on_progress(stop, q_total)
    return distances, rows


def is_whole_self_join(self_rows: np.ndarray | None, n_reference: int, n_queries: int) -> bool:
    """True when the queries are every reference row, in order (`self_rows` is 0..N-1): a self-join."""
    return self_rows is not None and n_queries == n_reference and np.array_equal(self_rows, np.arange(n_reference))


def self_knn(
    reference: np.ndarray,
    k: int,
    *,
    farthest: bool = False,
    metric: str = "l2",
    on_progress: ProgressFn | None = None,
    join: Callable[..., tuple[np.ndarray, np.ndarray]] = self_join_rows,
) -> tuple[np.ndarray, np.ndarray]:
    """Exact k nearest (farthest) other rows of every row of prepared `reference` (N, D), without an index.

    Returns (distances (N, k) float32, rows (N, k) int64), sorted like `search_index`. Half the arithmetic of a
    flat search of the rows against themselves (see `embedkit.search.self_join`), on the rows in their `Frame`.
    `join`: what finds the candidates, `self_join_rows` or a function with its signature (Ray's, which shares
    the score blocks among actors); the re-ranking that makes the answer exact runs here either way.
    """
    n = len(reference)
    frame = Frame(reference, metric)
    framed = frame(reference)
    kk = min(k + MARGIN_ROWS, n - 1)
    rows, worst = join(framed, kk, farthest=farthest, metric="l2", on_progress=on_progress)
    if kk < n - 1:  # self-join scores: squared distances in the frame, negated for farthest
        last = frame.measure(-worst.astype(np.float64) if farthest else worst.astype(np.float64))
    else:
        last = np.full(n, -np.inf if farthest else np.inf)
    return _refine(reference, reference, rows, last, k, metric, farthest, frame, framed, np.arange(n))


def _raw_search(index, kind, reference, queries, kk, farthest, metric) -> tuple[np.ndarray, np.ndarray]:
    """(scores, rows) (Q, kk) from the index; `queries` are framed for a flat index, prepared otherwise."""
    if farthest:  # flat only
        searched = np.hstack([queries, np.ones((len(queries), 1), np.float32)])
    elif metric == "cosine" and kind != "flat":
        searched = np.hstack([queries, np.zeros((len(queries), 1), np.float32)])
    else:
        searched = queries
    scores, rows = index.search(np.ascontiguousarray(searched, dtype=np.float32), kk)
    missing = (rows < 0).any(axis=1)
    if missing.any():  # an approximate index found too few: answer those queries exactly
        exact = build_index(reference, "flat", metric)
        rows[missing] = exact.search(Frame(reference, metric)(queries[missing]), kk)[1]
    return scores, rows


def _index_measure(scores: np.ndarray, framed: np.ndarray, farthest: bool, frame: Frame) -> np.ndarray:
    """A flat index's float32 scores (Q,) as approximate measures (squared L2 or cosine distance), float64."""
    scores = scores.astype(np.float64)
    if farthest:  # <[q, 1], [-2x, |x|^2]> = |q - x|^2 - |q|^2
        scores = scores + np.einsum("qd,qd->q", framed, framed, dtype=np.float64)
    return frame.measure(scores)


def _drop_self(rows: np.ndarray, self_rows: np.ndarray) -> np.ndarray:
    """Drop each query's own row (by identity, not by distance 0), else the last of the k+1 found."""
    is_self = rows == self_rows[:, None]
    is_self[~is_self.any(axis=1), -1] = True
    return rows[~is_self].reshape(len(rows), -1)


def _exact_measures(reference: np.ndarray, queries: np.ndarray, rows: np.ndarray, metric: str) -> np.ndarray:
    """(Q, m) float64 squared L2 (or cosine) distances of `queries` (Q, D) to their `rows` (Q, m), from
    differences taken in float64: exact for float32 inputs, whatever their offset."""
    out = np.empty(rows.shape, np.float64)
    step = max(1, RECOMPUTE_ELEMENTS // max(1, rows.shape[1] * reference.shape[1]))  # bounds the (q, m, D) gather
    for start in range(0, len(rows), step):
        found = reference[rows[start : start + step]].astype(np.float64)  # (q, m, D)
        q = queries[start : start + step, None, :].astype(np.float64)
        diff = found - q
        measure = np.einsum("qkd,qkd->qk", diff, diff)
        if metric == "cosine":  # unit rows: 1 - cos = |x - q|^2 / 2; a zero row has cosine 0
            zero = ~found.any(axis=2) | ~q.any(axis=2)
            measure = np.where(zero, 1.0, np.clip(measure / 2, 0.0, 2.0))
        out[start : start + step] = measure
    return out


def _refine(reference, queries, rows, last, k, metric, farthest, frame, framed, self_rows):
    """The exact k best of candidate `rows` (Q, m), ordered by exact distance then row.

    `last` (Q,) is the approximate measure of the best row that is NOT a candidate (inf, -inf farthest, if every
    row is one). A query whose k-th exact measure is not beaten by `last` beyond `score_error` could have missed
    a row, so it is answered by `_scan`.
    """
    measure, rows = (a[:, :k] for a in _ranked(reference, queries, rows, metric, farthest))
    error = frame.measure(score_error(framed, frame.radius))
    kth = measure[:, -1]
    proven = last + error < kth if farthest else last - error > kth
    if metric == "cosine":  # a zero query is at cosine distance 1 from every row: the first rows, by the tie rule
        for q in np.flatnonzero(~queries.any(axis=1)):
            rows[q] = [r for r in range(k + 1) if self_rows is None or r != self_rows[q]][:k]
            measure[q], proven[q] = 1.0, True
    unproven = np.flatnonzero(~proven)
    if len(unproven):
        own = None if self_rows is None else np.asarray(self_rows)[unproven]
        rows[unproven] = _scan(
            reference,
            frame,
            queries[unproven],
            framed[unproven],
            kth[unproven],
            error[unproven],
            k,
            metric,
            farthest,
            own,
        )
        measure[unproven] = _exact_measures(reference, queries[unproven], rows[unproven], metric)
    return _distances(measure, metric), rows


def _ranked(reference, queries, rows, metric, farthest) -> tuple[np.ndarray, np.ndarray]:
    """Exact measures of `queries` to their `rows` (Q, m) and those rows, best first, equal measures by row."""
    measure = _exact_measures(reference, queries, rows, metric)
    order = np.lexsort((rows, -measure if farthest else measure), axis=-1)
    return np.take_along_axis(measure, order, 1), np.take_along_axis(rows, order, 1)


def _distances(measure: np.ndarray, metric: str) -> np.ndarray:
    """Measures (squared L2 or cosine distance) as the distances returned: float32 L2 or cosine distance."""
    return (np.sqrt(measure) if metric == "l2" else measure).astype(np.float32)


def _scan(reference, frame, queries, framed, kth, error, k, metric, farthest, self_rows) -> np.ndarray:
    """Rows (Q, k) of the exact k best for each query, from every row whose float32 score, within `error`, could
    be as good as `kth` (the exact k-th measure of k rows already found, so the true k best are among them)."""
    out = np.empty((len(queries), k), np.int64)
    framed_reference = frame(reference)
    ref_norms = np.einsum("nd,nd->n", framed_reference, framed_reference)
    step = max(1, RECOMPUTE_ELEMENTS // len(reference))
    for start in range(0, len(queries), step):
        q = framed[start : start + step]
        with np.errstate(over="ignore", invalid="ignore"):
            dots = (q @ framed_reference.T).astype(np.float64)
            approx = frame.measure(np.einsum("qd,qd->q", q, q)[:, None] + ref_norms[None, :] - 2 * dots)
            bound = error[start : start + step, None]
            beaten = (
                approx + bound < kth[start : start + step, None]
                if farthest
                else approx - bound > kth[start : start + step, None]
            )
        for i in range(len(q)):
            keep = ~beaten[i]
            if self_rows is not None:
                keep[self_rows[start + i]] = False
            candidates = np.flatnonzero(keep)
            out[start + i] = _ranked(
                reference, queries[start + i : start + i + 1], candidates[None, :], metric, farthest
            )[1][0, :k]
    return out


def knn(
    reference: np.ndarray,
    queries: np.ndarray,
    k: int,
    *,
    farthest: bool = False,
    exclude_self: bool = False,
    self_rows: np.ndarray | None = None,
    metric: str = "l2",
) -> tuple[np.ndarray, np.ndarray]:
    """Exact k nearest (or farthest) rows of `reference` (N, D) for each of `queries` (Q, D).

    `exclude_self=True` means the queries ARE the reference rows, in order: a row is never its own neighbour.
    `self_rows` (Q,) says the same of some rows: query i is reference row self_rows[i], never its own neighbour.
    Returns (distances (Q, k) float32, true L2 or cosine distances; rows (Q, k) int64 row positions in reference).

        >>> import numpy as np
        >>> x = np.array([[0.0], [1.0], [3.0]], dtype=np.float32)
        >>> distances, rows = knn(x, x, 1, exclude_self=True)
        >>> rows.ravel().tolist(), distances.ravel().tolist()
        ([1, 0, 1], [1.0, 1.0, 2.0])
    """
    check_options(metric, "flat", farthest)
    reference, queries = np.asarray(reference), np.asarray(queries)
    if reference.ndim != 2:
        raise SearchError(f"reference must be (N, D), got shape {reference.shape}")
    if exclude_self and len(queries) != len(reference):
        raise SearchError(
            f"exclude_self needs the queries to be the {len(reference)} reference rows, got {len(queries)}"
        )
    if self_rows is not None:
        self_rows = np.asarray(self_rows, dtype=np.int64).reshape(-1)
        if len(self_rows) != len(queries) or not ((self_rows >= 0) & (self_rows < len(reference))).all():
            raise SearchError(f"self_rows must be {len(queries)} row positions of the {len(reference)} reference rows")
    excluding = exclude_self or self_rows is not None
    check_query(len(reference), reference.shape[1], queries, k, exclude_self=excluding)
    if not np.isfinite(reference).all():
        raise SearchError("reference contains NaN or inf")
    reference = prepare(reference, metric)
    if exclude_self:
        return self_knn(reference, k, farthest=farthest, metric=metric)
    frame = Frame(reference, metric)
    index = build_index(reference, "flat", metric, farthest=farthest, frame=frame)
    queries = prepare(queries, metric)
    return search_index(
        index, "flat", reference, queries, k, farthest=farthest, metric=metric, self_rows=self_rows, frame=frame
    )
