"""A run's loss log (`log.jsonl`, one JSON record per step and per test pass), read without torch, so that
plotting a finished run's losses starts in a second."""

from __future__ import annotations

import json
from pathlib import Path

from embedkit.errors import ConfigError

LOG_NAME = "log.jsonl"
TERMS = ("total", "inv", "var", "cov")  # the loss terms of every log record


def read_log(run: Path) -> list[dict]:
    """The JSON records of a run's `log.jsonl` (`run`: the run folder or the log file itself)."""
    path = Path(run)
    path = path / LOG_NAME if path.is_dir() else path
    if not path.is_file():
        raise ConfigError(f"{path}: no training log (is {Path(run)} a run folder made by `embedkit train`?)")
    records = []
    for number, line in enumerate(path.read_text().splitlines(), start=1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError:
            raise ConfigError(f"{path}: line {number} is not JSON") from None
        if not _is_loss_record(record):
            raise ConfigError(f"{path}: line {number} is not a loss record (needs split, step, {', '.join(TERMS)})")
        records.append(record)
    return records


def _is_loss_record(record) -> bool:
    number = (int, float)
    return (
        isinstance(record, dict)
        and record.get("split") in ("train", "test")
        and isinstance(record.get("step"), int)
        and all(isinstance(record.get(k), number) for k in TERMS)
    )
