"""`--index auto`: exact search while it is cheap, IVF above a size, and an approximate answer that says how good it is.

Below `AUTO_FLAT_MAX_ROWS` rows a flat search (or the self-join) is exact and fast enough; above it an IVF index
(about 4 sqrt(N) lists, trained once on a seeded sample, saved beside the store) answers, with its candidates
re-ranked by true distances from the stored vectors. Its nprobe is the smallest whose recall@k on a seeded sample
of the queries reaches the target (doubling, then bisecting the last step; as autofaiss tunes its indexes), and the
recall is then measured again on a second, disjoint sample, so the number reported was not the one tuned on.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

from embedkit.errors import ConfigError
from embedkit.search.arrays import knn, search_index

AUTO_FLAT_MAX_ROWS = 200_000  # at 200,000 x 128 a flat query search still answers 1,000 queries in about 1 s here
DEFAULT_RECALL = 0.95
RECALL_QUERIES = 500  # per sample: one sample tunes nprobe, a second measures the recall reported


@dataclass(frozen=True)
class RecallEstimate:
    """recall@k of an approximate search against exact search on `n_queries` seeded queries (not those tuned on)."""

    n_queries: int
    k: int
    recall: float
    nprobe: int | None
    target: float

    def to_json(self) -> dict:
        return asdict(self)


def auto_kind(n_rows: int, farthest: bool) -> str:
    """The index kind `--index auto` uses for a group of `n_rows`: flat (exact) for small groups and farthest
    searches (which only flat answers), IVF above AUTO_FLAT_MAX_ROWS."""
    return "flat" if farthest or n_rows <= AUTO_FLAT_MAX_ROWS else "ivf"


def check_recall(target: float) -> None:
    if not 0.0 < target <= 1.0:
        raise ConfigError(f"recall target {target}: must be in (0, 1]")


def tune_and_estimate(
    index,
    kind: str,
    reference: np.ndarray,
    queries: np.ndarray,
    k: int,
    *,
    metric: str,
    self_rows: np.ndarray | None,
    target: float = DEFAULT_RECALL,
    seed: int = 0,
) -> RecallEstimate:
    """Tune an IVF index's nprobe to `target` recall@k on one seeded sample of the prepared `queries` (Q, D),
    then measure the recall on a second sample; an HNSW index is only measured. Sets `index.nprobe`."""
    check_recall(target)
    order = np.random.default_rng(seed).permutation(len(queries))
    half = min(RECALL_QUERIES, max(1, len(order) // 2))
    tune_rows, measure_rows = np.sort(order[:half]), np.sort(order[half : 2 * half])
    if len(measure_rows) == 0:  # a single query: measure on it
        measure_rows = tune_rows

    def with_exact(rows: np.ndarray) -> tuple[np.ndarray, np.ndarray | None, np.ndarray]:
        """(rows, their own reference rows, their exact neighbours): exact once per sample, whatever nprobe is tried."""
        own = None if self_rows is None else self_rows[rows]
        return rows, own, knn(reference, queries[rows], k, metric=metric, self_rows=own)[1]

    def recall_of(sample: tuple, nprobe: int | None) -> float:
        rows, own, exact = sample
        _, found = search_index(index, kind, reference, queries[rows], k, metric=metric, self_rows=own, nprobe=nprobe)
        return float(np.mean([len(np.intersect1d(a, b)) / k for a, b in zip(exact, found)]))

    nprobe = None
    if kind == "ivf":
        tune = with_exact(tune_rows)
        nprobe = _smallest_nprobe(lambda p: recall_of(tune, p) >= target, index.nlist)
        index.nprobe = nprobe
    return RecallEstimate(len(measure_rows), k, round(recall_of(with_exact(measure_rows), nprobe), 4), nprobe, target)


def _smallest_nprobe(enough, nlist: int) -> int:
    """The smallest nprobe in 1..nlist for which `enough(nprobe)` holds (recall grows with nprobe): doubling until it
    holds, then bisecting the last doubling; nlist when nothing smaller does."""
    high = 1
    while high < nlist and not enough(high):
        high = min(2 * high, nlist)
    low = high // 2  # the last nprobe found not enough (0: none tried)
    while high - low > 1:
        middle = (low + high) // 2
        low, high = (low, middle) if enough(middle) else (middle, high)
    return high
