"""Pick the compute device and thread count, so no module hard-codes `.cuda()`."""

from __future__ import annotations

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


def default_threads() -> int:
    """CPU threads for torch and faiss: all cores this process may use."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # pragma: no cover - macOS
        return max(1, os.cpu_count() or 1)
