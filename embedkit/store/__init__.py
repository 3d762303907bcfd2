"""The HDF5 embedding store: one file, a group per dataset split (embeddings, labels, ids, provenance).

    >>> import embedkit
    >>> with embedkit.open_store("store.h5") as store:      # doctest: +SKIP
    ...     train = store["cifar10/train"]                   # .embeddings .labels .ids .attrs
"""

from embedkit.store.store import GroupData, Store, open_store

__all__ = ["GroupData", "Store", "open_store"]
