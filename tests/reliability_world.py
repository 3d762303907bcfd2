"""The files the bad-input tests run against: a tiny good store, damaged copies of it, .npy files, an image folder,
a checkpoint trained for one step and damaged or foreign variants of it, run logs and data roots.

`build_world(base)` makes them once per session; `World.checksums()` and `World.restore()` let each case prove, and
if need be undo, what a command changed.
"""

from __future__ import annotations

import hashlib
import shutil
from dataclasses import dataclass, field
from pathlib import Path

import h5py
import numpy as np
import reliability_trust_data
import reliability_trust_failures
import reliability_trust_search
import reliability_trust_writes

GOOD_GROUPS = {  # name: (rows, dim, labelled)
    "toy/train": (40, 4, True),
    "toy/test": (20, 4, True),
    "toy/ood": (10, 4, True),
    "toy/q5": (6, 5, True),
    "toy/empty": (0, 4, True),
    "toy/nolabels": (12, 4, False),
}


@dataclass
class World:
    """The files every case runs against; `paths` fills the `{name}` placeholders of a case's arguments."""

    root: Path
    pristine: Path
    paths: dict[str, str] = field(default_factory=dict)
    _digests: dict[str, tuple] = field(default_factory=dict)

    def checksums(self) -> dict[str, str]:
        """sha256 of every file under the root ('dir' for folders); a digest is recomputed whenever the file's
        size, mtime or inode changed, so the big checkpoints are not rehashed for every case."""
        sums: dict[str, str] = {}
        for path in sorted(self.root.rglob("*")):
            rel = str(path.relative_to(self.root))
            if path.name.endswith(".lock"):  # a writer's flock file, never content (see reliability_summary)
                continue
            if path.is_dir():
                sums[rel] = "dir"
                continue
            st = path.stat()
            key = (st.st_size, st.st_mtime_ns, st.st_ino)
            cached = self._digests.get(rel)
            if cached is None or cached[0] != key:
                cached = (key, hashlib.sha256(path.read_bytes()).hexdigest())
                self._digests[rel] = cached
            sums[rel] = cached[1]
        return sums

    def restore(self, changed: list[str]) -> None:
        """Put changed paths back as they were, so one misbehaving command cannot spoil the next cases."""
        for rel in sorted(changed, key=len, reverse=True):
            path, original = self.root / rel, self.pristine / rel
            if path.is_dir() and not path.is_symlink():
                if not original.exists():
                    shutil.rmtree(path)
            elif path.exists():
                path.unlink()
        for rel in sorted(changed, key=len):
            path, original = self.root / rel, self.pristine / rel
            if original.is_dir():
                path.mkdir(parents=True, exist_ok=True)
            elif original.is_file():
                shutil.copy2(original, path)


# ---------------------------------------------------------------- building the world


def _write_store(path: Path, rng: np.random.Generator, attrs: dict | None = None) -> None:
    from embedkit.store.store import open_store

    store = open_store(path, create=True)
    for name, (n, dim, labelled) in GOOD_GROUPS.items():
        emb = rng.normal(size=(n, dim)).astype(np.float32) + (5.0 if name == "toy/ood" else 0.0)
        labels = np.arange(n) % 4 if labelled else None
        store.write_group(name, emb, labels, attrs={"class_names": ["a", "b", "c", "d"], **(attrs or {})})


def _overwrite(path: Path, offset: int, n: int, seed: int) -> None:
    """Replace n bytes at offset with seeded random bytes."""
    noise = np.random.default_rng(seed).integers(0, 256, n, dtype=np.uint8).tobytes()
    with open(path, "r+b") as handle:
        handle.seek(offset)
        handle.write(noise)


def _bad_stores(root: Path, good: Path) -> dict[str, str]:
    """Damaged or wrong stores, each built from the good one (or from nothing)."""
    with h5py.File(good, "r") as h5:
        data_at = h5["toy/train/embeddings"].id.get_chunk_info(0).byte_offset
        header_at = h5py.h5o.get_info(h5["toy/train/embeddings"].id).addr
    stores = {"missing": root / "missing.h5"}
    stores["empty"] = root / "empty.h5"
    stores["empty"].write_bytes(b"")
    stores["truncated"] = root / "truncated.h5"
    stores["truncated"].write_bytes(good.read_bytes()[: good.stat().st_size // 2])
    for name, offset in (
        ("corrupt-middle", good.stat().st_size // 2),
        ("corrupt-data", data_at + 64),
        ("corrupt-header", header_at),
    ):
        stores[name] = root / f"{name}.h5"
        shutil.copy(good, stores[name])
        _overwrite(stores[name], offset, 64, seed=len(name))
    stores["not-hdf5"] = root / "notes.h5"
    stores["not-hdf5"].write_text("group,embedding\ntoy/train,0.1 0.2\n")
    stores["foreign-hdf5"] = root / "foreign.h5"
    with h5py.File(stores["foreign-hdf5"], "w") as h5:
        h5["toy/train/embeddings"] = np.zeros((3, 4), np.float32)
    stores["nan-values"] = root / "nan-values.h5"
    shutil.copy(good, stores["nan-values"])
    with h5py.File(stores["nan-values"], "r+") as h5:  # a NaN written behind the store's back
        h5["toy/train/embeddings"][7, 2] = np.nan
    stores["folder"] = root / "folder.h5"
    stores["folder"].mkdir()
    return {f"store:{k}": str(v) for k, v in stores.items()}


def _npy_files(root: Path, rng: np.random.Generator) -> dict[str, str]:
    arrays = {
        "x": rng.normal(size=(30, 4)).astype(np.float32),
        "nan": np.where(np.arange(120).reshape(30, 4) == 41, np.nan, 1.0).astype(np.float32),
        "inf": np.where(np.arange(120).reshape(30, 4) == 99, -np.inf, 1.0).astype(np.float32),
        "huge": np.full((30, 4), 1e39),  # float64 beyond float32: inf once stored
        "labels": np.arange(30) % 3,
        "labels-short": np.arange(29) % 3,
        "labels-float": np.linspace(0, 2, 30),
        "labels-2d": np.zeros((30, 2), np.int64),
        "ids-dup": np.r_[np.arange(29), 3],
        "ids-short": np.arange(31),
        "x-1d": np.zeros(30, np.float32),
        "x-3d": np.zeros((30, 4, 2), np.float32),
        "x-0dim": np.zeros((30, 0), np.float32),
        "x-text": np.array(["a", "b"]),
    }
    paths = {}
    for name, array in arrays.items():
        paths[f"npy:{name}"] = str(root / f"{name}.npy")
        np.save(root / f"{name}.npy", array)
    (root / "notnpy.npy").write_text("0.1,0.2,0.3\n")
    np.savez(root / "archive.npz", x=arrays["x"])
    (root / "objects.npy").write_bytes((root / "x.npy").read_bytes()[:60])  # truncated .npy
    paths.update(
        {
            "npy:not-npy": str(root / "notnpy.npy"),
            "npy:npz": str(root / "archive.npz"),
            "npy:truncated": str(root / "objects.npy"),
            "npy:missing": str(root / "nothing.npy"),
        }
    )
    return paths


def image_folder(root: Path, rng: np.random.Generator, n_train: int = 4, n_test: int = 3, size: int = 8) -> Path:
    """root/{train,test}/{ant,bee}/i.png: random RGB images, `n_train` / `n_test` per class, `size` pixels square."""
    from PIL import Image

    for split, n in (("train", n_train), ("test", n_test)):
        for cls in ("ant", "bee"):
            (root / split / cls).mkdir(parents=True)
            for i in range(n):
                pixels = rng.integers(0, 256, (size, size, 3), dtype=np.uint8)
                Image.fromarray(pixels).save(root / split / cls / f"{i}.png")
    return root


def small_checkpoint(run: Path) -> Path:
    """A real checkpoint of the small encoder at 32x32 (one training step on random images): `run`/last.pt."""
    import torch

    from embedkit.training.loop import make_config, train

    torch.set_num_threads(1)
    images = np.random.default_rng(0).integers(0, 256, (8, 32, 32, 3), dtype=np.uint8)
    train(make_config("cpu", epochs=1, batch_size=8, test_images=0), run, images, device="cpu")
    return run / "last.pt"


def write_idx_mnist(root: Path, n: int, rng: np.random.Generator) -> None:
    """A synthetic MNIST test split in the IDX format, as `--dataset mnist` finds it under the data root."""
    folder = root / "mnist-test"
    folder.mkdir(parents=True)
    images = rng.integers(0, 256, (n, 28, 28), dtype=np.uint8)
    header = bytes([0, 0, 8, 3]) + np.array([n, 28, 28], ">u4").tobytes()
    (folder / "t10k-images-idx3-ubyte").write_bytes(header + images.tobytes())
    (folder / "t10k-labels-idx1-ubyte").write_bytes(
        bytes([0, 0, 8, 1]) + np.array([n], ">u4").tobytes() + (np.arange(n) % 10).astype(np.uint8).tobytes()
    )


def _checkpoints(root: Path, rng: np.random.Generator, paths: dict[str, str]) -> dict[str, str]:
    """A real checkpoint (one training step of the small encoder) and damaged or foreign variants of it."""
    import torch

    from embedkit.training.loop import make_config, train
    from embedkit.training.views import ViewConfig

    torch.set_num_threads(1)
    run = root / "runs" / "good"
    images = rng.integers(0, 256, (8, 8, 8, 3), dtype=np.uint8)
    config = make_config("cpu", dataset=paths["imgs"], epochs=1, batch_size=8, test_images=0, views=ViewConfig(size=8))
    train(config, run, images, device="cpu")
    good = run / "last.pt"
    payload = torch.load(good, map_location="cpu", weights_only=True)
    folder = root / "ckpts"
    folder.mkdir()
    bad = {
        name: folder / f"{name}.pt"
        for name in ("empty", "truncated", "corrupt", "text", "foreign", "other-kind", "mismatched-weights")
    }
    bad["empty"].write_bytes(b"")
    bad["truncated"].write_bytes(good.read_bytes()[: good.stat().st_size // 2])
    shutil.copy(good, bad["corrupt"])
    _overwrite(bad["corrupt"], good.stat().st_size // 2, 256, seed=3)  # inside the weights' bytes
    bad["text"].write_text("epoch=3 loss=0.2\n")
    torch.save({"state_dict": payload["encoder_state"]}, bad["foreign"])
    torch.save({**payload, "encoder": {"kind": "vit", "dim": 128}}, bad["other-kind"])
    torch.save({**payload, "encoder": {"kind": "resnet18", "dim": 128}}, bad["mismatched-weights"])
    bad["missing"] = folder / "nothing.pt"
    bad["folder"] = folder / "folder.pt"
    bad["folder"].mkdir()
    paths = {"ckpt": str(good), "run": str(run)}
    for name, path in bad.items():
        paths[f"ckpt:{name}"] = str(path)
        if name not in ("missing",):  # run folders whose last.pt is bad, for `train --resume`
            (root / "runs" / name).mkdir()
            if path.is_file():
                shutil.copy(path, root / "runs" / name / "last.pt")
            else:
                (root / "runs" / name / "last.pt").mkdir()
        paths[f"run:{name}"] = str(root / "runs" / name)
    return paths


def _run_logs(root: Path) -> dict[str, str]:
    logs = {
        "not-json": "not json at all\n",
        "no-terms": '{"split": "train", "step": 1}\n',
        "not-a-record": "[1, 2, 3]\n",
    }
    paths = {}
    for name, text in logs.items():
        (root / "logs" / name).mkdir(parents=True)
        (root / "logs" / name / "log.jsonl").write_text(text)
        paths[f"log:{name}"] = str(root / "logs" / name)
    (root / "logs" / "none").mkdir()
    paths["log:none"] = str(root / "logs" / "none")
    return paths


def _data_roots(root: Path) -> dict[str, str]:
    (root / "data-badtar").mkdir()
    (root / "data-badtar" / "cifar10-jpeg.tar.gz").write_bytes(b"\x1f\x8b\x08\x00" + bytes(range(256)) * 4)
    (root / "data-badidx" / "mnist-test").mkdir(parents=True)
    for stem in ("t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"):
        (root / "data-badidx" / "mnist-test" / stem).write_bytes(b"\x1f\x8b\x08\x00garbage")
    (root / "data-empty").mkdir()
    return {
        "data:badtar": str(root / "data-badtar"),
        "data:badtar-file": str(root / "data-badtar" / "cifar10-jpeg.tar.gz"),
        "data:badidx": str(root / "data-badidx"),
        "data:empty": str(root / "data-empty"),
    }


def _more_stores(root: Path, store: Path, rng: np.random.Generator, paths: dict[str, str]) -> dict[str, str]:
    """Good stores other commands need: groups naming a (bad) checkpoint, cifar10 groups, a pairs file."""
    from embedkit.search.index import make_pairs
    from embedkit.store.store import open_store

    more = {}
    for name in ("truncated", "missing"):  # `anomaly` encodes a missing OOD group with the groups' checkpoint
        path = root / f"ckstore-{name}.h5"
        _write_store(path, rng, attrs={"checkpoint": paths[f"ckpt:{name}"]})
        more[f"ckstore:{name}"] = str(path)
    cifar = open_store(root / "cifar-store.h5", create=True)  # the groups `compare` and `train --latent` read
    for split, n in (("train", 40), ("test", 20)):
        cifar.write_group(f"cifar10/{split}", rng.normal(size=(n, 4)), np.arange(n) % 4)
    more["cifar-store"] = str(cifar.path)
    more["pairs-toy"] = str(make_pairs(store, "toy/train", 2, root / "pairs-toy.h5"))  # 40 rows, not imgs' 8
    imgs_store = open_store(root / "imgs-store.h5", create=True)  # holds the groups encode would write
    for split in ("train", "test"):
        imgs_store.write_group(f"imgs/{split}", rng.normal(size=(4, 3)))
    more["imgs-store"] = str(imgs_store.path)
    return more


def build_world(base: Path) -> World:
    """Every file the cases name, under `base/world`, with a pristine copy under `base/pristine`."""
    root = base / "world"
    root.mkdir()
    rng = np.random.default_rng(0)
    store = root / "store.h5"
    _write_store(store, rng)
    paths = {
        "root": str(root),
        "store": str(store),
        "afile": str(root / "afile.txt"),
        "cache": str(base / "cache"),
        "imgs": str(image_folder(root / "imgs", rng)),
    }
    (root / "afile.txt").write_text("a regular file, used as a parent folder that cannot exist\n")
    (root / "out").mkdir()
    paths.update(_bad_stores(root, store))
    paths.update(_npy_files(root, rng))
    paths.update(_checkpoints(root, rng, paths))
    paths.update(_run_logs(root))
    paths.update(_data_roots(root))
    paths.update(_more_stores(root, store, rng, paths))
    for area in (
        reliability_trust_search,
        reliability_trust_data,
        reliability_trust_writes,
        reliability_trust_failures,
    ):
        paths.update(area.world_files(root, rng, paths))
    pristine = base / "pristine"
    shutil.copytree(root, pristine, symlinks=True)
    return World(root, pristine, {k.replace(":", "_").replace("-", "_"): v for k, v in paths.items()})
