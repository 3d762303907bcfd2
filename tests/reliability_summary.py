"""Counts what the reliability tests really did and prints one summary line at the end of the pytest run:

    bad inputs tried: N, files changed: C, interruptions survived: M

Bad-input tests call `record_bad_input(changed_files)` with the files whose checksum differed (or that appeared or
vanished) after the command; interruption tests call `record_interruption()` once a killed run's store and checkpoint
were checked intact and its rerun completed. Registered from tests/conftest.py.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

_counts = {"bad_inputs": 0, "files_changed": 0, "interruptions": 0}
_changed: list[str] = []

# A writer's lock file (`<store>.lock`, an empty file flock-ed while writing) is the store's locking mechanism, not
# content: it may be created by a refused write and is never compared.
IGNORED_SUFFIXES = (".lock",)


def file_checksums(root: Path) -> dict[str, str]:
    """{path relative to `root`: sha256 of the file, or 'dir' for a folder} for everything under `root`."""
    sums: dict[str, str] = {}
    for path in sorted(Path(root).rglob("*")):
        if path.name.endswith(IGNORED_SUFFIXES):
            continue
        rel = str(path.relative_to(root))
        if path.is_dir():
            sums[rel] = "dir"
        elif path.is_file():
            sums[rel] = hashlib.sha256(path.read_bytes()).hexdigest()
        else:
            sums[rel] = "other"
    return sums


def changed_files(before: dict[str, str], after: dict[str, str]) -> list[str]:
    """Paths that were modified, created or removed between two `file_checksums` snapshots."""
    return sorted(p for p in set(before) | set(after) if before.get(p) != after.get(p))


def record_bad_input(changed: list[str]) -> None:
    _counts["bad_inputs"] += 1
    _counts["files_changed"] += len(changed)
    _changed.extend(changed)


def record_interruption() -> None:
    _counts["interruptions"] += 1


def pytest_terminal_summary(terminalreporter, exitstatus, config) -> None:
    if not any(_counts.values()):
        return
    terminalreporter.write_sep("-", "reliability")
    terminalreporter.write_line(
        f"bad inputs tried: {_counts['bad_inputs']}, files changed: {_counts['files_changed']}, "
        f"interruptions survived: {_counts['interruptions']}"
    )
    if _changed:
        terminalreporter.write_line(f"changed by bad inputs: {', '.join(sorted(set(_changed))[:10])}")
