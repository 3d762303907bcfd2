"""Time loading all of CIFAR-10 (train + test) from the .tar.gz: cold (empty cache) and warm (cache filled).

    python benchmarks/bench_data_load.py                    # data root: --data-root, else $EMBEDKIT_DATA
    python benchmarks/bench_data_load.py --cold-repeats 1 --warm-repeats 3

Each run is a fresh Python process, as a user's command would be. "import" is the time to import torch and
torchvision, which every command that uses the images (train, encode) pays anyway; "load" is the two
`load_images` calls after that, as wall and as CPU seconds (on a shared machine the CPU time says what the work
costs, the wall time what a user waited); "process" is the whole run, interpreter start included. Each cold run gets
a new, empty cache folder (the archive is read once beforehand, so the OS file cache, not the disk, serves it); warm
runs reuse the cache the first cold run filled. Reports medians and the cold/warm ratio. Targets, on "load":
cold < 30 s, warm < 2 s. Writes a table to stdout and everything to benchmarks/results/data_load.json.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
TARGETS_S = {"cold": 30.0, "warm": 2.0}


def child(data_root: str) -> None:
    """Run in the subprocess: load both splits, print timings as one JSON line."""
    start = time.perf_counter()
    import torch  # noqa: F401 - every command that uses the images imports these anyway
    import torchvision  # noqa: F401

    from embedkit.data.sources import load_images

    imported, cpu = time.perf_counter(), time.process_time()
    sizes = {split: len(load_images("cifar10", split, Path(data_root)).images) for split in ("train", "test")}
    done = time.perf_counter()
    timings = {"import_s": imported - start, "load_s": done - imported, "load_cpu_s": time.process_time() - cpu}
    print(json.dumps({**timings, "sizes": sizes}))


def run_once(data_root: Path, cache: Path) -> dict:
    env = {**os.environ, "EMBEDKIT_CACHE": str(cache)}
    start = time.perf_counter()
    out = subprocess.run(
        [sys.executable, __file__, "--child", "--data-root", str(data_root)],
        env=env,
        capture_output=True,
        text=True,
        check=True,
        cwd=ROOT,
    )
    result = json.loads(out.stdout.strip().splitlines()[-1])
    result["process_s"] = time.perf_counter() - start
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-root", type=Path, default=os.environ.get("EMBEDKIT_DATA"))
    parser.add_argument("--cold-repeats", type=int, default=2)
    parser.add_argument("--warm-repeats", type=int, default=5)
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.data_root is None or not (Path(args.data_root) / "cifar10-jpeg.tar.gz").is_file():
        sys.exit("needs cifar10-jpeg.tar.gz: pass --data-root or set EMBEDKIT_DATA")
    if args.child:
        return child(str(args.data_root))

    archive = Path(args.data_root) / "cifar10-jpeg.tar.gz"
    archive.read_bytes()  # the OS file cache, not the disk, serves every run
    load_before = os.getloadavg()
    with tempfile.TemporaryDirectory(prefix="embedkit-bench-") as tmp:
        runs = {"cold": [], "warm": []}
        for i in range(args.cold_repeats):
            runs["cold"].append(run_once(args.data_root, Path(tmp) / f"cache-{i}"))
        for _ in range(args.warm_repeats):
            runs["warm"].append(run_once(args.data_root, Path(tmp) / "cache-0"))
    report(runs, archive, load_before)


def report(runs: dict, archive: Path, load_before: tuple) -> None:
    summary = {}
    print(f"{'run':<6}{'n':>3}{'load s':>9}{'load cpu s':>12}{'target s':>10}  ok{'import s':>10}{'process s':>11}")
    for phase, results in runs.items():
        keys = ("process_s", "load_s", "load_cpu_s", "import_s")
        med = {key: statistics.median(r[key] for r in results) for key in keys}
        ok = med["load_s"] < TARGETS_S[phase]
        summary[phase] = {**med, "n": len(results), "target_s": TARGETS_S[phase], "ok": ok, "runs": results}
        print(
            f"{phase:<6}{len(results):>3}{med['load_s']:>9.2f}{med['load_cpu_s']:>12.2f}"
            f"{TARGETS_S[phase]:>10.0f}  {'yes' if ok else 'NO ':<3}{med['import_s']:>9.2f}{med['process_s']:>11.2f}"
        )
    ratio = summary["cold"]["load_s"] / summary["warm"]["load_s"]
    print(f"cold/warm load ratio: {ratio:.0f}x; images: {runs['cold'][0]['sizes']}")
    payload = {
        "benchmark": "data_load",
        "archive": str(archive),
        "archive_bytes": archive.stat().st_size,
        "machine": {
            "platform": platform.platform(),
            "python": platform.python_version(),
            "cpus": os.cpu_count(),
            "loadavg_before": load_before,
            "loadavg_after": os.getloadavg(),
        },
        "cold_warm_load_ratio": ratio,
        **summary,
    }
    out = ROOT / "benchmarks" / "results" / "data_load.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(payload, indent=2) + "\n")
    print(f"wrote {out.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
