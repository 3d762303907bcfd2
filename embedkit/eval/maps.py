"""2-D maps of embeddings (PCA or t-SNE), for figures coloured by class or by cluster.

t-SNE first reduces to 50 dimensions with PCA (the usual recipe: it removes noise and speeds up the neighbour
search), starts from the PCA layout, and maps at most `MAP_MAX_POINTS` rows (a seeded sample above that).
"""

from __future__ import annotations

import contextlib
import io
import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from embedkit._util.progress import ProgressFn, offset_progress
from embedkit._util.sampling import seeded_rows
from embedkit.device import default_threads
from embedkit.errors import ConfigError, about
from embedkit.eval.plots import plot_maps
from embedkit.store.store import open_store

METHODS = ("pca", "tsne")
MAP_MAX_POINTS = 10_000
TSNE_PCA_DIMS = 50
TSNE_PERPLEXITY = 30.0
TSNE_MAX_ITER = 500  # 250 exaggerated + 250 plain; 10,000 points take ~80 s of CPU (1000 take ~160 s)
_TSNE_ITERATION = re.compile(r"\[t-SNE\] Iteration (\d+)")


def project_2d(
    x: np.ndarray,
    method: str = "pca",
    *,
    seed: int = 0,
    n_jobs: int | None = None,
    tsne_max_iter: int = TSNE_MAX_ITER,
    on_progress: ProgressFn | None = None,
) -> np.ndarray:
    """Project `x` (N, D) to (N, 2) float32 with PCA or t-SNE (PCA to 50 dims, PCA init, seeded).

    `on_progress(iterations, tsne_max_iter)` follows t-SNE's gradient steps (every 50); a PCA map reports nothing.
    """
    from sklearn.decomposition import PCA

    x = np.asarray(x, dtype=np.float32)
    if method not in METHODS:
        raise ConfigError(f"unknown map method {method!r}: use {' or '.join(METHODS)}")
    if x.ndim != 2 or len(x) < 3 or x.shape[1] < 1:
        raise ConfigError(f"a 2-D map needs at least 3 points of at least 1 dimension (N, D), got shape {x.shape}")
    if not np.any(x != x[0]):  # t-SNE's PCA start divides by a zero spread and then segfaults (sklearn 1.9)
        raise ConfigError(f"all {len(x)} rows are identical (a collapsed encoder?): a 2-D map would be one point")
    if x.shape[1] < 2:
        return np.hstack([x, np.zeros_like(x)]).astype(np.float32)
    if method == "pca":
        return PCA(n_components=2, random_state=seed).fit_transform(x).astype(np.float32)
    return _tsne(x, seed, n_jobs, tsne_max_iter, on_progress)


def map_steps(method: str) -> int:
    """How many steps `project_2d` reports for a method: t-SNE's iterations; a PCA map counts as one."""
    return TSNE_MAX_ITER if method == "tsne" else 1


def _tsne(x: np.ndarray, seed: int, n_jobs: int | None, max_iter: int, on_progress: ProgressFn | None) -> np.ndarray:
    from sklearn.decomposition import PCA
    from sklearn.manifold import TSNE

    dims = min(TSNE_PCA_DIMS, x.shape[1], len(x))
    reduced = PCA(n_components=dims, random_state=seed).fit_transform(x) if dims < x.shape[1] else x
    perplexity = min(TSNE_PERPLEXITY, (len(x) - 1) / 3)  # sklearn requires perplexity < N
    tsne = TSNE(
        n_components=2,
        perplexity=perplexity,
        init="pca",
        learning_rate="auto",
        max_iter=max_iter,
        random_state=seed,
        n_jobs=n_jobs or default_threads(),
        verbose=2 if on_progress is not None else 0,  # its only report of the iterations done: a printed line
    )
    if on_progress is None:
        return tsne.fit_transform(reduced).astype(np.float32)
    with contextlib.redirect_stdout(_IterationLines(on_progress, max_iter)):
        xy = tsne.fit_transform(reduced).astype(np.float32)
    on_progress(max_iter, max_iter)  # t-SNE may stop early, when it stops improving
    return xy


class _IterationLines(io.TextIOBase):
    """Stands in for stdout while sklearn's verbose t-SNE runs: its `Iteration N` lines become on_progress calls,
    everything else it prints is dropped."""

    def __init__(self, on_progress: ProgressFn, max_iter: int) -> None:
        super().__init__()
        self.on_progress, self.max_iter = on_progress, max_iter

    def writable(self) -> bool:
        return True

    def write(self, text: str) -> int:
        for match in _TSNE_ITERATION.finditer(text):
            self.on_progress(min(int(match[1]), self.max_iter), self.max_iter)
        return len(text)


@dataclass(frozen=True)
class GroupMap:
    """A 2-D map of one store group: xy (M, 2) for its rows `rows` (M,), with their labels (M,)."""

    name: str
    group: str
    method: str
    n_total: int
    rows: np.ndarray = field(repr=False)
    xy: np.ndarray = field(repr=False)
    labels: np.ndarray = field(repr=False)
    class_names: tuple[str, ...] = ()

    @property
    def shown(self) -> str:
        """'2,000 of 10,000 points' for a sample, '10,000 points' otherwise."""
        if len(self.rows) < self.n_total:
            return f"{len(self.rows):,} of {self.n_total:,} points"
        return f"{self.n_total:,} points"


def map_store(
    store_path: Path | str,
    group: str,
    method: str = "pca",
    *,
    max_points: int = MAP_MAX_POINTS,
    seed: int = 0,
    on_progress: ProgressFn | None = None,
) -> GroupMap:
    """Map a store group to 2-D (at most `max_points` rows, seeded sample). Named after the store's file stem.
    `on_progress`: as in `project_2d`."""
    if max_points < 1:
        raise ConfigError(f"max_points={max_points}: map at least 1 row")

    data = open_store(store_path).read(group)
    rows = seeded_rows(len(data.ids), max_points, seed)
    with about(store_path, group):
        xy = project_2d(data.embeddings[rows], method, seed=seed, on_progress=on_progress)
    return GroupMap(
        name=Path(store_path).stem,
        group=group,
        method=method,
        n_total=len(data.ids),
        rows=rows,
        xy=xy,
        labels=data.labels[rows],
        class_names=data.class_names,
    )


def draw_maps(
    stores: list[Path],
    group: str,
    method: str,
    out_path: Path,
    *,
    max_points: int = MAP_MAX_POINTS,
    seed: int = 0,
    on_progress: ProgressFn | None = None,
) -> tuple[list[GroupMap], Path]:
    """Map `group` of each store and draw the maps side by side, coloured by class: (maps, figure path).
    `on_progress(done, total)` counts `map_steps(method)` per store."""
    steps, maps = map_steps(method), []
    total = len(stores) * steps
    report = on_progress or (lambda done, total: None)
    for i, path in enumerate(stores):
        report(i * steps, total)
        part = offset_progress(on_progress, i * steps, total)
        maps.append(map_store(path, group, method, max_points=max_points, seed=seed, on_progress=part))
        report((i + 1) * steps, total)
    class_names = next((m.class_names for m in maps if m.class_names), ())
    figure = plot_maps(
        [(m.name, m.xy, m.labels) for m in maps],
        class_names,
        out_path,
        title=f"{group}: {'PCA' if method == 'pca' else 't-SNE'} ({maps[0].shown})",
    )
    return maps, figure
