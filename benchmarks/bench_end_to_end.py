"""End to end: the seconds a user waits for `embedkit pairs`, `anomaly` and `cluster` on a 60,000-row store.

    nice python benchmarks/bench_end_to_end.py            # 50,000 train + 10,000 test + 10,000 ood rows (minutes)
    nice python benchmarks/bench_end_to_end.py --quick    # 5,000 + 1,000 + 1,000 rows

Store: 10 classes of clustered synthetic 128-d vectors (Gaussian classes in a 16-D latent space, mapped linearly
into 128 dimensions, plus small noise), written as groups synthetic/train and synthetic/test, and synthetic/ood:
fresh samples of the same classes shifted away in the latent space (labels -1).

Each command runs as a fresh `embedkit` process (interpreter start and imports included: that is what users wait
for) in a temporary folder, writing its files there:
    embedkit pairs STORE --group synthetic/train --k 3
    embedkit anomaly STORE --reference synthetic/train --normal synthetic/test --ood synthetic/ood
    embedkit cluster STORE --group synthetic/test --k 10                  (default t-SNE map; not in --quick)
    embedkit cluster STORE --group synthetic/test --k 10 --map pca        (k-means without t-SNE)
    embedkit cluster STORE --group synthetic/train --k 10 --map pca       (k-means on all 50,000 train rows)
`embedkit --help` is timed too: the start-up cost inside every number. Each command's --json answer is kept
(ROC-AUC, ARI, ...), so a fast wrong answer shows. If the real CIFAR-10 store exists (--real-store, default
embedkit-work/store.h5 with cifar10/train), a copy of it gets pairs, anomaly (--ood mnist: encoded with the store's
checkpoint unless the group is there) and cluster too. Writes benchmarks/results/end_to_end[_quick].json.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
DIM, CLASSES, LATENT = 128, 10, 16
SIZES = {"full": (50_000, 10_000, 10_000), "quick": (5_000, 1_000, 1_000)}
SYNTHETIC_GROUPS = ("synthetic/train", "synthetic/test", "synthetic/ood")


def make_class_vectors(n: int, seed: int, shift: float = 0.0) -> tuple[np.ndarray, np.ndarray]:
    """(n, 128) float32 vectors of 10 Gaussian classes and their (n,) int64 labels; `shift` moves every latent point.

    The classes and the map into 128-D are fixed (seed 12345); `seed` only picks the samples.
    """
    mixture = np.random.default_rng(12345)
    centers, lift = mixture.normal(size=(CLASSES, LATENT)) * 2, mixture.normal(size=(LATENT, DIM)) / 4
    direction = mixture.normal(size=LATENT)
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, CLASSES, n).astype(np.int64)
    latent = centers[labels] + rng.normal(size=(n, LATENT)) + shift * direction / np.linalg.norm(direction)
    vectors = latent @ lift + rng.normal(scale=0.1, size=(n, DIM))
    return vectors.astype(np.float32), labels


def write_synthetic_store(path: Path, n_train: int, n_test: int, n_ood: int) -> None:
    """The benchmark store: synthetic/train, synthetic/test (labelled) and synthetic/ood (shifted, labels -1)."""
    from embedkit.store.store import open_store

    store = open_store(path, create=True)
    attrs = {"class_names": [f"class{i}" for i in range(CLASSES)]}
    for group, n, seed, shift in zip(SYNTHETIC_GROUPS, (n_train, n_test, n_ood), (1, 2, 3), (0.0, 0.0, 8.0)):
        vectors, labels = make_class_vectors(n, seed, shift)
        store.write_group(group, vectors, labels if not shift else np.full(n, -1), attrs=attrs)


def synthetic_commands(store: Path, out: Path, tsne: bool) -> dict[str, list[str]]:
    figures = ["--out", str(out / "figures")]
    commands = {
        "pairs k=3 (train)": [
            "pairs",
            str(store),
            "--group",
            "synthetic/train",
            "--k",
            "3",
            "--out",
            str(out / "pairs.h5"),
        ],
        "anomaly (test vs ood)": [
            "anomaly",
            str(store),
            "--reference",
            "synthetic/train",
            "--normal",
            "synthetic/test",
            "--ood",
            "synthetic/ood",
            *figures,
        ],
        "cluster k=10 (test, t-SNE map)": ["cluster", str(store), "--group", "synthetic/test", "--k", "10", *figures],
        "cluster k=10 (test, PCA map)": [
            "cluster",
            str(store),
            "--group",
            "synthetic/test",
            "--k",
            "10",
            "--map",
            "pca",
            *figures,
        ],
        "cluster k=10 (train, PCA map)": [
            "cluster",
            str(store),
            "--group",
            "synthetic/train",
            "--k",
            "10",
            "--map",
            "pca",
            *figures,
        ],
    }
    if not tsne:
        del commands["cluster k=10 (test, t-SNE map)"]
    return commands


def real_commands(store: Path, out: Path, tsne: bool) -> dict[str, list[str]]:
    figures = ["--out", str(out / "figures-real")]
    cluster = ["cluster", str(store), "--group", "cifar10/test", "--k", "10", *figures]
    return {
        "real: pairs k=3 (cifar10/train)": [
            "pairs",
            str(store),
            "--group",
            "cifar10/train",
            "--k",
            "3",
            "--out",
            str(out / "pairs-real.h5"),
        ],
        "real: anomaly (--ood mnist)": ["anomaly", str(store), "--ood", "mnist", *figures],
        f"real: cluster k=10 (test, {'t-SNE' if tsne else 'PCA'} map)": cluster if tsne else [*cluster, "--map", "pca"],
    }


def run_cli(args: list[str], cwd: Path, repeats: int) -> dict:
    """Median wall seconds of `embedkit ARGS --json` as a fresh process, and its JSON answer (or the error)."""
    embedkit = Path(sys.executable).with_name("embedkit")
    env = {**os.environ, "MPLBACKEND": "Agg", "NO_COLOR": "1", "COLUMNS": "120"}
    times, cpu = [], []
    for _ in range(repeats):
        cpu_before, start = _children_cpu_s(), time.perf_counter()
        done = subprocess.run(
            [str(embedkit), *args, "--json"], cwd=cwd, env=env, capture_output=True, text=True, check=False
        )
        times.append(time.perf_counter() - start)
        cpu.append(_children_cpu_s() - cpu_before)
        if done.returncode != 0:
            return {
                "command": _shown(args),
                "ok": False,
                "exit_code": done.returncode,
                "error": (done.stderr.strip() or done.stdout.strip())[-600:],
            }
    return {
        "command": _shown(args),
        "ok": True,
        "seconds": statistics.median(times),
        "cpu_s": statistics.median(cpu),
        "runs_s": times,
        "answer": json.loads(done.stdout),
    }


def _children_cpu_s() -> float:
    """User + system CPU seconds of all finished child processes (on a shared machine: what the work cost)."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def _shown(args: list[str]) -> str:
    """The command line with temporary paths shortened to their names, for the table and the JSON."""
    return "embedkit " + " ".join(Path(a).name if a.startswith(tempfile.gettempdir()) else a for a in args)


def key_numbers(name: str, answer: dict) -> dict:
    """The few numbers from a command's --json answer that say it did the right thing."""
    if name.endswith("--help"):
        return {}
    if "pairs" in name:
        return {"library_s": answer.get("seconds")}
    if "anomaly" in name:
        store = answer["stores"][0]
        return {key: store.get(key) for key in ("roc_auc", "n_normal", "n_ood", "encoded_ood")}
    store = answer["stores"][0]
    return {key: store.get(key) for key in ("ari", "nmi", "n")}


def time_help(cwd: Path) -> dict:
    """Seconds for `embedkit --help` in a fresh process: the start-up every command pays."""
    embedkit = Path(sys.executable).with_name("embedkit")
    times, cpu = [], []
    for _ in range(3):
        cpu_before, start = _children_cpu_s(), time.perf_counter()
        subprocess.run([str(embedkit), "--help"], cwd=cwd, capture_output=True, check=True)
        times.append(time.perf_counter() - start)
        cpu.append(_children_cpu_s() - cpu_before)
    return {
        "command": "embedkit --help",
        "ok": True,
        "seconds": statistics.median(times),
        "cpu_s": statistics.median(cpu),
        "runs_s": times,
    }


def real_store_rows(path: Path) -> dict[str, int] | None:
    """Rows per group of the real CIFAR-10 store, or None when it is absent (or has no cifar10/train)."""
    from embedkit.errors import StoreError
    from embedkit.store.store import open_store

    if not path.is_file():
        return None
    try:
        store = open_store(path)
        rows = {info.name: info.n for info in store.describe()}
    except StoreError:
        return None
    return rows if "cifar10/train" in rows else None


def run(sizes: tuple[int, int, int], repeats: int, real_store: Path | None, tsne: bool) -> dict:
    with tempfile.TemporaryDirectory(prefix="bench-e2e-") as tmp:
        folder = Path(tmp)
        start = time.perf_counter()
        write_synthetic_store(folder / "synthetic.h5", *sizes)
        results = {"store_write_s": time.perf_counter() - start, "commands": {}}
        # warm-up: the first process after a while pays for reading torch, faiss and sklearn from disk
        subprocess.run([sys.executable, "-c", "import torch, faiss, sklearn, h5py, matplotlib"], check=True)
        commands = {"embedkit --help": time_help(folder)}
        for name, args in synthetic_commands(folder / "synthetic.h5", folder, tsne).items():
            print(f"  {name} ...", file=sys.stderr, flush=True)
            commands[name] = run_cli(args, folder, repeats)
        real_rows = real_store_rows(real_store) if real_store else None
        if real_rows:
            shutil.copy(real_store, folder / "real.h5")  # anomaly may add mnist/test: never touch the user's store
            for name, args in real_commands(folder / "real.h5", folder, tsne).items():
                print(f"  {name} ...", file=sys.stderr, flush=True)
                commands[name] = run_cli(args, folder, repeats)
        for name, result in commands.items():
            if result["ok"]:
                result.update(key_numbers(name, result.pop("answer", {})))
        results["commands"] = commands
        results["real_store"] = {"path": str(real_store), "rows": real_rows} if real_rows else None
    return results


def print_table(report: dict) -> None:
    n_train, n_test, n_ood = report["rows"]
    print(
        f"end to end: synthetic store {n_train:,} train + {n_test:,} test + {n_ood:,} ood rows x {DIM} "
        f"(written in {report['store_write_s']:.1f} s); median of {report['repeats']} fresh process(es); "
        f"load average before {report['machine']['loadavg_before'][0]:.1f}"
    )
    print(f"{'command':<36}{'wall s':>8}{'CPU s':>7}  result")
    for name, r in report["commands"].items():
        if not r["ok"]:
            print(f"{name:<36}{'FAILED':>15}  exit {r['exit_code']}: {r['error'].splitlines()[-1][:70]}")
            continue
        numbers = ", ".join(
            f"{k} {v:.3f}" if isinstance(v, float) else f"{k} {v}"
            for k, v in r.items()
            if k not in ("command", "ok", "seconds", "cpu_s", "runs_s")
        )
        print(f"{name:<36}{r['seconds']:>8.1f}{r['cpu_s']:>7.1f}  {numbers}")
    if report["real_store"] is None:
        print("real CIFAR-10 store: not found (pass --real-store; default embedkit-work/store.h5)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="5,000 + 1,000 + 1,000 rows (under a minute)")
    parser.add_argument("--repeats", type=int, default=1, help="fresh processes per command (median) [1]")
    parser.add_argument(
        "--real-store",
        type=Path,
        default=ROOT / "embedkit-work" / "store.h5",
        help="real CIFAR-10 store to time too, if it exists [embedkit-work/store.h5]",
    )
    parser.add_argument(
        "--tsne",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="time the cluster command with its default t-SNE map (minutes at 10,000 points on "
        "2 cores) [on; --quick: off]",
    )
    parser.add_argument("--no-real", action="store_true", help="skip the real store even if it exists")
    parser.add_argument("--out", type=Path, help="JSON output [benchmarks/results/end_to_end[_quick].json]")
    args = parser.parse_args()
    sizes = SIZES["quick" if args.quick else "full"]
    tsne = not args.quick if args.tsne is None else args.tsne
    load_before, start = os.getloadavg(), time.perf_counter()
    report = {
        "benchmark": "end_to_end",
        "quick": args.quick,
        "rows": sizes,
        "repeats": args.repeats,
        "tsne": tsne,
        **run(sizes, args.repeats, None if args.no_real else args.real_store, tsne),
    }
    report.update(
        wall_s=round(time.perf_counter() - start, 1),
        measured=time.strftime("%Y-%m-%d %H:%M"),
        machine={
            "platform": platform.platform(),
            "python": platform.python_version(),
            "cpus": len(os.sched_getaffinity(0)),
            "loadavg_before": load_before,
            "loadavg_after": os.getloadavg(),
        },
    )
    print_table(report)
    out = args.out or ROOT / "benchmarks" / "results" / ("end_to_end_quick.json" if args.quick else "end_to_end.json")
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=2) + "\n")
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
