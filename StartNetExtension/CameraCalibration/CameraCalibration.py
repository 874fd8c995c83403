"""CameraCalibration: a camera's sensitivity, PSF and recovery curve from its own phantom scans.

Thin Slicer layer over :class:`startnet.mrml.calibration_logic.CalibrationSceneLogic` (the same
code as ``startnet calibrate``, tested headless with slicer-core): the acquisition is a SPECT series
of Slicer's DICOM database (its files from ``slicer.dicomDatabase.filesForSeries``), the spheres'
centres a markups fiducial node, their volumes a table or a SPHERES.json; the result is the
camera's CAL.json, which the Dosimetry module picks per camera from its calibration folder.
"""

import pathlib
import unittest
from typing import Annotated

import slicer
from slicer import vtkMRMLMarkupsFiducialNode, vtkMRMLPlotChartNode, vtkMRMLTableNode
from slicer.parameterNodeWrapper import WithinRange, parameterNodeWrapper
from slicer.ScriptedLoadableModule import (
    ScriptedLoadableModule,
    ScriptedLoadableModuleLogic,
    ScriptedLoadableModuleTest,
)
from StartNetCoreLib.dependencies import ensure_dependencies
from StartNetCoreLib.widget import StartNetModuleWidget


class CameraCalibration(ScriptedLoadableModule):
    def __init__(self, parent):
        ScriptedLoadableModule.__init__(self, parent)
        self.parent.title = "Camera Calibration (START-NET)"
        self.parent.categories = ["Nuclear Medicine.START-NET"]
        self.parent.dependencies = ["StartNetCore"]
        self.parent.contributors = ["START-NET dosimetry developers"]
        self.parent.helpText = (
            "Calibrates one SPECT/CT camera from its own phantom scans in the DICOM database, as "
            "'startnet calibrate' does: the sensitivity (cps/MBq) from a uniform source of known activity, and "
            "the recovery coefficient per sphere and the PSF FWHM from a sphere phantom (e.g. NEMA IEC) whose "
            "centres are placed as markups control points labelled with the spheres' names. Results go into the "
            "camera's CAL.json (one camera per file) and are shown as the recovery curve beside a table. Put the "
            "file into the Dosimetry module's calibration folder: it is then used for that camera's cycles."
        )
        self.parent.acknowledgementText = "START-NET trial (NCT05387603)."


@parameterNodeWrapper
class CameraCalibrationParameterNode:
    # sphereCentres is bound to a qMRMLNodeComboBox (a GUI connector in v5.8.1 and v5.10.0; the
    # qSlicerSimpleMarkupsWidget connector exists in v5.10.0 only); the .ui passes the chosen node to a
    # qSlicerMarkupsPlaceWidget (currentNodeChanged(vtkMRMLNode*) -> setCurrentNode(vtkMRMLNode*), both tags).
    # Float fields on QDoubleSpinBox carry WithinRange (the connector resets an unannotated range, both tags).
    calibrationFile: pathlib.Path
    timezone: str = "Europe/Stockholm"
    activityMBq: Annotated[float, WithinRange(0.0, 100000.0)] = 0.0
    activityDateTime: str = ""
    spheresFile: pathlib.Path
    sphereCentres: vtkMRMLMarkupsFiducialNode
    sphereVolumes: vtkMRMLTableNode
    sphereKBqPerMl: Annotated[float, WithinRange(0.0, 100000.0)] = 0.0
    backgroundKBqPerMl: Annotated[float, WithinRange(0.0, 100000.0)] = 0.0
    referenceDateTime: str = ""
    resultsTable: vtkMRMLTableNode
    recoveryChart: vtkMRMLPlotChartNode


def _given(path) -> bool:
    return str(path or "") not in ("", ".")


class CameraCalibrationWidget(StartNetModuleWidget):
    MODULE_NAME = "CameraCalibration"

    def __init__(self, parent=None):
        StartNetModuleWidget.__init__(self, parent)
        self.logicClass = CameraCalibrationLogic
        self._patients = []
        self._series = []

    def connectSignals(self):
        self.ui.refreshDatabaseButton.connect("clicked(bool)", self.onRefreshDatabase)
        self.ui.patientComboBox.connect("currentIndexChanged(int)", self.onPatientSelected)
        self.ui.seriesComboBox.connect("currentIndexChanged(int)", lambda _index: self.updateGuiState())
        self.ui.showSeriesButton.connect("clicked(bool)", self.onShowSeries)
        self.ui.sensitivityButton.connect("clicked(bool)", self.onSensitivity)
        self.ui.loadSpheresButton.connect("clicked(bool)", self.onLoadSpheres)
        self.ui.recoveryButton.connect("clicked(bool)", self.onRecovery)
        self.ui.showChartButton.connect("clicked(bool)", self.onShowChart)

    def _selectedSeries(self):
        index = self.ui.seriesComboBox.currentIndex
        return self._series[index] if 0 <= index < len(self._series) else None

    def updateGuiState(self, caller=None, event=None):
        p = self._parameterNode
        if self.ui is None:
            return
        series = self._selectedSeries() is not None
        output = bool(p and _given(p.calibrationFile))
        self.ui.showSeriesButton.enabled = series
        self.ui.sensitivityButton.enabled = bool(series and output and p.activityMBq > 0
                                                 and p.activityDateTime.strip())
        self.ui.loadSpheresButton.enabled = bool(p and _given(p.spheresFile))
        self.ui.recoveryButton.enabled = bool(series and output and p.sphereCentres and p.sphereVolumes
                                              and p.sphereKBqPerMl > 0 and p.referenceDateTime.strip())
        self.ui.showChartButton.enabled = bool(p and p.recoveryChart and p.resultsTable)

    # -- the acquisition from the DICOM database ----------------------------------------------
    def onRefreshDatabase(self):
        if not ensure_dependencies(["tzdata"]):  # DICOM local times need zone data (Windows has none)
            return
        ok, patients = self.run("Could not read the DICOM database.", self.logic.databasePatients)
        if not ok:
            return
        self._patients = patients
        self.ui.patientComboBox.clear()
        for patient in patients:
            self.ui.patientComboBox.addItem(patient.label)
        if not patients:
            self.ui.summaryLabel.text = ("The DICOM database has no patients: import the phantom scans in the DICOM "
                                         "module.")
        self.updateGuiState()

    def onPatientSelected(self, index):
        self._series = []
        self.ui.seriesComboBox.clear()
        if 0 <= index < len(self._patients):
            ok, series = self.run("Could not list the patient's SPECT series.", self.logic.patientSeries,
                                  self._patients[index].uid)
            if ok and series:
                self._series = series
                for item in series:
                    self.ui.seriesComboBox.addItem(item.label)
        self.updateGuiState()

    def onShowSeries(self):
        series = self._selectedSeries()
        if series is None:
            return
        p = self._parameterNode
        ok, node = self.run("Could not show the SPECT.", self.logic.showSeries, series.files, p.calibrationFile,
                            p.timezone)
        if ok:
            slicer.util.setSliceViewerLayers(background=node, foreground=None, fit=True)

    # -- the two steps -----------------------------------------------------------------------
    def onSensitivity(self):
        series = self._selectedSeries()
        p = self._parameterNode
        ok, outcome = self.run("The sensitivity could not be measured.", self.logic.sensitivity, series.files,
                               p.activityMBq, p.activityDateTime, p.calibrationFile, p.timezone)
        if ok:
            self.ui.summaryLabel.text = outcome.summary
            slicer.util.setSliceViewerLayers(background=outcome.nodes["spect"], foreground=None, fit=True)
            self.showTable(outcome.nodes["table"])
        self.updateGuiState()

    def onLoadSpheres(self):
        p = self._parameterNode
        ok, loaded = self.run("The spheres file could not be loaded.", self.logic.spheresFromFile, p.spheresFile,
                              p.timezone, p.sphereCentres, p.sphereVolumes)
        if not ok:
            return
        phantom, markups, table = loaded
        p.sphereCentres = markups
        p.sphereVolumes = table
        p.sphereKBqPerMl = phantom.sphere_kbq_ml
        p.backgroundKBqPerMl = phantom.background_kbq_ml
        p.referenceDateTime = phantom.reference_datetime.isoformat()
        self.ui.summaryLabel.text = (f"{len(phantom.spheres)} spheres from {p.spheresFile}: check or move their "
                                     "centres on the sphere phantom's SPECT (Show the SPECT).")

    def onRecovery(self):
        series = self._selectedSeries()
        p = self._parameterNode
        ok, outcome = self.run("The recovery could not be measured.", self.logic.recovery, series.files,
                               p.sphereCentres, p.sphereVolumes, p.calibrationFile, p.sphereKBqPerMl,
                               p.backgroundKBqPerMl, p.referenceDateTime, p.timezone)
        if ok:
            p.resultsTable = outcome.nodes["table"]
            p.recoveryChart = outcome.nodes["chart"]
            self.ui.summaryLabel.text = outcome.summary
            slicer.util.setSliceViewerLayers(background=outcome.nodes["spect"], foreground=None, fit=True)
            self.onShowChart()
        self.updateGuiState()

    def onShowChart(self):
        from startnet.mrml.layout import show_chart_and_table

        p = self._parameterNode
        if p.recoveryChart is not None:
            show_chart_and_table(slicer.app.applicationLogic(), p.recoveryChart, p.resultsTable)


class CameraCalibrationLogic(ScriptedLoadableModuleLogic):
    """Module logic: forwards to CalibrationSceneLogic on ``slicer.mrmlScene``."""

    ORIGIN = "Slicer DICOM database"

    def __init__(self):
        ScriptedLoadableModuleLogic.__init__(self)
        from startnet.mrml.calibration_logic import CalibrationSceneLogic

        self.core = CalibrationSceneLogic(slicer.mrmlScene)

    def getParameterNode(self):
        return CameraCalibrationParameterNode(super().getParameterNode())

    def databasePatients(self):
        from startnet.mrml.dicom_cycles import database_patients

        return database_patients(slicer.dicomDatabase)

    def patientSeries(self, patientUid):
        from startnet.mrml.dicom_cycles import patient_spect_series

        return patient_spect_series(slicer.dicomDatabase, patientUid)

    def showSeries(self, files, calibrationFile=None, timezone="Europe/Stockholm"):
        return self.core.show_acquisition(list(files), str(calibrationFile or ""), timezone=timezone)

    def sensitivity(self, files, activityMBq, activityDateTime, calibrationFile, timezone="Europe/Stockholm"):
        return self.core.sensitivity(list(files), activityMBq, activityDateTime, str(calibrationFile),
                                     timezone=timezone, origin=self.ORIGIN)

    def spheresFromFile(self, spheresFile, timezone="Europe/Stockholm", markupsNode=None, tableNode=None):
        return self.core.spheres_from_file(str(spheresFile), timezone=timezone, markups_node=markupsNode,
                                           table_node=tableNode)

    def recovery(self, files, markupsNode, volumesTable, calibrationFile, sphereKBqPerMl, backgroundKBqPerMl,
                 referenceDateTime, timezone="Europe/Stockholm"):
        return self.core.recovery_from_markups(list(files), markupsNode, volumesTable, str(calibrationFile),
                                               sphere_kbq_ml=sphereKBqPerMl, background_kbq_ml=backgroundKBqPerMl,
                                               reference_datetime=referenceDateTime, timezone=timezone,
                                               origin=self.ORIGIN)


class CameraCalibrationTest(ScriptedLoadableModuleTest):
    """Both steps on the digital phantom's calibration scans give the camera's truth (sensitivity within
    2 %, PSF within 10 %); the recovery chart is shown with coloured series.

    The same scenario, with the CLI comparison, runs headless in Testing/mrml/test_calibration_logic.py.
    """

    def setUp(self):
        slicer.mrmlScene.Clear()

    def runTest(self):
        self.setUp()
        self.test_phantom_calibration_matches_the_camera()

    def test_phantom_calibration_matches_the_camera(self):
        import json
        import tempfile

        from startnet.phantom.calibration_dicom import write_calibration_scan
        from startnet.phantom.calibration_scans import CalibrationScanConfig, CameraSpec, build_calibration_scan
        from startnet.phantom.config import GridSpec

        camera = CameraSpec(manufacturer="Acme", model="Gamma 9", serial="SN-42", psf_fwhm_mm=15.0,
                            sensitivity_cps_per_mbq=8.0)
        grid = GridSpec((64, 64, 64), (7.0, 7.0, 7.0))
        logic = CameraCalibrationLogic()
        with tempfile.TemporaryDirectory() as folder:
            root = pathlib.Path(folder)
            cal = root / "CAL_acme.json"
            scans = {}
            for kind, seed in (("cylinder", 1), ("spheres", 2)):
                config = CalibrationScanConfig(kind=kind, camera=camera, grid=grid, seed=seed)
                scans[kind] = (write_calibration_scan(build_calibration_scan(config), root / kind), config)
            files = {kind: [str(f) for f in sorted(scan.dicom_dir.rglob("*")) if f.is_file()]
                     for kind, (scan, _) in scans.items()}
            cylinder, config = scans["cylinder"]
            logic.sensitivity(files["cylinder"], config.cylinder_activity_mbq, config.activity_datetime.isoformat(),
                              cal)
            spheres, _ = scans["spheres"]
            phantom, markups, table = logic.spheresFromFile(spheres.spheres_json)
            outcome = logic.recovery(files["spheres"], markups, table, cal, phantom.sphere_kbq_ml,
                                     phantom.background_kbq_ml, phantom.reference_datetime.isoformat())
            data = json.loads(cal.read_text())
        self.assertLess(abs(data["sensitivity_cps_per_mbq"] / 8.0 - 1.0), 0.02)
        self.assertLess(abs(data["psf_fwhm_mm"] / 15.0 - 1.0), 0.10)
        self.assertEqual(len(data["recovery"]), 6)
        for node in outcome.nodes["series"].values():
            self.assertGreater(sum(node.GetColor()), 0.1)  # coloured, not the default black
        self.assertTrue(outcome.nodes["chart"].HasPlotSeriesNodeID(outcome.nodes["series"]["rc"].GetID()))


if __name__ == "__main__":
    unittest.main()
