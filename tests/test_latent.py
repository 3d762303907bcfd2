"""Latent optimization on tiny seeded stores: the rows move, the loss falls, both groups are written; CLI errors."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from embedkit.baselines.latent import LatentConfig, fit_latent, fit_latent_to_store, initial_vectors
from embedkit.errors import ConfigError, StoreError
from embedkit.store.store import open_store

TINY = LatentConfig(epochs=15, k=3, dim=8, batch_size=32, lr=0.1, seed=0)


@pytest.fixture(autouse=True)
def _one_thread():
    torch.set_num_threads(1)


def _blobs(n: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Two well-separated Gaussian blobs in 4-d, labels 0/1."""
    rng = np.random.default_rng(seed)
    labels = np.arange(n) % 2
    return (rng.normal(size=(n, 4)) + 10.0 * labels[:, None]).astype(np.float32), labels


@pytest.fixture
def source(tmp_path):
    emb, labels = _blobs(96)
    store = open_store(tmp_path / "vicreg.h5", create=True)
    attrs = {"dataset": "cifar10", "class_names": ["a", "b"]}
    store.write_group("cifar10/train", emb[:64], labels[:64], np.arange(64), {**attrs, "split": "train"})
    store.write_group("cifar10/test", emb[64:], labels[64:], np.arange(32), {**attrs, "split": "test"})
    return tmp_path / "vicreg.h5"


def test_rows_move_and_the_loss_falls():
    from embedkit.search.index import knn

    emb, _ = _blobs(96)
    _, neighbours = knn(emb, emb, 3, exclude_self=True)
    fit = fit_latent(neighbours, TINY, device="cpu")
    assert fit.vectors.shape == (96, 8)
    assert not np.allclose(fit.vectors, initial_vectors(96, TINY).numpy())
    assert fit.epoch_terms[-1]["total"] < 0.7 * fit.epoch_terms[0]["total"]
    assert fit.epoch_terms[-1]["inv"] < fit.epoch_terms[0]["inv"]
    again = fit_latent(neighbours, TINY, device="cpu")
    assert np.array_equal(fit.vectors, again.vectors)  # seeded


def test_fit_to_store_writes_train_and_test_with_provenance(tmp_path, source):
    run = fit_latent_to_store(source, tmp_path / "latent.h5", TINY, device="cpu")
    out = open_store(tmp_path / "latent.h5")
    train, test = out.read("cifar10/train"), out.read("cifar10/test")
    assert (run.n_train, run.n_test) == (64, 32) and train.embeddings.shape == (64, 8)
    assert train.attrs["split"] == "train" and test.attrs["class_names"] == ["a", "b"]
    assert np.array_equal(test.ids, np.arange(32)) and np.array_equal(test.labels, np.arange(64, 96) % 2)
    config = train.attrs["config"]
    assert config["method"] == "latent-optimization" and config["k"] == 3
    assert config["source_content_ids"]["cifar10/test"] == open_store(source).content_id("cifar10/test")
    json.dumps(run.to_json())
    assert run.to_json()["final"]["total"] < run.to_json()["first"]["total"]


def test_bad_sources_and_configs_are_one_line_errors(tmp_path, source):
    store = open_store(tmp_path / "half.h5", create=True)
    store.write_group("cifar10/train", np.ones((4, 2), np.float32))
    with pytest.raises(StoreError, match=r"half\.h5: group 'cifar10/test' not found \(groups: cifar10/train\)"):
        fit_latent_to_store(tmp_path / "half.h5", tmp_path / "out.h5", TINY)
    with pytest.raises(StoreError, match="is the source store"):
        fit_latent_to_store(source, source, TINY)
    with pytest.raises(ConfigError, match="k=500"):
        fit_latent_to_store(source, tmp_path / "out.h5", LatentConfig(k=500))


def test_cli_train_latent(runner, cli_app, tmp_path, source):
    out = tmp_path / "cli.h5"
    result = runner.invoke(
        cli_app,
        [
            "train",
            "--latent",
            "--source-store",
            str(source),
            "--out",
            str(out),
            "--epochs",
            "2",
            "--batch-size",
            "32",
            "--device",
            "cpu",
            "--json",
        ],
    )
    assert result.exit_code == 0, result.output
    payload = json.loads(result.stdout)
    assert (payload["n_train"], payload["n_test"], payload["epochs"]) == (64, 32, 2)
    assert open_store(out).groups() == ["cifar10/test", "cifar10/train"]
    refused = runner.invoke(cli_app, ["train", "--latent", "--encoder", "small", "--source-store", str(source)])
    assert refused.exit_code == 1 and "--latent has no encoder" in refused.output
    stray = runner.invoke(cli_app, ["train", "--k", "3"])
    assert stray.exit_code == 1 and "--k only applies with --latent" in stray.output
    help_text = runner.invoke(cli_app, ["train", "--help"]).output
    assert "TRAIN AND TEST" in help_text and "NO encoder" in help_text


def test_latent_config_from_training_options_refuses_what_it_cannot_use():
    from embedkit.baselines.latent import LatentConfig, latent_config_from
    from embedkit.errors import ConfigError
    from embedkit.training.config import check_resume_options

    assert latent_config_from({"epochs": 3, "k": 2, "encoder": None}) == LatentConfig(epochs=3, k=2)
    with pytest.raises(ConfigError, match="drop --encoder"):
        latent_config_from({"epochs": 3, "encoder": "small"})
    with pytest.raises(ConfigError, match="drop --run-dir"):
        latent_config_from({"run_dir": "runs/x"})
    check_resume_options({"epochs": 4, "lr": None})
    with pytest.raises(ConfigError, match="drop --batch-size"):
        check_resume_options({"epochs": 4, "batch_size": 64})
