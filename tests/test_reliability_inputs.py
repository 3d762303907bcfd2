"""Bad input on every command: a non-zero exit, one error line naming the file or value, no traceback, and every
file left as it was (checksums of the whole test world before and after each command).

The cases are in reliability_cases.py, the files they run against (built once per session) in reliability_world.py.
Each case runs one command in-process through CliRunner.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from reliability_cases import CASES, READ_ONLY_CASES, Case
from reliability_summary import changed_files, record_bad_input
from reliability_world import GOOD_GROUPS, World, build_world


@pytest.fixture(scope="session")
def world(tmp_path_factory) -> World:
    return build_world(tmp_path_factory.mktemp("reliability"))


@pytest.fixture(scope="session")
def cli_command():
    """The app's click command, built once: typer rebuilds it on every CliRunner.invoke (~0.1 s, 90% of a case)."""
    import typer.main

    from embedkit_cli.main import app

    return typer.main.get_command(app)


@pytest.fixture
def bad_input_runner(world, cli_command, monkeypatch):
    import typer.testing

    monkeypatch.setattr(typer.testing, "_get_command", lambda _app: cli_command)
    env = {
        "COLUMNS": "200",
        "NO_COLOR": "1",
        "TERM": "dumb",
        "EMBEDKIT_CACHE": world.paths["cache"],
        "EMBEDKIT_HOME": str(world.root / "ws"),
        "EMBEDKIT_DATA": world.paths["data_empty"],
    }
    return typer.testing.CliRunner(env=env)


# Known bugs, each reported to the module's owner: the case stays here, marked, until the fix lands.
KNOWN_BUGS: dict[str, str] = {}


def _param(case: Case):
    marks = [pytest.mark.xfail(strict=True, reason=KNOWN_BUGS[case.id])] if case.id in KNOWN_BUGS else []
    return pytest.param(case, id=case.id, marks=marks)


def assert_one_line_error(result, names: tuple[str, ...]) -> str:
    """Exit code != 0, no traceback, and the error is one line, 'error: ...', naming the file or value, printed last.

    Lines before it may only be what the command showed while working (a progress bar, the run folder).
    """
    assert result.exception is None or isinstance(result.exception, SystemExit), (
        f"uncaught {type(result.exception).__name__}: {result.exception}"
    )
    assert result.exit_code != 0, result.output
    assert "Traceback" not in result.output
    lines = [line for line in result.output.splitlines() if line.strip()]
    errors = [line for line in lines if "error" in line.lower()]
    assert len(errors) == 1 and lines and lines[-1] == errors[0], result.output
    assert errors[0].startswith("error: "), errors[0]
    assert any(name in errors[0] for name in names), f"{errors[0]!r} names none of {names}"
    return errors[0]


@pytest.mark.parametrize("case", [_param(c) for c in CASES])
def test_bad_input_fails_in_one_line_and_changes_no_file(case, world, bad_input_runner, cli_app):
    args = [arg.format(**world.paths) for arg in case.args]
    before = world.checksums()
    result = bad_input_runner.invoke(cli_app, args)
    changed = changed_files(before, world.checksums())
    record_bad_input(changed)
    world.restore(changed)
    assert_one_line_error(result, case.names)
    assert changed == [], f"files changed by a failed command: {changed}"


def _chmod_stops_writes(folder: Path) -> bool:
    """False for root (or CAP_DAC_OVERRIDE), which writes through chmod 0o500."""
    folder.mkdir(exist_ok=True)
    folder.chmod(0o500)
    try:
        (folder / "probe").touch()
    except PermissionError:
        return True
    (folder / "probe").unlink()
    return False


@pytest.mark.parametrize("case", [_param(c) for c in READ_ONLY_CASES])
def test_read_only_folder_fails_in_one_line_and_changes_no_file(case, world, bad_input_runner, cli_app):
    folder = world.root / "read-only"
    try:
        if not _chmod_stops_writes(folder):
            pytest.skip(
                "this user writes through chmod 0o500 (root); the cases under a regular file and in /proc "
                "cover unwritable paths"
            )
        test_bad_input_fails_in_one_line_and_changes_no_file(case, world, bad_input_runner, cli_app)
    finally:
        folder.chmod(0o700)


def test_the_world_is_what_the_cases_assume(world):
    """Guards the fixture: the good store is valid, and each damaged copy is really damaged where it claims."""
    from embedkit.errors import StoreError
    from embedkit.store.store import open_store

    store = open_store(world.paths["store"])
    assert {g: (store.info(g).n, store.info(g).dim) for g in store.groups()} == {
        g: (n, d) for g, (n, d, _) in GOOD_GROUPS.items()
    }
    with pytest.raises(StoreError, match="damaged embeddings"):
        open_store(world.paths["store_corrupt_data"]).read("toy/train")
    good, corrupt = (Path(world.paths[key]).read_bytes() for key in ("ckpt", "ckpt_corrupt"))
    assert len(good) == len(corrupt) and sum(a != b for a, b in zip(good, corrupt)) > 200  # 256 bytes overwritten
