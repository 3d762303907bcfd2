"""Entry point of the `embedkit` console script: registers every command module on the app."""

from __future__ import annotations

from cli import data_cmd, eval_cmd, store_cmd, train_cmd  # noqa: F401 - importing registers the commands
from cli.app import app


def main() -> None:
    app(prog_name="embedkit")


if __name__ == "__main__":
    main()
