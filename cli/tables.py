"""Tables that stay readable in any terminal: a table wider than the terminal folds into one block per row
(``name  value`` lines) instead of cutting its columns to ``co…``."""

from collections.abc import Sequence

from rich.console import Console, Group, RenderableType
from rich.measure import Measurement
from rich.table import Table
from rich.text import Text

UNBOUNDED = 100_000  #: columns to measure a table's natural width in


def fitted_table(console: Console, title: str, columns: Sequence[str], rows: Sequence[Sequence[str]],
                 right: Sequence[str] = ()) -> RenderableType:
    """A table of ``rows`` if it fits ``console``'s width, else each row as its own block of ``column  value``."""
    table = Table(title=title, title_justify="left")
    for column in columns:
        table.add_column(column, justify="right" if column in right else "left", no_wrap=True)
    for row in rows:
        table.add_row(*row)
    unbounded = console.options.update_width(UNBOUNDED)  # a measurement is capped at the width it is given
    if Measurement.get(console, unbounded, table).maximum <= console.width:
        return table
    width = max(len(c) for c in columns)
    blocks: list[RenderableType] = [Text(title, style="italic")]
    for row in rows:
        block = Table.grid(padding=(0, 2))
        block.add_column(style="bold", no_wrap=True, min_width=width)
        block.add_column(overflow="fold")
        for column, value in zip(columns, row, strict=True):
            block.add_row(column, value)
        blocks += [block, Text("")]
    return Group(*blocks)
