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


def _all_help(cli_app, runner) -> dict[tuple[str, ...], str]:
    """Every command's `--help` text (the top level's too), keyed by command path."""
    root = typer.main.get_command(cli_app)
    paths = [(), *(path for path, _ in _walk(root))]
    return {path: runner.invoke(cli_app, [*path, "--help"]).output for path in paths}


def test_flags_show_no_value_type(cli_app, runner):
    """`--farthest <bool>` read as if `--farthest true` were right; a flag's line names no type."""
    for path, text in _all_help(cli_app, runner).items():
        assert "<bool>" not in text, path
    neighbors = _all_help(cli_app, runner)[("neighbors",)]
    farthest = next(line for line in neighbors.splitlines() if "--farthest" in line)
    assert "<" not in farthest


def test_enumerated_options_list_their_choices(cli_app, runner):
    helps = _all_help(cli_app, runner)
    expected = {
        ("neighbors",): ["<l2|cosine>", "<flat|hnsw|ivf|auto>", "<local|ray>"],
        ("pairs",): ["<l2|cosine>", "<flat|hnsw|ivf|auto>", "<local|ray>"],
        ("train",): [
            "<auto|cpu|cpu-long|gpu>",
            "<adam|lars>",
            "<constant|cosine>",
            "<small|resnet18>",
            "<auto|cpu|cuda[:N]|mps>",
        ],
        ("study",): ["<auto|cpu|gpu>"],
        ("cluster",): ["<pca|tsne>"],
        ("plot", "map"): ["<pca|tsne>"],
    }
    for path, needles in expected.items():
        for needle in needles:
            assert needle in helps[path], (path, needle)


def test_choices_agree_with_the_library():
    from typing import get_args

    from embedkit.eval.maps import METHODS
    from embedkit.search.arrays import INDEX_KINDS, METRICS
    from embedkit.search.engines import ENGINES
    from embedkit.training.config import OPTIMIZERS, PRESETS, SCHEDULES
    from embedkit.training.models import ENCODER_KINDS
    from embedkit_cli import options

    assert get_args(options.Metric) == METRICS
    assert get_args(options.IndexKind) == (*INDEX_KINDS, "auto")
    assert get_args(options.Engine) == ENGINES
    assert set(get_args(options.MapMethod)) == set(METHODS)
    assert set(get_args(options.Encoder)) == set(ENCODER_KINDS)
    assert get_args(options.Optimizer) == OPTIMIZERS
    assert get_args(options.Schedule) == SCHEDULES
    assert set(get_args(options.TrainPreset)) == {"auto", *PRESETS}


def test_defaults_are_written_one_way(cli_app, runner):
    """Every default reads `[default: ...]`: none hidden in the help sentence as "(default: ...)" or "[preset]"."""
    for path, text in _all_help(cli_app, runner).items():
        flat = " ".join(text.split())
        assert "(default" not in flat, path
        assert "[preset" not in flat, path
    assert "[default: (preset)]" in " ".join(_all_help(cli_app, runner)[("train",)].split())


def test_commands_are_listed_in_the_order_of_the_work(cli_app, runner):
    text = runner.invoke(cli_app, ["--help"]).output
    panels = ["Data", "Train", "Encode", "Store", "Search", "Evaluate", "Study"]
    positions = [text.index(f"─ {panel} ─") for panel in panels]
    assert positions == sorted(positions)
    commands = ["data", "train", "encode", "info", "neighbors", "probe", "study"]
    lines = [line.strip("│ ").split(" ")[0] for line in text.splitlines()]
    assert [lines.index(name) for name in commands] == sorted(lines.index(name) for name in commands)


def test_bracketed_text_in_help_is_shown_not_read_as_markup(cli_app, runner):
    """Rich markup ate `[ray]` from "pip install 'embedkit[ray]'"; every heavy command shows the install line whole."""
    texts = _all_help(cli_app, runner)
    for command in ("encode", "neighbors", "pairs", "anomaly", "cluster"):
        flat = " ".join(line.strip(" │") for line in texts[(command,)].splitlines())
        assert "'embedkit[ray]'" in flat.replace(" ", ""), command
