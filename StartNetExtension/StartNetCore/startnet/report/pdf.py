"""One-page A4 portrait PDF report, composed on a single matplotlib Figure (no pyplot).

A second page (:mod:`startnet.report.pdf_page2`) holds the lesions across cycles and the red-marrow
doses when the run has them.

``page_layout`` computes where each block goes (figure fractions, origin bottom-left), so tests
can check that the rendered page has content exactly there. Rows grow with the number of
structures, time points and warnings; the dose-map row takes what is left.
"""

from __future__ import annotations

import datetime as _dt
import textwrap
from dataclasses import dataclass, field
from typing import Dict, List, Tuple

import matplotlib
import numpy as np
from matplotlib.axes import Axes
from matplotlib.backends.backend_pdf import PdfPages
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.patches import FancyBboxPatch, Rectangle

from startnet import __version__
from startnet.report import figures, fmt, tables
from startnet.report.model import ReportInput
from startnet.report.pdf_page2 import draw_second_page, has_second_page

PAGE_IN = (8.27, 11.69)
NAVY = "#1f3a5f"
MARGIN_X, MARGIN_TOP, MARGIN_BOTTOM, GAP = 0.05, 0.018, 0.014, 0.009
TITLE_H = 0.017
Rect = Tuple[float, float, float, float]


@dataclass
class PageLayout:
    regions: Dict[str, Rect] = field(default_factory=dict)
    row_h: float = 0.0122
    font: float = 6.4
    warning_lines: List[str] = field(default_factory=list)
    shown: List[str] = field(default_factory=list)  # structures in the PDF's tables and plots


def _table_height(n_rows: int, row_h: float) -> float:
    return TITLE_H + row_h * (n_rows + 1) + 0.018


def _wrap_warnings(warnings: List[str], font: float) -> List[str]:
    lines: List[str] = []
    for w in warnings:
        lines += textwrap.wrap(w, 76 if font > 6 else 84, initial_indent="\u26a0 ", subsequent_indent="    ") or [""]
    return lines or ["No warnings were raised during the run."]


def _heights(results, n_structures: int, n_warning_lines: int, row_h: float) -> Dict[str, float]:
    n_tp = len(results.get("timepoints") or [])
    n_dose_rows = n_structures + (1 if fmt.number(results.get("kidneys_mean_gy")) is not None else 0)
    return {
        "header": 0.040, "info": 0.050,
        "row_tp": max(0.078, _table_height(n_tp, row_h)),
        "row_kin": max(0.150, _table_height(n_structures, row_h)),
        "row_dvh": max(0.150, _table_height(n_dose_rows, row_h)),
        "row_budget": max(0.105, TITLE_H + 0.012 + row_h * 0.85 * n_warning_lines,
                          TITLE_H + 0.066 + 0.0088 * len(budget_lines(tables.kidney_budget(results)))),
        "signature": 0.056, "footer": 0.022,
    }


def _images_height(heights: Dict[str, float]) -> float:
    return 1.0 - (sum(heights.values()) + 7 * GAP + MARGIN_TOP + MARGIN_BOTTOM)


def page_layout(inp: ReportInput, names: List[str]) -> PageLayout:
    """Place every block on one page: smaller rows first; if still too full, fewer structures in
    the tables and plots (kidneys first) and fewer warning lines, each cut stated on the page."""
    results = inp.results
    warnings = tables.collect_warnings(results)
    n_shown = len(names)
    for row_h, font in ((0.0122, 6.4), (0.0108, 5.9), (0.0095, 5.3)):
        warning_lines = _wrap_warnings(warnings, font)
        heights = _heights(results, n_shown, len(warning_lines), row_h)
        images_h = _images_height(heights)
        if images_h >= 0.17:
            break
    more = "\u2026 more warnings: see report.html and results.json"
    if images_h < 0.17 and len(warning_lines) > 12:
        warning_lines = warning_lines[:11] + [more]
        heights = _heights(results, n_shown, len(warning_lines), row_h)
        images_h = _images_height(heights)
    while images_h < 0.17 and n_shown > 4:
        n_shown -= 1
        heights = _heights(results, n_shown, len(warning_lines), row_h)
        images_h = _images_height(heights)
    if images_h < 0.17:
        keep = max(3, len(warning_lines) - int(np.ceil((0.17 - images_h) / (row_h * 0.85))) - 1)
        if keep < len(warning_lines):
            warning_lines = [line for line in warning_lines[:keep] if line != more] + [more]
        heights = _heights(results, n_shown, len(warning_lines), row_h)
        images_h = _images_height(heights)
    layout = PageLayout(row_h=row_h, font=font, warning_lines=warning_lines, shown=list(names[:n_shown]))
    images_h = min(images_h, 0.26)
    width = 1.0 - 2 * MARGIN_X
    left_w, right_w = 0.38 * width, 0.59 * width
    right_x = 1.0 - MARGIN_X - right_w
    y = 1.0 - MARGIN_TOP

    def take(height: float) -> float:
        nonlocal y
        y -= height
        bottom = y
        y -= GAP
        return bottom

    b = take(heights["header"])
    layout.regions["header"] = (MARGIN_X, b, width, heights["header"])
    b = take(heights["info"])
    layout.regions["info"] = (MARGIN_X, b, width, heights["info"])
    h = heights["row_tp"]
    b = take(h)
    layout.regions["timepoints_table"] = (MARGIN_X, b, 0.55 * width, h)
    layout.regions["key_results"] = (1.0 - MARGIN_X - 0.41 * width, b, 0.41 * width, h)
    h = heights["row_kin"]
    b = take(h)
    layout.regions["tac_plot"] = (MARGIN_X, b, left_w, h)
    layout.regions["activity_table"] = (right_x, b, right_w, h)
    b = take(images_h)
    image_w = (width - 0.075) / 2
    layout.regions["dose_axial"] = (MARGIN_X, b, image_w, images_h)
    layout.regions["dose_coronal"] = (MARGIN_X + image_w + 0.01, b, image_w, images_h)
    layout.regions["dose_colorbar"] = (1.0 - MARGIN_X - 0.055, b, 0.055, images_h)
    h = heights["row_dvh"]
    b = take(h)
    layout.regions["dvh_plot"] = (MARGIN_X, b, left_w, h)
    layout.regions["dose_table"] = (right_x, b, right_w, h)
    h = heights["row_budget"]
    b = take(h)
    layout.regions["kidney_budget"] = (MARGIN_X, b, 0.47 * width, h)
    layout.regions["warnings"] = (1.0 - MARGIN_X - 0.50 * width, b, 0.50 * width, h)
    b = take(heights["signature"])
    layout.regions["signature"] = (MARGIN_X, b, width, heights["signature"])
    layout.regions["footer"] = (MARGIN_X, MARGIN_BOTTOM, width, heights["footer"])
    return layout


def _section(fig: Figure, rect: Rect, title: str) -> None:
    x, b, w, h = rect
    fig.text(x, b + h - 0.002, title.upper(), fontsize=7, fontweight="bold", color=NAVY, va="top")
    fig.add_artist(Line2D([x, x + w], [b + h - TITLE_H + 0.003] * 2, color=NAVY,
                                           linewidth=0.6, transform=fig.transFigure))


def _plot_axes(fig: Figure, rect: Rect, pad_left_in: float = 0.45, pad_bottom_in: float = 0.30) -> Axes:
    x, b, w, h = rect
    pl, pb = pad_left_in / PAGE_IN[0], pad_bottom_in / PAGE_IN[1]
    return fig.add_axes((x + pl, b + pb, w - pl - 0.005, h - TITLE_H - pb - 0.004))


def draw_table(fig: Figure, rect: Rect, table: tables.Table, title: str, layout: PageLayout) -> None:
    _section(fig, rect, title)
    x, b, w, h = rect
    ax = fig.add_axes((x, b, w, h - TITLE_H), frameon=False)
    ax.set_axis_off()
    ax.set_xlim(0, 1)
    top = h - TITLE_H
    ax.set_ylim(0, top)
    total = float(sum(table.widths))
    edges = [0.0]
    for width in table.widths:
        edges.append(edges[-1] + width / total)
    row_h = layout.row_h
    for r, row in enumerate([table.header] + table.rows):
        y_top = top - r * row_h
        emphasis = r > 0 and (r - 1) in table.emphasis
        if r == 0:
            ax.add_patch(Rectangle((0, y_top - row_h), 1, row_h, color="#e8edf3", linewidth=0))
        elif emphasis:
            ax.add_patch(Rectangle((0, y_top - row_h), 1, row_h, color="#dbe7f6", linewidth=0))
        elif r % 2 == 0:
            ax.add_patch(Rectangle((0, y_top - row_h), 1, row_h, color="#f6f7f9", linewidth=0))
        for c, text in enumerate(row):
            align = table.align[c]
            pos = {"l": edges[c] + 0.008, "r": edges[c + 1] - 0.008, "c": (edges[c] + edges[c + 1]) / 2}[align]
            ha = {"l": "left", "r": "right", "c": "center"}[align]
            ax.text(pos, y_top - row_h / 2, text, ha=ha, va="center", fontsize=layout.font,
                    fontweight="bold" if r == 0 or emphasis else "normal",
                    color=NAVY if r == 0 else "black")
    bottom_y = top - (len(table.rows) + 1) * row_h
    ax.plot([0, 1], [bottom_y, bottom_y], color="#9aa5b1", linewidth=0.5)
    ax.plot([0, 1], [top - row_h, top - row_h], color="#9aa5b1", linewidth=0.5)
    if table.note:
        note_font = layout.font - 0.9
        chars = int(w * PAGE_IN[0] * 72.0 / (0.52 * note_font))
        ax.text(0.0, bottom_y - 0.003, textwrap.fill(table.note, chars), ha="left", va="top", fontsize=note_font,
                style="italic", color="#555555", linespacing=1.1)


def _header(fig: Figure, inp: ReportInput, layout: PageLayout) -> None:
    r = inp.results
    x, b, w, h = layout.regions["header"]
    fig.add_artist(Rectangle((x, b), w, h, color=NAVY, transform=fig.transFigure, linewidth=0))
    fig.text(x + 0.012, b + h / 2, "Post-therapy absorbed-dose report", color="white", fontsize=13,
             fontweight="bold", va="center")
    cycle = r.get("cycle")
    cycle_text = fmt.MISSING if cycle is None else str(cycle)
    right = f"Patient {r.get('patient_id') or fmt.MISSING}   \u00b7   Cycle {cycle_text}"
    fig.text(x + w - 0.012, b + h / 2, right, color="white", fontsize=10, fontweight="bold", va="center", ha="right")
    x, b, w, h = layout.regions["info"]
    software = r.get("software") or {}
    reference = r.get("reference_timepoint")
    timepoints = r.get("timepoints") or []
    ref_text = fmt.MISSING
    if reference is not None:
        ref_text = f"#{int(reference) + 1}"
        for tp in timepoints:
            if tp.get("index") == reference:
                ref_text += f" ({fmt.hours(tp.get('hours_post_injection'), unit=True)} p.i.)"
    injected = fmt.number(r.get("injected_activity_mbq"))
    activity = fmt.MISSING if injected is None else f"{injected:.0f} MBq ({injected / 1000:.2f} GBq)"
    cells = [
        ("Patient", str(r.get("patient_id") or fmt.MISSING)),
        ("Injection", fmt.datetime_text(r.get("injection_datetime"))),
        ("Activity", activity),
        ("Method", fmt.method_label(r.get("method"))),
        ("Ref. time point", ref_text),
        ("Radiopharm.", str(r.get("radiopharmaceutical") or fmt.MISSING)),
        ("Software", f"{software.get('name', 'startnet')} {software.get('version', __version__)}"),
        ("Time points", str(len(timepoints))),
        ("Generated", _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")),
    ]
    col_x = (0.0, 0.44, 0.73)
    for i, (label, value) in enumerate(cells):
        col, row = i % 3, i // 3
        cx = x + col_x[col] * w
        cy = b + h - (row + 0.5) * h / 3
        fig.text(cx, cy, label, fontsize=6.6, color="#555555", va="center")
        fig.text(cx + 0.085, cy, value, fontsize=6.8, fontweight="bold", va="center")


def _key_results(fig: Figure, inp: ReportInput, layout: PageLayout, budget: tables.KidneyBudget) -> None:
    r = inp.results
    rect = layout.regions["key_results"]
    _section(fig, rect, "Kidney result (this cycle)")
    x, b, w, h = rect
    box_h = h - TITLE_H - 0.003
    fig.add_artist(FancyBboxPatch((x, b), w, box_h, boxstyle="round,pad=0.0,rounding_size=0.006",
                                  facecolor="#eef3fa", edgecolor=NAVY, linewidth=0.8, transform=fig.transFigure))
    mean = fmt.number(r.get("kidneys_mean_gy"))
    u_pct = fmt.number(r.get("kidneys_uncertainty_pct"))
    big = fmt.gy(mean, unit=True)
    fig.text(x + 0.012, b + box_h - 0.008, "Kidneys, mass-weighted mean absorbed dose", fontsize=6.8, va="top",
             color="#333333")
    fig.text(x + 0.012, b + box_h * 0.45, big, fontsize=16, fontweight="bold", color=NAVY, va="center")
    lines = []
    if mean is not None and u_pct is not None:
        lines.append(f"\u00b1 {fmt.gy(mean * u_pct / 100.0)} Gy ({fmt.pct(u_pct)} %, k = 1)")
    lines.append(f"BED {fmt.gy(r.get('kidneys_bed_gy'), unit=True)}")
    injected = fmt.number(r.get("injected_activity_mbq"))
    if mean is not None and injected:
        lines.append(f"{mean / (injected / 1000.0):.2f} Gy/GBq")
    for i, line in enumerate(lines):
        fig.text(x + w * 0.52, b + box_h * (0.64 - 0.19 * i), line, fontsize=7, va="center")
    if budget.cumulative_gy is not None:
        scope = "cumulative" if budget.has_trial else "this cycle"
        fig.text(x + 0.012, b + box_h * 0.12, f"{scope.capitalize()}: {budget.cumulative_gy:.2f} of "
                 f"{budget.limit_gy:.0f} Gy limit", fontsize=6.5, va="center", color="#333333")


def _budget_and_warnings(fig: Figure, inp: ReportInput, layout: PageLayout, budget: tables.KidneyBudget) -> None:
    rect = layout.regions["kidney_budget"]
    _section(fig, rect, "Cumulative kidney dose vs limit" if budget.has_trial else "Kidney dose vs limit")
    x, b, w, h = rect
    text_h = 0.036
    bar_h = min(h - TITLE_H - text_h - 0.030, 0.03)
    ax = fig.add_axes((x + 0.01, b + h - TITLE_H - 0.004 - bar_h, w - 0.02, bar_h))
    figures.draw_kidney_budget(ax, budget)
    text = "\n".join(budget_lines(budget))
    colour = "#b03a2e" if budget.next_allowed is False else "#222222"
    fig.text(x, b + h - TITLE_H - bar_h - 0.032, text, fontsize=5.8, va="top", color=colour)

    rect = layout.regions["warnings"]
    warnings = tables.collect_warnings(inp.results)
    _section(fig, rect, f"Warnings raised during the run ({len(warnings)})")
    x, b, w, h = rect
    box_h = h - TITLE_H - 0.002
    face, edge = ("#fff4ce", "#d68910") if warnings else ("#eef7ee", "#5d9c59")
    fig.add_artist(FancyBboxPatch((x, b), w, box_h, boxstyle="round,pad=0.0,rounding_size=0.005",
                                  facecolor=face, edgecolor=edge, linewidth=1.0, transform=fig.transFigure))
    step = layout.row_h * 0.85
    for i, line in enumerate(layout.warning_lines):
        fig.text(x + 0.008, b + box_h - 0.006 - i * step, line, fontsize=layout.font - 0.3, va="top",
                 color="#7a4b00" if warnings else "#2e6b2b")


def budget_lines(budget: tables.KidneyBudget) -> List[str]:
    """The kidney budget's summary text, wrapped to the width of its panel."""
    summary = tables.budget_sentences(budget)
    return [line for s in summary for line in textwrap.wrap(s, 84)]


def _signature(fig: Figure, layout: PageLayout) -> None:
    rect = layout.regions["signature"]
    _section(fig, rect, "Review and approval")
    x, b, w, h = rect
    roles = ("Calculated by", "Reviewed and approved by (medical physicist)")
    for i, role in enumerate(roles):
        cx = x + i * w / 2
        fig.text(cx, b + h - TITLE_H - 0.006, role, fontsize=6.5, fontweight="bold", va="top")
        for j, label in enumerate(("Name", "Signature", "Date")):
            lx = cx + j * (w / 2 - 0.02) / 3
            line_w = (w / 2 - 0.02) / 3 - 0.012
            fig.add_artist(Line2D([lx, lx + line_w], [b + 0.012] * 2, color="black",
                                                   linewidth=0.5, transform=fig.transFigure))
            fig.text(lx, b + 0.010, label, fontsize=5.5, color="#555555", va="top")


def page_count(results) -> int:
    return 2 if has_second_page(results) else 1


def _footer(fig: Figure, inp: ReportInput, layout: PageLayout) -> None:
    x, b, w, h = layout.regions["footer"]
    r = inp.results
    software = r.get("software") or {}
    prov = fmt.flatten_provenance(r.get("provenance"), limit=8)
    first = (f"{software.get('name', 'startnet')} {software.get('version', __version__)} \u00b7 results schema "
             f"{r.get('schema_version', fmt.MISSING)} \u00b7 page 1 of {page_count(r)} \u00b7 research software: "
             "verify before clinical use.")
    fig.text(x, b + h, first, fontsize=5.3, color="#666666", va="top")
    if prov:
        fig.text(x, b + h - 0.009, textwrap.shorten("Provenance: " + "; ".join(prov), 210), fontsize=5.0,
                 color="#777777", va="top")


def render_pdf(inp: ReportInput, path: str, names: List[str], log_y: bool = True) -> PageLayout:
    """Draw the page and save it to ``path`` (one A4 page; a second for lesions, marrow doses). Returns the layout."""
    layout = page_layout(inp, names)
    budget = tables.kidney_budget(inp.results)
    colours = figures.structure_colours(names)
    omitted = [n for n in names if n not in layout.shown]
    names = layout.shown
    dose_table = tables.dose_table(inp.results, names)
    if omitted:
        dose_table.note = (f"Not shown for lack of space: {', '.join(fmt.structure_label(n) for n in omitted)} "
                           "(see report.html and results.json). " + dose_table.note)
    with matplotlib.rc_context({"pdf.fonttype": 42, "font.family": "DejaVu Sans", "axes.linewidth": 0.6}):
        fig = Figure(figsize=PAGE_IN)
        _header(fig, inp, layout)
        draw_table(fig, layout.regions["timepoints_table"], tables.timepoint_table(inp.results), "Time points",
                   layout)
        _key_results(fig, inp, layout, budget)
        rect = layout.regions["tac_plot"]
        _section(fig, rect, "Time-activity curves" + (" (log scale)" if log_y else ""))
        figures.draw_tacs(_plot_axes(fig, rect), inp, figures.plotted_structures(names), colours, log_y=log_y)
        draw_table(fig, layout.regions["activity_table"], tables.activity_table(inp.results, names),
                   "Activities and kinetics", layout)
        _dose_maps(fig, inp, layout, colours)
        rect = layout.regions["dvh_plot"]
        _section(fig, rect, "Cumulative dose-volume histograms")
        figures.draw_dvhs(_plot_axes(fig, rect), inp, figures.plotted_structures(names), colours)
        draw_table(fig, layout.regions["dose_table"], dose_table, "Absorbed dose", layout)
        _budget_and_warnings(fig, inp, layout, budget)
        _signature(fig, layout)
        _footer(fig, inp, layout)
        with PdfPages(path, metadata={"Title": f"Dosimetry report {inp.results.get('patient_id', '')}",
                                      "Creator": f"startnet {__version__}"}) as pdf:
            pdf.savefig(fig)
            draw_second_page(pdf, inp.results, PAGE_IN, page_count(inp.results))  # lesions, marrow doses
    return layout


def _dose_maps(fig: Figure, inp: ReportInput, layout: PageLayout, colours: Dict[str, str]) -> None:
    x, b, _, h = layout.regions["dose_axial"]
    span = layout.regions["dose_colorbar"][0] + layout.regions["dose_colorbar"][2] - x
    _section(fig, (x, b, span, h), "Absorbed-dose maps through the kidneys")
    centre = figures.slice_centre(inp)
    vmax = figures.dose_display_max(inp, centre)
    image = None
    for plane in ("axial", "coronal"):
        rx, rb, rw, rh = layout.regions[f"dose_{plane}"]
        ax = fig.add_axes((rx, rb, rw, rh - TITLE_H - 0.014))
        image = figures.draw_dose_slice(ax, inp, plane, centre, vmax, colours)
    cx, cb, cw, ch = layout.regions["dose_colorbar"]
    cax = fig.add_axes((cx + 0.008, cb + 0.01, 0.012, ch - TITLE_H - 0.03))
    bar = fig.colorbar(image, cax=cax)
    bar.set_label("Absorbed dose (Gy)", fontsize=6.5)
    bar.ax.tick_params(labelsize=6)
