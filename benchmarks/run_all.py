"""Run every benchmark script (benchmarks/bench_*.py) in turn; `make bench` calls this.

    python benchmarks/run_all.py                  # every benchmark at full size (long: the 1M search, CIFAR-10 runs)
    python benchmarks/run_all.py --quick          # --quick passed to each; scripts without --quick are skipped
    python benchmarks/run_all.py --only store_io,end_to_end --quick
    python benchmarks/run_all.py --list           # what would run, and how

Each script runs as its own process with this interpreter, from the repository root, its table printed as it goes;
one failing does not stop the others. Scripts that need the real data read $EMBEDKIT_DATA (the Makefile sets it).
Ends with a table of exit codes and seconds; exits 1 if any script failed. benchmarks/gpu_check.sh is not run here.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def find_scripts() -> list[Path]:
    return sorted((ROOT / "benchmarks").glob("bench_*.py"))


def short_name(script: Path) -> str:
    """bench_store_io.py -> store_io"""
    return script.stem.removeprefix("bench_")


def has_quick(script: Path) -> bool:
    """Whether the script takes --quick (read from its source: no import, no process)."""
    return '"--quick"' in script.read_text()


def plan(scripts: list[Path], quick: bool) -> list[tuple[Path, list[str] | None, str]]:
    """(script, command or None when skipped, why) for each script."""
    out = []
    for script in scripts:
        if quick and not has_quick(script):
            out.append((script, None, "skipped: it has no --quick"))
        else:
            out.append((script, [sys.executable, str(script.relative_to(ROOT)), *(["--quick"] if quick else [])], ""))
    return out


def select(scripts: list[Path], only: str | None, skip: str | None) -> list[Path]:
    """Scripts named in --only (all if None), minus those in --skip; unknown names are an error."""
    names = {short_name(s): s for s in scripts}
    for option in (only, skip):
        unknown = [n for n in (option or "").split(",") if n and n not in names]
        if unknown:
            sys.exit(f"unknown benchmark(s) {', '.join(unknown)}; known: {', '.join(names)}")
    chosen = [names[n] for n in only.split(",") if n] if only else scripts
    dropped = set((skip or "").split(","))
    return [s for s in chosen if short_name(s) not in dropped]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="pass --quick to every script (skip those without)")
    parser.add_argument("--only", help="comma-separated names to run, e.g. search,store_io (default: all)")
    parser.add_argument("--skip", help="comma-separated names not to run")
    parser.add_argument("--list", action="store_true", help="print the commands and exit")
    args = parser.parse_args()
    steps = plan(select(find_scripts(), args.only, args.skip), args.quick)
    if args.list:
        for script, command, why in steps:
            print(f"{short_name(script):<14}{' '.join(command[1:]) if command else why}")
        return
    results = []
    for script, command, why in steps:
        if command is None:
            results.append((short_name(script), None, 0.0, why))
            continue
        print(f"\n=== {' '.join(command[1:])}", flush=True)
        start = time.perf_counter()
        code = subprocess.run(command, cwd=ROOT, check=False).returncode
        results.append((short_name(script), code, time.perf_counter() - start, ""))
    print(f"\n{'benchmark':<14}{'exit':>5}{'seconds':>9}")
    for name, code, seconds, why in results:
        print(f"{name:<14}{'-' if code is None else code:>5}{seconds:>9.1f}  {why}")
    sys.exit(1 if any(code not in (None, 0) for _, code, _, _ in results) else 0)


if __name__ == "__main__":
    main()
