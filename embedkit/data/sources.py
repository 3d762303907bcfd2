"""Dataset sources (CIFAR-10, MNIST, any image folder), decoded once and cached, and the CIFAR normalisation.

`load_images("cifar10", "train")` finds the data under the data root (`data_root`, else `$EMBEDKIT_DATA`, else the
per-user data folder), in the first layout that has the split:
  cifar10: `cifar-10-batches-py/` (torchvision), an image tree `{train,test}/<class>/*` in `cifar10-jpeg/`,
           `cifar10/` or the root itself, or `cifar10-jpeg.tar.gz` / `cifar10.tar.gz` holding such a tree.
  mnist:   IDX files `{t10k,train}-{images-idx3,labels-idx1}-ubyte[.gz]` in `mnist-test/`, `mnist/`, `MNIST/raw/`
           (torchvision) or the root itself.
Any other `dataset` is a path to an image folder or .tar.gz: `<split>/<class>/*`, or `<class>/*` (split "all").
Row order (the store's `ids`): image trees by class, then file name; torchvision and IDX files in file order.
Decoded image trees are cached as .npy under `$EMBEDKIT_CACHE` (else the per-user cache folder); nothing is ever
written to the data root except by `download=True`.
"""

from __future__ import annotations

import functools
import hashlib
import os
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from embedkit._util.progress import ProgressFn
from embedkit._util.sampling import seeded_rows
from embedkit.data import archives, cifar_batches
from embedkit.data import images as imagefiles
from embedkit.data.cache import cache_stem, read_cache, read_cached_labels, write_cache
from embedkit.errors import ConfigError, DataError

CIFAR10_MEAN = (0.4914, 0.4822, 0.4465)
CIFAR10_STD = (0.2470, 0.2435, 0.2616)
KNOWN_DATASETS = {"cifar10": ("train", "test"), "mnist": ("train", "test")}
MNIST_CLASSES = tuple(str(digit) for digit in range(10))
_TORCHVISION_BATCHES = cifar_batches.BATCHES
_IDX_PREFIX = {"train": "train", "test": "t10k"}
_LAYOUTS = {"torchvision": "torchvision", "folder": "image folder", "archive": "tar.gz", "idx": "IDX"}


@dataclass(frozen=True, eq=False)
class ImageSet:
    """One split of a dataset: images (N, H, W, C) uint8, labels (N,) int64 indexing `class_names`."""

    dataset: str
    split: str
    images: np.ndarray
    labels: np.ndarray
    class_names: tuple[str, ...]
    source: str


@dataclass(frozen=True)
class Source:
    """Where a dataset's files are: `kind` is torchvision, folder, archive or idx (`path`: the images file)."""

    kind: str
    path: Path
    name: str


def resolve_data_root(data_root: Path | None = None) -> Path:
    """The data root: `data_root`, else `$EMBEDKIT_DATA`, else the per-user data folder."""
    if data_root is not None:
        return Path(data_root).expanduser()
    if os.environ.get("EMBEDKIT_DATA"):
        return Path(os.environ["EMBEDKIT_DATA"]).expanduser()
    from platformdirs import user_data_dir

    return Path(user_data_dir("embedkit"))


def load_images(
    dataset: str,
    split: str,
    data_root: Path | None = None,
    *,
    download: bool = False,
    on_progress: ProgressFn | None = None,
    sample: int | None = None,
    seed: int = 0,
) -> ImageSet:
    """Load one split as uint8 arrays, decoding image files once and caching them (see the module docstring).

    `sample`: only that many images, the rows `seeded_rows(n, sample, seed)` in split order (what `train --subset`
    trains on); when the split is not cached yet, only those images are decoded, and nothing is cached.
    `on_progress(done, total)` counts images decoded (for a .tar.gz, whose one pass decodes and caches every split,
    the images of all its splits). Raises DataError, in one line, for an unknown or missing dataset or bad files,
    ConfigError for a sample of fewer than one image.
    """
    check_subset_size(sample)
    if dataset not in KNOWN_DATASETS:
        return _load(_path_source(dataset), split, on_progress, sample, seed)
    if split not in KNOWN_DATASETS[dataset]:
        raise DataError(f"{dataset} has no split {split!r} (splits: {', '.join(KNOWN_DATASETS[dataset])})")
    root = resolve_data_root(data_root)
    source = find_source(dataset, split, root)
    if source is None and download:
        _download(dataset, split, root)
        source = find_source(dataset, split, root)
    if source is None:
        raise DataError(_missing_message(dataset, split, root))
    return _load(source, split, on_progress, sample, seed)


def find_source(dataset: str, split: str, root: Path) -> Source | None:
    """The first location under `root` that holds `split` of a known dataset (see `searched_paths`), or None."""
    for path in searched_paths(dataset, root):
        if dataset == "mnist":
            images = _idx_file(path, f"{_IDX_PREFIX[split]}-images-idx3-ubyte")
            if images and _idx_file(path, f"{_IDX_PREFIX[split]}-labels-idx1-ubyte"):
                return Source("idx", images, dataset)
        elif path.name == "cifar-10-batches-py":
            if path.is_dir() and all((path / batch).is_file() for batch in _TORCHVISION_BATCHES[split]):
                return Source("torchvision", path, dataset)
        elif path.name.endswith(".tar.gz"):
            if path.is_file():
                return Source("archive", path, dataset)
        elif (path / split).is_dir():
            return Source("folder", path, dataset)
    return None


def searched_paths(dataset: str, root: Path) -> list[Path]:
    """The locations `find_source` tries for a known dataset, in order."""
    if dataset == "mnist":
        return [root / "mnist-test", root / "mnist", root / "MNIST" / "raw", root]
    return [
        root / "cifar-10-batches-py",
        root / "cifar10-jpeg",
        root / "cifar10",
        root,
        root / "cifar10-jpeg.tar.gz",
        root / "cifar10.tar.gz",
    ]


def _missing_message(dataset: str, split: str, root: Path) -> str:
    searched = ", ".join(str(path) for path in searched_paths(dataset, root))
    if dataset == "mnist":
        files = f"{_IDX_PREFIX[split]}-images-idx3-ubyte.gz and {_IDX_PREFIX[split]}-labels-idx1-ubyte.gz"
        how = f"put {files} in {root / 'mnist-test'}"
    else:
        how = f"put cifar10-jpeg.tar.gz (or an image tree {{train,test}}/<class>/*) in {root}"
    return (
        f"{dataset} {split} not found; searched {searched}. To provide it: {how}, point --data-root or "
        f"EMBEDKIT_DATA at a folder that has it, or pass --download when online"
    )


def _idx_file(folder: Path, stem: str) -> Path | None:
    for path in (folder / stem, folder / f"{stem}.gz"):
        if path.is_file():
            return path
    return None


def _path_source(dataset: str) -> Source:
    path = Path(dataset).expanduser()
    looks_like_path = os.sep in dataset or "/" in dataset or dataset.endswith((".tar.gz", ".tgz")) or path.exists()
    if not looks_like_path:
        raise DataError(
            f"unknown dataset {dataset!r}: known datasets are {', '.join(KNOWN_DATASETS)}, "
            "or give the path of an image folder or .tar.gz"
        )
    if path.is_dir():
        return Source("folder", path, path.resolve().name)
    if path.is_file() and path.name.endswith((".tar.gz", ".tgz")):
        return Source("archive", path, path.name.removesuffix(".gz").removesuffix(".tar").removesuffix(".tgz"))
    if path.exists():
        raise DataError(f"{path}: not an image folder or a .tar.gz of one")
    raise DataError(f"{path}: no such image folder or .tar.gz (known datasets: {', '.join(KNOWN_DATASETS)})")


def download_missing(data_root: Path | None = None) -> list[str]:
    """Download with torchvision every split of the known datasets (CIFAR-10, MNIST) that is missing under the data
    root; the `dataset/split` names that were missing and are now there."""
    root = resolve_data_root(data_root)
    fetched = []
    for dataset, splits in KNOWN_DATASETS.items():
        for split in splits:
            if find_source(dataset, split, root) is None:
                _download(dataset, split, root)
                if find_source(dataset, split, root) is not None:
                    fetched.append(f"{dataset}/{split}")
    return fetched


def _download(dataset: str, split: str, root: Path) -> None:
    """Let torchvision download a known dataset into the data root (the only write to it)."""
    from torchvision import datasets

    kind = datasets.CIFAR10 if dataset == "cifar10" else datasets.MNIST
    try:
        root.mkdir(parents=True, exist_ok=True)
        kind(str(root), train=split == "train", download=True)
    except (OSError, RuntimeError) as exc:
        raise DataError(f"could not download {dataset} into {root}: {exc}") from None


def _load(source: Source, split: str, on_progress: ProgressFn | None, sample: int | None, seed: int) -> ImageSet:
    if sample is not None and source.kind in ("folder", "archive"):
        return _load_sample(source, split, on_progress, sample, seed)
    loaders = {
        "torchvision": _load_torchvision_cifar10,
        "idx": _load_idx,
        "folder": _load_folder,
        "archive": _load_archive,
    }
    image_set = loaders[source.kind](source, split, on_progress)
    return image_set if sample is None else _take(image_set, seeded_rows(len(image_set.labels), sample, seed))


def _take(image_set: ImageSet, rows: np.ndarray) -> ImageSet:
    return replace(image_set, images=image_set.images[rows], labels=image_set.labels[rows])


def _load_sample(source: Source, split: str, on_progress: ProgressFn | None, sample: int, seed: int) -> ImageSet:
    """The sampled rows of an image tree's split: from the cache when it has the split, else decoding only them."""
    if source.kind == "archive":
        cached = _cached_sample(source, split, _archive_state(source.path), sample, seed)
        if cached is not None:
            return cached
        listing = _archive_listing(str(source.path), _archive_state(source.path))
        tree = _known_splits(source, listing.tree)
    else:
        tree = _known_splits(source, imagefiles.list_folder_tree(source.path))
    entries = _split_entries(source, tree, split)
    class_names = imagefiles.class_names_of(tree)
    if source.kind == "folder":
        cached = _cached_sample(source, split, _folder_state(source.path, entries, class_names), sample, seed)
        if cached is not None:
            return cached
    chosen = [entries[row] for row in seeded_rows(len(entries), sample, seed)]
    if source.kind == "archive":
        images = archives.decode_archive_entries(source.path, listing, {split: chosen}, on_progress)[split]
    else:
        images = imagefiles.decode_folder_split(source.path, chosen, on_progress)
    return ImageSet(source.name, split, images, _labels(chosen, class_names), class_names, str(source.path))


@functools.lru_cache(maxsize=2)
def _archive_listing(path: str, state: str) -> archives.ArchiveListing:
    """The archive's header pass, once per process and archive state: `train` samples the train and the test split
    of one archive, and each pass reads all of its gzip stream."""
    return archives.list_archive(Path(path))


def _cached_sample(source: Source, split: str, state: str, sample: int, seed: int) -> ImageSet | None:
    cached = read_cache(cache_stem(source.name, split, source.path, state))
    if cached is None:
        return None
    return _take(
        ImageSet(source.name, split, *cached, source=str(source.path)), seeded_rows(len(cached[1]), sample, seed)
    )


def _load_torchvision_cifar10(source: Source, split: str, on_progress: ProgressFn | None = None) -> ImageSet:
    images, labels, class_names = cifar_batches.read_split(source.path, split)
    return ImageSet(source.name, split, images, labels, class_names, str(source.path))


def _load_idx(source: Source, split: str, on_progress: ProgressFn | None = None) -> ImageSet:
    labels_stem = source.path.name.removesuffix(".gz").replace("images-idx3", "labels-idx1")
    labels_path = _idx_file(source.path.parent, labels_stem) or source.path.parent / labels_stem
    images = imagefiles.read_idx(source.path, 3)
    labels = imagefiles.read_idx(labels_path, 1).astype(np.int64)
    if len(labels) != len(images):
        raise DataError(f"{labels_path}: {len(labels)} labels for {len(images)} images in {source.path}")
    if len(labels) and labels.max() >= len(MNIST_CLASSES):
        raise DataError(f"{labels_path}: label {labels.max()} is not a digit 0-9")
    return ImageSet(source.name, split, images[..., None], labels, MNIST_CLASSES, str(source.path))


def _load_folder(source: Source, split: str, on_progress: ProgressFn | None) -> ImageSet:
    """One split of an image folder, from the cache when no file changed, else decoded and cached."""
    tree = _known_splits(source, imagefiles.list_folder_tree(source.path))
    entries = _split_entries(source, tree, split)
    class_names = imagefiles.class_names_of(tree)
    stem = cache_stem(source.name, split, source.path, _folder_state(source.path, entries, class_names))
    cached = read_cache(stem)
    if cached is not None:
        return ImageSet(source.name, split, *cached, source=str(source.path))
    images = imagefiles.decode_folder_split(source.path, entries, on_progress)
    labels = _labels(entries, class_names)
    write_cache(stem, images, labels, class_names)
    return ImageSet(source.name, split, images, labels, class_names, str(source.path))


def _load_archive(source: Source, split: str, on_progress: ProgressFn | None) -> ImageSet:
    """One split of a .tar.gz tree, from the cache, else decoded (all splits in one pass) and cached."""
    state = _archive_state(source.path)
    cached = read_cache(cache_stem(source.name, split, source.path, state))
    if cached is not None:
        return ImageSet(source.name, split, *cached, source=str(source.path))
    splits = _known_splits(source, archives.read_archive_tree(source.path, on_progress))
    tree = {name: entries for name, (entries, _) in splits.items()}
    class_names = imagefiles.class_names_of(tree)
    for name, (entries, images) in splits.items():
        stem = cache_stem(source.name, name, source.path, state)
        write_cache(stem, images, _labels(entries, class_names), class_names)
    labels = _labels(_split_entries(source, tree, split), class_names)
    return ImageSet(source.name, split, splits[split][1], labels, class_names, str(source.path))


def _known_splits(source: Source, tree: dict) -> dict:
    """A named dataset's tree keeps only its own splits (the data root may hold other folders)."""
    if source.name in KNOWN_DATASETS:
        return {name: value for name, value in tree.items() if name in KNOWN_DATASETS[source.name]}
    return tree


def _split_entries(source: Source, tree: dict[str, list], split: str) -> list:
    if split not in tree:
        found = ", ".join(sorted(tree)) or "none"
        hint = " (class folders directly under the root form split 'all')" if found == imagefiles.FLAT_SPLIT else ""
        raise DataError(f"{source.path}: no images for split {split!r} (splits found: {found}){hint}")
    return tree[split]


def _labels(entries: list[imagefiles.Entry], class_names: tuple[str, ...]) -> np.ndarray:
    index = {name: i for i, name in enumerate(class_names)}
    return np.array([index[cls] for _, cls, _ in entries], dtype=np.int64)


def _folder_state(root: Path, entries: list[imagefiles.Entry], class_names: tuple[str, ...]) -> str:
    """Changes when any image of the split is added, removed, renamed or rewritten, or the class list changes."""
    digest = hashlib.sha1("\n".join(class_names).encode())
    for _, _, rel in entries:
        try:
            stat = (root / rel).stat()
        except OSError as exc:  # a link to nothing, or a file removed meanwhile
            raise DataError(f"{root / rel}: cannot read image ({exc.strerror})") from None
        digest.update(f"{rel}\0{stat.st_size}\0{stat.st_mtime_ns}\n".encode())
    return digest.hexdigest()


def _archive_state(path: Path) -> str:
    stat = path.stat()
    return f"{stat.st_size}:{stat.st_mtime_ns}"


def available_datasets(data_root: Path | None = None) -> list[dict]:
    """Which splits of the known datasets are under the data root, with sizes and classes where cheap to know.

    One dict per (dataset, split): dataset, split, found, layout, source, n_images, n_classes, class_names,
    cached, searched (and error, when the files are there but unreadable). Counts come from the cache, a file
    listing, archive member names or IDX headers; no image is decoded (but an uncached .tar.gz is read through
    once, since gzip has no index).
    """
    root = resolve_data_root(data_root)
    if root.exists() and not root.is_dir():
        raise DataError(f"{root}: the data root must be a folder, not a file")
    listings: dict[Path, dict] = {}
    rows = []
    for dataset, splits in KNOWN_DATASETS.items():
        for split in splits:
            source = find_source(dataset, split, root)
            row = {"dataset": dataset, "split": split, "found": source is not None, "layout": None, "source": None}
            row.update(n_images=None, n_classes=None, class_names=None, cached=False)
            row["searched"] = [str(path) for path in searched_paths(dataset, root)]
            if source is not None:
                row.update(layout=_LAYOUTS[source.kind], source=str(source.path))
                try:
                    row.update(_describe(source, split, listings))
                except (DataError, OSError) as exc:
                    row["error"] = str(exc)
                row["n_classes"] = len(row["class_names"]) if row["class_names"] is not None else None
            rows.append(row)
    return rows


def _describe(source: Source, split: str, listings: dict[Path, dict]) -> dict:
    """n_images, class_names and cached for one found split, without decoding any image."""
    if source.kind == "idx":
        return {"n_images": imagefiles.read_idx_dims(source.path, 3)[0], "class_names": list(MNIST_CLASSES)}
    if source.kind == "torchvision":
        class_names = cifar_batches.read_class_names(source.path)  # md5-checked, then unpickled with no code
        return {"n_images": 10_000 * len(_TORCHVISION_BATCHES[split]), "class_names": list(class_names)}
    if source.kind == "archive":
        cached = read_cached_labels(cache_stem(source.name, split, source.path, _archive_state(source.path)))
        if cached is not None:
            return {"n_images": len(cached[0]), "class_names": list(cached[1]), "cached": True}
        if source.path not in listings:
            listings[source.path] = _known_splits(source, archives.list_archive_tree(source.path))
        tree = listings[source.path]
    else:
        tree = _known_splits(source, imagefiles.list_folder_tree(source.path))
    entries = _split_entries(source, tree, split)
    class_names = imagefiles.class_names_of(tree)
    if source.kind == "folder":
        state = _folder_state(source.path, entries, class_names)
        cached = read_cached_labels(cache_stem(source.name, split, source.path, state)) is not None
    else:
        cached = False
    return {"n_images": len(entries), "class_names": list(class_names), "cached": cached}


def image_digest(image_set: ImageSet) -> str:
    """sha256 of a split's pixels and labels: recorded by `encode`, so `retrieve` knows it draws the same images."""
    digest = hashlib.sha256(np.ascontiguousarray(image_set.images).data)
    digest.update(np.ascontiguousarray(image_set.labels, dtype=np.int64).data)
    return digest.hexdigest()


def check_subset_size(size: int | None) -> None:
    """ConfigError (one line) unless `size` is None or at least 1: a per-split sample size, checked before loading."""
    if size is not None and size < 1:
        raise ConfigError(f"subset must be at least 1 image per split, got {size}")


def to_rgb32(images: np.ndarray) -> np.ndarray:
    """(N, H, W, 1 or 3) uint8 -> (N, 32, 32, 3) uint8: bilinear resize (antialiased) and grey repeated to RGB.

    This is how MNIST (28x28 grey) feeds an encoder trained on CIFAR-10; 32x32 RGB input is returned unchanged.
    """
    if images.ndim != 4 or images.shape[-1] not in (1, 3) or images.dtype != np.uint8:
        raise DataError(f"expected images (N, H, W, 1 or 3) uint8, got {images.shape} {images.dtype}")
    if images.shape[1:] == (32, 32, 3):
        return images
    import torch
    import torch.nn.functional as F

    out = np.empty((len(images), 32, 32, 3), dtype=np.uint8)
    for start in range(0, len(images), 4096):  # bounded float memory for any N
        x = to_float_tensor(images[start : start + 4096]) * 255.0
        if x.shape[-2:] != (32, 32):
            x = F.interpolate(x, size=(32, 32), mode="bilinear", align_corners=False, antialias=True)
        x = x.expand(-1, 3, -1, -1) if x.shape[1] == 1 else x
        out[start : start + 4096] = x.round().clamp(0, 255).to(torch.uint8).permute(0, 2, 3, 1).numpy()
    return out


def to_float_tensor(images: np.ndarray):
    """(N, H, W, C) uint8 -> (N, C, H, W) float32 torch.Tensor in [0, 1]."""
    import torch

    return torch.from_numpy(np.ascontiguousarray(images)).permute(0, 3, 1, 2).contiguous().float().div_(255.0)


def normalize(x, mean: tuple[float, ...] = CIFAR10_MEAN, std: tuple[float, ...] = CIFAR10_STD):
    """(N, C, H, W) float tensor -> (x - mean) / std per channel (default: the CIFAR-10 statistics)."""
    import torch

    if x.ndim != 4 or x.shape[1] != len(mean) or len(mean) != len(std):
        raise DataError(f"normalize expects (N, {len(mean)}, H, W) tensors, got {tuple(x.shape)}")
    mean_t = torch.tensor(mean, dtype=x.dtype, device=x.device).view(1, -1, 1, 1)
    std_t = torch.tensor(std, dtype=x.dtype, device=x.device).view(1, -1, 1, 1)
    return (x - mean_t) / std_t
