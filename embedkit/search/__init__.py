"""Exact and approximate k-nearest / k-farthest search: on arrays, over a store group, and the self-join.

>>> import numpy as np
>>> from embedkit.search import knn
>>> x = np.array([[0.0], [1.0], [3.0]], dtype=np.float32)
>>> dist, rows = knn(x, x, 1, exclude_self=True)
>>> rows.ravel().tolist(), dist.ravel().tolist()
([1, 0, 1], [1.0, 1.0, 2.0])
"""

from typing import TYPE_CHECKING

from embedkit._util.lazy import lazy_exports

if TYPE_CHECKING:  # for type checkers and IDEs; at run time each name loads on first use
    from embedkit.search.arrays import INDEX_KINDS, METRICS, knn
    from embedkit.search.index import GroupIndex, NeighborResult, make_pairs, neighbors, open_group_index

__all__ = [
    "INDEX_KINDS",
    "METRICS",
    "GroupIndex",
    "NeighborResult",
    "knn",
    "make_pairs",
    "neighbors",
    "open_group_index",
]

__getattr__, __dir__ = lazy_exports(
    __name__,
    {
        "GroupIndex": "embedkit.search.index",
        "NeighborResult": "embedkit.search.index",
        "make_pairs": "embedkit.search.index",
        "neighbors": "embedkit.search.index",
        "open_group_index": "embedkit.search.index",
        "INDEX_KINDS": "embedkit.search.arrays",
        "METRICS": "embedkit.search.arrays",
        "knn": "embedkit.search.arrays",
    },
)
