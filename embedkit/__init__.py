"""embedkit: train a self-supervised encoder, store its embeddings, search, probe and debug them.

Heavy dependencies (torch, faiss, matplotlib) are imported by the modules that need them, so importing
``embedkit`` itself is cheap.
"""

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
]


def open_store(*args, **kwargs):  # noqa: D103 - documented in embedkit.store.open_store
    from embedkit.store import open_store as _open_store

    return _open_store(*args, **kwargs)


open_store.__doc__ = "Open an HDF5 embedding store; see `embedkit.store.open_store`."
