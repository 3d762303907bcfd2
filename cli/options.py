"""Options shared by several commands, so each is spelled and documented once."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal

import typer

WorkspaceOption = Annotated[
    Path | None,
    typer.Option(
        "--workspace",
        envvar="EMBEDKIT_HOME",
        help="Workspace folder holding runs, checkpoints and the default store.",
        show_default="./embedkit-work",
    ),
]
DataRootOption = Annotated[
    Path | None,
    typer.Option(
        "--data-root",
        envvar="EMBEDKIT_DATA",
        help="Folder with the datasets.",
        show_default="$EMBEDKIT_DATA, else the per-user data folder",
    ),
]
DownloadOption = Annotated[
    bool,
    typer.Option(
        "--download", help="Download CIFAR-10 or MNIST with torchvision into the data root if missing (needs internet)."
    ),
]
JsonOption = Annotated[bool, typer.Option("--json", help="Print exactly one JSON object on stdout instead of tables.")]
# Seeds reach NumPy, torch and scikit-learn; the range all three accept (sklearn's random_state is 32-bit unsigned).
SEED_RANGE = dict(min=0, max=2**32 - 1)


def seed_option(help_text: str, *, optional: bool = False, default: str | None = None):
    """A `--seed` option limited to SEED_RANGE, so -1 or a 20-digit seed is one usage error, not a traceback;
    an optional one's `default` says in the help what None means."""
    kind = int | None if optional else int
    shown = (default or False) if optional else True
    return Annotated[kind, typer.Option("--seed", help=help_text, show_default=shown, metavar="<int>", **SEED_RANGE)]


DeviceOption = Annotated[
    str,
    typer.Option("--device", metavar="<auto|cpu|cuda[:N]|mps>", help="Compute device; auto: cuda, then mps, then cpu."),
]

# The values each enumerated option accepts, listed in its help as <a|b|c> and checked by the parser. They mirror the
# library's tuples (imported here they would load NumPy for `--help`); tests/test_cli_help.py checks they agree.
Metric = Literal["l2", "cosine"]  # embedkit.search.arrays.METRICS
IndexKind = Literal["flat", "hnsw", "ivf", "auto"]  # embedkit.search.arrays.INDEX_KINDS, and auto
Engine = Literal["local", "ray"]  # embedkit.search.engines.ENGINES
MapMethod = Literal["pca", "tsne"]  # embedkit.eval.maps.METHODS
TrainPreset = Literal["auto", "cpu", "cpu-long", "gpu"]  # "auto" and embedkit.training.config.PRESETS
StudyPreset = Literal["auto", "cpu", "gpu"]  # embedkit.study.plan.make_plan
Encoder = Literal["small", "resnet18"]  # embedkit.training.models.ENCODER_KINDS
Optimizer = Literal["adam", "lars"]  # embedkit.training.config.OPTIMIZERS
Schedule = Literal["constant", "cosine"]  # embedkit.training.config.SCHEDULES

EngineOption = Annotated[
    Engine,
    typer.Option(
        "--engine",
        help="Where the heavy work runs: local (this process) or ray (Ray tasks and actors; "
        r"pip install 'embedkit\[ray]'). Same answer either way.",
    ),
]
RayAddressOption = Annotated[
    str | None,
    typer.Option(
        "--ray-address",
        help="With --engine ray: a running cluster (auto, HOST:PORT).",
        show_default="an embedded Ray on this machine's CPUs, shut down at the end",
    ),
]
IndexOption = Annotated[
    IndexKind,
    typer.Option(
        "--index",
        help="flat is exact; hnsw and ivf are approximate, fast, and report their recall; auto: flat up to "
        "200,000 rows, else ivf tuned to --recall.",
    ),
]
RecallOption = Annotated[
    float,
    typer.Option(
        "--recall", help="Recall@k an approximate index is tuned to (ivf) and measured at.", min=0.01, max=1.0
    ),
]
