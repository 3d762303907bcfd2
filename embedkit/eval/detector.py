"""`KNNDetector`: kNN-density anomaly scores behind PyOD's interface, for users who know `pyod.models.knn.KNN`."""

from __future__ import annotations

import numpy as np

from embedkit.errors import ConfigError
from embedkit.search.arrays import knn


class KNNDetector:
    """Anomaly score = mean L2 distance (not squared) to the `k` nearest training rows (PyOD `KNN(method="mean")`).

    After `fit(X)`, `decision_scores_` (N,) holds each training row's score with the row left out of its own
    neighbours, as PyOD does; `decision_function(Q)` scores new rows against all of X. Higher is more anomalous.
    Search is exact (embedkit's kNN), so scores match a brute-force reference.

        >>> import numpy as np
        >>> x = np.array([[0.0], [1.0], [2.0], [10.0]])
        >>> KNNDetector(k=1).fit(x).decision_scores_.tolist()
        [1.0, 1.0, 1.0, 8.0]
    """

    def __init__(self, k: int = 2):
        if k < 1:
            raise ConfigError(f"k={k}: k must be at least 1")
        self.k = k

    def fit(self, x: np.ndarray) -> KNNDetector:
        """Remember `x` (N, D) as the reference and score its own rows, each without itself."""
        self.reference_ = np.ascontiguousarray(x, dtype=np.float32)
        distances, _ = knn(self.reference_, self.reference_, self.k, exclude_self=True)
        self.decision_scores_ = distances.mean(axis=1, dtype=np.float64)
        return self

    def decision_function(self, queries: np.ndarray) -> np.ndarray:
        """Scores (Q,) float64 of `queries` (Q, D) against the fitted rows."""
        if not hasattr(self, "reference_"):
            raise ConfigError("KNNDetector is not fitted: call fit(X) first")
        distances, _ = knn(self.reference_, np.asarray(queries, dtype=np.float32), self.k)
        return distances.mean(axis=1, dtype=np.float64)
