"""Report content derived from ``results.json``: the tables, warnings and the kidney dose budget.

Both the PDF and the HTML renderers take their text from here, so the two always agree. Every
function tolerates optional keys being absent (shown as an en dash) and never invents a number:
the only derived quantity is the projected next-cycle kidney dose when the trial record gives a
maximum activity but no projection (this cycle's Gy/GBq times that activity, labelled as such).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, List, Mapping, Optional, Sequence

import numpy as np

from startnet.report import fmt
from startnet.trial.planning import floor_activity_gbq, uncertainty_sentence

DEFAULT_LIMIT_GY = 30.0


@dataclass
class Table:
    """A rendered table: column headers, rows of text, per-column alignment ("l"/"r"/"c"),
    relative column widths and the indices of rows to emphasise (e.g. the kidneys summary)."""

    header: List[str]
    rows: List[List[str]]
    align: List[str]
    widths: List[float]
    emphasis: List[int] = field(default_factory=list)
    note: str = ""


@dataclass
class BudgetBar:
    label: str
    kidney_gy: float
    kind: str  # "previous", "current" or "projected"


@dataclass
class KidneyBudget:
    """Cumulative kidney absorbed dose against the protocol limit."""

    bars: List[BudgetBar]
    limit_gy: float
    cumulative_gy: Optional[float]
    remaining_gy: Optional[float]
    next_allowed: Optional[bool]
    next_text: str
    projection_note: str
    has_trial: bool


def timepoint_table(results: Mapping) -> Table:
    reference = results.get("reference_timepoint")
    rows = []
    for position, tp in enumerate(results.get("timepoints") or []):
        index = tp.get("index", position)
        reg = tp.get("registration") or {}
        shift = None
        translation = reg.get("translation_mm")
        if translation is not None and len(translation) == 3:
            shift = float(np.linalg.norm(np.asarray(translation, dtype=float)))
        rotation = reg.get("rotation_deg")
        rot = float(np.max(np.abs(np.asarray(rotation, dtype=float)))) if rotation is not None and len(
            rotation) else None
        is_ref = reference is not None and index == reference
        rows.append([str(int(index) + 1) + (" (ref)" if is_ref else ""),
                     fmt.datetime_text(tp.get("acquisition_datetime")),
                     fmt.hours(tp.get("hours_post_injection")),
                     _ref_or(is_ref, fmt.fixed(shift, 1)),
                     _ref_or(is_ref, fmt.fixed(rot, 1))])
    return Table(["#", "Acquired", "Time p.i. (h)", "Shift (mm)", "Rotation (\u00b0)"], rows,
                 ["l", "l", "r", "r", "r"], [0.9, 2.2, 1.1, 1.0, 1.1],
                 note="Registration to the reference time point: translation magnitude and largest "
                      "rotation angle.")


def _ref_or(is_reference: bool, text: str) -> str:
    """The reference time point is not registered to itself."""
    return "ref" if is_reference else text


def activity_table(results: Mapping, names: Sequence[str]) -> Table:
    timepoints = results.get("timepoints") or []
    structures = results.get("structures") or {}
    n_tp = max([len(timepoints)] + [len((structures.get(n) or {}).get("activity_mbq") or []) for n in names])
    header = ["Structure"]
    for k in range(n_tp):
        hours = timepoints[k].get("hours_post_injection") if k < len(timepoints) else None
        value = fmt.number(hours)
        header.append(f"#{k + 1}" if value is None else f"{value:.0f} h" if value >= 10 else f"{value:.1f} h")
    header += ["TIA (MBq\u00b7h)", "T_eff (h)", "Model"]
    rows = []
    for name in names:
        s = structures.get(name) or {}
        activities = list(s.get("activity_mbq") or [])
        row = [fmt.structure_label(name)]
        row += [fmt.sig(activities[k]) if k < len(activities) else fmt.MISSING for k in range(n_tp)]
        tia = fmt.sig(s.get("tia_mbq_h"))
        if fmt.number(s.get("tia_sd_mbq_h")) is not None and tia != fmt.MISSING:
            tia += f" \u00b1 {fmt.sig(s.get('tia_sd_mbq_h'), 2)}"
        row += [tia, fmt.hours(s.get("effective_half_life_h")), str(s.get("fit_model") or fmt.MISSING)]
        rows.append(row)
    return Table(header, rows, ["l"] + ["r"] * (n_tp + 2) + ["l"],
                 [1.4] + [0.75] * n_tp + [1.6, 0.95, 1.9],
                 note="Activities (MBq) at each time point (h post injection); TIA \u00b1 standard uncertainty.")


def dose_table(results: Mapping, names: Sequence[str]) -> Table:
    structures = results.get("structures") or {}
    header = ["Structure", "Vol. (mL)", "Mass (g)", "Mean \u00b1 u (Gy)", "D98 (Gy)", "D2 (Gy)", "BED (Gy)",
              "u (%)"]
    rows = []
    for name in names:
        s = structures.get(name) or {}
        rows.append([fmt.structure_label(name), fmt.fixed(s.get("volume_ml"), 1), fmt.fixed(s.get("mass_g"), 1),
                     _mean_with_u(s.get("mean_gy"), s.get("uncertainty_gy"), s.get("uncertainty_pct")),
                     fmt.gy(s.get("d98_gy")), fmt.gy(s.get("d2_gy")), fmt.gy(s.get("bed_gy")),
                     fmt.pct(s.get("uncertainty_pct"))])
    emphasis = []
    if fmt.number(results.get("kidneys_mean_gy")) is not None:
        kidneys = [structures.get(n) or {} for n in fmt.kidney_names(names)]
        mass = sum(fmt.number(k.get("mass_g")) or 0.0 for k in kidneys)
        volume = sum(fmt.number(k.get("volume_ml")) or 0.0 for k in kidneys)
        emphasis.append(len(rows))
        rows.append(["Kidneys (both)", fmt.fixed(volume or None, 1), fmt.fixed(mass or None, 1),
                     _mean_with_u(results.get("kidneys_mean_gy"), None, results.get("kidneys_uncertainty_pct")),
                     fmt.MISSING, fmt.MISSING, fmt.gy(results.get("kidneys_bed_gy")),
                     fmt.pct(results.get("kidneys_uncertainty_pct"))])
    return Table(header, rows, ["l"] + ["r"] * 7, [1.35, 0.95, 0.9, 1.55, 0.95, 0.85, 0.95, 0.6], emphasis,
                 note="u: combined standard uncertainty (k = 1). Kidneys (both): mass-weighted over both "
                      "kidneys. D98/D2: minimum dose to the hottest 98 %/2 % of the volume.")


def pvc_table(results: Mapping, names: Sequence[str]) -> Table:
    """Partial-volume correction each structure used, why, and what it adds to the uncertainty."""
    structures = results.get("structures") or {}
    rows = []
    for name in names:
        s = structures.get(name) or {}
        bias = next((c.get("relative_pct") for c in s.get("uncertainty_budget") or []
                     if "under-estimate" in str(c.get("component", ""))), None)
        rows.append([fmt.structure_label(name), str(s.get("pvc_method") or fmt.MISSING),
                     str(s.get("pvc_reason") or fmt.MISSING), fmt.pct(bias) if bias is not None else "none"])
    return Table(["Structure", "PVC method", "Why", "Bias term (%)"], rows, ["l", "l", "l", "r"],
                 [1.35, 1.6, 4.0, 0.9],
                 note="Plain GTM and recovery coefficients rest on a uniform-uptake, assumed-PSF model and read low "
                      "where it is wrong; that under-estimate is carried in the uncertainty (one-sided, RMS).")


def _mean_with_u(mean: Any, u_gy: Any, u_pct: Any) -> str:
    text = fmt.gy(mean)
    if text == fmt.MISSING:
        return text
    u = fmt.number(u_gy)
    if u is None and fmt.number(u_pct) is not None:
        u = fmt.number(mean) * fmt.number(u_pct) / 100.0
    return text if u is None else f"{text} \u00b1 {fmt.gy(u)}"


def collect_warnings(results: Mapping) -> List[str]:
    """Run warnings plus registration warnings of each time point, without duplicates."""
    out = [str(w) for w in results.get("warnings") or []]
    for position, tp in enumerate(results.get("timepoints") or []):
        index = int(tp.get("index", position))
        for w in (tp.get("registration") or {}).get("warnings") or []:
            out.append(f"Time point {index + 1} registration: {w}")
    return list(dict.fromkeys(out))


def kidney_budget(results: Mapping) -> KidneyBudget:
    trial = results.get("trial")
    this_cycle = results.get("cycle")
    this_gy = fmt.number(results.get("kidneys_mean_gy"))
    if not isinstance(trial, Mapping):
        bars = [] if this_gy is None else [BudgetBar(_cycle_label(this_cycle) + " (this)", this_gy, "current")]
        return KidneyBudget(bars, DEFAULT_LIMIT_GY, this_gy, None if this_gy is None else DEFAULT_LIMIT_GY - this_gy,
                            None, "No trial record given: previous cycles are not included.", "", False)
    limit = fmt.number(trial.get("limit_gy")) or DEFAULT_LIMIT_GY
    bars: List[BudgetBar] = []
    seen_this = False
    for entry in trial.get("cycles") or []:
        gy = fmt.number(entry.get("kidney_gy"))
        if gy is None:
            continue
        current = this_cycle is not None and entry.get("cycle") == this_cycle
        seen_this = seen_this or current
        bars.append(BudgetBar(_cycle_label(entry.get("cycle")) + (" (this)" if current else ""), gy,
                              "current" if current else "previous"))
    if not seen_this and this_gy is not None:
        bars.append(BudgetBar(_cycle_label(this_cycle) + " (this)", this_gy, "current"))
    cumulative = fmt.number(trial.get("cumulative_kidney_gy"))
    if cumulative is None:
        cumulative = sum(b.kidney_gy for b in bars)
    remaining = fmt.number(trial.get("remaining_kidney_gy"))
    if remaining is None:
        remaining = limit - cumulative
    nxt = trial.get("next_cycle") if isinstance(trial.get("next_cycle"), Mapping) else {}
    allowed = nxt.get("allowed") if isinstance(nxt.get("allowed"), bool) else None
    projection_note = ""
    projected = fmt.number(nxt.get("projected_kidney_gy"))
    max_gbq = fmt.number(nxt.get("max_activity_gbq"))
    injected = fmt.number(results.get("injected_activity_mbq"))
    if projected is None and allowed and max_gbq and this_gy is not None and injected:
        gy_per_gbq = this_gy / (injected / 1000.0)
        projected = gy_per_gbq * max_gbq
        projection_note = (f"Projection: this cycle's {gy_per_gbq:.2f} Gy/GBq \u00d7 "
                           f"{max_gbq:.2f} GBq.")
    if projected is not None and allowed:
        bars.append(BudgetBar("Next (projected)", projected, "projected"))
    return KidneyBudget(bars, limit, cumulative, remaining, allowed, _next_text(nxt, allowed, limit),
                        projection_note, True)


def _cycle_label(cycle: Any) -> str:
    return f"Cycle {cycle}" if cycle is not None else "This cycle"


def _next_text(nxt: Mapping, allowed: Optional[bool], limit_gy: float) -> str:
    """The next-cycle advice, with the probability of exceeding the limit and the 95 % activity."""
    if allowed is None:
        return "No next-cycle recommendation in the trial record."
    if not allowed:
        return "Next cycle NOT allowed" + (f": {nxt.get('reason')}" if nxt.get("reason") else ".")
    parts = ["Next cycle allowed"]
    max_gbq = fmt.number(nxt.get("max_activity_gbq"))
    if max_gbq is not None:
        parts.append(f"up to {floor_activity_gbq(max_gbq, 2):.2f} GBq")  # never shown above the maximum
    window = [fmt.date_text(nxt.get(k)) for k in ("earliest_date", "latest_date") if nxt.get(k)]
    if len(window) == 2:
        parts.append(f"between {window[0]} and {window[1]}")
    text = " ".join(parts) + "."
    planning = uncertainty_sentence(nxt, limit_gy)
    if planning:
        text += f" {planning}"
    if nxt.get("reason"):
        text += f" {nxt.get('reason')}"
    return text


def budget_sentences(budget: KidneyBudget) -> List[str]:
    """The kidney budget in words: cumulative (or this cycle's) dose, the next-cycle advice, the projection."""
    out = []
    if budget.cumulative_gy is not None and budget.has_trial and budget.remaining_gy is not None:
        out.append(f"Cumulative {budget.cumulative_gy:.2f} Gy of the {budget.limit_gy:.0f} Gy limit, "
                   f"remaining {budget.remaining_gy:.2f} Gy.")
    elif budget.cumulative_gy is not None:
        out.append(f"This cycle {budget.cumulative_gy:.2f} Gy (limit {budget.limit_gy:.0f} Gy over all cycles).")
    out.append(budget.next_text)
    if budget.projection_note:
        out.append(budget.projection_note)
    return out
