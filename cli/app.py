"""The Typer application, its consoles and the one place where library errors become one-line CLI errors."""

from __future__ import annotations

import json
import sys
from typing import Any

import typer
from rich.console import Console
from typer.core import TyperGroup

from embedkit.errors import EmbedkitError

# Results go to stdout; progress bars, warnings and errors go to stderr, so `--json` output stays parseable.
console = Console()
err_console = Console(stderr=True)


def fail(message: str) -> typer.Exit:
    """Print one red error line on stderr; return the Exit(1) for the caller to raise."""
    err_console.print(f"[bold red]error:[/] {message}", highlight=False, soft_wrap=True)
    return typer.Exit(1)


class _FriendlyGroup(TyperGroup):
    """A command group that turns user mistakes into one line and a non-zero exit, never a traceback."""

    def invoke(self, ctx: typer.Context) -> Any:
        try:
            return super().invoke(ctx)
        except EmbedkitError as exc:
            raise fail(str(exc)) from None
        except OSError as exc:  # a missing, unwritable or occupied path (file exists, disk full, read-only)
            where = f": {exc.filename}" if getattr(exc, "filename", None) else ""
            text = exc.strerror or str(exc).strip() or type(exc).__name__
            raise fail(f"{text.splitlines()[0]}{where}") from None
        except KeyboardInterrupt:
            err_console.print("[yellow]interrupted[/]: nothing half-written was kept")
            raise typer.Exit(130) from None


def print_json(payload: dict) -> None:
    """Print exactly one JSON object on stdout (the contract of every `--json` option)."""
    sys.stdout.write(json.dumps(payload) + "\n")
    sys.stdout.flush()


def _typer(help_text: str) -> typer.Typer:
    return typer.Typer(
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
