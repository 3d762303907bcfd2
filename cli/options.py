"""Options shared by several commands, so each is spelled and documented once."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

WorkspaceOption = Annotated[
    Optional[Path],
    typer.Option(
        "--workspace",
        envvar="EMBEDKIT_HOME",
        help="Workspace folder holding runs, checkpoints and the default store (default: ./embedkit-work).",
        show_default=False,
    ),
]
DataRootOption = Annotated[
    Optional[Path],
    typer.Option(
        "--data-root",
        envvar="EMBEDKIT_DATA",
        help="Folder with the datasets (default: $EMBEDKIT_DATA, else the per-user data folder).",
        show_default=False,
    ),
]
JsonOption = Annotated[
    bool, typer.Option("--json", help="Print exactly one JSON object on stdout instead of tables.")
]
DeviceOption = Annotated[
    str, typer.Option("--device", help="Compute device: auto (cuda, then mps, then cpu), cpu, cuda or mps.")
]
