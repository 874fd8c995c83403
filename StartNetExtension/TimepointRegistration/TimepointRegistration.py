"""TimepointRegistration: load one 177Lu cycle's SPECT/CT time points and register them.

Thin Slicer layer over :class:`startnet.mrml.cycle_logic.CycleSceneLogic`, which does the work
on MRML nodes and is tested headless with slicer-core.
"""

import pathlib
import unittest
from typing import Annotated

import slicer
from slicer import vtkMRMLScalarVolumeNode, vtkMRMLTableNode
from slicer.parameterNodeWrapper import WithinRange, parameterNodeWrapper
from slicer.ScriptedLoadableModule import (
    ScriptedLoadableModule,
    ScriptedLoadableModuleLogic,
    ScriptedLoadableModuleTest,
)
from StartNetCoreLib.dependencies import ensure_dependencies
from StartNetCoreLib.widget import StartNetModuleWidget


class TimepointRegistration(ScriptedLoadableModule):
    def __init__(self, parent):
        ScriptedLoadableModule.__init__(self, parent)
        self.parent.title = "Time-point Registration (START-NET)"
        self.parent.categories = ["Nuclear Medicine.START-NET"]
        self.parent.dependencies = ["StartNetCore"]
        self.parent.contributors = ["START-NET dosimetry developers"]
        self.parent.helpText = (
            "Loads every SPECT/CT time point of one 177Lu-DOTATOC cycle, from a DICOM folder or from a patient's "
            "cycle in Slicer's DICOM database, as calibrated activity (Bq/mL) and CT, organised in the subject "
            "hierarchy (patient, cycle, time point). Registers every time point onto the reference (CT-to-CT rigid, "
            "optional B-spline) as one transform node per time point applied to its CT and SPECT: step through the "
            "time points to review them, correct any transform in the Transforms module; the Dosimetry module "
            "uses the transforms as they are in the scene. Shows per-time-point quality."
        )
        self.parent.acknowledgementText = "START-NET trial (NCT05387603)."


@parameterNodeWrapper
class TimepointRegistrationParameterNode:
    inputDirectory: pathlib.Path
    calibrationCpsPerMBq: Annotated[float, WithinRange(0.0, 100.0)] = 0.0
    referenceTimepoint: Annotated[int, WithinRange(-1, 20)] = -1
    deformableRefinement: bool = False
    referenceCt: vtkMRMLScalarVolumeNode
    qualityTable: vtkMRMLTableNode


class TimepointRegistrationWidget(StartNetModuleWidget):
    MODULE_NAME = "TimepointRegistration"

    def __init__(self, parent=None):
        StartNetModuleWidget.__init__(self, parent)
        self.logicClass = TimepointRegistrationLogic
        self._patients = []
        self._cycles = []

    def connectSignals(self):
        self.ui.loadButton.connect("clicked(bool)", self.onLoad)
        self.ui.refreshDatabaseButton.connect("clicked(bool)", self.onRefreshDatabase)
        self.ui.patientComboBox.connect("currentIndexChanged(int)", self.onPatientSelected)
        self.ui.cycleComboBox.connect("currentIndexChanged(int)", self.onCycleSelected)
        self.ui.loadDatabaseCycleButton.connect("clicked(bool)", self.onLoadDatabaseCycle)
        self.ui.registerButton.connect("clicked(bool)", self.onRegister)
        self.ui.checkImageButton.connect("clicked(bool)", self.onCheckImage)
        self.ui.timepointSpinBox.connect("valueChanged(int)", self.onShowTimepoint)
        self.ui.showReferenceButton.connect("clicked(bool)", self.onShowReference)

    def updateGuiState(self, caller=None, event=None):
        p = self._parameterNode
        count = self.logic.timepointCount()
        self.ui.loadButton.enabled = bool(p and str(p.inputDirectory) not in ("", "."))
        self.ui.loadDatabaseCycleButton.enabled = bool(p and self._selectedCycle() is not None)
        self.ui.registerButton.enabled = bool(p and count > 1)
        self.ui.checkImageButton.enabled = bool(p and self.logic.hasRegistration())
        self.ui.timepointSpinBox.enabled = count > 0
        self.ui.timepointSpinBox.maximum = max(count - 1, 0)
        self.ui.showReferenceButton.enabled = count > 0

    # ``slicer.util.tryWithErrorDisplay`` shows the error and then RE-RAISES it (Slicer v5.8.1 and
    # v5.10.0), so ``self.run`` never returns None on error: handlers go through ``_call`` and act
    # only when it succeeded; a cancel returns (False, None) after a status message.
    def _call(self, errorMessage, function, *args, **kwargs):
        """(True, result), or (False, None) after the error was shown and logged (``self.run``)."""
        return self.run(errorMessage, function, *args, **kwargs)

    def _selectedCycle(self):
        index = self.ui.cycleComboBox.currentIndex
        return self._cycles[index] if 0 <= index < len(self._cycles) else None

    def _afterLoad(self, summary):
        p = self._parameterNode
        if not summary:  # cancelled
            return
        p.referenceCt = self.logic.referenceCtNode()
        self.ui.registrationStatusLabel.text = summary
        self.logic.showReferenceFused()

    def onLoad(self):
        if not ensure_dependencies(["tzdata"]):  # DICOM local times need zone data (Windows has none)
            return
        p = self._parameterNode
        try:
            with self.progress("Loading cycle") as report:
                ok, summary = self._call("Loading the cycle failed.", self.logic.loadCycle, p.inputDirectory,
                                         p.calibrationCpsPerMBq or None, report)
            if ok:
                self._afterLoad(summary)
        finally:
            self.updateGuiState()

    def onRefreshDatabase(self):
        if not ensure_dependencies(["tzdata"]):
            return
        ok, patients = self._call("Could not read the DICOM database.", self.logic.databasePatients)
        if not ok:
            return
        self._patients = patients
        self.ui.patientComboBox.clear()
        for patient in patients:
            self.ui.patientComboBox.addItem(patient.label)
        if not patients:
            self.ui.cycleTimepointsLabel.text = "The DICOM database has no patients: import data in the DICOM module."
        self.updateGuiState()

    def onPatientSelected(self, index):
        self._cycles = []
        self.ui.cycleComboBox.clear()
        if 0 <= index < len(self._patients):
            ok, cycles = self._call("Could not list the patient's cycles.", self.logic.patientCycles,
                                    self._patients[index].uid, self._parameterNode.calibrationCpsPerMBq or None)
            if ok and cycles:
                self._cycles = cycles
                for cycle in cycles:
                    self.ui.cycleComboBox.addItem(cycle.label)
        self.updateGuiState()

    def onCycleSelected(self, index):
        cycle = self._selectedCycle()
        self.ui.cycleTimepointsLabel.text = "" if cycle is None else "\n".join(
            f"{tp.hours_post_injection:.1f} h p.i.: SPECT '{tp.spect_description}'"
            + ("" if tp.ct_series_uid else " (no CT)") for tp in cycle.timepoints)
        self.updateGuiState()

    def onLoadDatabaseCycle(self):
        cycle = self._selectedCycle()
        if cycle is None:
            return
        p = self._parameterNode
        try:
            with self.progress("Loading cycle") as report:
                ok, summary = self._call("Loading the cycle failed.", self.logic.loadCycle, cycle.files,
                                         p.calibrationCpsPerMBq or None, report)
            if ok:
                self._afterLoad(summary)
        finally:
            self.updateGuiState()

    def onRegister(self):
        p = self._parameterNode
        try:
            with self.progress("Registering time points") as report:
                ok, table = self._call("Registration failed.", self.logic.registerTimepoints, p.referenceTimepoint,
                                       p.deformableRefinement, report)
            if ok and table is not None:
                p.qualityTable = table
                p.referenceCt = self.logic.referenceCtNode()
                self.ui.registrationStatusLabel.text = self.logic.qualitySummary()
                self.showTable(table)
        finally:
            self.updateGuiState()

    def onCheckImage(self):
        self._call("Could not build the check image.", self.logic.showCheckImage)

    def onShowTimepoint(self, index):
        if self.logic.timepointCount() > index >= 0:
            self._call("Could not show the time point.", self.logic.showTimepoint, index)

    def onShowReference(self):
        self._call("Could not show the reference time point.", self.logic.showReferenceFused)


class TimepointRegistrationLogic(ScriptedLoadableModuleLogic):
    """Module logic: the scene holds the cycle (startnet.mrml.cycle_state); this only forwards."""

    def __init__(self):
        ScriptedLoadableModuleLogic.__init__(self)
        from startnet.mrml.cycle_logic import CycleSceneLogic

        self.cycle = CycleSceneLogic(slicer.mrmlScene)

    def getParameterNode(self):
        return TimepointRegistrationParameterNode(super().getParameterNode())

    def loadCycle(self, source, calibrationCpsPerMBq=None, progress=None):
        """Load from a folder (path) or a list of DICOM files (a database cycle's files)."""
        if not isinstance(source, (list, tuple)):
            source = str(source)
        return self.cycle.load_cycle(source, calibration_cps_per_mbq=calibrationCpsPerMBq, progress=progress)

    def databasePatients(self):
        from startnet.mrml.dicom_cycles import database_patients

        return database_patients(slicer.dicomDatabase)

    def patientCycles(self, patientUid, calibrationCpsPerMBq=None):
        from startnet.dicomio import Overrides
        from startnet.mrml.dicom_cycles import patient_cycles

        return patient_cycles(slicer.dicomDatabase, patientUid,
                              Overrides(calibration_cps_per_mbq=calibrationCpsPerMBq))

    def timepointCount(self):
        return self.cycle.timepoint_count()

    def hasRegistration(self):
        return self.cycle.has_registration()

    def referenceCtNode(self, referenceTimepoint=-1):
        return self.cycle.reference_ct_node(None if referenceTimepoint < 0 else referenceTimepoint)

    def registerTimepoints(self, referenceTimepoint=-1, deformable=False, progress=None):
        return self.cycle.register(None if referenceTimepoint < 0 else referenceTimepoint, deformable=deformable,
                                   progress=progress)

    def qualitySummary(self):
        return self.cycle.quality_summary()

    def _show(self, ctNode, spectNode):
        slicer.util.setSliceViewerLayers(background=ctNode, foreground=spectNode, foregroundOpacity=0.5, fit=True)

    def showReferenceFused(self):
        self._show(*self.cycle.reference_layers())

    def showTimepoint(self, index):
        self._show(*self.cycle.timepoint_layers(index))

    def showCheckImage(self):
        checkNode = self.cycle.check_image_node()
        slicer.util.setSliceViewerLayers(background=checkNode, foreground=None, fit=True)


class TimepointRegistrationTest(ScriptedLoadableModuleTest):
    """Registration recovers the phantom's known motion, read back from the transform nodes in the scene.

    The same scenario runs headless in Testing/mrml/test_module_selftests.py (startnet.mrml.selftest).
    """

    def setUp(self):
        slicer.mrmlScene.Clear()

    def runTest(self):
        self.setUp()
        self.test_registration_recovers_the_phantom_motion()

    def test_registration_recovers_the_phantom_motion(self):
        import tempfile

        from StartNetCoreLib.dependencies import ensure_dependencies

        # the phantom renderer needs numba, absent on a clean Slicer: install it without asking
        self.assertTrue(ensure_dependencies(["numba"], prompt=False))
        from startnet.mrml.selftest import REGISTRATION_TOLERANCE_MM, registration_errors, registration_phantom_cycle

        with tempfile.TemporaryDirectory() as folder:
            phantom, dicomDir = registration_phantom_cycle(folder)
            logic = TimepointRegistrationLogic()
            logic.loadCycle(dicomDir)
            before = registration_errors(slicer.mrmlScene, phantom)
            logic.registerTimepoints()
            after = registration_errors(slicer.mrmlScene, phantom)
        from startnet.mrml import cycle_state

        cycleNode = cycle_state.require_cycle_node(slicer.mrmlScene)
        for index in range(cycle_state.timepoint_count(cycleNode)):  # CT and SPECT under the same transform node
            transformNode = cycle_state.timepoint_node(cycleNode, "transform", index)
            for kind in ("ct", "spect"):
                self.assertIs(cycle_state.timepoint_node(cycleNode, kind, index).GetParentTransformNode(),
                              transformNode)
        self.assertEqual(len(after), 3)
        for unregistered, registered in zip(before, after):
            self.assertGreater(unregistered["error_mm"], 2.0 * REGISTRATION_TOLERANCE_MM)  # the known shift
            self.assertLess(registered["error_mm"], REGISTRATION_TOLERANCE_MM)
            self.assertLess(registered["rotation_error_deg"], 0.5)


if __name__ == "__main__":
    unittest.main()
