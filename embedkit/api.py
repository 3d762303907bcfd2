"""The store a notebook opens: `embedkit.open_store(path)` reads groups and searches them in one object.

`embedkit.store.Store` is the HDF5 file (groups, validated reads, atomic writes); the `Store` here adds the
questions people ask of it (neighbours, pairs, saved indexes, adding embeddings from memory), so one import does.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from embedkit.errors import SearchError
from embedkit.search.approximate import DEFAULT_RECALL
from embedkit.search.arrays import check_query
from embedkit.search.index import GroupIndex, NeighborResult, make_pairs, neighbors, open_group_index
from embedkit.store.store import GroupData
from embedkit.store.store import Store as StoreFile
from embedkit.store.store import open_store as open_store_file


class Store(StoreFile):
    """An embedding store: `store[group]`, `len(store)`, `group in store`, `for group in store`, `with`.

        >>> import numpy as np, embedkit
        >>> store = embedkit.open_store("demo.h5", create=True)                    # doctest: +SKIP
        >>> store.add("mine/train", np.random.rand(100, 8), labels=np.arange(100) % 3)   # doctest: +SKIP
        >>> store.neighbors("mine/train", k=3).ids.shape                           # doctest: +SKIP
        (100, 3)

    Nothing stays open between calls (each read or write opens the file and closes it), so a `with` block only
    scopes the name; the file may be read by other processes meanwhile.
    """

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc: object) -> None:
        return None

    def __getitem__(self, group: str) -> GroupData:
        """The whole group in memory: `.embeddings` (N, D) float32, `.labels`, `.ids` (N,) int64, `.attrs`."""
        return self.read(group)

    def __len__(self) -> int:
        return len(self.groups())

    def __iter__(self) -> Iterator[str]:
        return iter(self.groups())

    def add(
        self,
        group: str,
        embeddings: np.ndarray,
        labels: np.ndarray | None = None,
        ids: np.ndarray | None = None,
        attrs: dict[str, Any] | None = None,
        *,
        overwrite: bool = False,
    ) -> str:
        """Write embeddings (N, D) from memory as a new group, atomically; returns its content id.

        `labels` (N,) int (-1 for unknown) and `ids` (N,) unique int default to -1 and 0..N-1.
        """
        return self.write_group(group, embeddings, labels, ids, attrs, overwrite=overwrite)

    def neighbors(
        self,
        group: str,
        k: int,
        *,
        farthest: bool = False,
        ids: Any = None,
        queries: np.ndarray | None = None,
        query_group: str | None = None,
        metric: str = "l2",
        index: str = "flat",
        recall: float = DEFAULT_RECALL,
        engine: str = "local",
        ray_address: str | None = None,
    ) -> NeighborResult:
        """The k nearest (or farthest) rows of `group`, with their `ids` and true distances, nearest first.

        Queries are, by default, every row of `group` (a row is never its own neighbour); `ids` picks some of
        them by id; `query_group` takes them from another group; `queries` (Q, D) searches arbitrary vectors.
        `metric`: "l2" (Euclidean, not squared) or "cosine" (1 - cos); `index`: "flat" (exact), "hnsw", "ivf", or
        "auto" (flat for small groups, else IVF tuned to `recall`; the result's `recall_estimate` says how close).
        `engine="ray"` runs the exact search on Ray actors (`ray_address`: a cluster; None: an embedded Ray).
        """
        if queries is None:
            return neighbors(
                self.path,
                group,
                k,
                farthest=farthest,
                query_group=query_group,
                query_ids=ids,
                metric=metric,
                index_kind=index,
                recall=recall,
                engine=engine,
                ray_address=ray_address,
            )
        if ids is not None or query_group is not None:
            raise SearchError("pass either `queries` or `ids`/`query_group`, not both")
        if engine != "local" or index == "auto":
            raise SearchError("`queries` are searched locally with index flat, hnsw or ivf (not auto or Ray)")
        searcher = self.index(group, index, metric=metric, farthest=farthest)
        queries = np.atleast_2d(np.asarray(queries, dtype=np.float32))
        check_query(
            len(searcher.data.ids),
            searcher.reference.shape[1],
            queries,
            k,
            exclude_self=False,
            where=f"group '{group}' of {self.path}",
        )
        distances, rows = searcher.search(queries, k)
        ref = searcher.data
        return NeighborResult(
            group,
            "",
            k,
            farthest,
            metric,
            index,
            searcher.status,
            np.arange(len(queries)),
            np.full(len(queries), -1, np.int64),
            ref.ids[rows],
            rows,
            ref.labels[rows],
            distances,
            ref.content_id,
            ref.class_names,
        )

    def pairs(self, group: str, k: int, out: Path | str, *, metric: str = "l2") -> Path:
        """Write each row's k nearest other rows to the pairs file `out` (neighbour-positive training); its path."""
        return make_pairs(self.path, group, k, out, metric=metric)

    def index(self, group: str, kind: str = "flat", *, metric: str = "l2", farthest: bool = False) -> GroupIndex:
        """A searcher loaded (or built and saved beside the store) once: `.search(queries, k)` many times."""
        return open_group_index(self.path, group, metric=metric, kind=kind, farthest=farthest)


def open_store(path: Path | str, *, create: bool = False) -> Store:
    """Open the store at `path` (`create=True`: a new, empty one if it does not exist).

    >>> import embedkit
    >>> with embedkit.open_store("embedkit-work/store.h5") as store:      # doctest: +SKIP
    ...     print(store.groups(), len(store["cifar10/train"].ids))
    """
    checked = open_store_file(path, create=create)  # validates the file and every group's layout
    return Store(checked.path, checked.lock_timeout_s)
