"""The one progress-callback type: long library calls take `on_progress(done, total)` and never print themselves,
so the CLI draws a bar, the study a stage display, and a notebook whatever it likes."""

from __future__ import annotations

from collections.abc import Callable

ProgressFn = Callable[[int, int], None]
"""Called as `on_progress(done, total)` after each unit of work (images, rows, steps): both counts, not a ratio."""


def offset_progress(on_progress: ProgressFn | None, start: int, total: int) -> ProgressFn | None:
    """A part's `on_progress(done, part_total)` reported as `start + done` of the whole's `total`."""
    if on_progress is None:
        return None
    return lambda done, _part_total: on_progress(start + done, total)
