"""Issue 14, image sources: the right rows from folders and archives alike (links included), 16-bit pixels scaled
as Pillow's reference says, no code run from a data root, the recorded image source found again from any folder,
bounded memory and no hang on hostile files, and no cache temp file left behind by a killed writer."""

from __future__ import annotations

import gzip
import os
import subprocess
import sys
import tarfile
import textwrap
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from reliability_trust_data import (
    crafted_tars,
    evil_pickle,
    link,
    png_bytes,
    png_declaring,
    tar_bytes,
    write_huge_member_tar,
)

from embedkit.data import images as imagefiles
from embedkit.data.sources import available_datasets, load_images
from embedkit.errors import DataError

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(autouse=True)
def _isolated_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("EMBEDKIT_CACHE", str(tmp_path / "cache"))


def _save(path: Path, pixels: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(pixels).save(path)


def linked_folder(root: Path, rng) -> Path:
    """train/{ant,bee}/ images plus: a symbolic link to a file of another class, a hard link, a linked class folder
    (cow -> bee) and a test split whose class folder links to the train one."""
    for cls in ("ant", "bee"):
        for i in range(2):
            _save(root / "train" / cls / f"{i}.png", rng.integers(0, 256, (6, 5, 3), dtype=np.uint8))
    os.symlink("../bee/0.png", root / "train" / "ant" / "2.png")
    os.link(root / "train" / "bee" / "1.png", root / "train" / "ant" / "3.png")
    os.symlink("bee", root / "train" / "cow")
    (root / "test").mkdir()
    os.symlink("../train/ant", root / "test" / "ant")
    return root


def reference_rows(root: Path, split: str) -> tuple[np.ndarray, list[str], list[str]]:
    """Pixels, class names of rows and row names, by walking the folder as a user's shell sees it (links followed)."""
    rows = []
    for cls in sorted(os.listdir(root / split)):
        for name in sorted(os.listdir(root / split / cls)):
            rows.append((cls, name, np.array(Image.open(root / split / cls / name).convert("RGB"))))
    return np.stack([r[2] for r in rows]), [r[0] for r in rows], [f"{r[0]}/{r[1]}" for r in rows]


@pytest.mark.parametrize("fmt", [tarfile.GNU_FORMAT, tarfile.PAX_FORMAT])
def test_folder_and_its_archive_give_the_same_rows_links_included(tmp_path, rng, fmt):
    root = linked_folder(tmp_path / "pets", rng)
    archive = tmp_path / "pets.tar.gz"
    with tarfile.open(archive, "w:gz", format=fmt) as tar:  # keeps links as links, as `tar czf` does
        tar.add(root, arcname="pets")
    with tarfile.open(archive) as tar:
        kinds = {m.name.split("pets/", 1)[-1]: m.type for m in tar}
    assert kinds["train/ant/2.png"] == tarfile.SYMTYPE and kinds["train/bee/1.png"] == tarfile.LNKTYPE  # to ant/3
    assert kinds["train/cow"] == kinds["test/ant"] == tarfile.SYMTYPE
    for split in ("train", "test"):
        pixels, classes, _ = reference_rows(root, split)
        for source in (root, archive):
            loaded = load_images(str(source), split)
            np.testing.assert_array_equal(loaded.images, pixels)
            assert [loaded.class_names[i] for i in loaded.labels] == classes
    assert len(load_images(str(archive), "train").images) == 4 + 2 + 2  # ant (2 + 2 links), bee, cow (= bee)


def test_an_archive_link_that_loops_is_named(tmp_path, rng):

    pixels = png_bytes(rng.integers(0, 256, (4, 4, 3), dtype=np.uint8))
    raw = tar_bytes([("train/a/0.png", pixels), link("train/a/1.png", "2.png"), link("train/a/2.png", "1.png")])
    (tmp_path / "loop.tar.gz").write_bytes(gzip.compress(raw))
    with pytest.raises(DataError, match=r"loop.tar.gz:train/a/\d.png: too many levels of links"):
        load_images(str(tmp_path / "loop.tar.gz"), "train")


@pytest.mark.parametrize("torchvision_decoders", [True, False])
def test_a_16_bit_png_among_8_bit_ones_is_scaled_to_8_bits(tmp_path, rng, monkeypatch, torchvision_decoders):
    if not torchvision_decoders:
        monkeypatch.setattr(imagefiles, "_torchvision_decoders", lambda: None)
    eight = rng.integers(0, 256, (4, 6, 3), dtype=np.uint8)
    grey = rng.integers(0, 256, (4, 6)).astype(np.uint16)
    _save(tmp_path / "pets" / "a" / "0.png", eight)
    _save(tmp_path / "pets" / "b" / "0.png", grey * 257)  # 16-bit grey: v * 257 is v at 8 bits
    loaded = load_images(str(tmp_path / "pets"), "all")
    np.testing.assert_array_equal(loaded.images[0], eight)
    np.testing.assert_array_equal(loaded.images[1], np.repeat(grey.astype(np.uint8)[..., None], 3, axis=2))


def _evil_cifar_root(root: Path, marker: Path) -> Path:
    folder = root / "cifar-10-batches-py"
    folder.mkdir(parents=True)
    for batch in ("data_batch_1", "data_batch_2", "data_batch_3", "data_batch_4", "data_batch_5", "test_batch"):
        (folder / batch).write_bytes(b"")
    (folder / "batches.meta").write_bytes(evil_pickle(marker))
    return root


def test_data_never_unpickles_a_file_that_fails_the_md5_check(tmp_path, cli_app, runner):
    marker = tmp_path / "ran.txt"
    root = _evil_cifar_root(tmp_path / "data", marker)
    rows = {(r["dataset"], r["split"]): r for r in available_datasets(root)}
    assert "md5 mismatch" in rows["cifar10", "test"]["error"] and not marker.exists()
    result = runner.invoke(cli_app, ["data", "--data-root", str(root), "--json"])
    assert result.exit_code == 0 and not marker.exists()
    with pytest.raises(DataError, match="batches.meta: missing, or not torchvision's CIFAR-10 file"):
        load_images("cifar10", "test", root)
    assert not marker.exists()


def test_even_a_pickle_that_passes_the_md5_check_cannot_run_code(tmp_path, monkeypatch):
    import torchvision.datasets.cifar

    monkeypatch.setattr(torchvision.datasets.cifar, "check_integrity", lambda *args, **kwargs: True)
    marker = tmp_path / "ran.txt"
    root = _evil_cifar_root(tmp_path / "data", marker)
    rows = {(r["dataset"], r["split"]): r for r in available_datasets(root)}
    assert "refused to load" in rows["cifar10", "test"]["error"] and not marker.exists()
    with pytest.raises(DataError, match="batches.meta: not a CIFAR-10 batch"):
        load_images("cifar10", "test", root)
    assert not marker.exists()


def _small_checkpoint(path: Path) -> Path:
    from embedkit.training.models import build_encoder, checkpoint_payload, save_checkpoint

    torch.manual_seed(0)
    prep = {"size": 32, "mean": [0.5] * 3, "std": [0.25] * 3}
    save_checkpoint(path, checkpoint_payload(build_encoder("small", dim=4), {"encoder": "small"}, prep, step=1))
    return path


def test_retrieve_finds_the_encoded_images_from_any_folder_and_notices_changes(tmp_path, rng, monkeypatch):
    from embedkit.eval.retrieval import load_group_images
    from embedkit.store.store import open_store
    from embedkit.training.encode import encode_to_store

    torch.set_num_threads(1)
    here, elsewhere = tmp_path / "here", tmp_path / "elsewhere"
    for folder in (here, elsewhere):  # two different folders called imgs/
        for i in range(3):
            _save(folder / "imgs" / "test" / "a" / f"{i}.png", rng.integers(0, 256, (4, 4, 3), dtype=np.uint8))
    monkeypatch.chdir(here)
    encode_to_store(_small_checkpoint(tmp_path / "ckpt.pt"), "imgs", ["test"], tmp_path / "s.h5", device="cpu")
    attrs = open_store(tmp_path / "s.h5").read("imgs/test").attrs
    assert attrs["source"] == str(here / "imgs")
    expected = load_images(str(here / "imgs"), "test").images
    monkeypatch.chdir(elsewhere)
    np.testing.assert_array_equal(load_group_images(attrs, np.array([2, 0])), expected[[2, 0]])
    _save(here / "imgs" / "test" / "a" / "1.png", np.zeros((4, 4, 3), np.uint8))
    with pytest.raises(DataError, match="changed since they were encoded"):
        load_group_images(attrs, np.array([0]))
    with pytest.raises(DataError, match="records no path for its images"):
        load_group_images({"dataset": "imgs", "split": "test"}, np.array([0]))


def test_a_killed_cache_writer_leaves_no_temp_file_for_long(tmp_path, rng):
    _save(tmp_path / "pets" / "a" / "0.png", rng.integers(0, 256, (4, 4, 3), dtype=np.uint8))
    cache = tmp_path / "cache"
    cache.mkdir()
    dead = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True, check=True
    )
    dead_pid = int(dead.stdout)
    leftovers = [
        cache / f".pets-all-00000000-000000000000.npy.tmp-{dead_pid}-0badc0de",  # an older state's entry
        cache / f".pets-all-00000000-111111111111.labels.npz.tmp-{dead_pid}-0badc0de",
    ]
    alive = cache / f".pets-all-00000000-222222222222.npy.tmp-{os.getpid()}-0badc0de"  # a writer still at work
    for path in (*leftovers, alive):
        path.write_bytes(b"half-written")
    first = load_images(str(tmp_path / "pets"), "all")  # decodes and caches: the cleanup runs with the write
    stem = next(cache.glob("pets-all-*.npy")).name.removesuffix(".npy")
    for path in leftovers:
        path.rename(path.with_name(path.name.replace("00000000", stem.split("-")[2])))
    leftovers = [path.with_name(path.name.replace("00000000", stem.split("-")[2])) for path in leftovers]
    alive = alive.rename(alive.with_name(alive.name.replace("00000000", stem.split("-")[2])))
    (tmp_path / "pets" / "a" / "0.png").touch()  # a changed source: the next load writes a new entry
    os.utime(tmp_path / "pets" / "a" / "0.png", ns=(1, 1))
    np.testing.assert_array_equal(load_images(str(tmp_path / "pets"), "all").images, first.images)
    assert [p for p in leftovers if p.exists()] == [] and alive.exists()


# ---------------------------------------------------------------- hostile files, in a subprocess with a deadline


def _run(code: str, timeout_s: float = 120) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(REPO), "EMBEDKIT_CACHE": os.environ["EMBEDKIT_CACHE"]}
    return subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        capture_output=True,
        text=True,
        env=env,
        timeout=timeout_s,
        check=False,
    )  # a hang fails the test instead of the suite


@pytest.mark.slow
def test_crafted_tar_headers_end_in_one_line_on_data_and_encode_paths(tmp_path, rng):
    pixels = png_bytes(rng.integers(0, 256, (4, 4, 3), dtype=np.uint8))
    for name, raw in crafted_tars(pixels).items():
        (tmp_path / name).mkdir()
        (tmp_path / name / "cifar10.tar.gz").write_bytes(gzip.compress(raw))
    result = _run(
        f"""
        from pathlib import Path
        from embedkit.data.sources import available_datasets, load_images
        from embedkit.errors import DataError
        for name in {sorted(crafted_tars(pixels))!r}:
            root = Path({str(tmp_path)!r}) / name
            rows = available_datasets(root)
            print(name, "data:", rows[0].get("error"))
            try:
                load_images("cifar10", "train", root)
            except DataError as exc:
                print(name, "load:", exc)
        """,
        timeout_s=60,
    )
    assert result.returncode == 0, result.stderr
    for name in crafted_tars(pixels):
        for step in ("data", "load"):
            line = next(line for line in result.stdout.splitlines() if line.startswith(f"{name} {step}:"))
            assert "cifar10.tar.gz: corrupt" in line, line


@pytest.mark.slow
def test_bombs_and_endless_files_fail_fast_in_bounded_memory(tmp_path, rng):
    (tmp_path / "zeros.tar.gz").write_bytes(gzip.compress(bytes(400 << 20), 9))  # 400 MB of zeros in ~400 KB
    write_huge_member_tar(tmp_path / "huge.tar.gz", 800 << 20)  # one 800 MB "image"
    bomb = tmp_path / "bomb"
    _save(bomb / "a" / "0.png", rng.integers(0, 256, (4, 4, 3), dtype=np.uint8))
    (bomb / "b").mkdir()
    (bomb / "b" / "0.png").write_bytes(png_declaring(16000, 16000))  # 768 MB of pixels in 100 bytes
    (bomb / "b" / "1.png").write_bytes(png_declaring(16000, 16000))
    for name in ("fifo", "zero"):
        (tmp_path / name / "a").mkdir(parents=True)
    os.mkfifo(tmp_path / "fifo" / "a" / "0.png")
    os.symlink("/dev/zero", tmp_path / "zero" / "a" / "0.png")
    (tmp_path / "mnist-test").mkdir()  # an IDX header declaring one 1x1 image, then 400 MB of zeros
    idx = b"\0\0\x08\x03" + (1).to_bytes(4, "big") * 3 + bytes(400 << 20)
    (tmp_path / "mnist-test" / "t10k-images-idx3-ubyte.gz").write_bytes(gzip.compress(idx, 9))
    (tmp_path / "mnist-test" / "t10k-labels-idx1-ubyte.gz").write_bytes(gzip.compress(b"\0\0\x08\x01" + bytes(5)))
    result = _run(
        f"""
        import resource
        from embedkit.data.sources import load_images
        from embedkit.errors import DataError
        import torch, torchvision.io, PIL.Image  # imported before the baseline is taken
        base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        for name in ("zeros.tar.gz", "huge.tar.gz", "bomb", "fifo", "zero"):
            try:
                load_images({str(tmp_path)!r} + "/" + name, "all")
            except DataError as exc:
                print("refused:", exc)
        try:
            load_images("mnist", "test", {str(tmp_path)!r})
        except DataError as exc:
            print("refused:", exc)
        print("peak_mb", (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - base) // 1024)
        """,
        timeout_s=90,
    )
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert [line.split(":", 1)[0] for line in lines[:-1]] == ["refused"] * 6, result.stdout
    assert "zeros.tar.gz" in lines[0] and "more than any image" in lines[1] and "16000x16000" in lines[2]
    assert "regular file" in lines[3] and "regular file" in lines[4]
    assert "t10k-images-idx3-ubyte.gz: truncated IDX file: 1+ data bytes, header says 1" in lines[5]
    assert int(lines[-1].split()[1]) < 64, result.stdout  # before: 400-800 MB for each zeros file, 1.4 GB for the PNG


def test_an_archive_replaced_between_the_two_passes_is_named(tmp_path, rng, monkeypatch):
    from embedkit.data import archives

    pixels = png_bytes(rng.integers(0, 256, (4, 4, 3), dtype=np.uint8))
    path = tmp_path / "pets.tar.gz"
    path.write_bytes(gzip.compress(tar_bytes([("train/a/0.png", pixels), ("train/a/1.png", pixels)])))
    listing = archives.list_archive

    def list_then_replace(archive):
        result = listing(archive)
        archive.write_bytes(gzip.compress(tar_bytes([("train/a/0.png", pixels)])))
        return result

    monkeypatch.setattr(archives, "list_archive", list_then_replace)
    with pytest.raises(DataError, match=r"pets.tar.gz: changed while it was read \(train/a/1.png vanished\)"):
        load_images(str(path), "train")
