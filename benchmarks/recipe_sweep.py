"""Recipe sweep for the cpu presets (issue 19): train variants of the `cpu` preset in parallel, probe each.

    python benchmarks/recipe_sweep.py --parallel 12 --deadline-s 300          # on a GPU: each run takes seconds
    python benchmarks/recipe_sweep.py --tiny --only cpu6                      # a dry run on a CPU

Accuracy per epoch budget does not depend on the device, so a GPU that is lent for a few minutes answers "which
recipe learns most per image" for many variants at once; the CPU then times only the winners. Each variant is
`make_config("cpu", **overrides)` trained on the CIFAR-10 train split, encoded (train and test) and scored by
embedkit's linear probe, exactly as `embedkit train/encode/probe` do. One JSON line per finished variant on stdout
and in --out; variants still running at the deadline are stopped and reported as such.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

# name -> overrides of the cpu preset, most informative first (a deadline drops the tail)
VARIANTS: dict[str, dict] = {
    "cpu6-fp32": dict(epochs=6),
    "cpu6": dict(epochs=6, amp=True),
    "cpu12": dict(epochs=12, amp=True),
    "p2048-12": dict(epochs=12, amp=True, projector_dim=2048),
    "p1024-12": dict(epochs=12, amp=True, projector_dim=1024),
    "b128-12": dict(epochs=12, amp=True, batch_size=128),
    "lr2e-3-12": dict(epochs=12, amp=True, lr=2e-3),
    "p2048-b128-12": dict(epochs=12, amp=True, projector_dim=2048, batch_size=128),
    "p2048-8": dict(epochs=8, amp=True, projector_dim=2048),
    "p2048-16": dict(epochs=16, amp=True, projector_dim=2048),
    "p2048-24": dict(epochs=24, amp=True, projector_dim=2048),
    "cpu24": dict(epochs=24, amp=True),
    "p2048-wd-12": dict(epochs=12, amp=True, projector_dim=2048, weight_decay=1e-4, lr=2e-3),
    "p2048-crop3-12": dict(epochs=12, amp=True, projector_dim=2048, views={"crop_scale": (0.3, 1.0)}),
    # second round: equal CPU minutes (bf16 on an AMX CPU: p512 765 img/s, p1024 ~650, p2048 520)
    "p1024-22": dict(epochs=22, amp=True, projector_dim=1024),
    "p1024-lr2e-3-22": dict(epochs=22, amp=True, projector_dim=1024, lr=2e-3),
    "lr2e-3-26": dict(epochs=26, amp=True, lr=2e-3),
    "cpu26": dict(epochs=26, amp=True),
    "p2048-lr2e-3-18": dict(epochs=18, amp=True, projector_dim=2048, lr=2e-3),
}


def run_variant(name: str, tiny: bool, data_root: Path | None) -> dict:
    import numpy as np
    import torch

    from embedkit.data import load_images
    from embedkit.eval.probe import linear_probe
    from embedkit.training import load_checkpoint, make_config
    from embedkit.training.encode import encode_images
    from embedkit.training.loop import train
    from embedkit.training.views import ViewConfig

    overrides = dict(VARIANTS[name])
    views = overrides.pop("views", None)
    if views:
        overrides["views"] = ViewConfig(**views)
    if tiny:
        overrides.update(epochs=1, subset=256)
    config = make_config("cpu", test_images=0, **overrides)
    train_set, test_set = load_images("cifar10", "train", data_root), load_images("cifar10", "test", data_root)
    train_x, test_x = train_set.images, test_set.images
    train_y, test_y = np.asarray(train_set.labels), np.asarray(test_set.labels)
    if tiny:
        train_x, train_y, test_x, test_y = train_x[:512], train_y[:512], test_x[:256], test_y[:256]
    with tempfile.TemporaryDirectory() as tmp:
        started = time.perf_counter()
        result = train(config, Path(tmp) / "run", train_x)
        train_seconds = time.perf_counter() - started
        encoder, _ = load_checkpoint(result.checkpoint)
        probe = linear_probe(encode_images(encoder, train_x), train_y, encode_images(encoder, test_x), test_y)
    return {
        "variant": name,
        "overrides": {k: v for k, v in VARIANTS[name].items()},
        "device": "cuda" if torch.cuda.is_available() else "cpu",
        "epochs": config.epochs,
        "train_seconds": round(train_seconds, 1),
        "images_per_s": round(result.images_per_s, 1),
        "linear_probe": round(probe.accuracy, 4),
        "knn_accuracy": round(probe.knn_accuracy, 4),
        "final_terms": result.train_terms,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--parallel", type=int, default=1, help="variants trained at once [1]")
    parser.add_argument("--deadline-s", type=float, default=600.0, help="stop what still runs after this [600]")
    parser.add_argument("--only", nargs="*", help=f"variants to run [all]: {', '.join(VARIANTS)}")
    parser.add_argument("--data-root", type=Path, default=None)
    parser.add_argument("--tiny", action="store_true", help="1 epoch on 256 images: a dry run")
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "recipe_sweep.jsonl")
    parser.add_argument("--one", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one:
        print(json.dumps(run_variant(args.one, args.tiny, args.data_root), default=str), flush=True)
        return
    names = args.only or list(VARIANTS)
    unknown = sorted(set(names) - set(VARIANTS))
    if unknown:
        parser.error(f"unknown variants: {', '.join(unknown)}")
    deadline = time.monotonic() + args.deadline_s
    args.out.parent.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", "1")}
    pending, running = list(names), {}
    with args.out.open("a") as out:
        while pending or running:
            while pending and len(running) < args.parallel:
                name = pending.pop(0)
                command = [sys.executable, __file__, "--one", name]
                command += ["--tiny"] * args.tiny + (["--data-root", str(args.data_root)] if args.data_root else [])
                running[name] = subprocess.Popen(command, stdout=subprocess.PIPE, text=True, env=env)
            for name, process in list(running.items()):
                if process.poll() is None and time.monotonic() < deadline:
                    continue
                if process.poll() is None:
                    process.kill()
                    line = json.dumps({"variant": name, "stopped": "deadline"})
                else:
                    lines = process.stdout.read().strip().splitlines()
                    line = (
                        lines[-1]
                        if process.returncode == 0 and lines
                        else json.dumps({"variant": name, "error": f"exit {process.returncode}"})
                    )
                del running[name]
                print(line, flush=True)
                out.write(line + "\n")
            if time.monotonic() >= deadline:
                for name in pending:
                    print(json.dumps({"variant": name, "stopped": "not started before the deadline"}), flush=True)
                pending.clear()
            time.sleep(0.5)


if __name__ == "__main__":
    main()
