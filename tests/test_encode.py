"""Encoding: batched and deterministic, a checkpoint round trip keeps embeddings, the store gets provenance;
and the train / encode / plot losses commands end to end on a tiny generated image folder."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from embedkit.errors import ConfigError, StoreError
from embedkit.training.encode import encode_images, encode_to_store
from embedkit.training.models import build_encoder, checkpoint_payload, file_digest, load_checkpoint, save_checkpoint

PREP = {"size": 32, "mean": [0.4914, 0.4822, 0.4465], "std": [0.247, 0.2435, 0.2616]}


@pytest.fixture(autouse=True)
def _one_thread(tmp_path, monkeypatch):
    torch.set_num_threads(1)
    monkeypatch.setenv("EMBEDKIT_CACHE", str(tmp_path / "cache"))


@pytest.fixture
def checkpoint(tmp_path):
    torch.manual_seed(0)
    encoder = build_encoder("small", dim=8)
    with torch.no_grad():  # leave BatchNorm's running stats away from their (0, 1) start values
        encoder.train()(torch.randn(16, 3, 32, 32))
    path = tmp_path / "ckpt.pt"
    save_checkpoint(path, checkpoint_payload(encoder, {"encoder": "small", "seed": 0}, PREP, step=1))
    return path


@pytest.fixture
def image_folder(tmp_path, rng):
    """root/{train,test}/{ant,bee}/k.png: 8 train and 4 test images per class, 32x32 RGB."""
    from PIL import Image

    root = tmp_path / "tiny"
    for split, n in (("train", 8), ("test", 4)):
        for cls in ("ant", "bee"):
            (root / split / cls).mkdir(parents=True)
            for k in range(n):
                pixels = rng.integers(0, 256, (32, 32, 3), dtype=np.uint8)
                Image.fromarray(pixels).save(root / split / cls / f"{k}.png")
    return root


def test_save_load_encode_gives_identical_embeddings(checkpoint, rng):
    images = rng.integers(0, 256, (10, 32, 32, 3), dtype=np.uint8)
    first, _ = load_checkpoint(checkpoint)
    second, _ = load_checkpoint(checkpoint)
    a = encode_images(first, images, device="cpu")
    assert a.shape == (10, 8) and a.dtype == np.float32
    assert np.array_equal(a, encode_images(second, images, device="cpu"))
    # Batching does not change the result: eval mode, each image on its own.
    assert np.allclose(a, encode_images(first, images, batch_size=3, device="cpu"), atol=1e-5)


def test_encode_applies_the_checkpoint_normalisation(checkpoint, rng):
    from embedkit.data.sources import normalize, to_float_tensor

    encoder, _ = load_checkpoint(checkpoint)
    images = rng.integers(0, 256, (4, 32, 32, 3), dtype=np.uint8)
    with torch.no_grad():
        expected = encoder(normalize(to_float_tensor(images), tuple(PREP["mean"]), tuple(PREP["std"]))).numpy()
    assert np.allclose(encode_images(encoder, images, device="cpu"), expected, atol=1e-6)


def test_grey_28x28_images_are_encoded_like_their_rgb32_version(checkpoint, rng):
    from embedkit.data.sources import to_rgb32

    encoder, _ = load_checkpoint(checkpoint)
    digits = rng.integers(0, 256, (5, 28, 28, 1), dtype=np.uint8)
    out = encode_images(encoder, digits, device="cpu")
    assert out.shape == (5, 8)
    assert np.array_equal(out, encode_images(encoder, to_rgb32(digits), device="cpu"))


def test_encode_to_store_writes_groups_with_provenance(checkpoint, image_folder, tmp_path):
    from embedkit.data.sources import load_images
    from embedkit.store.store import open_store

    store_path = tmp_path / "store.h5"
    seen = []
    groups = encode_to_store(
        checkpoint,
        str(image_folder),
        ["train", "test"],
        store_path,
        device="cpu",
        batch_size=5,
        on_progress=lambda done, total: seen.append((done, total)),
    )
    assert groups == ["tiny/train", "tiny/test"]
    assert seen[-1] == (24, 24)
    data = open_store(store_path).read("tiny/test")
    source = load_images(str(image_folder), "test")
    encoder, _ = load_checkpoint(checkpoint)
    assert np.allclose(data.embeddings, encode_images(encoder, source.images, device="cpu"), atol=1e-6)
    assert np.array_equal(data.labels, source.labels) and np.array_equal(data.ids, np.arange(8))
    assert data.attrs["checkpoint_digest"] == file_digest(checkpoint)
    assert data.attrs["config"]["seed"] == 0 and data.attrs["config"]["preprocessing"] == PREP
    assert list(data.attrs["class_names"]) == ["ant", "bee"] and data.attrs["split"] == "test"
    with pytest.raises(StoreError, match="'tiny/train' already exists"):
        encode_to_store(checkpoint, str(image_folder), ["train"], store_path, device="cpu")
    assert encode_to_store(checkpoint, str(image_folder), ["train"], store_path, device="cpu", overwrite=True)


def test_encode_subset_encodes_a_seeded_sample_with_its_rows_as_ids(checkpoint, image_folder, tmp_path):
    from embedkit._util.sampling import seeded_rows
    from embedkit.data.sources import load_images
    from embedkit.store.store import open_store

    store_path = tmp_path / "store.h5"
    encode_to_store(checkpoint, str(image_folder), ["train", "test"], store_path, device="cpu", subset=5, seed=2)
    encoder, _ = load_checkpoint(checkpoint)
    for split, n in (("train", 16), ("test", 8)):
        rows = seeded_rows(n, 5, 2)
        source = load_images(str(image_folder), split)
        group = open_store(store_path).read(f"tiny/{split}")
        assert np.array_equal(group.ids, rows) and np.array_equal(group.labels, source.labels[rows])
        assert np.allclose(group.embeddings, encode_images(encoder, source.images[rows], device="cpu"), atol=1e-6)
        assert (group.attrs["subset"], group.attrs["subset_seed"]) == (5, 2)  # the options that chose the rows
    encode_to_store(checkpoint, str(image_folder), ["test"], tmp_path / "all.h5", device="cpu", seed=2)
    assert "subset" not in open_store(tmp_path / "all.h5").read("tiny/test").attrs
    with pytest.raises(ConfigError, match="subset must be at least 1"):
        encode_to_store(checkpoint, str(image_folder), ["test"], tmp_path / "other.h5", device="cpu", subset=0)


def test_encode_interrupted_between_splits_writes_neither_and_reruns(checkpoint, image_folder, tmp_path):
    from embedkit.store.store import open_store

    store_path = tmp_path / "store.h5"
    open_store(store_path, create=True).write_group("other/kept", np.ones((3, 8), np.float32))

    def interrupt_in_the_second_split(done: int, total: int) -> None:
        if done > 16:  # 16 train images, then the test split
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        encode_to_store(
            checkpoint,
            str(image_folder),
            ["train", "test"],
            store_path,
            device="cpu",
            batch_size=4,
            on_progress=interrupt_in_the_second_split,
        )
    assert open_store(store_path).groups() == ["other/kept"]
    assert encode_to_store(checkpoint, str(image_folder), ["train", "test"], store_path, device="cpu")  # no --overwrite
    assert open_store(store_path).groups() == ["other/kept", "tiny/test", "tiny/train"]


def test_cli_train_encode_and_plot_losses(runner, cli_app, image_folder, tmp_path):
    run = tmp_path / "run"
    result = runner.invoke(
        cli_app,
        [
            "train",
            "--dataset",
            str(image_folder),
            "--epochs",
            "2",
            "--batch-size",
            "8",
            "--run-dir",
            str(run),
            "--device",
            "cpu",
            "--json",
        ],
    )
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    assert summary["steps"] == 4 and summary["epochs"] == 2 and summary["test"]["split"] == "test"
    assert summary["config"]["encoder"] == "small" and (run / "last.pt").is_file()

    store = tmp_path / "store.h5"
    result = runner.invoke(
        cli_app,
        [
            "encode",
            str(run / "last.pt"),
            "--dataset",
            str(image_folder),
            "--out",
            str(store),
            "--device",
            "cpu",
            "--json",
        ],
    )
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["groups"] == [
        {"group": "tiny/train", "n": 16, "dim": 128},
        {"group": "tiny/test", "n": 8, "dim": 128},
    ]
    result = runner.invoke(
        cli_app,
        ["encode", str(run / "last.pt"), "--dataset", str(image_folder), "--split", "test", "--out", str(store)],
    )
    assert result.exit_code == 1 and "already exists" in result.output

    result = runner.invoke(cli_app, ["plot", "losses", str(run), "--json"])
    assert result.exit_code == 0, result.output
    figure = json.loads(result.stdout)
    assert figure["train_steps"] == 4 and figure["test_points"] == 2
    assert (run / "losses.png").read_bytes()[:4] == b"\x89PNG"

    result = runner.invoke(cli_app, ["train", "--resume", "--run-dir", str(run), "--epochs", "3", "--json"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["steps"] == 6


def test_cli_errors_are_one_line(runner, cli_app, tmp_path, image_folder):
    bad = tmp_path / "bad.pt"
    bad.write_bytes(b"not a checkpoint")
    result = runner.invoke(
        cli_app, ["encode", str(bad), "--dataset", str(image_folder), "--out", str(tmp_path / "s.h5")]
    )
    assert result.exit_code == 1
    assert result.output.strip().count("\n") == 0 and "not a readable checkpoint" in result.output
    result = runner.invoke(cli_app, ["encode", "--workspace", str(tmp_path / "empty-ws")])
    assert result.exit_code == 1 and "no checkpoint" in result.output
    result = runner.invoke(cli_app, ["train", "--optimizer", "sgd", "--run-dir", str(tmp_path / "r")])
    assert result.exit_code == 2 and "'sgd' is not one of 'adam', 'lars'" in result.output  # refused by the parser
    result = runner.invoke(cli_app, ["train", "--resume", "--lr", "0.1", "--run-dir", str(tmp_path / "r")])
    assert result.exit_code == 1 and "drop --lr" in result.output
    result = runner.invoke(cli_app, ["plot", "losses", str(tmp_path)])
    assert result.exit_code == 1 and "no training log" in result.output
