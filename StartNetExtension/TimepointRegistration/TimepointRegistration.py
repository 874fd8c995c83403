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
            "Loads every SPECT/CT time point of one 177Lu-DOTATOC cycle from a DICOM folder as calibrated "
            "activity (Bq/mL) and registers all of them onto one reference time point (CT-to-CT rigid, "
            "optional B-spline), resampling SPECT activity-conserving. Shows per-time-point quality."
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

    def connectSignals(self):
        self.ui.loadButton.connect("clicked(bool)", self.onLoad)
        self.ui.registerButton.connect("clicked(bool)", self.onRegister)
        self.ui.checkImageButton.connect("clicked(bool)", self.onCheckImage)

    def updateGuiState(self, caller=None, event=None):
        p = self._parameterNode
        self.ui.loadButton.enabled = bool(p and str(p.inputDirectory) not in ("", "."))
        self.ui.registerButton.enabled = bool(p and self.logic.timepointCount() > 1)
        self.ui.checkImageButton.enabled = bool(p and self.logic.hasRegistration())

    def onLoad(self):
        p = self._parameterNode
        if not ensure_dependencies(["tzdata"]):  # DICOM local times need zone data (Windows has none)
            return
        with self.progress("Loading cycle") as report:
            ok, summary = self.run("Loading the cycle failed.", self.logic.loadCycle, p.inputDirectory,
                                   p.calibrationCpsPerMBq or None, report)
        if ok:
            p.referenceCt = self.logic.referenceCtNode(p.referenceTimepoint)
            self.ui.registrationStatusLabel.text = summary
        self.updateGuiState()

    def onRegister(self):
        p = self._parameterNode
        with self.progress("Registering time points") as report:
            ok, table = self.run("Registration failed.", self.logic.registerTimepoints, p.referenceTimepoint,
                                 p.deformableRefinement, report)
        if ok:
            p.qualityTable = table
            self.ui.registrationStatusLabel.text = self.logic.qualitySummary()
            self.showTable(table)
        self.updateGuiState()

    def onCheckImage(self):
        self.run("Could not build the check image.", self.logic.showCheckImage)


class TimepointRegistrationLogic(ScriptedLoadableModuleLogic):
    def __init__(self):
        ScriptedLoadableModuleLogic.__init__(self)
        from startnet.mrml.cycle_logic import CycleSceneLogic

        self.cycle = CycleSceneLogic(slicer.mrmlScene)

    def getParameterNode(self):
        return TimepointRegistrationParameterNode(super().getParameterNode())

    def loadCycle(self, inputDirectory, calibrationCpsPerMBq=None, progress=None):
        return self.cycle.load_cycle(str(inputDirectory), calibration_cps_per_mbq=calibrationCpsPerMBq,
                                     progress=progress)

    def timepointCount(self):
        return len(self.cycle.timepoints)

    def hasRegistration(self):
        return bool(self.cycle.registrations)

    def referenceCtNode(self, referenceTimepoint=-1):
        return self.cycle.reference_ct_node(None if referenceTimepoint < 0 else referenceTimepoint)

    def registerTimepoints(self, referenceTimepoint=-1, deformable=False, progress=None):
        return self.cycle.register(None if referenceTimepoint < 0 else referenceTimepoint, deformable=deformable,
                                   progress=progress)

    def qualitySummary(self):
        return self.cycle.quality_summary()

    def showCheckImage(self):
        checkNode = self.cycle.check_image_node()
        slicer.util.setSliceViewerLayers(background=checkNode, fit=True)


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
        self.assertEqual(len(after), 3)
        for unregistered, registered in zip(before, after):
            self.assertGreater(unregistered["error_mm"], 2.0 * REGISTRATION_TOLERANCE_MM)  # the known shift
            self.assertLess(registered["error_mm"], REGISTRATION_TOLERANCE_MM)
            self.assertLess(registered["rotation_error_deg"], 0.5)


if __name__ == "__main__":
    unittest.main()
