"""An absorbed-dose volume shown as a physicist reads it, and recognised by SlicerRT.

- Colour: SlicerRT's dose colour table ("Dose_ColorTable", made by its Isodose logic when the
  extension is loaded) if the scene has it, else our own blue-to-red table (same idea: a
  stretched isodose ramp), window 0 .. maximum dose.
- No colour wash over air: ``AutoThresholdOff`` + lower threshold at a fraction of the maximum
  (default 3 %) + ``SetApplyThreshold(1)``, as SlicerRT's RT Dose import does
  (vtkSlicerDicomRtImportExportModuleLogic.cxx LoadRtDose). vtkMRMLScalarVolumeDisplayNode.h,
  Slicer v5.8.1 and v5.10.0.
- Units: ``SetVoxelValueUnits`` with UCUM "Gy" (vtkMRMLScalarVolumeNode.h 84, v5.8.1 and v5.10.0).
- SlicerRT: node attribute ``DicomRtImport.DoseVolume`` (vtkSlicerRtCommon.cxx, IsDoseVolumeNode)
  and, on the dose's Study-level subject-hierarchy ancestor, ``DicomRtImport.DoseUnitName`` =
  "GY" (Isodose compares it exactly) and ``DicomRtImport.DoseUnitValue`` = "1.0" (voxels are Gy).
- Isodose lines (SlicerRT installed only): :func:`show_isodose_lines` with the module's logic.
"""

from __future__ import annotations

import colorsys
import math
from typing import List, Optional, Sequence

import numpy as np

DOSE_VOLUME_ATTRIBUTE = "DicomRtImport.DoseVolume"
DOSE_UNIT_NAME_ATTRIBUTE = "DicomRtImport.DoseUnitName"
DOSE_UNIT_VALUE_ATTRIBUTE = "DicomRtImport.DoseUnitValue"
DOSE_UNIT_NAME = "GY"
DOSE_UNIT_VALUE = "1.0"
SLICERRT_DOSE_COLOR_TABLE = "Dose_ColorTable"
COLOR_TABLE_NAME = "StartNet_DoseColorTable"
GY_UNITS = ("Gy", "UCUM", "Gray")
DEFAULT_LOWER_THRESHOLD_FRACTION = 0.03
STUDY_NAME = "START-NET dosimetry"


def dose_colour_table(scene):
    """SlicerRT's dose colour table when present, else the START-NET one (made once per scene)."""
    for name in (SLICERRT_DOSE_COLOR_TABLE, COLOR_TABLE_NAME):
        nodes = scene.GetNodesByName(name)
        if nodes.GetNumberOfItems():
            return nodes.GetItemAsObject(0)
    import slicer

    table = slicer.vtkMRMLColorTableNode()
    table.SetName(COLOR_TABLE_NAME)
    table.SetSingletonTag(COLOR_TABLE_NAME)
    table.SetTypeToUser()
    table.SetNumberOfColors(256)
    for i in range(256):  # hue 2/3 (blue) -> 0 (red), full saturation and value
        r, g, b = colorsys.hsv_to_rgb((2.0 / 3.0) * (1.0 - i / 255.0), 1.0, 1.0)
        table.SetColor(i, f"{i}", r, g, b, 1.0)
    table.SaveWithSceneOff()  # made again on load, like SlicerRT's
    scene.AddNode(table)
    return table


def set_units(volume_node, units: Sequence[str] = GY_UNITS) -> None:
    """Voxel value units as a coded entry (value, scheme, meaning); e.g. ("Gy", "UCUM", "Gray")."""
    import slicer

    entry = slicer.vtkCodedEntry()
    entry.SetValueSchemeMeaning(*units)
    volume_node.SetVoxelValueUnits(entry)


def display_dose(dose_node, colour_table, *, lower_threshold_fraction: float = DEFAULT_LOWER_THRESHOLD_FRACTION,
                 max_gy: Optional[float] = None) -> float:
    """Colour table, window 0..max and lower threshold on the dose's display node; returns max (Gy)."""
    import slicer

    if max_gy is None:
        values = slicer.util.arrayFromVolume(dose_node)
        max_gy = float(np.nanmax(values)) if values.size else 0.0
    max_gy = max(float(max_gy), 1e-6)
    if dose_node.GetDisplayNode() is None:
        dose_node.CreateDefaultDisplayNodes()
    display = dose_node.GetDisplayNode()
    display.SetAndObserveColorNodeID(colour_table.GetID())
    display.AutoWindowLevelOff()
    display.SetWindowLevelMinMax(0.0, max_gy)
    display.AutoThresholdOff()
    display.SetLowerThreshold(lower_threshold_fraction * max_gy)
    display.SetUpperThreshold(max_gy * 2.0)
    display.SetApplyThreshold(1)
    return max_gy


def _sh(scene):
    import slicer

    return slicer.vtkMRMLSubjectHierarchyNode.GetSubjectHierarchyNode(scene)


def _item(sh, node, parent):
    item = sh.GetItemByDataNode(node)
    if not item:  # a bare scene (headless) does not make items for new nodes; the application does
        item = sh.CreateItem(parent, node)
    return item


def dose_study_item(scene, dose_node, reference_node=None) -> int:
    """Put the dose under a Study item with SlicerRT's dose-unit attributes; returns the study item.

    The study is the reference volume's Study-level ancestor (the patient's study, as SlicerRT
    puts an imported RT Dose), unless that study already declares other dose units: then, and
    without a reference, a "START-NET dosimetry" study (under the reference's patient if any).
    """
    sh = _sh(scene)
    root = sh.GetSceneItemID()
    study_level = "Study"
    study = 0
    patient = 0
    if reference_node is not None:
        reference_item = sh.GetItemByDataNode(reference_node)
        if reference_item:
            study = sh.GetItemAncestorAtLevel(reference_item, study_level)
            patient = sh.GetItemAncestorAtLevel(reference_item, "Patient")
    if study and sh.GetItemAttribute(study, DOSE_UNIT_NAME_ATTRIBUTE) not in ("", DOSE_UNIT_NAME):
        study = 0
    if not study:
        item = sh.GetItemByDataNode(dose_node)
        current = sh.GetItemAncestorAtLevel(item, study_level) if item else 0
        if current and sh.GetItemAttribute(current, DOSE_UNIT_NAME_ATTRIBUTE) in ("", DOSE_UNIT_NAME):
            study = current
    if not study:
        parent = patient or root
        study = sh.GetItemChildWithName(parent, STUDY_NAME)
        if not study or sh.GetItemLevel(study) != study_level:
            study = sh.CreateStudyItem(parent, STUDY_NAME)
    sh.SetItemAttribute(study, DOSE_UNIT_NAME_ATTRIBUTE, DOSE_UNIT_NAME)
    sh.SetItemAttribute(study, DOSE_UNIT_VALUE_ATTRIBUTE, DOSE_UNIT_VALUE)
    item = _item(sh, dose_node, study)
    if sh.GetItemAncestorAtLevel(item, study_level) != study:
        sh.SetItemParent(item, study)
    return study


def show_dose(scene, dose_node, *, reference_node=None,
              lower_threshold_fraction: float = DEFAULT_LOWER_THRESHOLD_FRACTION) -> float:
    """Everything above on ``dose_node`` (a float Gy volume); returns its maximum (Gy)."""
    dose_node.SetAttribute(DOSE_VOLUME_ATTRIBUTE, "1")
    set_units(dose_node)
    max_gy = display_dose(dose_node, dose_colour_table(scene), lower_threshold_fraction=lower_threshold_fraction)
    dose_study_item(scene, dose_node, reference_node)
    return max_gy


def isodose_levels_gy(max_gy: float, count: int = 6) -> List[float]:
    """About ``count`` round dose levels (1, 2 or 5 x 10^n Gy steps) below ``max_gy``, lowest first."""
    if not max_gy > 0 or count < 1:
        return []
    raw = max_gy / (count + 1)
    magnitude = 10.0 ** math.floor(math.log10(raw))
    step = next(m * magnitude for m in (1.0, 2.0, 5.0, 10.0) if m * magnitude >= raw)
    levels = [round(step * k, 10) for k in range(1, count + 2) if step * k < max_gy]
    return levels[:count]


def show_isodose_lines(scene, dose_node, isodose_logic, levels_gy: Sequence[float]):
    """Isodose lines of ``dose_node`` with SlicerRT's Isodose logic (``slicer.modules.isodose.logic()``).

    The levels are the names of the dose's isodose colour table (SlicerRT convention); units Gy
    (the study says "GY"). Returns the isodose parameter node (reused for the same dose).
    Needs SlicerRT (``vtkMRMLIsodoseNode`` exists only then); callers check
    ``hasattr(slicer.modules, "isodose")`` first.
    """
    import slicer

    node = None
    nodes = scene.GetNodesByClass("vtkMRMLIsodoseNode")
    for i in range(nodes.GetNumberOfItems()):
        candidate = nodes.GetItemAsObject(i)
        if candidate.GetDoseVolumeNode() is dose_node:
            node = candidate
    if node is None:
        node = scene.AddNewNodeByClass("vtkMRMLIsodoseNode", f"{dose_node.GetName()} isodose")
        node.SetAndObserveDoseVolumeNode(dose_node)
    node.SetDoseUnits(slicer.vtkMRMLIsodoseNode.Gy)
    table = isodose_logic.SetupColorTableNodeForDoseVolumeNode(dose_node)
    node.SetAndObserveColorTableNode(table)
    isodose_logic.SetNumberOfIsodoseLevels(node, len(levels_gy))
    for index, level in enumerate(levels_gy):
        table.SetColorName(index, f"{level:g}")
    isodose_logic.CreateIsodoseSurfaces(node)
    return node
