"""embedkit: train a self-supervised encoder, store its embeddings, search, probe and debug them.

The names below load on first use (PEP 562), so `import embedkit` is instant and imports neither torch nor faiss.

Store and search
    open_store(path)            an HDF5 embedding store: store[group], store.neighbors(group, k), store.add(...)
    knn(reference, queries, k)  exact k-nearest (or farthest) search on arrays: (distances, rows)
Evaluate
    KNNDetector(k)              kNN-density anomaly scores with PyOD's interface: fit(X), decision_function(Q)
    linear_probe(...)           linear and kNN classifiers on frozen embeddings
Train and encode
    TrainConfig, train(...)     VICReg training; make_config(preset) for the cpu/gpu presets
    vicreg_loss(z1, z2)         the loss and its invariance, variance and covariance terms
    encode(encoder, images)     images -> embeddings with a trained encoder
Errors
    EmbedkitError and its kinds (DataError, StoreError, SearchError, CheckpointError, ConfigError)

Example:

    >>> import numpy as np, embedkit
    >>> x = np.array([[0.0, 0.0], [1.0, 0.0], [5.0, 0.0]], dtype=np.float32)
    >>> distances, rows = embedkit.knn(x, x, 1, exclude_self=True)
    >>> rows.ravel().tolist()
    [1, 0, 1]

Subpackages, one concept each: embedkit.data, .store, .search, .training, .baselines, .eval, .study.
"""

from __future__ import annotations

import importlib
from typing import Any

from embedkit.errors import (
    CheckpointError,
    ConfigError,
    DataError,
    EmbedkitError,
    SearchError,
    StoreError,
)

__version__ = "0.1.0"

# public name -> (module, attribute): loaded on first access
_LAZY = {
    "open_store": ("embedkit.api", "open_store"),
    "Store": ("embedkit.api", "Store"),
    "knn": ("embedkit.search.arrays", "knn"),
    "KNNDetector": ("embedkit.eval.detector", "KNNDetector"),
    "linear_probe": ("embedkit.eval.probe", "linear_probe"),
    "train": ("embedkit.training.loop", "train"),
    "TrainConfig": ("embedkit.training.config", "TrainConfig"),
    "make_config": ("embedkit.training.config", "make_config"),
    "vicreg_loss": ("embedkit.training.losses", "vicreg_loss"),
    "encode": ("embedkit.training.encode", "encode_images"),
}

__all__ = ["CheckpointError", "ConfigError", "DataError", "EmbedkitError", "SearchError", "StoreError",
           "__version__", *sorted(_LAZY)]


def __getattr__(name: str) -> Any:
    if name not in _LAZY:
        raise AttributeError(f"module 'embedkit' has no attribute {name!r}")
    module, attribute = _LAZY[name]
    value = getattr(importlib.import_module(module), attribute)
    globals()[name] = value  # later lookups skip this function
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY))
