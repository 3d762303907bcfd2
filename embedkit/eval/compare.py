"""One row of numbers per store, the same for `embedkit compare` and the study's table."""

from __future__ import annotations

from pathlib import Path
from typing import Callable

from embedkit.eval.anomaly import anomaly_store
from embedkit.eval.cluster import cluster_store
from embedkit.eval.probe import effective_rank, probe_store
from embedkit.store.store import open_store

TRAIN_GROUP, TEST_GROUP, OOD_GROUP = "cifar10/train", "cifar10/test", "mnist/test"


def evaluate_store(store: Path, *, anomaly_k: int = 2, cluster_k: int = 10, seed: int = 0,
                   data_root: Path | None = None, device: str = "auto") -> dict:
    """Linear probe, kNN accuracy, effective rank, ROC-AUC vs MNIST (when the store has it) and k-means scores.

    Reads groups cifar10/train and cifar10/test, and mnist/test for the ROC-AUC (None without it).
    """
    probe = probe_store(store, TRAIN_GROUP, TEST_GROUP)
    handle = open_store(store)
    rank = effective_rank(handle.read(TEST_GROUP).embeddings)
    roc_auc = None
    if OOD_GROUP in handle:
        roc_auc = anomaly_store(store, OOD_GROUP, anomaly_k, data_root=data_root, device=device).result.roc_auc
    clusters = cluster_store(store, TEST_GROUP, cluster_k, seed=seed)
    return {"store": str(store), "linear_probe": probe.accuracy, "knn_accuracy": probe.knn_accuracy,
            "effective_rank": rank["entropy_rank"], "rank_1pct": rank["rank_1pct"], "roc_auc_mnist": roc_auc,
            "silhouette": clusters.silhouette_kmeans, "ari": clusters.ari, "nmi": clusters.nmi}


def compare_stores(stores: list[Path], *, anomaly_k: int = 2, cluster_k: int = 10, seed: int = 0,
                   data_root: Path | None = None, device: str = "auto",
                   on_store: Callable[[Path], None] | None = None) -> dict[str, dict]:
    """{store file stem: `evaluate_store` row}, in the order given; `on_store` is told before each store."""
    rows = {}
    for path in stores:
        if on_store is not None:
            on_store(Path(path))
        rows[Path(path).stem] = evaluate_store(Path(path), anomaly_k=anomaly_k, cluster_k=cluster_k, seed=seed,
                                               data_root=data_root, device=device)
    return rows
