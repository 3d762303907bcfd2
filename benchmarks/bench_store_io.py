"""Store I/O: embedkit's HDF5 store against np.save / np.load (and plain h5py) on 50,000 x 128 float32.

    nice python benchmarks/bench_store_io.py            # 50,000 x 128, 7 timed rounds
    nice python benchmarks/bench_store_io.py --quick    # 20,000 x 128, 3 timed rounds (seconds)

Each operation is done on the same (N, 128) float32 embeddings with (N,) int64 labels and ids, written to a fresh
temporary folder:
  write    embedkit `Store.write_group` into a new store; embedkit `Store.group_writer` appending 5,000-row chunks;
           np.save of the three arrays (plain, and followed by fsync as embedkit's atomic commit does); h5py writing
           three contiguous datasets (no chunks, no checksums).
  read     `open_store(path).read(group)` (opening validates the file, reading checks every value is finite and the
           ids unique; `open_embedkit` times the open alone); np.load of the three .npy files; h5py reading the
           three plain datasets.
  rows     1,000 random rows (embeddings, labels, ids): embedkit `open_store(path).read_rows(group, rows)` (reads
           only the chunks holding the rows; 1,000 random rows of 50,000 touch every 2,048-row chunk) and, for
           comparison, "open + read the whole group + index"; 10 random rows through `read_rows`; beside them:
           h5py fancy indexing on the store file itself (the sorted rows, as h5py requires),
           np.load(mmap_mode="r") + index, and np.load + index.
Rounds go through every method in turn (one untimed warm-up round first), so all methods see the same load on a
shared machine; the table shows the median of the timed rounds and the ratio to the NumPy reference. Reads come
from the OS page cache (the files were just written). Writes JSON to benchmarks/results/store_io[_quick].json.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
DIM = 128
GROUP = "bench/train"
CHUNK_ROWS = 5_000
RANDOM_ROWS = 1_000
FEW_ROWS = 10


def make_data(n: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(n, 128) float32 embeddings, (n,) int64 labels in 0..9, (n,) int64 ids 0..n-1."""
    rng = np.random.default_rng(seed)
    return (
        rng.normal(size=(n, DIM)).astype(np.float32),
        rng.integers(0, 10, n, dtype=np.int64),
        np.arange(n, dtype=np.int64),
    )


def _fsync(paths: list[Path]) -> None:
    for path in paths:
        fd = os.open(path, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def write_methods(folder: Path, emb, labels, ids) -> dict[str, Callable[[], None]]:
    """name -> a function writing the arrays from scratch (each removes its previous output first)."""
    import h5py

    from embedkit.store.store import open_store

    npy = [folder / f"{name}.npy" for name in ("embeddings", "labels", "ids")]

    def embedkit_write_group():
        (folder / "wg.h5").unlink(missing_ok=True)
        open_store(folder / "wg.h5", create=True).write_group(GROUP, emb, labels, ids)

    def embedkit_group_writer():
        (folder / "gw.h5").unlink(missing_ok=True)
        with open_store(folder / "gw.h5", create=True).group_writer(GROUP, DIM, expected_rows=len(emb)) as writer:
            for start in range(0, len(emb), CHUNK_ROWS):
                part = slice(start, start + CHUNK_ROWS)
                writer.append(emb[part], labels[part], ids[part])

    def np_save():
        for path, array in zip(npy, (emb, labels, ids)):
            np.save(path, array)

    def np_save_fsync():
        np_save()
        _fsync(npy)

    def h5py_plain():
        with h5py.File(folder / "plain.h5", "w") as h5:
            for name, array in zip(("embeddings", "labels", "ids"), (emb, labels, ids)):
                h5.create_dataset(f"{GROUP}/{name}", data=array)

    return {
        "embedkit_write_group": embedkit_write_group,
        "embedkit_group_writer": embedkit_group_writer,
        "np_save": np_save,
        "np_save_fsync": np_save_fsync,
        "h5py_plain": h5py_plain,
    }


def read_methods(folder: Path, rows: np.ndarray) -> dict[str, Callable[[], object]]:
    """name -> a function reading back what `write_methods` wrote: the whole group, then 1,000 random rows."""
    import h5py

    from embedkit.store.store import open_store

    names = ("embeddings", "labels", "ids")
    sorted_rows = np.sort(rows)

    def h5py_rows(path: Path):
        with h5py.File(path, "r") as h5:
            return tuple(h5[GROUP][name][sorted_rows] for name in names)

    def np_rows(mmap: bool):
        return tuple(np.load(folder / f"{name}.npy", mmap_mode="r" if mmap else None)[rows] for name in names)

    def store_rows_read_all():
        data = open_store(folder / "wg.h5").read(GROUP)
        return data.embeddings[rows], data.labels[rows], data.ids[rows]

    def store_rows(which: np.ndarray):
        data = open_store(folder / "wg.h5").read_rows(GROUP, which)
        return data.embeddings, data.labels, data.ids

    return {
        "open_embedkit": lambda: open_store(folder / "wg.h5"),
        "read_embedkit": lambda: open_store(folder / "wg.h5").read(GROUP),
        "read_np_load": lambda: tuple(np.load(folder / f"{name}.npy") for name in names),
        "read_h5py_plain": lambda: h5py_read_all(folder / "plain.h5", names),
        "rows_embedkit": lambda: store_rows(rows),
        "rows_embedkit_read_all": store_rows_read_all,
        "rows_embedkit_10": lambda: store_rows(rows[:FEW_ROWS]),
        "rows_h5py_on_store": lambda: h5py_rows(folder / "wg.h5"),
        "rows_h5py_plain": lambda: h5py_rows(folder / "plain.h5"),
        "rows_np_mmap": lambda: np_rows(True),
        "rows_np_load": lambda: np_rows(False),
    }


def h5py_read_all(path: Path, names: tuple[str, ...]) -> tuple:
    """The named datasets of GROUP, read whole with plain h5py."""
    import h5py

    with h5py.File(path, "r") as h5:
        return tuple(h5[GROUP][name][()] for name in names)


def time_rounds(methods: dict[str, Callable], rounds: int) -> dict[str, float]:
    """Median seconds per method over `rounds` round-robin rounds, after one untimed warm-up round."""
    times: dict[str, list[float]] = {name: [] for name in methods}
    for round_ in range(rounds + 1):
        for name, fn in methods.items():
            start = time.perf_counter()
            fn()
            if round_:
                times[name].append(time.perf_counter() - start)
    return {name: statistics.median(values) for name, values in times.items()}


def check_reads(folder: Path, emb, labels, ids, rows) -> None:
    """Every reader must return the data written (a benchmark of wrong answers says nothing)."""
    methods = read_methods(folder, rows)
    data = methods["read_embedkit"]()
    assert np.array_equal(data.embeddings, emb) and np.array_equal(data.labels, labels)
    assert np.array_equal(data.ids, ids)
    order = np.argsort(rows)
    for name in ("rows_embedkit", "rows_embedkit_read_all", "rows_np_mmap", "rows_np_load"):
        assert all(np.array_equal(a, b[rows]) for a, b in zip(methods[name](), (emb, labels, ids))), name
    few = rows[:FEW_ROWS]
    assert all(np.array_equal(a, b[few]) for a, b in zip(methods["rows_embedkit_10"](), (emb, labels, ids)))
    for name in ("rows_h5py_on_store", "rows_h5py_plain"):
        assert all(np.array_equal(a, b[rows[order]]) for a, b in zip(methods[name](), (emb, labels, ids))), name


def run(n: int, rounds: int) -> dict:
    emb, labels, ids = make_data(n)
    rows = np.random.default_rng(1).choice(n, size=min(RANDOM_ROWS, n), replace=False)
    with tempfile.TemporaryDirectory(prefix="bench-store-io-") as tmp:
        folder = Path(tmp)
        writes = time_rounds(write_methods(folder, emb, labels, ids), rounds)
        check_reads(folder, emb, labels, ids, rows)
        reads = time_rounds(read_methods(folder, rows), rounds)
        sizes = {
            "embedkit_store": (folder / "wg.h5").stat().st_size,
            "embedkit_group_writer": (folder / "gw.h5").stat().st_size,
            "npy_files": sum((folder / f"{name}.npy").stat().st_size for name in ("embeddings", "labels", "ids")),
            "h5py_plain": (folder / "plain.h5").stat().st_size,
        }
    seconds = {**writes, **reads}
    return {
        "n": n,
        "dim": DIM,
        "random_rows": len(rows),
        "chunk_rows": CHUNK_ROWS,
        "rounds": rounds,
        "seconds": seconds,
        "ratios": ratios(seconds),
        "file_bytes": sizes,
        "raw_bytes": emb.nbytes + labels.nbytes + ids.nbytes,
        "store_has_row_subset_read": True,
    }


def ratios(s: dict[str, float]) -> dict[str, float]:
    """embedkit time / the NumPy reference time for each operation (above 1: embedkit is slower)."""
    pairs = {
        "write_group/np_save": ("embedkit_write_group", "np_save"),
        "write_group/np_save_fsync": ("embedkit_write_group", "np_save_fsync"),
        "group_writer/np_save_fsync": ("embedkit_group_writer", "np_save_fsync"),
        "write_group/h5py_plain": ("embedkit_write_group", "h5py_plain"),
        "read_embedkit/np_load": ("read_embedkit", "read_np_load"),
        "read_embedkit/h5py_plain": ("read_embedkit", "read_h5py_plain"),
        "rows_embedkit/np_mmap": ("rows_embedkit", "rows_np_mmap"),
        "rows_embedkit/rows_embedkit_read_all": ("rows_embedkit", "rows_embedkit_read_all"),
        "rows_embedkit_read_all/np_mmap": ("rows_embedkit_read_all", "rows_np_mmap"),
        "rows_h5py_on_store/np_mmap": ("rows_h5py_on_store", "rows_np_mmap"),
    }
    return {key: s[a] / s[b] for key, (a, b) in pairs.items()}


def print_table(report: dict) -> None:
    s, r = report["seconds"], report["ratios"]
    print(
        f"store I/O, {report['n']:,} x {report['dim']} float32 + labels + ids "
        f"({report['raw_bytes'] / 2**20:.1f} MiB raw), median of {report['rounds']} rounds"
    )
    print(f"{'operation':<28}{'ms':>10}{'MiB/s':>9}")
    for name, seconds in s.items():
        moved = report["raw_bytes"] if name.startswith(("embedkit_", "np_", "h5py_", "read_")) else None
        rate = f"{moved / 2**20 / seconds:>9,.0f}" if moved else f"{'':>9}"
        print(f"{name:<28}{seconds * 1e3:>10.1f}{rate}")
    print("ratios (embedkit time / reference time; > 1 means slower):")
    for key, value in r.items():
        print(f"  {key:<36}{value:6.2f}x")
    print("file sizes: " + ", ".join(f"{k} {v / 2**20:.2f} MiB" for k, v in report["file_bytes"].items()))
    print(
        f"NOTE: rows_embedkit is Store.read_rows of {report['random_rows']:,} random rows (only the chunks holding "
        f"them; here that is every chunk), rows_embedkit_10 of {FEW_ROWS}; rows_embedkit_read_all reads the whole "
        "group and indexes it; rows_h5py_on_store reads the store file with h5py."
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="20,000 rows, 3 rounds (seconds)")
    parser.add_argument("--rows", type=int, help="rows to write [50,000; --quick 20,000]")
    parser.add_argument("--rounds", type=int, help="timed rounds per method (median) [7; --quick 3]")
    parser.add_argument("--out", type=Path, help="JSON output [benchmarks/results/store_io[_quick].json]")
    args = parser.parse_args()
    n = args.rows or (20_000 if args.quick else 50_000)
    rounds = args.rounds or (3 if args.quick else 7)
    load_before, start = os.getloadavg(), time.perf_counter()
    report = run(n, rounds)
    machine = {
        "platform": platform.platform(),
        "python": platform.python_version(),
        "cpus": len(os.sched_getaffinity(0)),
        "loadavg_before": load_before,
        "loadavg_after": os.getloadavg(),
    }
    report.update(
        quick=args.quick,
        wall_s=round(time.perf_counter() - start, 1),
        measured=time.strftime("%Y-%m-%d %H:%M"),
        machine=machine,
    )
    print_table(report)
    out = args.out or ROOT / "benchmarks" / "results" / ("store_io_quick.json" if args.quick else "store_io.json")
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"benchmark": "store_io", **report}, indent=2) + "\n")
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
