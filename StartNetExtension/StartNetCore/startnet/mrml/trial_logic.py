"""TrialTracker's logic on MRML: patients, a cycles table, a cumulative-dose plot, recording cycles.

Used by the TrialTracker module; tested headless with slicer-core.
"""

from __future__ import annotations

import datetime as _dt
from typing import Any, Dict, List, Optional, Tuple

from startnet.errors import InputError
from startnet.mrml.plots import add_chart, add_series
from startnet.mrml.tables import table_from_records
from startnet.trial.planning import floor_activity_gbq, uncertainty_sentence

CYCLE_COLUMNS = ("cycle", "date", "activity_gbq", "kidney_gy", "kidney_left_gy", "kidney_right_gy",
                 "kidney_uncertainty_pct", "kidney_bed_gy", "cumulative_kidney_gy")


def _parse_date(text: str) -> _dt.date:
    try:
        return _dt.date.fromisoformat(str(text).strip())
    except ValueError:
        raise InputError(f"date {text!r}: expected YYYY-MM-DD") from None


def recommendation_text(status: Dict[str, Any]) -> str:
    """The next-cycle advice as one readable paragraph."""
    nxt = status["next_cycle"]
    head = (f"Cumulative kidney dose {status['cumulative_kidney_gy']:.2f} Gy of {status['limit_gy']:.1f} Gy "
            f"(remaining {status['remaining_kidney_gy']:.2f} Gy), arm {status['arm']}, "
            f"{len(status['cycles'])} cycle(s). ")
    planning = uncertainty_sentence(nxt, status["limit_gy"])
    planning = f" {planning}" if planning else ""
    if not nxt["allowed"]:
        return head + f"Next cycle NOT allowed: {nxt['reason']}"
    return head + (f"Next cycle {nxt['cycle']} allowed: at most {floor_activity_gbq(nxt['max_activity_gbq'], 2):.2f} "
                   f"GBq, between {nxt['earliest_date']} and {nxt['latest_date']}.{planning} ({nxt['reason']})")


class TrialSceneLogic:
    """Scene-bound trial operations (the scene holds the tables and the plot)."""

    def __init__(self, scene):
        self.scene = scene
        self._plot_nodes: Dict[str, List[Any]] = {}  # patient -> nodes of its current plot

    def _add(self, patient_id: str, node):
        self._plot_nodes.setdefault(patient_id, []).append(node)
        return node

    @staticmethod
    def _store(db_url: str, user: Optional[str] = None, initialise: bool = False):
        from startnet.trial.identity import current_user
        from startnet.trial.store import TrialStore

        if not db_url:
            raise InputError("no trial database given (SQLite file path or database URL)")
        acting = current_user(user) if user else None
        return TrialStore.initialise(db_url, acting) if initialise else TrialStore.open(db_url, acting)

    def enroll(self, db_url: str, patient_id: str, *, site: str, arm: int, enrolled: str,
               eligibility: Optional[Dict[str, Any]] = None, user: Optional[str] = None) -> Dict[str, Any]:
        store = self._store(db_url, user, initialise=True)
        try:
            return store.enroll(patient_id, site, int(arm), _parse_date(enrolled), eligibility)
        finally:
            store.close()

    def list_patients(self, db_url: str, site: Optional[str] = None) -> List[Dict[str, Any]]:
        from startnet.trial.summary import status

        store = self._store(db_url, initialise=True)
        try:
            rows = []
            for patient in store.patients(site):
                current = status(store, patient["patient"])
                rows.append({"patient_id": patient["patient"], "site": patient["site"], "arm": patient["arm"],
                             "cycles": len(current["cycles"]),
                             "cumulative_kidney_gy": round(current["cumulative_kidney_gy"], 2),
                             "next_allowed": current["next_cycle"]["allowed"]})
            return rows
        finally:
            store.close()

    def status(self, db_url: str, patient_id: str) -> Dict[str, Any]:
        from startnet.trial.summary import status

        store = self._store(db_url)
        try:
            return status(store, patient_id)
        finally:
            store.close()

    def show_patient(self, db_url: str, patient_id: str, table_node=None) -> Tuple[Any, str]:
        """Fill a cycles table and a cumulative-dose plot; returns (table node, recommendation)."""
        current = self.status(db_url, patient_id)
        rows = [{column: cycle.get(column) for column in CYCLE_COLUMNS} for cycle in current["cycles"]]
        table = table_from_records(self.scene, rows, f"Trial cycles {patient_id}", node=table_node,
                                   columns=list(CYCLE_COLUMNS))
        self.cumulative_dose_plot(current, table)
        return table, recommendation_text(current)

    def cumulative_dose_plot(self, status: Dict[str, Any], table):
        """Plot chart: cumulative kidney dose per cycle, the limit, and the projected next cycle."""
        patient_id = status["patient"]
        for node in self._plot_nodes.pop(patient_id, []):  # showing a patient again replaces its plot
            if self.scene.IsNodePresent(node):
                self.scene.RemoveNode(node)
        projected = []
        nxt = status["next_cycle"]
        if nxt["allowed"] and nxt.get("planning_gy_per_gbq"):
            projected = [{"cycle": nxt["cycle"], "projected_cumulative_gy": status["cumulative_kidney_gy"]
                          + nxt["max_activity_gbq"] * nxt["planning_gy_per_gbq"]}]
        limit_rows = [{"cycle": c, "limit_gy": status["limit_gy"]} for c in (0, max(len(status["cycles"]) + 1, 1))]
        limit_table = self._add(patient_id, table_from_records(self.scene, limit_rows, "Kidney limit"))
        chart = self._add(patient_id, add_chart(self.scene, f"Cumulative kidney dose {patient_id}",
                                                "Cumulative kidney absorbed dose", "cycle", "Gy"))
        for name, source, column, colour in (("cumulative", table, "cumulative_kidney_gy", (0.85, 0.3, 0.1)),
                                             ("limit", limit_table, "limit_gy", (0.2, 0.2, 0.2))):
            self._add(patient_id, add_series(self.scene, chart, source, "cycle", column, name, colour=colour))
        if projected:
            projected_table = self._add(patient_id, table_from_records(self.scene, projected, "Projected next cycle"))
            self._add(patient_id, add_series(self.scene, chart, projected_table, "cycle", "projected_cumulative_gy",
                                             "projected next cycle", marker="square"))
        return chart

    def record_cycle_from_results(self, db_url: str, patient_id: str, cycle: int, date: str, activity_gbq: float,
                                  results: Dict[str, Any], *, deviation_reason: Optional[str] = None,
                                  user: Optional[str] = None) -> str:
        """Record a cycle with everything a Dosimetry result holds; returns warnings and the advice."""
        from startnet.cycle.trial_record import record_cycle_results

        status, warnings = record_cycle_results(db_url, patient_id, int(cycle), _parse_date(date),
                                                float(activity_gbq), results, "Dosimetry module (Slicer)",
                                                deviation_reason=deviation_reason, user=user)
        return "".join(f"Warning: {w}.\n" for w in warnings) + recommendation_text(status)

    def record_cycle(self, db_url: str, patient_id: str, cycle: int, date: str, activity_gbq: float,
                     kidney_gy: float, *, deviation_reason: Optional[str] = None, user: Optional[str] = None) -> str:
        from startnet.trial.records import CycleEntry

        if not kidney_gy > 0:
            raise InputError("kidney dose must be > 0 Gy: take it from the Dosimetry result or type it")
        store = self._store(db_url, user)
        try:
            entry = CycleEntry(cycle=int(cycle), date=_parse_date(date), activity_gbq=float(activity_gbq),
                               kidney_gy=float(kidney_gy), dosimetry_source="TrialTracker (Slicer)")
            store.add_cycle(patient_id, entry, deviation_reason=deviation_reason)
        finally:
            store.close()
        return recommendation_text(self.status(db_url, patient_id))
