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

from embedkit._util.lazy import lazy_exports
from embedkit.errors import (
    CheckpointError,
    ConfigError,
    DataError,
    EmbedkitError,
    SearchError,
    StoreError,
)

__version__ = "0.1.0"

__all__ = [
    "CheckpointError",
    "ConfigError",
    "DataError",
    "EmbedkitError",
    "SearchError",
    "StoreError",
    "__version__",
    "open_store",
    "Store",
    "knn",
    "KNNDetector",
    "linear_probe",
    "train",
    "TrainConfig",
    "make_config",
    "vicreg_loss",
    "encode",
]

__getattr__, __dir__ = lazy_exports(
    __name__,
    {
        "open_store": "embedkit.api",
        "Store": "embedkit.api",
        "knn": "embedkit.search.arrays",
        "KNNDetector": "embedkit.eval.detector",
        "linear_probe": "embedkit.eval.probe",
        "train": "embedkit.training.loop",
        "TrainConfig": "embedkit.training.config",
        "make_config": "embedkit.training.config",
        "vicreg_loss": "embedkit.training.losses",
        "encode": "embedkit.training.encode:encode_images",
    },
)
