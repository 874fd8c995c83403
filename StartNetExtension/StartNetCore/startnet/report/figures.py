"""Report figures drawn onto given matplotlib Axes (no pyplot, no global state).

Dose slices: axial and coronal planes through the kidneys' centroid (or the other structures',
or the dose maximum), CT in grey with the dose as a colour wash (transparent below 5 % of the
displayed maximum), structure outlines and orientation letters from the grid's direction
cosines; the caller adds the colour bar in Gy. TACs: measured points (with standard
uncertainty bars) and fitted curves per structure, log-y by default. DVHs: cumulative, volume in
percent. Kidney budget: per-cycle kidney doses stacked against the protocol limit.
"""

from __future__ import annotations

from typing import Dict, List, Sequence, Tuple

import numpy as np
from matplotlib.axes import Axes
from matplotlib.colors import to_rgba

from startnet.report import fmt
from startnet.report.model import ReportInput, cumulative_dvh
from startnet.report.tables import KidneyBudget

PALETTE = ("#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#17becf",
           "#bcbd22", "#7f7f7f", "#393b79", "#637939", "#8c6d31", "#843c39", "#7b4173", "#3182bd", "#e6550d",
           "#31a354", "#756bb1", "#636363")
DOSE_CMAP = "turbo"
_LPS_POSITIVE = ("L", "P", "S")
_LPS_NEGATIVE = ("R", "A", "I")


def structure_colours(names: Sequence[str]) -> Dict[str, str]:
    """One colour per structure, stable across all figures (kidneys first in the given order)."""
    return {name: PALETTE[i % len(PALETTE)] for i, name in enumerate(names)}


def _letter(vector: np.ndarray) -> str:
    axis = int(np.argmax(np.abs(vector)))
    return _LPS_POSITIVE[axis] if vector[axis] > 0 else _LPS_NEGATIVE[axis]


def slice_centre(inp: ReportInput) -> Tuple[int, int, int]:
    """(z, y, x) index of the kidneys' centroid, else all structures', else the dose maximum."""
    kidneys = [m for n, m in inp.masks.items() if "kidney" in n.lower() and np.any(m)]
    chosen = kidneys or [m for m in inp.masks.values() if np.any(m)]
    if chosen:
        union = np.logical_or.reduce([np.asarray(m, dtype=bool) for m in chosen])
        return tuple(int(round(c)) for c in np.argwhere(union).mean(axis=0))
    return tuple(int(i) for i in np.unravel_index(int(np.argmax(inp.dose_gy)), np.shape(inp.dose_gy)))


def _crop_box(inp: ReportInput) -> Tuple[slice, slice, slice]:
    """Bounding box of the body (CT > -400 HU) or of dose above 1 % of its maximum, plus a margin."""
    if inp.ct_hu is not None:
        region = np.asarray(inp.ct_hu) > -400.0
    else:
        dose = np.asarray(inp.dose_gy)
        region = dose > 0.01 * float(dose.max()) if dose.max() > 0 else np.ones(dose.shape, bool)
    if not region.any():
        region = np.ones(region.shape, bool)
    idx = np.argwhere(region)
    lo = np.maximum(idx.min(axis=0) - 3, 0)
    hi = np.minimum(idx.max(axis=0) + 4, region.shape)
    return tuple(slice(int(a), int(b)) for a, b in zip(lo, hi))


def dose_display_max(inp: ReportInput, centre: Tuple[int, int, int]) -> float:
    dose = np.asarray(inp.dose_gy)
    top = max(float(dose[centre[0]].max()), float(dose[:, centre[1], :].max()))
    return top if top > 0 else 1.0


def draw_dose_slice(ax: Axes, inp: ReportInput, plane: str, centre: Tuple[int, int, int], vmax_gy: float,
                    colours: Dict[str, str]):
    """Draw the axial or coronal plane through ``centre``; returns the dose image for a colour bar."""
    sx, sy, sz = (float(s) for s in inp.spacing_mm)
    direction = np.asarray(inp.direction, dtype=float).reshape(3, 3)
    box = _crop_box(inp)
    dose = np.asarray(inp.dose_gy)
    if plane == "axial":
        index = (centre[0], box[1], box[2])
        rows, cols, row_mm, origin = box[1], box[2], sy, "upper"
        down, right = direction[:, 1], direction[:, 0]
        title = f"Axial, slice {centre[0] + 1}/{dose.shape[0]}"
    elif plane == "coronal":
        index = (box[0], centre[1], box[2])
        rows, cols, row_mm, origin = box[0], box[2], sz, "lower"
        down, right = -direction[:, 2], direction[:, 0]
        title = f"Coronal, row {centre[1] + 1}/{dose.shape[1]}"
    else:
        raise ValueError(f"unknown plane {plane!r}")

    def take(array):
        return np.asarray(array)[index]

    n_rows, n_cols = rows.stop - rows.start, cols.stop - cols.start
    extent = (0.0, n_cols * sx, 0.0, n_rows * row_mm) if origin == "lower" else (0.0, n_cols * sx, n_rows * row_mm, 0.0)
    ax.set_facecolor("black")
    if inp.ct_hu is not None:
        ax.imshow(take(inp.ct_hu), cmap="gray", vmin=-160, vmax=240, origin=origin, extent=extent,
                  interpolation="bilinear")
    dose_slice = np.ma.masked_less(take(dose), 0.05 * vmax_gy)
    image = ax.imshow(dose_slice, cmap=DOSE_CMAP, vmin=0.0, vmax=vmax_gy, alpha=0.6 if inp.ct_hu is not None else 1.0,
                      origin=origin, extent=extent, interpolation="nearest")
    xs = (np.arange(n_cols) + 0.5) * sx
    ys = (np.arange(n_rows) + 0.5) * row_mm
    for name, mask in inp.masks.items():
        if "body" in name.lower():  # the body outline only clutters the dose map
            continue
        part = take(mask).astype(float)
        if part.any() and part.min() == 0:
            ax.contour(xs, ys, part, levels=[0.5], colors=[colours.get(name, "white")], linewidths=0.9)
    ax.set_xlim(extent[0], extent[1])
    ax.set_ylim(extent[2], extent[3])
    ax.set_aspect("equal")
    ax.set_xticks([])
    ax.set_yticks([])
    style = dict(color="white", fontsize=7, fontweight="bold", transform=ax.transAxes)
    ax.text(0.02, 0.5, _letter(-right), ha="left", va="center", **style)
    ax.text(0.98, 0.5, _letter(right), ha="right", va="center", **style)
    ax.text(0.5, 0.98, _letter(-down), ha="center", va="top", **style)
    ax.text(0.5, 0.02, _letter(down), ha="center", va="bottom", **style)
    bar_mm = 50.0 if n_cols * sx > 120 else 20.0
    x0, y0 = extent[1] - bar_mm - 0.05 * extent[1], 0.06 * abs(extent[3] - extent[2])
    y0 = y0 if origin == "lower" else abs(extent[2] - extent[3]) - y0
    ax.plot([x0, x0 + bar_mm], [y0, y0], color="white", linewidth=1.5)
    ax.text(x0 + bar_mm / 2, y0, f"{bar_mm:.0f} mm", color="white", fontsize=5.5, ha="center", va="bottom")
    ax.set_title(title, fontsize=7, pad=2)
    return image


PLOT_EXCLUDED_PREFIXES = ("body", "remainder", "background", "lung")
MAX_PLOTTED_CURVES = 8


def plotted_structures(names: Sequence[str]) -> List[str]:
    """Structures whose curves the one-page report plots: kidneys, tumours, then organs at risk.

    Large background regions (body remainder, lungs) and curves beyond ``MAX_PLOTTED_CURVES``
    stay in the tables and the HTML report, so the plots remain legible.
    """
    def rank(name: str) -> int:
        low = name.lower()
        if low.startswith("kidney"):
            return 0
        if low.startswith(("tumour", "tumor", "lesion")):
            return 1
        return 2

    kept = [n for n in names if not n.lower().startswith(PLOT_EXCLUDED_PREFIXES)]
    return sorted(kept, key=lambda n: (rank(n), list(names).index(n)))[:MAX_PLOTTED_CURVES]


def draw_tacs(ax: Axes, inp: ReportInput, names: Sequence[str], colours: Dict[str, str], log_y: bool = True) -> None:
    structures = inp.results.get("structures") or {}
    drawn = False
    measured = np.zeros(0)
    latest = 0.0
    for name in names:
        tac = inp.tacs.get(name)
        if tac is None:
            continue
        colour = colours.get(name, "black")
        t = np.asarray(tac.times_h, dtype=float)
        a = np.asarray(tac.activity_mbq, dtype=float)
        sd = None if tac.activity_sd_mbq is None else np.asarray(tac.activity_sd_mbq, dtype=float)
        s = structures.get(name) or {}
        teff = fmt.number(s.get("effective_half_life_h"))
        label = fmt.structure_label(name) + (f" (T_eff {teff:.1f} h)" if teff is not None else "")
        ax.errorbar(t, a, yerr=sd, fmt="o", ms=3, color=colour, elinewidth=0.8, capsize=1.5, label=label)
        ft = np.asarray(tac.fit_times_h, dtype=float)
        fa = np.asarray(tac.fit_activity_mbq, dtype=float)
        if ft.size:
            keep = fa > 0 if log_y else np.ones(fa.shape, bool)
            ax.plot(ft[keep], fa[keep], "-", color=colour, linewidth=1.0)
        drawn = True
        measured = np.concatenate([measured, a[np.isfinite(a)]])
        latest = max([latest] + [float(v) for v in t] + [float(v) for v in ft])
    positive = measured[measured > 0]
    if drawn:
        ax.set_xlim(0.0, max(latest, 1.0) * 1.05)
    if not drawn:
        ax.text(0.5, 0.5, "No time-activity data", ha="center", va="center", transform=ax.transAxes, fontsize=7)
    elif log_y and positive.size:
        # Limits from the measurements (a fitted curve may fall by decades after the last one);
        # extra room above for the legend.
        ax.set_yscale("log")
        low, high = positive.min() / 3.0, positive.max() * 1.5
        ax.set_ylim(low, high * (high / low) ** 0.7)
    elif positive.size:
        ax.set_ylim(0.0, positive.max() * 1.6)
    ax.set_xlabel("Time post injection (h)", fontsize=7)
    ax.set_ylabel("Activity (MBq)", fontsize=7)
    _style(ax)
    if drawn:
        ax.legend(fontsize=5.5, frameon=False, loc="upper right", handlelength=1.2, ncol=2 if len(names) > 3 else 1,
                  columnspacing=0.8)


def dvh_curves(inp: ReportInput, names: Sequence[str]) -> Dict[str, Tuple[np.ndarray, np.ndarray]]:
    """Given DVHs, plus ones computed from the masks for structures without one."""
    out = {}
    for name in names:
        if name in inp.dvhs:
            out[name] = (np.asarray(inp.dvhs[name][0], float), np.asarray(inp.dvhs[name][1], float))
        elif name in inp.masks and np.any(inp.masks[name]):
            out[name] = cumulative_dvh(inp.dose_gy, inp.masks[name])
    return out


def draw_dvhs(ax: Axes, inp: ReportInput, names: Sequence[str], colours: Dict[str, str]) -> None:
    curves = dvh_curves(inp, names)
    for name, (dose, fraction) in curves.items():
        ax.plot(dose, 100.0 * fraction, color=colours.get(name, "black"), linewidth=1.1,
                label=fmt.structure_label(name))
    if not curves:
        ax.text(0.5, 0.5, "No structures", ha="center", va="center", transform=ax.transAxes, fontsize=7)
    ax.set_xlabel("Absorbed dose (Gy)", fontsize=7)
    ax.set_ylabel("Volume (%)", fontsize=7)
    ax.set_ylim(0, 102)
    ax.set_xlim(left=0)
    _style(ax)
    if curves:
        ax.legend(fontsize=5.5 if len(curves) <= 6 else 5.0, frameon=False, loc="upper right", handlelength=1.2,
                  ncol=1 if len(curves) <= 6 else 2, columnspacing=0.8)


def draw_kidney_budget(ax: Axes, budget: KidneyBudget) -> None:
    """Stacked horizontal bar of kidney absorbed dose per cycle against the limit."""
    left = 0.0
    shades = ["#9aa9bd", "#b9c4d2"]
    previous = 0
    for bar in budget.bars:
        if bar.kind == "previous":
            face, edge, hatch = shades[previous % 2], "white", None
            previous += 1
        elif bar.kind == "current":
            face, edge, hatch = "#1f4e8c", "white", None
        else:
            face, edge, hatch = "white", "#1f4e8c", "////"
        ax.barh([0], [bar.kidney_gy], left=left, height=0.7, color=face, edgecolor=edge, hatch=hatch,
                linewidth=0.8)
        short = bar.label.replace("Cycle ", "C").replace(" (this)", "").replace("Next (projected)", "next")
        if bar.kidney_gy > 0.09 * budget.limit_gy:
            ax.text(left + bar.kidney_gy / 2, 0, f"{short} {bar.kidney_gy:.2f}", ha="center", va="center",
                    fontsize=5.5, color="white" if bar.kind != "projected" else "#1f4e8c",
                    bbox=dict(facecolor="white", edgecolor="none", pad=0.6) if bar.kind == "projected" else None)
        left += bar.kidney_gy
    top = max(budget.limit_gy * 1.12, left * 1.05)
    ax.axvline(budget.limit_gy, color="#c0392b", linestyle="--", linewidth=1.2)
    ax.text(budget.limit_gy * 0.99, 0, f"limit {budget.limit_gy:.0f} Gy", color="#c0392b", fontsize=6,
            ha="right", va="center")
    ax.set_xlim(0, top)
    ax.set_ylim(-0.45, 0.45)
    ax.set_yticks([])
    ax.set_xlabel("Kidney absorbed dose (Gy)", fontsize=6.5, labelpad=1)
    _style(ax)
    ax.spines["left"].set_visible(False)


def _style(ax: Axes) -> None:
    ax.tick_params(labelsize=6, length=2, pad=1.5)
    for side in ("top", "right"):
        ax.spines[side].set_visible(False)
    ax.grid(True, color=to_rgba("#000000", 0.08), linewidth=0.5)
