"""The study's plan: which models, how much of everything each preset runs, and where the files go.

A leaf: every other study module reads it, it reads none of them.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path

from embedkit.device import cpu_bf16_native
from embedkit.errors import ConfigError
from embedkit.eval.compare import OOD_GROUP, TEST_GROUP, TRAIN_GROUP  # noqa: F401 - the study's groups
from embedkit.training.config import PRESETS

DATASET = "cifar10"
FP32_CPU_VICREG_EPOCHS = 6
MODELS = ("vicreg", "no-variance", "neighbour-positives", "latent", "laplacian")
ENCODER_MODELS = ("vicreg", "no-variance", "neighbour-positives")


@dataclass(frozen=True)
class StudyPlan:
    """How much of everything a preset runs. `train_subset=None` trains on all 50,000 images;
    `images_per_split=None` encodes and embeds every image of each split."""

    preset: str
    train_preset: str
    vicreg_epochs: int
    ablation_epochs: int
    latent_epochs: int
    train_subset: int | None
    test_images: int
    laplacian_pca: int
    tsne_points: int
    images_per_split: int | None = None
    pairs_k: int = 3
    anomaly_k: int = 2
    cluster_k: int = 10
    seed: int = 0


# cpu: all of it within an hour on two cores: VICReg gets the most epochs; each ablation gets enough to show its
# effect. VICReg's 20 epochs (the cpu preset) take about 24 minutes in bf16 on a CPU with AMX or AVX512-BF16; a CPU
# without native bf16 trains in fp32 at a third of that rate or less (the 2-core AVX2 EPYC kind), so make_plan gives
# it FP32_CPU_VICREG_EPOCHS to stay within the hour. smoke: the same stages on a few hundred images.
PLANS = {
    "cpu": StudyPlan(
        "cpu",
        "cpu",
        vicreg_epochs=PRESETS["cpu"]["epochs"],
        ablation_epochs=2,
        latent_epochs=30,
        train_subset=None,
        test_images=2048,
        laplacian_pca=128,
        tsne_points=2000,
    ),
    "gpu": StudyPlan(
        "gpu",
        "gpu",
        vicreg_epochs=200,
        ablation_epochs=100,
        latent_epochs=200,
        train_subset=None,
        test_images=2048,
        laplacian_pca=128,
        tsne_points=10000,
    ),
    "smoke": StudyPlan(
        "smoke",
        "cpu",
        vicreg_epochs=1,
        ablation_epochs=1,
        latent_epochs=3,
        train_subset=256,
        test_images=64,
        laplacian_pca=32,
        tsne_points=200,
        images_per_split=500,
    ),
}


def make_plan(preset: str = "auto", smoke: bool = False) -> StudyPlan:
    """The plan of a preset ("auto": gpu when CUDA is available, else cpu); `smoke` overrides it."""
    if smoke:
        return PLANS["smoke"]
    if preset == "auto":
        import torch

        preset = "gpu" if torch.cuda.is_available() else "cpu"
    if preset not in ("cpu", "gpu"):
        raise ConfigError(f"unknown study preset {preset!r} (presets: auto, cpu, gpu; --smoke for a quick run)")
    if preset == "cpu" and not cpu_bf16_native():
        return replace(PLANS["cpu"], vicreg_epochs=FP32_CPU_VICREG_EPOCHS)
    return PLANS[preset]


def describe_plan(plan: StudyPlan) -> str:
    """One line saying what the plan trains, and why VICReg's epochs are what they are on this machine."""
    why = ""
    if plan.preset == "cpu":
        native = plan.vicreg_epochs == PLANS["cpu"].vicreg_epochs
        why = " (bf16 on this CPU)" if native else " (this CPU has no native bf16: fp32, fewer epochs to fit the hour)"
    return (
        f"study preset {plan.preset}: VICReg {plan.vicreg_epochs} epoch(s){why}, "
        f"ablations {plan.ablation_epochs}, latent {plan.latent_epochs}"
    )


@dataclass(frozen=True)
class StudyPaths:
    """Where the study's files go inside the workspace."""

    root: Path

    def run(self, model: str) -> Path:
        return self.root / "runs" / model

    def store(self, model: str) -> Path:
        return self.root / "stores" / f"{model}.h5"

    @property
    def pairs(self) -> Path:
        return self.root / "pairs" / "vicreg-train.h5"

    @property
    def figures(self) -> Path:
        return self.root / "figures"

    @property
    def report(self) -> Path:
        return self.root / "report"

    @property
    def state(self) -> Path:
        return self.root / "stages"
