"""Exact and approximate k-nearest / k-farthest search: on arrays, over a store group, and the self-join.

    >>> import numpy as np
    >>> from embedkit.search import knn
    >>> x = np.array([[0.0], [1.0], [3.0]], dtype=np.float32)
    >>> dist, rows = knn(x, x, 1, exclude_self=True)
    >>> rows.ravel().tolist(), dist.ravel().tolist()
    ([1, 0, 1], [1.0, 1.0, 2.0])
"""

from embedkit.search.index import GroupIndex, NeighborResult, make_pairs, neighbors, open_group_index
from embedkit.search.arrays import INDEX_KINDS, METRICS, knn

__all__ = ["INDEX_KINDS", "METRICS", "GroupIndex", "NeighborResult", "knn", "make_pairs", "neighbors",
           "open_group_index"]
