"""Retrieval grids: for a few query images, their k nearest and k farthest images in the same group.

Queries are chosen per class with a seed, by `ids`, so several stores of the same split show the same queries.
Images come from `embedkit.data.sources.load_images(attrs dataset, attrs split)`, indexed by the group's `ids`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from embedkit.data.sources import KNOWN_DATASETS, image_digest, load_images
from embedkit.errors import DataError, SearchError, about
from embedkit.eval.plots import distinct_decimals, plot_image_grid
from embedkit.provenance import model_label
from embedkit.search.index import knn
from embedkit.store.store import class_name, open_store


def pick_queries(labels: np.ndarray, per_class: int, seed: int = 0) -> np.ndarray:
    """Rows (Q,) of `per_class` seeded random rows of each label value (fewer if a class is smaller), by class."""
    if per_class < 1:
        raise SearchError(f"per_class={per_class}: pick at least one query per class")
    rng = np.random.default_rng(seed)
    picked = []
    for label in np.unique(labels):
        members = np.flatnonzero(labels == label)
        picked.append(np.sort(rng.choice(members, min(per_class, len(members)), replace=False)))
    return np.concatenate(picked) if picked else np.zeros(0, np.int64)


@dataclass(frozen=True)
class Retrieval:
    """Queries of one store group and their neighbours, as the group's ids (Q,), (Q, k) and distances (Q, k)."""

    name: str
    group: str
    k: int
    query_ids: np.ndarray = field(repr=False)
    query_labels: np.ndarray = field(repr=False)
    nearest_ids: np.ndarray = field(repr=False)
    nearest_labels: np.ndarray = field(repr=False)
    nearest_distances: np.ndarray = field(repr=False)
    farthest_ids: np.ndarray = field(repr=False)
    farthest_labels: np.ndarray = field(repr=False)
    farthest_distances: np.ndarray = field(repr=False)
    attrs: dict = field(repr=False, default_factory=dict)

    @property
    def model(self) -> str:
        """The model behind the group's embeddings, from its provenance, for tables."""
        return model_label(self.attrs, self.name)

    @property
    def nearest_same_class(self) -> float:
        """Share of the nearest images that are of their query's class."""
        return float((self.nearest_labels == self.query_labels[:, None]).mean())

    @property
    def farthest_same_class(self) -> float:
        """Share of the farthest images that are of their query's class."""
        return float((self.farthest_labels == self.query_labels[:, None]).mean())

    def to_dict(self) -> dict:
        """Ids, labels and distances as lists (what `--json` prints for this store)."""
        return {
            "store": self.name,
            "group": self.group,
            "k": self.k,
            "queries": [
                {
                    "id": int(self.query_ids[q]),
                    "label": int(self.query_labels[q]),
                    "nearest_ids": self.nearest_ids[q].tolist(),
                    "nearest_distances": self.nearest_distances[q].tolist(),
                    "farthest_ids": self.farthest_ids[q].tolist(),
                    "farthest_distances": self.farthest_distances[q].tolist(),
                }
                for q in range(len(self.query_ids))
            ],
        }


def retrieve_store(
    store_path: Path | str,
    group: str,
    k: int,
    *,
    per_class: int = 1,
    seed: int = 0,
    query_ids: np.ndarray | None = None,
) -> Retrieval:
    """Nearest and farthest neighbours in `group` of `query_ids` (default: `pick_queries` of the group's labels)."""
    data = open_store(store_path).read(group)
    if query_ids is None:
        query_rows = pick_queries(data.labels, per_class, seed)
    else:
        query_rows = data.rows_of_ids(
            query_ids, f"group '{group}' of {store_path} (the stores compared must hold the same images)"
        )
    with about(store_path, group):
        near_d, near = knn(data.embeddings, data.embeddings[query_rows], k, self_rows=query_rows)
        far_d, far = knn(data.embeddings, data.embeddings[query_rows], k, self_rows=query_rows, farthest=True)
    return Retrieval(
        name=Path(store_path).stem,
        group=group,
        k=k,
        query_ids=data.ids[query_rows],
        query_labels=data.labels[query_rows],
        nearest_ids=data.ids[near],
        nearest_labels=data.labels[near],
        nearest_distances=near_d,
        farthest_ids=data.ids[far],
        farthest_labels=data.labels[far],
        farthest_distances=far_d,
        attrs=data.attrs,
    )


def retrieve_stores(stores: list[Path], group: str, k: int, *, per_class: int = 1, seed: int = 0) -> list[Retrieval]:
    """`retrieve_store` on each store with the same queries (chosen by id in the first), to compare models."""
    first = retrieve_store(stores[0], group, k, per_class=per_class, seed=seed)
    return [first] + [retrieve_store(path, group, k, query_ids=first.query_ids) for path in stores[1:]]


def load_group_images(
    attrs: dict, ids: np.ndarray, data_root: Path | None = None, cache: dict | None = None
) -> np.ndarray:
    """The source images (len(ids), H, W, C) uint8 of a group's `ids`, from its attrs `dataset` and `split`.

    A known dataset (cifar10, mnist) is found under the data root; any other from the absolute path `encode`
    recorded in attrs `source`, never by a name relative to the current folder. When attrs hold `source_digest`,
    the images must still be those that were encoded. `cache` (optional dict) keeps each decoded split.
    """
    dataset, split = attrs.get("dataset"), attrs.get("split")
    if not dataset or not split:
        raise DataError("the group's attrs name no source dataset/split, so its images cannot be shown")
    where = _image_source(str(dataset), attrs.get("source"), KNOWN_DATASETS)
    key = (where, str(split))
    cache = {} if cache is None else cache
    if key not in cache:
        try:
            image_set = load_images(where, str(split), data_root)
        except DataError as exc:
            raise DataError(f"images of {dataset} {split} are needed to draw the figure: {exc}") from None
        if attrs.get("source_digest") and image_digest(image_set) != attrs["source_digest"]:
            raise DataError(
                f"{image_set.source}: the images of {dataset} {split} changed since they were encoded "
                "(their digest differs from the group's source_digest); re-encode them"
            )
        cache[key] = image_set.images
    images = cache[key]
    ids = np.asarray(ids)
    if len(ids) and (ids.min() < 0 or ids.max() >= len(images)):
        raise DataError(f"ids up to {ids.max()} do not fit {dataset} {split}, which has {len(images)} images")
    return images[ids]


def _image_source(dataset: str, source: str | None, known: dict) -> str:
    """What `load_images` is given: a known dataset's name, else the recorded absolute path of the images."""
    if dataset in known:
        return dataset
    if source:
        return str(source)
    if not Path(dataset).is_absolute():
        raise DataError(
            f"the group records no path for its images of {dataset!r} (a store from before sources "
            "were recorded), and a name relative to the current folder could be other images; re-encode"
        )
    return dataset


def draw_retrieval(results: list[Retrieval], out_path: Path, *, data_root: Path | None = None) -> Path:
    """One grid row per query and store (a query's stores on adjacent rows): query | k nearest | k farthest.

    Each image is captioned with its class name, neighbours also with their distance.
    """
    cache: dict = {}
    rows = []
    images = []
    for r in results:
        ids = np.concatenate([r.query_ids, r.nearest_ids.ravel(), r.farthest_ids.ravel()])
        images.append(dict(zip(ids.tolist(), load_group_images(r.attrs, ids, data_root, cache))))
    for q in range(len(results[0].query_ids)):
        for r, by_id in zip(results, images):
            query_class = class_name(r.attrs, int(r.query_labels[q]))
            label = f"{r.name}\n{query_class}" if len(results) > 1 else query_class
            rows.append((label, _row_cells(r, q, by_id)))
    k = results[0].k
    return plot_image_grid(
        rows,
        out_path,
        column_titles=["query", "", "nearest →"] + [""] * k + ["farthest →"],
        title=f"{results[0].group}: {k} nearest and {k} farthest (L2). The farthest are the few images at the rim "
        "of the embedding, so they repeat from query to query",
    )


def _row_cells(r: Retrieval, q: int, by_id: dict) -> list:
    """Grid cells of query `q`: the query, a gap, its nearest, a gap, its farthest."""
    cells = [(by_id[int(r.query_ids[q])], class_name(r.attrs, int(r.query_labels[q]))), (None, "")]
    for ids, labels, distances in (
        (r.nearest_ids, r.nearest_labels, r.nearest_distances),
        (r.farthest_ids, r.farthest_labels, r.farthest_distances),
    ):
        digits = distinct_decimals(distances[q])
        cells += [
            (by_id[int(i)], f"{class_name(r.attrs, int(c))}\n{d:.{digits}f}")
            for i, c, d in zip(ids[q], labels[q], distances[q])
        ]
        cells.append((None, ""))
    return cells[:-1]
