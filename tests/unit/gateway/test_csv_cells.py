"""CSV cells a spreadsheet would run as formulas are written as text."""

import pytest

from gateway.batches import csv_cell


@pytest.mark.parametrize(
    "name", ['=HYPERLINK("http://x")', "+1.png", "-2.png", "@SUM(A1).png", "\tx.png", "\rx.png"]
)
def test_a_cell_that_starts_a_formula_gets_an_apostrophe(name):
    assert csv_cell(name) == "'" + name


@pytest.mark.parametrize("value", ["scan-1.png", "a=b.png", "7", 0.93, True])
def test_other_cells_are_left_alone(value):
    assert csv_cell(value) == value


def test_none_is_an_empty_cell():
    assert csv_cell(None) == ""
