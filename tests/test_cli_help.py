"""Every command explains itself: `--help` works and each command has a one-line description."""

from __future__ import annotations

import typer.main


def _walk(group, prefix: tuple[str, ...] = ()):
    for name, command in group.commands.items():
        yield prefix + (name,), command
        if hasattr(command, "commands"):
            yield from _walk(command, prefix + (name,))


def test_every_command_has_help(cli_app, runner):
    root = typer.main.get_command(cli_app)
    commands = list(_walk(root))
    assert commands, "no commands registered"
    for path, command in commands:
        assert (command.help or "").strip(), f"`embedkit {' '.join(path)}` has no help text"
        result = runner.invoke(cli_app, [*path, "--help"])
        assert result.exit_code == 0, (path, result.output)
        assert "Usage" in result.output


def test_top_level_help_lists_commands(cli_app, runner):
    result = runner.invoke(cli_app, ["--help"])
    assert result.exit_code == 0
    root = typer.main.get_command(cli_app)
    for name in root.commands:
        assert name in result.output
