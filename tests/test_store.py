"""The HDF5 store: round trips, streaming, validation, atomic writes under kill -9 and Ctrl-C, one writer at a time."""

from __future__ import annotations

import hashlib
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import h5py
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from embedkit.errors import StoreError
from embedkit.store.store import SCHEMA_VERSION, Store, add_npy, open_store

ATTRS = {
    "class_names": ["airplane", "automobile", "bird"],
    "checkpoint": Path("runs/a/last.pt"),
    "checkpoint_digest": "sha256:abc123",
    "config": {"arch": "resnet18", "dim": 8, "lr": 0.3},
}


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture
def store_path(tmp_path, rng) -> Path:
    path = tmp_path / "store.h5"
    open_store(path, create=True).write_group(
        "cifar10/train", rng.normal(size=(100, 8)), rng.integers(0, 3, 100), np.arange(100) * 2, ATTRS
    )
    return path


def test_round_trip_with_attributes(store_path, rng):
    store = open_store(store_path)
    data = store.read("cifar10/train")
    assert data.embeddings.dtype == np.float32 and data.embeddings.shape == (100, 8)
    assert data.labels.dtype == np.int64 and data.ids.dtype == np.int64
    np.testing.assert_array_equal(data.ids, np.arange(100) * 2)
    assert data.attrs["class_names"] == ATTRS["class_names"]
    assert data.attrs["config"] == ATTRS["config"]
    assert data.attrs["checkpoint"] == "runs/a/last.pt"
    assert (data.attrs["dataset"], data.attrs["split"]) == ("cifar10", "train")
    assert data.attrs["schema_version"] == SCHEMA_VERSION and data.attrs["created"] and data.attrs["embedkit_version"]
    assert store.groups() == ["cifar10/train"] and "cifar10/train" in store and "cifar10/test" not in store


def test_plain_h5py_reads_the_schema(store_path):
    reference = open_store(store_path).read("cifar10/train")
    with h5py.File(store_path, "r") as f:
        assert f.attrs["schema_version"] == SCHEMA_VERSION
        group = f["cifar10/train"]
        np.testing.assert_array_equal(group["embeddings"][()], reference.embeddings)
        np.testing.assert_array_equal(group["labels"][()], reference.labels)
        assert group.attrs["content_id"].decode() == reference.content_id  # text is fixed-length UTF-8: bytes
        assert [n.decode() for n in group.attrs["class_names"]] == ATTRS["class_names"]
        for target in (f, group):  # no variable-length text: it would live in a global heap, without a checksum
            for name in target.attrs:
                text = h5py.check_string_dtype(target.attrs.get_id(name).dtype)
                assert text is None or text.length is not None, name


def test_defaults_labels_unknown_and_ids_rows(tmp_path, rng):
    store = open_store(tmp_path / "s.h5", create=True)
    store.write_group("mnist/test", rng.normal(size=(5, 3)).astype(np.float64))
    data = store.read("mnist/test")
    np.testing.assert_array_equal(data.labels, -1)
    np.testing.assert_array_equal(data.ids, np.arange(5))


def test_group_writer_streaming_equals_write_group(tmp_path, rng):
    emb, labels = rng.normal(size=(1000, 4)).astype(np.float32), rng.integers(0, 10, 1000)
    store = open_store(tmp_path / "s.h5", create=True)
    store.write_group("a/whole", emb, labels)
    with store.group_writer("a/streamed", 4) as writer:
        for start in range(0, 1000, 137):
            writer.append(emb[start : start + 137], labels[start : start + 137])
    whole, streamed = store.read("a/whole"), store.read("a/streamed")
    for name in ("embeddings", "labels", "ids"):
        np.testing.assert_array_equal(getattr(whole, name), getattr(streamed, name))
    assert whole.content_id != streamed.content_id


def test_rewrite_changes_content_id_and_keeps_other_groups(store_path, rng):
    store = open_store(store_path)
    store.write_group("cifar10/test", rng.normal(size=(10, 8)))
    before = store.content_id("cifar10/train")
    store.write_group("cifar10/train", rng.normal(size=(7, 8)), overwrite=True)
    assert store.content_id("cifar10/train") != before
    assert store.info("cifar10/train").n == 7 and store.info("cifar10/test").n == 10


def test_snapshot_keeps_reading_the_old_version_during_a_write(store_path, rng):
    store = open_store(store_path)
    old = store.read("cifar10/train").embeddings
    with store.snapshot():
        open_store(store_path).write_group("cifar10/train", rng.normal(size=(3, 8)), overwrite=True)
        np.testing.assert_array_equal(store.read("cifar10/train").embeddings, old)
    assert store.info("cifar10/train").n == 3


@pytest.mark.parametrize(
    ("group", "emb", "labels", "ids", "message"),
    [
        ("cifar10/train", np.zeros((3, 8)), None, None, "already exists"),
        ("x/nan", np.array([[1.0, np.nan]]), None, None, "row 0 contains NaN or inf"),
        ("x/inf", np.array([[1.0, 2.0], [np.inf, 0.0]]), None, None, "row 1 contains NaN or inf"),
        ("x/f64", np.array([[1e39, 0.0]]), None, None, "NaN or inf"),  # overflows float32
        ("x/shape", np.zeros(4), None, None, "must be"),
        ("x/labels", np.zeros((3, 2)), np.zeros(2, int), None, "labels must have shape \\(3,\\)"),
        ("x/labels", np.zeros((3, 2)), np.zeros(3), None, "labels must be integers"),
        ("x/ids", np.zeros((3, 2)), None, np.array([1, 1, 2]), "id 1 appears more than once"),
        ("cifar10", np.zeros((3, 2)), None, None, "would nest"),
        ("cifar10/train/deeper", np.zeros((3, 2)), None, None, "would nest"),
        ("bad//name", np.zeros((3, 2)), None, None, "invalid group name"),
        ("x/strings", np.array([["a", "b"]]), None, None, "must be numbers"),
    ],
)
def test_bad_writes_are_refused_and_change_nothing(store_path, group, emb, labels, ids, message):
    before = digest(store_path)
    with pytest.raises(StoreError, match=message) as info:
        open_store(store_path).write_group(group, emb, labels, ids)
    assert "\n" not in str(info.value) and str(store_path) in str(info.value)
    assert digest(store_path) == before
    assert not list(store_path.parent.glob(".store.h5.tmp-*"))


def test_error_inside_group_writer_leaves_store_unchanged(store_path, rng):
    before = digest(store_path)
    with pytest.raises(KeyboardInterrupt):
        with open_store(store_path).group_writer("cifar10/test", 8) as writer:
            writer.append(rng.normal(size=(10, 8)))
            raise KeyboardInterrupt
    with pytest.raises(StoreError, match="row 3 contains NaN"):
        with open_store(store_path).group_writer("cifar10/test", 8) as writer:
            writer.append(rng.normal(size=(3, 8)))
            writer.append(np.full((2, 8), np.nan))
    assert digest(store_path) == before and open_store(store_path).groups() == ["cifar10/train"]
    assert not list(store_path.parent.glob(".store.h5.tmp-*"))


def test_transaction_writes_every_group_or_none(store_path, rng):
    from embedkit.store.store import GroupData

    train, test = rng.normal(size=(30, 8)).astype(np.float32), rng.normal(size=(7, 8)).astype(np.float32)
    before = digest(store_path)
    with pytest.raises(RuntimeError, match="between groups"):
        with open_store(store_path).transaction(["pair/train", "pair/test"]) as transaction:
            transaction.new_group("pair/train", 8).append(train)
            raise RuntimeError("between groups")
    with pytest.raises(StoreError, match="'pair/test' was never written"):
        with open_store(store_path).transaction(["pair/train", "pair/test"]) as transaction:
            transaction.new_group("pair/train", 8).append(train)
    with pytest.raises(StoreError, match="not one of this transaction's unwritten groups"):
        with open_store(store_path).transaction(["pair/train"]) as transaction:
            transaction.new_group("pair/test", 8)
    assert digest(store_path) == before and open_store(store_path).groups() == ["cifar10/train"]
    store = open_store(store_path)
    ids = store.write_groups(
        [
            GroupData("pair/train", train, np.arange(30) % 3, None, {"note": "a"}),
            GroupData("pair/test", test, None, np.arange(7) + 100, {}),
        ]
    )
    assert store.groups() == ["cifar10/train", "pair/test", "pair/train"]
    assert [store.content_id("pair/train"), store.content_id("pair/test")] == ids
    got = store.read("pair/test")
    assert np.array_equal(got.embeddings, test) and np.array_equal(got.ids, np.arange(7) + 100)
    assert np.array_equal(got.labels, np.full(7, -1)) and store.read("pair/train").attrs["note"] == "a"
    with pytest.raises(StoreError, match="'pair/test' already exists"):  # checked for every group, before writing
        store.write_groups([GroupData("new/one", train, None, None, {}), GroupData("pair/test", test, None, None, {})])
    assert "new/one" not in open_store(store_path)


def test_second_writer_waits_then_fails_cleanly(store_path, rng):
    with open_store(store_path).group_writer("cifar10/test", 8) as writer:
        writer.append(rng.normal(size=(4, 8)))
        start = time.monotonic()
        with pytest.raises(StoreError, match="another process is writing"):
            open_store(store_path, lock_timeout_s=0.3).write_group("mnist/test", rng.normal(size=(2, 8)))
        assert 0.3 <= time.monotonic() - start < 3
    assert open_store(store_path).groups() == ["cifar10/test", "cifar10/train"]


WRITER_SCRIPT = textwrap.dedent(
    """
    import sys, time
    from pathlib import Path
    import numpy as np
    from embedkit.store.store import open_store

    store_path, marker = Path(sys.argv[1]), Path(sys.argv[2])
    with open_store(store_path).group_writer("cifar10/test", 8) as writer:
        chunk = np.ones((50_000, 8), np.float32)
        writer.append(chunk)
        marker.write_text("half written")
        for _ in range(600):
            time.sleep(0.05)
            writer.append(chunk)
    """
)


@pytest.mark.slow
@pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGINT])
def test_interrupted_write_leaves_previous_file_intact(store_path, tmp_path, rng, sig):
    before, old = digest(store_path), open_store(store_path).read("cifar10/train")
    marker = tmp_path / "marker"
    proc = subprocess.Popen(
        [sys.executable, "-c", WRITER_SCRIPT, str(store_path), str(marker)], stderr=subprocess.DEVNULL
    )
    deadline = time.monotonic() + 60
    while not marker.exists():
        assert proc.poll() is None and time.monotonic() < deadline, "writer died before writing"
        time.sleep(0.05)
    os.kill(proc.pid, sig)
    proc.wait(timeout=30)
    assert digest(store_path) == before
    store = open_store(store_path)
    assert store.groups() == ["cifar10/train"]
    np.testing.assert_array_equal(store.read("cifar10/train").embeddings, old.embeddings)
    temps = list(store_path.parent.glob(".store.h5.tmp-*"))
    assert (len(temps) == 1) if sig == signal.SIGKILL else not temps  # Ctrl-C cleans up after itself
    store.write_group("cifar10/test", rng.normal(size=(5, 8)))  # the rerun completes ...
    assert not list(store_path.parent.glob(".store.h5.tmp-*"))  # ... and removes the dead writer's temp file
    assert store.groups() == ["cifar10/test", "cifar10/train"]


def test_ctrl_c_while_writing_abandons_the_write_at_the_next_chunk(store_path, rng):
    """The first Ctrl-C only sets a flag, checked between chunks (inside h5py a KeyboardInterrupt can be dropped)."""
    before, handler, steps = digest(store_path), signal.getsignal(signal.SIGINT), []
    with pytest.raises(KeyboardInterrupt):
        with open_store(store_path).group_writer("cifar10/test", 8) as writer:
            writer.append(rng.normal(size=(10, 8)))
            os.kill(os.getpid(), signal.SIGINT)
            time.sleep(0.05)
            steps.append("after Ctrl-C")  # no exception yet ...
            writer.append(rng.normal(size=(10, 8)))  # ... the next chunk abandons the write
            steps.append("after the next chunk")
    assert steps == ["after Ctrl-C"]
    assert digest(store_path) == before and not list(store_path.parent.glob(".store.h5.tmp-*"))
    assert signal.getsignal(signal.SIGINT) is handler  # restored


def test_ctrl_c_after_the_last_chunk_does_not_commit(store_path, rng):
    before, steps = digest(store_path), []
    with pytest.raises(KeyboardInterrupt):
        with open_store(store_path).group_writer("cifar10/test", 8) as writer:
            writer.append(rng.normal(size=(10, 8)))
            os.kill(os.getpid(), signal.SIGINT)
            time.sleep(0.05)
            steps.append("after Ctrl-C")
    assert steps == ["after Ctrl-C"] and digest(store_path) == before
    open_store(store_path).write_group("cifar10/test", rng.normal(size=(3, 8)))  # the handler is back to normal
    assert open_store(store_path).groups() == ["cifar10/test", "cifar10/train"]


def test_missing_store(tmp_path):
    with pytest.raises(StoreError, match="no such store"):
        open_store(tmp_path / "nope.h5")
    store = open_store(tmp_path / "new" / "s.h5", create=True)
    assert store.groups() == [] and not (tmp_path / "new" / "s.h5").exists()


def _truncated(path: Path) -> None:
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 3])


@pytest.mark.parametrize(
    ("damage", "message"),
    [
        (lambda p: p.write_bytes(b""), "empty file"),
        (lambda p: p.write_text("group,embedding\n1,2\n"), "not an HDF5 file"),
        (_truncated, "truncated or corrupt|unreadable"),
        (lambda p: h5py.File(p, "w").close(), "not an embedkit store"),
    ],
)
def test_damaged_files_give_one_line_errors(store_path, damage, message):
    damage(store_path)
    with pytest.raises(StoreError, match=message) as info:
        store = open_store(store_path)
        store.read("cifar10/train")
    assert str(store_path) in str(info.value) and "\n" not in str(info.value)


def test_flipped_bytes_in_the_data_are_caught(store_path):
    """Chunks carry a checksum (fletcher32): damaged numbers are an error, not silently wrong embeddings."""
    with h5py.File(store_path, "r") as f:
        offset = f["cifar10/train/embeddings"].id.get_chunk_info(0).byte_offset
    with open(store_path, "r+b") as handle:
        handle.seek(offset + 100)
        handle.write(b"\x01\x02\x03\x04")
    with pytest.raises(StoreError, match=f"{store_path}: group 'cifar10/train': damaged embeddings near row 0") as info:
        open_store(store_path).read("cifar10/train")
    assert "\n" not in str(info.value)


def _overwrite(path: Path, offset: int, n_bytes: int = 64) -> None:
    """Replace n_bytes at offset with seeded noise, as a failing disk or a bad copy would."""
    with open(path, "r+b") as handle:
        handle.seek(offset)
        handle.write(np.random.default_rng(offset).integers(0, 256, n_bytes, dtype=np.uint8).tobytes())


def _header_at(path: Path, name: str) -> int:
    with h5py.File(path, "r") as f:
        return h5py.h5o.get_info(f[name].id).addr


def _chunk_at(path: Path, name: str, chunk: int = 0) -> int:
    with h5py.File(path, "r") as f:
        return f[name].id.get_chunk_info(chunk).byte_offset


@pytest.fixture
def two_groups(store_path, rng) -> Path:
    open_store(store_path).write_group("cifar10/test", rng.normal(size=(30, 8)), rng.integers(0, 3, 30))
    return store_path


@pytest.mark.parametrize(
    ("damaged", "other_group_readable"),
    [("cifar10/train/embeddings", True), ("cifar10/train/ids", True), ("cifar10/train", False)],
)
def test_damaged_object_headers_are_one_line_naming_file_and_group(two_groups, damaged, other_group_readable):
    """h5py raises RuntimeError, KeyError or OSError on damaged metadata: each becomes one StoreError line."""
    expected = open_store(two_groups).read("cifar10/test")
    _overwrite(two_groups, _header_at(two_groups, damaged))
    for action in (
        open_store,
        lambda p: Store(p).read("cifar10/train"),
        lambda p: Store(p).info("cifar10/train"),
        lambda p: Store(p).read_rows("cifar10/train", [0, 5]),
    ):
        with pytest.raises(StoreError, match="cifar10/train.*: damaged") as info:
            action(two_groups)
        assert str(two_groups) in str(info.value) and "\n" not in str(info.value)
    if other_group_readable:  # the damage is reported by the group that holds it, not while listing groups
        np.testing.assert_array_equal(Store(two_groups).read("cifar10/test").embeddings, expected.embeddings)


def test_a_link_name_that_is_not_utf8_is_an_error_not_a_crash(store_path):
    """h5py returns such a name as bytes (a damaged name in an old-format file looks like this)."""
    with h5py.File(store_path, "a") as f:
        f.create_group(b"bad\xff").create_group("x").create_dataset("embeddings", data=np.zeros((2, 2), np.float32))
    with pytest.raises(StoreError, match=f"{store_path}: group 'bad\ufffd/x'"):
        open_store(store_path)


@pytest.mark.parametrize(
    "damage",
    [
        lambda p: _overwrite(p, _chunk_at(p, "cifar10/train/embeddings") + 100, 4),
        lambda p: _overwrite(p, _chunk_at(p, "cifar10/train/ids") + 8, 4),
        lambda p: _overwrite(p, _header_at(p, "cifar10/train/labels")),
    ],
    ids=["embeddings-chunk", "ids-chunk", "labels-header"],
)
def test_a_write_refuses_to_carry_a_damaged_group_over(two_groups, rng, damage):
    """Writing a group copies the others: a damaged one is refused by name and the store is left as it was.

    HDF5 copies raw chunks without checking their checksums: the copy is read back through them.
    """
    damage(two_groups)
    before = digest(two_groups)
    with pytest.raises(StoreError, match=f"{two_groups}: group 'cifar10/train'.*store is unchanged") as info:
        Store(two_groups).write_group("cifar10/new", rng.normal(size=(5, 8)))
    assert "\n" not in str(info.value)
    assert digest(two_groups) == before and not list(two_groups.parent.glob(".store.h5.tmp-*"))
    replacement = rng.normal(size=(4, 8)).astype(np.float32)  # the way out: rewrite the damaged group itself
    Store(two_groups).write_group("cifar10/train", replacement, overwrite=True)
    store = open_store(two_groups)
    np.testing.assert_array_equal(store.read("cifar10/train").embeddings, replacement)
    assert store.info("cifar10/test").n == 30


@pytest.fixture
def small_chunks(monkeypatch):
    """Chunks of 32 rows of 8 floats (labels and ids: 1,024 rows), read 64 rows at a time: many chunks, many reads."""
    from embedkit.store import reader as store_io
    from embedkit.store import writer as store_writer

    monkeypatch.setattr(store_writer, "CHUNK_BYTES", 32 * 8 * 4)
    monkeypatch.setattr(store_io, "CHECK_ROWS", 64)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])  # constants
@given(n=st.integers(1, 2500), picks=st.lists(st.floats(0, 1), max_size=60), seed=st.integers(0, 2**16))
def test_read_rows_equals_read_then_index(tmp_path_factory, small_chunks, n, picks, seed):
    """Any rows, in any order, repeated or not: the same values as reading the whole group and indexing it."""
    rng = np.random.default_rng(seed)
    store = open_store(tmp_path_factory.mktemp("rows") / "s.h5", create=True)
    store.write_group("g/x", rng.normal(size=(n, 8)), rng.integers(-1, 9, n), rng.permutation(3 * n)[:n])
    rows = np.array([int(p * (n - 1)) for p in picks], dtype=np.int64)
    whole, some = store.read("g/x"), store.read_rows("g/x", rows)
    for name in ("embeddings", "labels", "ids"):
        np.testing.assert_array_equal(getattr(some, name), getattr(whole, name)[rows])
    assert some.embeddings.shape == (len(rows), 8) and some.attrs == whole.attrs


def test_read_rows_reads_only_the_chunks_it_needs(store_path, small_chunks, rng):
    """A damaged chunk is never read for rows elsewhere, and is reported (by row) for rows inside it."""
    emb = rng.normal(size=(1000, 8)).astype(np.float32)
    open_store(store_path).write_group("big/x", emb)
    _overwrite(store_path, _chunk_at(store_path, "big/x/embeddings", 10) + 16, 4)  # rows 320..351
    np.testing.assert_array_equal(
        open_store(store_path).read_rows("big/x", [999, 3, 352, 319]).embeddings, emb[[999, 3, 352, 319]]
    )
    with pytest.raises(StoreError, match=f"{store_path}: group 'big/x': damaged embeddings near row 320"):
        open_store(store_path).read_rows("big/x", [5, 330])


@pytest.mark.parametrize(
    ("rows", "message"),
    [
        ([0, 100], "row 100 is out of range \\(the group has 100 rows\\)"),
        ([-1], "row -1 is out of range"),
        ([[1, 2]], "rows must be a 1-D array of integers"),
        ([0.5], "rows must be a 1-D array of integers"),
    ],
)
def test_read_rows_bad_rows_name_the_row(store_path, rows, message):
    with pytest.raises(StoreError, match=f"{store_path}: group 'cifar10/train': {message}"):
        open_store(store_path).read_rows("cifar10/train", rows)


def test_read_rows_of_nothing_and_of_a_nan_row(store_path):
    none = open_store(store_path).read_rows("cifar10/train", [])
    assert none.embeddings.shape == (0, 8) and none.ids.shape == (0,) and none.labels.dtype == np.int64
    _edit(store_path, lambda g: g["embeddings"].__setitem__((42, 3), np.nan))
    assert len(open_store(store_path).read_rows("cifar10/train", [41, 43]).ids) == 2
    with pytest.raises(StoreError, match="row 42 contains NaN or inf"):
        open_store(store_path).read_rows("cifar10/train", [43, 42])


def _edit(path: Path, edit) -> None:
    with h5py.File(path, "a") as f:
        edit(f["cifar10/train"])


def _replace(group, name, values):
    del group[name]
    group[name] = values


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (lambda g: _replace(g, "labels", np.zeros(99, np.int64)), "labels has 99 rows but embeddings has 100"),
        (lambda g: _replace(g, "embeddings", np.zeros((100, 8))), "embeddings must be \\(N, D\\) float32"),
        (lambda g: _replace(g, "ids", np.zeros(100, np.int32)), "ids must be \\(N,\\) int64"),
        (lambda g: g.__delitem__("ids"), "missing dataset 'ids'"),
        (lambda g: g.attrs.__delitem__("content_id"), "incomplete group"),
        (lambda g: g.attrs.__setitem__("schema_version", 99), "schema version 99 is newer"),
        (lambda g: g["embeddings"].__setitem__((7, 2), np.inf), "row 7 contains NaN or inf"),
        (lambda g: g["ids"].__setitem__(3, 0), "id 0 appears more than once"),
    ],
)
def test_inconsistent_groups_name_file_group_and_problem(store_path, edit, message):
    _edit(store_path, edit)
    with pytest.raises(StoreError, match=message) as info:
        open_store(store_path).read("cifar10/train")
    assert f"{store_path}: group 'cifar10/train'" in str(info.value)


def test_wrong_group_name_lists_the_groups(store_path):
    with pytest.raises(StoreError, match=r"group 'cifar10/tset' not found \(groups: cifar10/train\)"):
        open_store(store_path).read("cifar10/tset")


def test_add_npy_streams_and_checks_shapes(tmp_path, rng):
    emb = rng.normal(size=(70_000, 2)).astype(np.float32)
    np.save(tmp_path / "x.npy", emb)
    np.save(tmp_path / "y.npy", np.arange(70_000) % 7)
    np.save(tmp_path / "short.npy", np.arange(10))
    path = tmp_path / "s.h5"
    calls = []
    info = add_npy(
        path,
        "ext/all",
        tmp_path / "x.npy",
        tmp_path / "y.npy",
        on_progress=lambda done, total: calls.append((done, total)),
    )
    assert (info.n, info.dim) == (70_000, 2) and calls[-1] == (70_000, 70_000) and len(calls) == 2
    np.testing.assert_array_equal(open_store(path).read("ext/all").embeddings, emb)
    with pytest.raises(StoreError, match="labels must have shape \\(70000,\\)"):
        add_npy(path, "ext/bad", tmp_path / "x.npy", tmp_path / "short.npy")
    (tmp_path / "text.npy").write_text("hello")
    with pytest.raises(StoreError, match="not a readable NumPy .npy file"):
        add_npy(path, "ext/bad", tmp_path / "text.npy")
    assert open_store(path).groups() == ["ext/all"]


@settings(max_examples=20, deadline=None)
@given(n=st.integers(0, 40), dim=st.integers(1, 5), seed=st.integers(0, 2**16), chunk=st.integers(1, 17))
def test_round_trip_property(tmp_path_factory, n, dim, seed, chunk):
    rng = np.random.default_rng(seed)
    emb, labels = rng.normal(size=(n, dim)).astype(np.float32), rng.integers(-1, 5, n)
    ids = rng.permutation(n * 3)[:n]
    store = open_store(tmp_path_factory.mktemp("prop") / "s.h5", create=True)
    with store.group_writer("p/q", dim) as writer:
        for start in range(0, n, chunk):
            writer.append(emb[start : start + chunk], labels[start : start + chunk], ids[start : start + chunk])
    data = store.read("p/q")
    np.testing.assert_array_equal(data.embeddings, emb)
    np.testing.assert_array_equal(data.labels, labels)
    np.testing.assert_array_equal(data.ids, ids)


REWRITER_SCRIPT = textwrap.dedent(
    """
    import sys
    import numpy as np
    from embedkit.store.store import open_store

    store = open_store(sys.argv[1])
    for i in range(30):
        n, value = (1000, 1.0) if i % 2 else (2000, 2.0)
        store.write_group("cifar10/train", np.full((n, 8), value, np.float32), overwrite=True)
    """
)


@pytest.mark.slow
def test_readers_see_old_or_new_never_partial_while_a_writer_rewrites(store_path):
    """A real writer process rewrites the group 30 times while this process keeps reading it."""
    proc = subprocess.Popen([sys.executable, "-c", REWRITER_SCRIPT, str(store_path)])
    seen = set()
    while proc.poll() is None:
        data = open_store(store_path).read("cifar10/train")
        n, values = len(data.embeddings), tuple(np.unique(data.embeddings).tolist())
        assert len(data.labels) == len(data.ids) == n
        assert n == 100 or (n, values) in {(1000, (1.0,)), (2000, (2.0,))}, (n, values)
        seen.add(n)
    assert proc.returncode == 0
    assert len(seen) >= 2, "the reader never overlapped the writer"
