"""Progress bars on stderr (`cli.app.err_console`) for the commands' `on_progress(done, total)` callbacks.

`progress_bar`: one job, one bar with rate and ETA, drawn from the first report so quick jobs draw nothing.
`phase_progress`: a job in named phases, one line each, finished phases kept on screen with their duration.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Iterator

from embedkit_cli.app import err_console


def _rate_text(count: float, since: float, unit: str) -> str:
    """`count` items since `since` (a perf_counter time) as "1,234 unit/s" ("1,234/s" without a unit)."""
    rate = count / max(time.perf_counter() - since, 1e-9)
    return f"{rate:,.0f} {unit}/s" if unit else f"{rate:,.0f}/s"


@contextlib.contextmanager
def progress_bar(
    description: str, unit: str = "", *, per_step: int = 1, min_total: int = 0, keep: bool = False
) -> Iterator[Callable[..., None]]:
    """An on_progress(done, total, note="") callback drawing a bar with `unit`/s and ETA on stderr.

    The bar starts on the first call whose total is at least `min_total`: no call (or a small job), no bar.
    The rate counts from that first call, so a resumed job is not credited with its earlier work; `per_step`
    converts counts into units (a training step is `batch_size` images). `note` is appended to the description.
    `keep` leaves the finished bar on screen, with its elapsed time; otherwise it is erased.
    """
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )

    elapsed = (TimeElapsedColumn(), TextColumn("ETA")) if keep else ()
    progress = Progress(
        TextColumn("{task.description}", markup=False),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[rate]}"),
        *elapsed,
        TimeRemainingColumn(),
        console=err_console,
        transient=not keep,
    )
    state: dict = {}

    def update(done: int, total: int, note: str = "") -> None:
        if total < min_total:
            return
        if "task" not in state:
            progress.start()
            state["task"] = progress.add_task(description, total=total, rate="")
            state["t0"], state["done0"] = time.perf_counter(), done
        counted = (done - state["done0"]) * per_step
        progress.update(
            state["task"],
            completed=done,
            total=total,
            description=f"{description} {note}".strip(),
            rate=_rate_text(counted, state["t0"], unit) if counted else "",
        )

    try:
        yield update
    finally:
        if "task" in state:
            progress.stop()


@contextlib.contextmanager
def phase_progress() -> Iterator[tuple[Callable[[str], None], Callable[[int, int], None]]]:
    """(on_phase, on_progress) callbacks drawing one line per phase on stderr: a bar with rate and ETA while a
    phase reports progress, elapsed time otherwise; finished phases stay on screen with their duration."""
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        SpinnerColumn,
        TaskProgressColumn,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )
    from rich.text import Text

    progress = Progress(
        SpinnerColumn(finished_text=Text("done", style="green")),
        TextColumn("{task.description:<12}", markup=False),
        BarColumn(),
        MofNCompleteColumn(),
        TaskProgressColumn(),
        TextColumn("{task.fields[rate]}"),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        console=err_console,
    )
    current: dict = {}

    def on_phase(name: str) -> None:
        _finish_phase(progress, current)
        current.update(task=progress.add_task(name, total=None, rate=""), t0=time.perf_counter())

    def on_progress(done: int, total: int) -> None:
        progress.update(current["task"], completed=done, total=total, rate=_rate_text(done, current["t0"], ""))

    with progress:
        yield on_phase, on_progress
        _finish_phase(progress, current)


def _finish_phase(progress, current: dict) -> None:
    """Mark the running phase (the last task added) complete, so its line shows "done" and its duration."""
    if current:
        total = progress.tasks[-1].total or 1
        progress.update(current["task"], total=total, completed=total)
