"""DosimetrySegmentation: kidneys, tumours and organs for dosimetry, and tools to validate them.

Thin Slicer layer over :class:`startnet.mrml.segmentation_logic.SegmentationSceneLogic`
(tested headless with slicer-core). Segments are made at the reference CT's resolution (the
segmentation's reference geometry is the CT), with standard names and terminology. Manual
editing stays in Slicer's Segment Editor; the TotalSegmentator extension is used when installed
(detected, never required).
"""

import unittest
from typing import Annotated

import slicer
from slicer import (
    vtkMRMLMarkupsFiducialNode,
    vtkMRMLScalarVolumeNode,
    vtkMRMLSegmentationNode,
    vtkMRMLTableNode,
)
from slicer.parameterNodeWrapper import WithinRange, parameterNodeWrapper
from slicer.ScriptedLoadableModule import (
    ScriptedLoadableModule,
    ScriptedLoadableModuleLogic,
    ScriptedLoadableModuleTest,
)
from StartNetCoreLib.widget import StartNetModuleWidget


class DosimetrySegmentation(ScriptedLoadableModule):
    def __init__(self, parent):
        ScriptedLoadableModule.__init__(self, parent)
        self.parent.title = "Dosimetry Segmentation (START-NET)"
        self.parent.categories = ["Nuclear Medicine.START-NET"]
        self.parent.dependencies = ["StartNetCore"]
        self.parent.contributors = ["START-NET dosimetry developers"]
        self.parent.helpText = (
            "Segments kidneys (seeded SPECT region growing constrained by CT, optional cortex only), tumours "
            "(threshold relative to the local maximum) and liver/spleen; imports .seg.nrrd, DICOM SEG or "
            "labelmaps; compares two segmentations (Dice, Jaccard, HD95, mean surface distance, volume and "
            "mean-dose differences) so physicists can validate them."
        )
        self.parent.acknowledgementText = "START-NET trial (NCT05387603)."


@parameterNodeWrapper
class DosimetrySegmentationParameterNode:
    referenceCt: vtkMRMLScalarVolumeNode
    referenceSpect: vtkMRMLScalarVolumeNode
    segmentation: vtkMRMLSegmentationNode
    seedPoints: vtkMRMLMarkupsFiducialNode
    cortexOnly: bool = False
    tumourThresholdPercent: Annotated[float, WithinRange(5.0, 95.0)] = 40.0
    comparisonSegmentation: vtkMRMLSegmentationNode
    doseVolume: vtkMRMLScalarVolumeNode
    comparisonTable: vtkMRMLTableNode


class DosimetrySegmentationWidget(StartNetModuleWidget):
    MODULE_NAME = "DosimetrySegmentation"

    def __init__(self, parent=None):
        StartNetModuleWidget.__init__(self, parent)
        self.logicClass = DosimetrySegmentationLogic

    def connectSignals(self):
        self.ui.autoSegmentButton.connect("clicked(bool)", self.onAutoSegment)
        self.ui.segmentFromSeedsButton.connect("clicked(bool)", self.onSegmentFromSeeds)
        self.ui.importSegmentationButton.connect("clicked(bool)", self.onImport)
        self.ui.totalSegmentatorButton.connect("clicked(bool)", self.onTotalSegmentator)
        self.ui.compareButton.connect("clicked(bool)", self.onCompare)

    def updateGuiState(self, caller=None, event=None):
        p = self._parameterNode
        ct = bool(p and p.referenceCt)
        images = ct and bool(p.referenceSpect)
        self.ui.autoSegmentButton.enabled = images
        self.ui.segmentFromSeedsButton.enabled = images and bool(p.seedPoints)
        # segments are made at the reference CT's resolution: every action needs it
        self.ui.importSegmentationButton.enabled = ct
        self.ui.totalSegmentatorButton.enabled = ct and self.logic.totalSegmentatorAvailable()
        self.ui.compareButton.enabled = ct and bool(p.segmentation and p.comparisonSegmentation)

    def _segmentationNode(self):
        p = self._parameterNode
        if not p.segmentation:
            p.segmentation = slicer.mrmlScene.AddNewNodeByClass("vtkMRMLSegmentationNode", "Structures")
            p.segmentation.CreateDefaultDisplayNodes()
        return p.segmentation

    # Each handler does all its work inside ``tryWithErrorDisplay``: it shows the error and then
    # re-raises (Slicer v5.8.1 and v5.10.0), so no statement after the ``with`` would run on error
    # and none relies on a return value.
    def onAutoSegment(self):
        p = self._parameterNode
        with slicer.util.tryWithErrorDisplay("Automatic kidney segmentation failed.", waitCursor=True):
            self.logic.autoSegmentKidneys(p.referenceCt, p.referenceSpect, self._segmentationNode(), p.cortexOnly)
            self._showLog()

    def onSegmentFromSeeds(self):
        p = self._parameterNode
        with slicer.util.tryWithErrorDisplay("Seeded segmentation failed.", waitCursor=True):
            self.logic.segmentFromSeeds(p.referenceCt, p.referenceSpect, p.seedPoints, self._segmentationNode(),
                                        p.cortexOnly, p.tumourThresholdPercent)
            self._showLog()

    def onImport(self):
        import qt

        path = qt.QFileDialog.getOpenFileName(None, "Import segmentation", "",
                                              "Segmentations (*.seg.nrrd *.dcm *.nii *.nii.gz *.nrrd);;All files (*)")
        if not path:
            return
        from StartNetCoreLib.dependencies import ensure_dependencies

        if path.lower().endswith(".dcm") and not ensure_dependencies(["highdicom", "skimage"]):
            return  # DICOM SEG needs highdicom, RTSTRUCT scikit-image
        p = self._parameterNode
        with slicer.util.tryWithErrorDisplay("Importing the segmentation failed.", waitCursor=True):
            self.logic.importSegmentation(path, p.referenceCt, self._segmentationNode())
            self._showLog()

    def onTotalSegmentator(self):
        p = self._parameterNode
        with slicer.util.tryWithErrorDisplay("TotalSegmentator failed.", waitCursor=True):
            self.logic.runTotalSegmentator(p.referenceCt, self._segmentationNode())
            self._showLog()

    def onCompare(self):
        p = self._parameterNode
        with slicer.util.tryWithErrorDisplay("Comparison failed.", waitCursor=True):
            table = self.logic.compare(p.segmentation, p.comparisonSegmentation, p.referenceCt, p.doseVolume,
                                       p.comparisonTable)
            p.comparisonTable = table
            self.showTable(table)

    def _showLog(self):
        if self.logic.core.log:
            slicer.util.showStatusMessage("; ".join(self.logic.core.log), 10000)


class DosimetrySegmentationLogic(ScriptedLoadableModuleLogic):
    def __init__(self):
        ScriptedLoadableModuleLogic.__init__(self)
        from startnet.mrml.segmentation_logic import SegmentationSceneLogic

        self.core = SegmentationSceneLogic(slicer.mrmlScene)

    def getParameterNode(self):
        return DosimetrySegmentationParameterNode(super().getParameterNode())

    def autoSegmentKidneys(self, ctNode, spectNode, segmentationNode, cortexOnly=False):
        return self.core.auto_segment_kidneys(ctNode, spectNode, segmentationNode, cortex_only=cortexOnly)

    def segmentFromSeeds(self, ctNode, spectNode, seedNode, segmentationNode, cortexOnly=False, thresholdPercent=40.0):
        return self.core.segment_from_seeds(ctNode, spectNode, seedNode, segmentationNode, cortex_only=cortexOnly,
                                            tumour_threshold_percent=thresholdPercent)

    def importSegmentation(self, path, ctNode, segmentationNode):
        return self.core.import_segmentation(path, ctNode, segmentationNode)

    def compare(self, segmentationA, segmentationB, ctNode, doseNode=None, tableNode=None):
        return self.core.compare(segmentationA, segmentationB, ctNode, dose_node=doseNode, table_node=tableNode)

    @staticmethod
    def totalSegmentatorAvailable():
        return hasattr(slicer.modules, "totalsegmentator")

    def runTotalSegmentator(self, ctNode, segmentationNode):
        """Kidneys, liver, spleen, bladder and the lumbar vertebrae L2-L4 (the image-based marrow VOIs,
        as ``vertebra_L2..L4``) from TotalSegmentator, merged into ``segmentationNode``.

        Uses the extension's logic without its GUI; TotalSegmentator writes into a temporary node
        (its reader removes all segments of its output node), then the wanted segments replace
        the same-named segments of ``segmentationNode``; the user's other segments are kept.
        Always TotalSegmentator's fast mode (3 mm model of the ``total`` task; the panel has no
        quality option and says so in the button's tooltip).
        """
        if not self.totalSegmentatorAvailable():
            raise RuntimeError("The TotalSegmentator extension is not installed (Extension Manager).")
        import TotalSegmentator

        from startnet.mrml.segmentation_logic import TOTALSEGMENTATOR_STRUCTURES
        from startnet.mrml.totalsegmentator import run_totalsegmentator

        merged = run_totalsegmentator(
            slicer.mrmlScene, TotalSegmentator.TotalSegmentatorLogic(), ctNode,
            lambda temporary: self.core.merge_segments(temporary, segmentationNode, ctNode,
                                                       TOTALSEGMENTATOR_STRUCTURES),
            TOTALSEGMENTATOR_STRUCTURES, fast=True, log=lambda line: slicer.util.showStatusMessage(line),
        )
        return merged


class DosimetrySegmentationTest(ScriptedLoadableModuleTest):
    """Seeded kidneys match the phantom's true kidneys (Dice on the CT grid); comparison of identical masks.

    The seeded scenario runs headless in Testing/mrml/test_module_selftests.py (startnet.mrml.selftest).
    """

    def setUp(self):
        slicer.mrmlScene.Clear()

    def runTest(self):
        self.setUp()
        self.test_seeded_kidneys_match_the_phantom()
        self.setUp()
        self.test_compare_identical_segmentations()

    def test_seeded_kidneys_match_the_phantom(self):
        from StartNetCoreLib.dependencies import ensure_dependencies

        # the phantom renderer needs numba, absent on a clean Slicer: install it without asking
        self.assertTrue(ensure_dependencies(["numba"], prompt=False))
        from startnet.mrml.selftest import KIDNEY_DICE_MINIMUM, kidney_dice, seeded_kidney_inputs, segmentation_phantom

        phantom = segmentation_phantom()
        ctNode, spectNode, seedNode = seeded_kidney_inputs(slicer.mrmlScene, phantom)
        segmentationNode = slicer.mrmlScene.AddNewNodeByClass("vtkMRMLSegmentationNode", "Structures")
        DosimetrySegmentationLogic().segmentFromSeeds(ctNode, spectNode, seedNode, segmentationNode)
        dice = kidney_dice(slicer.mrmlScene, segmentationNode, phantom)
        for kidney, value in dice.items():
            self.assertGreater(value, KIDNEY_DICE_MINIMUM, kidney)

    def test_compare_identical_segmentations(self):
        import numpy as np
        import SimpleITK as sitk

        from startnet.mrml.segmentations import masks_to_segmentation
        from startnet.mrml.volumes import sitk_to_volume

        reference = sitk.Image(32, 32, 32, sitk.sitkFloat32)
        reference.SetSpacing((4.0, 4.0, 4.0))
        mask = np.zeros((32, 32, 32), bool)
        mask[8:20, 10:22, 12:24] = True
        referenceNode = sitk_to_volume(slicer.mrmlScene, reference, "reference")
        a = masks_to_segmentation(slicer.mrmlScene, {"kidney_left": mask}, reference, "A")
        b = masks_to_segmentation(slicer.mrmlScene, {"kidney_left": mask}, reference, "B")
        table = DosimetrySegmentationLogic().compare(a, b, referenceNode)
        self.assertAlmostEqual(float(table.GetTable().GetValueByName(0, "dice").ToDouble()), 1.0, places=6)


if __name__ == "__main__":
    unittest.main()
