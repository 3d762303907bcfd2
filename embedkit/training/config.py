"""The training config: one frozen dataclass saved with every checkpoint, the cpu and gpu presets, validation."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path

from embedkit.errors import ConfigError, TrainingError
from embedkit.training.models import ENCODER_KINDS, file_digest
from embedkit.training.views import ViewConfig

OPTIMIZERS = ("adam", "lars")
SCHEDULES = ("constant", "cosine")


@dataclass(frozen=True)
class TrainConfig:
    """Everything that determines a training run; saved in every checkpoint and store written from it.

    >>> config = TrainConfig(epochs=2, batch_size=64)
    >>> config.encoder, config.lam, config.mu, config.nu
    ('small', 25.0, 25.0, 1.0)
    >>> TrainConfig.from_dict(config.to_dict()) == config
    True
    """

    preset: str = "cpu"
    dataset: str = "cifar10"
    encoder: str = "small"
    dim: int = 128
    projector_dim: int = 512  # width of the VICReg projector (expander); the representation stays `dim`
    epochs: int = 10
    batch_size: int = 256
    optimizer: str = "adam"
    lr: float = 3e-4  # LARS scales it by batch_size / 256
    weight_decay: float = 0.0  # never applied to biases and BatchNorm parameters
    warmup_epochs: float = 0.0
    schedule: str = "constant"
    lam: float = 25.0
    mu: float = 25.0
    nu: float = 1.0
    seed: int = 0
    subset: int | None = None  # train on this many images of the train split, drawn with `seed`
    test_images: int = 2048  # test-split images whose loss terms are logged each epoch (0: none)
    amp: bool = False  # bf16 autocast on CUDA, and on CPUs with native bf16 (AMX or AVX512-BF16); fp32 elsewhere
    positives: str | None = None  # pairs file (`embedkit pairs`): positives are neighbours, not views of the image
    positives_sha256: str | None = None  # `sha256:<hex>` of that file, set by make_config; checked when training
    augment_positives: bool = False  # with `positives`: give anchors and neighbours the VICReg views too
    views: ViewConfig = field(default_factory=ViewConfig)

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> TrainConfig:
        """Inverse of `to_dict` (lists back to tuples); ConfigError on unknown keys."""
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ConfigError(f"unknown training config keys: {', '.join(unknown)}")
        views = {k: tuple(v) if isinstance(v, list) else v for k, v in dict(data.get("views", {})).items()}
        return cls(**{**data, "views": ViewConfig(**views)})


# Presets. cpu: the small encoder with a 1024-wide projector and Adam at lr 2e-3, 20 epochs in bf16 autocast where
# the CPU has native bf16 (AMX or AVX512-BF16: 646 images/s on two idle cores, so about 26 minutes; fp32 elsewhere).
# The recipe won a sweep of projector width, lr, batch size and crop scale at equal CPU minutes (docs/training.md).
# cpu-long: the same recipe for 42 epochs (about 55 minutes) with 10% of the views solarized, as in solo-learn's CIFAR
# VICReg views: +0.6 points at no cost in time (docs/training.md). gpu: the mission's ResNet-18 with solo-learn's
# CIFAR recipe for VICReg (LARS, lr 0.3, weight decay 1e-4, warm-up 10 epochs, cosine), in bf16 autocast.
_CPU_RECIPE = dict(
    encoder="small",
    projector_dim=1024,
    batch_size=256,
    optimizer="adam",
    lr=2e-3,
    warmup_epochs=0.5,
    schedule="cosine",
    weight_decay=0.0,
    amp=True,
)
PRESETS: dict[str, dict] = {
    "cpu": dict(_CPU_RECIPE, epochs=20),
    "cpu-long": dict(_CPU_RECIPE, epochs=42, views=ViewConfig(solarize_p=0.1)),
    "gpu": dict(
        encoder="resnet18",
        epochs=200,
        batch_size=256,
        optimizer="lars",
        lr=0.3,
        weight_decay=1e-4,
        warmup_epochs=10,
        schedule="cosine",
        amp=True,
    ),
}


def make_config(preset: str = "auto", **overrides) -> TrainConfig:
    """A validated TrainConfig: `preset` ("auto": gpu when CUDA is available, else cpu) plus non-None overrides.

    >>> config = make_config("cpu", epochs=2, lr=None)     # None keeps the preset's value
    >>> config.encoder, config.epochs, config.lr
    ('small', 2, 0.002)
    """
    if preset == "auto":
        import torch

        preset = "gpu" if torch.cuda.is_available() else "cpu"
    if preset not in PRESETS:
        raise ConfigError(f"unknown preset {preset!r} (presets: auto, {', '.join(PRESETS)})")
    values = {**PRESETS[preset], **{k: v for k, v in overrides.items() if v is not None}}
    if values.get("positives") is not None:
        values["positives"] = str(values["positives"])
        values.setdefault("positives_sha256", pairs_digest(values["positives"]))
    return validate_config(TrainConfig(preset=preset, **values))


def pairs_digest(path: str) -> str:
    """`sha256:<hex>` of a pairs file; ConfigError naming it if it is missing."""
    try:
        return file_digest(Path(path))
    except (FileNotFoundError, IsADirectoryError):
        raise ConfigError(f"{path}: pairs file not found (make one with `embedkit pairs`)") from None


def finite_checks(config, names: tuple[str, ...]) -> list[tuple[bool, str]]:
    """(ok, message) for each named number of `config`: NaN or infinity there trains a NaN model, so refuse it."""
    return [
        (math.isfinite(getattr(config, name)), f"{name} {getattr(config, name)}: must be a finite number")
        for name in names
    ]


def diverged(run: str, what: str, values: dict[str, float], epoch: int, epochs: int, step: int) -> TrainingError | None:
    """The TrainingError when `values` (loss terms by name) hold NaN or inf at 0-based `epoch`, 1-based `step`;
    None while they are finite. `run` names what was trained, `what` the values ("the loss", "a weight")."""
    bad = sorted(name for name, value in values.items() if not math.isfinite(value))
    if not bad:
        return None
    terms = f" ({', '.join(bad)})" if len(values) > 1 else ""
    return TrainingError(
        f"{run} diverged at epoch {epoch + 1} of {epochs}, step {step}: {what} is "
        f"{values[bad[0]]}{terms} (is the learning rate or a loss weight too large?)"
    )


def vicreg_fit_checks(config) -> list[tuple[bool, str]]:
    """(ok, message) for what any VICReg fit needs (an encoder's training or latent optimization): finite, positive
    numbers, non-negative loss weights, batches of at least 2 (the loss needs variances)."""
    return [
        *finite_checks(config, ("lr", "lam", "mu", "nu")),
        (config.epochs >= 1, f"epochs {config.epochs}: must be at least 1"),
        (config.batch_size >= 2, f"batch size {config.batch_size}: must be at least 2 (the loss needs variances)"),
        (config.lr > 0, f"learning rate {config.lr}: must be positive"),
        (config.dim >= 1, f"dim {config.dim}: must be positive"),
        (min(config.lam, config.mu, config.nu) >= 0, "loss weights lam, mu, nu must be non-negative"),
    ]


def raise_first(checks: list[tuple[bool, str]]) -> None:
    """ConfigError with the message of the first failed (ok, message) check."""
    for ok, message in checks:
        if not ok:
            raise ConfigError(message)


def validate_config(config: TrainConfig) -> TrainConfig:
    """Return `config` unchanged, or raise ConfigError naming the first bad value."""
    checks = [
        *finite_checks(config, ("weight_decay", "warmup_epochs")),
        *vicreg_fit_checks(config),
        (1 <= config.projector_dim <= 65536, f"projector dim {config.projector_dim}: must be 1 to 65536"),
        (config.encoder in ENCODER_KINDS, f"encoder {config.encoder!r} (known: {', '.join(ENCODER_KINDS)})"),
        (config.optimizer in OPTIMIZERS, f"optimizer {config.optimizer!r} (known: {', '.join(OPTIMIZERS)})"),
        (config.schedule in SCHEDULES, f"schedule {config.schedule!r} (known: {', '.join(SCHEDULES)})"),
        (config.subset is None or config.subset >= 2, f"subset {config.subset}: must be at least 2 images"),
        (config.weight_decay >= 0, f"weight decay {config.weight_decay}: must be non-negative"),
        (config.warmup_epochs >= 0, f"warm-up epochs {config.warmup_epochs}: must be non-negative"),
        (config.test_images >= 0, f"test images {config.test_images}: must be non-negative (0: no test losses)"),
        (config.positives is not None or not config.augment_positives, "augment_positives needs a positives file"),
    ]
    raise_first(checks)
    return config


def flag(name: str) -> str:
    """The command-line spelling of an option name, for messages: batch_size -> --batch-size."""
    return "--" + name.replace("_", "-")


def check_resume_options(options: dict) -> None:
    """A resumed run keeps its saved config: only `epochs` may be given (ConfigError naming the first other one)."""
    changed = sorted(name for name, value in options.items() if value is not None and name != "epochs")
    if changed:
        raise ConfigError(f"--resume keeps the run's config; drop {flag(changed[0])}")
