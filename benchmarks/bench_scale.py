"""Scale benchmark (issue 18): `--index auto` at a million rows, and `--engine ray` against `--engine local`.

    python benchmarks/bench_scale.py                 # 50,000 and 1,000,000 x 128 (about 10 minutes on 2 cores)
    python benchmarks/bench_scale.py --sizes 50000   # one size
    python benchmarks/bench_scale.py --sizes 1000000 --pairs-only local ray   # only `pairs --k 10`, exact
    python benchmarks/bench_scale.py --sizes 1000000 --pairs-only ray --pairs-index flat auto   # exact and IVF

Data: the clustered mixture of bench_search.py (1,000 clusters in a 16-D latent space, lifted to 128-D), a
reference group of N rows and a query group of 1,000 fresh rows. Per size, each in its own process (peak RSS is
that process's own):
  exact       flat search of the queries, k=10: queries/s (search only, index built)
  auto        `neighbors(index_kind="auto")`: first call (IVF build + nprobe tuning + search), then queries/s of
              the tuned IVF search alone, its recall estimate and the recall measured against exact
  pairs       `embedkit pairs --k 10 --index auto` over every row, end to end (a fresh CLI process)
  ray         `embedkit neighbors --query-group ... --engine ray` against `--engine local` (fresh processes),
              and the exact `pairs --k 10` self-join both ways at sizes up to 50,000
Then `embedkit encode --split test` of CIFAR-10's 10,000 test images (under $EMBEDKIT_DATA, decoded cache warm)
with the small encoder, `--engine local` against `--engine ray` (`--encode-only` runs just this).
Writes a table and benchmarks/results/scale.json. Timings need idle cores.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))
K = 10
QUERIES = 1000
RAY_PAIRS_MAX_ROWS = 50_000  # the exact self-join of 1M rows takes about 23 minutes per engine: --pairs-only runs it
ENGINES = ("local", "ray")


def _in_process(step: str, store: str) -> dict:
    """One measurement in this (fresh) process; returns its numbers and peak RSS."""
    from embedkit.search.index import neighbors, open_group_index
    from embedkit.store.store import open_store

    queries = open_store(store).read("bench/query").embeddings
    out: dict = {}
    if step == "exact":
        start = time.perf_counter()
        searcher = open_group_index(store, "bench/ref", kind="flat")
        out["build_s"] = time.perf_counter() - start
        start = time.perf_counter()
        _, rows = searcher.search(queries, K)
        out["search_s"] = time.perf_counter() - start
        np.save(Path(store).with_suffix(".exact.npy"), rows)
    else:  # auto
        start = time.perf_counter()
        result = neighbors(store, "bench/ref", K, query_group="bench/query", index_kind="auto")
        out["first_call_s"] = time.perf_counter() - start
        out["index"] = result.index_kind
        estimate = result.recall_estimate
        out["recall_estimate"] = None if estimate is None else estimate.to_json()
        searcher = open_group_index(store, "bench/ref", kind=result.index_kind)
        start = time.perf_counter()
        _, rows = searcher.search(queries, K, nprobe=estimate.nprobe if estimate else None)
        out["search_s"] = time.perf_counter() - start
        exact = np.load(Path(store).with_suffix(".exact.npy"))
        out["recall_measured"] = float(np.mean([len(np.intersect1d(a, b)) / K for a, b in zip(rows, exact)]))
    out["queries_per_s"] = QUERIES / out["search_s"]
    out["peak_rss_gb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20
    return out


def _child(step: str, store: str) -> dict:
    done = subprocess.run(
        [sys.executable, __file__, "--child", step, store], capture_output=True, text=True, cwd=ROOT, check=False
    )
    if done.returncode != 0:
        return {"error": done.stderr.strip().splitlines()[-1] if done.stderr.strip() else f"exit {done.returncode}"}
    return json.loads(done.stdout.strip().splitlines()[-1])


def _cli(args: list[str]) -> dict:
    """`embedkit ARGS --json` in a fresh process: wall seconds, peak RSS and its JSON."""
    wrapper = (
        "import resource, subprocess, sys, time; t = time.perf_counter(); "
        "p = subprocess.run(sys.argv[1:], capture_output=True, text=True); "
        "print(p.stdout.strip().splitlines()[-1] if p.returncode == 0 else 'ERR ' + p.stderr.strip()[-300:]); "
        "print(time.perf_counter() - t, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 2**20)"
    )
    command = [sys.executable, "-c", wrapper, sys.executable, "-m", "embedkit_cli.main", *args, "--json"]
    lines = subprocess.run(command, capture_output=True, text=True, cwd=ROOT, check=False).stdout.splitlines()
    if len(lines) < 2 or lines[-2].startswith("ERR"):
        return {"error": lines[-2] if len(lines) >= 2 else "no output"}
    wall, rss = (float(v) for v in lines[-1].split())
    return {"wall_s": round(wall, 2), "peak_rss_gb": round(rss, 2), "json": json.loads(lines[-2])}


def run_size(n: int, folder: Path) -> dict:
    from bench_search import make_clustered

    from embedkit.store.store import open_store

    store = folder / f"scale-{n}.h5"
    handle = open_store(store, create=True)
    handle.write_group("bench/ref", make_clustered(n, 128, seed=1))
    handle.write_group("bench/query", make_clustered(QUERIES, 128, seed=2))
    row = {"n": n, "exact": _child("exact", str(store)), "auto": _child("auto", str(store))}
    if "queries_per_s" in row["exact"] and "queries_per_s" in row["auto"]:
        row["auto_over_exact_qps"] = row["auto"]["queries_per_s"] / row["exact"]["queries_per_s"]
    pairs = _cli(
        ["pairs", str(store), "-g", "bench/ref", "--k", str(K), "--index", "auto", "--out", str(folder / "p.h5")]
    )
    row["pairs_auto"] = {k: v for k, v in pairs.items() if k != "json"}
    if "json" in pairs:
        row["pairs_auto"].update(recall_estimate=pairs["json"]["recall_estimate"], index=pairs["json"]["index"])
    query = ["neighbors", str(store), "-g", "bench/ref", "--query-group", "bench/query", "--k", str(K)]
    row["neighbors_local"] = {k: v for k, v in _cli(query).items() if k != "json"}
    row["neighbors_ray"] = {k: v for k, v in _cli([*query, "--engine", "ray"]).items() if k != "json"}
    if n <= RAY_PAIRS_MAX_ROWS:
        row.update(_pairs(store, folder, ENGINES, "flat"))
    store.unlink()
    return row


def pairs_only(n: int, folder: Path, engines: list[str], indexes: list[str]) -> dict:
    """`--pairs-only`: only `pairs --k 10` over N clustered rows, with each engine and index kind in turn."""
    from bench_search import make_clustered

    from embedkit.store.store import open_store

    store = folder / f"scale-{n}.h5"
    open_store(store, create=True).write_group("bench/ref", make_clustered(n, 128, seed=1))
    row = {"n": n}
    for index in indexes:
        row.update(_pairs(store, folder, engines, index))
    store.unlink()
    return row


def _pairs(store: Path, folder: Path, engines: list[str], index: str) -> dict:
    """`embedkit pairs --k 10 --index INDEX` over every row of the store's reference, per engine: wall s, peak
    RSS (of the command's process: Ray's workers are not its children), and the recall estimate of an IVF."""
    pairs = ["pairs", str(store), "-g", "bench/ref", "--k", str(K), "--index", index, "--out", str(folder / "q.h5")]
    row = {}
    for engine in engines:
        done = _cli([*pairs, "--engine", engine])
        row[f"pairs_{'exact' if index == 'flat' else index}_{engine}"] = {
            **{k: v for k, v in done.items() if k != "json"},
            **({"recall_estimate": done["json"].get("recall_estimate")} if "json" in done and index != "flat" else {}),
        }
    return row


def encode_comparison(folder: Path) -> dict:
    """`embedkit encode --split test` (10,000 CIFAR-10 images) with each engine, fresh processes; the checkpoint is
    the small encoder after one step (the weights do not change the time)."""
    import torch

    from embedkit.data.sources import load_images
    from embedkit.training.loop import make_config, train

    torch.set_num_threads(1)
    images = np.random.default_rng(0).integers(0, 256, (8, 32, 32, 3), dtype=np.uint8)
    train(make_config("cpu", epochs=1, batch_size=8, test_images=0), folder / "run", images, device="cpu")
    load_images("cifar10", "test")  # warm the decoded cache, so both engines time encoding alone
    row = {}
    for engine in ("local", "ray"):
        command = ["encode", str(folder / "run" / "last.pt"), "--split", "test", "--engine", engine]
        result = _cli([*command, "--out", str(folder / f"encode-{engine}.h5"), "--device", "cpu"])
        row[engine] = {k: v for k, v in result.items() if k != "json"}
    if "wall_s" in row["local"] and "wall_s" in row["ray"]:
        row["ray_over_local_wall"] = round(row["ray"]["wall_s"] / row["local"]["wall_s"], 2)
    return row


def _machine() -> dict:
    return {"cpu": platform.processor() or platform.machine(), "cores": len(os.sched_getaffinity(0))}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", type=int, nargs="+", default=[50_000, 1_000_000])
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "scale.json")
    parser.add_argument("--encode-only", action="store_true", help="only the encode comparison")
    parser.add_argument(
        "--pairs-only",
        nargs="+",
        choices=ENGINES,
        metavar="ENGINE",
        help="only `pairs --k 10` over every row, with these engines (local, ray), at each size "
        "(exact at 1M rows: about 23 minutes per engine on 2 cores)",
    )
    parser.add_argument(
        "--pairs-index", nargs="+", choices=("flat", "auto"), default=["flat"], help="with --pairs-only: index kinds"
    )
    parser.add_argument("--child", nargs=2, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(_in_process(*args.child)))
        return
    rows = []
    if args.pairs_only:
        with tempfile.TemporaryDirectory(prefix="embedkit-scale-") as tmp:
            rows = [pairs_only(n, Path(tmp), args.pairs_only, args.pairs_index) for n in args.sizes]
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps({"machine": _machine(), "k": K, "pairs": rows}, indent=1) + "\n")
        print(json.dumps(rows), flush=True)
        return
    with tempfile.TemporaryDirectory(prefix="embedkit-scale-") as tmp:
        for n in [] if args.encode_only else args.sizes:
            rows.append(run_size(n, Path(tmp)))
            print(json.dumps(rows[-1]), flush=True)
        encode = encode_comparison(Path(tmp))
        print(json.dumps({"encode_10000": encode}), flush=True)
    result = {"machine": _machine(), "k": K, "queries": QUERIES, "sizes": rows, "encode_10000": encode}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=1) + "\n")


if __name__ == "__main__":
    main()
