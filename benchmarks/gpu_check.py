"""GPU check: the numbers only a CUDA machine can give, in a few minutes, ending with ONE JSON summary line.

    benchmarks/gpu_check.sh              # the way to run it: sets up .venv if needed, then runs this
    python benchmarks/gpu_check.py       # with the current interpreter
    python benchmarks/gpu_check.py --tiny   # toy sizes (a CPU dry run; automatic when CUDA is absent)

Steps, each timed and reported even when a later one fails (a step that raises records its error):
  environment  torch and CUDA versions, the GPU, faiss and whether it has GPU support
  train_step   images/s of one optimiser step of the `gpu` preset (ResNet-18, LARS, bf16 autocast, batch 256),
               median of the timed steps after warm-up steps, and the peak GPU memory
  train_run    a short `train()` run of the gpu preset on a subset of 10,000 images, 1 epoch (CIFAR-10 from
               --data-root / $EMBEDKIT_DATA when found, else random images, as the JSON says)
  encode       that checkpoint encoding the 10,000 test images (or random ones) with `encode_images`
  search       k=10 exact search of 1,000,000 x 128 vectors: raw FAISS on the GPU when faiss has GPU support
               (faiss-cpu, the default install, has none: the JSON says so), and in every case a torch brute-force
               search on the device and FAISS Flat on the CPU (on fewer queries), with recall against FAISS CPU
Steps that would run past --budget-s are skipped and say so. The summary also goes to
benchmarks/results/gpu_check[_tiny].json. Nothing here is used by the tests or CI.
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
import traceback
from collections.abc import Callable
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

# sizes: (full run on a GPU, tiny dry run)
SIZES = {  # tiny: ResNet-18 on 2 busy CPU cores does about 2 images/s in training
    "step_batch": (256, 16),
    "warmup_steps": (3, 1),
    "timed_steps": (20, 2),
    "subset": (10_000, 64),
    "run_batch": (256, 32),
    "run_test_images": (2048, 32),
    "encode_images": (10_000, 256),
    "encode_warmup": (512, 32),
    "search_n": (1_000_000, 20_000),
    "search_queries": (10_000, 500),
    "cpu_queries": (500, 100),
}
SEARCH_K = 10
# estimated seconds each step may take at most (skip it if less than this is left)
STEP_ESTIMATE_S = {"train_step": 60, "train_run": 150, "encode": 60, "search": 90}


def size(name: str, tiny: bool) -> int:
    return SIZES[name][1 if tiny else 0]


def environment() -> dict:
    import torch

    out = {
        "torch": torch.__version__,
        "cuda_available": torch.cuda.is_available(),
        "torch_cuda": torch.version.cuda,
        "cpu_threads": torch.get_num_threads(),
        "python": platform.python_version(),
        "platform": platform.platform(),
    }
    if torch.cuda.is_available():
        props = torch.cuda.get_device_properties(0)
        out.update(
            gpu=props.name,
            gpu_count=torch.cuda.device_count(),
            gpu_memory_gb=round(props.total_memory / 2**30, 1),
            capability=f"{props.major}.{props.minor}",
            bf16=torch.cuda.is_bf16_supported(),
        )
    out.update(faiss_info())
    return out


def faiss_info() -> dict:
    """faiss version and GPU support: faiss-cpu has no StandardGpuResources and reports 0 GPUs."""
    from embedkit.search.arrays import load_faiss

    faiss = load_faiss()
    gpus = faiss.get_num_gpus() if hasattr(faiss, "get_num_gpus") else 0
    has_gpu = hasattr(faiss, "StandardGpuResources") and gpus > 0
    return {
        "faiss": faiss.__version__,
        "faiss_gpus": gpus,
        "faiss_gpu_support": has_gpu,
        "faiss_note": None if has_gpu else "this faiss build has no GPU support (faiss-cpu, the default install)",
    }


def _sync(device) -> None:
    import torch

    if device.type == "cuda":
        torch.cuda.synchronize()


def train_step(tiny: bool) -> dict:
    """Images/s of one training step of the gpu preset on the current device (median of the timed steps)."""
    import torch

    from embedkit.device import pick_device
    from embedkit.training.loop import _new_session, _train_step, make_config, make_pair_source

    device, batch = pick_device("auto"), size("step_batch", tiny)
    config = make_config("gpu", batch_size=batch)
    images = np.random.default_rng(0).integers(0, 256, (batch, 32, 32, 3), dtype=np.uint8)
    session, source, rows = _new_session(config, device), make_pair_source(config, images, device), torch.arange(batch)
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats()
    times = []
    for i in range(size("warmup_steps", tiny) + size("timed_steps", tiny)):
        start = time.perf_counter()
        _train_step(session, source, rows, config.lr, config)
        _sync(device)
        if i >= size("warmup_steps", tiny):
            times.append(time.perf_counter() - start)
    step_s = statistics.median(times)
    out = {
        "preset": "gpu",
        "encoder": config.encoder,
        "optimizer": config.optimizer,
        "amp": config.amp,
        "device": str(device),
        "batch": batch,
        "step_s": step_s,
        "images_per_s": batch / step_s,
        "cifar10_epoch_s": 50_000 / (batch / step_s),
        "gpu_preset_run_min": 50_000 / (batch / step_s) * config.epochs / 60,
        "gpu_preset_epochs": config.epochs,
    }
    if device.type == "cuda":
        out["peak_gpu_memory_gb"] = round(torch.cuda.max_memory_allocated() / 2**30, 2)
    return out


def load_split(split: str, data_root: Path | None, n: int) -> tuple[np.ndarray, str]:
    """(images (N, 32, 32, 3) uint8, where they came from): CIFAR-10 if it can be found, else random images."""
    from embedkit.data.sources import load_images
    from embedkit.errors import DataError

    try:
        return load_images("cifar10", split, data_root).images, f"cifar10/{split}"
    except DataError as exc:
        print(f"gpu_check: no CIFAR-10 ({exc}); using random images", file=sys.stderr)
    return np.random.default_rng(1).integers(0, 256, (n, 32, 32, 3), dtype=np.uint8), "random"


def train_run(tiny: bool, data_root: Path | None, run_dir: Path) -> dict:
    """A short run of the gpu preset through `train()`: --subset images, 1 epoch; leaves run_dir/last.pt."""
    from embedkit.training.loop import make_config, train

    subset = size("subset", tiny)
    start = time.perf_counter()
    train_images, source = load_split("train", data_root, subset)
    test_images, _ = load_split("test", data_root, size("run_test_images", tiny))
    load_s = time.perf_counter() - start
    config = make_config(
        "gpu", epochs=1, subset=subset, batch_size=size("run_batch", tiny), test_images=size("run_test_images", tiny)
    )
    start = time.perf_counter()
    result = train(config, run_dir, train_images, test_images, device="auto")
    return {
        "images": source,
        "load_s": load_s,
        "subset": subset,
        "batch": config.batch_size,
        "epochs": 1,
        "steps": result.steps,
        "seconds": time.perf_counter() - start,
        "images_per_s": result.images_per_s,
        "train_terms": result.train_terms,
        "test_terms": result.test_terms,
        "checkpoint": str(result.checkpoint),
    }


def encode(tiny: bool, data_root: Path | None, checkpoint: Path) -> dict:
    """Images/s of `encode_images` with the short run's checkpoint, after a warm-up call on a few images."""
    from embedkit.training.encode import encode_images
    from embedkit.training.models import load_checkpoint

    n = size("encode_images", tiny)
    images, source = load_split("test", data_root, n)
    images = images[:n]
    encoder, _ = load_checkpoint(checkpoint)
    encode_images(encoder, images[: size("encode_warmup", tiny)], batch_size=512, device="auto")
    start = time.perf_counter()
    emb = encode_images(encoder, images, batch_size=512, device="auto")
    seconds = time.perf_counter() - start
    return {
        "images": source,
        "n": len(images),
        "dim": int(emb.shape[1]),
        "seconds": seconds,
        "images_per_s": len(images) / seconds,
        "finite": bool(np.isfinite(emb).all()),
    }


def make_vectors(n: int, seed: int) -> np.ndarray:
    """(n, 128) float32 from 1,000 Gaussian clusters in a 16-D latent space (a fixed mixture; seed picks samples)."""
    mixture = np.random.default_rng(12345)
    centers, lift = mixture.normal(size=(1000, 16)) * 4, mixture.normal(size=(16, 128)) / 4
    rng, out = np.random.default_rng(seed), np.empty((n, 128), np.float32)
    for start in range(0, n, 100_000):
        m = min(100_000, n - start)
        latent = centers[rng.integers(0, 1000, m)] + rng.normal(size=(m, 16))
        out[start : start + m] = latent @ lift + rng.normal(scale=0.1, size=(m, 128))
    return out


def _qps(search: Callable[[np.ndarray], np.ndarray], queries: np.ndarray) -> tuple[float, np.ndarray]:
    """(queries/s, rows (Q, k)) after a warm-up call on the first 64 queries."""
    search(queries[:64])
    start = time.perf_counter()
    rows = search(queries)
    return len(queries) / (time.perf_counter() - start), rows


def _recall(rows: np.ndarray, truth: np.ndarray) -> float:
    n = len(truth)
    return float(np.mean([len(set(a) & set(b)) / SEARCH_K for a, b in zip(rows[:n].tolist(), truth.tolist())]))


def torch_search_fn(reference: np.ndarray, device) -> Callable[[np.ndarray], np.ndarray]:
    """Exact k=10 search by matrix product and top-k on `device`, 256 queries at a time (bounded memory)."""
    import torch

    ref = torch.from_numpy(reference).to(device)
    norms = (ref * ref).sum(1)

    def search(queries: np.ndarray) -> np.ndarray:
        q = torch.from_numpy(queries).to(device)
        out = [
            torch.topk(norms[None, :] - 2.0 * (q[i : i + 256] @ ref.T), SEARCH_K, largest=False).indices
            for i in range(0, len(q), 256)
        ]
        return torch.cat(out).cpu().numpy()

    return search


def search(tiny: bool) -> dict:
    """k=10 exact search: FAISS Flat on the CPU (truth), torch brute force on the device, FAISS on the GPU if it can."""
    from embedkit.device import pick_device
    from embedkit.search.arrays import load_faiss

    faiss = load_faiss()
    n, n_queries, n_cpu = size("search_n", tiny), size("search_queries", tiny), size("cpu_queries", tiny)
    reference, queries = make_vectors(n, 1), make_vectors(n_queries, 2)
    cpu = faiss.IndexFlatL2(reference.shape[1])
    cpu.add(reference)
    cpu_qps, truth = _qps(lambda q: cpu.search(q, SEARCH_K)[1], queries[:n_cpu])
    device = pick_device("auto")
    torch_qps, rows = _qps(torch_search_fn(reference, device), queries)
    out = {
        "n": n,
        "dim": 128,
        "k": SEARCH_K,
        "queries": n_queries,
        "recall_against": f"faiss_cpu_flat, first {n_cpu}",
        "faiss_cpu_flat": {"queries": n_cpu, "qps": cpu_qps},
        "torch_bruteforce": {"device": str(device), "qps": torch_qps, "recall_at_10": _recall(rows, truth)},
    }
    info = faiss_info()
    if info["faiss_gpu_support"]:
        resources = faiss.StandardGpuResources()  # must outlive the GPU index
        gpu = faiss.index_cpu_to_gpu(resources, 0, cpu)
        gpu_qps, rows = _qps(lambda q: gpu.search(q, SEARCH_K)[1], queries)
        out["faiss_gpu_flat"] = {"qps": gpu_qps, "recall_at_10": _recall(rows, truth), "over_cpu": gpu_qps / cpu_qps}
    else:
        out["faiss_gpu_flat"] = {"skipped": info["faiss_note"]}
    out["torch_over_faiss_cpu"] = torch_qps / cpu_qps
    return out


# ---------------------------------------------------------------- driver


def run_step(name: str, fn: Callable[[], dict], deadline: float) -> dict:
    """{"ok": True, "seconds", **fn()} or {"ok": False, "error"}; skipped if the budget would be exceeded."""
    left = deadline - time.perf_counter()
    if left < STEP_ESTIMATE_S.get(name, 0):
        return {"ok": False, "skipped": f"time budget: {left:.0f} s left, the step may take {STEP_ESTIMATE_S[name]} s"}
    print(f"gpu_check: {name} ...", file=sys.stderr, flush=True)
    start = time.perf_counter()
    try:
        result = fn()
    except Exception as exc:  # noqa: BLE001 - every step reports, whatever the others do
        traceback.print_exc(file=sys.stderr)
        return {"ok": False, "error": f"{type(exc).__name__}: {exc}"[:500], "seconds": time.perf_counter() - start}
    return {"ok": True, "seconds": time.perf_counter() - start, **result}


def run_all(tiny: bool, data_root: Path | None, budget_s: float) -> dict:
    deadline = time.perf_counter() + budget_s
    steps = {
        "environment": run_step("environment", environment, deadline),
        "train_step": run_step("train_step", lambda: train_step(tiny), deadline),
    }
    with tempfile.TemporaryDirectory(prefix="embedkit-gpu-check-") as tmp:
        steps["train_run"] = run_step("train_run", lambda: train_run(tiny, data_root, Path(tmp) / "run"), deadline)
        if steps["train_run"]["ok"]:
            checkpoint = Path(steps["train_run"]["checkpoint"])
            steps["encode"] = run_step("encode", lambda: encode(tiny, data_root, checkpoint), deadline)
        else:
            steps["encode"] = {"ok": False, "skipped": "no checkpoint: train_run failed"}
    steps["search"] = run_step("search", lambda: search(tiny), deadline)
    return steps


def one_line(summary: dict) -> dict:
    """The key numbers of the summary, for the single JSON line printed at the end."""
    steps = summary["steps"]
    pick = lambda step, *keys: _dig(steps.get(step, {}), keys)  # noqa: E731
    return {
        "check": "gpu_check",
        "ok": summary["ok"],
        "tiny": summary["tiny"],
        "cuda": summary["cuda"],
        "gpu": pick("environment", "gpu"),
        "note": summary["note"],
        "train_step_images_per_s": pick("train_step", "images_per_s"),
        "gpu_preset_run_min": pick("train_step", "gpu_preset_run_min"),
        "train_run_images_per_s": pick("train_run", "images_per_s"),
        "train_run_images": pick("train_run", "images"),
        "encode_images_per_s": pick("encode", "images_per_s"),
        "search_qps_k10": {
            name: pick("search", name, "qps") for name in ("faiss_cpu_flat", "torch_bruteforce", "faiss_gpu_flat")
        },
        "faiss_gpu": pick("search", "faiss_gpu_flat", "skipped") or pick("environment", "faiss_gpu_support"),
        "failed": {name: step.get("error") or step.get("skipped") for name, step in steps.items() if not step["ok"]},
        "wall_s": summary["wall_s"],
        "details": summary["details"],
    }


def _dig(d: dict, keys: tuple[str, ...]):
    for key in keys:
        if not isinstance(d, dict) or key not in d:
            return None
        d = d[key]
    return round(d, 1) if isinstance(d, float) else d


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tiny", action="store_true", help="toy sizes: a dry run (automatic when CUDA is absent)")
    parser.add_argument(
        "--data-root",
        type=Path,
        default=os.environ.get("EMBEDKIT_DATA"),
        help="folder with cifar10-jpeg.tar.gz [$EMBEDKIT_DATA, else embedkit's default; random "
        "images if CIFAR-10 is not found]",
    )
    parser.add_argument("--budget-s", type=float, default=420.0, help="skip steps that would run past this [420]")
    parser.add_argument("--out", type=Path, help="JSON details [benchmarks/results/gpu_check[_tiny].json]")
    args = parser.parse_args()
    import torch

    cuda = torch.cuda.is_available()
    tiny = args.tiny or not cuda
    note = None if cuda else "CUDA is not available: ran the tiny version on the CPU (a dry run, not GPU numbers)"
    if note:
        print(f"gpu_check: {note}", file=sys.stderr)
    start = time.perf_counter()
    steps = run_all(tiny, args.data_root, args.budget_s)
    out = args.out or ROOT / "benchmarks" / "results" / ("gpu_check_tiny.json" if tiny else "gpu_check.json")
    summary = {
        "check": "gpu_check",
        "ok": all(s["ok"] for s in steps.values()),
        "tiny": tiny,
        "cuda": cuda,
        "note": note,
        "measured": time.strftime("%Y-%m-%d %H:%M"),
        "wall_s": round(time.perf_counter() - start, 1),
        "details": str(out),
        "steps": steps,
    }
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(summary, indent=2, default=str) + "\n")
    print(json.dumps(one_line(summary), default=str))
    sys.exit(0 if summary["ok"] else 1)


if __name__ == "__main__":
    main()
