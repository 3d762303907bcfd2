"""The Typer application, its consoles and the one place where library errors become one-line CLI errors."""

from __future__ import annotations

import json
import sys
from typing import Any

import typer
from rich.console import Console
from rich.text import Text
from typer.core import TyperCommand, TyperGroup

from embedkit.errors import EmbedkitError

# Results go to stdout; progress bars, warnings and errors go to stderr, so `--json` output stays parseable.
# Markup and emoji codes are off: printed text holds user paths, group and class names and error messages, in which
# `[red]` or `:smile:` are plain characters. Styled words are built with `styled` (or rich.text.Text) instead.
console = Console(markup=False, emoji=False)
err_console = Console(stderr=True, markup=False, emoji=False)


def styled(style: str, label: str, message: str) -> Text:
    """`label` in `style`, then `message` verbatim (never read as markup): one line for the consoles above."""
    return Text.assemble((label, style), " ", message)


def warn(message: str) -> None:
    """Print one yellow warning line on stderr, the message shown verbatim."""
    err_console.print(styled("yellow", "warning:", message), highlight=False, soft_wrap=True)


def fail(message: str, code: int = 1) -> typer.Exit:
    """Print one red error line on stderr (the message verbatim, on one line); return the Exit for the caller to
    raise."""
    one_line = " ".join(message.split("\n"))
    err_console.print(styled("bold red", "error:", one_line), highlight=False, soft_wrap=True)
    return typer.Exit(code)


def _usage_error(exc: typer.TyperException) -> typer.Exit:
    """A bad option value, a missing argument or an unknown command as one error line naming the command's help."""
    ctx = getattr(exc, "ctx", None)
    hint = f" (see '{ctx.command_path} --help')" if ctx is not None else ""
    return fail(f"{exc.format_message()}{hint}", exc.exit_code)


# The commands in the order of the work, each under its help panel (`embedkit --help`, docs/cli.md).
WORKFLOW = {
    "data": "Data",
    "train": "Train",
    "baseline": "Train",
    "encode": "Encode",
    "add": "Encode",
    "info": "Store",
    "neighbors": "Search",
    "pairs": "Search",
    "probe": "Evaluate",
    "retrieve": "Evaluate",
    "anomaly": "Evaluate",
    "cluster": "Evaluate",
    "plot": "Evaluate",
    "compare": "Evaluate",
    "study": "Study",
}


class _FlagsTakeNoValue:
    """Help that shows no value type on a flag: `--farthest <bool>` reads as if `--farthest true` were right."""

    def get_params(self, ctx: typer.Context) -> list:
        params = super().get_params(ctx)
        for param in params:
            if getattr(param, "is_flag", False):
                param.metavar = ""
        return params


class _Command(_FlagsTakeNoValue, TyperCommand):
    """Every embedkit command."""


class _FriendlyGroup(_FlagsTakeNoValue, TyperGroup):
    """A command group that turns user mistakes into one line and a non-zero exit, never a traceback; its
    commands are listed in the order of the work, grouped by step."""

    def list_commands(self, ctx: typer.Context) -> list[str]:
        names = super().list_commands(ctx)
        order = list(WORKFLOW)
        return sorted(names, key=lambda name: order.index(name) if name in order else len(order))

    def get_command(self, ctx: typer.Context, name: str):
        command = super().get_command(ctx, name)
        if command is not None and name in WORKFLOW:
            command.rich_help_panel = WORKFLOW[name]
        return command

    def make_context(self, info_name: str | None, args: list[str], parent=None, **extra: Any) -> typer.Context:
        """Parse the group's own options; a usage error becomes one line (typer would draw a multi-line panel)."""
        try:
            return super().make_context(info_name, args, parent=parent, **extra)
        except typer.TyperException as exc:
            if type(exc).__name__ == "NoArgsIsHelpError":  # the help text itself, shown by typer (as typer tests it)
                raise
            raise _usage_error(exc) from None

    def invoke(self, ctx: typer.Context) -> Any:
        try:
            return super().invoke(ctx)
        except typer.TyperException as exc:  # parsing a subcommand's options: a value out of range, not a number
            if type(exc).__name__ == "NoArgsIsHelpError":
                raise
            raise _usage_error(exc) from None
        except EmbedkitError as exc:
            raise fail(str(exc)) from None
        except OSError as exc:  # a missing, unwritable or occupied path (file exists, disk full, read-only)
            where = f": {exc.filename}" if getattr(exc, "filename", None) else ""
            text = exc.strerror or str(exc).strip() or type(exc).__name__
            raise fail(f"{text.splitlines()[0]}{where}") from None
        except KeyboardInterrupt:
            err_console.print(styled("yellow", "interrupted:", "nothing half-written was kept"))
            raise typer.Exit(130) from None


def print_json(payload: dict) -> None:
    """Print exactly one JSON object on stdout (the contract of every `--json` option)."""
    sys.stdout.write(json.dumps(payload) + "\n")
    sys.stdout.flush()


class _Typer(typer.Typer):
    """typer.Typer whose commands are `_Command`s."""

    def command(self, *args: Any, **kwargs: Any):
        kwargs.setdefault("cls", _Command)
        return super().command(*args, **kwargs)


def _typer(help_text: str) -> typer.Typer:
    return _Typer(
        cls=_FriendlyGroup,
        help=help_text,
        no_args_is_help=True,
        pretty_exceptions_enable=False,
        rich_markup_mode="rich",
        context_settings={"help_option_names": ["-h", "--help"]},
    )


app = _typer(
    "embedkit: train a self-supervised (VICReg) encoder, store its embeddings in HDF5, "
    "search them with FAISS, and probe, plot and debug them."
)
plot_app = _typer("Figures: loss curves of a training run, 2-D maps of a store group.")
baseline_app = _typer("Baselines that need no encoder, written to a store like any model.")
app.add_typer(plot_app, name="plot")
app.add_typer(baseline_app, name="baseline")
