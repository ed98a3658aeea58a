"""Tables that fit the terminal: a compact table keeps the columns that fit the console's
width (dropping the least needed first, and saying which), a wide one shows every column and
lets the lines run as long as they need. Neither cuts a cell: a column of single words
(names, numbers) is never narrower than its longest cell, and a column of text never
narrower than its longest word, so text wraps between words.

The widths are decided here rather than by rich, whose squeezing of an over-wide table can
cut a word. The console's width is the terminal's, or `COLUMNS` when the output is piped
(rich's own rule), or 80.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import attrs

if TYPE_CHECKING:  # pragma: no cover
    from rich.console import Console
    from rich.table import Table

GAP = 3
"""Characters between two columns: one of padding on each side and the separator."""


@attrs.frozen
class Need:
    least: int
    """The narrowest the column can be without cutting a word (or a single-word cell)."""
    natural: int
    """Its width with no cell wrapped."""
    wraps: bool


def _plain(cell: Any) -> str:
    from rich.text import Text

    return Text.from_markup(str(cell)).plain


def needs(columns: Sequence[str], rows: Sequence[Sequence[Any]]) -> list[Need]:
    out = []
    for i, column in enumerate(columns):
        cells = [_plain(row[i]) for row in rows]
        natural = max([len(column), *(len(c) for c in cells)])
        if all(" " not in c.strip() for c in cells):
            out.append(Need(natural, natural, False))
        else:
            least = max(len(word) for text in [column, *cells] for word in (text.split() or [""]))
            out.append(Need(least, natural, True))
    return out


def minimum_width(columns: Sequence[str], rows: Sequence[Sequence[Any]]) -> int:
    """Characters the table needs with every text cell wrapped at its longest word."""
    return sum(n.least for n in needs(columns, rows)) + GAP * (len(columns) - 1)


def fit_widths(found: Sequence[Need], width: int) -> list[int] | None:
    """Content width of each column for a table `width` characters wide, or None when every
    column fits unwrapped. Columns start at their least width; what is left goes to the
    text columns in proportion to what they lack, whole characters to the largest lacks."""
    gaps = GAP * (len(found) - 1)
    if sum(n.natural for n in found) + gaps <= width:
        return None
    widths = [n.least for n in found]
    spare = width - gaps - sum(widths)
    lack = [n.natural - n.least if n.wraps else 0 for n in found]
    total = sum(lack)
    if spare <= 0 or total == 0:
        return widths
    share = [spare * k // total for k in lack]
    rest = spare - sum(share)
    for i in sorted(range(len(found)), key=lambda i: (-(spare * lack[i] % total), i))[:rest]:
        if lack[i]:
            share[i] += 1
    return [w + min(s, k) for w, s, k in zip(widths, share, lack)]


def build_table(
    title: str | None, columns: Sequence[str], rows: Sequence[Sequence[Any]], *, right: Sequence[str] = (), width: int | None = None
) -> Table:
    """A table of `rows` (cells are rich markup) that is at most `width` wide when that is
    possible without cutting a word; `right` names the columns aligned right."""
    from rich import box
    from rich.table import Table

    found = needs(columns, rows)
    widths = fit_widths(found, width) if width is not None else None
    table = Table(title=title, title_justify="left", box=box.SIMPLE_HEAD, show_edge=False, pad_edge=False)
    for i, column in enumerate(columns):
        table.add_column(
            column,
            justify="right" if column in right else "left",
            no_wrap=not found[i].wraps,
            width=None if widths is None else widths[i],
        )
    for row in rows:
        table.add_row(*row)
    return table


def print_fitted(
    console: Console,
    title: str | None,
    columns: Sequence[str],
    rows: Sequence[Sequence[Any]],
    *,
    drop: Sequence[str] = (),
    wide: bool = False,
    right: Sequence[str] = (),
) -> list[str]:
    """Print `rows` under `columns`. Compact (the default): leave out the columns named in
    `drop`, in that order, until the rest fits the console. `wide`: every column, on lines as
    long as the table needs. Returns the columns left out."""

    def cells(names: Sequence[str]) -> list[list[Any]]:
        index = [columns.index(n) for n in names]
        return [[row[i] for i in index] for row in rows]

    if wide:
        natural = sum(n.natural for n in needs(columns, rows)) + GAP * (len(columns) - 1)
        if natural > console.width:  # a console as wide as the table: lines run long, nothing wraps
            from rich.console import Console

            console = Console(file=console.file, width=natural, force_terminal=console.is_terminal,
                              no_color=console.no_color, highlight=False, emoji=False)
        console.print(build_table(title, columns, rows, right=right))
        return []
    def natural_width(names: Sequence[str]) -> int:
        return sum(n.natural for n in needs(names, cells(names))) + GAP * (len(names) - 1)

    # Drop columns until the rest fits unwrapped; where even that is too wide, keep the
    # fewest dropped at which cells wrap rather than overflow.
    keep = list(columns)
    hidden: list[str] = []
    dropped = [n for n in drop if n in keep]
    while dropped and natural_width(keep) > console.width:
        name = dropped.pop(0)
        keep.remove(name)
        hidden.append(name)
    if natural_width(keep) > console.width:
        keep, hidden = list(columns), []
        for name in drop:
            if minimum_width(keep, cells(keep)) <= console.width:
                break
            if name not in keep:
                continue
            keep.remove(name)
            hidden.append(name)
    console.print(build_table(title, keep, cells(keep), right=right, width=console.width))
    return hidden
