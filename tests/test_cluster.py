"""k-means clustering scores against known answers (separated blobs) and sklearn's metrics."""

from __future__ import annotations

import numpy as np
import pytest

from embedkit.errors import ConfigError
from embedkit.eval.cluster import centroids_2d, cluster_embeddings, cluster_store


def _blobs(rng, n_per_class: int, n_classes: int, dim: int, spread: float):
    centres = rng.normal(size=(n_classes, dim)) * spread
    labels = np.repeat(np.arange(n_classes), n_per_class)
    return (centres[labels] + rng.normal(size=(len(labels), dim))).astype(np.float32), labels


def test_separated_blobs_are_recovered_exactly(rng):
    x, labels = _blobs(rng, 40, 5, 8, spread=30.0)
    result = cluster_embeddings(x, 5, labels)
    assert result.ari == 1.0
    assert result.nmi == pytest.approx(1.0)
    assert result.silhouette_kmeans > 0.8
    assert result.silhouette_classes == pytest.approx(result.silhouette_kmeans)  # same partition
    assert result.assignments.shape == (200,) and set(result.assignments) == set(range(5))
    assert result.silhouette_points == 200 and not result.to_dict()["silhouette_sampled"]
    assert sorted(result.to_dict()["cluster_sizes"]) == [40] * 5


def test_scores_match_sklearn_on_overlapping_blobs(rng):
    from sklearn.metrics import adjusted_rand_score, normalized_mutual_info_score, silhouette_score

    x, labels = _blobs(rng, 50, 4, 6, spread=1.0)
    result = cluster_embeddings(x, 4, labels, seed=3)
    assert result.ari == pytest.approx(adjusted_rand_score(labels, result.assignments))
    assert result.nmi == pytest.approx(normalized_mutual_info_score(labels, result.assignments))
    assert result.silhouette_kmeans == pytest.approx(silhouette_score(x, result.assignments), abs=1e-5)
    assert result.silhouette_classes == pytest.approx(silhouette_score(x, labels), abs=1e-5)
    assert result.ari < 0.9  # overlapping: not a trivial partition
    distances = np.linalg.norm(x[:, None] - result.centroids[None], axis=2)
    np.testing.assert_array_equal(result.assignments, distances.argmin(axis=1))  # every point to its nearest


def test_silhouette_is_sampled_above_the_limit_and_says_so(rng):
    x, labels = _blobs(rng, 100, 3, 4, spread=10.0)
    result = cluster_embeddings(x, 3, labels, silhouette_max_points=120)
    assert result.silhouette_points == 120
    assert result.to_dict()["silhouette_sampled"] is True
    assert result.silhouette_kmeans > 0.7


def test_unknown_labels_are_left_out_and_no_labels_gives_none(rng):
    x, labels = _blobs(rng, 30, 3, 4, spread=30.0)
    partly = labels.copy()
    partly[::3] = -1
    assert cluster_embeddings(x, 3, partly).ari == 1.0
    unlabelled = cluster_embeddings(x, 3, np.full(len(x), -1))
    assert unlabelled.ari is None and unlabelled.nmi is None and unlabelled.silhouette_classes is None
    assert cluster_embeddings(x, 3).silhouette_kmeans > 0.8


@pytest.mark.parametrize("k", [1, 90])
def test_k_out_of_range_is_an_error(rng, k):
    x, _ = _blobs(rng, 30, 3, 4, spread=1.0)
    with pytest.raises(ConfigError, match=f"k={k}"):
        cluster_embeddings(x, k)


def test_centroids_2d_are_the_means_of_the_members():
    xy = np.array([[0, 0], [2, 0], [10, 10], [12, 14]], np.float32)
    centres = centroids_2d(xy, np.array([0, 0, 2, 2]), 3)
    np.testing.assert_allclose(centres[[0, 2]], [[1, 0], [11, 12]])
    assert np.isnan(centres[1]).all()  # an empty cluster has no place on the map


def test_cluster_store_reads_the_group(tmp_path, rng):
    from embedkit.store.store import open_store

    x, labels = _blobs(rng, 30, 3, 4, spread=30.0)
    open_store(tmp_path / "s.h5", create=True).write_group("blobs/test", x, labels)
    assert cluster_store(tmp_path / "s.h5", "blobs/test", 3).ari == 1.0


def test_cluster_progress_counts_kmeans_then_tsne_iterations_and_changes_nothing(tmp_path, rng):
    """`cluster --map tsne` shows a bar with an ETA: one step for k-means, then t-SNE's iterations, per store; the
    map drawn while reporting is the map drawn without."""
    from embedkit.eval.cluster import draw_clusters
    from embedkit.eval.maps import TSNE_MAX_ITER, project_2d
    from embedkit.store.store import open_store

    x, labels = _blobs(rng, 40, 3, 8, spread=5.0)
    stores = [tmp_path / "a.h5", tmp_path / "b.h5"]
    for path in stores:
        open_store(path, create=True).write_group("blobs/test", x, labels)
    calls = []
    draw_clusters(
        stores, "blobs/test", 3, tmp_path / "f.png", map_method="tsne", on_progress=lambda *c: calls.append(c)
    )
    per_store = 1 + TSNE_MAX_ITER
    assert {total for _, total in calls} == {2 * per_store}
    done = [d for d, _ in calls]
    assert done == sorted(done) and done[0] == 0 and done[-1] == 2 * per_store
    assert {1, 51, per_store, per_store + 1, per_store + 51} <= set(done)  # k-means, then every 50 iterations
    iterations = []
    with_progress = project_2d(x, "tsne", on_progress=lambda d, t: iterations.append((d, t)))
    np.testing.assert_array_equal(with_progress, project_2d(x, "tsne"))
    assert iterations[0] == (50, TSNE_MAX_ITER) and iterations[-1] == (TSNE_MAX_ITER, TSNE_MAX_ITER)
