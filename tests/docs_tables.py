"""How the configuration reference renders a setting; docs/configuration.md is checked against it."""

from __future__ import annotations

import dataclasses
from pathlib import Path

from shared.settings import PROJECT_ROOT, STATE_DIR, Settings


def default_cell(field: dataclasses.Field) -> str:
    value = field.default
    if isinstance(value, tuple):
        return f"`{','.join(value)}`"
    if isinstance(value, Path):
        if value.is_relative_to(STATE_DIR):  # shown as in a checkout, whatever RECOG_STATE_DIR says
            return f"`{Path('.recog') / value.relative_to(STATE_DIR)}`"
        return f"`{value.relative_to(PROJECT_ROOT)}`"
    return f"`{value}`" if value != "" else "(empty)"


def type_cell(field: dataclasses.Field) -> str:
    kind = type(field.default)
    return {int: "integer", float: "number", tuple: "list", str: "text"}.get(kind) or (
        "path" if isinstance(field.default, Path) else kind.__name__
    )


def bounds_cell(field: dataclasses.Field) -> str:
    low, high, choices = field.metadata["low"], field.metadata["high"], field.metadata["choices"]
    if choices:
        return "one of " + ", ".join(f"`{c}`" for c in choices)
    return "" if low is None else f"{low:,} to {high:,}"


def expected_cells() -> dict[str, list[str]]:
    """variable -> [type, default, bounds, read by], as the table shows them."""
    return {
        "RECOG_" + f.name.upper(): [
            type_cell(f),
            default_cell(f),
            bounds_cell(f),
            ", ".join(f.metadata["read_by"]),
        ]
        for f in dataclasses.fields(Settings)
    }


def table_rows(markdown: str, first_cell_prefix: str) -> dict[str, list[str]]:
    """The rows of the markdown tables whose first cell starts with the prefix (backticks removed
    from it), keyed by that cell."""
    rows = {}
    for line in markdown.splitlines():
        if not line.startswith("| "):
            continue
        cells = [c.strip() for c in line.strip().strip("|").split(" | ")]
        key = cells[0].strip("`")
        if key.startswith(first_cell_prefix):
            rows[key] = cells[1:]
    return rows
