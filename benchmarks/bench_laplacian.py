"""Time Laplacian eigenmaps on real CIFAR-10 pixels, phase by phase; target: all 60,000 images in under 10 minutes.

    nice python benchmarks/bench_laplacian.py --out embedkit-work/laplacian.h5   # all 60,000 (minutes)
    python benchmarks/bench_laplacian.py --quick                                # a seeded 10,000-image subset

Data root: --data-root, else $EMBEDKIT_DATA. The full run is `fit_laplacian_to_store` (what `embedkit baseline
laplacian` calls): load train + test, PCA, kNN graph, eigensolver, write both groups. --quick embeds a seeded
random 10,000 of the 60,000 images (train and test rows mixed) with `laplacian_eigenmaps`. Each phase is timed as
wall seconds (a user's wait on a shared machine) beside the process's CPU seconds.

Also reported: the exact kNN graph without PCA, extrapolated from 1,000 timed query rows over all rows in 3,072 pixel
dims (why PCA is the default), and a linear probe (sklearn LogisticRegression on standardised embeddings, fitted on
the train rows, scored on the test rows; chance is 0.10). Writes benchmarks/results/laplacian[_quick].json.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
QUICK_ROWS = 10_000
RAW_KNN_QUERY_ROWS = 1_000
TARGET_S = 600.0


def linear_probe(train_x, train_y, test_x, test_y) -> float:
    """Test accuracy of a logistic regression fitted on standardised train embeddings."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.preprocessing import StandardScaler

    scaler = StandardScaler().fit(train_x)
    model = LogisticRegression(max_iter=1000).fit(scaler.transform(train_x), train_y)
    return float(model.score(scaler.transform(test_x), test_y))


def raw_knn_estimate_s(x: np.ndarray, k: int) -> float:
    """Seconds an exact kNN graph over all rows of `x` in its full dimension would take (1,000 rows timed)."""
    from embedkit.search.index import build_index, search_index

    rows = np.random.default_rng(0).choice(len(x), size=min(RAW_KNN_QUERY_ROWS, len(x)), replace=False)
    index = build_index(x, "flat")
    start = time.perf_counter()
    search_index(index, "flat", x, x[rows], k, self_rows=rows)
    return (time.perf_counter() - start) * len(x) / len(rows)


def run_full(data_root: Path, out: Path, k: int, dim: int, pca_dim: int) -> dict:
    """`fit_laplacian_to_store` on all of CIFAR-10, then a linear probe read back from the store."""
    from embedkit.baselines.laplacian import fit_laplacian_to_store
    from embedkit.store.store import open_store

    run = fit_laplacian_to_store("cifar10", out, dim=dim, k=k, pca_dim=pca_dim, data_root=data_root, overwrite=True)
    store = open_store(out)
    train, test = store.read("cifar10/train"), store.read("cifar10/test")
    start = time.perf_counter()
    accuracy = linear_probe(train.embeddings, train.labels, test.embeddings, test.labels)
    return {
        **run.to_json(),
        "n": sum(run.rows.values()),
        "probe_accuracy": accuracy,
        "probe_s": round(time.perf_counter() - start, 1),
    }


def run_quick(data_root: Path, k: int, dim: int, pca_dim: int) -> tuple[dict, np.ndarray]:
    """The quick run's numbers, and the subset's pixels (N, 3072) for the no-PCA estimate."""
    from embedkit.baselines.laplacian import flatten_pixels, laplacian_eigenmaps
    from embedkit.data.sources import load_images

    start = time.perf_counter()
    sets = [load_images("cifar10", split, data_root) for split in ("train", "test")]
    x = np.concatenate([flatten_pixels(s.images) for s in sets])
    labels = np.concatenate([s.labels for s in sets])
    is_train = np.arange(len(x)) < len(sets[0].labels)
    rows = np.sort(np.random.default_rng(0).choice(len(x), size=QUICK_ROWS, replace=False))
    x, labels, is_train = x[rows], labels[rows], is_train[rows]
    load_s = round(time.perf_counter() - start, 3)
    result = laplacian_eigenmaps(x, dim, k, pca_dim=pca_dim)
    emb = result.embedding
    accuracy = linear_probe(emb[is_train], labels[is_train], emb[~is_train], labels[~is_train])
    seconds = {"load": load_s, **result.seconds, "total": round(load_s + sum(result.seconds.values()), 3)}
    return {
        "n": len(x),
        "n_components": result.n_components,
        "seconds": seconds,
        "probe_accuracy": accuracy,
        "smallest_eigenvalues": result.eigenvalues[:5].round(5).tolist(),
    }, x


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-root", type=Path, default=os.environ.get("EMBEDKIT_DATA"))
    parser.add_argument("--quick", action="store_true", help=f"a seeded {QUICK_ROWS:,}-image subset")
    parser.add_argument("--out", type=Path, help="store to write (full run) [default: a temporary file]")
    parser.add_argument("--k", type=int, default=10)
    parser.add_argument("--dim", type=int, default=128)
    parser.add_argument("--pca-dim", type=int, default=128)
    parser.add_argument("--skip-raw-estimate", action="store_true", help="skip the no-PCA kNN extrapolation")
    args = parser.parse_args()
    if args.data_root is None:
        sys.exit("needs the CIFAR-10 data: pass --data-root or set EMBEDKIT_DATA")
    load_before, cpu_start, wall_start = os.getloadavg(), time.process_time(), time.perf_counter()
    if args.quick:
        result, raw_x = run_quick(args.data_root, args.k, args.dim, args.pca_dim)
    else:
        with tempfile.TemporaryDirectory(prefix="embedkit-bench-") as tmp:
            result = run_full(args.data_root, args.out or Path(tmp) / "laplacian.h5", args.k, args.dim, args.pca_dim)
        raw_x = None
    result["cpu_s"] = round(time.process_time() - cpu_start, 1)
    result["wall_s"] = round(time.perf_counter() - wall_start, 1)
    if not args.skip_raw_estimate:
        result["raw_pixel_knn_estimate_s"] = round(raw_knn_estimate_s(_pixels(args.data_root, raw_x), args.k), 1)
    report(result, args, load_before)


def _pixels(data_root: Path, x: np.ndarray | None) -> np.ndarray:
    from embedkit.baselines.laplacian import flatten_pixels
    from embedkit.data.sources import load_images

    if x is not None:
        return x
    return np.concatenate([flatten_pixels(load_images("cifar10", s, data_root).images) for s in ("train", "test")])


def report(result: dict, args: argparse.Namespace, load_before: tuple) -> None:
    seconds = result["seconds"]
    fit_s = seconds["total"]
    print(f"Laplacian eigenmaps, {result['n']:,} CIFAR-10 images, dim {args.dim}, k {args.k}, PCA {args.pca_dim}")
    for phase, value in seconds.items():
        print(f"  {phase:<12}{value:>9.1f} s")
    print(f"  connected components before joining: {result['n_components']}")
    print(
        f"  process: {result['wall_s']:.1f} s wall, {result['cpu_s']:.1f} s CPU (load average before: "
        f"{load_before[0]:.1f}); target < {TARGET_S:.0f} s: {'yes' if fit_s < TARGET_S else 'NO'}"
    )
    if "raw_pixel_knn_estimate_s" in result:
        print(f"  kNN graph without PCA (3,072 dims), extrapolated: {result['raw_pixel_knn_estimate_s']:.0f} s")
    print(f"  linear probe (train -> test): {result['probe_accuracy']:.3f} (chance 0.100)")
    payload = {
        "benchmark": "laplacian",
        "quick": args.quick,
        "dim": args.dim,
        "k": args.k,
        "pca_dim": args.pca_dim,
        "target_s": TARGET_S,
        "ok": fit_s < TARGET_S,
        **result,
        "machine": {
            "platform": platform.platform(),
            "python": platform.python_version(),
            "cpus": os.cpu_count(),
            "loadavg_before": load_before,
            "loadavg_after": os.getloadavg(),
        },
    }
    out = ROOT / "benchmarks" / "results" / ("laplacian_quick.json" if args.quick else "laplacian.json")
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(payload, indent=2, default=str) + "\n")
    print(f"wrote {out.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
