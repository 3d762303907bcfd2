"""`embedkit compare`: one row per store, each number checked against scikit-learn or NumPy on the same data."""

from __future__ import annotations

import json

import numpy as np
import pytest


def _write_store(path, seed: int, spread: float):
    """cifar10/train and /test: 3 Gaussian blobs in 8-d (`spread` apart); mnist/test: rows far from all of them."""
    from embedkit.store.store import open_store

    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(3, 8)) * spread
    data = {}
    for group, n in (("cifar10/train", 150), ("cifar10/test", 60)):
        labels = np.arange(n) % 3
        data[group] = ((centres[labels] + rng.normal(size=(n, 8))).astype(np.float32), labels)
    data["mnist/test"] = ((rng.normal(size=(20, 8)) + 4 * spread).astype(np.float32), np.arange(20) % 10)
    store = open_store(path, create=True)
    for group, (x, labels) in data.items():
        store.write_group(group, x, labels)
    return data


@pytest.mark.parametrize("spread", [20.0, 0.5])
def test_compare_rows_match_library_references(runner, cli_app, tmp_path, spread):
    from sklearn.cluster import KMeans
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import roc_auc_score, silhouette_score
    from sklearn.neighbors import NearestNeighbors
    from sklearn.preprocessing import StandardScaler

    data = _write_store(tmp_path / "blobs.h5", seed=1, spread=spread)
    result = runner.invoke(
        cli_app, ["compare", str(tmp_path / "blobs.h5"), "--k-anomaly", "2", "--k-cluster", "3", "--json"]
    )
    assert result.exit_code == 0, result.output
    row = json.loads(result.stdout)["models"]["blobs"]

    (train, train_y), (test, test_y), (ood, _) = data["cifar10/train"], data["cifar10/test"], data["mnist/test"]
    scaler = StandardScaler().fit(train)
    reference = LogisticRegression(max_iter=2000).fit(scaler.transform(train), train_y)
    assert row["linear_probe"] == pytest.approx(reference.score(scaler.transform(test), test_y), abs=0.04)

    s = np.linalg.svd(test - test.mean(axis=0), compute_uv=False)
    p = s / s.sum()
    assert row["effective_rank"] == pytest.approx(np.exp(-np.sum(p * np.log(p))), rel=1e-4)

    distances, _ = NearestNeighbors(n_neighbors=2).fit(train).kneighbors(np.concatenate([test, ood]))
    truth = np.r_[np.zeros(len(test)), np.ones(len(ood))]
    assert row["roc_auc_mnist"] == pytest.approx(roc_auc_score(truth, distances.mean(axis=1)), abs=1e-6)

    clusters = KMeans(3, n_init=10, random_state=0).fit_predict(test)
    if spread > 5:  # separated blobs: every method finds them, so the numbers are the same
        assert row["linear_probe"] == row["knn_accuracy"] == 1.0
        assert row["silhouette"] == pytest.approx(silhouette_score(test, clusters), abs=1e-4)
    else:  # overlapping blobs: worse than separated ones on every score that sees classes
        assert row["linear_probe"] < 0.9 and row["silhouette"] < 0.5


def test_compare_names_rows_by_store_and_prints_a_table(runner, cli_app, tmp_path):
    _write_store(tmp_path / "first.h5", seed=1, spread=20.0)
    _write_store(tmp_path / "second.h5", seed=2, spread=0.5)
    result = runner.invoke(
        cli_app, ["compare", str(tmp_path / "first.h5"), str(tmp_path / "second.h5"), "--k-cluster", "3"]
    )
    assert result.exit_code == 0, result.output
    assert "embedkit compare" in result.output and "first" in result.output and "second" in result.output
    payload = json.loads(
        runner.invoke(
            cli_app, ["compare", str(tmp_path / "first.h5"), str(tmp_path / "second.h5"), "--k-cluster", "3", "--json"]
        ).stdout
    )
    assert list(payload["models"]) == ["first", "second"]
    assert payload["models"]["first"]["linear_probe"] > payload["models"]["second"]["linear_probe"]
