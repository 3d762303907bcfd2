"""One row of numbers per store, the same for `embedkit compare` and the study's table."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from embedkit.eval import cluster, maps, probe
from embedkit.eval.anomaly import anomaly_store
from embedkit.eval.cluster import cluster_store
from embedkit.eval.probe import effective_rank, probe_store
from embedkit.search import arrays
from embedkit.store.store import open_store

TRAIN_GROUP, TEST_GROUP, OOD_GROUP = "cifar10/train", "cifar10/test", "mnist/test"


def evaluate_store(
    store: Path,
    *,
    anomaly_k: int = 2,
    cluster_k: int = 10,
    seed: int = 0,
    data_root: Path | None = None,
    device: str = "auto",
) -> dict:
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
    return {
        "store": str(store),
        "model": probe.model,
        "linear_probe": probe.accuracy,
        "knn_accuracy": probe.knn_accuracy,
        "effective_rank": rank["entropy_rank"],
        "rank_1pct": rank["rank_1pct"],
        "roc_auc_mnist": roc_auc,
        "silhouette": clusters.silhouette_kmeans,
        "ari": clusters.ari,
        "nmi": clusters.nmi,
    }


def compare_stores(
    stores: list[Path],
    *,
    anomaly_k: int = 2,
    cluster_k: int = 10,
    seed: int = 0,
    data_root: Path | None = None,
    device: str = "auto",
    on_store: Callable[[Path], None] | None = None,
) -> dict[str, dict]:
    """{store file stem: `evaluate_store` row}, in the order given; `on_store` is told before each store."""
    rows = {}
    for path in stores:
        if on_store is not None:
            on_store(Path(path))
        rows[Path(path).stem] = evaluate_store(
            Path(path), anomaly_k=anomaly_k, cluster_k=cluster_k, seed=seed, data_root=data_root, device=device
        )
    return rows


def evaluation_settings(*, anomaly_k: int, cluster_k: int) -> dict:
    """Every setting behind the numbers of `evaluate_store` and the figures, recorded beside the results."""
    return {
        "probe": {
            "max_iter": probe.PROBE_MAX_ITER,
            "weight_decay": probe.PROBE_WEIGHT_DECAY,
            "knn_k": probe.KNN_K,
            "knn_metric": "cosine",
        },
        "anomaly": {"k": anomaly_k, "metric": "l2", "score": "mean distance to the k nearest reference rows"},
        "kmeans": {
            "k": cluster_k,
            "n_init": cluster.KMEANS_N_INIT,
            "silhouette_max_points": cluster.SILHOUETTE_MAX_POINTS,
        },
        "tsne": {"pca_dims": maps.TSNE_PCA_DIMS, "perplexity": maps.TSNE_PERPLEXITY, "max_iter": maps.TSNE_MAX_ITER},
        "index": {
            "hnsw_m": arrays.HNSW_M,
            "hnsw_ef_construction": arrays.HNSW_EF_CONSTRUCTION,
            "hnsw_ef_search": arrays.HNSW_EF_SEARCH,
            "ivf_nprobe": arrays.IVF_NPROBE,
        },
    }
