"""OUT_DIR/cohort.html: the distributions a dosimetry core lab reviews, with outliers flagged.

Plots (matplotlib, embedded as PNG): kidney absorbed dose per injected activity (Gy/GBq, the
mass-weighted mean of both kidneys) per site and per cycle number, and the effective half-life
of each structure. Site = the reference SPECT's DICOM Institution Name.

Outlier rule (robust, stated in the page): a value is flagged when it lies more than
``OUTLIER_MADS`` scaled median absolute deviations from the cohort median,
|x - median| > 3 x 1.4826 x MAD (1.4826 x MAD estimates the standard deviation of normal data),
computed over all cycles of the batch, only when at least ``MIN_VALUES_FOR_OUTLIERS`` values exist
and MAD > 0. Applied to kidney Gy/GBq and to the kidneys' effective half-lives.
"""

from __future__ import annotations

import base64
import html
import io
from pathlib import Path
from typing import Dict, List, Sequence, Tuple

import numpy as np

from startnet.batch.task import RowOutcome
from startnet.filelock import write_text_atomic

OUTLIER_MADS = 3.0
MAD_TO_SD = 1.4826
MIN_VALUES_FOR_OUTLIERS = 5
KIDNEYS = ("kidney_left", "kidney_right")


def outlier_mask(values: Sequence[float]) -> np.ndarray:
    """True where |x - median| > 3 x 1.4826 x MAD (none with fewer than 5 values or MAD = 0)."""
    x = np.asarray(values, dtype=float)
    if x.size < MIN_VALUES_FOR_OUTLIERS:
        return np.zeros(x.shape, dtype=bool)
    median = np.median(x)
    mad = np.median(np.abs(x - median))
    if not mad > 0:
        return np.zeros(x.shape, dtype=bool)
    return np.abs(x - median) > OUTLIER_MADS * MAD_TO_SD * mad


def kidney_gy_per_gbq(outcomes: Sequence[RowOutcome]) -> List[Tuple[str, str, str, float]]:
    """(name, site, cycle, Gy/GBq) of every successful row with a kidney dose."""
    points = []
    for outcome in outcomes:
        record = outcome.record
        activity_mbq, kidneys_gy = record.get("injected_activity_mbq"), record.get("kidneys_mean_gy")
        if outcome.status == "failed" or not activity_mbq or kidneys_gy is None:
            continue
        cycle = record.get("cycle")
        points.append((outcome.name, record.get("site") or "unknown", "?" if cycle is None else str(cycle),
                       float(kidneys_gy) / (float(activity_mbq) / 1000.0)))
    return points


def half_lives(outcomes: Sequence[RowOutcome]) -> Dict[str, List[Tuple[str, float]]]:
    """structure -> [(row name, effective half-life h)] of successful rows."""
    table: Dict[str, List[Tuple[str, float]]] = {}
    for outcome in outcomes:
        if outcome.status == "failed":
            continue
        for structure, values in (outcome.record.get("structures") or {}).items():
            value = values.get("effective_half_life_h")
            if value is not None and np.isfinite(value):
                table.setdefault(structure, []).append((outcome.name, float(value)))
    return table


def _png(figure) -> str:
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=100, bbox_inches="tight")
    return base64.b64encode(buffer.getvalue()).decode("ascii")


def _strip_plot(groups: Dict[str, List[Tuple[float, bool]]], ylabel: str, title: str) -> str:
    from matplotlib.figure import Figure

    figure = Figure(figsize=(7, 3.6))
    axes = figure.subplots()
    rng = np.random.default_rng(0)  # jitter only spreads the points sideways
    labels = sorted(groups, key=lambda g: (len(g), g))
    for position, label in enumerate(labels):
        values = np.array([v for v, _ in groups[label]])
        flags = np.array([f for _, f in groups[label]], dtype=bool)
        x = position + rng.uniform(-0.15, 0.15, size=values.size)
        axes.scatter(x[~flags], values[~flags], s=18, color="#2b6cb0", alpha=0.8)
        axes.scatter(x[flags], values[flags], s=40, color="#c53030", marker="x", label=None)
        if values.size:
            axes.hlines(np.median(values), position - 0.3, position + 0.3, color="black", linewidth=1.5)
    axes.set_xticks(range(len(labels)))
    axes.set_xticklabels(labels, rotation=20 if len(labels) > 6 else 0)
    axes.set_ylabel(ylabel)
    axes.set_title(title)
    axes.grid(axis="y", alpha=0.3)
    return _png(figure)


def _figures(outcomes: Sequence[RowOutcome]) -> Tuple[List[Tuple[str, str]], List[Tuple[str, str, str]]]:
    figures: List[Tuple[str, str]] = []
    flagged: List[Tuple[str, str, str]] = []
    points = kidney_gy_per_gbq(outcomes)
    if points:
        flags = outlier_mask([p[3] for p in points])
        by_site: Dict[str, List[Tuple[float, bool]]] = {}
        by_cycle: Dict[str, List[Tuple[float, bool]]] = {}
        for (name, site, cycle, value), flag in zip(points, flags):
            by_site.setdefault(site, []).append((value, flag))
            by_cycle.setdefault(f"cycle {cycle}", []).append((value, flag))
            if flag:
                flagged.append((name, "kidneys Gy/GBq", f"{value:.3f}"))
        figures.append(("Kidney absorbed dose per injected activity, per site",
                        _strip_plot(by_site, "kidneys mean dose (Gy/GBq)", "per site")))
        figures.append(("Kidney absorbed dose per injected activity, per cycle number",
                        _strip_plot(by_cycle, "kidneys mean dose (Gy/GBq)", "per cycle number")))
    table = half_lives(outcomes)
    if table:
        groups: Dict[str, List[Tuple[float, bool]]] = {}
        for structure, entries in table.items():
            flags = (outlier_mask([v for _, v in entries]) if structure in KIDNEYS
                     else np.zeros(len(entries), dtype=bool))
            groups[structure] = [(v, bool(f)) for (_, v), f in zip(entries, flags)]
            flagged += [(name, f"{structure} effective half-life (h)", f"{v:.1f}")
                        for (name, v), f in zip(entries, flags) if f]
        figures.append(("Effective half-lives per structure", _strip_plot(groups, "effective half-life (h)",
                                                                            "effective half-life")))
    return figures, flagged


def _rows(cells: List[Tuple[str, ...]]) -> str:
    return "".join("<tr>" + "".join(f"<td>{html.escape(str(c))}</td>" for c in row) + "</tr>" for row in cells)


def write_cohort(out_dir: str, outcomes: Sequence[RowOutcome]) -> Path:
    """cohort.html (self-contained: figures embedded), written atomically."""
    figures, flagged = _figures(outcomes)
    failed = [(o.name, o.error) for o in outcomes if o.status == "failed"]
    counts = {s: sum(o.status == s for o in outcomes) for s in ("done", "skipped", "failed")}
    parts = ["<!DOCTYPE html><html><head><meta charset='utf-8'><title>START-NET batch cohort</title>",
             "<style>body{font-family:sans-serif;margin:2em;max-width:60em}table{border-collapse:collapse}"
             "td,th{border:1px solid #ccc;padding:3px 8px}img{max-width:100%}</style></head><body>",
             "<h1>START-NET batch: cohort review</h1>",
             f"<p>{len(outcomes)} cycles: {counts['done']} computed, {counts['skipped']} unchanged (skipped), "
             f"{counts['failed']} failed. Per-structure numbers: summary.csv.</p>",
             f"<p>Outliers (red crosses, listed below): more than {OUTLIER_MADS:g} scaled MAD "
             f"({MAD_TO_SD} &times; median absolute deviation) from the cohort median; evaluated with at least "
             f"{MIN_VALUES_FOR_OUTLIERS} cycles, for kidney Gy/GBq and the kidneys' effective half-lives. "
             "Black bars: medians. Site: DICOM Institution Name of the reference SPECT.</p>"]
    for title, png in figures:
        parts.append(f"<h2>{html.escape(title)}</h2><img alt='{html.escape(title)}' "
                     f"src='data:image/png;base64,{png}'>")
    parts.append("<h2>Outliers</h2>")
    parts.append(f"<table><tr><th>name</th><th>quantity</th><th>value</th></tr>{_rows(flagged)}</table>"
                 if flagged else "<p>None flagged.</p>")
    parts.append("<h2>Failed cycles</h2>")
    parts.append(f"<table><tr><th>name</th><th>error</th></tr>{_rows(failed)}</table>" if failed
                 else "<p>None.</p>")
    parts.append("</body></html>")
    path = Path(out_dir) / "cohort.html"
    write_text_atomic(path, "\n".join(parts))
    return path
