"""Markdown for reports: tables and their cells (used by evaluation, run reports and experiments)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any


def markdown_cell(text: str) -> str:
    """Text for a Markdown table cell (a ``|``, as in ``q(z|x)``, would end the cell)."""
    return text.replace("|", "\\|")


def markdown_table(header: Sequence[str], rows: Sequence[Sequence[Any]], digits: int = 3) -> str:
    """A Markdown table; floats are printed with ``digits`` decimals, None as a dash."""

    def cell(value: Any) -> str:
        if value is None:
            return "-"
        if isinstance(value, float):
            return f"{value:.{digits}f}"
        return str(value)

    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(cell(v) for v in row) + " |" for row in rows]
    return "\n".join(lines)
