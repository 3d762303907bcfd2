"""Typed errors: the library raises these, the CLI turns each into one red line and exit code 1."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager


class EmbedkitError(Exception):
    """Base class for every error a user can cause and fix (bad input, missing data, wrong k)."""


class DataError(EmbedkitError):
    """A dataset is unknown, missing or unreadable."""


class StoreError(EmbedkitError):
    """An HDF5 store or one of its groups is missing, corrupt or inconsistent."""


class DiskFullError(StoreError):
    """A write ran out of space (disk, quota or file size limit); the file written is left as it was."""


class SearchError(EmbedkitError):
    """A nearest/farthest query cannot be answered as asked (k out of range, dimension mismatch)."""


class CheckpointError(EmbedkitError):
    """A checkpoint is missing, corrupt or of another encoder kind."""


class ConfigError(EmbedkitError):
    """An option value or combination of options is invalid."""


class TrainingError(EmbedkitError):
    """Training stopped because its loss or weights stopped being finite numbers (it diverged)."""


@contextmanager
def about(store_path, group: str) -> Iterator[None]:
    """Prefix an embedkit error raised inside with the store and group it concerns, unless it names them already."""
    try:
        yield
    except EmbedkitError as exc:
        message = str(exc)
        if str(store_path) in message:
            raise
        raise type(exc)(f"{store_path}: group '{group}': {message}") from None
