"""Resumable pipeline stages: a finished stage is skipped on rerun when its inputs and config are unchanged.

Each stage leaves a record `<state_dir>/<name>.json` only after it finished, so an interrupted stage has no record
and simply runs again; its outputs are written atomically by the library functions it calls.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from embedkit._util.atomic import atomic_path


@dataclass(frozen=True)
class Stage:
    """One step of a pipeline. `run()` returns a JSON-able dict of results; `outputs` must exist afterwards."""

    name: str
    title: str
    config: dict
    run: Callable[[], dict]
    outputs: tuple[Path, ...] = ()
    after: tuple[str, ...] = ()
    always: bool = False  # cheap stages that summarise this run (a report) run every time


@dataclass
class StageRecord:
    name: str
    key: str
    results: dict
    seconds: float
    finished: str
    skipped: bool = False
    config: dict = field(default_factory=dict)


def stage_key(stage: Stage, upstream_keys: dict[str, str], code: dict | None = None) -> str:
    """A digest of the stage's config, of the keys of the stages it depends on, and of the code that runs it
    (`embedkit.provenance.code_version()`: version, git commit, dirty flag, source digest)."""
    payload = {"config": stage.config, "after": {n: upstream_keys[n] for n in stage.after}, "code": code}
    blob = json.dumps(payload, sort_keys=True, default=str).encode()
    return hashlib.sha256(blob).hexdigest()[:16]


class StageRunner:
    """Runs stages in order, skipping those whose record matches their key and whose outputs exist."""

    def __init__(
        self, state_dir: Path, on_event: Callable[[str, Stage, Any], None] | None = None, *, code: dict | None = None
    ):
        self.state_dir = Path(state_dir)
        self.code = code
        self.on_event = on_event or (lambda *_: None)
        self.records: dict[str, StageRecord] = {}

    def _record_path(self, name: str) -> Path:
        return self.state_dir / f"{name}.json"

    def _load(self, stage: Stage, key: str) -> StageRecord | None:
        path = self._record_path(stage.name)
        try:
            data = json.loads(path.read_text())
        except (OSError, ValueError):
            return None
        if data.get("key") != key or not all(Path(p).exists() for p in stage.outputs):
            return None
        return StageRecord(**{**data, "skipped": True})

    def _save(self, record: StageRecord) -> None:
        self.state_dir.mkdir(parents=True, exist_ok=True)
        payload = {k: v for k, v in record.__dict__.items() if k != "skipped"}
        with atomic_path(self._record_path(record.name)) as tmp:
            tmp.write_text(json.dumps(payload, indent=2, default=str))

    def run(self, stages: list[Stage]) -> dict[str, StageRecord]:
        keys: dict[str, str] = {}
        for stage in stages:
            key = keys[stage.name] = stage_key(stage, keys, self.code)
            record = None if stage.always else self._load(stage, key)
            if record is not None:
                self.records[stage.name] = record
                self.on_event("skipped", stage, record)
                continue
            self.on_event("started", stage, None)
            start = time.perf_counter()
            results = stage.run()
            record = StageRecord(
                name=stage.name,
                key=key,
                results=results,
                seconds=round(time.perf_counter() - start, 2),
                finished=datetime.now(timezone.utc).isoformat(timespec="seconds"),
                config=stage.config,
            )
            self._save(record)
            self.records[stage.name] = record
            self.on_event("finished", stage, record)
        return self.records
