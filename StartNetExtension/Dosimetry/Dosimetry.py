"""Dosimetry: one 177Lu cycle from DICOM to absorbed dose, DVH, BED and uncertainty.

Walks the physicist through load -> register -> segment -> fit -> dose -> review -> record,
running the same pipeline steps as ``startnet run`` on MRML nodes
(:class:`startnet.mrml.dosimetry_logic.DosimetrySceneLogic`, tested headless with slicer-core).
"""

import pathlib
import unittest
from typing import Annotated

import slicer
from slicer import vtkMRMLScalarVolumeNode, vtkMRMLSegmentationNode, vtkMRMLTableNode
from slicer.parameterNodeWrapper import Choice, WithinRange, parameterNodeWrapper
from slicer.ScriptedLoadableModule import (
    ScriptedLoadableModule,
    ScriptedLoadableModuleLogic,
    ScriptedLoadableModuleTest,
)
from StartNetCoreLib.dependencies import ensure_dependencies
from StartNetCoreLib.widget import StartNetModuleWidget


class Dosimetry(ScriptedLoadableModule):
    def __init__(self, parent):
        ScriptedLoadableModule.__init__(self, parent)
        self.parent.title = "Dosimetry (START-NET)"
        self.parent.categories = ["Nuclear Medicine.START-NET"]
        self.parent.dependencies = ["StartNetCore"]
        self.parent.contributors = ["START-NET dosimetry developers"]
        self.parent.helpText = (
            "Voxel dosimetry of one 177Lu-DOTATOC cycle: calibrated SPECT time points, registration, "
            "structures, time-activity fits per structure and per voxel, absorbed dose (local deposition or "
            "voxel S-value kernels with CT density correction), DVHs, BED and uncertainty, exported as "
            "results.json, RT Dose, DICOM SEG, a scene and a signed-off report."
        )
        self.parent.acknowledgementText = "START-NET trial (NCT05387603)."


@parameterNodeWrapper
class DosimetryParameterNode:
    inputDirectory: pathlib.Path
    calibrationCpsPerMBq: Annotated[float, WithinRange(0.0, 100.0)] = 0.0
    referenceTimepoint: Annotated[int, WithinRange(-1, 20)] = -1
    segmentation: vtkMRMLSegmentationNode
    method: Annotated[str, Choice(["vsv-density", "vsv", "led"])] = "vsv-density"
    outputDirectory: pathlib.Path
    doseVolume: vtkMRMLScalarVolumeNode
    resultsTable: vtkMRMLTableNode
    patientId: str = ""
    cycleNumber: Annotated[int, WithinRange(1, 20)] = 1
    databaseUrl: str = ""


class DosimetryWidget(StartNetModuleWidget):
    MODULE_NAME = "Dosimetry"

    def __init__(self, parent=None):
        StartNetModuleWidget.__init__(self, parent)
        self.logicClass = DosimetryLogic

    def connectSignals(self):
        self.ui.runButton.connect("clicked(bool)", self.onRun)
        self.ui.recordButton.connect("clicked(bool)", self.onRecord)

    def updateGuiState(self, caller=None, event=None):
        p = self._parameterNode
        ready = bool(p and str(p.inputDirectory) not in ("", ".") and str(p.outputDirectory) not in ("", "."))
        self.ui.runButton.enabled = ready
        self.ui.recordButton.enabled = bool(p and p.patientId and p.databaseUrl and self.logic.lastResults)

    def onRun(self):
        if not ensure_dependencies(["numba", "highdicom", "matplotlib"]):
            return
        p = self._parameterNode
        with self.progress("Cycle dosimetry") as report:
            outputs = self.run("Dosimetry failed.", self.logic.runCycle, p.inputDirectory, p.outputDirectory,
                               segmentationNode=p.segmentation, method=p.method,
                               calibrationCpsPerMBq=p.calibrationCpsPerMBq or None,
                               referenceTimepoint=p.referenceTimepoint, patientId=p.patientId,
                               cycle=p.cycleNumber, progress=report)
        if outputs:
            p.doseVolume = outputs.dose_node
            p.resultsTable = outputs.results_table
            self.ui.summaryLabel.text = outputs.summary
            slicer.util.setSliceViewerLayers(background=outputs.ct_node, foreground=outputs.dose_node,
                                             foregroundOpacity=0.5, fit=True)
            self.showTable(outputs.results_table)
        self.updateGuiState()

    def onRecord(self):
        if not ensure_dependencies(["sqlalchemy", "alembic"]):
            return
        p = self._parameterNode
        message = self.run("Recording the cycle failed.", self.logic.recordInTrial, p.databaseUrl, p.patientId,
                           p.cycleNumber)
        if message:
            slicer.util.infoDisplay(message, windowTitle="START-NET trial")


class DosimetryLogic(ScriptedLoadableModuleLogic):
    def __init__(self):
        ScriptedLoadableModuleLogic.__init__(self)
        from startnet.mrml.dosimetry_logic import DosimetrySceneLogic

        self.core = DosimetrySceneLogic(slicer.mrmlScene)

    @property
    def lastResults(self):
        return self.core.last_results

    def getParameterNode(self):
        return DosimetryParameterNode(super().getParameterNode())

    def runCycle(self, inputDirectory, outputDirectory, segmentationNode=None, method="vsv-density",
                 calibrationCpsPerMBq=None, referenceTimepoint=-1, patientId="", cycle=None, progress=None):
        return self.core.run_cycle(
            str(inputDirectory), str(outputDirectory), segmentation_node=segmentationNode, method=method,
            calibration_cps_per_mbq=calibrationCpsPerMBq,
            reference_timepoint=None if referenceTimepoint < 0 else referenceTimepoint,
            patient_id=patientId or None, cycle=cycle, progress=progress,
        )

    def recordInTrial(self, databaseUrl, patientId, cycle):
        return self.core.record_in_trial(databaseUrl, patientId, cycle)


class DosimetryTest(ScriptedLoadableModuleTest):
    def setUp(self):
        slicer.mrmlScene.Clear()

    def runTest(self):
        self.setUp()
        self.test_phantom_cycle_kidney_dose()

    def test_phantom_cycle_kidney_dose(self):
        import json
        import tempfile

        from startnet.phantom import PhantomConfig, build_phantom, write_phantom_dicom

        with tempfile.TemporaryDirectory() as folder:
            files = write_phantom_dicom(build_phantom(PhantomConfig(preset="small", seed=11)), folder)
            out = pathlib.Path(folder) / "out"
            outputs = DosimetryLogic().runCycle(files.dicom_dir, out, method="vsv-density")
            truth = json.loads(pathlib.Path(files.truth_json).read_text())
            results = json.loads((out / "results.json").read_text())
            for kidney in ("kidney_left", "kidney_right"):
                measured = results["structures"][kidney]["mean_gy"]
                expected = truth["structures"][kidney]["mean_dose_gy"]
                self.assertLess(abs(measured / expected - 1.0), 0.10)
            self.assertIsNotNone(outputs.dose_node)


if __name__ == "__main__":
    unittest.main()
