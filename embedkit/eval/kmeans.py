"""k-means as map-reduce over row blocks, so the same Lloyd steps run in this process or as Ray tasks.

Centres start from k-means++ on a seeded sample of the rows. Each Lloyd step maps every block of rows to its
per-cluster sums (float64), counts and squared distances, and reduces them in block order: the same blocks in the
same order on either engine, so `engine="ray"` gives the local centres, assignments and inertia exactly. A cluster
that loses all its rows keeps its centre. It stops when the centres move less than `tol` times the mean variance
of the data (scikit-learn's criterion) or after `max_iter` steps.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from embedkit._util.sampling import seeded_rows

BLOCK_ROWS = 65_536
INIT_SAMPLE_ROWS = 20_000


@dataclass(frozen=True)
class KMeansResult:
    centers: np.ndarray  # (k, D) float32
    assignments: np.ndarray  # (N,) int64
    inertia: float
    iterations: int


def seeded_init(x: np.ndarray, k: int, seed: int) -> np.ndarray:
    """(k, D) float64 starting centres: k-means++ on up to INIT_SAMPLE_ROWS rows drawn with `seed`."""
    from sklearn.cluster import kmeans_plusplus

    sample = x[seeded_rows(len(x), INIT_SAMPLE_ROWS, seed)]
    centers, _ = kmeans_plusplus(sample.astype(np.float64), k, random_state=seed)
    return centers


def _assign_block(block: np.ndarray, centers: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(nearest centre (B,), per-cluster sums (k, D), counts (k,), squared distances (B,)) of one block, float64."""
    x = block.astype(np.float64)
    d2 = (x * x).sum(1)[:, None] - 2.0 * x @ centers.T + (centers * centers).sum(1)[None, :]
    nearest = d2.argmin(axis=1)
    squared = np.maximum(d2[np.arange(len(x)), nearest], 0.0)
    sums = np.zeros_like(centers)
    np.add.at(sums, nearest, x)
    return nearest, sums, np.bincount(nearest, minlength=len(centers)), squared


def lloyd(
    x: np.ndarray,
    centers: np.ndarray,
    *,
    max_iter: int = 300,
    tol: float = 1e-4,
    engine: str = "local",
    block_rows: int = BLOCK_ROWS,
) -> KMeansResult:
    """Lloyd's k-means of `x` (N, D) from `centers` (k, D); `engine="ray"` maps the blocks to Ray tasks (in an
    open `embedkit.search.engines.ray_session`), with the same result."""
    starts = range(0, len(x), block_rows)
    if engine == "ray":
        from embedkit.search.engines import load_ray

        ray = load_ray()
        task = ray.remote(_assign_block)
        blocks = [ray.put(np.ascontiguousarray(x[s : s + block_rows])) for s in starts]

        def map_blocks(c: np.ndarray) -> list:
            return ray.get([task.remote(block, c) for block in blocks])

    else:

        def map_blocks(c: np.ndarray) -> list:
            return [_assign_block(x[s : s + block_rows], c) for s in starts]

    threshold = tol * float(np.mean(np.var(x.astype(np.float64), axis=0)))
    centers = np.asarray(centers, dtype=np.float64)
    iterations = 0
    while iterations < max_iter:
        iterations += 1
        parts = map_blocks(centers)
        sums = sum(part[1] for part in parts)
        counts = sum(part[2] for part in parts)
        moved = np.where(counts[:, None] > 0, sums / np.maximum(counts, 1)[:, None], centers)
        shift = float(((moved - centers) ** 2).sum())
        centers = moved
        if shift <= threshold:
            break
    parts = map_blocks(centers)
    assignments = np.concatenate([part[0] for part in parts]).astype(np.int64)
    inertia = float(sum(part[3].sum() for part in parts))
    return KMeansResult(centers.astype(np.float32), assignments, inertia, iterations)
