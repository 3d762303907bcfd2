"""Retrieval: query choice, nearest and farthest neighbours against brute force, images by id."""

from __future__ import annotations

import numpy as np
import pytest
from eval_helpers import CLASS_NAMES, blobs, make_image_folder

from embedkit.errors import DataError, SearchError, StoreError
from embedkit.eval.retrieval import load_group_images, pick_queries, retrieve_store
from embedkit.search import knn


def test_pick_queries_takes_per_class_seeded_rows():
    labels = np.array([0] * 5 + [1] * 5 + [2] * 1)
    rows = pick_queries(labels, per_class=2, seed=0)
    assert list(labels[rows]) == [0, 0, 1, 1, 2]  # the class with one member gives one
    np.testing.assert_array_equal(rows, pick_queries(labels, per_class=2, seed=0))
    assert any(not np.array_equal(rows, pick_queries(labels, 2, seed=s)) for s in range(1, 5))
    with pytest.raises(SearchError, match="per_class=0"):
        pick_queries(labels, per_class=0)


@pytest.mark.parametrize("farthest", [False, True])
def test_neighbours_match_brute_force_and_never_return_the_query(rng, farthest):
    x = rng.normal(size=(80, 5)).astype(np.float32)
    queries = np.array([0, 17, 79])
    distances, rows = knn(x, x[queries], 6, self_rows=queries, farthest=farthest)
    full = np.linalg.norm(x[queries, None] - x[None], axis=2)
    full[np.arange(3), queries] = -np.inf if farthest else np.inf  # the query itself is never an answer
    expected = np.argsort(-full if farthest else full, axis=1)[:, :6]
    np.testing.assert_array_equal(rows, expected)
    np.testing.assert_allclose(distances, np.take_along_axis(full, expected, 1), rtol=1e-5)


def test_an_exact_duplicate_is_a_neighbour_but_the_query_is_not(rng):
    x = rng.normal(size=(20, 3)).astype(np.float32)
    x[7] = x[3]
    distances, rows = knn(x, x[[3, 7]], 2, self_rows=[3, 7])
    assert list(rows[:, 0]) == [7, 3]
    np.testing.assert_array_equal(distances[:, 0], [0, 0])


def test_k_must_leave_room_for_the_query(rng):
    x = rng.normal(size=(5, 3)).astype(np.float32)
    with pytest.raises(SearchError, match="at most k=4 .a row is never its own neighbour"):
        knn(x, x[[0]], 5, self_rows=[0])


def _store(tmp_path, rng, name="a.h5", ids=None):
    from embedkit.store.store import open_store

    x, labels = blobs(rng, 10, 3, 4, spread=30.0)
    path = tmp_path / name
    open_store(path, create=True).write_group("toy/test", x, labels, ids, attrs={"class_names": list(CLASS_NAMES)})
    return path


def test_retrieve_store_finds_same_class_near_and_other_classes_far(tmp_path, rng):
    result = retrieve_store(_store(tmp_path, rng), "toy/test", k=3, per_class=2)
    assert list(result.query_labels) == [0, 0, 1, 1, 2, 2]
    assert (result.nearest_labels == result.query_labels[:, None]).all()
    assert (result.farthest_labels != result.query_labels[:, None]).all()
    assert (np.diff(result.nearest_distances, axis=1) >= 0).all()
    assert (np.diff(result.farthest_distances, axis=1) <= 0).all()
    assert result.to_dict()["queries"][0]["nearest_ids"] == result.nearest_ids[0].tolist()


def test_retrieve_store_uses_given_query_ids_and_rejects_unknown_ones(tmp_path, rng):
    path = _store(tmp_path, rng, ids=np.arange(100, 130))
    result = retrieve_store(path, "toy/test", k=2, query_ids=np.array([105, 121]))
    np.testing.assert_array_equal(result.query_ids, [105, 121])
    with pytest.raises(StoreError, match=r"ids not in group .toy/test.* hold the same images\): 7"):
        retrieve_store(path, "toy/test", k=2, query_ids=np.array([105, 7]))


def test_load_group_images_returns_the_images_of_the_ids(tmp_path, monkeypatch):
    from embedkit.data.sources import load_images

    monkeypatch.setenv("EMBEDKIT_CACHE", str(tmp_path / "cache"))
    root = make_image_folder(tmp_path / "imgs", 4)
    expected = load_images(str(root), "test").images
    attrs = {"dataset": str(root), "split": "test"}
    cache: dict = {}
    images = load_group_images(attrs, np.array([5, 0, 11]), cache=cache)
    np.testing.assert_array_equal(images, expected[[5, 0, 11]])
    assert len({tuple(image[0, 0]) for image in images}) == 3
    assert list(cache) == [(str(root), "test")]
    with pytest.raises(DataError, match="ids up to 12 do not fit"):
        load_group_images(attrs, np.array([12]), cache=cache)


def test_missing_images_are_a_clear_error(tmp_path):
    with pytest.raises(DataError, match="images of .*nowhere test are needed"):
        load_group_images({"dataset": str(tmp_path / "nowhere"), "split": "test"}, np.array([0]))
    with pytest.raises(DataError, match="no source dataset"):
        load_group_images({}, np.array([0]))


@pytest.mark.realdata
def test_images_of_real_groups_by_id(real_data_root):
    from embedkit.data.sources import load_images

    ids = np.array([9999, 0, 4321])
    for dataset, shape in (("cifar10", (32, 32, 3)), ("mnist", (28, 28, 1))):
        expected = load_images(dataset, "test", real_data_root).images[ids]
        images = load_group_images({"dataset": dataset, "split": "test"}, ids, real_data_root)
        assert images.shape == (3, *shape)
        np.testing.assert_array_equal(images, expected)
