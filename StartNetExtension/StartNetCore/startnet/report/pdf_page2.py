"""The PDF's second page: lesions across cycles and red-marrow doses, when the run has them.

The first page's layout is full, so these sections go on a second A4 page, drawn only when the
results have lesion tracking (``lesions``, :mod:`startnet.report.lesions`) or marrow doses
(``marrow``, :mod:`startnet.report.marrow`). Lesion rows are ordered by lesion ID (L2 before L10);
rows that do not fit are left out and the page says how many and where they are.
"""

from __future__ import annotations

import re
import textwrap
from typing import List, Mapping, Optional, Sequence, Tuple

from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.patches import Rectangle

from startnet.report import fmt
from startnet.report.lesions import TITLE as LESION_TITLE
from startnet.report.lesions import lesion_table
from startnet.report.marrow import TITLE as MARROW_TITLE
from startnet.report.marrow import marrow_assumptions, marrow_table
from startnet.report.tables import Table

NAVY = "#1f3a5f"
LEFT, WIDTH, TOP, BOTTOM = 0.06, 0.88, 0.955, 0.05
ROW_H, FONT, NOTE_FONT, LINE_H = 0.0155, 6.8, 6.0, 0.0095
NOTE_CHARS = 140


def has_second_page(results: Mapping) -> bool:
    return lesion_table(results) is not None or marrow_table(results) is not None


def _id_key(text: str) -> Tuple:
    """Natural order of lesion IDs: L2 before L10."""
    return tuple((0, int(part), "") if part.isdigit() else (1, 0, part) for part in re.split(r"(\d+)", text) if part)


# the HTML's columns, widths for the page (the cumulative headers are the longest texts)
LESION_WIDTHS = (0.55, 0.95, 0.65, 1.05, 0.75, 0.7, 0.7, 0.7, 1.15, 1.5)


def lesions_by_id(table: Table) -> Table:
    widths = list(LESION_WIDTHS) if len(table.widths) == len(LESION_WIDTHS) else table.widths
    return Table(table.header, sorted(table.rows, key=lambda row: _id_key(row[0])), table.align, widths,
                 note=table.note)


def _note_lines(texts: Sequence[str]) -> List[str]:
    lines: List[str] = []
    for text in texts:
        lines += textwrap.wrap(text, NOTE_CHARS) or [""]
    return lines


def _draw_table(fig: Figure, table: Table, top: float) -> float:
    """Header and rows from ``top`` down (figure fractions); returns the bottom of the last row."""
    total = float(sum(table.widths))
    edges = [LEFT]
    for width in table.widths:
        edges.append(edges[-1] + WIDTH * width / total)
    for r, row in enumerate([table.header] + table.rows):
        y = top - r * ROW_H
        if r == 0 or r % 2 == 0:
            fig.add_artist(Rectangle((LEFT, y - ROW_H), WIDTH, ROW_H, color="#e8edf3" if r == 0 else "#f6f7f9",
                                     linewidth=0, transform=fig.transFigure))
        for c, text in enumerate(row):
            align = table.align[c]
            x = {"l": edges[c] + 0.004, "r": edges[c + 1] - 0.004, "c": (edges[c] + edges[c + 1]) / 2}[align]
            fig.text(x, y - ROW_H / 2, text, fontsize=FONT, va="center",
                     ha={"l": "left", "r": "right", "c": "center"}[align],
                     fontweight="bold" if r == 0 else "normal", color=NAVY if r == 0 else "black")
    bottom = top - (len(table.rows) + 1) * ROW_H
    for y in (top - ROW_H, bottom):
        fig.add_artist(Line2D([LEFT, LEFT + WIDTH], [y, y], color="#9aa5b1", linewidth=0.5,
                              transform=fig.transFigure))
    return bottom


def _draw_notes(fig: Figure, lines: List[str], top: float) -> float:
    if lines:
        fig.text(LEFT, top, "\n".join(lines), fontsize=NOTE_FONT, va="top", color="#444444", linespacing=1.15)
    return top - LINE_H * len(lines)


def _title(fig: Figure, text: str, top: float) -> float:
    fig.text(LEFT, top, text, fontsize=9, fontweight="bold", color=NAVY, va="top")
    fig.add_artist(Line2D([LEFT, LEFT + WIDTH], [top - 0.014] * 2, color=NAVY, linewidth=0.6,
                          transform=fig.transFigure))
    return top - 0.02


def _marrow(fig: Figure, results: Mapping, top: float) -> float:
    table = marrow_table(results)
    if table is None:
        return top
    y = _draw_table(fig, table, _title(fig, MARROW_TITLE, top))
    lines = _note_lines(["Assumptions:"] + marrow_assumptions(results) + [table.note])
    return _draw_notes(fig, lines, y - 0.006) - 0.02


def fit_lesion_rows(table: Table, top: float) -> Tuple[Table, int]:
    """The rows (by ID) that fit between ``top`` and the page bottom with the notes; (table, rows left out)."""
    ordered = lesions_by_id(table)
    space = top - 0.02 - BOTTOM - 0.006 - LINE_H * (len(_note_lines([table.note])) + 2)
    fits = max(1, int(space / ROW_H) - 1)
    if len(ordered.rows) <= fits:
        return ordered, 0
    omitted = len(ordered.rows) - fits
    return Table(ordered.header, ordered.rows[:fits], ordered.align, ordered.widths, note=ordered.note), omitted


def _lesions(fig: Figure, results: Mapping, top: float) -> Optional[int]:
    table = lesion_table(results)
    if table is None:
        return None
    shown, omitted = fit_lesion_rows(table, top)
    y = _draw_table(fig, shown, _title(fig, LESION_TITLE, top))
    notes = [shown.note]
    if omitted:
        last = shown.rows[-1][0]
        notes.insert(0, f"Truncated for lack of space: {omitted} more lesion row(s) after {last} not shown "
                        "(see report.html, lesions in results.json, or lesions.csv of 'startnet accumulate').")
    _draw_notes(fig, _note_lines(notes), y - 0.006)
    return omitted


def draw_second_page(pdf, results: Mapping, page_in: Tuple[float, float], page_count: int = 2) -> bool:
    """Marrow doses, then lesions, on a second page; False (nothing drawn) when the run has neither."""
    if not has_second_page(results):
        return False
    fig = Figure(figsize=page_in)
    cycle = results.get("cycle")
    fig.text(LEFT, 0.975, f"Patient {results.get('patient_id') or fmt.MISSING}   \u00b7   Cycle "
             f"{fmt.MISSING if cycle is None else cycle}", fontsize=9, fontweight="bold", color=NAVY, va="top")
    y = _marrow(fig, results, TOP)
    _lesions(fig, results, y)
    fig.text(LEFT, 0.03, f"page 2 of {page_count} \u00b7 research software: verify before clinical use.",
             fontsize=5.3, color="#666666", va="top")
    pdf.savefig(fig)
    return True
