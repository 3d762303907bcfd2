"""Tables on stdout that stay whole at any width and in a pipe.

On a terminal: a box table whose cells wrap between words, never cut with an ellipsis; when the longest word of
each column cannot fit side by side (eight columns in 80), one block of `column: value` lines per row instead.
Not on a terminal (`| grep`, `| cut`, a file): the title as a `# ` line, then tab-separated header and rows.
"""

from __future__ import annotations

from collections.abc import Sequence

from rich.text import Text

from embedkit_cli.app import console

Cell = str | Text


def print_table(
    title: str,
    columns: Sequence[str],
    rows: Sequence[Sequence[Cell]],
    *,
    right: Sequence[str] = (),
    show_header: bool = True,
) -> None:
    """Print `rows` under `columns` on stdout; `right` names the right-aligned (numeric) columns."""
    if not console.is_terminal:
        _print_plain(title, columns, rows, show_header)
        return
    table = _box_table(title, columns, rows, right, show_header)
    unbounded = console.options.update_width(2**20)  # measured at the given width, every table would "fit"
    if console.measure(table, options=unbounded).minimum <= console.width:
        console.print(table)
    else:
        _print_vertical(title, columns, rows, show_header)


def _box_table(
    title: str, columns: Sequence[str], rows: Sequence[Sequence[Cell]], right: Sequence[str], show_header: bool
):
    from rich.table import Table

    table = Table(title=title, title_justify="left", show_header=show_header)
    for column in columns:
        table.add_column(column, justify="right" if column in right else "left", overflow="fold")
    for row in rows:
        table.add_row(*row)
    return table


def _plain(cell: Cell) -> str:
    """A cell as one line of plain text: no style, tabs and newlines as spaces (they would split a field)."""
    text = cell.plain if isinstance(cell, Text) else str(cell)
    return " ".join(text.replace("\t", " ").splitlines())


def _print_plain(title: str, columns: Sequence[str], rows: Sequence[Sequence[Cell]], show_header: bool) -> None:
    lines = [f"# {_plain(title)}"]
    if show_header:
        lines.append("\t".join(columns))
    lines += ["\t".join(_plain(cell) for cell in row) for row in rows]
    out = console.file  # written as is: rich would expand the tabs into spaces
    out.write("".join(f"{line}\n" for line in lines))
    out.flush()


def _print_vertical(title: str, columns: Sequence[str], rows: Sequence[Sequence[Cell]], show_header: bool) -> None:
    """One block per row, `column: value` per line, so every value is whole however narrow the terminal."""
    console.print(Text(title, style="italic"), soft_wrap=True)
    for row in rows:
        if not show_header:  # a key/value table is already one pair per row
            console.print(Text.assemble((f"{_plain(row[0])}: ", "bold"), row[1]), soft_wrap=True)
            continue
        console.print()
        for column, cell in zip(columns, row, strict=True):
            console.print(Text.assemble((f"{column}: ", "bold"), cell), soft_wrap=True)
