"""Encoders, the VICReg projector, and checkpoints that carry their own config and preprocessing.

Two encoders share one interface: (N, 3, 32, 32) normalised images -> (N, dim) representations, with `.kind` and
`.dim` attributes. `resnet18` is the mission's model (a GPU model on this hardware); `small` is a five-layer
VGG-style CNN built to train in minutes on two CPU cores.
"""

from __future__ import annotations

import hashlib
import zipfile
from pathlib import Path

import torch
from torch import nn

from embedkit._util.atomic import atomic_path
from embedkit.errors import CheckpointError

ENCODER_KINDS = ("resnet18", "small")
CHECKPOINT_FORMAT = "embedkit-checkpoint"
CHECKPOINT_VERSION = 2  # 2: `small` became the VGG-style encoder; version 1 still loads, except its `small` weights
_REQUIRED_KEYS = ("format", "version", "encoder", "encoder_state", "config", "preprocessing", "step")


def _representation_head(features: int, dim: int) -> nn.Sequential:
    """BatchNorm, ReLU, Linear: the backbone's pooled features -> the `dim`-d representation."""
    return nn.Sequential(nn.BatchNorm1d(features), nn.ReLU(inplace=True), nn.Linear(features, dim))


class ResNet18Encoder(nn.Module):
    """ResNet-18 for 32x32 inputs: 3x3 stride-1 first convolution, no max-pool; 512-d -> BN, ReLU, Linear -> dim."""

    kind = "resnet18"

    def __init__(self, dim: int = 128):
        super().__init__()
        from torchvision.models import resnet18

        backbone = resnet18(weights=None)
        backbone.conv1 = nn.Conv2d(3, 64, kernel_size=3, stride=1, padding=1, bias=False)
        backbone.maxpool = nn.Identity()
        backbone.fc = nn.Identity()
        self.backbone = backbone
        self.head = _representation_head(512, dim)
        self.dim = dim

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(N, 3, 32, 32) -> (N, dim)."""
        return self.head(self.backbone(x))


def _conv_bn_relu(c_in: int, c_out: int) -> list[nn.Module]:
    return [nn.Conv2d(c_in, c_out, 3, 1, 1, bias=False), nn.BatchNorm2d(c_out), nn.ReLU(inplace=True)]


# The small encoder's 3x3 convolutions: (output channels, 2x2 max-pool after it). Resolutions 32 -> 16 -> 8 -> 8 -> 4.
SMALL_LAYERS: tuple[tuple[int, bool], ...] = ((32, True), (64, True), (128, False), (256, True), (256, False))


class SmallEncoder(nn.Module):
    """A VGG-style CNN for CPU training: five 3x3 conv-BN-ReLU layers with max-pooling, about 1.0M parameters.

    Widths and pooling as in SMALL_LAYERS, then global average pool, BN, ReLU, Linear to `dim`. Pooling early keeps
    the compute off the full-resolution maps, and the wide late layers run at the best rate per FLOP on CPU; at
    equal training time it beat a stride-2 design of 1.2M parameters by 3 points of linear probe (README).
    """

    kind = "small"

    def __init__(self, dim: int = 128, layers: tuple[tuple[int, bool], ...] = SMALL_LAYERS):
        super().__init__()
        modules: list[nn.Module] = []
        channels = 3
        for width, pool in layers:
            modules += _conv_bn_relu(channels, width)
            if pool:
                modules.append(nn.MaxPool2d(2))
            channels = width
        modules += [nn.AdaptiveAvgPool2d(1), nn.Flatten()]
        self.backbone = nn.Sequential(*modules)
        self.head = _representation_head(channels, dim)
        self.dim = dim

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(N, 3, 32, 32) -> (N, dim)."""
        return self.head(self.backbone(x))


def build_encoder(kind: str, dim: int = 128) -> nn.Module:
    """A freshly initialised encoder of `kind` (one of ENCODER_KINDS) with a `dim`-d output."""
    if kind == "resnet18":
        return ResNet18Encoder(dim)
    if kind == "small":
        return SmallEncoder(dim)
    raise CheckpointError(f"unknown encoder kind {kind!r} (known: {', '.join(ENCODER_KINDS)})")


def encoder_parameters(kind: str, dim: int = 128) -> int:
    """The number of parameters of an encoder of `kind`, for reports that name the model behind each number."""
    return sum(p.numel() for p in build_encoder(kind, dim).parameters())


def build_projector(dim: int = 128, hidden: int = 512, out: int = 512) -> nn.Sequential:
    """The VICReg expander dim -> hidden -> hidden -> out: Linear-BN-ReLU, Linear-BN-ReLU, Linear."""
    return nn.Sequential(
        nn.Linear(dim, hidden),
        nn.BatchNorm1d(hidden),
        nn.ReLU(inplace=True),
        nn.Linear(hidden, hidden),
        nn.BatchNorm1d(hidden),
        nn.ReLU(inplace=True),
        nn.Linear(hidden, out),
    )


def save_checkpoint(path: Path, payload: dict) -> Path:
    """Write `payload` (see `checkpoint_payload`) atomically: a temporary file, fsync, then `os.replace`.

    A crash or Ctrl-C during the write leaves the previous checkpoint intact.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(path) as tmp:
        torch.save(payload, tmp)
    return path


def checkpoint_payload(encoder: nn.Module, config: dict, preprocessing: dict, step: int, **extra) -> dict:
    """The checkpoint dict: weights, encoder kind/dim, full config, preprocessing (size, mean, std), step, extras.

    `extra` holds what resuming needs (projector and optimizer state, epoch, RNG states).
    """
    return {
        "format": CHECKPOINT_FORMAT,
        "version": CHECKPOINT_VERSION,
        "encoder": {"kind": encoder.kind, "dim": encoder.dim},
        "encoder_state": encoder.state_dict(),
        "config": dict(config),
        "preprocessing": dict(preprocessing),
        "step": int(step),
        **extra,
    }


def read_checkpoint(path: Path) -> dict:
    """The validated checkpoint dict; CheckpointError if the file is missing, corrupt or not an embedkit checkpoint."""
    path = Path(path)
    if path.is_dir():
        raise CheckpointError(f"{path}: is a folder, not a checkpoint file")
    if not path.is_file():
        raise CheckpointError(f"{path}: checkpoint not found")
    _check_archive(path)
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises many types for a damaged file; all mean the same to the user
        raise CheckpointError(f"{path}: not a readable checkpoint ({type(exc).__name__})") from None
    if not isinstance(payload, dict) or payload.get("format") != CHECKPOINT_FORMAT:
        raise CheckpointError(f"{path}: not an embedkit checkpoint")
    missing = [key for key in _REQUIRED_KEYS if key not in payload]
    if missing:
        raise CheckpointError(f"{path}: checkpoint lacks {', '.join(missing)}")
    if payload["version"] not in (1, CHECKPOINT_VERSION):
        raise CheckpointError(f"{path}: checkpoint version {payload['version']}, expected {CHECKPOINT_VERSION}")
    kind = payload["encoder"].get("kind")
    if kind not in ENCODER_KINDS:
        raise CheckpointError(f"{path}: unknown encoder kind {kind!r} (known: {', '.join(ENCODER_KINDS)})")
    if payload["version"] == 1 and kind == "small":
        raise CheckpointError(
            f"{path}: a version-1 checkpoint of the former 7-layer small encoder, which this embedkit "
            "no longer builds; retrain it with `embedkit train`"
        )
    return payload


def _check_archive(path: Path) -> None:
    """CheckpointError unless `path` is an intact zip archive (torch.save's format): torch.load does not verify the
    CRCs, so flipped bytes inside the weights would otherwise load as silently wrong numbers."""
    try:
        with zipfile.ZipFile(path) as archive:
            damaged = archive.testzip()
    except (zipfile.BadZipFile, OSError, EOFError) as exc:
        raise CheckpointError(f"{path}: not a readable checkpoint ({type(exc).__name__})") from None
    if damaged is not None:
        raise CheckpointError(f"{path}: damaged checkpoint (checksum mismatch in {damaged})")


def load_checkpoint(path: Path) -> tuple[nn.Module, dict]:
    """(encoder in eval mode on CPU, config dict) from a checkpoint; CheckpointError if it is bad.

    The preprocessing the encoder expects (size, mean, std) is set as `encoder.preprocessing` and is also in the
    returned config under `preprocessing`.
    """
    payload = read_checkpoint(path)
    encoder = build_encoder(payload["encoder"]["kind"], int(payload["encoder"]["dim"]))
    try:
        encoder.load_state_dict(payload["encoder_state"])
    except (RuntimeError, KeyError, TypeError) as exc:
        first_line = str(exc).strip().splitlines()[0]
        raise CheckpointError(f"{path}: weights do not fit a {encoder.kind} encoder ({first_line})") from None
    encoder.preprocessing = dict(payload["preprocessing"])
    config = {**payload["config"], "preprocessing": dict(payload["preprocessing"])}
    return encoder.eval(), config


def file_digest(path: Path) -> str:
    """`sha256:<hex>` of a file's bytes: the provenance stamp written next to embeddings."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return f"sha256:{digest.hexdigest()}"
