"""Exact k nearest (or farthest) neighbours of every row of a set among the other rows: the self-join.

`embedkit pairs` and `neighbors` over a whole group ask this question. A flat FAISS search answers it with one
matrix product per query block against every row, and that product is almost all of its time. The score matrix
of a set against itself is symmetric, so here each block pair (I, J) with J >= I is multiplied once and serves
both sides: rows I look for neighbours in J, rows J in I. Half the products, the same exact answer.

Scores (smaller is better), from one matrix product of augmented rows (no extra pass over the block):
- l2 nearest:  |x_i|^2 + |x_j|^2 - 2 x_i.x_j = <[x_i, |x_i|^2, 1], [-2 x_j, 1, |x_j|^2]>  (squared distance)
- cosine nearest: -x_i.x_j on unit rows; farthest (either metric): the negated score.
Each row keeps its k best (score, row) so far; a block only touches the entries at or below that row's current
k-th score (a NumPy comparison and `flatnonzero`), and a worker thread computes the next block's product while
this one is searched. Scores rank candidates only: callers pass rows in a frame (centred, scaled) and re-rank a
margin of candidates from exact differences (see `embedkit.search.arrays`). 50,000 x 128, k = 3 on 2 cores: about 7 s,
against about 10 s for a flat FAISS search.
"""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

import numpy as np

from embedkit._util.progress import ProgressFn

BLOCK_ROWS = 2048  # block side: a (2048, 2048) float32 score block is 16 MiB; two are in flight


def block_pairs(n: int, block_rows: int = BLOCK_ROWS) -> list[tuple[int, int]]:
    """The (I, J >= I) block pairs, by first row, whose score blocks together cover every pair of rows once."""
    return [(i0, j0) for i0 in range(0, n, block_rows) for j0 in range(i0, n, block_rows)]


def self_join_rows(
    reference: np.ndarray,
    k: int,
    *,
    farthest: bool = False,
    metric: str = "l2",
    block_rows: int = BLOCK_ROWS,
    on_progress: ProgressFn | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Rows (N, k) int64 of the k nearest (farthest) other rows of each row of `reference` (N, D), unordered,
    and each row's worst score among them (N,) float32: no other row scored better in float32.

    `reference` is already prepared for `metric` (float32; unit rows for cosine) and needs N >= k + 1.
    Two threads: a worker computes the next score block (single-threaded BLAS) while this thread selects from
    the current one. On 2 cores that keeps both busy, and no BLAS thread spins waiting on a busy core.
    """
    join = SelfJoin(reference, k, farthest=farthest, metric=metric, block_rows=block_rows)
    pairs = block_pairs(len(reference), block_rows)
    done = [0]

    def on_block() -> None:
        done[0] += 1
        if on_progress is not None:
            on_progress(len(reference) * done[0] // len(pairs), len(reference))

    join.run(pairs, on_block)
    return join.rows, join.kth


class SelfJoin:
    """Each row's k best other rows over the score blocks offered so far: `run` any of the `block_pairs`, on any
    number of these (one per Ray actor, say), and `merge` them: disjoint sets of blocks give the answer of their
    union, the same rows and scores as one pass over all of them."""

    def __init__(self, reference: np.ndarray, k: int, *, farthest: bool, metric: str, block_rows: int = BLOCK_ROWS):
        self.reference, self.farthest, self.metric = reference, farthest, metric
        self.block_rows = block_rows
        self._best = _Best(len(reference), k)
        self._empty = True  # nothing offered yet: a merge is then a copy

    @property
    def rows(self) -> np.ndarray:
        return self._best.rows

    @property
    def kth(self) -> np.ndarray:
        return self._best.kth

    def state(self) -> tuple[np.ndarray, np.ndarray]:
        """(scores, rows), each (N, k), of the blocks run here: what `merge` takes from another SelfJoin."""
        return self._best.scores, self._best.rows

    def merge(self, scores: np.ndarray, rows: np.ndarray) -> None:
        """Take in another SelfJoin's `state()`, made on the same reference from other blocks."""
        if self._empty:
            self._best.scores[:], self._best.rows[:] = scores, rows
            self._best.kth[:] = scores[:, -1]
            self._empty = False
            return
        known = rows >= 0
        queries = np.broadcast_to(np.arange(len(rows))[:, None], rows.shape)[known]
        if len(queries):
            self._best.merge(queries, rows[known], scores[known])

    def run(self, pairs: list[tuple[int, int]], on_block: Callable[[], None] | None = None) -> None:
        """Offer the score blocks of `pairs` (from `block_pairs`); `on_block()` after each."""
        from threadpoolctl import threadpool_limits

        if not pairs:
            return
        self._empty = False
        n, block_rows, reference, metric, farthest = (
            len(self.reference),
            self.block_rows,
            self.reference,
            self.metric,
            self.farthest,
        )
        side = min(block_rows, n)
        buffers = [np.empty((side, side), np.float32) for _ in range(2)]
        mask = np.empty((side, side), bool)

        def product(t: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
            """Score block t into buffer t % 2: (block, rows_i, rows_j)."""
            (i0, j0), out = pairs[t], buffers[t % 2]
            rows_i, rows_j = np.arange(i0, min(i0 + block_rows, n)), np.arange(j0, min(j0 + block_rows, n))
            block = out[: len(rows_i), : len(rows_j)]
            np.matmul(
                _augmented(reference[rows_i], metric, right=False, farthest=farthest),
                _augmented(reference[rows_j], metric, right=True, farthest=farthest).T,
                out=block,
            )
            if i0 == j0:
                np.fill_diagonal(block, np.inf)  # keeps a row's own score out of its first bound
            return block, rows_i, rows_j

        with threadpool_limits(limits=1, user_api="blas"), ThreadPoolExecutor(max_workers=1) as worker:
            next_block = worker.submit(product, 0)
            for t, (i0, j0) in enumerate(pairs):
                block, rows_i, rows_j = next_block.result()
                if t + 1 < len(pairs):  # its buffer is the other one: free since block t - 1 was selected
                    next_block = worker.submit(product, t + 1)
                window = mask[: len(rows_i), : len(rows_j)]
                self._best.update(block, window, rows_i, rows_j, axis=1, diagonal=i0 == j0)
                if i0 != j0:
                    self._best.update(block, window, rows_j, rows_i, axis=0)
                if on_block is not None:
                    on_block()


def _augmented(x: np.ndarray, metric: str, *, right: bool, farthest: bool) -> np.ndarray:
    """Rows whose products give the score block: left [x, |x|^2, 1], right [-2x, 1, |x|^2] for l2 (see above)."""
    if metric == "l2":
        norms, ones = np.einsum("nd,nd->n", x, x)[:, None], np.ones((len(x), 1), np.float32)
        out = np.hstack([-2.0 * x, ones, norms]) if right else np.hstack([x, norms, ones])
    else:
        out = -x if right else x
    return np.ascontiguousarray(-out if (right and farthest) else out, dtype=np.float32)


class _Best:
    """Each row's k best (score, row) so far, and its k-th score (inf until k are known)."""

    def __init__(self, n: int, k: int):
        self.k = k
        self.scores = np.full((n, k), np.inf, np.float32)
        self.rows = np.full((n, k), -1, np.int64)
        self.kth = np.full(n, np.inf, np.float32)

    def update(
        self,
        block: np.ndarray,
        mask: np.ndarray,
        queries: np.ndarray,
        candidates: np.ndarray,
        *,
        axis: int,
        diagonal: bool = False,
    ) -> None:
        """Offer the scores in `block` to rows `queries`: its rows (axis=1) or its columns (axis=0).

        `mask` is a bool buffer shaped like `block`; the comparison runs in the block's memory order either way.
        """
        bound = self.kth[queries]
        fresh = np.isinf(bound)
        if fresh.any() and block.shape[axis] >= self.k:  # the first block these rows see bounds them by its k-th
            bound = bound.copy()
            part = np.partition(block[fresh] if axis == 1 else block[:, fresh], self.k - 1, axis=axis)
            bound[fresh] = part[:, self.k - 1] if axis == 1 else part[self.k - 1]
        np.less_equal(block, bound[:, None] if axis == 1 else bound[None, :], out=mask)
        if diagonal:
            np.fill_diagonal(mask, False)  # a row is never its own neighbour
        r, c = np.divmod(np.flatnonzero(mask), block.shape[1])
        query, candidate = (r, c) if axis == 1 else (c, r)
        if len(r):
            self.merge(queries[query], candidates[candidate], block[r, c])

    def merge(self, queries: np.ndarray, candidates: np.ndarray, scores: np.ndarray) -> None:
        """Keep, for each query row, the k best of what it had and the new (candidate, score) entries."""
        k, touched = self.k, np.unique(queries)
        all_q = np.concatenate([np.repeat(touched, k), queries])
        all_s = np.concatenate([self.scores[touched].ravel(), scores])
        all_r = np.concatenate([self.rows[touched].ravel(), candidates])
        order = np.lexsort((all_r, all_s, all_q))  # by query row, then score, then candidate row
        firsts = np.searchsorted(all_q[order], touched)
        keep = order[(firsts[:, None] + np.arange(k)).ravel()]
        self.scores[touched] = all_s[keep].reshape(-1, k)
        self.rows[touched] = all_r[keep].reshape(-1, k)
        self.kth[touched] = self.scores[touched, k - 1]
