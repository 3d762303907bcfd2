"""Commands: filled in by its issue."""

from cli.app import app  # noqa: F401
