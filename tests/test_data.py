"""Data sources: exact round trips from generated image trees, archives and IDX files; cache; errors; transforms."""

from __future__ import annotations

import gzip
import io
import json
import os
import pickle
import shutil
import struct
import tarfile
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from embedkit._util.sampling import seeded_rows
from embedkit.data import images as imagefiles
from embedkit.data import sources as data
from embedkit.data.sources import (
    CIFAR10_MEAN,
    CIFAR10_STD,
    available_datasets,
    load_images,
    normalize,
    resolve_data_root,
    to_float_tensor,
    to_rgb32,
)
from embedkit.data.tar import iter_tar_members
from embedkit.errors import ConfigError, DataError

CIFAR10_CLASSES = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck")
# File names chosen so that string order differs from creation order and numeric order.
LAYOUT = {
    "train": {"cat": ["b.png", "10.png", "9.png"], "dog": ["a.png", "c.png"], "emu": ["z.png"]},
    "test": {"dog": ["2.png", "1.png"], "cat": ["x.png"]},
}


@pytest.fixture(autouse=True)
def _isolated_cache(request, tmp_path, monkeypatch):
    """Each synthetic test gets an empty cache; real-data tests share the session's cache (decoded once per run)."""
    if "realdata" not in request.keywords:
        monkeypatch.setenv("EMBEDKIT_CACHE", str(tmp_path / "cache"))


def make_tree(root: Path, rng: np.random.Generator, layout=LAYOUT, size=(6, 8)) -> dict:
    """Write PNGs `root/<split>/<class>/<file>` (H, W = size); return split -> (images, class per row) in load order."""
    expected = {}
    for split, classes in layout.items():
        rows = []
        for cls, names in classes.items():
            (root / split / cls).mkdir(parents=True, exist_ok=True)
            for name in names:
                pixels = rng.integers(0, 256, (*size, 3), dtype=np.uint8)
                Image.fromarray(pixels).save(root / split / cls / name)
                rows.append((cls, name, pixels))
        rows.sort(key=lambda r: (r[0], r[1]))
        expected[split] = (np.stack([r[2] for r in rows]), [r[0] for r in rows])
    (root / "README.txt").write_text("not an image")  # ignored: not an image
    split, classes = next(iter(layout.items()))
    (root / split / next(iter(classes)) / ".hidden.png").write_bytes(b"junk")  # ignored: hidden
    return expected


def make_targz(folder: Path, archive: Path, keep_folder: bool = True) -> Path:
    with tarfile.open(archive, "w:gz") as tar:
        tar.add(folder, arcname=folder.name)
    if not keep_folder:
        shutil.rmtree(folder)
    return archive


def write_idx(path: Path, array: np.ndarray) -> None:
    header = bytes([0, 0, 0x08, array.ndim]) + struct.pack(f">{array.ndim}I", *array.shape)
    raw = header + array.astype(np.uint8).tobytes()
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(gzip.compress(raw) if path.suffix == ".gz" else raw)


def write_mnist(folder: Path, rng, n=7, prefix="t10k", gz=True) -> tuple[np.ndarray, np.ndarray]:
    images = rng.integers(0, 256, (n, 28, 28), dtype=np.uint8)
    labels = rng.integers(0, 10, n).astype(np.uint8)
    suffix = ".gz" if gz else ""
    write_idx(folder / f"{prefix}-images-idx3-ubyte{suffix}", images)
    write_idx(folder / f"{prefix}-labels-idx1-ubyte{suffix}", labels)
    return images, labels


def check_split(loaded, expected, class_names):
    images, classes = expected
    np.testing.assert_array_equal(loaded.images, images)
    assert loaded.images.dtype == np.uint8 and loaded.labels.dtype == np.int64
    assert [loaded.class_names[i] for i in loaded.labels] == classes


# --- image folders and archives -------------------------------------------------------------------------------


def test_folder_round_trip_exact_pixels_labels_and_order(tmp_path, rng):
    expected = make_tree(tmp_path / "pets", rng)
    progress = []
    for split in ("train", "test"):
        loaded = load_images(str(tmp_path / "pets"), split, on_progress=lambda *args: progress.append(args))
        # Classes are the sorted union over splits, so "emu" (train only) keeps one label in every split.
        assert loaded.class_names == ("cat", "dog", "emu")
        assert (loaded.dataset, loaded.split, loaded.source) == ("pets", split, str(tmp_path / "pets"))
        check_split(loaded, expected[split], loaded.class_names)
    assert progress == [(6, 6), (3, 3)]  # a folder decodes only the split asked for
    progress.clear()
    train = load_images(str(tmp_path / "pets"), "train", on_progress=lambda *args: progress.append(args))
    assert not progress  # served from the cache
    assert train.labels.tolist() == [0, 0, 0, 1, 1, 2]  # rows: class, then file name ("10" < "9" < "b")


def test_archive_round_trip_decodes_every_split_in_one_pass(tmp_path, rng, monkeypatch):
    expected = make_tree(tmp_path / "pets", rng)
    archive = make_targz(tmp_path / "pets", tmp_path / "pets.tar.gz")
    progress = []
    train = load_images(str(archive), "train", on_progress=lambda done, total: progress.append((done, total)))
    assert train.dataset == "pets" and train.class_names == ("cat", "dog", "emu")
    check_split(train, expected["train"], train.class_names)
    assert progress == [(9, 9)]  # images of both splits counted in one pass (one chunk here)
    monkeypatch.setattr(imagefiles, "decode_blobs", _no_decoding)
    check_split(load_images(str(archive), "test"), expected["test"], train.class_names)


def _no_decoding(*args, **kwargs):
    raise AssertionError("decoded although the cache should have answered")


def test_cache_hit_skips_decoding_and_a_changed_file_invalidates_it(tmp_path, rng, monkeypatch):
    make_tree(tmp_path / "pets", rng)
    first = load_images(str(tmp_path / "pets"), "train")
    with monkeypatch.context() as patch:
        patch.setattr(imagefiles, "decode_blobs", _no_decoding)
        second = load_images(str(tmp_path / "pets"), "train")
    np.testing.assert_array_equal(second.images, first.images)
    np.testing.assert_array_equal(second.labels, first.labels)
    assert second.class_names == first.class_names
    new_pixels = np.full((6, 8, 3), 7, np.uint8)
    Image.fromarray(new_pixels).save(tmp_path / "pets" / "train" / "dog" / "a.png")
    os.utime(tmp_path / "pets" / "train" / "dog" / "a.png", ns=(1, 1))
    third = load_images(str(tmp_path / "pets"), "train")
    np.testing.assert_array_equal(third.images[3], new_pixels)
    cache_files = sorted(p.name for p in (tmp_path / "cache").iterdir())
    assert len(cache_files) == 2, cache_files  # one .npy + one .labels.npz; the stale entry was removed


BIG_LAYOUT = {
    "train": {cls: [f"{i}.png" for i in range(9)] for cls in ("cat", "dog", "emu", "fox")},
    "test": {cls: [f"{i}.png" for i in range(5)] for cls in ("cat", "dog")},
}


@pytest.mark.parametrize("kind", ["folder", "archive"])
def test_a_sample_decodes_only_its_rows_on_a_cold_cache(tmp_path, rng, kind):
    expected = make_tree(tmp_path / "pets", rng, BIG_LAYOUT)
    path = tmp_path / "pets" if kind == "folder" else make_targz(tmp_path / "pets", tmp_path / "pets.tar.gz")
    progress = []
    sample = load_images(str(path), "train", sample=7, seed=3, on_progress=lambda *args: progress.append(args))
    assert progress[-1] == (7, 7)  # 7 of the 36 train images decoded, no test image
    assert not (tmp_path / "cache").exists() or not any((tmp_path / "cache").iterdir())  # a sample is never cached
    rows = seeded_rows(36, 7, 3)
    images, classes = expected["train"]
    check_split(sample, (images[rows], [classes[r] for r in rows]), sample.class_names)
    assert sample.class_names == ("cat", "dog", "emu", "fox")  # the whole tree's classes, not the sample's

    full = load_images(str(path), "train")  # decodes and caches the split
    for seed in (3, 4):
        warm = load_images(str(path), "train", sample=7, seed=seed)  # served from the cache
        np.testing.assert_array_equal(warm.images, full.images[seeded_rows(36, 7, seed)])
        np.testing.assert_array_equal(warm.labels, full.labels[seeded_rows(36, 7, seed)])
    np.testing.assert_array_equal(load_images(str(path), "train", sample=99).images, full.images)
    with pytest.raises(ConfigError, match="at least 1 image"):
        load_images(str(path), "train", sample=0)


def test_a_sample_of_a_split_that_needs_no_decoding_is_the_same_rows(tmp_path, rng):
    images, labels = write_mnist(tmp_path / "mnist-test", rng, n=30)
    sample = load_images("mnist", "test", tmp_path, sample=11, seed=5)
    rows = seeded_rows(30, 11, 5)
    np.testing.assert_array_equal(sample.images[..., 0], images[rows])
    np.testing.assert_array_equal(sample.labels, labels[rows])


def test_loading_never_writes_to_the_data_root(tmp_path, rng):
    make_tree(tmp_path / "root" / "cifar10", rng, layout={"train": {"cat": ["1.png"]}, "test": {"cat": ["2.png"]}})
    make_targz(tmp_path / "root" / "cifar10", tmp_path / "root" / "cifar10-jpeg.tar.gz")
    before = sorted(p for p in (tmp_path / "root").rglob("*"))
    load_images("cifar10", "train", tmp_path / "root")
    assert sorted(p for p in (tmp_path / "root").rglob("*")) == before


def test_flat_folder_is_split_all(tmp_path, rng):
    expected = make_tree(tmp_path, rng, layout={"flowers": {"rose": ["1.png", "0.png"], "iris": ["5.png"]}})
    loaded = load_images(str(tmp_path / "flowers"), "all")
    assert loaded.class_names == ("iris", "rose") and loaded.labels.tolist() == [0, 1, 1]
    np.testing.assert_array_equal(loaded.images, expected["flowers"][0])
    with pytest.raises(DataError, match="split 'all'"):
        load_images(str(tmp_path / "flowers"), "train")


@pytest.mark.parametrize("where", ["cifar10-jpeg", "cifar10", ".", "cifar10-jpeg.tar.gz"])
def test_cifar10_is_found_in_every_tree_layout(tmp_path, rng, where):
    layout = {"train": {"cat": ["0.png", "1.png"], "ship": ["0.png"]}, "test": {"ship": ["0.png"]}}
    root = tmp_path / "root"
    tree = root / "cifar10-jpeg" if where.endswith(".tar.gz") else root / where
    expected = make_tree(tree, rng, layout=layout)
    if where.endswith(".tar.gz"):
        make_targz(tree, root / where, keep_folder=False)
    for split in ("train", "test"):
        loaded = load_images("cifar10", split, root)
        assert loaded.dataset == "cifar10" and loaded.class_names == ("cat", "ship")
        assert loaded.source == str(root / where if where != "." else root)
        check_split(loaded, expected[split], loaded.class_names)


def test_torchvision_cifar10_layout(tmp_path, rng, monkeypatch):
    import torchvision.datasets.cifar

    monkeypatch.setattr(torchvision.datasets.cifar, "check_integrity", lambda *args, **kwargs: True)
    folder = tmp_path / "cifar-10-batches-py"
    folder.mkdir()
    batches = {}
    for name in ["data_batch_1", "data_batch_2", "data_batch_3", "data_batch_4", "data_batch_5", "test_batch"]:
        batch = {"data": rng.integers(0, 256, (2, 3072), dtype=np.uint8), "labels": rng.integers(0, 10, 2).tolist()}
        batches[name] = batch
        (folder / name).write_bytes(pickle.dumps(batch))
    (folder / "batches.meta").write_bytes(pickle.dumps({"label_names": list(CIFAR10_CLASSES)}))
    test = load_images("cifar10", "test", tmp_path)
    planes = batches["test_batch"]["data"].reshape(2, 3, 32, 32)
    np.testing.assert_array_equal(test.images, planes.transpose(0, 2, 3, 1))
    assert test.labels.tolist() == batches["test_batch"]["labels"] and test.class_names == CIFAR10_CLASSES
    assert len(load_images("cifar10", "train", tmp_path).images) == 10


def test_image_formats_decode_like_pillow(tmp_path, rng):
    folder = tmp_path / "mixed" / "c"
    folder.mkdir(parents=True)
    pixels = rng.integers(0, 256, (5, 7, 3), dtype=np.uint8)
    Image.fromarray(pixels).save(folder / "a.bmp")  # decoded by the Pillow fallback
    Image.fromarray(pixels[..., 0]).save(folder / "b.png")  # grey -> three equal channels
    Image.fromarray(pixels).save(folder / "c.jpg", quality=95)
    loaded = load_images(str(tmp_path / "mixed"), "all").images
    np.testing.assert_array_equal(loaded[0], pixels)
    np.testing.assert_array_equal(loaded[1], np.repeat(pixels[..., :1], 3, axis=2))
    reference = np.asarray(Image.open(folder / "c.jpg").convert("RGB")).astype(int)
    assert np.abs(loaded[2].astype(int) - reference).max() <= 2


def test_pillow_decodes_everything_where_torchvision_has_no_decoders(tmp_path, rng, monkeypatch):
    expected = make_tree(tmp_path / "pets", rng)
    monkeypatch.setattr(imagefiles, "_torchvision_decoders", lambda: None)
    check_split(load_images(str(tmp_path / "pets"), "test"), expected["test"], ("cat", "dog", "emu"))


# --- MNIST / IDX ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("folder,gz", [("mnist-test", True), ("mnist-test", False), ("MNIST/raw", True), (".", False)])
def test_idx_round_trip(tmp_path, rng, folder, gz):
    images, labels = write_mnist(tmp_path / folder, rng, gz=gz)
    loaded = load_images("mnist", "test", tmp_path)
    assert loaded.images.shape == (7, 28, 28, 1) and loaded.images.dtype == np.uint8
    np.testing.assert_array_equal(loaded.images[..., 0], images)
    np.testing.assert_array_equal(loaded.labels, labels.astype(np.int64))
    assert loaded.class_names == tuple("0123456789") and loaded.dataset == "mnist"


def test_mnist_train_split_where_present(tmp_path, rng):
    write_mnist(tmp_path / "mnist", rng)
    train_images, _ = write_mnist(tmp_path / "mnist", rng, n=3, prefix="train")
    np.testing.assert_array_equal(load_images("mnist", "train", tmp_path).images[..., 0], train_images)


@pytest.mark.parametrize(
    "damage,message",
    [
        (lambda raw: raw[:-5], "truncated IDX file"),
        (lambda raw: b"\x01" + raw[1:], "bad magic number"),
        (lambda raw: raw[:2] + b"\x0d" + raw[3:], "type 0x0d"),
    ],
)
def test_broken_idx_names_the_file(tmp_path, rng, damage, message):
    write_mnist(tmp_path, rng, gz=False)
    path = tmp_path / "t10k-images-idx3-ubyte"
    path.write_bytes(damage(path.read_bytes()))
    with pytest.raises(DataError, match=message) as info:
        load_images("mnist", "test", tmp_path)
    assert str(path) in str(info.value)


def test_truncated_gzip_names_the_file(tmp_path, rng):
    write_mnist(tmp_path, rng)
    path = tmp_path / "t10k-images-idx3-ubyte.gz"
    path.write_bytes(path.read_bytes()[:-20])
    with pytest.raises(DataError, match="truncated") as info:
        load_images("mnist", "test", tmp_path)
    assert str(path) in str(info.value)


def test_download_lets_torchvision_fetch_into_the_data_root(tmp_path, rng, monkeypatch):
    import torchvision.datasets

    calls = []

    class FakeMNIST:  # stands in for the network: writes what torchvision's download would
        def __init__(self, root, train, download):
            calls.append((root, train, download))
            if "offline" in root:
                raise OSError("network is unreachable")
            write_mnist(Path(root) / "MNIST" / "raw", rng)

    monkeypatch.setattr(torchvision.datasets, "MNIST", FakeMNIST)
    with pytest.raises(DataError, match="not found"):
        load_images("mnist", "test", tmp_path)
    assert not calls  # no download unless asked
    assert len(load_images("mnist", "test", tmp_path, download=True).images) == 7
    assert calls == [(str(tmp_path), False, True)]
    with pytest.raises(DataError, match="could not download mnist .*network is unreachable"):
        load_images("mnist", "test", tmp_path / "offline", download=True)


def test_data_download_fetches_only_the_missing_splits_and_says_so(tmp_path, rng, monkeypatch, runner, cli_app):
    """`embedkit data --download`, offline: torchvision's MNIST is a stand-in writing what its download would."""
    import torchvision.datasets

    calls = []

    class FakeMNIST:
        def __init__(self, root, train, download):
            calls.append((root, train, download))
            write_mnist(Path(root) / "MNIST" / "raw", rng, prefix="train" if train else "t10k")

    def no_network(*args, **kwargs):
        raise AssertionError("CIFAR-10 is present: nothing to download")

    monkeypatch.setattr(torchvision.datasets, "MNIST", FakeMNIST)
    monkeypatch.setattr(torchvision.datasets, "CIFAR10", no_network)
    make_tree(tmp_path / "cifar10", rng)
    listed = runner.invoke(cli_app, ["data", "--data-root", str(tmp_path), "--json"])
    assert listed.exit_code == 0 and not calls  # no download unless asked
    result = runner.invoke(cli_app, ["data", "--data-root", str(tmp_path), "--download"])
    assert result.exit_code == 0, result.output
    assert f"downloaded mnist/train, mnist/test into {tmp_path}" in result.stdout
    assert calls == [(str(tmp_path), True, True), (str(tmp_path), False, True)]
    payload = json.loads(runner.invoke(cli_app, ["data", "--data-root", str(tmp_path), "--download", "--json"]).stdout)
    assert payload["downloaded"] == [] and len(calls) == 2  # all there now: nothing fetched again
    mnist_test = next(r for r in payload["datasets"] if (r["dataset"], r["split"]) == ("mnist", "test"))
    assert mnist_test["found"] and mnist_test["n_images"] == 7


# --- errors -----------------------------------------------------------------------------------------------------


def test_unknown_dataset_lists_the_known_ones(tmp_path):
    with pytest.raises(DataError, match="unknown dataset 'cifar100'.*cifar10, mnist"):
        load_images("cifar100", "train", tmp_path)
    with pytest.raises(DataError, match="no split 'val'"):
        load_images("cifar10", "val", tmp_path)


@pytest.mark.parametrize("dataset", ["cifar10", "mnist"])
def test_missing_data_names_every_folder_searched(tmp_path, dataset):
    with pytest.raises(DataError) as info:
        load_images(dataset, "test", tmp_path / "empty")
    message = str(info.value)
    assert "\n" not in message and "--download" in message
    for path in data.searched_paths(dataset, tmp_path / "empty"):
        assert str(path) in message


def test_missing_image_folder(tmp_path):
    with pytest.raises(DataError, match="no such image folder"):
        load_images(str(tmp_path / "nope"), "train")


def test_corrupt_archive_names_the_file(tmp_path):
    garbage = tmp_path / "bad.tar.gz"
    garbage.write_bytes(gzip.compress(b"x" * 2048))
    with pytest.raises(DataError, match="corrupt tar header") as info:
        load_images(str(garbage), "train")
    assert str(garbage) in str(info.value)
    garbage.write_bytes(b"not gzip at all")
    with pytest.raises(DataError, match="corrupt or truncated"):
        load_images(str(garbage), "train")


def test_corrupt_image_names_the_file(tmp_path, rng):
    make_tree(tmp_path / "pets", rng)
    bad = tmp_path / "pets" / "train" / "dog" / "c.png"
    bad.write_bytes(b"\x89PNG broken")
    with pytest.raises(DataError, match="cannot decode image") as info:
        load_images(str(tmp_path / "pets"), "train")
    assert str(bad) in str(info.value)
    bad.write_bytes(b"")
    with pytest.raises(DataError, match="c.png: empty image file"):
        load_images(str(tmp_path / "pets"), "train")


def test_unequal_image_sizes_are_refused(tmp_path, rng):
    make_tree(tmp_path / "pets", rng)
    Image.fromarray(np.zeros((9, 9, 3), np.uint8)).save(tmp_path / "pets" / "train" / "dog" / "c.png")
    with pytest.raises(DataError, match=r"differ in size: .*cat/10.png is 8x6 .*dog/c.png is 9x9"):
        load_images(str(tmp_path / "pets"), "train")


# --- data root, listing -----------------------------------------------------------------------------------------


def test_data_root_resolution(tmp_path, monkeypatch):
    monkeypatch.setenv("EMBEDKIT_DATA", str(tmp_path / "env"))
    assert resolve_data_root(tmp_path / "arg") == tmp_path / "arg"
    assert resolve_data_root() == tmp_path / "env"
    monkeypatch.delenv("EMBEDKIT_DATA")
    from platformdirs import user_data_dir

    assert resolve_data_root() == Path(user_data_dir("embedkit"))


def test_available_datasets_counts_without_decoding(tmp_path, rng, monkeypatch):
    make_tree(
        tmp_path / "cifar10-jpeg",
        rng,
        layout={"train": {"a": ["0.png", "1.png"], "b": ["0.png"]}, "test": {"b": ["0.png"]}},
    )
    make_targz(tmp_path / "cifar10-jpeg", tmp_path / "cifar10-jpeg.tar.gz", keep_folder=False)
    write_mnist(tmp_path / "mnist-test", rng, n=4)
    with monkeypatch.context() as patch:
        patch.setattr(imagefiles, "decode_blobs", _no_decoding)
        rows = {(r["dataset"], r["split"]): r for r in available_datasets(tmp_path)}
    assert rows["cifar10", "train"]["n_images"] == 3 and rows["cifar10", "train"]["n_classes"] == 2
    assert rows["cifar10", "test"]["n_images"] == 1 and not rows["cifar10", "test"]["cached"]
    assert rows["mnist", "test"]["n_images"] == 4 and rows["mnist", "test"]["layout"] == "IDX"
    assert not rows["mnist", "train"]["found"] and rows["mnist", "train"]["n_images"] is None
    load_images("cifar10", "test", tmp_path)
    rows = {(r["dataset"], r["split"]): r for r in available_datasets(tmp_path)}
    assert rows["cifar10", "test"]["cached"] and rows["cifar10", "train"]["cached"]  # one pass cached both


# --- tar reader -------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("fmt", [tarfile.USTAR_FORMAT, tarfile.GNU_FORMAT, tarfile.PAX_FORMAT])
def test_tar_reader_matches_tarfile(fmt):
    names = ["a.png", "d/" * 60 + "long.png", "deep/" * 25 + "x.png", "ünï/cödé.png", "dir/b.jpg"]
    if fmt == tarfile.USTAR_FORMAT:
        names = [n for n in names if len(n) < 200 and n.isascii()]
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w", format=fmt) as tar:
        tar.addfile(tarfile.TarInfo("dir"))  # a non-file member, skipped
        for i, name in enumerate(names):
            info, payload = tarfile.TarInfo(name), bytes([i]) * (i * 300 + 1)
            info.size = len(payload)
            tar.addfile(info, io.BytesIO(payload))
    raw = buffer.getvalue()
    with tarfile.open(fileobj=io.BytesIO(raw)) as tar:
        expected = [(m.name, tar.extractfile(m).read()) for m in tar if m.isfile()]
    members = iter_tar_members(io.BytesIO(raw), keep=lambda member: True)
    assert [(m.name, body) for m, body in members if m.kind == "file"] == expected
    with pytest.raises(DataError, match="truncated"):
        list(iter_tar_members(io.BytesIO(raw[:1500]), "x.tar"))


# --- transforms -------------------------------------------------------------------------------------------------


def test_to_rgb32_shapes_and_mnist_path(rng):
    cifar = rng.integers(0, 256, (3, 32, 32, 3), dtype=np.uint8)
    assert to_rgb32(cifar) is cifar
    digits = rng.integers(0, 256, (4, 28, 28, 1), dtype=np.uint8)
    out = to_rgb32(digits)
    assert out.shape == (4, 32, 32, 3) and out.dtype == np.uint8
    assert (out[..., 0] == out[..., 1]).all() and (out[..., 1] == out[..., 2]).all()
    # Upscaling bilinear with half-pixel centres, as Pillow does: equal up to rounding.
    reference = np.stack([np.asarray(Image.fromarray(d[..., 0]).resize((32, 32), Image.BILINEAR)) for d in digits])
    assert np.abs(out[..., 0].astype(int) - reference).max() <= 1
    assert (to_rgb32(np.full((2, 28, 28, 1), 77, np.uint8)) == 77).all()
    with pytest.raises(DataError, match="expected images"):
        to_rgb32(np.zeros((2, 28, 28, 2), np.uint8))


def test_to_float_tensor_and_normalize_against_hand_computation(rng):
    import torch

    images = rng.integers(0, 256, (2, 4, 5, 3), dtype=np.uint8)
    x = to_float_tensor(images)
    assert x.shape == (2, 3, 4, 5) and x.dtype == torch.float32 and x.is_contiguous()
    assert x[1, 2, 3, 4].item() == pytest.approx(images[1, 3, 4, 2] / 255)
    y = normalize(x)
    for n, c, h, w in [(0, 0, 0, 0), (1, 2, 3, 4), (0, 1, 2, 3)]:
        hand = (images[n, h, w, c] / 255 - CIFAR10_MEAN[c]) / CIFAR10_STD[c]
        assert y[n, c, h, w].item() == pytest.approx(hand, rel=1e-5)
    with pytest.raises(DataError):
        normalize(torch.zeros(1, 1, 2, 2))


# --- CLI --------------------------------------------------------------------------------------------------------


def test_cli_data_table_and_json(cli_app, runner, tmp_path, rng):
    write_mnist(tmp_path / "mnist-test", rng, n=5)
    table = runner.invoke(cli_app, ["data", "--data-root", str(tmp_path)])
    assert table.exit_code == 0, table.output
    assert "mnist" in table.output and "not found" in table.output and "5" in table.output
    result = runner.invoke(cli_app, ["data", "--data-root", str(tmp_path), "--json"])
    assert result.exit_code == 0, result.output
    payload = json.loads(result.stdout)
    rows = {(r["dataset"], r["split"]): r for r in payload["datasets"]}
    assert payload["data_root"] == str(tmp_path)
    assert rows["mnist", "test"]["n_images"] == 5 and not rows["cifar10", "train"]["found"]


def test_cli_data_prepare_fills_the_cache(cli_app, runner, tmp_path, rng):
    make_tree(tmp_path / "cifar10-jpeg", rng, layout={"train": {"a": ["0.png"]}, "test": {"b": ["0.png"]}})
    make_targz(tmp_path / "cifar10-jpeg", tmp_path / "cifar10-jpeg.tar.gz", keep_folder=False)
    before = json.loads(runner.invoke(cli_app, ["data", "--data-root", str(tmp_path), "--json"]).stdout)
    result = runner.invoke(cli_app, ["data", "--data-root", str(tmp_path), "--prepare", "--json"])
    assert result.exit_code == 0, result.output
    cached = {(r["dataset"], r["split"]): r["cached"] for r in json.loads(result.stdout)["datasets"]}
    assert not any(r["cached"] for r in before["datasets"])
    assert cached["cifar10", "train"] and cached["cifar10", "test"]


def test_cli_data_error_is_one_line(cli_app, runner, tmp_path):
    not_a_folder = tmp_path / "file.txt"
    not_a_folder.write_text("x")
    result = runner.invoke(cli_app, ["data", "--data-root", str(not_a_folder)])
    assert result.exit_code == 1
    assert "Traceback" not in result.output and len(result.output.strip().splitlines()) == 1
    assert "must be a folder" in result.output


# --- real data --------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def real_cifar(real_data_root):
    return {split: load_images("cifar10", split, real_data_root) for split in ("train", "test")}


@pytest.mark.realdata
@pytest.mark.parametrize("split,per_class", [("train", 5000), ("test", 1000)])
def test_real_cifar10(real_cifar, split, per_class):
    loaded = real_cifar[split]
    assert loaded.images.shape == (10 * per_class, 32, 32, 3) and loaded.images.dtype == np.uint8
    assert loaded.class_names == CIFAR10_CLASSES
    assert np.bincount(loaded.labels, minlength=10).tolist() == [per_class] * 10


@pytest.mark.realdata
def test_real_cifar10_statistics_match_the_normalisation(real_cifar):
    sample = real_cifar["train"].images[::25].reshape(-1, 3) / 255.0
    np.testing.assert_allclose(sample.mean(axis=0), CIFAR10_MEAN, atol=0.01)
    np.testing.assert_allclose(sample.std(axis=0), CIFAR10_STD, atol=0.01)


@pytest.mark.realdata
def test_real_mnist_test(real_data_root):
    loaded = load_images("mnist", "test", real_data_root)
    assert loaded.images.shape == (10_000, 28, 28, 1)
    counts = [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009]
    assert np.bincount(loaded.labels, minlength=10).tolist() == counts
    assert to_rgb32(loaded.images[:8]).shape == (8, 32, 32, 3)
