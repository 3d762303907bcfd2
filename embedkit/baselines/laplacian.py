"""Laplacian eigenmaps (Belkin & Niyogi, 2003): a baseline embedding that needs no encoder.

The rows (raw pixels) are the nodes of a k-nearest-neighbour graph; the embedding is the graph Laplacian's
bottom non-trivial eigenvectors. Each choice below is the standard one:

- PCA first (default 128 dims, fitted on a seeded sample of at most 20,000 rows): the standard speed-up. The exact
  kNN graph over 60,000 x 3,072 pixels is about 1e13 flops, measured at some 13 minutes on a busy 2-core machine
  (over the whole 10-minute budget); over 128 PCA dims it is 24 times less work (about a minute), and L2 distances
  between images are dominated by their top principal components anyway. `pca_dim=None` searches the raw pixels.
- Binary weights, symmetrised as W = (A + A^T) / 2 (an edge in both kNN lists weighs 1, in one of them 0.5): the
  graph of sklearn's SpectralEmbedding(affinity="nearest_neighbors"), with no heat-kernel bandwidth to tune.
- A graph in several pieces is joined: each smaller connected component gets one edge (weight 1) between its row
  closest to the largest component and that row's nearest neighbour there, so exactly one eigenvector is trivial.
  The count before joining is reported (`LaplacianResult.n_components`).
- The eigenproblem L y = lambda D y is solved through the normalised adjacency S = D^-1/2 W D^-1/2: y = D^-1/2 u
  for the largest eigenvectors u of S (eigenvalue 1 - lambda). Lanczos (ARPACK `eigsh`, which="LA") finds them
  directly; shift-invert would need a sparse LU of the Laplacian, whose fill-in is large on kNN graphs. The top
  eigenvector (constant y) is dropped. Columns are scaled so y^T D y = 1, signs so each column's largest-magnitude
  entry is positive (as sklearn does).
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from embedkit._util.progress import ProgressFn
from embedkit._util.sampling import seeded_rows
from embedkit.data.sources import check_subset_size, load_images
from embedkit.errors import ConfigError, DataError, StoreError
from embedkit.search.arrays import knn, self_knn
from embedkit.store.store import GroupData, open_store

DEFAULT_DIM = 128
DEFAULT_K = 10
DEFAULT_PCA_DIM = 128
PCA_SAMPLE_ROWS = 20_000  # rows the covariance is estimated from: plenty for 128 components of 3,072 pixels
DENSE_SOLVER_MAX_ROWS = 2_000  # below this a dense eigendecomposition is faster and always converges
METHOD = "laplacian-eigenmaps"

PhaseFn = Callable[[str], None]


@dataclass(frozen=True)
class LaplacianConfig:
    """What produced a Laplacian embedding; saved as JSON with every store group it writes."""

    dim: int = DEFAULT_DIM
    k: int = DEFAULT_K
    pca_dim: int | None = DEFAULT_PCA_DIM
    seed: int = 0
    subset: int | None = None  # images per split, drawn with `seed` (None: all)
    method: str = METHOD
    weights: str = "binary, (A + A^T) / 2"


@dataclass(frozen=True)
class LaplacianResult:
    """An embedding (N, dim) float32, the Laplacian eigenvalues of its columns (dim,) ascending, the number of
    connected components the kNN graph had before they were joined, and seconds per phase."""

    embedding: np.ndarray
    eigenvalues: np.ndarray
    n_components: int
    seconds: dict[str, float] = field(default_factory=dict)


def check_config(n_rows: int, n_features: int, config: LaplacianConfig) -> None:
    """Raise ConfigError (one line) unless `config` can embed `n_rows` rows of `n_features` values."""
    if n_rows < 3:
        raise ConfigError(f"Laplacian eigenmaps needs at least 3 rows, got {n_rows}")
    if not 1 <= config.dim <= n_rows - 1:
        raise ConfigError(
            f"dim={config.dim}: must be between 1 and N-1={n_rows - 1} (N={n_rows} rows have at most N-1 "
            "non-trivial eigenvectors)"
        )
    if not 1 <= config.k <= n_rows - 1:
        raise ConfigError(f"k={config.k}: must be between 1 and N-1={n_rows - 1} (a row is not its own neighbour)")
    if config.pca_dim is not None and config.pca_dim < 1:
        raise ConfigError(f"pca_dim={config.pca_dim}: must be at least 1 (or None for no PCA)")
    if n_features < 1:
        raise ConfigError("rows have no features (P=0)")


def reduce_pca(x: np.ndarray, pca_dim: int, *, seed: int = 0, sample_rows: int = PCA_SAMPLE_ROWS) -> np.ndarray:
    """Project rows `x` (N, P) on their top `pca_dim` principal components: (N, pca_dim) float32.

    The mean and covariance come from a seeded sample of at most `sample_rows` rows; the components are the
    covariance's top eigenvectors, found by randomized SVD of the (P, P) covariance (its spectrum decays fast).
    """
    from sklearn.utils.extmath import randomized_svd

    sample = x[seeded_rows(len(x), sample_rows, seed)]
    mean = sample.mean(axis=0, dtype=np.float64).astype(np.float32)
    centered = sample - mean
    cov = (centered.T @ centered) / np.float32(max(len(sample) - 1, 1))
    with _one_blas_thread():
        components = randomized_svd(cov, pca_dim, n_oversamples=20, n_iter=7, random_state=seed)[0]
    out = np.empty((len(x), pca_dim), np.float32)
    for start in range(0, len(x), 8192):  # chunks: never a second full-size copy of the pixels
        out[start : start + 8192] = (x[start : start + 8192] - mean) @ components
    return out


def _one_blas_thread():
    """A context limiting BLAS to one thread. Eigensolvers make many small BLAS calls, and on a busy 2-core machine
    two OpenBLAS threads waiting for each other made them 2 to 40 times slower (measured: eigsh on the 60,000-image
    graph 115 s vs 62 s, randomized SVD of the pixel covariance 13 s vs 4 s, a 600 x 600 eigh 2.6 s vs 0.06 s)."""
    from threadpoolctl import threadpool_limits

    return threadpool_limits(1)


def knn_graph(x: np.ndarray, k: int, *, on_progress: ProgressFn | None = None):
    """The symmetrised binary kNN graph of rows `x` (N, D), joined into one connected component.

    Returns (W, n_components): W a (N, N) scipy CSR matrix, W = (A + A^T) / 2 plus one weight-1 edge per joined
    component; n_components the graph's connected components before joining.
    """
    import scipy.sparse as sp
    from scipy.sparse.csgraph import connected_components

    x = np.ascontiguousarray(x, dtype=np.float32)
    n = len(x)
    rows = self_knn(x, k, on_progress=on_progress)[1]
    a = sp.csr_matrix((np.ones(n * k), (np.repeat(np.arange(n), k), rows.ravel())), shape=(n, n))
    w = ((a + a.T) * 0.5).tocsr()
    n_components, labels = connected_components(w, directed=False)
    if n_components > 1:
        w = _join_components(x, w, labels)
    return w, int(n_components)


def _join_components(x: np.ndarray, w, labels: np.ndarray):
    """Add one weight-1 edge from each smaller component to the largest: its closest pair of rows."""
    import scipy.sparse as sp

    largest = np.argmax(np.bincount(labels))
    main_rows = np.flatnonzero(labels == largest)
    other_rows = np.flatnonzero(labels != largest)
    distances, nearest = knn(x[main_rows], x[other_rows], 1)
    sources, targets = [], []
    for component in np.unique(labels[other_rows]):
        members = np.flatnonzero(labels[other_rows] == component)
        best = members[np.argmin(distances[members, 0])]
        sources.append(other_rows[best])
        targets.append(main_rows[nearest[best, 0]])
    bridges = sp.csr_matrix((np.ones(len(sources)), (sources, targets)), shape=w.shape)
    return (w + bridges + bridges.T).tocsr()


def spectral_embedding(w, dim: int, *, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """The `dim` bottom non-trivial solutions of L y = lambda D y for a connected graph `w` (N, N).

    Returns (embedding (N, dim) float32, eigenvalues lambda (dim,) float64 ascending, each in [0, 2]).
    """
    import scipy.sparse as sp

    degree = np.asarray(w.sum(axis=1), dtype=np.float64).ravel()
    inv_sqrt = 1.0 / np.sqrt(degree)
    s = (sp.diags(inv_sqrt) @ w @ sp.diags(inv_sqrt)).tocsr()
    with _one_blas_thread():
        mu, u = _top_eigenpairs(s, dim + 1, seed)
    order = np.argsort(-mu)[1:]  # the largest, mu = 1, is the trivial D^1/2 1
    y = u[:, order] * inv_sqrt[:, None]
    y *= np.sign(y[np.argmax(np.abs(y), axis=0), np.arange(dim)])
    return y.astype(np.float32), 1.0 - mu[order]


def _top_eigenpairs(s, count: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """The `count` largest eigenpairs of the symmetric sparse `s` (N, N): dense when small, else Lanczos.

    Float64 throughout: the smallest Laplacian eigenvalues of a nearly disconnected graph are ~1e-5, so the
    eigenvalues of `s` sit within a few float32 steps of 1 and float32 Lanczos mixes their eigenvectors.
    """
    n = s.shape[0]
    if n <= max(DENSE_SOLVER_MAX_ROWS, 5 * count):
        from scipy.linalg import eigh

        return eigh(s.toarray(), subset_by_index=[n - count, n - 1])
    from scipy.sparse.linalg import eigsh

    v0 = np.random.default_rng(seed).uniform(-1.0, 1.0, n)
    return eigsh(s, k=count, which="LA", v0=v0)


def laplacian_eigenmaps(
    x: np.ndarray,
    dim: int = DEFAULT_DIM,
    k: int = DEFAULT_K,
    *,
    pca_dim: int | None = DEFAULT_PCA_DIM,
    seed: int = 0,
    on_progress: ProgressFn | None = None,
    on_phase: PhaseFn | None = None,
) -> LaplacianResult:
    """Embed rows `x` (N, P) (e.g. flattened pixels in [0, 1]) as `dim` Laplacian eigenmap coordinates.

    PCA to `pca_dim` (None or >= P: none; PCA is what makes the exact kNN graph of 60,000 images affordable), the
    kNN graph with `k` neighbours, then the sparse eigensolver (see the module docstring). `on_phase(name)`
    announces "pca", "knn_graph", "eigensolver"; `on_progress(done, total)` counts kNN query rows.
    Returns a LaplacianResult whose `embedding` is (N, dim) float32.
    """
    x = np.asarray(x)
    if x.ndim != 2:
        raise ConfigError(f"x must be (N, P) rows, got shape {x.shape}")
    config = LaplacianConfig(dim=dim, k=k, pca_dim=pca_dim, seed=seed)
    check_config(x.shape[0], x.shape[1], config)
    if not np.isfinite(x).all():
        raise DataError("x contains NaN or inf")
    seconds: dict[str, float] = {}
    x = np.asarray(x, dtype=np.float32)
    if pca_dim is not None and pca_dim < x.shape[1]:
        with _timed("pca", seconds, on_phase):
            x = reduce_pca(x, pca_dim, seed=seed)
    with _timed("knn_graph", seconds, on_phase):
        w, n_components = knn_graph(x, k, on_progress=on_progress)
    with _timed("eigensolver", seconds, on_phase):
        embedding, eigenvalues = spectral_embedding(w, dim, seed=seed)
    return LaplacianResult(embedding, eigenvalues, n_components, seconds)


@contextlib.contextmanager
def _timed(name: str, seconds: dict[str, float], on_phase: PhaseFn | None) -> Iterator[None]:
    """Announce phase `name`, then record its duration in `seconds[name]`."""
    if on_phase is not None:
        on_phase(name)
    started = time.perf_counter()
    yield
    seconds[name] = round(time.perf_counter() - started, 3)


@dataclass(frozen=True)
class LaplacianRun:
    """What `fit_laplacian_to_store` wrote: the store, its groups and rows, the config and the result's numbers."""

    store: Path
    groups: tuple[str, ...]
    rows: dict[str, int]
    config: LaplacianConfig
    n_components: int
    seconds: dict[str, float]

    def to_json(self) -> dict[str, Any]:
        """The `--json` object: store, groups, rows, config, n_components, seconds (per phase and total)."""
        return {
            "store": str(self.store),
            "groups": list(self.groups),
            "rows": self.rows,
            "config": asdict(self.config),
            "n_components": self.n_components,
            "seconds": self.seconds,
        }


def flatten_pixels(images: np.ndarray) -> np.ndarray:
    """Images (N, H, W, C) uint8 -> rows (N, H*W*C) float32 in [0, 1]."""
    return images.reshape(len(images), -1).astype(np.float32) / 255.0


def fit_laplacian_to_store(
    dataset: str = "cifar10",
    out_store: Path | str = "laplacian.h5",
    *,
    dim: int = DEFAULT_DIM,
    k: int = DEFAULT_K,
    pca_dim: int | None = DEFAULT_PCA_DIM,
    data_root: Path | None = None,
    splits: tuple[str, ...] = ("train", "test"),
    overwrite: bool = False,
    seed: int = 0,
    subset: int | None = None,
    on_progress: ProgressFn | None = None,
    on_phase: PhaseFn | None = None,
) -> LaplacianRun:
    """Embed the `splits` of `dataset` together (raw pixels) and write a group `<dataset>/<split>` per split.

    The eigenmap is transductive: it only places the rows it was fitted on, so train and test are fitted together.
    Groups hold labels, ids (row in the split) and attrs dataset, split, class_names, config (JSON).
    `subset`: only that many images of each split, drawn with `seed`.
    `on_phase` announces "load <split>", then the phases of `laplacian_eigenmaps`, then "write".
    """
    check_subset_size(subset)
    started = time.perf_counter()
    store = open_store(out_store, create=True)
    sets = []
    for split in splits:
        if on_phase is not None:
            on_phase(f"load {split}")
        sets.append(load_images(dataset, split, data_root, on_progress=on_progress))
    groups = tuple(f"{s.dataset}/{s.split}" for s in sets)
    _check_writable(store, groups, overwrite)
    shapes = {s.images.shape[1:] for s in sets}
    if len(shapes) > 1:
        raise DataError(f"{dataset}: splits have different image shapes {sorted(shapes)}; cannot embed them together")
    rows = [seeded_rows(len(s.images), subset, seed) for s in sets]
    load_s = round(time.perf_counter() - started, 3)
    x = np.concatenate([flatten_pixels(s.images[r] if subset is not None else s.images) for s, r in zip(sets, rows)])
    used_pca = pca_dim if pca_dim is not None and pca_dim < x.shape[1] else None
    config = LaplacianConfig(dim=dim, k=k, pca_dim=used_pca, seed=seed, subset=subset)
    result = laplacian_eigenmaps(x, dim, k, pca_dim=pca_dim, seed=seed, on_progress=on_progress, on_phase=on_phase)
    del x
    if on_phase is not None:
        on_phase("write")
    offsets = np.cumsum([0] + [len(r) for r in rows])
    parts = [
        GroupData(
            group,
            result.embedding[start:stop],
            s.labels[r],
            r,
            {
                "dataset": s.dataset,
                "split": s.split,
                "class_names": list(s.class_names),
                "config": {**asdict(config), "n_components": result.n_components, "source": s.source},
            },
        )
        for s, r, group, start, stop in zip(sets, rows, groups, offsets[:-1], offsets[1:])
    ]
    store.write_groups(parts, overwrite=overwrite)  # train and test land together, or neither
    seconds = {"load": load_s, **result.seconds, "total": round(time.perf_counter() - started, 3)}
    return LaplacianRun(
        store.path, groups, {g: len(r) for g, r in zip(groups, rows)}, config, result.n_components, seconds
    )


def _check_writable(store, groups: tuple[str, ...], overwrite: bool) -> None:
    """Fail before minutes of work, not after, if a group exists and may not be replaced."""
    taken = [g for g in groups if g in store]
    if taken and not overwrite:
        raise StoreError(f"{store.path}: group '{taken[0]}' already exists (--overwrite replaces it)")
