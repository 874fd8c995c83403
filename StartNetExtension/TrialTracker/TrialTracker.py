"""TrialTracker: START-NET patients, cycles and cumulative kidney dose against the protocol.

Thin Slicer layer over :class:`startnet.mrml.trial_logic.TrialSceneLogic` (tested headless with
slicer-core), which uses the ``startnet.trial`` database and protocol rules.
"""

import unittest
from typing import Annotated

import slicer
from slicer import vtkMRMLTableNode
from slicer.parameterNodeWrapper import WithinRange, parameterNodeWrapper
from slicer.ScriptedLoadableModule import (
    ScriptedLoadableModule,
    ScriptedLoadableModuleLogic,
    ScriptedLoadableModuleTest,
)
from StartNetCoreLib.dependencies import ensure_dependencies
from StartNetCoreLib.widget import StartNetModuleWidget


class TrialTracker(ScriptedLoadableModule):
    def __init__(self, parent):
        ScriptedLoadableModule.__init__(self, parent)
        self.parent.title = "Trial Tracker (START-NET)"
        self.parent.categories = ["Nuclear Medicine.START-NET"]
        self.parent.dependencies = ["StartNetCore"]
        self.parent.contributors = ["START-NET dosimetry developers"]
        self.parent.helpText = (
            "Records each START-NET patient's arm, cycles, administered activity and per-cycle kidney dose in a "
            "shared database (SQLite or PostgreSQL, with audit trail), plots cumulative kidney dose against the "
            "30 Gy limit and says whether another cycle is allowed, its maximum activity and date window."
        )
        self.parent.acknowledgementText = "START-NET trial (NCT05387603)."


@parameterNodeWrapper
class TrialTrackerParameterNode:
    databaseUrl: str = ""
    userName: str = ""
    siteFilter: str = ""
    patientId: str = ""
    cyclesTable: vtkMRMLTableNode
    cycleNumber: Annotated[int, WithinRange(1, 20)] = 1
    cycleDate: str = ""
    activityGBq: Annotated[float, WithinRange(0.0, 15.0)] = 7.5
    kidneyDoseGy: Annotated[float, WithinRange(0.0, 100.0)] = 0.0
    deviationReason: str = ""


class TrialTrackerWidget(StartNetModuleWidget):
    MODULE_NAME = "TrialTracker"

    def __init__(self, parent=None):
        StartNetModuleWidget.__init__(self, parent)
        self.logicClass = TrialTrackerLogic
        self._dosimetryResults = None  # the Dosimetry result the kidney dose was taken from

    def connectSignals(self):
        self.ui.refreshButton.connect("clicked(bool)", self.onRefresh)
        self.ui.recordCycleButton.connect("clicked(bool)", self.onRecordCycle)
        self.ui.useDosimetryButton.connect("clicked(bool)", self.onUseDosimetry)
        self.ui.patientsTableWidget.connect("itemSelectionChanged()", self.onPatientSelected)

    def updateGuiState(self, caller=None, event=None):
        p = self._parameterNode
        self.ui.refreshButton.enabled = bool(p and p.databaseUrl)
        self.ui.recordCycleButton.enabled = bool(p and p.databaseUrl and p.patientId and p.cycleDate)

    def onRefresh(self):
        if not ensure_dependencies(["sqlalchemy", "alembic"]):
            return
        p = self._parameterNode
        rows = self.run("Could not open the trial database.", self.logic.listPatients, p.databaseUrl, p.siteFilter)
        if rows is None:
            return
        import qt

        headers = ["patient_id", "site", "arm", "cycles", "cumulative_kidney_gy", "next_allowed"]
        widget = self.ui.patientsTableWidget
        widget.clear()
        widget.setColumnCount(len(headers))
        widget.setHorizontalHeaderLabels(headers)
        widget.setRowCount(len(rows))
        for r, row in enumerate(rows):
            for c, key in enumerate(headers):
                widget.setItem(r, c, qt.QTableWidgetItem(str(row.get(key, ""))))
        self.showPatient()

    def onPatientSelected(self):
        items = self.ui.patientsTableWidget.selectedItems()
        if items:
            self._parameterNode.patientId = self.ui.patientsTableWidget.item(items[0].row(), 0).text()
            self.showPatient()

    def showPatient(self):
        p = self._parameterNode
        if not (p.databaseUrl and p.patientId):
            return
        shown = self.run("Could not read the patient.", self.logic.showPatient, p.databaseUrl, p.patientId,
                         p.cyclesTable)
        if shown:
            table, recommendation = shown
            p.cyclesTable = table
            self.ui.recommendationLabel.text = recommendation

    def onUseDosimetry(self):
        results = self.run("No Dosimetry result available.", self.logic.dosimetryResults)
        if results:
            self._dosimetryResults = results
            self._parameterNode.kidneyDoseGy = float(results["kidneys_mean_gy"])

    def _resultsForTypedDose(self):
        """The Dosimetry result, if the dose field still shows its kidney dose (to the field's 0.01 Gy)."""
        results = self._dosimetryResults
        if results and abs(float(results["kidneys_mean_gy"]) - self._parameterNode.kidneyDoseGy) <= 0.005:
            return results
        return None

    def onRecordCycle(self):
        p = self._parameterNode
        results = self._resultsForTypedDose()
        if results is not None:  # full result: left/right, uncertainty, BED and provenance are kept
            message = self.run("Recording the cycle failed.", self.logic.recordCycleFromResults, p.databaseUrl,
                               p.patientId, p.cycleNumber, p.cycleDate, p.activityGBq, results,
                               p.deviationReason or None, p.userName or None)
        else:
            message = self.run("Recording the cycle failed.", self.logic.recordCycle, p.databaseUrl, p.patientId,
                               p.cycleNumber, p.cycleDate, p.activityGBq, p.kidneyDoseGy,
                               p.deviationReason or None, p.userName or None)
        if message:
            slicer.util.infoDisplay(message, windowTitle="START-NET trial")
            self.showPatient()


class TrialTrackerLogic(ScriptedLoadableModuleLogic):
    def __init__(self):
        ScriptedLoadableModuleLogic.__init__(self)
        from startnet.mrml.trial_logic import TrialSceneLogic

        self.core = TrialSceneLogic(slicer.mrmlScene)

    def getParameterNode(self):
        return TrialTrackerParameterNode(super().getParameterNode())

    def listPatients(self, databaseUrl, siteFilter=""):
        return self.core.list_patients(databaseUrl, site=siteFilter or None)

    def showPatient(self, databaseUrl, patientId, tableNode=None):
        return self.core.show_patient(databaseUrl, patientId, table_node=tableNode)

    def recordCycle(self, databaseUrl, patientId, cycle, date, activityGBq, kidneyDoseGy, deviationReason=None,
                    user=None):
        return self.core.record_cycle(databaseUrl, patientId, cycle, date, activityGBq, kidneyDoseGy,
                                      deviation_reason=deviationReason, user=user)

    def recordCycleFromResults(self, databaseUrl, patientId, cycle, date, activityGBq, results,
                               deviationReason=None, user=None):
        """Record a cycle with everything the Dosimetry result holds (kidney left/right/mean dose,
        uncertainty, BED, provenance); returns the next-cycle recommendation."""
        return self.core.record_cycle_from_results(databaseUrl, patientId, cycle, date, activityGBq, results,
                                                   deviation_reason=deviationReason, user=user)

    def dosimetryResults(self):
        """The results dict of the last Dosimetry run in this session."""
        dosimetry = slicer.modules.dosimetry.widgetRepresentation().self().logic
        results = dosimetry.lastResults
        if not results or results.get("kidneys_mean_gy") is None:
            raise ValueError("Run the Dosimetry module on this cycle (with both kidneys segmented) first.")
        return results

    def kidneyDoseFromDosimetry(self):
        return float(self.dosimetryResults()["kidneys_mean_gy"])


class TrialTrackerTest(ScriptedLoadableModuleTest):
    def setUp(self):
        slicer.mrmlScene.Clear()

    def runTest(self):
        self.setUp()
        self.test_next_cycle_after_28_gy()
        self.setUp()
        self.test_record_from_dosimetry_result()

    def test_next_cycle_after_28_gy(self):
        import os
        import tempfile

        with tempfile.TemporaryDirectory() as folder:
            url = "sqlite:///" + os.path.join(folder, "trial.db")
            logic = TrialTrackerLogic()
            logic.core.enroll(url, "SN-900", site="Uppsala", arm=2, enrolled="2026-01-05")
            cycles = [("2026-01-12", 7.5, 5.0), ("2026-03-23", 7.5, 5.0), ("2026-06-01", 7.5, 5.0),
                      ("2026-08-10", 7.5, 5.0), ("2026-10-19", 7.5, 5.0), ("2026-12-28", 7.5, 3.0)]
            for number, (date, activity, dose) in enumerate(cycles, start=1):
                logic.recordCycle(url, "SN-900", number, date, activity, dose)
            table, recommendation = logic.showPatient(url, "SN-900")
            self.assertEqual(table.GetNumberOfRows(), 6)
            self.assertIn("5.00 GBq", recommendation)

    def test_record_from_dosimetry_result(self):
        import os
        import tempfile

        from startnet.trial.store import TrialStore

        results = {"patient_id": "SN-901", "cycle": 1, "injected_activity_mbq": 7400.0, "kidneys_mean_gy": 2.96,
                   "kidneys_uncertainty_pct": 9.0, "kidneys_bed_gy": 3.3,
                   "structures": {"kidney_left": {"mean_gy": 2.8}, "kidney_right": {"mean_gy": 3.1}}}
        with tempfile.TemporaryDirectory() as folder:
            url = "sqlite:///" + os.path.join(folder, "trial.db")
            logic = TrialTrackerLogic()
            logic.core.enroll(url, "SN-901", site="Skåne", arm=2, enrolled="2026-01-05")
            recommendation = logic.recordCycleFromResults(url, "SN-901", 1, "2026-01-12", 7.4, results)
            self.assertIn("Next cycle 2 allowed", recommendation)
            store = TrialStore.open(url)
            cycle = store.cycles("SN-901")[0]
            store.close()
            self.assertEqual((cycle["kidney_left_gy"], cycle["kidney_right_gy"]), (2.8, 3.1))
            self.assertEqual((cycle["kidney_uncertainty_pct"], cycle["kidney_bed_gy"]), (9.0, 3.3))


if __name__ == "__main__":
    unittest.main()
