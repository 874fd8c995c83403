"""TrialTracker's logic on MRML: patients, a cycles table, a cumulative-dose plot, recording cycles.

Used by the TrialTracker module; tested headless with slicer-core.
"""

from __future__ import annotations

import datetime as _dt
from pathlib import Path
from typing import Any, Dict, List, Optional, Tuple

from startnet.errors import InputError
from startnet.mrml.plots import add_chart, add_series
from startnet.mrml.tables import table_from_records
from startnet.trial.planning import floor_activity_gbq, uncertainty_sentence

LESION_COLUMNS = ("lesion", "status", "cycles_seen", "not_seen_in", "last_volume_ml", "cumulative_mean_gy",
                  "cumulative_bed_gy")
CYCLE_COLUMNS = ("cycle", "date", "activity_gbq", "kidney_gy", "kidney_left_gy", "kidney_right_gy",
                 "kidney_uncertainty_pct", "kidney_bed_gy", "cumulative_kidney_gy")
# red-marrow dose per method and blood counts per cycle (startnet.trial.marrow.marrow_rows), after CYCLE_COLUMNS
MARROW_COLUMNS = ("marrow_blood_based_gy", "cumulative_marrow_blood_based_gy", "marrow_image_based_gy",
                  "cumulative_marrow_image_based_gy", "hb_g_l", "platelets_1e9_l", "leukocytes_1e9_l",
                  "neutrophils_1e9_l")
MARROW_SERIES = (("cumulative_marrow_blood_based_gy", "cumulative marrow dose, blood-based", (0.17, 0.63, 0.17)),
                 ("cumulative_marrow_image_based_gy", "cumulative marrow dose, image-based", (0.58, 0.40, 0.74)))
COUNT_SERIES = (("platelets_1e9_l", "platelets", (0.55, 0.34, 0.29)),
                ("leukocytes_1e9_l", "leukocytes", (0.50, 0.50, 0.50)),
                ("neutrophils_1e9_l", "neutrophils", (0.09, 0.75, 0.81)))


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


# Node attributes that mark what the Trial Tracker made, so that showing a patient (again, or another
# patient; also after the module was reloaded or the scene saved and reopened) replaces the shown
# table and plot instead of adding more nodes: the scene holds one patient's view at a time.
PATIENT_ATTRIBUTE = "StartNet.TrialPatient"
ROLE_ATTRIBUTE = "StartNet.TrialRole"  # "cycles" (the cycles table) or "plot" (chart, its series and tables)
TAGGED_CLASSES = ("vtkMRMLTableNode", "vtkMRMLPlotChartNode", "vtkMRMLPlotSeriesNode")
CHART_ATTRIBUTE = "StartNet.TrialChart"  # which chart a "plot" chart node is, one of CHART_ORDER
CHART_ORDER = ("kidney", "marrow", "counts")

# Series colours (RGB 0-1): plot series are black unless coloured (vtkMRMLPlotSeriesNode.cxx, both 5.8.1/5.10.0)
CUMULATIVE_COLOUR = (0.12, 0.47, 0.71)
LIMIT_COLOUR = (0.84, 0.15, 0.16)
PROJECTED_COLOUR = (1.0, 0.5, 0.05)

# Parameters that older versions of the modules kept in the scene and that must not be saved with it
SCENE_SECRET_PARAMETERS = ("databaseUrl",)


def planning_numbers(status: Dict[str, Any]) -> Dict[str, str]:
    """The next cycle's planning numbers as the panel shows them (label -> text).

    ``probability_limit_exceeded`` (at the allowed maximum activity), ``max_activity_gbq_95``
    (the activity that keeps it <= 5 %) and ``last_cycle_expected`` from
    :func:`startnet.trial.summary.status`; activities are rounded down like the advice text.
    """
    nxt = status["next_cycle"]
    probability = nxt.get("probability_limit_exceeded")
    a95 = nxt.get("max_activity_gbq_95")
    activity = nxt.get("max_activity_gbq") or 0.0
    if not nxt["allowed"]:
        return {"P(limit exceeded)": "-", "Max activity (95 %)": "-", "Last cycle expected": "-"}
    return {
        "P(limit exceeded)": ("not computed" if probability is None else
                              f"{100.0 * probability:.1f} % at {floor_activity_gbq(activity, 2):.2f} GBq "
                              f"(limit {status['limit_gy']:g} Gy)"),
        "Max activity (95 %)": "not computed" if a95 is None else f"{floor_activity_gbq(a95, 2):.2f} GBq",
        "Last cycle expected": "yes" if nxt.get("last_cycle_expected") else "no",
    }


def forget_scene_secrets(parameter_node) -> List[str]:
    """Remove parameters that must not be saved with the scene (the trial database URL of older
    versions) from a vtkMRMLScriptedModuleNode; returns the names removed."""
    removed = []
    for name in SCENE_SECRET_PARAMETERS:
        if name in parameter_node.GetParameterNames():
            parameter_node.UnsetParameter(name)
            removed.append(name)
    return removed


def tagged_nodes(scene, role: str, patient_id: Optional[str] = None) -> List[Any]:
    """The nodes the Trial Tracker made in this role (for this patient, if given), in the scene."""
    found = []
    for class_name in TAGGED_CLASSES:
        nodes = scene.GetNodesByClass(class_name)
        for i in range(nodes.GetNumberOfItems()):
            node = nodes.GetItemAsObject(i)
            if node.GetAttribute(ROLE_ATTRIBUTE) == role and patient_id in (None, node.GetAttribute(PATIENT_ATTRIBUTE)):
                found.append(node)
    return found


def _tag(node, patient_id: str, role: str):
    node.SetAttribute(PATIENT_ATTRIBUTE, patient_id)
    node.SetAttribute(ROLE_ATTRIBUTE, role)
    return node


class TrialSceneLogic:
    """Scene-bound trial operations (the scene holds the tables and the plot).

    Opening a database never creates or upgrades it: that is :meth:`initialise` (the
    administrator's ``startnet trial --db URL init``).
    """

    def __init__(self, scene):
        self.scene = scene

    @staticmethod
    def _store(db_url: str, user: Optional[str] = None, initialise: bool = False):
        from startnet.trial.identity import current_user
        from startnet.trial.store import TrialStore

        if not db_url:
            raise InputError("no trial database given (SQLite file path or database URL)")
        acting = current_user(user) if user else None
        return TrialStore.initialise(db_url, acting) if initialise else TrialStore.open(db_url, acting)

    def initialise(self, db_url: str, user: Optional[str] = None) -> None:
        """Create or upgrade the trial database (an administrator action, not done by the panel)."""
        self._store(db_url, user, initialise=True).close()

    def enroll(self, db_url: str, patient_id: str, *, site: str, arm: int, enrolled: str,
               eligibility: Optional[Dict[str, Any]] = None, user: Optional[str] = None) -> Dict[str, Any]:
        store = self._store(db_url, user)
        try:
            return store.enroll(patient_id, site, int(arm), _parse_date(enrolled), eligibility)
        finally:
            store.close()

    def list_patients(self, db_url: str, site: Optional[str] = None) -> List[Dict[str, Any]]:
        """The patients of an existing trial database ("Connect": never creates one)."""
        from startnet.trial.summary import status

        store = self._store(db_url)
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

    def recorded_run_folders(self, db_url: str, patient_id: str) -> Tuple[List[str], List[str]]:
        """Output folders of the patient's recorded cycles (their results.json recorded as the dosimetry
        source), in cycle order, for accumulation; and a note per cycle whose run folder is not at hand
        (a typed dose, or a folder moved or on another machine)."""
        store = self._store(db_url)
        try:
            cycles = store.cycles(patient_id)
        finally:
            store.close()
        folders, missing = [], []
        for cycle in sorted(cycles, key=lambda c: c["cycle"]):
            source = cycle.get("dosimetry_source") or ""
            path = Path(source)
            if path.name == "results.json" and path.is_file() and (path.parent / "dose.nrrd").is_file():
                folders.append(str(path.parent))
            else:
                missing.append(f"cycle {cycle['cycle']}: no run folder at hand (dosimetry source: "
                               f"{source or 'not recorded'})")
        return folders, missing

    def show_patient(self, db_url: str, patient_id: str, table_node=None) -> Tuple[Any, str]:
        """Fill a cycles table and a cumulative-dose plot; returns (table node, recommendation).

        Without ``table_node`` the cycles table of an earlier showing is refilled.
        """
        table, chart, current = self.show_patient_nodes(db_url, patient_id, table_node)
        return table, recommendation_text(current)

    def show_patient_nodes(self, db_url: str, patient_id: str, table_node=None) -> Tuple[Any, Any, Dict[str, Any]]:
        """(cycles table, cumulative-dose chart, status) of a patient, replacing the nodes of an earlier showing."""
        current = self.status(db_url, patient_id)
        patient = current["patient"]
        if table_node is None:
            earlier = tagged_nodes(self.scene, "cycles")
            table_node = earlier[0] if earlier else None
        from startnet.trial.marrow import marrow_rows

        rows = [{**{column: cycle.get(column) for column in CYCLE_COLUMNS},
                 **{column: marrow.get(column) for column in MARROW_COLUMNS}}
                for cycle, marrow in zip(current["cycles"], marrow_rows(current["cycles"]))]
        table = table_from_records(self.scene, rows, f"Trial cycles {patient}", node=table_node,
                                   columns=list(CYCLE_COLUMNS) + list(MARROW_COLUMNS))
        table.SetName(f"Trial cycles {patient}")
        _tag(table, patient, "cycles")
        self.lesion_table(current)
        chart = self.cumulative_dose_plot(current, table)
        self.marrow_plots(current, table, rows)
        return table, chart, current

    def lesion_table(self, status: Dict[str, Any]):
        """Table of the patient's lesions (ID, status, cycles, cumulative dose and BED), replacing an earlier one;
        None when no cycle was recorded with lesion tracking."""
        for node in tagged_nodes(self.scene, "lesions"):
            self.scene.RemoveNode(node)
        rows = [{"lesion": lesion["id"], "status": lesion["status"],
                 "cycles_seen": ",".join(str(r["cycle"]) for r in lesion["per_cycle"]),
                 "not_seen_in": ",".join(str(n) for n in lesion["not_seen_in"]),
                 "last_volume_ml": lesion["per_cycle"][-1]["volume_ml"],
                 "cumulative_mean_gy": lesion["cumulative_mean_gy"], "cumulative_bed_gy": lesion["cumulative_bed_gy"]}
                for lesion in status.get("lesions") or []]
        if not rows:
            return None
        table = table_from_records(self.scene, rows, f"Trial lesions {status['patient']}", columns=list(LESION_COLUMNS))
        return _tag(table, status["patient"], "lesions")

    def marrow_plots(self, status: Dict[str, Any], table, rows: List[Dict[str, Any]]) -> List[Any]:
        """Charts of the cumulative red-marrow dose per method (Gy) and of the blood counts (10^9/L) over the
        cycles, from the cycles table; only those with values (none for a patient without marrow doses or labs).
        They are replaced with the kidney plot on the next showing."""
        patient_id = status["patient"]
        charts = []
        for kind, title, y_title, series in (
                ("marrow", "Cumulative marrow dose", "cumulative red-marrow absorbed dose (Gy)", MARROW_SERIES),
                ("counts", "Blood counts before each cycle", "blood count (10^9/L)", COUNT_SERIES)):
            present = [s for s in series if any(r.get(s[0]) is not None for r in rows)]
            if not present:
                continue
            chart = _tag(add_chart(self.scene, f"{title} {patient_id}", f"{title}, {patient_id}", "cycle", y_title),
                         patient_id, "plot")
            chart.SetAttribute(CHART_ATTRIBUTE, kind)
            for column, name, colour in present:
                _tag(add_series(self.scene, chart, table, "cycle", column, name, marker="circle", colour=colour),
                     patient_id, "plot")
            charts.append(chart)
        return charts

    def cumulative_dose_plot(self, status: Dict[str, Any], table):
        """Plot chart: cumulative kidney dose per cycle, the limit, and the projected next cycle."""
        patient_id = status["patient"]
        for node in tagged_nodes(self.scene, "plot"):  # the earlier plot (this or another patient) is replaced
            self.scene.RemoveNode(node)

        def add(node):
            return _tag(node, patient_id, "plot")

        n_cycles = len(status["cycles"])
        limit_rows = [{"cycle": c, "limit_gy": status["limit_gy"]} for c in (0, max(n_cycles + 1, 1))]
        limit_table = add(table_from_records(self.scene, limit_rows, f"Kidney limit {patient_id}"))
        chart = add(add_chart(self.scene, f"Cumulative kidney dose {patient_id}",
                              f"Cumulative kidney absorbed dose, {patient_id}", "cycle",
                              "cumulative kidney absorbed dose (Gy)"))
        chart.SetAttribute(CHART_ATTRIBUTE, "kidney")
        add(add_series(self.scene, chart, table, "cycle", "cumulative_kidney_gy", "cumulative kidney dose",
                       marker="circle", colour=CUMULATIVE_COLOUR))
        limit = add(add_series(self.scene, chart, limit_table, "cycle", "limit_gy",
                               f"limit {status['limit_gy']:g} Gy", marker="none", colour=LIMIT_COLOUR))
        limit.SetLineStyle(limit.LineStyleDash)
        nxt = status["next_cycle"]
        if nxt["allowed"] and nxt.get("planning_gy_per_gbq"):
            projected = status["cumulative_kidney_gy"] + nxt["max_activity_gbq"] * nxt["planning_gy_per_gbq"]
            rows = [{"cycle": n_cycles, "projected_cumulative_gy": status["cumulative_kidney_gy"]}] if n_cycles \
                else []
            rows.append({"cycle": nxt["cycle"], "projected_cumulative_gy": projected})
            projected_table = add(table_from_records(self.scene, rows, f"Projected next cycle {patient_id}"))
            series = add(add_series(self.scene, chart, projected_table, "cycle", "projected_cumulative_gy",
                                    "projected next cycle (max activity)", marker="square", colour=PROJECTED_COLOUR))
            series.SetLineStyle(series.LineStyleDot)
        return chart

    def preview_cycle_from_results(self, patient_id: str, cycle: int, activity_gbq: float,
                                   results: Dict[str, Any]) -> List[str]:
        """Warnings that recording this Dosimetry result would give; nothing is written."""
        from startnet.trial.preview import preview_cycle_results

        return preview_cycle_results(results, patient_id, int(cycle), float(activity_gbq),
                                     "Dosimetry module (Slicer)")

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
