"""The workspace folder: runs, checkpoints and the default store, so commands work with no file arguments."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from embedkit.errors import CheckpointError

DEFAULT_WORKSPACE = Path("embedkit-work")
STORE_NAME = "store.h5"


def resolve_workspace(path: Path | None = None) -> Path:
    """The workspace folder: `path`, else `$EMBEDKIT_HOME`, else `./embedkit-work`."""
    if path is not None:
        return Path(path)
    env = os.environ.get("EMBEDKIT_HOME")
    return Path(env) if env else DEFAULT_WORKSPACE


@dataclass(frozen=True)
class Workspace:
    """Where a study's files live. Nothing is created until a command writes."""

    root: Path

    @classmethod
    def at(cls, path: Path | None = None) -> Workspace:
        return cls(resolve_workspace(path))

    @property
    def runs_dir(self) -> Path:
        return self.root / "runs"

    @property
    def default_store(self) -> Path:
        return self.root / STORE_NAME

    @property
    def latent_store(self) -> Path:
        """Where `train --latent` writes its train and test groups by default."""
        return self.root / "latent.h5"

    @property
    def laplacian_store(self) -> Path:
        """Where `baseline laplacian` writes by default."""
        return self.root / "laplacian.h5"

    def figures_dir(self, command: str) -> Path:
        """Where a command's figures go by default: `figures/<command>/`."""
        return self.root / "figures" / command

    def explorer_page(self, group: str, method: str) -> Path:
        """Where `explore` writes a group's page by default: `explore/<group>-<method>.html`."""
        return self.root / "explore" / f"{group.replace('/', '-')}-{method}.html"

    def run_dir(self, run_dir: Path | None, *, resume: bool, preset: str) -> Path:
        """The run folder a training writes: `run_dir` if given, else the latest run (resume) or a new one."""
        if run_dir is not None:
            return Path(run_dir)
        return self.latest_checkpoint().parent if resume else self.new_run_dir(f"vicreg-{preset}")

    def new_run_dir(self, name: str) -> Path:
        """A fresh run folder `runs/<name>`, numbered `<name>-2`, `<name>-3`... if taken."""
        candidate = self.runs_dir / name
        n = 2
        while candidate.exists():
            candidate = self.runs_dir / f"{name}-{n}"
            n += 1
        return candidate

    def latest_checkpoint(self) -> Path:
        """The most recently written `last.pt` under `runs/`; raises if there is none."""
        found = sorted(self.runs_dir.glob("*/last.pt"), key=lambda p: p.stat().st_mtime)
        if not found:
            raise CheckpointError(
                f"no checkpoint in {self.runs_dir}: run `embedkit train` first or pass a checkpoint path"
            )
        return found[-1]
