"""Markdown tables: DataFrame.to_markdown with three decimals and blank missing values."""

from __future__ import annotations

import numpy as np
import pandas as pd

from themes.tables import markdown_table


def test_tables_markdown_table_keeps_three_decimals_and_blanks_missing_values():
    table = pd.DataFrame({"system": ["keywords", "model"], "n": [3, 4], "f1": [0.12345, np.nan],
                          "note": ["x", None]})
    lines = markdown_table(table).splitlines()
    assert [c.strip() for c in lines[0].strip("|").split("|")] == ["system", "n", "f1", "note"]
    cells = [[c.strip() for c in line.strip("|").split("|")] for line in lines[2:]]
    assert cells == [["keywords", "3", "0.123", "x"], ["model", "4", "", ""]]
    assert "nan" not in markdown_table(table)
