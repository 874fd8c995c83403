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
from StartNetCoreLib.dependencies import ensure_dependencies, missing_requirements
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
    def setUp(self):
        slicer.mrmlScene.Clear()

    def runTest(self):
        self.setUp()
        self.test_package_imports_and_reports_versions()

    def test_package_imports_and_reports_versions(self):
        import startnet
        from startnet.physics.lu177 import LU177

        report = StartNetCoreLogic().environmentReport()
        self.assertEqual(report["startnet"], startnet.__version__)
        self.assertAlmostEqual(LU177.half_life_h, 159.528, places=3)
        self.assertIsNotNone(report["dependencies"]["numpy"])


if __name__ == "__main__":
    unittest.main()
