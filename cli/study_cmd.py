"""`embedkit study` (the whole study and its report) and `embedkit compare` (the results table of stores)."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Annotated

import typer
from rich.text import Text

from embedkit_cli.app import app, console, err_console, print_json, styled
from embedkit_cli.options import DataRootOption, DeviceOption, JsonOption, StudyPreset, WorkspaceOption
from embedkit_cli.tables import print_table


class _StageDisplay:
    """A Rich live view on stderr: the stage list with done/skipped marks, the current stage's bar, elapsed time."""

    def __init__(self, titles: list[tuple[str, str]]):
        from rich.live import Live
        from rich.progress import (
            BarColumn,
            MofNCompleteColumn,
            Progress,
            TextColumn,
            TimeElapsedColumn,
            TimeRemainingColumn,
        )

        self.titles = titles
        self.marks = {name: styled("dim", "·", "waiting") for name, _ in titles}
        self.progress = Progress(
            TextColumn("{task.description}", markup=False),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            TimeRemainingColumn(),
            console=err_console,
        )
        self.task = None
        self.live = Live(self._render(), console=err_console, refresh_per_second=4, transient=False)
        self.started = time.perf_counter()

    def _render(self):
        from rich.console import Group
        from rich.table import Table

        table = Table.grid(padding=(0, 2))
        for name, title in self.titles:
            table.add_row(self.marks[name], title)
        return Group(table, self.progress)

    def on_event(self, event: str, stage, record) -> None:
        if self.task is not None:  # a stage's bar lives while it runs; its mark says the rest
            self.progress.remove_task(self.task)
            self.task = None
        if event == "started":
            self.marks[stage.name] = styled("yellow", "▶", "running")
            self.task = self.progress.add_task(stage.title, total=None)
        elif event == "finished":
            self.marks[stage.name] = styled("green", "✓", f"{record.seconds:,.0f} s")
        else:
            self.marks[stage.name] = styled("cyan", "↷", "done before")
        self.live.update(self._render())

    def on_progress(self, done: int, total: int) -> None:
        if self.task is not None:
            self.progress.update(self.task, completed=done, total=total)


@app.command("study")
def study(
    preset: Annotated[
        StudyPreset,
        typer.Option(
            "--preset",
            help="auto: gpu if CUDA is available, else cpu; cpu: all of "
            "CIFAR-10 on 2 cores (31 min measured with native bf16; under an hour without); gpu: ResNet-18.",
        ),
    ] = "auto",
    smoke: Annotated[
        bool,
        typer.Option(
            "--smoke",
            help="The same stages on a few hundred training images, 1 epoch each: a quick check that everything runs.",
        ),
    ] = False,
    device: DeviceOption = "auto",
    workspace: WorkspaceOption = None,
    data_root: DataRootOption = None,
    json_out: JsonOption = False,
) -> None:
    """Run the whole study (train VICReg and its ablations, baselines, every evaluation) and write the HTML report.

    Resumable: a finished stage is skipped on rerun when its config is unchanged; an interrupted one restarts.
    Writes <workspace>/study/report/index.html and results.json.
    """
    from embedkit.study import make_plan, run_study, stage_titles
    from embedkit.study.plan import describe_plan

    plan = make_plan(preset, smoke)
    err_console.print(describe_plan(plan), highlight=False)
    display = _StageDisplay(stage_titles(plan, workspace=workspace))
    try:
        with display.live:
            result = run_study(
                plan,
                workspace=workspace,
                data_root=data_root,
                device=device,
                on_event=display.on_event,
                on_progress=display.on_progress,
            )
    except BaseException:
        err_console.print()  # the error line starts below the live display, not glued to its last line
        raise
    if json_out:
        print_json({"report": str(result.page), "results": str(result.results), "models": result.models})
        return
    _print_models(result.models, "embedkit study")
    console.print(f"report -> {result.page}")


def _print_models(models: dict[str, dict], title: str) -> None:
    from embedkit.study.report import METRICS, REFERENCE_PROBE

    columns = ["model", *(label for _, label, _, _ in METRICS), "reference probe"]
    rows = [
        [
            metrics.get("model") or name,
            *("-" if metrics.get(key) is None else f"{metrics[key]:.3f}" for key, *_ in METRICS),
            REFERENCE_PROBE.get(name, "-"),
        ]
        for name, metrics in models.items()
    ]
    print_table(title, columns, rows, right=columns[1:])


@app.command("compare")
def compare(
    stores: Annotated[list[Path], typer.Argument(help="Stores to compare, one row each, named by file stem.")],
    k_anomaly: Annotated[int, typer.Option("--k-anomaly", min=1, help="k of the kNN anomaly score.")] = 2,
    k_cluster: Annotated[int, typer.Option("--k-cluster", help="k-means clusters.")] = 10,
    data_root: DataRootOption = None,
    device: DeviceOption = "auto",
    json_out: JsonOption = False,
) -> None:
    """One table, a row per store: linear probe, kNN accuracy, effective rank, ROC-AUC vs MNIST, silhouette.

    Reads groups cifar10/train, cifar10/test and (for ROC-AUC, when present) mnist/test.
    """
    from embedkit.eval.compare import compare_stores

    with err_console.status(Text("evaluating")) as status:
        models = compare_stores(
            stores,
            anomaly_k=k_anomaly,
            cluster_k=k_cluster,
            data_root=data_root,
            device=device,
            on_store=lambda path: status.update(Text(f"evaluating {path.stem}")),
        )
    if json_out:
        print_json({"models": models})
        return
    _print_models(models, "embedkit compare")
