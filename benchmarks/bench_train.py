"""Training throughput: a VICReg step per encoder kind, and batched views against a per-image PIL pipeline.

    python benchmarks/bench_train.py            # full: 5 timed steps (small), 2 (resnet18), 10 view batches
    python benchmarks/bench_train.py --quick    # 2 / 1 / 3 repeats

"step": one optimiser step on a batch of 256 images with two views (views made on the device, both forward
passes, loss, backward, Adam), images/s = 256 / step time, on all the threads torch uses. "views": images/s of one
view of a batch of 256 on ONE thread, for embedkit's batched ops (embedkit.training.views), kornia's augmentation
pipeline and torchvision's per-image PIL pipeline (the same recipe); the target is batched >= 5x PIL. Each number
is the median of the repeats after a warm-up. On a shared machine the load average is reported beside them, and
"images_per_cpu_s" (images per CPU-second of this process) says what a step costs whatever the load: on an idle
machine, images/s is about that times the cores used (minus threading losses; with busy-waiting OpenMP threads
on a loaded machine it is an underestimate).
Writes a table to stdout and everything to benchmarks/results/train.json, with the time one epoch of CIFAR-10
(50,000 images) and a run of the cpu preset would take at the measured rate.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
BATCH = 256
CIFAR_TRAIN = 50_000


def _median_s(fn, repeats: int, cpu_times: list | None = None) -> float:
    """Median wall seconds of `fn` after a warm-up; its CPU seconds (all threads) go to `cpu_times` if given."""
    fn()  # warm-up: allocations, oneDNN primitive creation
    times = []
    for _ in range(repeats):
        start, cpu = time.perf_counter(), time.process_time()
        fn()
        times.append(time.perf_counter() - start)
        if cpu_times is not None:
            cpu_times.append(time.process_time() - cpu)
    return statistics.median(times)


def bench_step(kind: str, repeats: int) -> dict:
    """Images/s of a full training step for encoder `kind` on the current device."""
    from dataclasses import replace

    from embedkit.device import pick_device
    from embedkit.training.loop import _new_session, _train_step, make_config, make_pair_source

    device = pick_device("auto")
    config = replace(make_config("cpu"), encoder=kind)
    images = np.random.default_rng(0).integers(0, 256, (BATCH, 32, 32, 3), dtype=np.uint8)
    session = _new_session(config, device)
    source = make_pair_source(config, images, device)
    rows = torch.arange(BATCH)

    def step():
        _train_step(session, source, rows, config.lr, config)
        if device.type == "cuda":
            torch.cuda.synchronize()

    cpu_times: list[float] = []
    seconds = _median_s(step, repeats, cpu_times)
    params = sum(p.numel() for p in session.encoder.parameters())
    return {
        "encoder": kind,
        "device": str(device),
        "threads": torch.get_num_threads(),
        "batch": BATCH,
        "step_s": seconds,
        "images_per_s": BATCH / seconds,
        "params": params,
        "images_per_cpu_s": BATCH / statistics.median(cpu_times),
    }


def bench_views(repeats: int) -> dict:
    """Images/s of one view per image on one thread: batched embedkit ops, kornia, per-image PIL."""
    import kornia.augmentation as K
    import torchvision.transforms as T
    from PIL import Image

    from embedkit.training.views import ViewConfig, make_views

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    config = ViewConfig()
    pixels = np.random.default_rng(0).integers(0, 256, (BATCH, 32, 32, 3), dtype=np.uint8)
    x = torch.from_numpy(pixels).permute(0, 3, 1, 2).float() / 255
    generator = torch.Generator().manual_seed(0)
    kornia_views = torch.nn.Sequential(
        K.RandomResizedCrop((32, 32), scale=config.crop_scale),
        K.RandomHorizontalFlip(),
        K.ColorJitter(*config.jitter, p=config.jitter_p),
        K.RandomGrayscale(p=config.gray_p),
        K.RandomGaussianBlur((3, 3), config.blur_sigma, p=config.blur_p),
        K.Normalize(torch.tensor(config.mean), torch.tensor(config.std)),
    )
    pil_views = T.Compose(
        [
            T.RandomResizedCrop(32, scale=config.crop_scale),
            T.RandomHorizontalFlip(),
            T.RandomApply([T.ColorJitter(*config.jitter)], p=config.jitter_p),
            T.RandomGrayscale(config.gray_p),
            T.RandomApply([T.GaussianBlur(3, config.blur_sigma)], p=config.blur_p),
            T.ToTensor(),
            T.Normalize(config.mean, config.std),
        ]
    )
    pil_images = [Image.fromarray(p) for p in pixels]
    timings = {
        "batched": _median_s(lambda: make_views(x, config, generator), repeats),
        "kornia": _median_s(lambda: kornia_views(x), repeats),
        "pil": _median_s(lambda: torch.stack([pil_views(im) for im in pil_images]), max(1, repeats // 3)),
    }
    torch.set_num_threads(threads)
    rates = {f"{name}_images_per_s": BATCH / s for name, s in timings.items()}
    return {
        **rates,
        "batched_over_pil": timings["pil"] / timings["batched"],
        "batched_over_kornia": timings["kornia"] / timings["batched"],
        "threads": 1,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer repeats (a smoke run)")
    parser.add_argument("--encoders", default="small,resnet18", help="comma-separated encoder kinds to time")
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "train.json")
    args = parser.parse_args()
    from embedkit.training.loop import make_config

    load_before = os.getloadavg()
    views = bench_views(3 if args.quick else 10)
    steps = [
        bench_step(kind, (2 if args.quick else 5) if kind == "small" else (1 if args.quick else 2))
        for kind in args.encoders.split(",")
    ]
    cpu = make_config("cpu")
    for row in steps:
        row["epoch_min"] = CIFAR_TRAIN / row["images_per_s"] / 60
        row["cpu_preset_run_min"] = row["epoch_min"] * cpu.epochs
    report = {
        "machine": platform.processor() or platform.machine(),
        "cpus": os.cpu_count(),
        "quick": args.quick,
        "loadavg_before": load_before,
        "loadavg_after": os.getloadavg(),
        "views": views,
        "steps": steps,
        "cpu_preset_epochs": cpu.epochs,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2) + "\n")
    print(
        f"views, 1 thread, batch {BATCH}: batched {views['batched_images_per_s']:,.0f} img/s, kornia "
        f"{views['kornia_images_per_s']:,.0f}, PIL {views['pil_images_per_s']:,.0f}  "
        f"(batched/PIL {views['batched_over_pil']:.1f}x, batched/kornia {views['batched_over_kornia']:.1f}x)"
    )
    for row in steps:
        print(
            f"step {row['encoder']:>8} ({row['params'] / 1e6:.2f}M params, {row['device']}, {row['threads']} "
            f"threads): {row['images_per_s']:,.1f} img/s ({row['images_per_cpu_s']:,.1f} per CPU-second), "
            f"{row['epoch_min']:.1f} min per CIFAR-10 epoch"
        )
    print(f"load average before/after: {load_before[0]:.1f} / {report['loadavg_after'][0]:.1f}; wrote {args.out}")


if __name__ == "__main__":
    main()
