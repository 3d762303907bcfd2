"""Reading image trees from a folder, decoding images within limits, and parsing IDX files.

An image tree is `<split>/<class>/<file>` (or `<class>/<file>`, which is split "all"). Rows are ordered by class,
then file name, so a row position is a stable id. `embedkit.data.archives` reads the same trees from a .tar.gz, and
`embedkit.data.sources` builds the dataset sources on top of both.
"""

from __future__ import annotations

import contextlib
import gzip
import io
import os
import stat
import struct
import warnings
import zlib
from collections.abc import Iterable, Iterator
from pathlib import Path

import numpy as np

from embedkit._util.progress import ProgressFn
from embedkit.errors import DataError

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".gif", ".webp", ".tif", ".tiff", ".ppm", ".pgm")
FLAT_SPLIT = "all"  # the split name of a tree whose class folders hold the images directly
_DECODE_CHUNK = 1024  # images read and decoded at a time; also the progress granularity
_JPEG_MAGIC = b"\xff\xd8"
MAX_IMAGE_PIXELS = 89_478_485  # Pillow's decompression-bomb threshold: 16000x16000 (256M pixels) is refused
MAX_IMAGE_BYTES = 8 * MAX_IMAGE_PIXELS  # no encoding of such an image needs more (16-bit RGBA, uncompressed)
_IDX_CHUNK = 16 << 20

Entry = tuple[str, str, str]  # (split, class, relative path)


def split_tree(relpaths: Iterable[str], where: str = "") -> dict[str, list[Entry]]:
    """Group image paths (relative, '/'-separated) by split, each sorted by (class, file name).

    Paths `split/class/file` define splits; `class/file` paths form split "all", used only when no path has a split.
    Hidden files and files without an image suffix are ignored. An image path that is not UTF-8 is refused (naming
    `where`): class names are stored as text, and a file read under one name and listed under another is a shift.
    """
    nested: list[Entry] = []
    flat: list[Entry] = []
    for rel in relpaths:
        if not is_image_path(rel):
            continue
        if not _is_utf8(rel):
            raise DataError(f"{where}: {shown(rel)}: the file or folder name is not UTF-8; rename it")
        parts = rel.split("/")
        if len(parts) == 3:
            nested.append((parts[0], parts[1], rel))
        elif len(parts) == 2:
            flat.append((FLAT_SPLIT, parts[0], rel))
    splits: dict[str, list[Entry]] = {}
    for entry in sorted(nested or flat, key=lambda e: (e[0], e[1], e[2])):
        splits.setdefault(entry[0], []).append(entry)
    return splits


def _is_utf8(name: str) -> bool:
    try:
        name.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def shown(name: str) -> str:
    """A file name as printable text: bytes that are not UTF-8 (surrogate-escaped by the OS layer) as \\xNN."""
    return name.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")


def is_image_path(path: str) -> bool:
    """An image file by its suffix, outside hidden files and folders ('.DS_Store', '.thumbnails/')."""
    return path.lower().endswith(IMAGE_SUFFIXES) and "/." not in "/" + path


def class_names_of(tree: dict[str, list[Entry]]) -> tuple[str, ...]:
    """Sorted union of the class folders of every split, so a label means the same class in every split."""
    return tuple(sorted({cls for entries in tree.values() for _, cls, _ in entries}))


def list_folder_tree(root: Path) -> dict[str, list[Entry]]:
    """The image tree under a folder (at most two folder levels deep), through symbolic links to files and folders,
    as a .tar.gz of the folder resolves its links (`read_image_file` then refuses what is not a regular file)."""
    relpaths = []
    for dirpath, dirnames, filenames in os.walk(root, followlinks=True):  # the depth limit also stops link loops
        rel_dir = os.path.relpath(dirpath, root)
        depth = 0 if rel_dir == "." else rel_dir.count(os.sep) + 1
        if depth >= 2:
            dirnames.clear()
        if depth >= 1:
            prefix = rel_dir.replace(os.sep, "/")
            relpaths.extend(f"{prefix}/{name}" for name in filenames)
    return split_tree(relpaths, str(root))


def read_image_file(path: Path) -> bytes:
    """The bytes of one image file, after links: only a regular file of at most MAX_IMAGE_BYTES, checked on the
    open descriptor before reading, so a FIFO, a device (a link to /dev/zero) or a huge file never blocks or fills
    memory."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)  # a FIFO opens at once instead of waiting for a writer
    except OSError as exc:
        raise DataError(f"{shown(str(path))}: cannot read image ({exc.strerror})") from None
    with open(fd, "rb") as f:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise DataError(f"{shown(str(path))}: not a regular file (a FIFO, device or folder), so not an image")
        check_file_size(info.st_size, shown(str(path)))
        return f.read(info.st_size)  # never more than stat said, even if the file grows meanwhile


def check_file_size(size: int, name: str) -> None:
    if size > MAX_IMAGE_BYTES:
        raise DataError(f"{name}: {size:,} bytes, more than any image of at most {MAX_IMAGE_PIXELS:,} pixels needs")


def decode_folder_split(root: Path, entries: list[Entry], on_progress: ProgressFn | None = None) -> np.ndarray:
    """Decode one split of a folder tree: (N, H, W, 3) uint8 in `entries` order. Progress counts images."""
    rels = [rel for _, _, rel in entries]
    items = ((rel, read_image_file(root / rel), str(root / rel)) for rel in rels)  # read lazily, chunk by chunk
    decoded = decode_all(items, len(rels), on_progress)
    return stack_images([decoded[rel] for rel in rels], [str(root / rel) for rel in rels])


def decode_all(
    items: Iterable[tuple[str, bytes, str]], total: int, on_progress: ProgressFn | None
) -> dict[str, object]:
    """Decode (key, file bytes, display name) items a chunk at a time: key -> (3, H, W) uint8 tensor.

    Each image's declared size is checked before it is decoded (see `_SizeGuard`); progress counts images.
    """
    guard, decoded, chunk = _SizeGuard(), {}, []

    def flush() -> None:
        tensors = decode_blobs([blob for _, blob, _ in chunk], [name for _, _, name in chunk])
        decoded.update((key, _as_uint8(tensor)) for (key, _, _), tensor in zip(chunk, tensors))
        chunk.clear()
        if on_progress is not None:
            on_progress(len(decoded), total)

    for key, blob, name in items:
        guard.check(blob, name)
        chunk.append((key, blob, name))
        if len(chunk) == _DECODE_CHUNK:
            flush()
    if chunk:
        flush()
    return decoded


class _SizeGuard:
    """Refuses an image by its header, before decoding: more than MAX_IMAGE_PIXELS (a decompression bomb: a 746 KB
    PNG can declare 16000x16000), or another size than the first image's (they could not be stacked anyway)."""

    def __init__(self) -> None:
        self.first: tuple[str, tuple[int, int]] | None = None

    def check(self, blob: bytes, name: str) -> None:
        if not blob:
            raise DataError(f"{name}: empty image file")
        size = _png_or_jpeg_size(blob) or _pillow_size(blob, name)
        if size[0] * size[1] > MAX_IMAGE_PIXELS:
            raise DataError(f"{name}: declares {size[0]}x{size[1]} pixels, more than {MAX_IMAGE_PIXELS:,}")
        if self.first is None:
            self.first = (name, size)
        elif size != self.first[1]:
            raise DataError(_size_message(self.first[0], self.first[1], name, size))


def _png_or_jpeg_size(blob: bytes) -> tuple[int, int] | None:
    """(width, height) from a PNG's IHDR or a JPEG's frame header, ~50x faster than Pillow; None otherwise."""
    if blob[:8] == b"\x89PNG\r\n\x1a\n" and blob[12:16] == b"IHDR" and len(blob) >= 24:
        return struct.unpack(">II", blob[16:24])
    pos = 2 if blob[:2] == _JPEG_MAGIC else len(blob)
    while pos + 9 <= len(blob) and blob[pos] == 0xFF:
        marker = blob[pos + 1]
        if marker == 0xFF or 0xD0 <= marker <= 0xD8 or marker == 0x01:  # fill byte, or a marker without length
            pos += 1 if marker == 0xFF else 2
            continue
        if 0xC0 <= marker <= 0xCF and marker not in (0xC4, 0xC8, 0xCC):  # a start-of-frame marker
            height, width = struct.unpack(">HH", blob[pos + 5 : pos + 9])
            return width, height
        pos += 2 + int.from_bytes(blob[pos + 2 : pos + 4], "big")
    return None


def _pillow_size(blob: bytes, name: str) -> tuple[int, int]:
    """(width, height) as Pillow reads the header (every other format); DataError when it cannot."""
    from PIL import Image

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            with Image.open(io.BytesIO(blob)) as image:
                return image.size
    except Image.DecompressionBombError as exc:
        raise DataError(f"{name}: declares more than {MAX_IMAGE_PIXELS:,} pixels ({exc})") from None
    except (OSError, ValueError, SyntaxError, EOFError, struct.error) as exc:
        raise DataError(f"{name}: cannot decode image ({exc})") from None


def _size_message(first: str, first_wh: tuple[int, int], name: str, wh: tuple[int, int]) -> str:
    return (
        f"images differ in size: {first} is {first_wh[0]}x{first_wh[1]} (WxH), {name} is {wh[0]}x{wh[1]}; "
        "resize them to one size first"
    )


def _as_uint8(tensor):
    """8-bit pixels as they are; 16-bit ones (a 16-bit PNG) scaled to 0-255 with rounding."""
    import torch

    if tensor.dtype == torch.uint8:
        return tensor
    return ((tensor.to(torch.int64) * 255 + 32767) // 65535).clamp(0, 255).to(torch.uint8)


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
            if image.mode.startswith("I"):  # 16-bit grey: Pillow's convert("RGB") would clip, not scale
                grey = torch.from_numpy(np.asarray(image, dtype=np.int64).clip(0, 65535))
                return _as_uint8(grey.expand(3, -1, -1))
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
            raise DataError(_size_message(names[0], (first[2], first[1]), name, (image.shape[2], image.shape[1])))
    return torch.stack(images).permute(0, 2, 3, 1).contiguous().numpy()


def read_idx(path: Path, ndim: int) -> np.ndarray:
    """An IDX file of unsigned bytes (MNIST's format, optionally .gz) as an array shaped as its header says.

    Only as many bytes as the header declares are read, in chunks, so a .gz of zeros or a header declaring more than
    the file holds costs no more memory than the data really there.
    """
    try:
        with _open_idx(path) as f:
            dims = _idx_dims(f.read(4 + 4 * ndim), path, ndim)
            expected = int(np.prod(dims, dtype=object))
            raw = bytearray()
            while len(raw) < expected and (chunk := f.read(min(expected - len(raw), _IDX_CHUNK))):
                raw += chunk
            extra = len(f.read(1))
    except (EOFError, zlib.error, gzip.BadGzipFile) as exc:
        raise DataError(f"{path}: corrupt or truncated gzip file ({exc})") from None
    if len(raw) != expected or extra:
        got = f"{len(raw)}{'+' if extra else ''}"
        raise DataError(f"{path}: truncated IDX file: {got} data bytes, header says {expected}")
    return np.frombuffer(raw, np.uint8).reshape(dims)  # a bytearray: writable without a copy


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
