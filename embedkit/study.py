"""`embedkit study`: the whole study as resumable stages, from training to the HTML report.

Train VICReg, encode CIFAR-10 (and MNIST for the anomaly test), train the ablations (no variance term, neighbour
positives, latent optimization), fit the Laplacian-eigenmaps baseline, evaluate every store and write
`<workspace>/report/index.html` and `results.json`. Each stage is skipped on rerun when its config and upstream
stages are unchanged (`embedkit.stages`).
"""

from __future__ import annotations

import platform
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Callable

from embedkit.errors import ConfigError
from embedkit.stages import Stage, StageRecord, StageRunner
from embedkit.train_config import PRESETS
from embedkit.workspace import Workspace

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
# effect. smoke: the same stages on a few hundred images, for tests and a first look.
PLANS = {
    "cpu": StudyPlan("cpu", "cpu", vicreg_epochs=PRESETS["cpu"]["epochs"], ablation_epochs=2, latent_epochs=30,
                     train_subset=None, test_images=2048, laplacian_pca=128, tsne_points=2000),
    "gpu": StudyPlan("gpu", "gpu", vicreg_epochs=200, ablation_epochs=100, latent_epochs=200, train_subset=None,
                     test_images=2048, laplacian_pca=128, tsne_points=10000),
    "smoke": StudyPlan("smoke", "cpu", vicreg_epochs=1, ablation_epochs=1, latent_epochs=3, train_subset=256,
                       test_images=64, laplacian_pca=32, tsne_points=200, images_per_split=500),
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
    return PLANS[preset]


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


def run_study(plan: StudyPlan, *, workspace: Path | None = None, data_root: Path | None = None,
              device: str = "auto", on_event: Callable[[str, Stage, object], None] | None = None,
              on_progress: Callable[[int, int], None] | None = None) -> Path:
    """Run (or resume) every stage of the study; return the path of `report/index.html`."""
    from embedkit.study_stages import build_stages

    from embedkit.data import load_images

    for dataset, split in (("cifar10", "train"), ("cifar10", "test"), ("mnist", "test")):
        load_images(dataset, split, data_root)  # fail before writing anything; decodes into the cache once
    paths = StudyPaths(Workspace.at(workspace).root / "study")
    for folder in (paths.root / "runs", paths.root / "stores", paths.root / "pairs", paths.figures):
        folder.mkdir(parents=True, exist_ok=True)
    runner = StageRunner(paths.state, on_event)
    stages = build_stages(plan, paths, data_root=data_root, device=device, on_progress=on_progress,
                          records=runner.records)
    records = runner.run(stages)
    return Path(records["report"].results["page"])


def environment(plan: StudyPlan, device: str) -> dict:
    """Versions, device and plan, printed in the report so every number can be traced."""
    import faiss
    import h5py
    import sklearn
    import torch

    from embedkit import __version__
    from embedkit.device import pick_device

    return {
        "preset": plan.preset,
        "plan": asdict(plan),
        "device": str(pick_device(device)),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "embedkit": __version__,
        "torch": torch.__version__,
        "faiss": faiss.__version__,
        "h5py": h5py.__version__,
        "scikit-learn": sklearn.__version__,
    }


def stage_summaries(records: dict[str, StageRecord]) -> dict[str, dict]:
    """What the report shows of each stage: seconds, finish time, whether it ran this time, its config."""
    return {name: {"seconds": r.seconds, "finished": r.finished, "skipped": r.skipped, "config": r.config}
            for name, r in records.items()}
