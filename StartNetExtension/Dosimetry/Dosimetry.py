"""Dosimetry: one 177Lu cycle's absorbed dose, DVH, BED and uncertainty from what the scene holds.

The time points, their transforms and the segmentation come from the scene
(:func:`startnet.mrml.dosimetry_job.job_inputs_from_scene`); the computation runs in a PythonSlicer
background process (:mod:`StartNetCoreLib.process`, :mod:`startnet.cycle.job`) so Slicer stays
usable, and the output folder is shown in the scene as a physicist reads it
(:meth:`startnet.mrml.dosimetry_logic.DosimetrySceneLogic.show_job_outputs`). Trial recording and
multi-cycle accumulation are thin calls into the same logic (tested headless with slicer-core).
"""

import logging
import pathlib
import tempfile
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
from StartNetCoreLib.settings import calibrationPath, setCalibrationPath, setTrialDatabaseUrl, trialDatabaseUrl
from StartNetCoreLib.widget import StartNetModuleWidget


class Dosimetry(ScriptedLoadableModule):
    def __init__(self, parent):
        ScriptedLoadableModule.__init__(self, parent)
        self.parent.title = "Dosimetry (START-NET)"
        self.parent.categories = ["Nuclear Medicine.START-NET"]
        self.parent.dependencies = ["StartNetCore"]
        self.parent.contributors = ["START-NET dosimetry developers"]
        self.parent.helpText = (
            "Voxel dosimetry of one 177Lu-DOTATOC cycle from the scene: the time points and transforms of "
            "Timepoint Registration and the segmentation of Dosimetry Segmentation. Time-activity fits per "
            "structure and per voxel, absorbed dose (local deposition or voxel S-value kernels with CT density "
            "correction), DVHs, BED and uncertainty run in a background process (Cancel stops it at once); the "
            "dose is shown with a dose colour table and isodose lines (SlicerRT), the TAC and DVH charts beside "
            "the results table. Outputs: results.json, RT Dose, DICOM SEG, report. Cycles can be summed "
            "(cumulative dose and BED) and the cycle recorded in the trial database. With a camera calibration "
            "folder (Camera Calibration module) the file of the SPECT's camera supplies the sensitivity, PSF and "
            "recovery curve; results.json names it. Optional red-marrow dose: blood samples (EANM blood-based "
            "method) and/or the lumbar vertebrae L2-L4 as image-based VOIs (segments or from the CT)."
        )
        self.parent.acknowledgementText = "START-NET trial (NCT05387603)."


@parameterNodeWrapper
class DosimetryParameterNode:
    # The trial database URL is NOT a parameter: it is kept in Slicer's application settings
    # (StartNetCoreLib.settings), without password, so that it is never saved with the scene.
    referenceSpect: vtkMRMLScalarVolumeNode
    segmentation: vtkMRMLSegmentationNode
    method: Annotated[str, Choice(["vsv-density", "vsv", "led"])] = "vsv-density"
    pvc: Annotated[str, Choice(["gtm", "rc", "none"])] = "gtm"
    outputDirectory: pathlib.Path
    showIsodose: bool = True
    doseVolume: vtkMRMLScalarVolumeNode
    resultsTable: vtkMRMLTableNode
    patientId: str = ""
    cycleNumber: Annotated[int, WithinRange(1, 20)] = 1
    accumulateOutputDirectory: pathlib.Path
    # red marrow (startnet run --marrow-voi, --marrow-mass-model, --patient-mass-kg, --blood-samples,
    # --marrow-blood-ratio); defaults = the command line's (startnet.mrml.dosimetry_options). Connectors
    # (guiConnectors.py, same in v5.8.1 and v5.10.0): QComboBox + Choice str, QDoubleSpinBox + float,
    # ctkPathLineEdit + pathlib.Path, QLineEdit + str.
    marrowVoiSource: Annotated[str, Choice(["auto", "segments", "ct"])] = "auto"
    marrowMassModel: Annotated[str, Choice(["voi", "reference"])] = "voi"
    patientMassKg: Annotated[float, WithinRange(0.0, 400.0)] = 0.0  # 0: not given
    bloodSamplesPath: pathlib.Path
    marrowBloodRatio: str = ""  # "": 1.0; a number or "sgouros"


class DosimetryWidget(StartNetModuleWidget):
    MODULE_NAME = "Dosimetry"

    def __init__(self, parent=None):
        StartNetModuleWidget.__init__(self, parent)
        self.logicClass = DosimetryLogic
        self._job = None  # StartNetCoreLib.process.BackgroundJob while a run is in progress
        self._charts = {}

    def setup(self):
        StartNetModuleWidget.setup(self)
        self.ui.databaseUrlLineEdit.text = trialDatabaseUrl()
        self.ui.calibrationPathLineEdit.currentPath = calibrationPath()
        self.updateGuiState()

    def initializeParameterNode(self):
        """As the Extension Wizard template selects a default input volume: the loaded cycle's reference
        SPECT and the segmentation made on its CT, when the user has not chosen others."""
        StartNetModuleWidget.initializeParameterNode(self)
        p = self._parameterNode
        if p is None:
            return
        referenceSpect, segmentation = self.logic.cycleDefaults()
        if p.referenceSpect is None and referenceSpect is not None:
            p.referenceSpect = referenceSpect
        if p.segmentation is None and segmentation is not None:
            p.segmentation = segmentation

    def connectSignals(self):
        self.ui.runButton.connect("clicked(bool)", self.onRun)
        self.ui.cancelButton.connect("clicked(bool)", self.onCancel)
        self.ui.recordButton.connect("clicked(bool)", self.onRecord)
        self.ui.showTacButton.connect("clicked(bool)", lambda _checked: self.showChart("tac_chart"))
        self.ui.showDvhButton.connect("clicked(bool)", lambda _checked: self.showChart("dvh_chart"))
        self.ui.importDicomButton.connect("clicked(bool)", self.onImportDicom)
        self.ui.addRunFolderButton.connect("clicked(bool)", self.onAddRunFolder)
        self.ui.addRecordedCyclesButton.connect("clicked(bool)", self.onAddRecordedCycles)
        self.ui.accumulateButton.connect("clicked(bool)", self.onAccumulate)
        self.ui.databaseUrlLineEdit.connect("textChanged(QString)", lambda _text: self.updateGuiState())
        self.ui.patientIdLineEdit.connect("textChanged(QString)", lambda _text: self.updateGuiState())
        self.ui.accumulateFoldersTextEdit.connect("textChanged()", self.updateGuiState)

    def cleanup(self):
        if self._job is not None:
            self._job.cancel()
        StartNetModuleWidget.cleanup(self)

    def _running(self) -> bool:
        return self._job is not None and self._job.running

    def updateGuiState(self, caller=None, event=None):
        p = self._parameterNode
        if self.ui is None:
            return
        running = self._running()
        output = bool(p and str(p.outputDirectory) not in ("", "."))
        # the reference SPECT stands for a loaded cycle: without one there is nothing to dose
        self.ui.runButton.enabled = bool(p and p.referenceSpect and p.segmentation and output and not running)
        self.ui.cancelButton.enabled = running
        results = self.logic.lastResults
        self.ui.recordButton.enabled = bool(p and p.patientId.strip() and self.ui.databaseUrlLineEdit.text.strip()
                                            and results and not running)
        self.ui.showTacButton.enabled = "tac_chart" in self._charts
        self.ui.showDvhButton.enabled = "dvh_chart" in self._charts
        self.ui.importDicomButton.enabled = bool(self.logic.lastOutputDirectory and not running)
        folders = self._accumulateFolders()
        accumulateOutput = bool(p and str(p.accumulateOutputDirectory) not in ("", "."))
        self.ui.accumulateButton.enabled = len(folders) >= 2 and accumulateOutput
        self.ui.addRecordedCyclesButton.enabled = bool(p and p.patientId.strip()
                                                       and self.ui.databaseUrlLineEdit.text.strip())

    # -- run in the background ----------------------------------------------------------------
    def onRun(self):
        if self._running():  # the button is disabled while running; a double click must not start two
            return
        if not ensure_dependencies(["numba", "highdicom", "matplotlib"]):
            return
        p = self._parameterNode
        ok, calibration = self.run("The camera calibration folder was not stored.", setCalibrationPath,
                                   self.ui.calibrationPathLineEdit.currentPath)
        if not ok:
            return
        jobDir = tempfile.mkdtemp(prefix="startnet-job-", dir=slicer.app.temporaryPath)
        ok, applied = self.run("Could not prepare the dosimetry.", self.logic.writeJob, jobDir, p.outputDirectory,
                               p.segmentation, p.method, p.pvc, p.patientId, p.cycleNumber, calibration or None,
                               self.logic.marrowPanel(p))
        if not ok:
            return
        from StartNetCoreLib.process import BackgroundJob

        self.ui.logTextEdit.clear()
        if applied is not None:
            self.ui.logTextEdit.appendPlainText(f"Camera calibration: {applied.path}"
                                                + "".join(f"\nwarning: {w}" for w in applied.warnings))
        self.ui.progressBar.setValue(0)
        self.ui.summaryLabel.text = ""
        self._job = BackgroundJob(jobDir, self.onJobEvent, self.onJobFinished)
        ok, _ = self.run("Could not start the dosimetry process.", self._job.start)
        if not ok:
            self._job = None
        self.updateGuiState()

    def onCancel(self):
        if self._running():
            self._job.cancel()

    def onJobEvent(self, event):
        if event.kind == "progress":
            self.ui.progressBar.setValue(int(round(100 * event.fraction)))
            slicer.util.showStatusMessage(f"Dosimetry: {event.text}")
            self.ui.logTextEdit.appendPlainText(f"[{100 * event.fraction:5.1f} %] {event.stage}: {event.text}")
        elif event.kind in ("log", "error"):
            self.ui.logTextEdit.appendPlainText(event.text)

    def onJobFinished(self, job):
        self._job = None
        if job.cancelled:
            slicer.util.showStatusMessage("Dosimetry cancelled; the output folder keeps its previous files.", 5000)
            self.ui.logTextEdit.appendPlainText("Cancelled.")
        elif job.error:
            slicer.util.errorDisplay(f"Dosimetry failed.\n\n{job.error}", windowTitle="START-NET dosimetry")
        elif job.done:
            self.showOutputs(job.done)
        self.updateGuiState()

    def showOutputs(self, done):
        p = self._parameterNode
        ok, outputs = self.run("Could not show the results.", self.logic.showJobOutputs, done, p.segmentation,
                               p.showIsodose)
        if not ok:
            return
        p.doseVolume = outputs.dose_node
        p.resultsTable = outputs.results_table
        self._charts = {role: outputs.nodes[role] for role in ("tac_chart", "dvh_chart") if role in outputs.nodes}
        self.ui.summaryLabel.text = outputs.summary
        background = self.logic.referenceCt(p.segmentation)
        slicer.util.setSliceViewerLayers(background=background or "keep-current", foreground=outputs.dose_node,
                                         foregroundOpacity=0.5, fit=True)
        self.showChart("dvh_chart")

    def showChart(self, role):
        from startnet.mrml.layout import show_chart_and_table

        chart = self._charts.get(role)
        if chart is not None:
            show_chart_and_table(slicer.app.applicationLogic(), chart, self._parameterNode.resultsTable)

    def onImportDicom(self):
        ok, count = self.run("Importing into the DICOM database failed.", self.logic.importIntoDicomDatabase)
        if ok:
            slicer.util.showStatusMessage(f"{count} DICOM file(s) imported into the DICOM database.", 5000)

    # -- trial record ---------------------------------------------------------------------------
    def _storeDatabaseUrl(self):
        """Check the typed database, store it in the application settings; returns it."""
        from startnet.trial.urls import has_password, url_without_password

        text = self.ui.databaseUrlLineEdit.text
        if has_password(text):  # refused by setTrialDatabaseUrl; do not leave the password on screen either
            self.ui.databaseUrlLineEdit.text = url_without_password(text)
        return setTrialDatabaseUrl(text)

    def onRecord(self):
        if not ensure_dependencies(["sqlalchemy", "alembic"]):
            return
        ok, url = self.run("The trial database was not stored.", self._storeDatabaseUrl)
        if not ok:
            return
        p = self._parameterNode
        patientId = p.patientId.strip()
        ok, warnings = self.run("This result cannot be recorded.", self.logic.previewTrialRecord, patientId,
                                p.cycleNumber)
        if not ok:
            return
        if warnings and not slicer.util.confirmOkCancelDisplay(
                "Recording this result as cycle {} of patient {}:\n\n{}\n\nRecord it anyway? The warnings are "
                "stored with the cycle.".format(p.cycleNumber, patientId, "\n".join(f"- {w}" for w in warnings)),
                windowTitle="START-NET trial: check before recording"):
            slicer.util.showStatusMessage("Cycle not recorded.", 5000)
            return
        ok, message = self.run("Recording the cycle failed.", self.logic.recordInTrial, url, patientId, p.cycleNumber)
        if ok:
            slicer.util.infoDisplay(message, windowTitle="START-NET trial")

    # -- accumulation ---------------------------------------------------------------------------
    def _accumulateFolders(self):
        if self.ui is None:
            return []
        return [line.strip() for line in self.ui.accumulateFoldersTextEdit.plainText.splitlines() if line.strip()]

    def onAddRunFolder(self):
        import qt

        folder = qt.QFileDialog.getExistingDirectory(None, "Cycle output folder (results.json, dose.nrrd)")
        if folder:
            self.ui.accumulateFoldersTextEdit.appendPlainText(folder)

    def onAddRecordedCycles(self):
        if not ensure_dependencies(["sqlalchemy", "alembic"]):
            return
        p = self._parameterNode
        ok, found = self.run("Could not read the patient's cycles.", self.logic.recordedRunFolders,
                             self.ui.databaseUrlLineEdit.text, p.patientId)
        if not ok:
            return
        folders, missing = found
        present = set(self._accumulateFolders())
        for folder in folders:
            if folder not in present:
                self.ui.accumulateFoldersTextEdit.appendPlainText(folder)
        if missing:
            slicer.util.warningDisplay("\n".join(missing), windowTitle="START-NET: cycles without a run folder")

    def onAccumulate(self):
        p = self._parameterNode
        ok, shown = self.run("Summing the cycles failed.", self.logic.accumulate, self._accumulateFolders(),
                             p.accumulateOutputDirectory)
        if ok:
            cumulative = shown["cumulative"]
            kidneys = cumulative.get("cumulative_kidneys_mean_gy")
            self.ui.summaryLabel.text = (f"Cumulative kidney dose over {len(cumulative['cycles'])} cycles: "
                                         + (f"{kidneys:.2f} Gy" if kidneys is not None else "n/a")
                                         + "".join(f"\nwarning: {w}" for w in cumulative["warnings"]))
            slicer.util.setSliceViewerLayers(foreground=shown["cumulative_dose"], foregroundOpacity=0.5)
            self.showTable(shown["cumulative_table"])


class DosimetryLogic(ScriptedLoadableModuleLogic):
    def __init__(self):
        ScriptedLoadableModuleLogic.__init__(self)
        from startnet.mrml.dosimetry_logic import DosimetrySceneLogic

        self.core = DosimetrySceneLogic(slicer.mrmlScene)
        self.lastOutputDirectory = None

    @property
    def lastResults(self):
        return self.core.last_results

    def getParameterNode(self):
        from startnet.mrml.trial_logic import forget_scene_secrets

        node = super().getParameterNode()
        forget_scene_secrets(node)  # older versions saved the database URL with the scene
        return DosimetryParameterNode(node)

    @staticmethod
    def marrowPanel(p):
        """The parameter node's red-marrow inputs (``startnet.mrml.dosimetry_options.MarrowPanel``)."""
        from startnet.mrml.dosimetry_options import MarrowPanel

        return MarrowPanel(voi_source=p.marrowVoiSource, mass_model=p.marrowMassModel,
                           patient_mass_kg=p.patientMassKg, blood_samples_path=str(p.bloodSamplesPath),
                           marrow_blood_ratio=p.marrowBloodRatio)

    def writeJob(self, jobDir, outputDirectory, segmentationNode, method="vsv-density", pvc="gtm", patientId="",
                 cycle=None, calibrationPath=None, marrow=None):
        """Write the background job's folder from the scene (no DICOM re-read, no registration).

        ``calibrationPath``: the camera calibration folder (or one CAL.json); the file of the cycle's
        camera is chosen now (refused here when none matches) and applied by the job. ``marrow``: the
        red-marrow inputs (``MarrowPanel``; None = the defaults); the blood samples are read now.
        Returns the calibration (``startnet.calibration.use.AppliedCalibration``) or None.
        """
        from startnet.cycle.job import write_job
        from startnet.mrml.dosimetry_job import check_job_calibration, job_inputs_from_scene
        from startnet.mrml.dosimetry_options import check_job_marrow, panel_run_options

        options = panel_run_options(outputDirectory, method=method, pvc=pvc, patient_id=patientId, cycle=cycle,
                                    calibration_path=calibrationPath, marrow=marrow)
        inputs = job_inputs_from_scene(slicer.mrmlScene, options, segmentation_node=segmentationNode)
        applied = check_job_calibration(inputs)
        check_job_marrow(inputs)
        write_job(jobDir, inputs)
        return applied

    def cycleDefaults(self):
        """(reference SPECT, segmentation) of the scene's loaded cycle; None where there is none."""
        from startnet.mrml import cycle_state

        node = cycle_state.find_cycle_node(slicer.mrmlScene)
        if node is None:
            return None, None
        return cycle_state.reference_spect_node(node), cycle_state.segmentation_node(node)

    def referenceCt(self, segmentationNode):
        if segmentationNode is None:
            return None
        from startnet.mrml.dosimetry_job import segmentation_reference_volume

        return segmentation_reference_volume(segmentationNode)

    def showJobOutputs(self, done, segmentationNode=None, showIsodose=True):
        """A finished job's outputs in the scene; isodose lines when SlicerRT is installed."""
        from startnet.mrml.segmentations import segment_colours

        colours = segment_colours(segmentationNode) if segmentationNode is not None else None
        outputs = self.core.show_job_outputs(done, reference_node=self.referenceCt(segmentationNode),
                                             colours=colours)
        self.lastOutputDirectory = done["out_dir"]
        if showIsodose and hasattr(slicer.modules, "isodose"):  # SlicerRT installed
            from startnet.mrml.dose_display import isodose_levels_gy, show_isodose_lines

            maxGy = outputs.dose_node.GetDisplayNode().GetWindowLevelMax()
            try:
                show_isodose_lines(slicer.mrmlScene, outputs.dose_node, slicer.modules.isodose.logic(),
                                   isodose_levels_gy(maxGy))
            except Exception:  # isodose lines are a view aid: the dose and its numbers stand without them
                logging.warning("SlicerRT isodose lines could not be made", exc_info=True)
        return outputs

    def importIntoDicomDatabase(self):
        """Copy the last run's RT Dose and DICOM SEG into Slicer's DICOM database; returns the file count."""
        import shutil

        from DICOMLib import DICOMUtils

        from startnet.errors import InputError

        if not self.lastOutputDirectory:
            raise InputError("run the dosimetry first")
        files = [pathlib.Path(self.lastOutputDirectory) / name for name in ("rtdose.dcm", "seg.dcm")]
        files = [f for f in files if f.is_file()]
        if not files:
            raise InputError(f"{self.lastOutputDirectory}: no rtdose.dcm or seg.dcm to import")
        if not slicer.dicomDatabase or not slicer.dicomDatabase.isOpen:
            raise InputError("Slicer's DICOM database is not open; open the DICOM module once first")
        folder = pathlib.Path(tempfile.mkdtemp(prefix="startnet-dicom-", dir=slicer.app.temporaryPath))
        try:
            for f in files:
                shutil.copy2(f, folder / f.name)
            # DICOMUtils.importDicom(dicomDataDir, dicomDatabase=None, copyFiles=False): v5.8.1 and v5.10.0
            if not DICOMUtils.importDicom(str(folder), copyFiles=True):
                raise InputError(f"Slicer could not import {', '.join(f.name for f in files)} into the DICOM database")
        finally:
            shutil.rmtree(folder, ignore_errors=True)
        return len(files)

    def previewTrialRecord(self, patientId, cycle):
        return self.core.preview_trial_record(patientId, cycle)

    def recordedRunFolders(self, databaseUrl, patientId):
        """(run folders, notes on cycles without one) of the patient's recorded cycles."""
        from startnet.errors import InputError
        from startnet.mrml.trial_logic import TrialSceneLogic

        if not patientId.strip():
            raise InputError("type the patient ID first")
        url = setTrialDatabaseUrl(databaseUrl)
        return TrialSceneLogic(slicer.mrmlScene).recorded_run_folders(url, patientId.strip())

    def recordInTrial(self, databaseUrl, patientId, cycle):
        return self.core.record_in_trial(databaseUrl, patientId, cycle)

    def accumulate(self, runFolders, outputDirectory):
        from startnet.errors import InputError
        from startnet.mrml.accumulation import accumulate_and_show

        if str(outputDirectory) in ("", "."):
            raise InputError("choose an output folder for the cumulative maps")
        return accumulate_and_show(slicer.mrmlScene, runFolders, str(outputDirectory))


class DosimetryTest(ScriptedLoadableModuleTest):
    def setUp(self):
        slicer.mrmlScene.Clear()

    def runTest(self):
        self.setUp()
        self.test_background_job_kidney_dose()

    def test_background_job_kidney_dose(self):
        """A job from the phantom cycle run in PythonSlicer (as the Run button does) gives the phantom's
        kidney dose, and its outputs are shown in the scene with SlicerRT's dose attributes."""
        import json
        import time

        import SimpleITK as sitk
        from StartNetCoreLib.process import BackgroundJob

        from startnet.cycle.job import JobInputs, write_job
        from startnet.cycle.run import RunOptions
        from startnet.dicomio import Cycle, Timepoint
        from startnet.phantom import PhantomConfig, build_phantom
        from startnet.physics import LU177

        ensure_dependencies(["numba"], prompt=False)
        phantom = build_phantom(PhantomConfig(preset="small", seed=11))
        tps = [Timepoint(tp.hours_post_injection, tp.acquisition_datetime, tp.spect_bqml, tp.ct_hu, f"2.25.{i}1",
                         f"2.25.{i}2", f"2.25.{i}3", f"2.25.{i}4", {"method": "phantom Bq/mL"}, 0)
               for i, tp in enumerate(phantom.timepoints)]
        cycle = Cycle(tps, phantom.injection_datetime, phantom.config.injected_activity_mbq, LU177,
                      phantom.config.patient_id, [], [], [], {})
        masks = {name: sitk.Cast(phantom.labels == value, sitk.sitkUInt8)
                 for value, name in phantom.label_names.items()}
        transforms = [None if i == phantom.reference_index else tp.true_transform
                      for i, tp in enumerate(phantom.timepoints)]
        with tempfile.TemporaryDirectory() as folder:
            out = pathlib.Path(folder) / "out"
            options = RunOptions(input_dir="", out_dir=str(out), method="vsv-density", write_scene=False,
                                 write_report=False)
            write_job(pathlib.Path(folder) / "job", JobInputs(cycle, phantom.reference_index, transforms, masks,
                                                              options))
            finished = []
            job = BackgroundJob(pathlib.Path(folder) / "job", lambda event: None, finished.append)
            job.start()
            self.assertTrue(job.running)
            started = time.time()
            while not finished and time.time() - started < 600:
                slicer.app.processEvents()
                time.sleep(0.05)
            self.assertTrue(finished and finished[0].done, finished and finished[0].error)
            results = json.loads((out / "results.json").read_text())
            for kidney in ("kidney_left", "kidney_right"):
                expected = phantom.truth["structures"][kidney]["mean_dose_gy"]
                self.assertLess(abs(results["structures"][kidney]["mean_gy"] / expected - 1.0), 0.10)
            outputs = DosimetryLogic().showJobOutputs(finished[0].done, showIsodose=False)
            self.assertEqual(outputs.dose_node.GetAttribute("DicomRtImport.DoseVolume"), "1")


if __name__ == "__main__":
    unittest.main()
