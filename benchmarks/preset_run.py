"""One measured run of a training preset, end to end as a user types it, and its results file (issue 19).

    python benchmarks/preset_run.py --preset cpu --seed 0          # -> docs/results/preset-cpu-seed0-<date>.json
    python benchmarks/preset_run.py --preset cpu --subset 512 --epochs 1 --out /tmp/x.json    # a dry run

Runs `embedkit train --preset P --seed S`, `embedkit encode` and `embedkit probe` in fresh processes in an empty
workspace, times each, and writes one JSON file with the preset, seed, encoder, epochs, train_seconds (the train
command's wall time), linear_probe and knn_accuracy (0-1), the machine (CPU model, cores, the flags that decide the
speed), the commit, the full config and the per-epoch mean losses (train and test). Timings need idle cores.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from embedkit.device import cpu_bf16_native  # noqa: E402 - after the repository is on the path

SPEED_FLAGS = ("avx2", "avx512f", "avx512_bf16", "amx_bf16", "amx_tile")


def machine() -> dict:
    """CPU model, usable cores and the instruction-set flags that decide training speed."""
    model, flags = platform.processor() or "unknown", set()
    try:
        for line in Path("/proc/cpuinfo").read_text(errors="replace").splitlines():
            if line.startswith("model name"):
                model = line.partition(":")[2].strip()
            elif line.startswith("flags"):
                flags = set(line.partition(":")[2].split())
    except OSError:
        pass
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return {"cpu": model, "cores": cores, "flags": [f for f in SPEED_FLAGS if f in flags], "gpu": None}


def commit() -> str:
    """The checked-out commit, with `+dirty` when the tree has uncommitted changes."""
    head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=ROOT, capture_output=True, text=True).stdout.strip()
    dirty = subprocess.run(
        ["git", "status", "--porcelain", "--untracked-files=no"], cwd=ROOT, capture_output=True, text=True
    ).stdout.strip()
    return head + ("+dirty" if dirty else "")


def timed(command: list[str], env: dict) -> tuple[dict, float, float]:
    """Run one embedkit command with --json; (its JSON, wall seconds, CPU seconds of the child)."""
    started, cpu_before = time.perf_counter(), os.times()
    done = subprocess.run(command, capture_output=True, text=True, env=env)
    wall, cpu_after = time.perf_counter() - started, os.times()
    if done.returncode != 0:
        sys.exit(f"{' '.join(command)} failed ({done.returncode}):\n{done.stderr[-3000:]}")
    cpu = (cpu_after.children_user - cpu_before.children_user) + (
        cpu_after.children_system - cpu_before.children_system
    )
    return json.loads(done.stdout), wall, cpu


def epoch_losses(log_path: Path) -> list[dict]:
    """Per-epoch mean of the train terms, beside the test terms logged at the end of each epoch."""
    sums: dict[int, dict] = {}
    tests: dict[int, dict] = {}
    for line in log_path.read_text().splitlines():
        record = json.loads(line)
        terms = {k: record[k] for k in ("total", "inv", "var", "cov")}
        if record["split"] == "train":
            acc = sums.setdefault(record["epoch"], {"n": 0, **dict.fromkeys(terms, 0.0)})
            acc["n"] += 1
            for k, v in terms.items():
                acc[k] += v
        else:
            tests[record["epoch"]] = terms
    return [
        {
            "epoch": epoch + 1,
            "train": {k: round(acc[k] / acc["n"], 5) for k in ("total", "inv", "var", "cov")},
            "test": {k: round(v, 5) for k, v in tests[epoch].items()} if epoch in tests else None,
        }
        for epoch, acc in sorted(sums.items())
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--preset", default="cpu")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--epochs", type=int, help="override the preset's epochs (dry runs)")
    parser.add_argument("--subset", type=int, help="train on N images (dry runs)")
    parser.add_argument("--out", type=Path, help="results file [docs/results/preset-<preset>-seed<S>-<date>.json]")
    args = parser.parse_args()
    today = datetime.date.today().isoformat()
    out = args.out or ROOT / "docs" / "results" / f"preset-{args.preset}-seed{args.seed}-{today}.json"
    embedkit = [sys.executable, "-m", "embedkit_cli.main"]
    with tempfile.TemporaryDirectory(prefix="embedkit-preset-") as workspace:
        env = {**os.environ, "EMBEDKIT_HOME": workspace, "COLUMNS": "120"}
        train_cmd = ["train", "--preset", args.preset, "--seed", str(args.seed)]
        train_cmd += ["--epochs", str(args.epochs)] * (args.epochs is not None)
        train_cmd += ["--subset", str(args.subset)] * (args.subset is not None)
        trained, train_wall, train_cpu = timed([*embedkit, *train_cmd, "--json"], env)
        encode_cmd = ["encode", *["--subset", str(args.subset)] * (args.subset is not None)]
        encoded, encode_wall, _ = timed([*embedkit, *encode_cmd, "--json"], env)
        probed, probe_wall, _ = timed([*embedkit, "probe", "--json"], env)
        run_dir = Path(trained["run_dir"])
        config = json.loads((run_dir / "config.json").read_text())
        losses = epoch_losses(run_dir / "log.jsonl")
    probe = probed["stores"][0]
    result = {
        "preset": args.preset,
        "seed": args.seed,
        "encoder": config["encoder"],
        "epochs": config["epochs"],
        "train_seconds": round(train_wall, 1),
        "train_cpu_seconds": round(train_cpu, 1),
        "images_per_s": trained.get("images_per_s"),
        "linear_probe": probe["accuracy"],
        "knn_accuracy": probe["knn_accuracy"],
        "encode_seconds": round(encode_wall, 1),
        "probe_seconds": round(probe_wall, 1),
        "commands": ["embedkit " + " ".join(train_cmd), "embedkit " + " ".join(encode_cmd), "embedkit probe"],
        "model": probe.get("model"),
        "machine": machine(),
        "bf16_autocast": bool(config["amp"]) and cpu_bf16_native(),
        "commit": commit(),
        "date": today,
        "config": config,
        "epoch_losses": losses,
    }
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=1) + "\n")
    summary = {k: result[k] for k in ("preset", "seed", "epochs", "train_seconds", "linear_probe", "knn_accuracy")}
    print(json.dumps({**summary, "file": str(out), "groups": [g["group"] for g in encoded["groups"]]}))


if __name__ == "__main__":
    main()
