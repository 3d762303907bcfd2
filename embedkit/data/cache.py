"""The cache of decoded images: one .npy of pixels and one small .npz of labels per dataset split and source state.

Files live in `$EMBEDKIT_CACHE`, else the per-user cache folder, named `<dataset>-<split>-<path hash>-<state hash>`;
the state (archive size and mtime, or every image's size and mtime) changes whenever the source does, so a stale
entry is never read. Writes are atomic (temporary file, then `os.replace`) and replace older entries of the same
source; temporary files of writers that died are removed by the next write. A cache that cannot be written only costs
a warning.
"""

from __future__ import annotations

import hashlib
import os
import warnings
import zipfile
from pathlib import Path

import numpy as np

from embedkit._util.atomic import atomic_path, remove_crashed_temps

CACHE_FORMAT = 1  # bump when the decoded arrays would differ, so old entries are never read


def resolve_cache_dir() -> Path:
    """`$EMBEDKIT_CACHE`, else the per-user cache folder."""
    if os.environ.get("EMBEDKIT_CACHE"):
        return Path(os.environ["EMBEDKIT_CACHE"]).expanduser()
    from platformdirs import user_cache_dir

    return Path(user_cache_dir("embedkit"))


def cache_stem(name: str, split: str, source: Path, state: str) -> Path:
    """The cache entry's path without suffix, for one split of one source in one state."""
    where = hashlib.sha1(str(Path(source).resolve()).encode()).hexdigest()[:8]
    what = hashlib.sha1(f"{CACHE_FORMAT}\0{state}".encode()).hexdigest()[:12]
    return resolve_cache_dir() / f"{name}-{split}-{where}-{what}"


def read_cache(stem: Path) -> tuple[np.ndarray, np.ndarray, tuple[str, ...]] | None:
    """(images (N,H,W,C) uint8, labels (N,) int64, class_names), or None when absent or unreadable."""
    meta = read_cached_labels(stem)
    if meta is None:
        return None
    try:
        images = np.load(stem.with_name(stem.name + ".npy"), allow_pickle=False)
    except (OSError, ValueError, EOFError):
        return None
    return (images, *meta) if len(images) == len(meta[0]) else None


def read_cached_labels(stem: Path) -> tuple[np.ndarray, tuple[str, ...]] | None:
    """(labels, class_names) of a cache entry without reading its pixels; None when absent or unreadable."""
    path = stem.with_name(stem.name + ".labels.npz")
    if not path.is_file():
        return None
    try:
        with np.load(path, allow_pickle=False) as meta:
            return meta["labels"].astype(np.int64), tuple(str(name) for name in meta["class_names"])
    except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile):
        return None


def write_cache(stem: Path, images: np.ndarray, labels: np.ndarray, class_names: tuple[str, ...]) -> None:
    """Write an entry atomically (pixels first, labels last: the labels file marks a complete entry)."""
    try:
        stem.parent.mkdir(parents=True, exist_ok=True)
        _replace_atomically(stem.with_name(stem.name + ".npy"), lambda f: np.save(f, images))
        _replace_atomically(
            stem.with_name(stem.name + ".labels.npz"),
            lambda f: np.savez(f, labels=labels, class_names=np.array(class_names, dtype=str)),
        )
    except OSError as exc:
        warnings.warn(f"could not cache decoded images in {stem.parent}: {exc}", stacklevel=3)
        return
    _remove_older_entries(stem)


def _replace_atomically(path: Path, write) -> None:
    """Write through a temp file named after the writer's pid; `atomic_path` first removes temps of dead writers,
    so a cache write killed midway leaves nothing behind for long."""
    with atomic_path(path) as tmp, open(tmp, "wb") as f:
        write(f)


def _remove_older_entries(stem: Path) -> None:
    """Entries of the same dataset, split and source in an older state are dead weight, and so are the temp files
    that writers of any state left when they died."""
    prefix = stem.name.rsplit("-", 1)[0] + "-"
    for old in stem.parent.iterdir():
        if old.name.startswith(prefix) and not old.name.startswith(stem.name + "."):
            old.unlink(missing_ok=True)
        elif old.name.startswith("." + prefix) and ".tmp-" in old.name:
            remove_crashed_temps(old.with_name(old.name[1:].rsplit(".tmp-", 1)[0]), locked=False)
