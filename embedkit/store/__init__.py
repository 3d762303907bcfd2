"""The HDF5 embedding store: one file, a group per dataset split (embeddings, labels, ids, provenance).

>>> import embedkit
>>> with embedkit.open_store("store.h5") as store:      # doctest: +SKIP
...     train = store["cifar10/train"]                   # .embeddings .labels .ids .attrs
"""

from typing import TYPE_CHECKING

from embedkit._util.lazy import lazy_exports

if TYPE_CHECKING:  # for type checkers and IDEs; at run time each name loads on first use
    from embedkit.store.store import GroupData, Store, open_store

__all__ = ["GroupData", "Store", "open_store"]

__getattr__, __dir__ = lazy_exports(
    __name__,
    {
        "GroupData": "embedkit.store.store",
        "Store": "embedkit.store.store",
        "open_store": "embedkit.store.store",
    },
)
