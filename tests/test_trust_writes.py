"""Writes keep what they should (issue 14, item 9) and say "no space left" on a full disk (item 10).

A store or results file rewritten keeps its mode and, through a symbolic link, its link; other tools' content in a
store survives embedkit's copy-on-write; a full disk (a small tmpfs, or a file size limit) is one error line, no temp
file and the old store byte-identical.
"""

from __future__ import annotations

import contextlib
import os
import resource
import signal
import stat
import subprocess
import sys
import uuid
from pathlib import Path

import h5py
import numpy as np
import pytest

from embedkit.store.store import add_npy, open_store

REPO = Path(__file__).resolve().parents[1]


def _store(path: Path, rng: np.random.Generator, rows: int = 30, dim: int = 4) -> Path:
    open_store(path, create=True).write_group("toy/train", rng.normal(size=(rows, dim)), np.arange(rows) % 3)
    return path


def _embedkit(*args: str, preexec_fn=None) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(REPO), "NO_COLOR": "1", "COLUMNS": "200"}
    return subprocess.run(
        [sys.executable, "-m", "cli.main", *map(str, args)],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
        preexec_fn=preexec_fn,
        check=False,
    )


# ---------------------------------------------------------------- modes and links


def test_a_0600_store_stays_0600_after_a_write(tmp_path, rng):
    store = _store(tmp_path / "s.h5", rng)
    store.chmod(0o600)
    open_store(store).write_group("toy/test", rng.normal(size=(5, 4)))
    assert stat.S_IMODE(store.stat().st_mode) == 0o600
    assert open_store(store).groups() == ["toy/test", "toy/train"]


@pytest.mark.parametrize("suffix", [".json", ".h5", ".npz"])
def test_a_rewritten_results_file_keeps_its_mode(tmp_path, rng, runner, cli_app, suffix):
    store, out = _store(tmp_path / "s.h5", rng), tmp_path / f"n{suffix}"
    command = ["neighbors", str(store), "-g", "toy/train", "-k", "2", "--out", str(out)]
    assert runner.invoke(cli_app, command).exit_code == 0
    for mode in (0o600, 0o640):
        out.chmod(mode)
        result = runner.invoke(cli_app, command)
        assert result.exit_code == 0, result.output
        assert stat.S_IMODE(out.stat().st_mode) == mode


def test_a_store_written_through_a_symlink_updates_the_target_and_stays_a_link(tmp_path, rng):
    (tmp_path / "data").mkdir()
    real = _store(tmp_path / "data" / "real.h5", rng)
    link = tmp_path / "link.h5"
    link.symlink_to(Path("data") / "real.h5")
    emb = rng.normal(size=(12, 4)).astype(np.float32)
    np.save(tmp_path / "x.npy", emb)
    add_npy(link, "m/x", tmp_path / "x.npy")
    assert link.is_symlink() and os.readlink(link) == str(Path("data") / "real.h5")
    assert open_store(real).groups() == ["m/x", "toy/train"]
    np.testing.assert_array_equal(open_store(real).read("m/x").embeddings, emb)
    assert not list(tmp_path.glob(".link.h5*")) and not list((tmp_path / "data").glob(".real.h5.tmp-*"))


def test_a_results_file_written_through_a_symlink_updates_the_target(tmp_path, rng, runner, cli_app):
    store = _store(tmp_path / "s.h5", rng)
    (tmp_path / "real.json").write_text("{}\n")
    (tmp_path / "link.json").symlink_to("real.json")
    result = runner.invoke(
        cli_app, ["neighbors", str(store), "-g", "toy/train", "-k", "2", "--out", str(tmp_path / "link.json")]
    )
    assert result.exit_code == 0, result.output
    assert (tmp_path / "link.json").is_symlink() and '"results"' in (tmp_path / "real.json").read_text()


# ---------------------------------------------------------------- other tools' content survives a write


def _add_foreign_content(path: Path) -> None:
    with h5py.File(path, "r+") as h5:
        h5.attrs["project"] = "zebra"
        h5.attrs["scale"] = np.float64(2.5)
        h5["notes"] = np.arange(7)
        h5.create_group("meta/tables").create_dataset("t", data=np.eye(3))
        h5["meta"].attrs["owner"] = "lab"
        h5["toy"].attrs["about"] = "toy groups"
        h5["toy/train"]["extra"] = np.ones(3)  # inside an embedkit group: kept with the group
        h5["alias"] = h5py.SoftLink("/notes")


def _assert_foreign_content(path: Path) -> None:
    with h5py.File(path, "r") as h5:
        assert h5.attrs["project"] == "zebra" and h5.attrs["scale"] == 2.5
        np.testing.assert_array_equal(h5["notes"][()], np.arange(7))
        np.testing.assert_array_equal(h5["meta/tables/t"][()], np.eye(3))
        assert h5["meta"].attrs["owner"] == "lab" and h5["toy"].attrs["about"] == "toy groups"
        np.testing.assert_array_equal(h5["toy/train/extra"][()], np.ones(3))
        assert h5.get("alias", getlink=True).path == "/notes"


def test_other_tools_content_is_carried_over_by_add(tmp_path, rng):
    store = _store(tmp_path / "s.h5", rng)
    _add_foreign_content(store)
    before = open_store(store).read("toy/train")
    np.save(tmp_path / "x.npy", rng.normal(size=(9, 4)))
    add_npy(store, "m/x", tmp_path / "x.npy")
    _assert_foreign_content(store)
    np.testing.assert_array_equal(open_store(store).read("toy/train").embeddings, before.embeddings)


def test_other_tools_content_is_carried_over_by_a_transaction_and_an_overwrite(tmp_path, rng):
    """encode and the baselines write through a transaction of several groups, overwriting some."""
    store = _store(tmp_path / "s.h5", rng)
    _add_foreign_content(store)
    with open_store(store).transaction(["toy/test", "m/y"]) as transaction:
        for name in ("toy/test", "m/y"):
            transaction.new_group(name, 4).append(rng.normal(size=(3, 4)))
    open_store(store).write_group("m/y", rng.normal(size=(2, 4)), overwrite=True)
    _assert_foreign_content(store)
    assert open_store(store).groups() == ["m/y", "toy/test", "toy/train"]


def test_a_group_is_never_written_over_another_tools_dataset(tmp_path, rng):
    from embedkit.errors import StoreError

    store = _store(tmp_path / "s.h5", rng)
    _add_foreign_content(store)
    before = store.read_bytes()
    np.save(tmp_path / "x.npy", rng.normal(size=(9, 4)))
    for group in ("notes", "notes/x", "meta/tables/t"):
        with pytest.raises(StoreError, match="another tool's"):
            add_npy(store, group, tmp_path / "x.npy")
    assert store.read_bytes() == before


# ---------------------------------------------------------------- a full disk


@contextlib.contextmanager
def _small_tmpfs(folder: Path, size: str = "2m"):
    folder.mkdir()
    if (
        subprocess.run(
            ["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(folder)], capture_output=True, check=False
        ).returncode
        != 0
    ):
        pytest.skip("cannot mount a small tmpfs here (needs root); the file size limit variant covers disk full")
    try:
        yield folder
    finally:
        subprocess.run(["umount", str(folder)], capture_output=True, check=False)


def _file_size_limit(limit_bytes: int):
    """For preexec_fn: writes past `limit_bytes` fail with EFBIG (SIGXFSZ ignored) instead of killing the process."""

    def apply() -> None:
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit_bytes, limit_bytes))

    return apply


def _assert_no_space(result: subprocess.CompletedProcess, path: Path) -> None:
    lines = [line for line in (result.stdout + result.stderr).splitlines() if line.strip()]
    assert result.returncode == 1, (result.returncode, result.stdout, result.stderr)
    assert "Traceback" not in result.stderr and "Exception ignored" not in result.stderr, result.stderr
    assert len(lines) == 1 and lines[0].startswith("error: "), lines
    assert "no space left" in lines[0] and path.name in lines[0], lines[0]


@pytest.mark.slow
def test_add_on_a_full_tmpfs_is_one_line_and_keeps_the_old_store(tmp_path, rng):
    with _small_tmpfs(tmp_path / "small") as small:
        store = _store(small / "s.h5", rng, rows=2000, dim=100)
        before = store.read_bytes()
        np.save(tmp_path / "big.npy", rng.normal(size=(3000, 100)).astype(np.float32))
        result = _embedkit("add", store, "-g", "m/big", "--embeddings", tmp_path / "big.npy")
        _assert_no_space(result, store)
        assert store.read_bytes() == before
        assert sorted(p.name for p in small.iterdir()) == ["s.h5", "s.h5.lock"]


@pytest.mark.slow
@pytest.mark.parametrize("out_name", ["n.h5", "n.json", "n.npz", "pairs.h5"])
def test_results_on_a_full_tmpfs_are_one_line_and_leave_nothing(tmp_path, rng, out_name):
    store = _store(tmp_path / "s.h5", rng, rows=3000, dim=4)
    with _small_tmpfs(tmp_path / "small", size="64k") as small:
        out = small / out_name
        command = (
            ["pairs", store, "-g", "toy/train", "-k", "20", "--out", out]
            if out_name == "pairs.h5"
            else ["neighbors", store, "-g", "toy/train", "-k", "20", "--out", out]
        )
        _assert_no_space(_embedkit(*command), out)
        assert list(small.iterdir()) == []


@pytest.mark.slow
@pytest.mark.parametrize("room", ["while copying the old groups", "while writing the new group"])
def test_add_over_the_file_size_limit_is_one_line_and_keeps_the_old_store(tmp_path, rng, room):
    store = _store(tmp_path / "s.h5", rng, rows=2000, dim=100)
    before = store.read_bytes()
    np.save(tmp_path / "big.npy", rng.normal(size=(3000, 100)).astype(np.float32))
    limit = len(before) // 2 if room.startswith("while copying") else len(before) + 200_000
    result = _embedkit(
        "add", store, "-g", "m/big", "--embeddings", tmp_path / "big.npy", preexec_fn=_file_size_limit(limit)
    )
    _assert_no_space(result, store)
    assert store.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["big.npy", "s.h5", "s.h5.lock"]


# ---------------------------------------------------------------- declared shapes against the file's size


def test_declared_shapes_are_bounded_by_the_file_size_allowing_for_compression(tmp_path, rng):
    """A gzip group of mostly zeros (about 1000 times smaller on disk) still reads exactly; the same group declaring
    10^9 rows in a file of a few KB is refused when the store is opened, before anything is allocated or read."""
    from embedkit.errors import StoreError

    emb = np.zeros((20000, 64), np.float32)
    emb[::1000] = rng.normal(size=(20, 64))
    stores = {}
    for name, rows in (("ok", len(emb)), ("huge", 10**9)):
        stores[name] = _store(tmp_path / f"{name}.h5", rng)
        with h5py.File(stores[name], "r+") as h5:
            g = h5.create_group("zip/train")
            g.create_dataset(
                "embeddings", (rows, 64), np.float32, chunks=(20000, 64), compression="gzip", compression_opts=9
            )
            g["embeddings"][: len(emb)] = emb
            for column in ("labels", "ids"):
                g.create_dataset(column, (rows,), np.int64, chunks=(20000,), compression="gzip")
            g["ids"][: len(emb)] = np.arange(len(emb))
            g.attrs.update({"schema_version": 1, "content_id": uuid.uuid4().hex})
    assert stores["ok"].stat().st_size * 50 < emb.nbytes  # compressed well beyond 1:1
    np.testing.assert_array_equal(open_store(stores["ok"]).read("zip/train").embeddings, emb)
    with pytest.raises(StoreError, match=r"huge.h5: group 'zip/train': dataset 'embeddings' declares shape"):
        open_store(stores["huge"])


# ---------------------------------------------------------------- links inside a store


def test_links_in_a_store_are_not_followed_and_are_carried_over(tmp_path, rng):
    """A soft link round in a cycle, a hard link back to the root and an external link into another store: the
    store lists only its own groups (no endless walk, no other file read) and a write keeps the links as links."""
    store, other = _store(tmp_path / "s.h5", rng), _store(tmp_path / "other.h5", rng)
    with h5py.File(other, "r+") as h5:
        h5.move("toy/train", "far/away")
    with h5py.File(store, "r+") as h5:
        h5.create_group("x/y")
        h5["x/y/back"] = h5py.SoftLink("/x")
        h5["toy/root"] = h5["/"]
        h5["ext"] = h5py.ExternalLink(str(other), "/far")
    assert open_store(store).groups() == ["toy/train"]
    open_store(store).write_group("m/z", rng.normal(size=(4, 4)))
    with h5py.File(store, "r") as h5:
        assert h5.get("x/y/back", getlink=True).path == "/x"
        assert h5.get("ext", getlink=True).filename == str(other)
    assert open_store(store).groups() == ["m/z", "toy/train"]


@pytest.mark.slow
def test_a_checkpoint_saved_on_a_full_tmpfs_is_a_disk_full_error_and_keeps_the_old_one(tmp_path):
    """torch reports a full disk as "unexpected pos": the full file system is what tells it apart."""
    import torch

    from embedkit.errors import DiskFullError
    from embedkit.training.models import save_checkpoint

    with _small_tmpfs(tmp_path / "small") as small:
        path = save_checkpoint(small / "last.pt", {"w": torch.zeros(10)})
        before = path.read_bytes()
        with pytest.raises(DiskFullError, match="last.pt: no space left"):
            save_checkpoint(path, {"w": torch.zeros(1_000_000)})
        assert path.read_bytes() == before and [p.name for p in small.iterdir()] == ["last.pt"]
