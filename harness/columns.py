"""Plain-text tables for the terminal (`harness list`, `harness cache info`): every column as wide as its longest
cell, so the columns line up however long a task name or a model path is. Low level: imports nothing of harness,
so the task and the execution stages can both use it."""

from __future__ import annotations

from collections.abc import Collection, Sequence

GAP = "  "  # between two columns


def format_table(rows: Sequence[Sequence[str]], headers: Sequence[str] = (), right: Collection[int] = ()) -> list[str]:
    """The lines of a table: the header line (when `headers` are given), then one line per row, each column starting
    at the same offset on every line. Columns whose index is in `right` (never the last) are right-aligned. A row's
    last cell is never padded and never widens its column, so a row shorter than the others ends in free text (an
    INVALID reason that starts where the second column does)."""
    table = [list(headers), *[list(row) for row in rows]] if headers else [list(row) for row in rows]
    widths: dict[int, int] = {}
    for row in table:
        for i, cell in enumerate(row[:-1]):
            widths[i] = max(widths.get(i, 0), len(cell))
    lines = []
    for row in table:
        cells = [_pad(cell, widths[i], i in right) if i < len(row) - 1 else cell for i, cell in enumerate(row)]
        lines.append(GAP.join(cells).rstrip())
    return lines


def _pad(cell: str, width: int, right: bool) -> str:
    return cell.rjust(width) if right else cell.ljust(width)
