"""Benchmark the evaluations on synthetic embeddings shaped like CIFAR-10's: the linear probe on 50,000 x 128
(ours against scikit-learn's LogisticRegression), t-SNE of 10,000 points, k-means of 10,000 points.

Reports wall and CPU seconds (CPU time is what an idle machine would need spread over its cores; on a shared machine
wall time depends on the load, which is recorded). Run: `nice python benchmarks/bench_eval.py [--out FILE]`.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import time
from pathlib import Path

import numpy as np


def synthetic_embeddings(n: int, rng: np.random.Generator, dim: int = 128, n_classes: int = 10):
    """(n, dim) float32 with a nonlinear, overlapping class structure (linear probe near 75%), and (n,) labels."""
    mix = np.random.default_rng(0).normal(size=(32, dim)) * np.exp(-np.arange(32) / 4)[:, None]
    means = np.random.default_rng(1).normal(size=(n_classes, 32))
    labels = rng.integers(0, n_classes, n)
    latent = means[labels] * 0.6 + rng.normal(size=(n, 32))
    return (np.tanh(latent @ mix) + 0.01 * rng.normal(size=(n, dim))).astype(np.float32), labels


def timed(fn, repeat: int = 1):
    """(last result, median wall s, median CPU s) over `repeat` runs."""
    walls, cpus, result = [], [], None
    for _ in range(repeat):
        wall, cpu = time.perf_counter(), time.process_time()
        result = fn()
        walls.append(time.perf_counter() - wall)
        cpus.append(time.process_time() - cpu)
    return result, statistics.median(walls), statistics.median(cpus)


def bench_probe(repeat: int) -> dict:
    from sklearn.linear_model import LogisticRegression

    from embedkit.eval.probe import linear_probe

    rng = np.random.default_rng(0)
    train_x, train_y = synthetic_embeddings(50_000, rng)
    test_x, test_y = synthetic_embeddings(10_000, rng)
    linear_probe(train_x[:1000], train_y[:1000], test_x[:100], test_y[:100])  # warm up: imports, thread pools
    ours, wall, cpu = timed(lambda: linear_probe(train_x, train_y, test_x, test_y), repeat)
    mean, std = train_x.mean(axis=0), train_x.std(axis=0) + 1e-6
    sk, sk_wall, sk_cpu = timed(lambda: LogisticRegression(max_iter=1000).fit((train_x - mean) / std, train_y))
    sk_acc = float(np.mean(sk.predict((test_x - mean) / std) == test_y))
    return {
        "n_train": 50_000,
        "n_test": 10_000,
        "dim": 128,
        "accuracy": ours.accuracy,
        "knn_accuracy": ours.knn_accuracy,
        "fit_s": ours.fit_seconds,
        "probe_total_wall_s": wall,
        "probe_total_cpu_s": cpu,
        "evaluations": ours.evaluations,
        "sklearn_accuracy": sk_acc,
        "sklearn_fit_wall_s": sk_wall,
        "sklearn_fit_cpu_s": sk_cpu,
        "sklearn_iterations": int(sk.n_iter_[0]),
        "fit_speedup_vs_sklearn": sk_wall / ours.fit_seconds,
    }


def bench_maps_and_clusters() -> dict:
    from sklearn.metrics import silhouette_score

    from embedkit.eval.cluster import cluster_embeddings
    from embedkit.eval.maps import TSNE_MAX_ITER, project_2d

    x, labels = synthetic_embeddings(10_000, np.random.default_rng(2))
    _, pca_wall, _ = timed(lambda: project_2d(x, "pca"))
    xy, tsne_wall, tsne_cpu = timed(lambda: project_2d(x, "tsne"))
    clusters, km_wall, km_cpu = timed(lambda: cluster_embeddings(x, 10, labels))
    return {
        "n": 10_000,
        "pca_wall_s": pca_wall,
        "tsne_wall_s": tsne_wall,
        "tsne_cpu_s": tsne_cpu,
        "tsne_max_iter": TSNE_MAX_ITER,
        "tsne_silhouette_of_classes_2d": float(silhouette_score(xy, labels)),
        "kmeans_plus_scores_wall_s": km_wall,
        "kmeans_plus_scores_cpu_s": km_cpu,
        "kmeans_ari": clusters.ari,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/eval.json"))
    parser.add_argument("--repeat", type=int, default=3, help="Runs of the probe (median reported).")
    args = parser.parse_args()
    from embedkit.device import default_threads

    report = {
        "machine": f"{default_threads()} CPU threads",
        "load_before": os.getloadavg()[0],
        "probe": bench_probe(args.repeat),
        "maps": bench_maps_and_clusters(),
        "load_after": os.getloadavg()[0],
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2) + "\n")
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
