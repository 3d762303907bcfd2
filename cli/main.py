"""Entry point of the `embedkit` console script: registers every command module on the app."""

from __future__ import annotations

from embedkit_cli import (  # noqa: F401 - importing a command module registers its commands
    baseline_cmd,
    data_cmd,
    eval_cmd,
    store_cmd,
    study_cmd,
    train_cmd,
)
from embedkit_cli.app import app


def main() -> None:
    app(prog_name="embedkit")


if __name__ == "__main__":
    main()
