"""One seeded sample of rows, used wherever embedkit looks at part of a set (subsets, map and silhouette samples, the
PCA fit), so the same seed always picks the same rows."""

from __future__ import annotations

import numpy as np


def seeded_rows(n: int, size: int | None, seed: int) -> np.ndarray:
    """Sorted rows (M,) int64 of 0..n-1: all of them when `size` is None or >= n, else `size` drawn without
    replacement with `seed` (sorted, so a class-ordered split keeps its order and every class is sampled).

        >>> seeded_rows(5, None, 0).tolist()
        [0, 1, 2, 3, 4]
        >>> len(seeded_rows(1000, 3, 0)), seeded_rows(1000, 3, 0).tolist() == seeded_rows(1000, 3, 0).tolist()
        (3, True)
    """
    if size is None or size >= n:
        return np.arange(n, dtype=np.int64)
    return np.sort(np.random.default_rng(seed).choice(n, size, replace=False)).astype(np.int64)
