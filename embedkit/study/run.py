"""`embedkit study`: the whole study as resumable stages, from training to the HTML report.

Train VICReg, encode CIFAR-10 (and MNIST for the anomaly test), train the ablations (no variance term, neighbour
positives, latent optimization), fit the Laplacian-eigenmaps baseline, evaluate every store and write
`<workspace>/report/index.html` and `results.json`. Each stage is skipped on rerun when its config and upstream
stages are unchanged (`embedkit.study.runner`).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from embedkit._util.progress import ProgressFn
from embedkit.data.sources import load_images
from embedkit.provenance import code_version
from embedkit.study.plan import StudyPaths, StudyPlan
from embedkit.study.runner import Stage, StageRunner
from embedkit.study.stages import build_stages
from embedkit.workspace import Workspace


@dataclass(frozen=True)
class StudyResult:
    """What a finished study wrote: the report page, results.json, and the per-model numbers of its table."""

    page: Path
    results: Path
    models: dict[str, dict]


def study_paths(workspace: Path | None) -> StudyPaths:
    """Where the study of a workspace (default: the current one) keeps its files."""
    return StudyPaths(Workspace.at(workspace).root / "study")


def stage_titles(plan: StudyPlan, *, workspace: Path | None = None) -> list[tuple[str, str]]:
    """(name, title) of every stage, in order, for a progress display."""
    stages = build_stages(plan, study_paths(workspace), data_root=None, device="cpu", on_progress=None, records={})
    return [(stage.name, stage.title) for stage in stages]


def run_study(
    plan: StudyPlan,
    *,
    workspace: Path | None = None,
    data_root: Path | None = None,
    device: str = "auto",
    on_event: Callable[[str, Stage, object], None] | None = None,
    on_progress: ProgressFn | None = None,
) -> StudyResult:
    """Run (or resume) every stage of the study and write the report."""
    for dataset, split in (("cifar10", "train"), ("cifar10", "test"), ("mnist", "test")):
        load_images(dataset, split, data_root)  # fail before writing anything; decodes into the cache once
    paths = study_paths(workspace)
    for folder in (paths.root / "runs", paths.root / "stores", paths.root / "pairs", paths.figures):
        folder.mkdir(parents=True, exist_ok=True)
    runner = StageRunner(paths.state, on_event, code=code_version())
    stages = build_stages(
        plan, paths, data_root=data_root, device=device, on_progress=on_progress, records=runner.records
    )
    records = runner.run(stages)
    report = records["report"].results
    return StudyResult(Path(report["page"]), Path(report["results"]), report["models"])
