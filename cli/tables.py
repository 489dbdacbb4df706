"""Rows as aligned text columns, for the commands that print tables (`recog audit`, `recog keys list`)."""

from __future__ import annotations

from collections.abc import Sequence

import click


def echo_table(columns: Sequence[str], cells: Sequence[Sequence[str]]) -> None:
    """A header line, then one line a row, each column as wide as its widest cell."""
    widths = [max([len(c), *(len(r[i]) for r in cells)]) for i, c in enumerate(columns)]
    for line in (columns, *cells):
        click.echo("  ".join(v.ljust(w) for v, w in zip(line, widths, strict=True)))
