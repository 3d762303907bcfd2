"""Readers querying a store while another process writes it see the old or the new state, never a partial one;
two writers on one store: the second waits for the first, or fails cleanly and changes nothing.

Writers are real `embedkit add` subprocesses; readers run in this process in a loop while the writer works.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from embedkit.errors import StoreError
from embedkit.search.index import knn, neighbors
from embedkit.store.store import open_store

REPO = Path(__file__).resolve().parents[1]
DIM = 32
ROWS = {"A": 20_000, "B": 250_000, "C": 20_000}  # B, 32 MB, takes about a second to write: readers read meanwhile


def _start_add(store: Path, group: str, npy: Path, tmp_path: Path, *extra: str) -> subprocess.Popen:
    env = {**os.environ, "EMBEDKIT_CACHE": str(tmp_path / "cache"), "NO_COLOR": "1", "COLUMNS": "200"}
    return subprocess.Popen(
        [sys.executable, "-m", "cli.main", "add", str(store), "-g", group, "--embeddings", str(npy), *extra],
        cwd=REPO,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


def _finish(proc: subprocess.Popen) -> tuple[int, str]:
    output, _ = proc.communicate(timeout=120)
    return proc.returncode, output


def _temps(store: Path) -> list[Path]:
    return list(store.parent.glob(f".{store.name}.tmp-*"))


def _wait_for_temp(proc: subprocess.Popen, store: Path) -> None:
    deadline = time.monotonic() + 60
    while not _temps(store):
        assert proc.poll() is None, f"the writer ended before writing: {_finish(proc)}"
        assert time.monotonic() < deadline
        time.sleep(0.005)


def _digest(array: np.ndarray) -> str:
    return hashlib.sha256(np.ascontiguousarray(array).tobytes()).hexdigest()


@pytest.fixture
def setup(tmp_path, rng):
    """A store with a small query group and a group 'swap/group' holding A; B (big) and C: contents to write."""
    store = tmp_path / "store.h5"
    arrays = {name: rng.normal(size=(rows, DIM)).astype(np.float32) for name, rows in ROWS.items()}
    for name, array in arrays.items():
        np.save(tmp_path / f"{name}.npy", array)
    small = rng.normal(size=(200, DIM)).astype(np.float32)
    s = open_store(store, create=True)
    s.write_group("small/group", small)
    s.write_group("swap/group", arrays["A"])
    return store, arrays, small


@pytest.mark.parametrize("operation", ["append-a-new-group", "overwrite-a-group"])
def test_readers_see_the_old_or_the_new_store_never_a_partial_one(tmp_path, setup, operation):
    store, arrays, small = setup
    if operation == "append-a-new-group":
        proc = _start_add(store, "new/group", tmp_path / "B.npy", tmp_path)
        before = {"small/group": _digest(small), "swap/group": _digest(arrays["A"])}
        states = [before, {**before, "new/group": _digest(arrays["B"])}]
    else:
        proc = _start_add(store, "swap/group", tmp_path / "B.npy", tmp_path, "--overwrite")
        states = [{"small/group": _digest(small), "swap/group": _digest(arrays[name])} for name in "AB"]
    expected_dist, expected_rows = (a[:5] for a in knn(small, small, 3, exclude_self=True))
    seen, reads_during_write, digests = set(), 0, {}  # digests: content id -> digest of that group's embeddings
    while True:
        writing = bool(_temps(store)) and proc.poll() is None
        snapshot = open_store(store)
        with snapshot.snapshot():  # one version of the file for every read below
            state = {}
            for group in snapshot.groups():
                content_id = snapshot.content_id(group)  # a group without one is incomplete: StoreError
                if content_id not in digests:  # each version of a group is read in full the first time it is seen
                    digests[content_id] = _digest(snapshot.read(group).embeddings)
                state[group] = digests[content_id]
        assert state in states, f"a reader saw a state that is neither old nor new: groups {sorted(state)}"
        seen.add(states.index(state))
        result = neighbors(store, "small/group", 3, query_ids=[0, 1, 2, 3, 4])  # a query, answered meanwhile
        np.testing.assert_array_equal(result.rows, expected_rows)
        np.testing.assert_allclose(result.distances, expected_dist, atol=1e-5)
        reads_during_write += writing
        if proc.poll() is not None and not writing:
            break
    code, output = _finish(proc)
    assert code == 0, output
    final = open_store(store)
    assert {g: _digest(final.read(g).embeddings) for g in final.groups()} == states[1]
    assert reads_during_write >= 1, "the reader never overlapped the write: make the write bigger"
    assert seen == {0, 1}, seen


def test_a_second_writer_waits_for_the_first_then_lands(tmp_path, setup):
    store, arrays, small = setup
    holder = _hold_lock(store)  # a first writer, mid-write
    try:
        second = _start_add(store, "second/group", tmp_path / "C.npy", tmp_path)
        time.sleep(1.5)
        assert second.poll() is None, f"the second writer did not wait: {_finish(second)}"
        assert not _temps(store) and open_store(store).groups() == ["small/group", "swap/group"]
    finally:
        holder.kill()  # the first writer ends; its lock goes with it
        holder.wait()
    code, output = _finish(second)
    assert code == 0, output
    final = open_store(store)
    assert final.groups() == ["second/group", "small/group", "swap/group"]
    for group, array in (("second/group", arrays["C"]), ("swap/group", arrays["A"]), ("small/group", small)):
        np.testing.assert_array_equal(final.read(group).embeddings, array)


def test_two_writers_of_the_same_group_one_wins_the_other_fails_cleanly(tmp_path, setup):
    store, arrays, _ = setup
    first = _start_add(store, "same/group", tmp_path / "B.npy", tmp_path)
    _wait_for_temp(first, store)
    second = _start_add(store, "same/group", tmp_path / "C.npy", tmp_path)
    assert _finish(first)[0] == 0
    code, output = _finish(second)
    assert code == 1 and "Traceback" not in output
    assert output.strip().count("\n") == 0 and "'same/group' already exists" in output, output
    np.testing.assert_array_equal(open_store(store).read("same/group").embeddings, arrays["B"])


LOCK_HOLDER = """
import sys, time
from pathlib import Path
from embedkit._util.atomic import acquire_lock
acquire_lock(Path(sys.argv[1]), 5)
print("locked", flush=True)
time.sleep(60)
"""


def _hold_lock(store: Path) -> subprocess.Popen:
    """A process holding the store's writer lock, as a writer does for the whole of its write."""
    holder = subprocess.Popen(
        [sys.executable, "-c", LOCK_HOLDER, str(store)], cwd=REPO, stdout=subprocess.PIPE, text=True
    )
    assert holder.stdout.readline().strip() == "locked"
    return holder


def test_a_writer_that_cannot_wait_fails_cleanly_and_changes_nothing(setup, rng):
    store, _, _ = setup
    holder = _hold_lock(store)
    try:
        before = store.read_bytes()
        with pytest.raises(StoreError, match="another process is writing"):
            open_store(store, lock_timeout_s=0.2).write_group("mine/group", rng.normal(size=(10, DIM)))
        assert store.read_bytes() == before and not _temps(store)
    finally:
        holder.kill()
        holder.wait()
    open_store(store, lock_timeout_s=5).write_group("mine/group", rng.normal(size=(10, DIM)))  # the lock died with it
    assert "mine/group" in open_store(store)
