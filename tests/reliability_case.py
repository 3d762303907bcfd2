"""One bad-input case: a command line (with `{name}` placeholders for the world's files) and the texts of which the
error line must contain one (the file or value at fault)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Case:
    id: str
    args: tuple[str, ...]
    names: tuple[str, ...]  # the error line must contain one of these (the file or the value at fault)


def C(case_id: str, *args: str, names: tuple[str, ...] | str) -> Case:
    return Case(case_id, args, (names,) if isinstance(names, str) else names)
