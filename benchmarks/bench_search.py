"""Benchmark embedkit's search against raw FAISS, sklearn and NumPy brute force on clustered synthetic vectors.

    python benchmarks/bench_search.py            # 50,000 x 128 and 1,000,000 x 128 (the 1M run takes minutes)
    python benchmarks/bench_search.py --quick    # 50,000 x 128 only, fewer queries (under a minute)

Data: 1,000 Gaussian clusters in a 16-dimensional latent space, mapped linearly into 128 dimensions, plus small
isotropic noise (learned embeddings have a low intrinsic dimension; isotropic 128-D noise would make every
neighbour a near tie). Queries are fresh samples of the same mixture.

Each method runs in its own subprocess (so its peak RSS, `ru_maxrss`, is its own and FAISS's memory is seen):
build time, queries/s for k=3 and k=10 (one warm-up, then the median of --repeats timed runs), recall@k against
exact FAISS Flat. Exact methods are timed on a subset of the queries when the reference is large.
A paired run alternates raw FAISS Flat, embedkit nearest and embedkit farthest in one process (same load on a
shared machine) and reports the median ratio: the wrapper's own overhead.
Also times `embedkit pairs --k 3` end to end (a fresh CLI process) on the 50,000 x 128 store.
Writes a table to stdout and everything to benchmarks/results/search.json.
"""

from __future__ import annotations

import argparse
import json
import platform
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
KS = (3, 10)
EXACT = ("numpy_brute", "sklearn_brute", "faiss_flat", "embedkit_flat", "embedkit_farthest")
APPROX = ("faiss_hnsw", "embedkit_hnsw", "embedkit_ivf")
SMALL_ONLY = ("numpy_brute", "faiss_hnsw")


def make_clustered(n: int, dim: int, seed: int) -> np.ndarray:
    """(n, dim) float32 from a fixed mixture of 1,000 clusters in a 16-D latent space (seed picks the samples)."""
    mixture = np.random.default_rng(12345)
    centers, lift = mixture.normal(size=(1000, 16)) * 4, mixture.normal(size=(16, dim)) / 4
    rng = np.random.default_rng(seed)
    out = np.empty((n, dim), np.float32)
    for start in range(0, n, 100_000):
        m = min(100_000, n - start)
        latent = centers[rng.integers(0, 1000, m)] + rng.normal(size=(m, 16))
        out[start : start + m] = latent @ lift + rng.normal(scale=0.1, size=(m, dim))
    return out


# ---------------------------------------------------------------- workers (one subprocess per method)


def _timed(fn, repeats: int) -> tuple[float, object]:
    """(median seconds over `repeats` calls, the last call's result)."""
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times), result


def _search_fn(method: str, folder: Path, reference: np.ndarray):
    """(build seconds, search(queries, k) -> rows (Q, k)) for one method."""
    start = time.perf_counter()
    if method == "numpy_brute":
        norms = np.einsum("nd,nd->n", reference, reference)

        def search(q, k):
            out = []
            for block in range(0, len(q), 256):  # bounded memory: (256, N) distances at a time
                d2 = norms[None, :] - 2.0 * (q[block : block + 256] @ reference.T)
                part = np.argpartition(d2, k, axis=1)[:, :k]
                out.append(np.take_along_axis(part, np.argsort(np.take_along_axis(d2, part, 1), axis=1), 1))
            return np.vstack(out)

    elif method == "sklearn_brute":
        from sklearn.neighbors import NearestNeighbors

        model = NearestNeighbors(algorithm="brute").fit(reference)
        search = lambda q, k: model.kneighbors(q, k, return_distance=True)[1]  # noqa: E731
    elif method.startswith("faiss_"):
        from embedkit.search.arrays import HNSW_EF_CONSTRUCTION, HNSW_EF_SEARCH, load_faiss  # same settings as embedkit

        faiss = load_faiss()
        if method == "faiss_flat":
            index = faiss.IndexFlatL2(reference.shape[1])
        else:
            index = faiss.IndexHNSWFlat(reference.shape[1], 32)
            index.hnsw.efConstruction = HNSW_EF_CONSTRUCTION
        index.add(reference)
        if method == "faiss_hnsw":
            index.hnsw.efSearch = HNSW_EF_SEARCH
        search = lambda q, k: index.search(q, k)[1]  # noqa: E731
    else:
        from embedkit.search.index import open_group_index

        kind = {"embedkit_hnsw": "hnsw", "embedkit_ivf": "ivf"}.get(method, "flat")
        searcher = open_group_index(folder / "store.h5", "bench/ref", kind=kind, farthest=method == "embedkit_farthest")
        search = lambda q, k: searcher.search(q, k)[1]  # noqa: E731
    return time.perf_counter() - start, search


def paired_overhead(folder: Path, reference: np.ndarray, queries: np.ndarray, repeats: int) -> dict:
    """Raw FAISS Flat, embedkit nearest and embedkit farthest timed alternately in one process.

    On a shared machine, load changes between subprocesses; alternating calls see the same load, so the
    median of the paired time ratios measures the wrapper's own overhead.
    """
    methods = {
        name: _search_fn(name, folder, reference)[1] for name in ("faiss_flat", "embedkit_flat", "embedkit_farthest")
    }
    out = {}
    for k in KS:
        times = {name: [] for name in methods}
        for _ in range(repeats):
            for name, search in methods.items():
                start = time.perf_counter()
                search(queries, k)
                times[name].append(time.perf_counter() - start)
        out[f"embedkit_flat/faiss_flat_k{k}"] = _median_ratio(times, "embedkit_flat", "faiss_flat")
        out[f"embedkit_farthest/embedkit_flat_k{k}"] = _median_ratio(times, "embedkit_farthest", "embedkit_flat")
    return out


def _median_ratio(times: dict[str, list[float]], a: str, b: str) -> float:
    """Median over paired repeats of time[b] / time[a]: how many times faster `a` is than `b`."""
    return statistics.median(x / y for x, y in zip(times[b], times[a]))


def run_worker(method: str, folder: Path, n_queries: int, repeats: int) -> dict:
    reference = np.load(folder / "reference.npy")
    queries = np.load(folder / "queries.npy")[:n_queries]
    rss_loaded_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    if method == "load_only":
        return {"peak_rss_mb": rss_loaded_mb}
    if method == "paired":
        return paired_overhead(folder, reference, queries, repeats)
    build_s, search = _search_fn(method, folder, reference)
    search(queries[:64], 10)  # warm-up
    result = {"build_s": build_s, "queries": len(queries)}
    for k in KS:
        seconds, rows = _timed(lambda k=k: search(queries, k), repeats)
        result[f"qps_k{k}"] = len(queries) / seconds
        np.save(folder / f"rows-{method}-k{k}.npy", rows)
    result["peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return result


def _spawn(method: str, folder: Path, n_queries: int, repeats: int) -> dict:
    command = [
        sys.executable,
        __file__,
        "--worker",
        method,
        "--folder",
        str(folder),
        "--queries",
        str(n_queries),
        "--repeats",
        str(repeats),
    ]
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise SystemExit(f"worker {method} failed:\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


# ---------------------------------------------------------------- driver


def _recall(folder: Path, method: str, k: int, truth: np.ndarray) -> float:
    rows = np.load(folder / f"rows-{method}-k{k}.npy")
    truth = truth[: len(rows), :k]
    return float(np.mean([len(set(a) & set(b)) / k for a, b in zip(rows.tolist(), truth.tolist())]))


def bench_size(n: int, n_queries: int, n_exact: int, repeats: int, methods: list[str], folder: Path) -> dict:
    """All methods on one (n, 128) reference; exact methods answer the first `n_exact` queries."""
    from embedkit.store.store import open_store

    reference, queries = make_clustered(n, 128, seed=1), make_clustered(n_queries, 128, seed=2)
    np.save(folder / "reference.npy", reference)
    np.save(folder / "queries.npy", queries)
    start = time.perf_counter()
    open_store(folder / "store.h5", create=True).write_group("bench/ref", reference, overwrite=True)
    store_write_s = time.perf_counter() - start
    del reference, queries
    results = {"load_only": _spawn("load_only", folder, n_queries, 1)}
    for method in methods:
        print(f"  {n:,} x 128: {method} ...", file=sys.stderr, flush=True)
        results[method] = _spawn(method, folder, n_exact if method in EXACT else n_queries, repeats)
    paired = _spawn("paired", folder, n_exact, max(repeats, 5) if n <= 100_000 else repeats)
    truth = np.load(folder / "rows-faiss_flat-k10.npy")
    for method in methods:
        if method != "embedkit_farthest":
            for k in KS:
                results[method][f"recall_at_{k}"] = _recall(folder, method, k, truth)
    return {
        "n": n,
        "dim": 128,
        "queries": n_queries,
        "exact_queries": n_exact,
        "store_write_s": store_write_s,
        "methods": results,
        "ratios": _ratios(results),
        "paired_ratios": paired,
    }


def _ratios(results: dict) -> dict:
    def ratio(a: str, b: str, k: int) -> float | None:
        if a in results and b in results:
            return results[a][f"qps_k{k}"] / results[b][f"qps_k{k}"]
        return None

    out = {}
    for k in KS:
        out[f"embedkit_flat/faiss_flat_k{k}"] = ratio("embedkit_flat", "faiss_flat", k)
        out[f"embedkit_flat/sklearn_brute_k{k}"] = ratio("embedkit_flat", "sklearn_brute", k)
        out[f"embedkit_farthest/embedkit_flat_k{k}"] = ratio("embedkit_farthest", "embedkit_flat", k)
        out[f"embedkit_hnsw/embedkit_flat_k{k}"] = ratio("embedkit_hnsw", "embedkit_flat", k)
        out[f"embedkit_ivf/embedkit_flat_k{k}"] = ratio("embedkit_ivf", "embedkit_flat", k)
    return {key: value for key, value in out.items() if value is not None}


def bench_pairs(folder: Path) -> dict:
    """`embedkit pairs --k 3` on the 50,000 x 128 store, timed as a fresh CLI process (imports included)."""
    embedkit = Path(sys.executable).with_name("embedkit")
    out = folder / "pairs.h5"
    command = [
        str(embedkit),
        "pairs",
        str(folder / "store.h5"),
        "--group",
        "bench/ref",
        "--k",
        "3",
        "--out",
        str(out),
        "--json",
    ]
    start = time.perf_counter()
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    seconds = time.perf_counter() - start
    if done.returncode != 0:
        raise SystemExit(f"embedkit pairs failed: {done.stderr}")
    return {"rows": 50_000, "k": 3, "end_to_end_s": seconds, "library_s": json.loads(done.stdout)["seconds"]}


def print_table(report: dict) -> None:
    for size in report["sizes"]:
        print(
            f"\n{size['n']:,} x {size['dim']}  ({size['queries']:,} queries, exact methods "
            f"{size['exact_queries']:,}; data alone {size['methods']['load_only']['peak_rss_mb']:,.0f} MB RSS)"
        )
        print(f"{'method':<20}{'build s':>9}{'q/s k=3':>11}{'q/s k=10':>11}{'R@3':>7}{'R@10':>7}{'peak MB':>9}")
        for method, r in size["methods"].items():
            if method == "load_only":
                continue
            recall = [f"{r[f'recall_at_{k}']:.3f}" if f"recall_at_{k}" in r else "-" for k in KS]
            print(
                f"{method:<20}{r['build_s']:>9.2f}{r['qps_k3']:>11,.0f}{r['qps_k10']:>11,.0f}"
                f"{recall[0]:>7}{recall[1]:>7}{r['peak_rss_mb']:>9,.0f}"
            )
        print("  throughput ratios (separate processes | paired in one process, same load):")
        for key, value in size["ratios"].items():
            paired = size["paired_ratios"].get(key)
            print(f"  {key:<40} {value:6.2f}x" + (f" | {paired:5.2f}x" if paired else ""))
    if "pairs" in report:
        p = report["pairs"]
        print(
            f"\nembedkit pairs --k 3 on 50,000 x 128: {p['end_to_end_s']:.1f} s end to end "
            f"({p['library_s']:.1f} s in the library)"
        )


def _merge_previous(path: Path, report: dict) -> dict:
    """Keep the sizes (and the pairs timing) of an earlier run that this run did not measure."""
    if not path.exists():
        return report
    previous = json.loads(path.read_text())
    measured = {size["n"] for size in report["sizes"]}
    kept = [size for size in previous.get("sizes", []) if size["n"] not in measured]
    report["sizes"] = sorted(kept + report["sizes"], key=lambda size: size["n"])
    if "pairs" not in report and "pairs" in previous:
        report["pairs"] = previous["pairs"]
    return report


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="50,000 x 128 only, fewer queries (< 1 minute)")
    parser.add_argument("--sizes", default=None, help="comma-separated reference sizes [50000,1000000]")
    parser.add_argument("--repeats", type=int, default=3, help="timed runs per measurement (median)")
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "search.json")
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    parser.add_argument("--folder", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--queries", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        print(json.dumps(run_worker(args.worker, args.folder, args.queries, args.repeats)))
        return
    sizes = [50_000] if args.quick else [int(s) for s in (args.sizes or "50000,1000000").split(",")]
    report = {
        "machine": f"{platform.machine()} {platform.processor() or ''} "
        f"{len(__import__('os').sched_getaffinity(0))} CPU threads".strip(),
        "sizes": [],
    }
    with tempfile.TemporaryDirectory(prefix="bench-search-") as tmp:
        for n in sizes:
            folder = Path(tmp) / str(n)
            folder.mkdir()
            small = n <= 100_000
            n_queries = (2_000 if args.quick else 10_000) if small else 10_000
            n_exact = n_queries if small else 500
            # at 1M, NumPy brute force and a second (raw) HNSW build would add many minutes and say nothing new
            methods = [*EXACT, *APPROX] if small else [m for m in (*EXACT, *APPROX) if m not in SMALL_ONLY]
            report["sizes"].append(bench_size(n, n_queries, n_exact, args.repeats, methods, folder))
            report["sizes"][-1]["measured"] = time.strftime("%Y-%m-%d %H:%M")
            if n == 50_000:
                report["pairs"] = bench_pairs(folder)
    report = _merge_previous(args.out, report)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2) + "\n")
    print_table(report)
    print(f"\nwrote {args.out}")


if __name__ == "__main__":
    main()
