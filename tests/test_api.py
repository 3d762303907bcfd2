"""The notebook API (`embedkit.open_store(...)`, `embedkit.knn`, `embedkit.KNNDetector`, ...) against NumPy brute force
and against the CLI's answers on the same store."""

from __future__ import annotations

import inspect
import json
import pydoc

import numpy as np
import pytest
from sklearn.metrics import roc_auc_score

import embedkit


def brute_force(
    reference: np.ndarray, queries: np.ndarray, k: int, *, exclude_self: bool = False, farthest: bool = False
) -> tuple[np.ndarray, np.ndarray]:
    """float64 L2 distances and rows, ties by row (the rule every exact path follows)."""
    d = np.sqrt(((queries[:, None, :].astype(np.float64) - reference[None].astype(np.float64)) ** 2).sum(-1))
    if exclude_self:
        np.fill_diagonal(d, np.nan)
    key = np.where(np.isnan(d), np.inf, -d if farthest else d)
    rows = np.stack([np.lexsort((np.arange(len(reference)), r))[:k] for r in key])
    return np.take_along_axis(d, rows, 1), rows


@pytest.fixture
def store_path(tmp_path, rng):
    path = tmp_path / "s.h5"
    with embedkit.open_store(path, create=True) as store:
        store.add(
            "toy/train",
            rng.normal(size=(50, 6)),
            labels=np.arange(50) % 3,
            ids=np.arange(50) + 100,
            attrs={"class_names": ["a", "b", "c"]},
        )
        store.add("toy/test", rng.normal(size=(20, 6)), labels=np.arange(20) % 3)
        store.add("toy/ood", rng.normal(size=(15, 6)) + 3.0, labels=np.zeros(15, np.int64))
    return path


def cli_json(runner, cli_app, *args) -> dict:
    result = runner.invoke(cli_app, [*map(str, args), "--json"])
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def test_store_behaves_like_a_mapping_of_groups(store_path):
    store = embedkit.open_store(store_path)
    assert store.groups() == ["toy/ood", "toy/test", "toy/train"]
    assert len(store) == 3 and list(store) == store.groups() and "toy/test" in store and "toy/x" not in store
    train = store["toy/train"]
    assert train.embeddings.shape == (50, 6) and train.embeddings.dtype == np.float32
    assert train.ids.tolist() == list(range(100, 150)) and train.attrs["class_names"] == ["a", "b", "c"]
    with pytest.raises(embedkit.StoreError, match="toy/x"):
        store["toy/x"]


def test_store_neighbors_match_the_cli_and_brute_force(store_path, runner, cli_app):
    store = embedkit.open_store(store_path)
    x = store["toy/train"].embeddings
    for farthest in (False, True):
        api = store.neighbors("toy/train", 3, farthest=farthest)
        flag = ["--farthest"] if farthest else []
        cli = cli_json(runner, cli_app, "neighbors", store_path, "-g", "toy/train", "-k", 3, *flag)
        assert api.ids.tolist() == [r["ids"] for r in cli["results"]]
        np.testing.assert_allclose(api.distances, [r["distances"] for r in cli["results"]], atol=1e-5)
        dist, rows = brute_force(x, x, 3, exclude_self=True, farthest=farthest)
        assert (api.rows == rows).all()
        np.testing.assert_allclose(api.distances, dist, rtol=1e-5)
    some = store.neighbors("toy/train", 2, ids=[104, 100])
    cli = cli_json(runner, cli_app, "neighbors", store_path, "-g", "toy/train", "-k", 2, "--ids", "104,100")
    assert some.query_ids.tolist() == [104, 100] and some.ids.tolist() == [r["ids"] for r in cli["results"]]


def test_store_neighbors_of_arbitrary_vectors(store_path, rng):
    store = embedkit.open_store(store_path)
    queries = rng.normal(size=(7, 6)).astype(np.float32)
    result = store.neighbors("toy/train", 4, queries=queries)
    dist, rows = brute_force(store["toy/train"].embeddings, queries, 4)
    assert (result.rows == rows).all() and (result.ids == rows + 100).all()
    np.testing.assert_allclose(result.distances, dist, rtol=1e-5)
    searcher = store.index("toy/train", "flat")
    d2, r2 = searcher.search(queries, 4)
    assert (r2 == rows).all()
    with pytest.raises(embedkit.SearchError, match="dimension"):
        store.neighbors("toy/train", 2, queries=np.zeros((1, 5)))


def test_store_pairs_match_the_cli(store_path, tmp_path, runner, cli_app):
    import h5py

    api = embedkit.open_store(store_path).pairs("toy/train", 3, tmp_path / "api.h5")
    cli_json(runner, cli_app, "pairs", store_path, "-g", "toy/train", "-k", 3, "--out", tmp_path / "cli.h5")
    with h5py.File(api) as a, h5py.File(tmp_path / "cli.h5") as b:
        assert (a["neighbor_ids"][:] == b["neighbor_ids"][:]).all()
        np.testing.assert_array_equal(a["distances"][:], b["distances"][:])


def test_knn_on_arrays_matches_brute_force(rng):
    reference, queries = rng.normal(size=(40, 5)), rng.normal(size=(9, 5))
    dist, rows = embedkit.knn(reference, queries, 6)
    want_d, want_r = brute_force(reference, queries, 6)
    assert (rows == want_r).all()
    np.testing.assert_allclose(dist, want_d, rtol=1e-5)


def test_knn_detector_is_pyods_knn_and_agrees_with_the_cli(store_path, runner, cli_app, tmp_path):
    store = embedkit.open_store(store_path)
    train, test, ood = (store[g].embeddings for g in ("toy/train", "toy/test", "toy/ood"))
    detector = embedkit.KNNDetector(k=2).fit(train)
    own, _ = brute_force(train, train, 2, exclude_self=True)
    np.testing.assert_allclose(detector.decision_scores_, own.mean(1), rtol=1e-5)  # each row without itself
    scores = detector.decision_function(np.vstack([test, ood]))
    np.testing.assert_allclose(scores, brute_force(train, np.vstack([test, ood]), 2)[0].mean(1), rtol=1e-5)
    cli = cli_json(
        runner,
        cli_app,
        "anomaly",
        store_path,
        "--reference",
        "toy/train",
        "--normal",
        "toy/test",
        "--ood",
        "toy/ood",
        "-k",
        2,
        "--out",
        tmp_path / "figs",
    )
    want = roc_auc_score(np.r_[np.zeros(len(test)), np.ones(len(ood))], scores)
    assert cli["stores"][0]["roc_auc"] == pytest.approx(want, abs=1e-6)


def test_linear_probe_agrees_with_the_cli(store_path, runner, cli_app):
    store = embedkit.open_store(store_path)
    train, test = store["toy/train"], store["toy/test"]
    api = embedkit.linear_probe(train.embeddings, train.labels, test.embeddings, test.labels)
    cli = cli_json(runner, cli_app, "probe", store_path, "--train", "toy/train", "--test", "toy/test")
    assert cli["stores"][0]["accuracy"] == pytest.approx(api.accuracy)


def test_every_public_name_has_a_docstring_with_an_example_that_runs(tmp_path, monkeypatch):
    """help(embedkit) lists the API; each public name's docstring has an example, and the examples that do not need
    real data or a checkpoint run and print what they show (doctest)."""
    import doctest

    text = pydoc.render_doc(embedkit, renderer=pydoc.plaintext)
    assert "open_store" in text and "KNNDetector" in text
    monkeypatch.chdir(tmp_path)
    finder, runner = doctest.DocTestFinder(recurse=False), doctest.DocTestRunner(optionflags=doctest.ELLIPSIS)
    public = [name for name in embedkit.__all__ if not name.endswith("Error") and name != "__version__"]
    expected = {"open_store", "Store", "knn", "KNNDetector", "linear_probe", "train", "TrainConfig", "encode"}
    assert expected <= set(public)
    for name in [*public, "embedkit"]:
        obj = embedkit if name == "embedkit" else getattr(embedkit, name)
        doc = inspect.getdoc(obj) or ""
        assert ">>>" in doc, f"{name}: no example in its docstring"
        for test in finder.find(obj, name, module=inspect.getmodule(obj)):
            runner.run(test)
    assert runner.failures == 0 and runner.tries >= 10, runner.summarize()
    for package in ("data", "store", "search", "training", "eval"):
        module = __import__(f"embedkit.{package}", fromlist=["_"])
        for test in finder.find(module, package):
            runner.run(test)
    assert runner.failures == 0, runner.summarize()


def test_knn_leaves_each_query_out_of_its_own_neighbours_by_row(rng):
    """`self_rows`: some reference rows as queries; a row is never its own neighbour, but its duplicate is."""
    reference = np.vstack([rng.normal(size=(30, 4)), rng.normal(size=(1, 4)).repeat(3, axis=0)])
    self_rows = np.array([31, 0, 7, 30])
    for farthest in (False, True):
        dist, rows = embedkit.knn(reference, reference[self_rows], 3, self_rows=self_rows, farthest=farthest)
        d = np.sqrt(((reference[self_rows, None].astype(np.float64) - reference[None]) ** 2).sum(-1))
        d[np.arange(len(self_rows)), self_rows] = np.nan
        key = np.where(np.isnan(d), np.inf, -d if farthest else d)
        want = np.stack([np.lexsort((np.arange(len(reference)), row))[:3] for row in key])
        assert (rows == want).all() and not (rows == self_rows[:, None]).any()
        np.testing.assert_allclose(dist, np.take_along_axis(d, want, 1), rtol=1e-5)
    assert {30, 32} <= set(embedkit.knn(reference, reference[[31]], 2, self_rows=[31])[1].ravel())
