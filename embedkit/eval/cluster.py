"""k-means on embeddings, scored against the classes: silhouette, adjusted Rand index, normalised mutual information.

Every point is assigned to a cluster (no noise label). Silhouette costs O(N^2), so above `SILHOUETTE_MAX_POINTS`
it is computed on a seeded sample of rows, and the result says how many rows it used.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np

from embedkit._util.progress import ProgressFn, offset_progress
from embedkit._util.sampling import seeded_rows
from embedkit.errors import ConfigError, about
from embedkit.eval.kmeans import lloyd, seeded_init
from embedkit.eval.maps import map_steps, map_store
from embedkit.eval.plots import plot_clusters
from embedkit.provenance import model_label
from embedkit.search.engines import check_engine, ray_session
from embedkit.store.store import open_store

SILHOUETTE_MAX_POINTS = 10_000
KMEANS_N_INIT = 4


@dataclass(frozen=True)
class ClusterResult:
    """k-means clusters of N points and how well they match the classes (None where there are no labels)."""

    k: int
    n: int
    inertia: float
    silhouette_kmeans: float
    silhouette_classes: float | None
    silhouette_points: int
    ari: float | None
    nmi: float | None
    assignments: np.ndarray = field(repr=False)  # (N,) int64 cluster of each point
    centroids: np.ndarray = field(repr=False)  # (k, D) float32
    model: str = ""  # the model behind the embeddings, from the store's provenance (`cluster_store` sets it)

    def to_dict(self) -> dict:
        """The scalar results (what `--json` prints)."""
        return {
            "model": self.model,
            "k": self.k,
            "n": self.n,
            "inertia": self.inertia,
            "silhouette_kmeans": self.silhouette_kmeans,
            "silhouette_classes": self.silhouette_classes,
            "silhouette_points": self.silhouette_points,
            "silhouette_sampled": self.silhouette_points < self.n,
            "ari": self.ari,
            "nmi": self.nmi,
            "cluster_sizes": np.bincount(self.assignments, minlength=self.k).tolist(),
        }


def cluster_embeddings(
    x: np.ndarray,
    k: int,
    labels: np.ndarray | None = None,
    *,
    seed: int = 0,
    n_init: int = KMEANS_N_INIT,
    silhouette_max_points: int = SILHOUETTE_MAX_POINTS,
    engine: str = "local",
) -> ClusterResult:
    """k-means of `x` (N, D) into `k` clusters; silhouettes (L2) of the clusters and of `labels` (N,), ARI and NMI.

    Labels of -1 (unknown) are left out of the class scores; with no known labels those scores are None.
    `engine="ray"` (in an open `ray_session`): one k-means from a seeded k-means++ start, its Lloyd steps as Ray
    tasks over row blocks (`embedkit.eval.kmeans`), instead of scikit-learn's best of `n_init` starts.
    """
    from sklearn.cluster import KMeans
    from sklearn.metrics import adjusted_rand_score, normalized_mutual_info_score

    x = np.ascontiguousarray(x, dtype=np.float32)
    if x.ndim != 2:
        raise ConfigError(f"embeddings must be (N, D), got shape {x.shape}")
    if not 2 <= k < len(x):
        raise ConfigError(f"k={k}: k-means needs 2 <= k < N (N={len(x)} points)")
    if engine == "ray":
        fitted = lloyd(x, seeded_init(x, k, seed), engine="ray")
        assignments, inertia, centroids = fitted.assignments, fitted.inertia, fitted.centers
    else:
        kmeans = KMeans(n_clusters=k, n_init=n_init, random_state=seed).fit(x)
        assignments, inertia = kmeans.labels_.astype(np.int64), float(kmeans.inertia_)
        centroids = kmeans.cluster_centers_.astype(np.float32)
    sample = seeded_rows(len(x), silhouette_max_points, seed)
    known = np.ones(len(x), bool) if labels is None else np.asarray(labels) >= 0
    ari = nmi = silhouette_classes = None
    if labels is not None and known.any():
        labels = np.asarray(labels, dtype=np.int64)
        ari = float(adjusted_rand_score(labels[known], assignments[known]))
        nmi = float(normalized_mutual_info_score(labels[known], assignments[known]))
        silhouette_classes = _silhouette(x, labels, sample[known[sample]])
    return ClusterResult(
        k=k,
        n=len(x),
        inertia=inertia,
        silhouette_kmeans=_silhouette(x, assignments, sample),
        silhouette_classes=silhouette_classes,
        silhouette_points=len(sample),
        ari=ari,
        nmi=nmi,
        assignments=assignments,
        centroids=centroids,
    )


def _silhouette(x: np.ndarray, labels: np.ndarray, rows: np.ndarray) -> float | None:
    """Mean silhouette (L2) of `rows`; None when the rows hold fewer than 2 or as many labels as points."""
    from sklearn.metrics import silhouette_score

    n_labels = len(np.unique(labels[rows]))
    if not 2 <= n_labels < len(rows):
        return None
    return float(silhouette_score(x[rows], labels[rows], metric="euclidean"))


def centroids_2d(xy: np.ndarray, assignments: np.ndarray, k: int) -> np.ndarray:
    """Where to mark each cluster on a 2-D map: the mean of its members' points (k, 2) (NaN if none is drawn)."""
    centres = np.full((k, 2), np.nan, np.float32)
    for cluster in range(k):
        members = assignments == cluster
        if members.any():
            centres[cluster] = xy[members].mean(axis=0)
    return centres


def cluster_store(
    store_path: Path | str,
    group: str,
    k: int,
    *,
    seed: int = 0,
    engine: str = "local",
    ray_address: str | None = None,
) -> ClusterResult:
    """`cluster_embeddings` on one group of a store, scored against its labels (`engine`: local or ray)."""
    check_engine(engine, ray_address)
    data = open_store(store_path).read(group)
    with about(store_path, group), ray_session(ray_address) if engine == "ray" else contextlib.nullcontext():
        result = cluster_embeddings(data.embeddings, k, data.labels, seed=seed, engine=engine)
    return replace(result, model=model_label(data.attrs, Path(store_path).stem))


def draw_clusters(
    stores: list[Path],
    group: str,
    k: int,
    out_path: Path,
    *,
    map_method: str = "tsne",
    max_points: int = 10_000,
    seed: int = 0,
    engine: str = "local",
    ray_address: str | None = None,
    on_progress: ProgressFn | None = None,
) -> tuple[list[tuple[str, ClusterResult]], Path]:
    """Cluster `group` of each store and draw its 2-D map coloured by cluster beside one coloured by class.

    Returns [(store name, ClusterResult)] and the figure's path; one figure row per store. `engine`: as in
    `cluster_embeddings`. `on_progress(done, total)` counts, per store, one step for k-means and the scores, then
    the map's steps (`map_steps`: t-SNE's iterations).
    """
    check_engine(engine, ray_address)
    results, panels, class_names = [], [], ()
    per_store = 1 + map_steps(map_method)
    total = len(stores) * per_store
    report = on_progress or (lambda done, total: None)
    for i, path in enumerate(stores):
        report(i * per_store, total)
        result = cluster_store(path, group, k, seed=seed, engine=engine, ray_address=ray_address)
        report(i * per_store + 1, total)
        part = offset_progress(on_progress, i * per_store + 1, total)
        group_map = map_store(path, group, map_method, max_points=max_points, seed=seed, on_progress=part)
        report((i + 1) * per_store, total)
        clusters = result.assignments[group_map.rows]
        panels.append(
            (group_map.name, group_map.xy, clusters, group_map.labels, centroids_2d(group_map.xy, clusters, k))
        )
        results.append((group_map.name, result))
        class_names = class_names or group_map.class_names
    figure = plot_clusters(panels, class_names, out_path, title=f"{group}: k-means, k={k}")
    return results, figure
