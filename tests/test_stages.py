"""Resumable stages: skip what finished, rerun what changed or was interrupted."""

from __future__ import annotations

import pytest

from embedkit.study.runner import Stage, StageRunner


def _stages(tmp_path, calls, a_config=None, fail_b=False):
    out_a = tmp_path / "a.txt"

    def run_a():
        calls.append("a")
        out_a.write_text("a")
        return {"value": 1}

    def run_b():
        calls.append("b")
        if fail_b:
            raise KeyboardInterrupt
        return {"value": 2}

    return [
        Stage("a", "A", a_config or {"x": 1}, run_a, outputs=(out_a,)),
        Stage("b", "B", {"y": 2}, run_b, after=("a",)),
    ]


def test_rerun_skips_finished_stages(tmp_path):
    calls: list[str] = []
    first = StageRunner(tmp_path / "state").run(_stages(tmp_path, calls))
    assert calls == ["a", "b"] and first["b"].results == {"value": 2}
    again = StageRunner(tmp_path / "state").run(_stages(tmp_path, calls))
    assert calls == ["a", "b"], "finished stages ran again"
    assert again["a"].skipped and again["b"].skipped and again["a"].results == {"value": 1}


def test_changed_config_reruns_stage_and_its_dependents(tmp_path):
    calls: list[str] = []
    StageRunner(tmp_path / "state").run(_stages(tmp_path, calls))
    StageRunner(tmp_path / "state").run(_stages(tmp_path, calls, a_config={"x": 2}))
    assert calls == ["a", "b", "a", "b"]


def test_missing_output_reruns_stage(tmp_path):
    calls: list[str] = []
    StageRunner(tmp_path / "state").run(_stages(tmp_path, calls))
    (tmp_path / "a.txt").unlink()
    StageRunner(tmp_path / "state").run(_stages(tmp_path, calls))
    assert calls == ["a", "b", "a"]


def test_interrupted_stage_restarts_cleanly(tmp_path):
    calls: list[str] = []
    with pytest.raises(KeyboardInterrupt):
        StageRunner(tmp_path / "state").run(_stages(tmp_path, calls, fail_b=True))
    assert not (tmp_path / "state" / "b.json").exists()
    StageRunner(tmp_path / "state").run(_stages(tmp_path, calls))
    assert calls == ["a", "b", "b"], "a finished and is skipped; the interrupted b runs again"


def test_always_stage_runs_every_time(tmp_path):
    calls: list[str] = []
    report = Stage("report", "R", {}, lambda: calls.append("r") or {}, always=True)
    StageRunner(tmp_path / "state").run([report])
    StageRunner(tmp_path / "state").run([report])
    assert calls == ["r", "r"]
