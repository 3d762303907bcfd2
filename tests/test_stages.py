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


def test_changed_code_reruns_every_stage(tmp_path):
    """A stage's key includes the code that runs it: a new commit or an uncommitted edit reruns the stages."""
    calls: list[str] = []
    code = {"embedkit": "0.1.0", "git_commit": "aaa", "git_dirty": False, "source_digest": "1"}
    StageRunner(tmp_path / "state", code=code).run(_stages(tmp_path, calls))
    StageRunner(tmp_path / "state", code=code).run(_stages(tmp_path, calls))
    assert calls == ["a", "b"]
    StageRunner(tmp_path / "state", code={**code, "git_dirty": True, "source_digest": "2"}).run(
        _stages(tmp_path, calls)
    )
    assert calls == ["a", "b", "a", "b"]


def test_code_version_reads_the_checkout_it_lives_in(tmp_path):
    import subprocess

    from embedkit.provenance import _git_state

    def git(*args):
        subprocess.run(
            ["git", "-C", str(tmp_path), "-c", "user.name=t", "-c", "user.email=t@t", *args],
            check=True,
            capture_output=True,
        )

    assert _git_state(tmp_path) == {"git_commit": None, "git_dirty": None}  # not a checkout
    git("init", "-q")
    (tmp_path / "f.py").write_text("x = 1\n")
    git("add", "f.py")
    git("commit", "-qm", "one")
    head = subprocess.run(["git", "-C", str(tmp_path), "rev-parse", "HEAD"], capture_output=True, text=True).stdout
    assert _git_state(tmp_path) == {"git_commit": head.strip(), "git_dirty": False}
    (tmp_path / "f.py").write_text("x = 2\n")
    assert _git_state(tmp_path)["git_dirty"] is True
    (tmp_path / "sub").mkdir()
    assert _git_state(tmp_path / "sub") == {"git_commit": None, "git_dirty": None}  # inside another project's repo
