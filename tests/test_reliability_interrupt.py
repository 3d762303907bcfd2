"""`kill -9` and Ctrl-C (SIGINT) during `add`, `pairs`, `encode` and `train`, for real on a subprocess.

Each test starts the command as `python -m cli.main ...`, waits for a sign that the work is under way (the store's
temp file growing, FAISS loaded, training log lines), sends the signal, then checks: the store opens and validates
with its old groups unchanged and no half-written group, the last checkpoint loads, Ctrl-C exits 130 with one line
and no traceback, and the same command run again completes.
"""

from __future__ import annotations

import hashlib
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from reliability_summary import record_interruption
from reliability_world import image_folder, small_checkpoint, write_idx_mnist

REPO = Path(__file__).resolve().parents[1]
SIGNALS = [pytest.param(signal.SIGKILL, id="kill-9"), pytest.param(signal.SIGINT, id="ctrl-c")]
WAIT_S = 120  # for the marker; a loaded 2-core machine needs seconds just to import torch


def _digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _env(tmp_path: Path) -> dict[str, str]:
    return {
        **os.environ,
        "EMBEDKIT_CACHE": str(tmp_path / "cache"),
        "EMBEDKIT_HOME": str(tmp_path / "ws"),
        "COLUMNS": "200",
        "NO_COLOR": "1",
        "TERM": "dumb",
    }


def _start(args: list[str], tmp_path: Path) -> subprocess.Popen:
    with open(tmp_path / "output.txt", "wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "cli.main", *args],
            cwd=REPO,
            env=_env(tmp_path),
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    proc.stdout_path = tmp_path / "output.txt"
    return proc


def _wait_for(proc: subprocess.Popen, ready, what: str) -> None:
    """Poll `ready()` until true; fail if the process ends first (then the work was too small to interrupt)."""
    deadline = time.monotonic() + WAIT_S
    while not ready():
        if proc.poll() is not None:
            output = Path(proc.stdout_path).read_text(errors="replace")
            pytest.fail(f"`embedkit {' '.join(proc.args[3:])}` ended (exit {proc.returncode}) before {what}: {output}")
        assert time.monotonic() < deadline, f"no sign of {what} after {WAIT_S} s"
        time.sleep(0.01)


def _interrupt(proc: subprocess.Popen, sig: int, tmp_path: Path) -> str:
    """Send `sig`; check the exit: -9 for kill -9, 130 and one 'interrupted' line without traceback for Ctrl-C."""
    assert proc.poll() is None, "the command finished before it could be interrupted"
    proc.send_signal(sig)
    proc.wait(timeout=WAIT_S)
    output = (tmp_path / "output.txt").read_text(errors="replace")
    if sig == signal.SIGKILL:
        assert proc.returncode == -signal.SIGKILL, output
    else:
        assert proc.returncode == 130, output
        assert "Traceback" not in output and "interrupted" in output, output
    return output


def _temps(path: Path) -> list[Path]:
    return list(path.parent.glob(f".{path.name}.tmp-*"))


def _temp_larger_than(path: Path, size: int):
    return lambda: any(t.stat().st_size > size for t in _temps(path) if t.exists())


def _loaded(proc: subprocess.Popen, library: str):
    def check() -> bool:
        try:
            return library in Path(f"/proc/{proc.pid}/maps").read_text()
        except OSError:
            return False

    return check


def _check_store(path: Path, expected: dict[str, np.ndarray]) -> None:
    """The store opens, validates every value, and holds exactly the `expected` groups with these embeddings."""
    from embedkit.store.store import open_store

    store = open_store(path)
    assert store.groups() == sorted(expected)
    for group, embeddings in expected.items():
        store.verify(group)
        np.testing.assert_array_equal(store.read(group).embeddings, embeddings)


def _rerun(args: list[str], tmp_path: Path, *, in_process: bool = False) -> None:
    """Run the command again to completion: as a subprocess, or in this process when it imports torch (which this
    process has already paid for: a fresh one costs seconds here)."""
    if in_process:
        from typer.testing import CliRunner

        from embedkit_cli.main import app

        result = CliRunner(env=_env(tmp_path)).invoke(app, args)
        assert result.exit_code == 0 and result.exception is None, result.output
        return
    done = subprocess.run(
        [sys.executable, "-m", "cli.main", *args],
        cwd=REPO,
        env=_env(tmp_path),
        capture_output=True,
        text=True,
        timeout=WAIT_S,
    )
    assert done.returncode == 0, done.stdout + done.stderr


@pytest.fixture
def old_store(tmp_path, rng) -> tuple[Path, dict[str, np.ndarray]]:
    """A store with one group already in it, which no interrupted write may touch."""
    from embedkit.store.store import open_store

    path = tmp_path / "store.h5"
    old = {"old/group": rng.normal(size=(50, 8)).astype(np.float32)}
    open_store(path, create=True).write_group("old/group", old["old/group"], np.arange(50) % 2)
    return path, old


# ---------------------------------------------------------------- add and pairs: no torch, a second or two each


@pytest.mark.parametrize("sig", SIGNALS)
def test_add_interrupted_keeps_the_store_and_reruns(tmp_path, rng, old_store, sig):
    store, old = old_store
    big = tmp_path / "big.npy"
    np.save(big, rng.normal(size=(200_000, 64)).astype(np.float32))  # 51 MB: about a second to stream here
    before = _digest(store)
    args = ["add", str(store), "-g", "new/group", "--embeddings", str(big)]
    proc = _start(args, tmp_path)
    _wait_for(proc, _temp_larger_than(store, 4 << 20), "the new group streaming into the temp file")
    _interrupt(proc, sig, tmp_path)
    assert _digest(store) == before
    _check_store(store, old)
    assert len(_temps(store)) == (1 if sig == signal.SIGKILL else 0)  # Ctrl-C cleans up after itself
    _rerun(args, tmp_path)
    assert not _temps(store)  # the next writer removes a killed writer's temp file
    _check_store(store, {**old, "new/group": np.load(big)})
    record_interruption()


@pytest.mark.slow  # about 10 s each: a 100,000-row self-join is interrupted mid-way
@pytest.mark.parametrize("sig", SIGNALS)
def test_pairs_interrupted_keeps_the_old_pairs_file_and_reruns(tmp_path, rng, old_store, sig):
    import h5py

    from embedkit.search.index import make_pairs
    from embedkit.store.store import open_store

    store, old = old_store
    # Exact 3-NN of 100,000 rows: seconds on 2 cores. 30,000 rows finished within the 1.5 s below on an idle fast
    # sandbox, so the kill came after the new pairs file was in place.
    rows = rng.normal(size=(100_000, 32)).astype(np.float32)
    open_store(store).write_group("big/group", rows)
    pairs = tmp_path / "pairs.h5"
    make_pairs(store, "old/group", 1, pairs)  # yesterday's pairs file, which the new run replaces only when done
    before_store, before_pairs = _digest(store), _digest(pairs)
    args = ["pairs", str(store), "-g", "big/group", "-k", "3", "--out", str(pairs)]
    proc = _start(args, tmp_path)
    _wait_for(proc, _loaded(proc, "h5py"), "the store opened for the search")
    time.sleep(1.5)  # past the imports and the read, into the search
    _interrupt(proc, sig, tmp_path)
    assert (_digest(store), _digest(pairs)) == (before_store, before_pairs)
    with h5py.File(pairs, "r") as h5:
        assert h5["neighbor_ids"].shape == (50, 1) and h5.attrs["group"] == "old/group"
    assert not _temps(pairs) or sig == signal.SIGKILL
    _check_store(store, {**old, "big/group": rows})
    _rerun(args, tmp_path)
    with h5py.File(pairs, "r") as h5:
        assert h5["neighbor_ids"].shape == (100_000, 3) and h5.attrs["group"] == "big/group"
        assert not (h5["neighbor_ids"][()] == h5["ids"][()][:, None]).any()  # never itself
    record_interruption()


# ---------------------------------------------------------------- encode and train: each subprocess imports torch


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory) -> Path:
    return small_checkpoint(tmp_path_factory.mktemp("ckpt") / "run")


@pytest.mark.slow
@pytest.mark.parametrize("sig", SIGNALS)
def test_encode_interrupted_keeps_the_store_and_reruns(tmp_path, rng, old_store, checkpoint, sig):
    store, old = old_store
    write_idx_mnist(tmp_path / "data", 800, rng)  # a few seconds of encoding here
    before = _digest(store)
    args = [
        "encode",
        str(checkpoint),
        "--dataset",
        "mnist",
        "--split",
        "test",
        "--data-root",
        str(tmp_path / "data"),
        "--out",
        str(store),
        "--batch-size",
        "50",
        "--device",
        "cpu",
    ]
    proc = _start(args, tmp_path)
    _wait_for(proc, lambda: bool(_temps(store)), "the group writer's temp file")
    time.sleep(0.2)  # a few batches into the encoding
    _interrupt(proc, sig, tmp_path)
    assert _digest(store) == before
    _check_store(store, old)
    assert len(_temps(store)) == (1 if sig == signal.SIGKILL else 0)
    _rerun(args, tmp_path, in_process=True)
    from embedkit.store.store import open_store

    assert not _temps(store)
    assert open_store(store).groups() == ["mnist/test", "old/group"]
    assert open_store(store).verify("mnist/test").n == 800
    _check_store(store, {**old, "mnist/test": open_store(store).read("mnist/test").embeddings})
    record_interruption()


def _log_steps(run: Path) -> list[int]:
    path = run / "log.jsonl"
    if not path.exists():
        return []
    lines = [json.loads(line) for line in path.read_text().splitlines() if line.strip().endswith("}")]
    return [r["step"] for r in lines if r["split"] == "train"]


@pytest.mark.slow
@pytest.mark.parametrize("sig", SIGNALS)
def test_train_interrupted_leaves_a_checkpoint_that_resumes(tmp_path, rng, sig):
    from embedkit.training.models import load_checkpoint, read_checkpoint

    images, run = image_folder(tmp_path / "imgs", rng, n_train=16, n_test=2, size=32), tmp_path / "run"
    steps_per_epoch = 4  # 32 train images, batch 8
    args = [
        "train",
        "--dataset",
        str(images),
        "--epochs",
        "100",
        "--batch-size",
        "8",
        "--run-dir",
        str(run),
        "--device",
        "cpu",
    ]
    proc = _start(args, tmp_path)
    _wait_for(
        proc,
        lambda: (run / "last.pt").exists() and len(_log_steps(run)) >= steps_per_epoch + 2,
        "an epoch's checkpoint and steps of the next epoch",
    )
    _interrupt(proc, sig, tmp_path)
    saved = read_checkpoint(run / "last.pt")["step"]
    load_checkpoint(run / "last.pt")  # the encoder loads
    logged = _log_steps(run)
    if sig == signal.SIGKILL:  # the last epoch boundary checkpoint
        assert saved % steps_per_epoch == 0 and steps_per_epoch <= saved <= logged[-1]
    else:  # Ctrl-C waits for the step to end and saves it
        assert saved == logged[-1]
    epochs = saved // steps_per_epoch + 1
    _rerun(
        ["train", "--resume", "--run-dir", str(run), "--epochs", str(epochs), "--device", "cpu"],
        tmp_path,
        in_process=True,
    )
    assert read_checkpoint(run / "last.pt")["step"] == epochs * steps_per_epoch
    assert _log_steps(run) == list(range(1, epochs * steps_per_epoch + 1))  # each step logged once, none lost
    record_interruption()
