"""Reading image trees from a folder or straight from a .tar.gz, decoding them, and parsing IDX files.

An image tree is `<split>/<class>/<file>` (or `<class>/<file>`, which is split "all"). Rows are ordered by class,
then file name, so a row position is a stable id. `embedkit.data.sources` builds the dataset sources on top of this.
"""

from __future__ import annotations

import contextlib
import gzip
import io
import os
import struct
import warnings
import zlib
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path

import numpy as np

from embedkit.errors import DataError
from embedkit.data.tar import iter_tar_files

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".gif", ".webp", ".tif", ".tiff", ".ppm", ".pgm")
FLAT_SPLIT = "all"  # the split name of a tree whose class folders hold the images directly
_DECODE_CHUNK = 1024  # images read and decoded at a time; also the progress granularity
_JPEG_MAGIC = b"\xff\xd8"

Progress = Callable[[int, int], None] | None
Entry = tuple[str, str, str]  # (split, class, relative path)


def split_tree(relpaths: Iterable[str]) -> dict[str, list[Entry]]:
    """Group image paths (relative, '/'-separated) by split, each sorted by (class, file name).

    Paths `split/class/file` define splits; `class/file` paths form split "all", used only when no path has a split.
    Hidden files and files without an image suffix are ignored.
    """
    nested: list[Entry] = []
    flat: list[Entry] = []
    for rel in relpaths:
        if not is_image_path(rel):
            continue
        parts = rel.split("/")
        if len(parts) == 3:
            nested.append((parts[0], parts[1], rel))
        elif len(parts) == 2:
            flat.append((FLAT_SPLIT, parts[0], rel))
    splits: dict[str, list[Entry]] = {}
    for entry in sorted(nested or flat, key=lambda e: (e[0], e[1], e[2])):
        splits.setdefault(entry[0], []).append(entry)
    return splits


def is_image_path(path: str) -> bool:
    """An image file by its suffix, outside hidden files and folders ('.DS_Store', '.thumbnails/')."""
    return path.lower().endswith(IMAGE_SUFFIXES) and "/." not in "/" + path


def class_names_of(tree: dict[str, list[Entry]]) -> tuple[str, ...]:
    """Sorted union of the class folders of every split, so a label means the same class in every split."""
    return tuple(sorted({cls for entries in tree.values() for _, cls, _ in entries}))


def list_folder_tree(root: Path) -> dict[str, list[Entry]]:
    """The image tree under a folder (looks at most two folder levels deep)."""
    relpaths = []
    for dirpath, dirnames, filenames in os.walk(root):
        rel_dir = os.path.relpath(dirpath, root)
        depth = 0 if rel_dir == "." else rel_dir.count(os.sep) + 1
        if depth >= 2:
            dirnames.clear()
        if depth >= 1:
            prefix = rel_dir.replace(os.sep, "/")
            relpaths.extend(f"{prefix}/{name}" for name in filenames)
    return split_tree(relpaths)


def decode_folder_split(root: Path, entries: list[Entry], on_progress: Progress = None) -> np.ndarray:
    """Decode one split of a folder tree: (N, H, W, 3) uint8 in `entries` order. Progress counts images."""
    rels = [rel for _, _, rel in entries]
    return _decode_named(rels, lambda rel: (root / rel).read_bytes(), lambda rel: str(root / rel), on_progress)


def read_archive_tree(path: Path, on_progress: Progress = None) -> dict[str, tuple[list[Entry], np.ndarray]]:
    """Decode every split of a .tar.gz tree in one pass, without extracting: split -> (entries, (N,H,W,3) uint8).

    A single top folder shared by every image (`tar czf pets.tar.gz pets/`) is the tree's root.
    Progress counts images, over all splits.
    """
    data = _gunzip(path)
    members = {}  # image member name -> (data start, size)
    for name, start, size, _ in iter_tar_files(data, str(path)):
        if is_image_path(_member_name(name)):
            members[_member_name(name)] = (start, size)
    top = _common_top(members)
    tree = split_tree(name[len(top) :] for name in members)
    view = memoryview(data)  # slices without copying; bytearray() makes the one copy torch needs

    def read(name: str) -> bytearray:
        start, size = members[name]
        return bytearray(view[start : start + size])

    total, done, splits = sum(len(entries) for entries in tree.values()), 0, {}
    for split, entries in tree.items():
        names = [top + rel for _, _, rel in entries]
        images = _decode_named(names, read, lambda name: f"{path}:{name}", on_progress, done, total)
        splits[split] = (entries, images)
        done += len(entries)
    return splits


def list_archive_tree(path: Path) -> dict[str, list[Entry]]:
    """The image tree of a .tar.gz from its member names only (nothing decoded)."""
    names = [_member_name(name) for name, _, _, _ in iter_tar_files(_gunzip(path), str(path))]
    names = [name for name in names if is_image_path(name)]
    top = _common_top(names)
    return split_tree(name[len(top) :] for name in names)


def _decode_named(
    names: list[str], read: Callable, display: Callable, on_progress: Progress, done_before: int = 0, total: int = 0
) -> np.ndarray:
    """Read and decode files in chunks: (N, H, W, 3) uint8 in `names` order; `display(name)` names a file in errors.

    Progress reports `done_before + decoded` out of `total` (default: this call's own count).
    """
    tensors: list = []
    for start in range(0, len(names), _DECODE_CHUNK):
        chunk = names[start : start + _DECODE_CHUNK]
        tensors.extend(decode_blobs([read(name) for name in chunk], [display(name) for name in chunk]))
        if on_progress is not None:
            on_progress(done_before + len(tensors), total or len(names))
    return stack_images(tensors, [display(name) for name in names])


def _gunzip(path: Path) -> bytes:
    """The whole uncompressed archive: smaller than the pixels it decodes to, and much faster to parse in memory."""
    try:
        with gzip.open(path) as f:
            return f.read()
    except (EOFError, zlib.error, gzip.BadGzipFile) as exc:
        raise DataError(f"{path}: corrupt or truncated .tar.gz ({exc})") from None


def _member_name(name: str) -> str:
    return name[2:] if name.startswith("./") else name


def _common_top(names: Iterable[str]) -> str:
    """`'top/'` when every name sits in the same top folder, else `''`."""
    tops = {name.split("/", 1)[0] if "/" in name else "" for name in names}
    return f"{tops.pop()}/" if len(tops) == 1 and "" not in tops else ""


def decode_blobs(blobs: list[bytes | bytearray], names: list[str]) -> list:
    """Decode encoded images to (3, H, W) uint8 tensors: JPEGs in one batched torchvision call, others one by one.

    torchvision's decoders are ~4x faster than Pillow's on small JPEGs; they are deprecated since torchvision 0.29
    (in favour of TorchCodec), so Pillow decodes everything where they are gone.
    """
    decoders = _torchvision_decoders()
    out: list = [None] * len(blobs)
    jpegs = [i for i, blob in enumerate(blobs) if blob[:2] == _JPEG_MAGIC]
    if decoders is not None and jpegs:
        try:
            with _quiet_deprecation():
                tensors = decoders.decode_jpeg([_as_tensor(blobs[i]) for i in jpegs], mode=decoders.ImageReadMode.RGB)
            for i, tensor in zip(jpegs, tensors):
                out[i] = tensor
        except RuntimeError:
            pass  # one bad file fails the whole batch; _decode_one below names it
    for i, tensor in enumerate(out):
        if tensor is None:
            out[i] = _decode_one(blobs[i], names[i], decoders)
    return out


def _torchvision_decoders():
    """The `torchvision.io` module when it still has its image decoders, else None."""
    try:
        import torchvision.io as decoders
    except ImportError:
        return None
    return decoders if hasattr(decoders, "decode_jpeg") and hasattr(decoders, "decode_image") else None


@contextlib.contextmanager
def _quiet_deprecation() -> Iterator[None]:
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", category=DeprecationWarning, module="torchvision")
        yield


def _as_tensor(blob: bytes | bytearray):
    import torch

    return torch.frombuffer(blob if isinstance(blob, bytearray) else bytearray(blob), dtype=torch.uint8)


def _decode_one(blob: bytes | bytearray, name: str, decoders):
    """One image with torchvision (JPEG, PNG, GIF, WebP), else Pillow (BMP, TIFF, PPM); DataError naming the file."""
    import torch
    from PIL import Image, UnidentifiedImageError

    if not blob:
        raise DataError(f"{name}: empty image file")
    if decoders is not None:
        try:
            with _quiet_deprecation():
                return decoders.decode_image(_as_tensor(blob), mode=decoders.ImageReadMode.RGB)
        except RuntimeError:
            pass
    try:
        with Image.open(io.BytesIO(blob)) as image:
            return torch.from_numpy(np.array(image.convert("RGB"))).permute(2, 0, 1)
    except (UnidentifiedImageError, OSError, ValueError) as exc:
        raise DataError(f"{name}: cannot decode image ({exc})") from None


def stack_images(images: list, names: list[str]) -> np.ndarray:
    """Stack (3, H, W) uint8 tensors into (N, H, W, 3) uint8; DataError naming two files when sizes differ."""
    import torch

    if not images:
        return np.zeros((0, 0, 0, 3), np.uint8)
    first = images[0].shape
    for image, name in zip(images, names):
        if image.shape != first:
            raise DataError(
                f"images differ in size: {names[0]} is {first[2]}x{first[1]} (WxH), {name} is "
                f"{image.shape[2]}x{image.shape[1]}; resize them to one size first"
            )
    return torch.stack(images).permute(0, 2, 3, 1).contiguous().numpy()


def read_idx(path: Path, ndim: int) -> np.ndarray:
    """An IDX file of unsigned bytes (MNIST's format, optionally .gz) as an array shaped as its header says."""
    try:
        with _open_idx(path) as f:
            raw = f.read()
    except (EOFError, zlib.error, gzip.BadGzipFile) as exc:
        raise DataError(f"{path}: corrupt or truncated gzip file ({exc})") from None
    dims = _idx_dims(raw[: 4 + 4 * ndim], path, ndim)
    expected = int(np.prod(dims))
    if len(raw) - 4 - 4 * ndim != expected:
        raise DataError(f"{path}: truncated IDX file: {len(raw) - 4 - 4 * ndim} data bytes, header says {expected}")
    return np.frombuffer(raw, np.uint8, offset=4 + 4 * ndim).reshape(dims).copy()


def read_idx_dims(path: Path, ndim: int) -> tuple[int, ...]:
    """The dimensions an IDX header declares, reading only the header."""
    try:
        with _open_idx(path) as f:
            header = f.read(4 + 4 * ndim)
    except (EOFError, zlib.error, gzip.BadGzipFile) as exc:
        raise DataError(f"{path}: corrupt or truncated gzip file ({exc})") from None
    return _idx_dims(header, path, ndim)


def _open_idx(path: Path):
    return gzip.open(path) if path.suffix == ".gz" else open(path, "rb")


def _idx_dims(header: bytes, path: Path, ndim: int) -> tuple[int, ...]:
    """Validate the magic number (0, 0, type 0x08 = unsigned byte, ndim) and return the dimensions."""
    if len(header) < 4 or header[0] != 0 or header[1] != 0:
        raise DataError(f"{path}: not an IDX file (bad magic number)")
    if header[2] != 0x08:
        raise DataError(f"{path}: IDX element type 0x{header[2]:02x} is not supported (expected 0x08, unsigned byte)")
    if header[3] != ndim:
        raise DataError(f"{path}: IDX file has {header[3]} dimensions, expected {ndim}")
    if len(header) < 4 + 4 * ndim:
        raise DataError(f"{path}: truncated IDX header")
    return struct.unpack(f">{ndim}I", header[4 : 4 + 4 * ndim])
