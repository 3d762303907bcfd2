"""Tables at 80 columns and in a pipe: key columns (group, model) never cut, plain tab-separated text off a terminal."""

from __future__ import annotations

import json

import numpy as np
import pytest
from typer.testing import CliRunner

from embedkit.store.store import open_store

GROUPS = ("synthetic-augmentations/train-holdout", "neighbour-positives/test-holdout")
BOX = set("┏┃━│─┗┡╇┩└┘")


def _runner(width: int, terminal: bool) -> CliRunner:
    """A runner whose stdout reads as a terminal (TTY_COMPATIBLE=1, as rich honours) or as a pipe."""
    env = {"COLUMNS": str(width), "NO_COLOR": "1", "TERM": "xterm", "TTY_COMPATIBLE": "1" if terminal else "0"}
    return CliRunner(env=env)


@pytest.fixture
def long_store(tmp_path, rng):
    path = tmp_path / "store-with-long-names.h5"
    store = open_store(path, create=True)
    for group in GROUPS:
        store.write_group(group, rng.normal(size=(30, 4)).astype(np.float32), np.arange(30) % 3)
    return path


def test_info_in_an_80_column_pipe_is_tab_separated_with_whole_names(long_store, cli_app):
    result = _runner(80, terminal=False).invoke(cli_app, ["info", str(long_store)])
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert lines[0].startswith("# ") and not BOX & set(result.stdout)
    header, *rows = (line.split("\t") for line in lines[1:])
    assert header[:3] == ["group", "N", "D"]
    summary = json.loads(_runner(80, terminal=False).invoke(cli_app, ["info", str(long_store), "--json"]).stdout)
    assert [row[0] for row in rows] == [g["name"] for g in summary["groups"]]  # what `cut -f1` sees
    assert all(len(row) == len(header) for row in rows)


@pytest.mark.parametrize("width", [80, 40])
def test_info_on_a_narrow_terminal_keeps_every_group_name_whole(long_store, cli_app, width):
    result = _runner(width, terminal=True).invoke(cli_app, ["info", str(long_store)])
    assert result.exit_code == 0, result.output
    assert "…" not in result.stdout
    for group in GROUPS:
        assert group in result.stdout
    wide = _runner(200, terminal=True).invoke(cli_app, ["info", str(long_store)]).stdout
    assert BOX & set(wide)  # where the table fits, it stays a table: one line per group
    assert sum(group in line for line in wide.splitlines() for group in GROUPS) == 2


def _compare_store(path, rng) -> None:
    store = open_store(path, create=True)
    for group, n in (("cifar10/train", 60), ("cifar10/test", 30)):
        labels = np.arange(n) % 3
        store.write_group(group, (rng.normal(size=(n, 6)) + labels[:, None] * 5).astype(np.float32), labels)


@pytest.mark.parametrize("terminal", [True, False])
def test_compare_table_names_every_model_whole_at_80_columns(tmp_path, rng, cli_app, terminal):
    paths = [tmp_path / "neighbour-positives-2-epochs.h5", tmp_path / "no-variance-term-2-epochs.h5"]
    for path in paths:
        _compare_store(path, rng)
    args = ["compare", *map(str, paths), "--k-cluster", "3"]
    result = _runner(80, terminal=terminal).invoke(cli_app, args)
    assert result.exit_code == 0, result.output
    assert "…" not in result.stdout
    for path in paths:
        assert path.stem in result.stdout
    if not terminal:
        assert not BOX & set(result.stdout) and "model\tlinear probe" in result.stdout
