"""The explorer: one self-contained, offline HTML page to browse a store group's embeddings.

The page holds everything it shows (no server, no network): each point's 2-D map position (PCA or t-SNE), class,
k-means cluster and kNN anomaly score, its k nearest and k farthest images with their exact L2 distances, and a
small thumbnail of every image it can show, as `data:` URIs. With several stores (models of the same images), the
page switches between them. The drawing code lives in `explore.html` beside this module.
"""

from __future__ import annotations

import base64
import io
import json
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

import numpy as np

from embedkit._util.atomic import atomic_path, check_output
from embedkit._util.progress import ProgressFn, offset_progress
from embedkit._util.sampling import seeded_rows
from embedkit.errors import ConfigError, about
from embedkit.eval.cluster import cluster_embeddings
from embedkit.eval.maps import MAP_MAX_POINTS, map_steps, project_2d
from embedkit.eval.retrieval import load_group_images
from embedkit.search.arrays import knn
from embedkit.store.store import GroupData, class_names_of, open_store

EXPLORE_K = 5
EXPLORE_CLUSTERS = 10
THUMB_MAX_SIDE = 48  # CIFAR-10 (32 px) and MNIST (28 px) stay as they are; larger images shrink to this
THUMB_JPEG_QUALITY = 85
DATA_MARK = "__EMBEDKIT_EXPLORER_DATA__"


@dataclass(frozen=True)
class ExplorerPage:
    """What `write_explorer` wrote: the page, its size, and how much it holds."""

    path: Path
    group: str
    method: str
    models: tuple[str, ...]
    n_points: int
    n_total: int
    n_images: int
    k: int
    size_bytes: int

    def to_dict(self) -> dict:
        """The fields as JSON-ready values (what `embedkit explore --json` prints)."""
        return {
            "page": str(self.path),
            "group": self.group,
            "method": self.method,
            "models": list(self.models),
            "points": self.n_points,
            "total": self.n_total,
            "images": self.n_images,
            "k": self.k,
            "size_bytes": self.size_bytes,
        }


def thumbnail_uri(image: np.ndarray, max_side: int = THUMB_MAX_SIDE) -> str:
    """A `data:` URI of `image` (H, W, C) uint8, C 1 or 3: the smaller of a PNG and a JPEG, at most `max_side` px."""
    from PIL import Image

    picture = Image.fromarray(image[..., 0] if image.shape[-1] == 1 else image)
    if max(picture.size) > max_side:
        picture.thumbnail((max_side, max_side))
    encoded = {}
    for kind, options in (("png", {"optimize": True}), ("jpeg", {"quality": THUMB_JPEG_QUALITY})):
        buffer = io.BytesIO()
        picture.save(buffer, format=kind, **options)
        encoded[kind] = buffer.getvalue()
    kind = min(encoded, key=lambda name: len(encoded[name]))
    return f"data:image/{kind};base64,{base64.b64encode(encoded[kind]).decode('ascii')}"


def _neighbors(embeddings: np.ndarray, rows: np.ndarray, k: int, farthest: bool) -> tuple[np.ndarray, np.ndarray]:
    """Exact (distances, rows) (M, k) of the group's `rows`, never themselves; every row: the self-join that
    `embedkit neighbors` runs."""
    if len(rows) == len(embeddings):
        return knn(embeddings, embeddings, k, exclude_self=True, farthest=farthest)
    return knn(embeddings, embeddings[rows], k, farthest=farthest, self_rows=rows)


def _model(
    name: str,
    data: GroupData,
    rows: np.ndarray,
    method: str,
    k: int,
    n_clusters: int,
    seed: int,
    on_progress: ProgressFn | None = None,
) -> dict:
    """One model's part of the page: map, clusters, anomaly scores and neighbours (as ids) of the group's `rows`.
    `on_progress` follows the map (`project_2d`)."""
    x = data.embeddings[rows]
    xy = project_2d(x, method, seed=seed, on_progress=on_progress)
    near_d, near = _neighbors(data.embeddings, rows, k, farthest=False)
    far_d, far = _neighbors(data.embeddings, rows, k, farthest=True)
    clusters = cluster_embeddings(
        x, min(n_clusters, len(x) - 1), data.labels[rows], seed=seed, silhouette_max_points=1000
    )
    return {
        "name": name,
        "xy": np.round(xy.astype(np.float64), 4).ravel().tolist(),
        "cluster": clusters.assignments.tolist(),
        "cluster_ari": clusters.ari,
        # The anomaly score of `embedkit anomaly` with the group as its own reference, left out of itself.
        "score": np.round(near_d.mean(axis=1, dtype=np.float64), 6).tolist(),
        "near": data.ids[near].ravel().tolist(),
        "near_d": np.round(near_d.astype(np.float64), 6).ravel().tolist(),
        "far": data.ids[far].ravel().tolist(),
        "far_d": np.round(far_d.astype(np.float64), 6).ravel().tolist(),
    }


def explorer_data(
    stores: list[Path],
    group: str,
    *,
    method: str = "pca",
    k: int = EXPLORE_K,
    n_clusters: int = EXPLORE_CLUSTERS,
    max_points: int = MAP_MAX_POINTS,
    seed: int = 0,
    data_root: Path | None = None,
    on_progress: ProgressFn | None = None,
) -> dict:
    """Everything the page shows, as a JSON-ready dict; the points are a seeded sample of at most `max_points`
    rows of the first store's group, found by id in the others (which must hold the same images).
    `on_progress(done, total)` counts per store the map's steps (`map_steps`) and one for neighbours and
    clusters, then one for the thumbnails."""
    if not stores:
        raise ConfigError("explore needs at least one store")
    if max_points < 3:
        raise ConfigError(f"max_points={max_points}: a map needs at least 3 points")
    first = open_store(stores[0]).read(group)
    rows = seeded_rows(len(first.ids), max_points, seed)
    ids = first.ids[rows]
    models = []
    per_store = map_steps(method) + 1
    total = len(stores) * per_store + 1
    report = on_progress or (lambda done, total: None)
    for i, path in enumerate(stores):
        report(i * per_store, total)
        data = first if path == stores[0] else open_store(path).read(group)
        where = f"group '{group}' of {path} (the stores explored together must hold the same images)"
        part = offset_progress(on_progress, i * per_store, total)
        with about(path, group):
            rows_here = data.rows_of_ids(ids, where)
            models.append(_model(Path(path).stem, data, rows_here, method, k, n_clusters, seed, part))
    report(total - 1, total)
    shown = np.unique(np.concatenate([ids] + [np.asarray(m[key]) for m in models for key in ("near", "far")]))
    images = load_group_images(first.attrs, shown, data_root)
    report(total, total)
    shown_labels = first.labels[first.rows_of_ids(shown, f"group '{group}' of {stores[0]}")]
    return {
        "group": group,
        "method": method,
        "k": k,
        "n_total": len(first.ids),
        "class_names": list(class_names_of(first.attrs)),
        "ids": ids.tolist(),
        "labels": first.labels[rows].tolist(),
        "image_ids": shown.tolist(),
        "image_labels": shown_labels.tolist(),
        "images": [thumbnail_uri(image) for image in images],
        "models": models,
    }


def render_explorer(data: dict) -> str:
    """The page's HTML: the template with `data` inlined as JSON (`<` escaped, so no text can close the script)."""
    template = resources.files("embedkit.eval").joinpath("explore.html").read_text(encoding="utf-8")
    payload = json.dumps(data, separators=(",", ":"), allow_nan=False).replace("<", "\\u003c")
    return template.replace(DATA_MARK, payload)


def write_explorer(
    stores: list[Path],
    group: str,
    out_path: Path,
    *,
    method: str = "pca",
    k: int = EXPLORE_K,
    n_clusters: int = EXPLORE_CLUSTERS,
    max_points: int = MAP_MAX_POINTS,
    seed: int = 0,
    data_root: Path | None = None,
    on_progress: ProgressFn | None = None,
) -> ExplorerPage:
    """Build the explorer of `group` in `stores` and write it atomically to `out_path` (a new or an HTML file).
    `on_progress`: as in `explorer_data`."""
    out_path = Path(out_path)
    check_output(out_path, "html", stores)
    data = explorer_data(
        stores,
        group,
        method=method,
        k=k,
        n_clusters=n_clusters,
        max_points=max_points,
        seed=seed,
        data_root=data_root,
        on_progress=on_progress,
    )
    out_path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(out_path) as tmp:
        tmp.write_text(render_explorer(data), encoding="utf-8")
    return ExplorerPage(
        path=out_path,
        group=group,
        method=method,
        models=tuple(m["name"] for m in data["models"]),
        n_points=len(data["ids"]),
        n_total=data["n_total"],
        n_images=len(data["image_ids"]),
        k=k,
        size_bytes=out_path.stat().st_size,
    )
