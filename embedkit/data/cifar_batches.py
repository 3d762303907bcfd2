"""CIFAR-10's python batches (torchvision's `cifar-10-batches-py/`), read without running code from the data root.

The batches are pickles, and unpickling can call anything the stream names. So each file's md5 is checked against
torchvision's list of the published files first, and the unpickler then builds only what the batches hold (dicts,
lists, bytes, text, numbers and NumPy arrays): any other class or function in the stream is refused.
"""

from __future__ import annotations

import io
import pickle
from pathlib import Path

import numpy as np

from embedkit.errors import DataError

BATCHES = {"train": [f"data_batch_{i}" for i in range(1, 6)], "test": ["test_batch"]}
META = "batches.meta"
# What NumPy's own pickles of arrays call (protocol 2 and protocol 5), looked up from NumPy rather than by name.
_NUMPY_BUILDERS = {
    "_reconstruct": np.zeros(1).__reduce_ex__(2)[0],
    "_frombuffer": np.zeros(1).__reduce_ex__(5)[0],
    "ndarray": np.ndarray,
    "dtype": np.dtype,
}


class _BatchUnpickler(pickle.Unpickler):
    """An unpickler that resolves only NumPy's array builders: anything else in the stream is refused."""

    def find_class(self, module: str, name: str):
        if module.split(".")[0] == "numpy" and name in _NUMPY_BUILDERS:
            return _NUMPY_BUILDERS[name]
        raise pickle.UnpicklingError(f"refused to load {module}.{name} (a CIFAR-10 batch holds only arrays)")


def read_class_names(folder: Path) -> tuple[str, ...]:
    """The class names in `batches.meta`, md5-checked first."""
    names = _read_pickle(folder / META).get("label_names")
    if not isinstance(names, list) or not all(isinstance(name, str) for name in names):
        raise DataError(f"{folder / META}: no list of class names under 'label_names'")
    return tuple(names)


def read_split(folder: Path, split: str) -> tuple[np.ndarray, np.ndarray, tuple[str, ...]]:
    """One split: images (N, 32, 32, 3) uint8, labels (N,) int64 and class names, every file md5-checked first."""
    class_names = read_class_names(folder)
    images, labels = [], []
    for name in BATCHES[split]:
        batch = _read_pickle(folder / name)
        data, batch_labels = batch.get("data"), batch.get("labels")
        if not isinstance(data, np.ndarray) or data.dtype != np.uint8 or data.ndim != 2 or data.shape[1] != 3072:
            raise DataError(f"{folder / name}: 'data' is not an (N, 3072) uint8 array")
        if not isinstance(batch_labels, list) or len(batch_labels) != len(data):
            raise DataError(f"{folder / name}: 'labels' is not a list of {len(data)} labels")
        images.append(data.reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1))
        labels.append(np.asarray(batch_labels, dtype=np.int64))
    labels_all = np.concatenate(labels)
    if len(labels_all) and not 0 <= labels_all.min() <= labels_all.max() < len(class_names):
        raise DataError(f"{folder}: labels outside 0..{len(class_names) - 1}")
    return np.ascontiguousarray(np.concatenate(images)), labels_all, class_names


def _read_pickle(path: Path) -> dict:
    """A batch file as a dict: its md5 must be torchvision's for that file, then it is unpickled restrictedly."""
    from torchvision.datasets import cifar

    known = {name: md5 for name, md5 in cifar.CIFAR10.train_list + cifar.CIFAR10.test_list}
    known[cifar.CIFAR10.meta["filename"]] = cifar.CIFAR10.meta["md5"]
    if not cifar.check_integrity(str(path), known[path.name]):
        raise DataError(f"{path}: missing, or not torchvision's CIFAR-10 file (md5 mismatch); nothing was loaded")
    try:
        content = _BatchUnpickler(io.BytesIO(path.read_bytes()), encoding="latin1").load()
    except (pickle.UnpicklingError, EOFError, ValueError, TypeError, AttributeError, IndexError, KeyError) as exc:
        raise DataError(f"{path}: not a CIFAR-10 batch ({exc})") from None
    if not isinstance(content, dict):
        raise DataError(f"{path}: not a CIFAR-10 batch (holds a {type(content).__name__}, not a dict)")
    return content
