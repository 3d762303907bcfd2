"""Issue 14's bad inputs, names that become paths, outputs over inputs, links and modes, disk full.

`CASES` join the reliability suite's (same contract: one error line naming the culprit, exit 1, no file changed);
`world_files` adds the files they need to the shared test world and returns their `{name}` placeholders.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from reliability_case import C, Case

CASES: list[Case] = []


def world_files(root: Path, rng: np.random.Generator, paths: dict[str, str]) -> dict[str, str]:
    return {}
