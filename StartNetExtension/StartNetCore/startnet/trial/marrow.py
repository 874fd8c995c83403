"""Red-marrow dose per cycle and cumulative, beside the haematology the cycles record.

A cycle's marrow dose is what its ``results.json`` ``marrow`` block held when it was recorded: the
blood-based dose (top level of the block) and the image-based one (``marrow.image_based``), kept
as a short summary in the cycle's dosimetry provenance (``dosimetry.marrow``; no schema change).
Cumulative: per method, the sum over the patient's current cycles that have it, with the
cycles lacking it listed; the uncertainties add linearly (the model's assumptions, e.g. the
red-marrow-to-blood ratio or the mass model, are the same in every cycle: fully correlated).
Haematology: the lab values recorded before each cycle, under their eligibility names
(``startnet.trial.eligibility.resolve_key``: "PLT", "platelets" -> ``platelets_1e9_l``).
"""

from __future__ import annotations

import math
from typing import Any, Dict, List, Mapping, Optional

from startnet.errors import InputError

METHODS = ("blood_based", "image_based")
SUMMARY_KEYS = ("dose_gy", "uncertainty_gy", "self_dose_gy", "cross_dose_gy")
HAEMATOLOGY = ("hb_g_l", "platelets_1e9_l", "leukocytes_1e9_l", "neutrophils_1e9_l")


def _number(value: Any, where: str) -> Optional[float]:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value < 0:
        raise InputError(f"{where} must be a finite number >= 0, got {value!r}")
    return float(value)


def marrow_summary(block: Any, label: str) -> Optional[Dict[str, Any]]:
    """The short per-method summary of a results.json ``marrow`` block (None when it holds no dose)."""
    if block is None:
        return None
    if not isinstance(block, Mapping):
        raise InputError(f"{label}: 'marrow' must be an object")
    parts = {"blood_based": block if "dose_gy" in block else None, "image_based": block.get("image_based")}
    out: Dict[str, Any] = {}
    for method, part in parts.items():
        if part is None:
            continue
        if not isinstance(part, Mapping):
            raise InputError(f"{label}: 'marrow.{method}' must be an object")
        prefix = "marrow" if method == "blood_based" else "marrow.image_based"
        entry = {k: _number(part.get(k), f"{label}: {prefix}.{k}") for k in SUMMARY_KEYS}
        if entry["dose_gy"] is None:
            raise InputError(f"{label}: {prefix}.dose_gy is missing")
        entry["method"] = part.get("method")
        if method == "blood_based":
            entry["red_marrow_to_blood_ratio"] = part.get("red_marrow_to_blood_ratio")
        else:
            entry["mass_model"] = (part.get("mass_model") or {}).get("model")
            entry["voi_source"] = part.get("voi_source")
        out[method] = entry
    return out or None


def cycle_marrow(cycle: Mapping[str, Any]) -> Optional[Dict[str, Any]]:
    """The marrow summary recorded with a cycle (``cycle_dict``'s ``dosimetry``), or None."""
    dosimetry = cycle.get("dosimetry") or {}
    return dosimetry.get("marrow") if isinstance(dosimetry, Mapping) else None


def haematology(labs: Any) -> Dict[str, Optional[float]]:
    """Hb, platelets, leukocytes and neutrophils of a cycle's labs under their canonical names (None if absent)."""
    from startnet.trial.eligibility import resolve_key

    out: Dict[str, Optional[float]] = {k: None for k in HAEMATOLOGY}
    if isinstance(labs, Mapping):
        groups = [labs] + [v for v in labs.values() if isinstance(v, Mapping)]
        for group in groups:
            for key, value in group.items():
                name = resolve_key(str(key))
                if name in out and out[name] is None and isinstance(value, (int, float)) \
                        and not isinstance(value, bool):
                    out[name] = float(value)
    return out


def cumulative_marrow(cycles: List[Mapping[str, Any]]) -> Dict[str, Any]:
    """Per method: cumulative dose and uncertainty over the cycles that have it, and the cycles lacking it."""
    out: Dict[str, Any] = {}
    for method in METHODS:
        total, unc, included, missing = 0.0, 0.0, [], []
        for c in cycles:
            entry = (cycle_marrow(c) or {}).get(method)
            if entry is None:
                missing.append(c["cycle"])
                continue
            total += entry["dose_gy"]
            unc += entry.get("uncertainty_gy") or 0.0
            included.append(c["cycle"])
        out[method] = {"cumulative_gy": round(total, 6) if included else None,
                       "cumulative_uncertainty_gy": round(unc, 6) if included else None,
                       "cycles_included": included, "cycles_missing": missing}
    out["uncertainty_rule"] = "per-cycle uncertainties added linearly (same model assumptions every cycle)"
    return out


def marrow_rows(cycles: List[Mapping[str, Any]]) -> List[Dict[str, Any]]:
    """Per cycle: marrow dose of each method, running cumulative, and haematology (for tables and charts)."""
    rows, running = [], {m: 0.0 for m in METHODS}
    for c in cycles:
        marrow = cycle_marrow(c) or {}
        row: Dict[str, Any] = {"cycle": c["cycle"]}
        for method in METHODS:
            entry = marrow.get(method)
            dose = None if entry is None else entry["dose_gy"]
            if dose is not None:
                running[method] += dose
            row[f"marrow_{method}_gy"] = dose
            row[f"cumulative_marrow_{method}_gy"] = round(running[method], 6) if dose is not None else None
        row.update(haematology(c.get("labs")))
        rows.append(row)
    return rows
