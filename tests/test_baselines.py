"""Laplacian eigenmaps against sklearn and closed-form properties, on seeded synthetic data; the CLI end to end."""

from __future__ import annotations

import json

import numpy as np
import pytest
import scipy.sparse as sp
from scipy.sparse.csgraph import connected_components

from embedkit.baselines.laplacian import knn_graph, laplacian_eigenmaps, reduce_pca, spectral_embedding
from embedkit.errors import ConfigError


def _blobs(offset: float, n_per_blob: int = 100, dim: int = 10, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    labels = np.repeat([0, 1], n_per_blob)
    x = rng.normal(size=(2 * n_per_blob, dim)).astype(np.float32)
    x[labels == 1, 0] += offset
    return x, labels


def _curve(n: int, seed: int = 0) -> np.ndarray:
    """A noisy 1-D curve in 10-D: its Laplacian eigenvalues are distinct, so each eigenvector is well defined."""
    rng = np.random.default_rng(seed)
    t = np.sort(rng.uniform(0, 1, n))
    basis = np.linalg.qr(rng.normal(size=(10, 3)))[0]
    curve = np.stack([t * 10, np.sin(3 * t), np.cos(2 * t)], axis=1) @ basis.T
    return (curve + 0.01 * rng.normal(size=curve.shape)).astype(np.float32)


@pytest.mark.parametrize("offset, expected_components", [(8.0, 1), (100.0, 2)])
def test_two_blobs_are_separated(offset, expected_components):
    from sklearn.linear_model import LogisticRegression

    x, labels = _blobs(offset)
    result = laplacian_eigenmaps(x, dim=4, k=10, pca_dim=None)
    assert result.n_components == expected_components
    first = result.embedding[:, 0] > 0
    assert (first == labels.astype(bool)).all() or (first != labels.astype(bool)).all()
    train = np.arange(len(x)) % 2 == 0
    probe = LogisticRegression().fit(result.embedding[train], labels[train])
    assert probe.score(result.embedding[~train], labels[~train]) == 1.0


@pytest.mark.parametrize("n", [300, 2500])  # the dense solver, then sparse Lanczos
def test_matches_sklearn_spectral_embedding(n):
    from sklearn.manifold import SpectralEmbedding
    from sklearn.neighbors import kneighbors_graph

    x, k, dim = _curve(n), 10, 4
    result = laplacian_eigenmaps(x, dim=dim, k=k, pca_dim=None)
    a = kneighbors_graph(x, k, include_self=False)
    reference = SpectralEmbedding(dim, affinity="precomputed", eigen_solver="arpack", random_state=0)
    expected = reference.fit_transform(0.5 * (a + a.T))
    assert result.n_components == 1
    for column in range(dim):  # eigenvectors are defined up to sign
        corr = np.corrcoef(result.embedding[:, column], expected[:, column])[0, 1]
        assert abs(corr) > 0.999, (column, corr)
    gap = np.diff(result.eigenvalues)
    assert (gap > 0).all()


def test_knn_graph_is_sklearns_symmetrised_graph():
    from sklearn.neighbors import kneighbors_graph

    x = np.random.default_rng(1).normal(size=(400, 8)).astype(np.float32)
    w, n_components = knn_graph(x, 7)
    a = kneighbors_graph(x, 7, include_self=False)
    assert n_components == 1
    assert abs(w - 0.5 * (a + a.T)).max() == 0
    assert set(np.unique(w.data)) == {0.5, 1.0}


def test_disconnected_graph_is_joined_by_one_edge_per_component():
    rng = np.random.default_rng(2)
    x = np.concatenate([rng.normal(size=(60, 5)) + shift for shift in (0, 100, 200)]).astype(np.float32)
    w, n_components = knn_graph(x, 5)
    assert n_components == 3
    assert connected_components(w, directed=False)[0] == 1
    x_blocks = np.repeat([0, 1, 2], 60)
    coo = w.tocoo()
    crossing = x_blocks[coo.row] != x_blocks[coo.col]
    assert crossing.sum() == 4  # two bridges, stored in both directions
    assert (coo.data[crossing] == 1.0).all()
    embedding, eigenvalues = spectral_embedding(w, 3)
    assert (eigenvalues[:2] < 0.01).all() and eigenvalues[2] > 0.01  # the two bridges, then within-blob structure


def test_embedding_is_d_orthonormal_and_orthogonal_to_constant():
    x = _curve(500, seed=3)
    w, _ = knn_graph(x, 10)
    y, eigenvalues = spectral_embedding(w, 6)
    degree = np.asarray(w.sum(axis=1)).ravel()
    assert y.shape == (500, 6) and y.dtype == np.float32 and np.isfinite(y).all()
    np.testing.assert_allclose((y.T * degree) @ y, np.eye(6), atol=1e-5)
    np.testing.assert_allclose(degree @ y, 0, atol=1e-4)
    assert ((0 < eigenvalues) & (eigenvalues < 2)).all() and (np.diff(eigenvalues) >= 0).all()
    laplacian = sp.diags(degree) - w  # L y = lambda D y
    np.testing.assert_allclose(laplacian @ y, (degree[:, None] * y) * eigenvalues, atol=1e-5)


def test_reduce_pca_matches_sklearn():
    from sklearn.decomposition import PCA

    rng = np.random.default_rng(4)
    x = (rng.normal(size=(500, 40)) * np.linspace(5, 0.1, 40)).astype(np.float32)
    ours = reduce_pca(x, 5)
    theirs = PCA(5).fit_transform(x)
    assert ours.shape == (500, 5) and ours.dtype == np.float32
    for column in range(5):
        np.testing.assert_allclose(np.abs(ours[:, column]), np.abs(theirs[:, column]), rtol=1e-3, atol=1e-3)


def test_pca_then_eigenmaps_shape_and_determinism():
    x, _ = _blobs(8.0, dim=50)
    first = laplacian_eigenmaps(x, dim=5, k=8, pca_dim=10, seed=3)
    again = laplacian_eigenmaps(x, dim=5, k=8, pca_dim=10, seed=3)
    assert first.embedding.shape == (200, 5) and first.embedding.dtype == np.float32
    np.testing.assert_array_equal(first.embedding, again.embedding)
    assert set(first.seconds) == {"pca", "knn_graph", "eigensolver"}


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"dim": 30}, "dim=30"),
        ({"dim": 0}, "dim=0"),
        ({"k": 30}, "k=30"),
        ({"pca_dim": 0}, "pca_dim=0"),
    ],
)
def test_bad_options_raise_one_line_config_error(kwargs, message):
    x = np.random.default_rng(5).normal(size=(30, 4)).astype(np.float32)
    with pytest.raises(ConfigError, match=message) as info:
        laplacian_eigenmaps(x, **{"dim": 2, "k": 5, **kwargs})
    assert "\n" not in str(info.value)


# ---------------------------------------------------------------- CLI on a tiny generated image folder


@pytest.fixture
def image_folder(tmp_path, monkeypatch):
    """`{train,test}/{dark,bright}/*.png`: 8x8 images, 12 train and 4 test per class."""
    from PIL import Image

    monkeypatch.setenv("EMBEDKIT_CACHE", str(tmp_path / "cache"))
    rng = np.random.default_rng(6)
    root = tmp_path / "tiny"
    for split, count in (("train", 12), ("test", 4)):
        for name, level in (("dark", 40), ("bright", 210)):
            folder = root / split / name
            folder.mkdir(parents=True)
            for i in range(count):
                pixels = np.clip(level + rng.normal(0, 20, (8, 8, 3)), 0, 255).astype(np.uint8)
                Image.fromarray(pixels).save(folder / f"{i:03d}.png")
    return root


def test_cli_writes_train_and_test_groups(runner, cli_app, image_folder, tmp_path):
    from embedkit.store.store import open_store

    out = tmp_path / "lap.h5"
    args = [
        "baseline",
        "laplacian",
        "--dataset",
        str(image_folder),
        "--dim",
        "3",
        "--k",
        "4",
        "--pca-dim",
        "16",
        "--out",
        str(out),
        "--json",
    ]
    result = runner.invoke(cli_app, args)
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    assert summary["groups"] == ["tiny/train", "tiny/test"] and summary["rows"] == {"tiny/train": 24, "tiny/test": 8}
    store = open_store(out)
    train, test = store.read("tiny/train"), store.read("tiny/test")
    assert train.embeddings.shape == (24, 3) and test.embeddings.shape == (8, 3)
    np.testing.assert_array_equal(train.ids, np.arange(24))
    assert list(train.labels) == [0] * 12 + [1] * 12  # classes sorted by name: bright, dark
    config = test.attrs["config"]
    assert config["method"] == "laplacian-eigenmaps" and config["pca_dim"] == 16 and config["k"] == 4
    assert test.attrs["split"] == "test" and list(test.attrs["class_names"]) == ["bright", "dark"]
    # the first coordinate separates dark from bright images, across both splits
    first = np.concatenate([train.embeddings[:, 0], test.embeddings[:, 0]]) > 0
    bright = np.concatenate([train.labels, test.labels]) == 0
    assert (first == bright).all() or (first != bright).all()

    again = runner.invoke(cli_app, args)
    assert again.exit_code == 1 and "already exists" in again.output
    table = runner.invoke(cli_app, [*args[:-1], "--overwrite"])
    assert table.exit_code == 0, table.output
    assert "connected components" in table.output and "32" in table.output


def test_cli_subset_embeds_a_seeded_sample_of_each_split_with_its_rows_as_ids(runner, cli_app, image_folder, tmp_path):
    from embedkit._util.sampling import seeded_rows
    from embedkit.data.sources import load_images
    from embedkit.store.store import open_store

    out = tmp_path / "lap.h5"
    result = runner.invoke(
        cli_app,
        [
            "baseline",
            "laplacian",
            "--dataset",
            str(image_folder),
            "--dim",
            "2",
            "--k",
            "3",
            "--subset",
            "6",
            "--seed",
            "1",
            "--out",
            str(out),
            "--json",
        ],
    )
    assert result.exit_code == 0, result.output
    for split, n in (("train", 24), ("test", 8)):
        group = open_store(out).read(f"tiny/{split}")
        rows = seeded_rows(n, 6, 1)
        assert len(set(rows)) == 6 and np.array_equal(group.ids, rows)
        assert np.array_equal(group.labels, load_images(str(image_folder), split).labels[rows])
        assert group.attrs["config"]["subset"] == 6


def test_cli_subset_below_one_is_one_line_error_and_writes_nothing(runner, cli_app, image_folder, tmp_path):
    out = tmp_path / "lap.h5"
    result = runner.invoke(
        cli_app,
        ["baseline", "laplacian", "--dataset", str(image_folder), "--dim", "2", "--subset", "0", "--out", str(out)],
    )
    assert result.exit_code == 1
    assert "subset must be at least 1 image per split, got 0" in result.output and "Traceback" not in result.output
    assert not list(tmp_path.glob("*lap.h5*"))  # no store, lock or temp file


def test_cli_dim_too_large_is_one_line_error(runner, cli_app, image_folder, tmp_path):
    out = tmp_path / "lap.h5"
    result = runner.invoke(
        cli_app, ["baseline", "laplacian", "--dataset", str(image_folder), "--dim", "32", "--out", str(out)]
    )
    assert result.exit_code == 1
    assert "dim=32" in result.output and "Traceback" not in result.output
    assert not out.exists()
