"""Pick the compute device and thread count, so no module hard-codes `.cuda()`."""

from __future__ import annotations

import functools
import os

from embedkit.errors import ConfigError


def pick_device(requested: str = "auto"):
    """Return a `torch.device`: the requested one, or the best available (cuda, then mps, then cpu)."""
    import torch

    if requested == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        mps = getattr(torch.backends, "mps", None)
        if mps is not None and mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    try:
        device = torch.device(requested)
    except RuntimeError as exc:
        raise ConfigError(f"unknown device {requested!r}: use auto, cpu, cuda or mps") from exc
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError("device 'cuda' asked for, but no CUDA GPU is available")
    return device


def bf16_native(device) -> bool:
    """Whether bf16 autocast pays on `device`: CUDA, or a CPU with native bf16 matrix units (Intel AMX or
    AVX512-BF16); elsewhere bf16 is emulated and slower than fp32."""
    if device.type == "cuda":
        return True
    return device.type == "cpu" and cpu_bf16_native()


def cpu_bf16_native() -> bool:
    """Whether this CPU has native bf16 matrix units (Intel AMX or AVX512-BF16); needs no torch."""
    return bool({"amx_bf16", "avx512_bf16"} & _cpu_flags())


@functools.lru_cache(maxsize=1)
def _cpu_flags() -> frozenset[str]:
    """The CPU's feature flags from /proc/cpuinfo (empty where there is none, as on macOS)."""
    try:
        with open("/proc/cpuinfo", encoding="ascii", errors="replace") as cpuinfo:
            for line in cpuinfo:
                if line.startswith("flags"):
                    return frozenset(line.partition(":")[2].split())
    except OSError:
        pass
    return frozenset()


def default_threads() -> int:
    """CPU threads for torch and faiss: all cores this process may use."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # pragma: no cover - macOS
        return max(1, os.cpu_count() or 1)
