"""Benchmark scripts import and answer --help (they are never run here: they take minutes and need quiet CPUs)."""

from __future__ import annotations

import importlib.util
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"
SCRIPTS = sorted(BENCHMARKS.glob("*.py"))


def _load(script: Path):
    spec = importlib.util.spec_from_file_location(f"_bench_smoke_{script.stem}", script)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_there_are_benchmarks():
    names = {script.name for script in SCRIPTS}
    assert {"run_all.py", "bench_store_io.py", "bench_end_to_end.py", "gpu_check.py"} <= names


@pytest.mark.parametrize("script", SCRIPTS, ids=[script.stem for script in SCRIPTS])
def test_help(script: Path, monkeypatch, capsys):
    """Importing the script and running its main() with --help prints usage and exits 0, doing nothing else."""
    module = _load(script)
    monkeypatch.setattr(sys, "argv", [script.name, "--help"])
    with pytest.raises(SystemExit) as exit_info:
        module.main()
    assert exit_info.value.code in (0, None)
    assert "usage:" in capsys.readouterr().out


def test_run_all_lists_every_benchmark(monkeypatch, capsys):
    """`run_all.py --list --quick` names every bench_*.py, with --quick or the reason it is skipped."""
    module = _load(BENCHMARKS / "run_all.py")
    monkeypatch.setattr(sys, "argv", ["run_all.py", "--list", "--quick"])
    module.main()
    lines = capsys.readouterr().out.splitlines()
    benches = sorted(BENCHMARKS.glob("bench_*.py"))
    assert len(lines) == len(benches)
    for line, script in zip(lines, benches):
        assert line.startswith(script.stem.removeprefix("bench_"))
        assert f"{script.name} --quick" in line or "skipped: it has no --quick" in line


@pytest.mark.skipif(shutil.which("bash") is None, reason="needs bash")
def test_gpu_check_sh_parses():
    """gpu_check.sh is only parsed (bash -n), never run: it is for CUDA machines."""
    done = subprocess.run(["bash", "-n", str(BENCHMARKS / "gpu_check.sh")], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
