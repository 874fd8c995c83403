"""The report's bone-marrow section: both methods' doses and the assumptions they rest on.

From ``results.json`` ``marrow`` (blood-based at its top level, image-based under ``image_based``);
absent when the run computed no marrow dose. The HTML shows it as a section; the PDF on a second
page (the first page's layout is full; :mod:`startnet.report.pdf_page2`).
"""

from __future__ import annotations

import html
from typing import Any, Callable, List, Mapping, Optional

from startnet.report import fmt
from startnet.report.tables import Table

TITLE = "Red bone-marrow absorbed dose"


def _methods(results: Mapping) -> List[Mapping]:
    marrow = results.get("marrow") or {}
    parts = [marrow] if "dose_gy" in marrow else []
    if isinstance(marrow.get("image_based"), Mapping):
        parts.append(marrow["image_based"])
    return parts


def _gy(value: Any) -> str:
    number = fmt.number(value)
    return fmt.MISSING if number is None else f"{number:.3f}"


def marrow_table(results: Mapping) -> Optional[Table]:
    """Method, dose +- u, self- and cross-dose, and the key parameter per method; None without marrow doses."""
    parts = _methods(results)
    if not parts:
        return None
    rows = []
    for part in parts:
        if "mass_model" in part:
            model = part.get("mass_model") or {}
            mass = fmt.number(part.get("red_marrow_mass_g"))
            key = f"mass model {model.get('model', fmt.MISSING)}, " + (
                fmt.MISSING if mass is None else f"{mass:.1f}") + " g red marrow"
            if model.get("verified") is False:
                key += " (unverified)"
        else:
            key = f"red-marrow-to-blood ratio {part.get('red_marrow_to_blood_ratio', fmt.MISSING)}"
        u = fmt.number(part.get("uncertainty_pct"))
        rows.append([str(part.get("method") or fmt.MISSING), _gy(part.get("dose_gy")),
                     fmt.MISSING if u is None else f"{u:.0f} %", _gy(part.get("self_dose_gy")),
                     _gy(part.get("cross_dose_gy")), key])
    return Table(["Method", "Dose (Gy)", "u (k=1)", "Self (Gy)", "Cross (Gy)", "Model"], rows,
                 ["l", "r", "r", "r", "r", "l"], [2.6, 0.9, 0.8, 0.9, 0.9, 3.2],
                 note="Research estimates; the assumptions below are recorded in results.json (marrow).")


def marrow_assumptions(results: Mapping) -> List[str]:
    """One line per assumption of each method (``assumptions`` of each block), prefixed by the method."""
    lines = []
    for part in _methods(results):
        label = "image-based" if "mass_model" in part else "blood-based"
        for key, text in (part.get("assumptions") or {}).items():
            lines.append(f"{label}, {key.replace('_', ' ')}: {text}")
        model = part.get("mass_model") or {}
        if model.get("sources"):
            lines.append(f"{label}, mass-model sources: {model['sources']}"
                         + (" (not verified against the publications)" if model.get("verified") is False else ""))
    return lines


def marrow_html(results: Mapping, table_html: Callable[[Table], str]) -> str:
    """The HTML section (empty without marrow doses); ``table_html`` renders a Table as the report does."""
    table = marrow_table(results)
    if table is None:
        return ""
    items = "".join(f"<li>{html.escape(line)}</li>" for line in marrow_assumptions(results))
    return f'<h2>{TITLE}</h2>{table_html(table)}<p class="note">Assumptions:</p><ul class="note">{items}</ul>'
