"""The evaluation commands end to end on tiny stores: tables, one JSON object, figures, one-line errors."""

from __future__ import annotations

import json

import numpy as np
import pytest
from eval_helpers import CLASS_NAMES, make_image_folder

N_PER_CLASS = 8


@pytest.fixture
def images(tmp_path, monkeypatch):
    """A tiny image folder (3 classes x 8 images, split 'test') standing in for a dataset; decoded once."""
    from embedkit.data.sources import load_images

    monkeypatch.setenv("EMBEDKIT_CACHE", str(tmp_path / "cache"))
    root = make_image_folder(tmp_path / "imgs", N_PER_CLASS)
    return root, load_images(str(root), "test").labels


def _store(tmp_path, images, name: str, spread: float = 30.0, seed: int = 0, ood: bool = True):
    """A store with groups toy/train and toy/test (blobs by class, images from the folder) and far/test (OOD)."""
    from embedkit.store.store import open_store

    root, labels = images
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(3, 6)) * spread
    attrs = {"dataset": str(root), "split": "test", "class_names": list(CLASS_NAMES)}
    store = open_store(tmp_path / name, create=True)
    for group in ("toy/train", "toy/test"):
        x = (centres[labels] + rng.normal(size=(len(labels), 6))).astype(np.float32)
        store.write_group(group, x, labels, attrs=attrs)
    if ood:
        store.write_group(
            "far/test", (rng.normal(size=(6, 6)) + 200).astype(np.float32), labels[:6], ids=np.arange(6), attrs=attrs
        )
    return tmp_path / name


def _json(result) -> dict:
    assert result.exit_code == 0, result.output
    lines = result.stdout.strip().splitlines()
    assert len(lines) == 1, result.stdout
    return json.loads(lines[0])


def _png_shape(path) -> tuple[int, int]:
    from matplotlib.image import imread

    image = imread(path)
    assert image[..., :3].std() > 0.01
    return image.shape[:2]


def _assert_one_line_error(result, *fragments: str) -> None:
    assert result.exit_code == 1, result.output
    assert "Traceback" not in result.output
    assert len(result.output.strip().splitlines()) == 1, result.output
    for fragment in fragments:
        assert fragment in result.output


def test_probe_table_and_json_for_two_stores(runner, cli_app, tmp_path, images):
    a, b = _store(tmp_path, images, "vicreg.h5"), _store(tmp_path, images, "noise.h5", spread=0.0, seed=1)
    args = ["probe", str(a), str(b), "--train", "toy/train", "--test", "toy/test", "--knn-k", "3"]
    table = runner.invoke(cli_app, args)
    assert table.exit_code == 0, table.output
    assert "vicreg" in table.stdout and "noise" in table.stdout and "1.000" in table.stdout
    out = _json(runner.invoke(cli_app, [*args, "--json"]))
    assert [s["name"] for s in out["stores"]] == ["vicreg", "noise"]
    assert out["stores"][0]["accuracy"] == 1.0 and out["stores"][0]["knn_accuracy"] == 1.0
    assert out["stores"][1]["accuracy"] < 0.8  # no class structure in the second store
    assert {"train", "test", "stores"} == set(out)


def test_probe_uses_the_workspace_store_by_default(runner, cli_app, tmp_path, images):
    _store(tmp_path / "ws", images, "store.h5")
    out = _json(
        runner.invoke(
            cli_app,
            [
                "probe",
                "--workspace",
                str(tmp_path / "ws"),
                "--train",
                "toy/train",
                "--test",
                "toy/test",
                "--knn-k",
                "3",
                "--json",
            ],
        )
    )
    assert out["stores"][0]["name"] == "store"


def test_missing_group_is_one_line_error(runner, cli_app, tmp_path, images):
    path = _store(tmp_path, images, "m.h5")
    for args in (
        ["probe", str(path), "--train", "toy/tarin"],
        ["cluster", str(path), "--group", "nope/test"],
        ["plot", "map", str(path), "--group", "nope/test"],
        ["retrieve", str(path), "--group", "nope/x"],
    ):
        _assert_one_line_error(runner.invoke(cli_app, args), "not found")
    _assert_one_line_error(runner.invoke(cli_app, ["probe", str(tmp_path / "none.h5")]), "no such store")


def test_plot_map_pca_side_by_side(runner, cli_app, tmp_path, images):
    a, b = _store(tmp_path, images, "a.h5"), _store(tmp_path, images, "b.h5", seed=2)
    out = _json(
        runner.invoke(
            cli_app,
            [
                "plot",
                "map",
                str(a),
                str(b),
                "--group",
                "toy/test",
                "--method",
                "pca",
                "--out",
                str(tmp_path / "figs"),
                "--json",
            ],
        )
    )
    assert out["figure"] == str(tmp_path / "figs" / "map-toy-test-pca.png")
    assert _png_shape(out["figure"]) == (500, 1200)
    assert out["stores"] == [{"name": "a", "points": 24, "total": 24}, {"name": "b", "points": 24, "total": 24}]


def test_plot_map_tsne_of_a_sample(runner, cli_app, tmp_path, images):
    path = _store(tmp_path, images, "a.h5")
    result = runner.invoke(
        cli_app,
        [
            "plot",
            "map",
            str(path),
            "--group",
            "toy/test",
            "--method",
            "tsne",
            "--max-points",
            "20",
            "--workspace",
            str(tmp_path / "ws"),
        ],
    )
    assert result.exit_code == 0, result.output
    figure = tmp_path / "ws" / "figures" / "map" / "map-toy-test-tsne.png"
    assert "20 of 24 points" in result.stdout and _png_shape(figure) == (500, 700)
    umap = runner.invoke(cli_app, ["plot", "map", str(path), "-g", "toy/test", "--method", "umap"])
    assert umap.exit_code == 2 and "'umap' is not one of 'pca', 'tsne'" in umap.output  # refused by the parser


def test_retrieve_grid_and_json(runner, cli_app, tmp_path, images):
    a, b = _store(tmp_path, images, "a.h5"), _store(tmp_path, images, "b.h5", spread=0.0, seed=3)
    out = _json(
        runner.invoke(
            cli_app,
            ["retrieve", str(a), str(b), "--group", "toy/test", "--k", "2", "--out", str(tmp_path / "figs"), "--json"],
        )
    )
    first, second = out["stores"]
    assert first["nearest_same_class"] == 1.0 and first["farthest_same_class"] == 0.0
    assert [q["id"] for q in first["queries"]] == [q["id"] for q in second["queries"]]  # same queries
    assert len(first["queries"]) == 3 and len(first["queries"][0]["nearest_ids"]) == 2
    # 3 queries x 2 stores = 6 rows; query, gap, 2 nearest, gap, 2 farthest: 5 1-inch cells, 2 quarter-inch gaps
    assert _png_shape(out["figure"]) == (670, 690)
    table = runner.invoke(cli_app, ["retrieve", str(a), "--group", "toy/test", "--k", "2", "--out", str(tmp_path)])
    assert table.exit_code == 0 and "100%" in table.stdout


def test_retrieve_without_the_images_is_a_clear_error(runner, cli_app, tmp_path, images):
    import shutil

    path = _store(tmp_path, images, "a.h5")
    shutil.rmtree(images[0])
    shutil.rmtree(tmp_path / "cache")
    _assert_one_line_error(
        runner.invoke(cli_app, ["retrieve", str(path), "--group", "toy/test", "--k", "2", "--out", str(tmp_path)]),
        "are needed to draw the figure",
    )


def test_anomaly_scores_roc_and_top_images(runner, cli_app, tmp_path, images):
    a, b = _store(tmp_path, images, "a.h5"), _store(tmp_path, images, "b.h5", seed=4)
    args = [
        "anomaly",
        str(a),
        str(b),
        "--ood",
        "far/test",
        "--reference",
        "toy/train",
        "--normal",
        "toy/test",
        "--top",
        "4",
        "--out",
        str(tmp_path / "figs"),
    ]
    out = _json(runner.invoke(cli_app, [*args, "--json"]))
    assert out["ood"] == "far/test" and out["k"] == 2
    for store in out["stores"]:
        assert store["roc_auc"] == 1.0 and (store["n_normal"], store["n_ood"]) == (24, 6)
        assert [p["ood"] for p in store["top"]] == [True] * 4 and not store["encoded_ood"]
    assert _png_shape(out["figures"]["roc"]) == (500, 500)
    assert _png_shape(out["figures"]["top"]) == (470, 540)  # 2 stores x (normal row, OOD row) x 4 images
    table = runner.invoke(cli_app, args)
    assert table.exit_code == 0 and "1.000" in table.stdout


def test_anomaly_without_images_still_scores_and_warns(runner, cli_app, tmp_path, images):
    import shutil

    path = _store(tmp_path, images, "a.h5")
    shutil.rmtree(images[0])
    shutil.rmtree(tmp_path / "cache")
    result = runner.invoke(
        cli_app,
        [
            "anomaly",
            str(path),
            "--ood",
            "far/test",
            "--reference",
            "toy/train",
            "--normal",
            "toy/test",
            "--out",
            str(tmp_path / "figs"),
            "--json",
        ],
    )
    out = _json(result)
    assert out["stores"][0]["roc_auc"] == 1.0 and set(out["figures"]) == {"roc"}
    assert "warning: no image grid" in result.stderr


def test_anomaly_without_ood_group_or_checkpoint_says_how(runner, cli_app, tmp_path, images):
    path = _store(tmp_path, images, "a.h5", ood=False)
    _assert_one_line_error(
        runner.invoke(
            cli_app, ["anomaly", str(path), "--ood", "mnist", "--reference", "toy/train", "--normal", "toy/test"]
        ),
        "mnist/test",
        "embedkit encode CKPT --dataset mnist --split test",
    )


def test_cluster_scores_and_figure(runner, cli_app, tmp_path, images):
    a, b = _store(tmp_path, images, "a.h5"), _store(tmp_path, images, "b.h5", seed=5)
    out = _json(
        runner.invoke(
            cli_app,
            [
                "cluster",
                str(a),
                str(b),
                "--group",
                "toy/test",
                "--k",
                "3",
                "--map",
                "pca",
                "--out",
                str(tmp_path / "figs"),
                "--json",
            ],
        )
    )
    for store in out["stores"]:
        assert store["ari"] == 1.0 and store["nmi"] == pytest.approx(1.0) and store["silhouette_kmeans"] > 0.8
    assert _png_shape(out["figure"]) == (1000, 1200)
    table = runner.invoke(cli_app, ["cluster", str(a), "-g", "toy/test", "-k", "3", "--out", str(tmp_path / "f")])
    assert table.exit_code == 0, table.output
    assert "1.000" in table.stdout and (tmp_path / "f" / "clusters-toy-test-k3.png").is_file()
    _assert_one_line_error(runner.invoke(cli_app, ["cluster", str(a), "-g", "toy/test", "-k", "50"]), "k=50")


def test_tables_name_each_model_by_its_training_recipe(tmp_path, rng, runner, cli_app):
    """A store from `encode` records its training config: every evaluation table names the model by it (the file
    stem only for embeddings from elsewhere), so `a.h5` and `b.h5` read as what they are."""
    from embedkit.store.store import open_store

    labels = np.arange(60) % 3
    recipes = {
        "a.h5": {"encoder": "small", "epochs": 6, "mu": 25.0},
        "b.h5": {"encoder": "small", "epochs": 2, "mu": 0},
    }
    for name, config in recipes.items():
        store = open_store(tmp_path / name, create=True)
        for group in ("cifar10/train", "cifar10/test", "mnist/test"):
            x = (rng.normal(size=(60, 4)) + 5 * labels[:, None] + (50 if group == "mnist/test" else 0)).astype(
                np.float32
            )
            store.write_group(group, x, labels, attrs={"config": config})
    open_store(tmp_path / "c.h5", create=True).write_group("cifar10/train", rng.normal(size=(60, 4)), labels)
    stores = [str(tmp_path / n) for n in ("a.h5", "b.h5")]
    want = ["vicreg (small, 6 ep)", "no-variance (small, 2 ep)"]
    figs = str(tmp_path / "figs")
    outputs = {
        "anomaly": ["anomaly", *stores, "--ood", "mnist/test", "--out", figs],
        "cluster": ["cluster", *stores, "-g", "cifar10/test", "-k", "3", "--out", figs],
        "compare": ["compare", *stores, "--k-cluster", "3", "--device", "cpu"],
    }
    for command, args in outputs.items():
        result = runner.invoke(cli_app, args)
        assert result.exit_code == 0, (command, result.output)
        lines = result.stdout.splitlines()
        assert [line.split("\t")[0] for line in lines if line.split("\t")[0] in want] == want, (command, result.stdout)
    other = runner.invoke(cli_app, ["cluster", str(tmp_path / "c.h5"), "-g", "cifar10/train", "-k", "3", "--out", figs])
    assert other.exit_code == 0 and any(line.startswith("c\t") for line in other.stdout.splitlines()), other.stdout
