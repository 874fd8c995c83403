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
from StartNetCoreLib.settings import setTrialDatabaseUrl, trialDatabaseUrl
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
            "30 Gy limit and says whether another cycle is allowed, its maximum activity and date window. "
            "Connect opens an existing database only (the administrator creates or upgrades it with "
            "`startnet trial --db URL init`). The database location is kept in Slicer's settings, not in the scene; "
            "PostgreSQL passwords come from ~/.pgpass (or PGPASSFILE / a pg_service.conf service), never from the URL."
        )
        self.parent.acknowledgementText = "START-NET trial (NCT05387603)."
        # a scene saved showing the trial layout keeps only its id: register it again after loading
        slicer.app.connect("startupCompleted()", observeSceneForTrialLayout)


def observeSceneForTrialLayout():
    """After each scene load, show the Trial Tracker's charts again if the scene was saved in its layout."""

    def restore(caller=None, event=None):
        from startnet.mrml.trial_layout import restore_trial_layout

        restore_trial_layout(slicer.app.applicationLogic())

    slicer.mrmlScene.AddObserver(slicer.mrmlScene.EndImportEvent, restore)


@parameterNodeWrapper
class TrialTrackerParameterNode:
    # The trial database URL is NOT a parameter: it is kept in Slicer's application settings
    # (StartNetCoreLib.settings), without password, so that it is never saved with the scene.
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

    def setup(self):
        StartNetModuleWidget.setup(self)
        self.ui.databaseUrlLineEdit.text = trialDatabaseUrl()
        # an older scene may hold the database URL in its parameter node: drop it once the scene is loaded
        self.addObserver(slicer.mrmlScene, slicer.mrmlScene.EndImportEvent, self.onSceneEndImport)
        self.updateGuiState()

    def connectSignals(self):
        self.ui.refreshButton.connect("clicked(bool)", self.onRefresh)
        self.ui.showPatientButton.connect("clicked(bool)", self.onShowPatient)
        self.ui.recordCycleButton.connect("clicked(bool)", self.onRecordCycle)
        self.ui.useDosimetryButton.connect("clicked(bool)", self.onUseDosimetry)
        self.ui.patientsTableWidget.connect("itemSelectionChanged()", self.onPatientSelected)
        self.ui.databaseUrlLineEdit.connect("textChanged(QString)", lambda _text: self.updateGuiState())
        self.ui.databaseUrlLineEdit.connect("editingFinished()", self.onDatabaseUrlEdited)

    def onSceneEndImport(self, caller=None, event=None):
        self.logic.getParameterNode()

    def updateGuiState(self, caller=None, event=None):
        p = self._parameterNode
        if self.ui is None:
            return
        database = bool(self.ui.databaseUrlLineEdit.text.strip())
        patient = bool(p and database and p.patientId.strip())
        dose = bool(p and (p.kidneyDoseGy > 0 or self._resultsForTypedDose() is not None))
        self.ui.refreshButton.enabled = database
        self.ui.showPatientButton.enabled = patient
        self.ui.recordCycleButton.enabled = bool(patient and p.cycleDate.strip() and p.activityGBq > 0 and dose)
        self.ui.useDosimetryButton.enabled = hasattr(slicer.modules, "dosimetry")

    # -- errors: slicer.util.tryWithErrorDisplay shows the error, then RE-RAISES it (util.py, Slicer
    #    5.8.1 and 5.10.0), so ``self.run`` never returns None on error; handlers use ``_call`` and
    #    continue only when it says the call succeeded.
    def _call(self, errorMessage, function, *args, **kwargs):
        """(True, result), or (False, None) after the error was shown (and logged): ``self.run``."""
        return self.run(errorMessage, function, *args, **kwargs)

    def _storeDatabaseUrl(self):
        """Check the typed database, store it in the application settings; returns it."""
        from startnet.trial.urls import has_password, url_without_password

        text = self.ui.databaseUrlLineEdit.text
        if has_password(text):  # refused below; do not leave the password on screen either
            self.ui.databaseUrlLineEdit.text = url_without_password(text)
        return setTrialDatabaseUrl(text)

    def onDatabaseUrlEdited(self):
        text = self.ui.databaseUrlLineEdit.text.strip()
        if text and text != trialDatabaseUrl():
            self._call("The trial database was not stored.", self._storeDatabaseUrl)

    def onRefresh(self):
        if not ensure_dependencies(["sqlalchemy", "alembic"]):
            return
        ok, url = self._call("The trial database was not stored.", self._storeDatabaseUrl)
        if not ok:
            return
        p = self._parameterNode
        ok, rows = self._call("Could not open the trial database.", self.logic.listPatients, url, p.siteFilter)
        if not ok:
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

    def onShowPatient(self):
        if ensure_dependencies(["sqlalchemy", "alembic"]):
            self.showPatient()

    def _showStatus(self, status):
        from startnet.mrml.trial_logic import planning_numbers, recommendation_text

        self.ui.recommendationLabel.text = recommendation_text(status) if status else ""
        numbers = planning_numbers(status) if status else {}
        self.ui.probabilityExceededLabel.text = numbers.get("P(limit exceeded)", "")
        self.ui.maxActivity95Label.text = numbers.get("Max activity (95 %)", "")
        self.ui.lastCycleExpectedLabel.text = numbers.get("Last cycle expected", "")

    def showPatient(self):
        """Cycles table and the patient's charts (kidney; marrow and blood counts when recorded), each chart in
        its own plot view of the Trial Tracker layout."""
        p = self._parameterNode
        url = trialDatabaseUrl()
        if not (url and p.patientId.strip()):
            return
        ok, shown = self._call("Could not read the patient.", self.logic.showPatientNodes, url, p.patientId.strip(),
                               p.cyclesTable)
        if not ok:
            self._showStatus(None)
            return
        table, chart, status = shown
        p.cyclesTable = table
        self._showStatus(status)
        from startnet.mrml.trial_layout import show_trial_layout

        show_trial_layout(slicer.app.applicationLogic())

    def onUseDosimetry(self):
        ok, results = self._call("No Dosimetry result available.", self.logic.dosimetryResults)
        if ok:
            self._dosimetryResults = results
            self._parameterNode.kidneyDoseGy = float(results["kidneys_mean_gy"])

    def _resultsForTypedDose(self):
        """The Dosimetry result, if the dose field still shows its kidney dose (to the field's 0.01 Gy)."""
        results = self._dosimetryResults
        p = self._parameterNode
        if results and p and abs(float(results["kidneys_mean_gy"]) - p.kidneyDoseGy) <= 0.005:
            return results
        return None

    def onRecordCycle(self):
        if not ensure_dependencies(["sqlalchemy", "alembic"]):
            return
        ok, url = self._call("The trial database was not stored.", self._storeDatabaseUrl)
        if not ok:
            return
        p = self._parameterNode
        patientId = p.patientId.strip()
        results = self._resultsForTypedDose()
        if results is not None:  # full result: left/right, uncertainty, BED and provenance are kept
            ok, warnings = self._call("The Dosimetry result cannot be recorded.", self.logic.previewCycleFromResults,
                                      patientId, p.cycleNumber, p.activityGBq, results)
            if not ok:
                return
            if warnings and not slicer.util.confirmOkCancelDisplay(
                    "Recording this Dosimetry result as cycle {} of patient {}:\n\n{}\n\nRecord it anyway? The "
                    "warnings are stored with the cycle.".format(p.cycleNumber, patientId,
                                                                 "\n".join(f"- {w}" for w in warnings)),
                    windowTitle="START-NET trial: check before recording"):
                slicer.util.showStatusMessage("Cycle not recorded.", 5000)
                return
            ok, message = self._call("Recording the cycle failed.", self.logic.recordCycleFromResults, url,
                                     patientId, p.cycleNumber, p.cycleDate, p.activityGBq, results,
                                     p.deviationReason or None, p.userName or None)
        else:
            ok, message = self._call("Recording the cycle failed.", self.logic.recordCycle, url, patientId,
                                     p.cycleNumber, p.cycleDate, p.activityGBq, p.kidneyDoseGy,
                                     p.deviationReason or None, p.userName or None)
        if ok:
            slicer.util.infoDisplay(message, windowTitle="START-NET trial")
            self.showPatient()


class TrialTrackerLogic(ScriptedLoadableModuleLogic):
    def __init__(self):
        ScriptedLoadableModuleLogic.__init__(self)
        from startnet.mrml.trial_logic import TrialSceneLogic

        self.core = TrialSceneLogic(slicer.mrmlScene)

    def getParameterNode(self):
        from startnet.mrml.trial_logic import forget_scene_secrets

        node = super().getParameterNode()
        forget_scene_secrets(node)  # older versions saved the database URL with the scene
        return TrialTrackerParameterNode(node)

    def listPatients(self, databaseUrl, siteFilter=""):
        """Patients of an existing trial database; never creates or upgrades one."""
        return self.core.list_patients(databaseUrl, site=siteFilter or None)

    def showPatient(self, databaseUrl, patientId, tableNode=None):
        """(cycles table, next-cycle advice); the patient's chart is made or replaced too."""
        return self.core.show_patient(databaseUrl, patientId, table_node=tableNode)

    def showPatientNodes(self, databaseUrl, patientId, tableNode=None):
        """(cycles table, cumulative-dose chart, status dict), replacing an earlier showing's nodes."""
        return self.core.show_patient_nodes(databaseUrl, patientId, table_node=tableNode)

    def recordCycle(self, databaseUrl, patientId, cycle, date, activityGBq, kidneyDoseGy, deviationReason=None,
                    user=None):
        return self.core.record_cycle(databaseUrl, patientId, cycle, date, activityGBq, kidneyDoseGy,
                                      deviation_reason=deviationReason, user=user)

    def previewCycleFromResults(self, patientId, cycle, activityGBq, results):
        """Warnings (patient ID, activity) of recording a Dosimetry result, before anything is written."""
        return self.core.preview_cycle_from_results(patientId, cycle, activityGBq, results)

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
    """Runs on a clean Slicer once SQLAlchemy and Alembic are installed (installed here without asking)."""

    def setUp(self):
        slicer.mrmlScene.Clear()

    def runTest(self):
        if not ensure_dependencies(["sqlalchemy", "alembic"], prompt=False):
            raise RuntimeError("TrialTracker self-test: SQLAlchemy and Alembic could not be installed")
        for test in (self.test_next_cycle_after_28_gy, self.test_connect_does_not_create_a_database,
                     self.test_record_from_dosimetry_result, self.test_database_url_is_not_in_the_scene):
            self.setUp()
            test()

    def test_next_cycle_after_28_gy(self):
        import os
        import tempfile

        with tempfile.TemporaryDirectory() as folder:
            url = "sqlite:///" + os.path.join(folder, "trial.db")
            logic = TrialTrackerLogic()
            logic.core.initialise(url)  # the administrator's `startnet trial --db URL init`
            logic.core.enroll(url, "SN-900", site="Uppsala", arm=2, enrolled="2026-01-05")
            cycles = [("2026-01-12", 7.5, 5.0), ("2026-03-23", 7.5, 5.0), ("2026-06-01", 7.5, 5.0),
                      ("2026-08-10", 7.5, 5.0), ("2026-10-19", 7.5, 5.0), ("2026-12-28", 7.5, 3.0)]
            for number, (date, activity, dose) in enumerate(cycles, start=1):
                logic.recordCycle(url, "SN-900", number, date, activity, dose)
            table, chart, status = logic.showPatientNodes(url, "SN-900")
            self.assertEqual(table.GetNumberOfRows(), 6)
            self.assertAlmostEqual(status["cumulative_kidney_gy"], 28.0)
            self.assertEqual(chart.GetNumberOfPlotSeriesNodes(), 3)  # cumulative, limit, projected
            for i in range(chart.GetNumberOfPlotSeriesNodes()):
                self.assertNotEqual(tuple(chart.GetNthPlotSeriesNode(i).GetColor()), (0.0, 0.0, 0.0))
            from startnet.mrml.layout import TRIAL_CHARTS_LAYOUT_ID
            from startnet.mrml.trial_layout import show_trial_layout

            views = show_trial_layout(slicer.app.applicationLogic())
            self.assertEqual([v.GetPlotChartNodeID() for v in views], [chart.GetID()])  # no marrow data: 1 view
            layoutNode = slicer.mrmlScene.GetFirstNodeByClass("vtkMRMLLayoutNode")
            self.assertEqual(layoutNode.GetViewArrangement(), TRIAL_CHARTS_LAYOUT_ID)
            nodes = slicer.mrmlScene.GetNumberOfNodes()
            table, recommendation = logic.showPatient(url, "SN-900")  # shown again: replaced, not added
            self.assertEqual(slicer.mrmlScene.GetNumberOfNodes(), nodes)
            self.assertIn("5.00 GBq", recommendation)
            self.assertIn("keeps it <= 5 %", recommendation)

    def test_connect_does_not_create_a_database(self):
        import os
        import tempfile

        from startnet.errors import InputError

        with tempfile.TemporaryDirectory() as folder:
            path = os.path.join(folder, "mistyped.db")
            with self.assertRaises(InputError) as raised:
                TrialTrackerLogic().listPatients("sqlite:///" + path)
            self.assertIn(path, str(raised.exception))
            self.assertFalse(os.path.exists(path))

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
            logic.core.initialise(url)
            logic.core.enroll(url, "SN-901", site="Skåne", arm=2, enrolled="2026-01-05")
            # the mismatch is found before anything is written
            warnings = logic.previewCycleFromResults("SN-999", 1, 7.4, results)
            self.assertTrue(any("SN-901" in w for w in warnings))
            self.assertEqual(logic.previewCycleFromResults("SN-901", 1, 7.4, results), [])
            recommendation = logic.recordCycleFromResults(url, "SN-901", 1, "2026-01-12", 7.4, results)
            self.assertIn("Next cycle 2 allowed", recommendation)
            store = TrialStore.open(url)
            cycle = store.cycles("SN-901")[0]
            store.close()
            self.assertEqual((cycle["kidney_left_gy"], cycle["kidney_right_gy"]), (2.8, 3.1))
            self.assertEqual((cycle["kidney_uncertainty_pct"], cycle["kidney_bed_gy"]), (9.0, 3.3))

    def test_database_url_is_not_in_the_scene(self):
        logic = TrialTrackerLogic()
        node = logic.getParameterNode().parameterNode
        node.SetParameter("databaseUrl", "postgresql://trial:secret@db.example/trial")  # as older versions did
        node = logic.getParameterNode().parameterNode
        self.assertNotIn("databaseUrl", node.GetParameterNames())


if __name__ == "__main__":
    unittest.main()
