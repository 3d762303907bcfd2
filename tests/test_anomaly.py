"""kNN-density anomaly scores against NumPy brute force; ROC-AUC on far and on overlapping OOD blobs."""

from __future__ import annotations

import numpy as np
import pytest

from embedkit.errors import ConfigError, StoreError
from embedkit.eval.anomaly import anomaly_store, detect_anomalies, knn_scores, ood_group_name


def _brute_force_scores(reference: np.ndarray, queries: np.ndarray, k: int) -> np.ndarray:
    """PyOD KNN(method="mean"): mean of the k smallest true L2 distances."""
    distances = np.sqrt(((queries[:, None, :].astype(np.float64) - reference[None]) ** 2).sum(axis=2))
    return np.sort(distances, axis=1)[:, :k].mean(axis=1)


@pytest.mark.parametrize("k", [1, 2, 5])
def test_scores_equal_brute_force(rng, k):
    reference = rng.normal(size=(300, 12)).astype(np.float32)
    queries = (rng.normal(size=(40, 12)) * 2).astype(np.float32)
    np.testing.assert_allclose(knn_scores(reference, queries, k), _brute_force_scores(reference, queries, k), rtol=1e-5)


def test_far_ood_blobs_give_auc_one(rng):
    reference = rng.normal(size=(500, 8)).astype(np.float32)
    normal = rng.normal(size=(200, 8)).astype(np.float32)
    ood = (rng.normal(size=(100, 8)) + 20.0).astype(np.float32)
    result = detect_anomalies(reference, normal, ood, k=2)
    assert result.roc_auc == 1.0
    assert (result.n_reference, result.n_normal, result.n_ood) == (500, 200, 100)
    assert result.is_ood.sum() == 100 and result.is_ood[200:].all()
    assert result.is_ood[result.top(100)].all()  # the 100 highest scores are the OOD points
    assert result.fpr[0] == 0 and result.tpr[-1] == 1
    summary = result.to_dict()
    assert summary["mean_score_ood"] > summary["mean_score_normal"]


def test_overlapping_ood_blobs_give_auc_near_one_half(rng):
    reference = rng.normal(size=(2000, 4)).astype(np.float32)
    normal = rng.normal(size=(1000, 4)).astype(np.float32)
    ood = rng.normal(size=(1000, 4)).astype(np.float32)  # the same distribution
    assert 0.45 < detect_anomalies(reference, normal, ood, k=2).roc_auc < 0.55


def test_top_orders_by_score_most_anomalous_first(rng):
    reference = np.zeros((10, 2), np.float32)
    normal = np.array([[1, 0], [5, 0]], np.float32)
    ood = np.array([[3, 0], [9, 0]], np.float32)
    result = detect_anomalies(reference, normal, ood, k=1)
    np.testing.assert_allclose(result.scores, [1, 5, 3, 9])
    np.testing.assert_array_equal(result.top(3), [3, 1, 2])
    assert result.roc_auc == 0.75  # of the 4 (normal, OOD) pairs, only (5, 3) is ranked the wrong way


def test_empty_ood_set_is_an_error(rng):
    x = rng.normal(size=(10, 2)).astype(np.float32)
    with pytest.raises(ConfigError, match="0 OOD"):
        detect_anomalies(x, x, x[:0], k=1)


def test_ood_names_a_dataset_or_a_group():
    assert ood_group_name("mnist") == "mnist/test"
    assert ood_group_name("svhn/train") == "svhn/train"


def _write_store(path, rng, attrs=None, with_ood=True):
    from embedkit.store.store import open_store

    store = open_store(path, create=True)
    store.write_group("cifar10/train", rng.normal(size=(200, 6)).astype(np.float32), attrs=attrs)
    store.write_group("cifar10/test", rng.normal(size=(50, 6)).astype(np.float32), attrs=attrs)
    if with_ood:
        store.write_group("mnist/test", (rng.normal(size=(30, 6)) + 10).astype(np.float32), ids=np.arange(100, 130))
    return path


def test_anomaly_store_scores_normal_then_ood_with_their_ids(tmp_path, rng):
    result = anomaly_store(_write_store(tmp_path / "m.h5", rng), "mnist", k=2)
    assert result.result.roc_auc == 1.0 and not result.encoded
    assert result.groups == ("cifar10/test",) * 50 + ("mnist/test",) * 30
    np.testing.assert_array_equal(result.ids, np.r_[np.arange(50), np.arange(100, 130)])
    assert result.name == "m"


def test_missing_ood_group_without_checkpoint_says_how_to_encode_it(tmp_path, rng):
    path = _write_store(tmp_path / "m.h5", rng, with_ood=False)
    with pytest.raises(StoreError, match=r"names no checkpoint.*embedkit encode CKPT --dataset mnist --split test"):
        anomaly_store(path, "mnist", k=2)


def test_missing_ood_group_with_a_vanished_checkpoint_says_so(tmp_path, rng):
    path = _write_store(tmp_path / "m.h5", rng, attrs={"checkpoint": str(tmp_path / "gone.pt")}, with_ood=False)
    with pytest.raises(StoreError, match="gone.pt is gone"):
        anomaly_store(path, "mnist", k=2)


def test_missing_ood_group_is_encoded_with_the_checkpoint(tmp_path, rng, monkeypatch):
    import embedkit.eval.anomaly
    from embedkit.store.store import open_store

    checkpoint = tmp_path / "last.pt"
    checkpoint.write_bytes(b"stand-in: encode_to_store is replaced below")
    path = _write_store(tmp_path / "m.h5", rng, attrs={"checkpoint": str(checkpoint)}, with_ood=False)
    calls = []

    def fake_encode(ckpt, dataset, splits, store_path, **kwargs):
        calls.append((ckpt, dataset, splits, store_path))
        open_store(store_path).write_group(f"{dataset}/{splits[0]}", np.full((20, 6), 10, np.float32))
        return [f"{dataset}/{splits[0]}"]

    monkeypatch.setattr(embedkit.eval.anomaly, "encode_to_store", fake_encode)
    result = anomaly_store(path, "mnist", k=2)
    assert calls == [(checkpoint, "mnist", ["test"], path)]
    assert result.encoded and result.result.n_ood == 20 and result.result.roc_auc == 1.0


def test_top_anomalies_of_the_normal_and_the_ood_set_apart():
    from embedkit.eval.anomaly import AnomalyResult, StoreAnomaly

    scores = np.array([0.9, 5.0, 0.1, 7.0, 0.5, 6.0], np.float32)
    is_ood = np.array([False, True, False, True, False, True])
    result = AnomalyResult(2, 1.0, 10, 3, 3, scores, is_ood, np.zeros(2), np.zeros(2))
    groups = tuple("normal" if not o else "ood" for o in is_ood)
    store = StoreAnomaly("s", None, "ref", "normal", "ood", result, groups, np.arange(6), np.zeros(6, np.int64))
    assert [p["id"] for p in store.top(2)] == [3, 5]  # both OOD: the normal set would never be shown
    assert [p["id"] for p in store.top(2, ood=False)] == [0, 4]
    assert [p["id"] for p in store.top(5, ood=True)] == [3, 5, 1]


def test_the_anomaly_command_says_it_encoded_a_new_group(tmp_path, rng, monkeypatch, runner, cli_app):
    """Encoding 10,000 MNIST images into the store is work the user should hear about, in one line."""
    import embedkit.eval.anomaly
    from embedkit.store.store import open_store

    checkpoint = tmp_path / "last.pt"
    checkpoint.write_bytes(b"stand-in: encode_to_store is replaced below")
    path = _write_store(tmp_path / "m.h5", rng, attrs={"checkpoint": str(checkpoint)}, with_ood=False)

    def fake_encode(ckpt, dataset, splits, store_path, **kwargs):
        open_store(store_path).write_group(f"{dataset}/{splits[0]}", np.full((20, 6), 10, np.float32))
        return [f"{dataset}/{splits[0]}"]

    monkeypatch.setattr(embedkit.eval.anomaly, "encode_to_store", fake_encode)
    args = ["anomaly", str(path), "--ood", "mnist", "--workspace", str(tmp_path / "ws")]
    first = runner.invoke(cli_app, args)
    assert first.exit_code == 0, first.output
    assert f"encoded 20 mnist images into new group mnist/test of {path}" in first.stdout
    again = runner.invoke(cli_app, args)  # the group is there now: nothing encoded, nothing said
    assert again.exit_code == 0 and "encoded" not in again.stdout
