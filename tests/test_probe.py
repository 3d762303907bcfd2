"""Linear probe, kNN classifier and effective rank against known answers and references (sklearn, NumPy)."""

from __future__ import annotations

import numpy as np
import pytest

from embedkit.errors import ConfigError
from embedkit.eval.probe import effective_rank, knn_classify, linear_probe, probe_store


def _blobs(rng, n_per_class: int, n_classes: int, dim: int, spread: float):
    centres = rng.normal(size=(n_classes, dim)) * spread
    labels = np.repeat(np.arange(n_classes), n_per_class)
    x = centres[labels] + rng.normal(size=(len(labels), dim))
    return x.astype(np.float32), labels


def test_well_separated_blobs_give_accuracy_one(rng):
    x, y = _blobs(rng, 60, 4, 16, spread=20.0)
    test_x, test_y = x[1::2], y[1::2]
    result = linear_probe(x[::2], y[::2], test_x, test_y, knn_k=5)
    assert result.accuracy == 1.0
    assert result.knn_accuracy == 1.0
    assert (result.n_train, result.n_test, result.dim, result.n_classes) == (120, 120, 16, 4)


def test_probe_matches_sklearn_logistic_regression_on_overlapping_classes(rng):
    from sklearn.linear_model import LogisticRegression
    from sklearn.preprocessing import StandardScaler

    x, y = _blobs(rng, 300, 5, 8, spread=0.8)
    order = rng.permutation(len(y))
    x, y = x[order], y[order]
    train_x, train_y, test_x, test_y = x[:1000], y[:1000], x[1000:], y[1000:]
    scaler = StandardScaler().fit(train_x)
    reference = LogisticRegression(max_iter=2000).fit(scaler.transform(train_x), train_y)
    expected = np.mean(reference.predict(scaler.transform(test_x)) == test_y)
    result = linear_probe(train_x, train_y, test_x, test_y)
    assert 0.3 < expected < 0.95  # the task is neither trivial nor hopeless
    assert result.accuracy == pytest.approx(expected, abs=0.02)


def test_unlabelled_rows_are_left_out_and_no_labels_is_an_error(rng):
    x, y = _blobs(rng, 20, 2, 4, spread=20.0)
    y_with_unknown = y.copy()
    y_with_unknown[::4] = -1
    result = linear_probe(x, y_with_unknown, x, y, knn_k=3)
    assert result.n_train == 30
    with pytest.raises(ConfigError, match="no labelled rows"):
        linear_probe(x, np.full(len(y), -1), x, y)


def test_probe_store_reads_train_and_test_groups_and_names_the_store_in_errors(tmp_path, rng):
    from embedkit.store.store import open_store

    x, y = _blobs(rng, 30, 3, 8, spread=20.0)
    store = open_store(tmp_path / "s.h5", create=True)
    store.write_group("toy/train", x[::2], y[::2])
    store.write_group("toy/test", x[1::2], y[1::2])
    store.write_group("toy/unlabelled", x[1::2])
    assert probe_store(tmp_path / "s.h5", "toy/train", "toy/test", knn_k=5).accuracy == 1.0
    with pytest.raises(ConfigError, match=r"s\.h5: test: no labelled rows"):
        probe_store(tmp_path / "s.h5", "toy/train", "toy/unlabelled")


def test_dimension_mismatch_is_an_error(rng):
    x, y = _blobs(rng, 10, 2, 4, spread=5.0)
    with pytest.raises(ConfigError, match="dimension mismatch"):
        linear_probe(x, y, x[:, :3], y)


def test_knn_classify_matches_brute_force_majority_vote(rng):
    train_x, train_y = _blobs(rng, 40, 3, 6, spread=1.0)
    test_x = rng.normal(size=(50, 6)).astype(np.float32)
    k = 7  # odd k with 3 classes still allows ties (3-3-1); the nearest-first rule breaks them
    unit = lambda a: a / np.linalg.norm(a, axis=1, keepdims=True)  # noqa: E731
    distances = 1 - unit(test_x) @ unit(train_x).T
    expected = []
    for row in np.argsort(distances, axis=1, kind="stable")[:, :k]:
        votes = train_y[row]
        counts = np.bincount(votes, minlength=3)
        tied = np.flatnonzero(counts == counts.max())
        expected.append(next(v for v in votes if v in tied))
    np.testing.assert_array_equal(knn_classify(train_x, train_y, test_x, k), expected)


def _centred_orthonormal(rng, n: int, r: int) -> np.ndarray:
    """(n, r) orthonormal columns, each summing to zero (QR of centred columns keeps them centred)."""
    z = rng.normal(size=(n, r))
    return np.linalg.qr(z - z.mean(axis=0))[0]


def test_effective_rank_of_a_matrix_with_known_singular_values(rng):
    n, d, r = 200, 32, 5
    u, v = _centred_orthonormal(rng, n, r), np.linalg.qr(rng.normal(size=(d, r)))[0]
    s = np.array([10.0, 5.0, 2.0, 1.0, 0.05])  # 0.05 is below 1% of the largest: not counted
    x = u @ np.diag(s) @ v.T + rng.normal(size=(1, d))  # a constant offset, removed by centring
    result = effective_rank(x)
    p = s / s.sum()
    assert result["rank_1pct"] == r - 1
    assert result["entropy_rank"] == pytest.approx(np.exp(-(p * np.log(p)).sum()), rel=1e-6)
    assert result["dim"] == d
    np.testing.assert_allclose(result["singular_values"][:r], s, rtol=1e-6)
    assert max(result["singular_values"][r:]) < 1e-9


def test_equal_singular_values_give_entropy_rank_equal_to_the_rank(rng):
    x = 3.0 * _centred_orthonormal(rng, 64, 7) @ np.linalg.qr(rng.normal(size=(16, 7)))[0].T
    result = effective_rank(x)
    assert result["rank_1pct"] == 7
    assert result["entropy_rank"] == pytest.approx(7.0, rel=1e-6)


def test_identical_rows_have_rank_zero(rng):
    collapsed = effective_rank(np.tile(rng.normal(size=(1, 16)), (50, 1)))
    assert collapsed["rank_1pct"] == 0
    assert collapsed["entropy_rank"] == 0.0


@pytest.mark.parametrize(
    ("attrs", "label"),
    [
        ({"config": {"encoder": "small", "epochs": 6, "mu": 25.0}}, "vicreg (small, 6 ep)"),
        ({"config": {"encoder": "small", "epochs": 2, "mu": 0.0}}, "no-variance (small, 2 ep)"),
        (
            {"config": {"encoder": "small", "epochs": 2, "positives": "p.h5", "subset": 5000}},
            "neighbour-positives (small, 2 ep, 5,000 img)",
        ),
        ({}, "s"),  # embeddings added from another model: the store's file stem
    ],
)
def test_probe_names_the_model_from_the_stores_provenance(tmp_path, rng, attrs, label):
    from embedkit.store.store import open_store

    x, y = _blobs(rng, 30, 3, 8, spread=20.0)
    store = open_store(tmp_path / "s.h5", create=True)
    store.write_group("toy/train", x[::2], y[::2], attrs=attrs)
    store.write_group("toy/test", x[1::2], y[1::2])
    result = probe_store(tmp_path / "s.h5", "toy/train", "toy/test", knn_k=5)
    assert result.model == label
    assert result.to_dict()["model"] == result.model
