"""`embedkit add / info / neighbors / pairs` through CliRunner: exit codes, JSON, one-line errors."""

from __future__ import annotations

import json
from pathlib import Path

import h5py
import numpy as np
import pytest

from embedkit.search.index import knn
from embedkit.store.store import open_store


@pytest.fixture
def files(tmp_path, rng) -> Path:
    emb = rng.normal(size=(60, 6)).astype(np.float32)
    np.save(tmp_path / "x.npy", emb)
    np.save(tmp_path / "y.npy", np.arange(60) % 3)
    np.save(tmp_path / "ids.npy", np.arange(60) + 1000)
    np.save(tmp_path / "q.npy", rng.normal(size=(4, 6)).astype(np.float32))
    np.save(tmp_path / "d5.npy", rng.normal(size=(4, 5)).astype(np.float32))
    np.save(tmp_path / "nan.npy", np.full((3, 6), np.nan, np.float32))
    np.save(tmp_path / "short.npy", np.arange(7))
    return tmp_path


@pytest.fixture
def store(files, runner, cli_app) -> Path:
    path = files / "s.h5"
    args = [
        "add",
        str(path),
        "--group",
        "toy/train",
        "--embeddings",
        str(files / "x.npy"),
        "--labels",
        str(files / "y.npy"),
        "--ids",
        str(files / "ids.npy"),
        "--class-names",
        "a,b,c",
    ]
    result = runner.invoke(cli_app, args)
    assert result.exit_code == 0, result.output
    assert "added group toy/train (60 x 6)" in result.stdout
    assert (
        runner.invoke(cli_app, ["add", str(path), "-g", "toy/q", "--embeddings", str(files / "q.npy")]).exit_code == 0
    )
    return path


def run_json(runner, cli_app, args) -> dict:
    result = runner.invoke(cli_app, [*args, "--json"])
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)  # exactly one JSON object on stdout


def test_info_json_and_table(store, runner, cli_app):
    summary = run_json(runner, cli_app, ["info", str(store)])
    groups = {g["name"]: g for g in summary["groups"]}
    assert set(groups) == {"toy/q", "toy/train"}
    train = groups["toy/train"]
    assert (train["n"], train["dim"], train["dataset"], train["split"]) == (60, 6, "toy", "train")
    assert train["class_names"] == ["a", "b", "c"] and train["indexes"] == []
    run_json(runner, cli_app, ["neighbors", str(store), "-g", "toy/train", "-k", "2", "--index", "hnsw"])
    (index,) = run_json(runner, cli_app, ["info", str(store)])["groups"][1]["indexes"]
    assert (index["metric"], index["kind"], index["fresh"]) == ("l2", "hnsw", True)
    table = runner.invoke(cli_app, ["info", str(store)])
    assert table.exit_code == 0 and "toy/train" in table.stdout and "l2.hnsw" in table.stdout


def test_info_uses_the_workspace_store(store, runner, cli_app):
    result = runner.invoke(cli_app, ["info", "--workspace", str(store.parent / "ws")])
    assert result.exit_code == 1 and "no such store" in result.output
    store.rename(store.parent / "store.h5")
    assert "toy/train" in runner.invoke(cli_app, ["info", "--workspace", str(store.parent)]).stdout


def test_neighbors_json_matches_knn(store, runner, cli_app):
    payload = run_json(runner, cli_app, ["neighbors", str(store), "--group", "toy/train", "--k", "3"])
    assert set(payload) == {"group", "k", "farthest", "index", "engine", "recall_estimate", "results"}
    assert (payload["index"], payload["engine"], payload["recall_estimate"]) == ("flat", "local", None)
    assert (payload["group"], payload["k"], payload["farthest"]) == ("toy/train", 3, False)
    data = open_store(store).read("toy/train")
    dist, rows = knn(data.embeddings, data.embeddings, 3, exclude_self=True)
    assert [r["query_id"] for r in payload["results"]] == data.ids.tolist()
    np.testing.assert_allclose([r["distances"] for r in payload["results"]], dist, atol=1e-5)
    for result in payload["results"]:
        assert set(result) == {"query_id", "ids", "distances"} and result["query_id"] not in result["ids"]


def test_neighbors_farthest_ids_and_query_group(store, runner, cli_app):
    payload = run_json(
        runner, cli_app, ["neighbors", str(store), "-g", "toy/train", "-k", "2", "--farthest", "--ids", "1005,1000"]
    )
    assert payload["farthest"] is True and [r["query_id"] for r in payload["results"]] == [1005, 1000]
    data = open_store(store).read("toy/train")
    dist, _ = knn(data.embeddings, data.embeddings, 2, farthest=True, exclude_self=True)
    np.testing.assert_allclose([r["distances"] for r in payload["results"]], dist[[5, 0]], atol=1e-5)
    other = run_json(
        runner,
        cli_app,
        ["neighbors", str(store), "-g", "toy/train", "-k", "60", "--query-group", "toy/q", "--metric", "cosine"],
    )
    assert len(other["results"]) == 4 and len(other["results"][0]["ids"]) == 60


def test_neighbors_table_and_out_files(store, runner, cli_app, tmp_path):
    result = runner.invoke(
        cli_app,
        ["neighbors", str(store), "-g", "toy/train", "-k", "2", "--limit", "3", "--out", str(tmp_path / "all.h5")],
    )
    assert result.exit_code == 0, result.output
    assert "showing 3 of 60 queries" in result.stdout and "1000" in result.stdout
    with h5py.File(tmp_path / "all.h5", "r") as f:
        assert f["ids"].shape == (60, 2) and f.attrs["group"] == "toy/train"
    runner.invoke(cli_app, ["neighbors", str(store), "-g", "toy/train", "--out", str(tmp_path / "all.json")])
    assert len(json.loads((tmp_path / "all.json").read_text())["results"]) == 60
    runner.invoke(cli_app, ["neighbors", str(store), "-g", "toy/train", "--out", str(tmp_path / "all.npz")])
    assert np.load(tmp_path / "all.npz")["distances"].shape == (60, 5)


def test_pairs_command(store, runner, cli_app, tmp_path):
    payload = run_json(
        runner, cli_app, ["pairs", str(store), "-g", "toy/train", "-k", "3", "--out", str(tmp_path / "pairs.h5")]
    )
    assert payload["out"] == str(tmp_path / "pairs.h5")
    with h5py.File(tmp_path / "pairs.h5", "r") as f:
        assert f["neighbor_ids"].shape == (60, 3) and int(f.attrs["k"]) == 3
        assert not (f["neighbor_ids"][()] == f["ids"][()][:, None]).any()


def test_add_overwrite_rebuilds_the_index(store, files, runner, cli_app):
    first = run_json(runner, cli_app, ["neighbors", str(store), "-g", "toy/train", "-k", "1"])
    args = ["add", str(store), "-g", "toy/train", "--embeddings", str(files / "q.npy"), "--overwrite"]
    assert runner.invoke(cli_app, args).exit_code == 0
    second = run_json(runner, cli_app, ["neighbors", str(store), "-g", "toy/train", "-k", "1"])
    assert len(first["results"]) == 60 and len(second["results"]) == 4


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["info", "{tmp}/missing.h5"], "no such store"),
        (["info", "{tmp}/x.npy"], "not an HDF5 file"),
        (["neighbors", "{store}", "-g", "toy/tarin"], "group 'toy/tarin' not found"),
        (["neighbors", "{store}", "-g", "toy/train", "-k", "0"], "k=0: k must be at least 1"),
        (["neighbors", "{store}", "-g", "toy/train", "-k", "60"], "k=60 is larger than group 'toy/train'"),
        (["neighbors", "{store}", "-g", "toy/train", "--ids", "1,x"], "--ids: expected comma-separated"),
        (["neighbors", "{store}", "-g", "toy/train", "--ids", "7"], "ids not in group 'toy/train'"),
        (["neighbors", "{store}", "-g", "toy/train", "--out", "{tmp}/r.csv"], "unknown output format"),
        (["neighbors", "{store}", "-g", "toy/train", "--query-group", "toy/d5"], "dimension mismatch"),
        (["pairs", "{store}", "-g", "toy/train", "--out", "{tmp}/no/such/dir/p.h5"], "does not exist"),
        (["pairs", "{store}", "-g", "toy/train", "--out", "{store}"], "is also an input"),
        (["add", "{store}", "-g", "toy/n", "--embeddings", "{tmp}/nan.npy"], "row 0 contains NaN or inf"),
        (
            ["add", "{store}", "-g", "toy/n", "--embeddings", "{tmp}/x.npy", "--labels", "{tmp}/short.npy"],
            "labels must have shape \\(60,\\)",
        ),
        (["add", "{store}", "-g", "toy/train", "--embeddings", "{tmp}/x.npy"], "already exists"),
        (["add", "{store}", "-g", "toy/n", "--embeddings", "{tmp}/absent.npy"], "No such file"),
    ],
)
def test_bad_input_is_one_line_and_changes_nothing(store, files, runner, cli_app, args, message):
    import hashlib
    import re

    digest = lambda path: hashlib.sha256(path.read_bytes()).hexdigest()  # noqa: E731
    assert (
        runner.invoke(cli_app, ["add", str(store), "-g", "toy/d5", "--embeddings", str(files / "d5.npy")]).exit_code
        == 0
    )
    before = digest(store)
    result = runner.invoke(cli_app, [a.format(tmp=files, store=store) for a in args])
    assert result.exit_code == 1, result.output
    assert re.search(message, result.output), result.output
    assert "Traceback" not in result.output and len(result.output.strip().splitlines()) == 1
    assert result.stdout == ""
    assert digest(store) == before


@pytest.mark.parametrize(
    ("option", "value", "choices"), [("--index", "lsh", "'flat', 'hnsw', 'ivf'"), ("--metric", "l1", "'l2', 'cosine'")]
)
def test_an_unknown_choice_is_a_usage_error_listing_the_choices(store, runner, cli_app, option, value, choices):
    before = store.read_bytes()
    result = runner.invoke(cli_app, ["neighbors", str(store), "-g", "toy/train", option, value])
    assert result.exit_code == 2 and result.stdout == ""  # like any option the parser refuses
    assert f"'{value}' is not one of {choices}" in result.output and len(result.output.strip().splitlines()) == 1
    assert store.read_bytes() == before
