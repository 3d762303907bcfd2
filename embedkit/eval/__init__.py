"""Evaluations of frozen embeddings: linear probe, kNN anomaly scores, k-means, 2-D maps, retrieval, explorer.

>>> import numpy as np
>>> from embedkit.eval import KNNDetector
>>> detector = KNNDetector(k=1).fit(np.array([[0.0], [1.0], [2.0]]))
>>> detector.decision_function(np.array([[1.0], [5.0]])).tolist()
[0.0, 3.0]
"""

from typing import TYPE_CHECKING

from embedkit._util.lazy import lazy_exports

if TYPE_CHECKING:  # for type checkers and IDEs; at run time each name loads on first use
    from embedkit.eval.anomaly import anomaly_store, detect_anomalies, knn_scores
    from embedkit.eval.cluster import cluster_embeddings, cluster_store
    from embedkit.eval.detector import KNNDetector
    from embedkit.eval.explore import write_explorer
    from embedkit.eval.maps import map_store, project_2d
    from embedkit.eval.probe import effective_rank, linear_probe, probe_store
    from embedkit.eval.retrieval import retrieve_store

__all__ = [
    "KNNDetector",
    "anomaly_store",
    "cluster_embeddings",
    "cluster_store",
    "detect_anomalies",
    "effective_rank",
    "knn_scores",
    "linear_probe",
    "map_store",
    "probe_store",
    "project_2d",
    "retrieve_store",
    "write_explorer",
]

__getattr__, __dir__ = lazy_exports(
    __name__,
    {
        "anomaly_store": "embedkit.eval.anomaly",
        "detect_anomalies": "embedkit.eval.anomaly",
        "knn_scores": "embedkit.eval.anomaly",
        "cluster_embeddings": "embedkit.eval.cluster",
        "cluster_store": "embedkit.eval.cluster",
        "KNNDetector": "embedkit.eval.detector",
        "map_store": "embedkit.eval.maps",
        "project_2d": "embedkit.eval.maps",
        "effective_rank": "embedkit.eval.probe",
        "linear_probe": "embedkit.eval.probe",
        "probe_store": "embedkit.eval.probe",
        "retrieve_store": "embedkit.eval.retrieval",
        "write_explorer": "embedkit.eval.explore",
    },
)
