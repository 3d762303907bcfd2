"""Issue 14's bad inputs, names that become paths, outputs over inputs, links and modes, disk full.

`CASES` join the reliability suite's (same contract: one error line naming the culprit, exit 1, no file changed);
`world_files` adds the files they need to the shared test world and returns their `{name}` placeholders.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import h5py
import numpy as np
from reliability_case import C, Case

TOY_TRAIN = ("-g", "toy/train", "-k", "2")

CASES: list[Case] = [
    # ---- item 8: a store attribute must never choose a path
    C(
        "neighbors-hnsw-content-id-escapes",
        "neighbors",
        "{w_evil_id}",
        *TOY_TRAIN,
        "--index",
        "hnsw",
        names="content_id",
    ),
    C("neighbors-ivf-content-id-escapes", "neighbors", "{w_evil_id}", *TOY_TRAIN, "--index", "ivf", names="content_id"),
    C("info-content-id-escapes", "info", "{w_evil_id}", names="content_id"),
    C(
        "add-beside-content-id-escapes",
        "add",
        "{w_evil_id}",
        "-g",
        "m/x",
        "--embeddings",
        "{npy_x}",
        names="content_id",
    ),
    C("add-group-name-with-newline", "add", "{store}", "-g", "m/x\ny", "--embeddings", "{npy_x}", names="'m/x\\ny'"),
    C(
        "add-group-name-with-escape",
        "add",
        "{store}",
        "-g",
        "m/\x1b[2Jx",
        "--embeddings",
        "{npy_x}",
        names="'m/\\x1b[2Jx'",
    ),
    # ---- item 9: an output is never an input, nor over a file of another kind
    C("neighbors-out-is-the-store", "neighbors", "{store}", *TOY_TRAIN, "--out", "{store}", names="store.h5"),
    C(
        "neighbors-out-links-to-the-store",
        "neighbors",
        "{store}",
        *TOY_TRAIN,
        "--out",
        "{w_store_link}",
        names="store-link.h5",
    ),
    C(
        "neighbors-out-hard-link-to-the-store",
        "neighbors",
        "{store}",
        *TOY_TRAIN,
        "--out",
        "{w_store_hardlink}",
        names="store-hardlink.h5",
    ),
    C(
        "neighbors-hnsw-out-is-the-store",
        "neighbors",
        "{store}",
        *TOY_TRAIN,
        "--index",
        "hnsw",
        "--out",
        "{store}",
        names="store.h5",
    ),
    C(
        "neighbors-out-is-another-store",
        "neighbors",
        "{store}",
        *TOY_TRAIN,
        "--out",
        "{imgs_store}",
        names="imgs-store.h5",
    ),
    C("neighbors-out-json-holds-hdf5", "neighbors", "{store}", *TOY_TRAIN, "--out", "{w_hdf5_json}", names="hdf5.json"),
    C("neighbors-out-npz-holds-png", "neighbors", "{store}", *TOY_TRAIN, "--out", "{w_png_npz}", names="png.npz"),
    C("neighbors-out-is-a-fifo", "neighbors", "{store}", *TOY_TRAIN, "--out", "{w_fifo_json}", names="fifo.json"),
    C("pairs-out-links-to-the-store", "pairs", "{store}", *TOY_TRAIN, "--out", "{w_store_link}", names="store-link.h5"),
    C(
        "pairs-out-hard-link-to-the-store",
        "pairs",
        "{store}",
        *TOY_TRAIN,
        "--out",
        "{w_store_hardlink}",
        names="store-hardlink.h5",
    ),
    C("pairs-out-is-another-store", "pairs", "{store}", *TOY_TRAIN, "--out", "{imgs_store}", names="imgs-store.h5"),
    C("pairs-out-is-a-checkpoint", "pairs", "{store}", *TOY_TRAIN, "--out", "{ckpt}", names="last.pt"),
    C("plot-losses-out-is-a-store", "plot", "losses", "{run}", "--out", "{store}", names="store.h5"),
    C("plot-losses-out-is-its-log", "plot", "losses", "{run}", "--out", "{run}/log.jsonl", names="log.jsonl"),
    C(
        "plot-map-figure-name-holds-a-store",
        "plot",
        "map",
        "{store}",
        "-g",
        "toy/train",
        "--method",
        "pca",
        "--out",
        "{w_taken_figs}",
        names="map-toy-train-pca.png",
    ),
    C(
        "cluster-figure-name-holds-a-store",
        "cluster",
        "{store}",
        "-g",
        "toy/train",
        "-k",
        "3",
        "--map",
        "pca",
        "--out",
        "{w_taken_figs}",
        names="clusters-toy-train-k3.png",
    ),
    C(
        "anomaly-figure-name-holds-a-store",
        "anomaly",
        "{store}",
        "--reference",
        "toy/train",
        "--normal",
        "toy/test",
        "--ood",
        "toy/ood",
        "-k",
        "2",
        "--out",
        "{w_taken_figs}",
        names="roc.png",
    ),
    C(
        "train-latent-out-hard-link-to-source",
        "train",
        "--latent",
        "--source-store",
        "{cifar_store}",
        "--out",
        "{w_cifar_hardlink}",
        names="cifar-hardlink.h5",
    ),
    C(
        "add-group-over-foreign-dataset",
        "add",
        "{w_foreign_extra}",
        "-g",
        "notes",
        "--embeddings",
        "{npy_x}",
        names="'notes'",
    ),
    C(
        "add-group-under-foreign-dataset",
        "add",
        "{w_foreign_extra}",
        "-g",
        "notes/x",
        "--embeddings",
        "{npy_x}",
        names="'notes'",
    ),
    # ---- item 11: no hang on a FIFO, no hours on a 12 KB file declaring 10^12 rows
    C("add-embeddings-fifo", "add", "{root}/out/new.h5", "-g", "m/x", "--embeddings", "{w_fifo_npy}", names="fifo.npy"),
    C(
        "add-labels-fifo",
        "add",
        "{root}/out/new.h5",
        "-g",
        "m/x",
        "--embeddings",
        "{npy_x}",
        "--labels",
        "{w_fifo_npy}",
        names="fifo.npy",
    ),
    C("info-store-fifo", "info", "{w_fifo_h5}", names="fifo.h5"),
    C("add-store-fifo", "add", "{w_fifo_h5}", "-g", "m/x", "--embeddings", "{npy_x}", names="fifo.h5"),
    *[
        C(f"{command}-huge-declared-{what}", *args, names=("huge-rows.h5", "huge-dim.h5", "huge-gzip.h5"))
        for what, key in (("rows", "{w_huge_rows}"), ("dim", "{w_huge_dim}"), ("gzip", "{w_huge_gzip}"))
        for command, args in {
            "info": ("info", key),
            "neighbors": ("neighbors", key, *TOY_TRAIN),
            "probe": ("probe", key, "--train", "toy/train", "--test", "toy/test"),
            "add": ("add", key, "-g", "m/x", "--embeddings", "{npy_x}"),
        }.items()
    ],
]


def world_files(root: Path, rng: np.random.Generator, paths: dict[str, str]) -> dict[str, str]:
    """Hostile stores (a content id with '../', datasets declaring 10^12 rows), links and hard links to stores,
    outputs holding files of another kind, a store with other tools' content, and FIFOs (outside the world root:
    reading one to checksum it would block)."""
    store = Path(paths["store"])
    files = {
        "w:store-link": root / "store-link.h5",
        "w:store-hardlink": root / "store-hardlink.h5",
        "w:cifar-hardlink": root / "cifar-hardlink.h5",
        "w:hdf5-json": root / "hdf5.json",
        "w:png-npz": root / "png.npz",
        "w:taken-figs": root / "taken-figs",
        "w:foreign-extra": root / "foreign-extra.h5",
    }
    os.symlink(store.name, files["w:store-link"])
    os.link(store, files["w:store-hardlink"])
    os.link(paths["cifar-store"], files["w:cifar-hardlink"])
    shutil.copy(store, files["w:hdf5-json"])
    files["w:png-npz"].write_bytes(b"\x89PNG\r\n\x1a\n" + bytes(64))
    files["w:taken-figs"].mkdir()
    for name in ("map-toy-train-pca.png", "clusters-toy-train-k3.png", "roc.png"):
        shutil.copy(store, files["w:taken-figs"] / name)
    shutil.copy(store, files["w:foreign-extra"])
    with h5py.File(files["w:foreign-extra"], "r+") as h5:
        h5["notes"] = np.arange(5)
    files.update(_hostile_stores(root, store))
    specials = root.parent / "specials"
    specials.mkdir(exist_ok=True)
    for name in ("fifo.npy", "fifo.h5", "fifo.json"):
        os.mkfifo(specials / name)
        files[f"w:{name.replace('.', '-')}"] = specials / name
    return {key: str(path) for key, path in files.items()}


def _hostile_stores(root: Path, store: Path) -> dict[str, Path]:
    """Copies of the good store, edited with h5py: a content id naming a path, groups declaring huge shapes."""
    stores = {name: root / f"{name}.h5" for name in ("evil-id", "huge-rows", "huge-dim", "huge-gzip")}
    for path in stores.values():
        shutil.copy(store, path)
    with h5py.File(stores["evil-id"], "r+") as h5:
        h5["toy/train"].attrs["content_id"] = np.bytes_(b"x/../../victim/notes")
    with h5py.File(stores["huge-rows"], "r+") as h5:
        for name in ("embeddings", "labels", "ids"):
            h5["toy/train"][name].resize(10**12, axis=0)
    with h5py.File(stores["huge-dim"], "r+") as h5:
        del h5["toy/train/embeddings"]
        h5["toy/train"].create_dataset("embeddings", (40, 10**9), np.float32, chunks=(1, 1024))
    with h5py.File(stores["huge-gzip"], "r+") as h5:
        g = h5["toy/train"]
        for name in ("embeddings", "labels", "ids"):
            shape, dtype = (10**10, *g[name].shape[1:]), g[name].dtype
            del g[name]
            g.create_dataset(name, shape, dtype, chunks=(1024, *shape[1:]), compression="gzip")
    return {f"w:{name}": path for name, path in stores.items()}
