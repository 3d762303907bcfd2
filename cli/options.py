"""Options shared by several commands, so each is spelled and documented once."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

WorkspaceOption = Annotated[
    Path | None,
    typer.Option(
        "--workspace",
        envvar="EMBEDKIT_HOME",
        help="Workspace folder holding runs, checkpoints and the default store (default: ./embedkit-work).",
        show_default=False,
    ),
]
DataRootOption = Annotated[
    Path | None,
    typer.Option(
        "--data-root",
        envvar="EMBEDKIT_DATA",
        help="Folder with the datasets (default: $EMBEDKIT_DATA, else the per-user data folder).",
        show_default=False,
    ),
]
JsonOption = Annotated[bool, typer.Option("--json", help="Print exactly one JSON object on stdout instead of tables.")]
# Seeds reach NumPy, torch and scikit-learn; the range all three accept (sklearn's random_state is 32-bit unsigned).
SEED_RANGE = dict(min=0, max=2**32 - 1)


def seed_option(help_text: str, *, optional: bool = False):
    """A `--seed` option limited to SEED_RANGE, so -1 or a 20-digit seed is one usage error, not a traceback."""
    kind = int | None if optional else int
    return Annotated[
        kind, typer.Option("--seed", help=help_text, show_default=not optional, metavar="<int>", **SEED_RANGE)
    ]


DeviceOption = Annotated[
    str, typer.Option("--device", help="Compute device: auto (cuda, then mps, then cpu), cpu, cuda or mps.")
]
