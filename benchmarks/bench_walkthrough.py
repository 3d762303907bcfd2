"""The README's five-minute walkthrough, timed: each command as typed, in a fresh process and an empty workspace.

    nice python benchmarks/bench_walkthrough.py                     # the walkthrough exactly as the README has it
    nice python benchmarks/bench_walkthrough.py --subset 1000       # `train --subset 1000` instead (a quicker look)
    nice python benchmarks/bench_walkthrough.py --study-smoke       # then `embedkit study --smoke` too

The commands are read from README.md's walkthrough block (comments dropped; its `export EMBEDKIT_DATA=...` sets the
data root, relative to the repository, unless EMBEDKIT_DATA is already set). Before timing, `embedkit data --prepare`
warms the decode cache (a one-time cost, reported apart). Each command then runs as its own `embedkit` process
(interpreter start and imports included: that is what a newcomer waits for) in a new temporary folder, so the
workspace `./embedkit-work` starts empty. Prints each command's wall and CPU seconds (user + system of the process
and its children) and writes benchmarks/results/walkthrough[_subsetN].json with the load average beside them.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import resource
import shlex
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
RESULTS = ROOT / "benchmarks" / "results"


def walkthrough_commands(readme: Path = README) -> tuple[dict[str, str], list[str]]:
    """({variable: value} of the block's `export` lines, [each `embedkit ...` command as typed])."""
    text = readme.read_text()
    block = re.search(r"## A five-minute walkthrough\s+```bash\n(.*?)```", text, re.S)
    if block is None:
        raise SystemExit(f"{readme}: no walkthrough block (## A five-minute walkthrough, then a bash block)")
    exports, commands = {}, []
    for line in block.group(1).splitlines():
        line = line.split("#", 1)[0].strip()
        if line.startswith("export "):
            name, _, value = line.removeprefix("export ").partition("=")
            exports[name.strip()] = value.strip()
        elif line:
            commands.append(line)
    return exports, commands


def _embedkit() -> list[str]:
    """How to start `embedkit`: the console script beside this interpreter, else `python -m embedkit_cli.main`."""
    script = Path(sys.executable).with_name("embedkit")
    return [str(script)] if script.exists() else [sys.executable, "-m", "embedkit_cli.main"]


def run_timed(command: str, cwd: Path, env: dict) -> dict:
    """Run one walkthrough command; its wall seconds, CPU seconds and exit code (stderr's last line on failure)."""
    argv = shlex.split(command)
    if argv and argv[0] == "embedkit":
        argv = [*_embedkit(), *argv[1:]]
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    done = subprocess.run(argv, cwd=cwd, env=env, capture_output=True, text=True)
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    row = {"command": command, "wall_s": round(wall, 2), "cpu_s": round(cpu, 2), "exit_code": done.returncode}
    if done.returncode != 0:
        row["error"] = (done.stderr.strip().splitlines() or [""])[-1]
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--subset", type=int, help="replace the walkthrough's `train --subset N` by this N")
    parser.add_argument("--study-smoke", action="store_true", help="also time `embedkit study --smoke`")
    parser.add_argument("--keep", action="store_true", help="keep the workspace folder (its path is printed)")
    args = parser.parse_args()

    exports, commands = walkthrough_commands()
    if args.subset is not None:
        commands = [re.sub(r"--subset \d+", f"--subset {args.subset}", c) for c in commands]
    if args.study_smoke:
        commands.append("embedkit study --smoke")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))}
    for name, value in exports.items():
        env.setdefault(name, str((ROOT / value).resolve()) if name == "EMBEDKIT_DATA" else value)
    env.pop("EMBEDKIT_HOME", None)  # the workspace is ./embedkit-work of the fresh folder, as for a newcomer

    folder = Path(tempfile.mkdtemp(prefix="embedkit-walkthrough-"))
    try:
        warm = run_timed("embedkit data --prepare", folder, env)
        print(f"warm-up (decode cache): {warm['wall_s']:.1f} s wall", flush=True)
        rows = []
        for command in commands:
            row = run_timed(command, folder, env)
            rows.append(row)
            status = "" if row["exit_code"] == 0 else f"  FAILED ({row['exit_code']}): {row.get('error', '')}"
            print(f"{row['wall_s']:8.1f} s wall {row['cpu_s']:8.1f} s CPU  {command}{status}", flush=True)
    finally:
        if args.keep:
            print(f"workspace kept: {folder}")
        else:
            shutil.rmtree(folder, ignore_errors=True)
    total_wall, total_cpu = sum(r["wall_s"] for r in rows), sum(r["cpu_s"] for r in rows)
    print(f"{total_wall:8.1f} s wall {total_cpu:8.1f} s CPU  total ({len(rows)} commands)")
    payload = {
        "commands": rows,
        "total_wall_s": round(total_wall, 2),
        "total_cpu_s": round(total_cpu, 2),
        "warm_up": warm,
        "subset": args.subset,
        "data_root": env.get("EMBEDKIT_DATA"),
        "machine": {"cpus": os.cpu_count(), "platform": platform.platform(), "loadavg": os.getloadavg()},
        "when": time.strftime("%Y-%m-%dT%H:%M:%S"),
    }
    RESULTS.mkdir(parents=True, exist_ok=True)
    out = RESULTS / (f"walkthrough_subset{args.subset}.json" if args.subset is not None else "walkthrough.json")
    out.write_text(json.dumps(payload, indent=2) + "\n")
    print(f"-> {out}")
    if any(r["exit_code"] != 0 for r in rows):
        raise SystemExit(1)


if __name__ == "__main__":
    main()
