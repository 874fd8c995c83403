"""StartNetCore: hidden module that ships the ``startnet`` Python package into Slicer.

The other START-NET modules declare ``dependencies = ["StartNetCore"]`` so Slicer loads this
module (and puts its directory, which holds ``startnet``, on ``sys.path``) before them.
"""

import unittest

import slicer
from slicer.parameterNodeWrapper import parameterNodeWrapper
from slicer.ScriptedLoadableModule import (
    ScriptedLoadableModule,
    ScriptedLoadableModuleLogic,
    ScriptedLoadableModuleTest,
)
from StartNetCoreLib.dependencies import ensure_dependencies, missing_requirements, requirements_for_this_python
from StartNetCoreLib.sampledata import SAMPLE_NAME, loadSampleCycle, registerSampleData
from StartNetCoreLib.widget import StartNetModuleWidget


class StartNetCore(ScriptedLoadableModule):
    def __init__(self, parent):
        ScriptedLoadableModule.__init__(self, parent)
        self.parent.title = "START-NET Core"
        self.parent.categories = ["Nuclear Medicine.START-NET"]
        self.parent.dependencies = []
        self.parent.hidden = True
        self.parent.contributors = ["START-NET dosimetry developers"]
        self.parent.helpText = (
            "Ships the startnet Python package (DICOM ingestion, registration, segmentation, kinetics, "
            "dosimetry, trial tracking) used by the START-NET modules."
        )
        self.parent.acknowledgementText = "START-NET trial, Region Skåne and the four Swedish university hospitals."
        # The phantom cycle in Sample Data, registered once startup is complete (Slicer's scripted-module
        # template does the same at v5.8.1 and v5.10.0; startupCompleted() is emitted with or without main window).
        slicer.app.connect("startupCompleted()", registerSampleData)


@parameterNodeWrapper
class StartNetCoreParameterNode:
    """Whether the user has agreed to install optional dependencies on first use."""

    installDependenciesOnDemand: bool = True


class StartNetCoreWidget(StartNetModuleWidget):
    MODULE_NAME = "StartNetCore"

    def __init__(self, parent=None):
        StartNetModuleWidget.__init__(self, parent)
        self.logicClass = StartNetCoreLogic

    def connectSignals(self):
        self.ui.checkDependenciesButton.connect("clicked(bool)", self.onCheckDependencies)
        self.ui.installDependenciesButton.connect("clicked(bool)", self.onInstallDependencies)

    def onCheckDependencies(self):
        report = self.logic.environmentReport()
        lines = [f"startnet {report['startnet']} on Python {report['python']}"]
        lines += [f"{name}: {version or 'NOT INSTALLED'}" for name, version in report["dependencies"].items()]
        self.ui.dependencyStatusLabel.text = "\n".join(lines)

    def onInstallDependencies(self):
        self.run("Installing dependencies failed.", ensure_dependencies)
        self.onCheckDependencies()


class StartNetCoreLogic(ScriptedLoadableModuleLogic):
    def getParameterNode(self):
        return StartNetCoreParameterNode(super().getParameterNode())

    def environmentReport(self):
        from startnet.about import environment_report

        return environment_report()

    def missingRequirements(self):
        return missing_requirements()


class StartNetCoreTest(ScriptedLoadableModuleTest):
    """Runs on a clean Slicer (build farm): installs what a test needs first, without asking."""

    def setUp(self):
        slicer.mrmlScene.Clear()

    def runTest(self):
        self.setUp()
        self.test_package_imports_and_reports_versions()
        self.setUp()
        self.test_dependency_choice_keeps_slicer_packages_and_zones_work()
        self.setUp()
        self.test_phantom_sample_data_is_registered_and_generated()

    def test_package_imports_and_reports_versions(self):
        import startnet
        from startnet.physics.lu177 import LU177

        report = StartNetCoreLogic().environmentReport()
        self.assertEqual(report["startnet"], startnet.__version__)
        self.assertAlmostEqual(LU177.half_life_h, 159.528, places=3)
        self.assertIsNotNone(report["dependencies"]["numpy"])

    def test_dependency_choice_keeps_slicer_packages_and_zones_work(self):
        import datetime

        import pydicom

        from startnet.dicomio.timing import get_zone

        chosen = requirements_for_this_python()
        if int(pydicom.__version__.split(".")[0]) < 3:  # Slicer 5.8 and 5.10 bundle pydicom 2.4.4
            self.assertEqual(chosen["highdicom"], "highdicom>=0.22,<0.23")
        # Windows has no zone files: tzdata is installed here (no prompt), elsewhere nothing is missing
        self.assertTrue(ensure_dependencies(["tzdata"], prompt=False))
        summer = datetime.datetime(2026, 7, 1, 12, 0)
        self.assertEqual(get_zone("Europe/Stockholm").utcoffset(summer), datetime.timedelta(hours=2))

    def test_phantom_sample_data_is_registered_and_generated(self):
        import os
        import tempfile

        import SampleData
        from DICOMLib import DICOMUtils

        slicer.app.processEvents()  # let a pending startupCompleted() register the source
        source = SampleData.SampleDataLogic().sourceForSampleName(SAMPLE_NAME)
        self.assertIsNotNone(source, "the phantom cycle is not registered in Sample Data")
        self.assertIsNotNone(source.customDownloader)

        with tempfile.TemporaryDirectory() as cacheDir:
            originalDatabase = DICOMUtils.openTemporaryDatabase()  # under slicer.app.temporaryPath
            try:
                sample = loadSampleCycle(prompt=False, cacheDir=cacheDir, openModule=False)
                self.assertIsNotNone(sample)
                self.assertTrue(sample.generated)
                self.assertTrue(os.path.isdir(sample.dicom_dir))
                self.assertIsNotNone(DICOMUtils.getDatabasePatientUIDByPatientID(sample.manifest["patient_id"]))
                again = loadSampleCycle(prompt=False, cacheDir=cacheDir, openModule=False)
                self.assertFalse(again.generated)
            finally:
                DICOMUtils.closeTemporaryDatabase(originalDatabase)


if __name__ == "__main__":
    unittest.main()
