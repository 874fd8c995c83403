"""The cycle in the subject hierarchy: patient -> cycle (study level) -> one folder per time point.

Items are found again by attribute on a re-load (nothing is duplicated). The patient item is the
DICOM module's own one when it has the same PatientID (attribute ``DICOM.PatientID``). In a bare
scene (slicer-core) adding a data node does not create its item, so it is created here
(``GetItemByDataNode(node) or CreateItem(parent, node)``); the calls exist in Slicer v5.8.1 and
v5.10.0 (vtkMRMLSubjectHierarchyNode.h).
"""

from __future__ import annotations

from typing import Iterable

import slicer
import vtk

CYCLE_KEY_ATTRIBUTE = "startnet.cycle_key"
TIMEPOINT_ATTRIBUTE = "startnet.timepoint_index"


def _sh(scene):
    return slicer.vtkMRMLSubjectHierarchyNode.GetSubjectHierarchyNode(scene)


def _children(sh, parent) -> list:
    ids = vtk.vtkIdList()
    sh.GetItemChildren(parent, ids)
    return [ids.GetId(i) for i in range(ids.GetNumberOfIds())]


def _child_with_attribute(sh, parent, name: str, value: str):
    for item in _children(sh, parent):
        if sh.GetItemAttribute(item, name) == value:
            return item
    return 0


def patient_item(scene, patient_id: str):
    sh = _sh(scene)
    attribute = slicer.vtkMRMLSubjectHierarchyConstants.GetDICOMPatientIDAttributeName()
    item = _child_with_attribute(sh, sh.GetSceneItemID(), attribute, patient_id)
    if not item:
        item = sh.CreateSubjectItem(sh.GetSceneItemID(), patient_id or "Patient")
        sh.SetItemAttribute(item, attribute, patient_id)
    return item


def cycle_item(scene, patient, key: str, name: str):
    sh = _sh(scene)
    item = _child_with_attribute(sh, patient, CYCLE_KEY_ATTRIBUTE, key)
    if not item:
        item = sh.CreateStudyItem(patient, name)
        sh.SetItemAttribute(item, CYCLE_KEY_ATTRIBUTE, key)
    sh.SetItemName(item, name)
    return item


def timepoint_folder(scene, cycle, index: int, name: str):
    sh = _sh(scene)
    item = _child_with_attribute(sh, cycle, TIMEPOINT_ATTRIBUTE, str(index))
    if not item:
        item = sh.CreateFolderItem(cycle, name)
        sh.SetItemAttribute(item, TIMEPOINT_ATTRIBUTE, str(index))
    sh.SetItemName(item, name)
    return item


def place_nodes(scene, parent, nodes: Iterable) -> None:
    """Put each data node's item under ``parent`` (creating the item in a bare scene)."""
    sh = _sh(scene)
    for node in nodes:
        if node is None:
            continue
        item = sh.GetItemByDataNode(node) or sh.CreateItem(parent, node)
        sh.SetItemParent(item, parent)


def remove_stale_folders(scene, cycle, count: int) -> None:
    """Remove time point folders beyond ``count`` (a re-load with fewer time points)."""
    sh = _sh(scene)
    for item in _children(sh, cycle):
        index = sh.GetItemAttribute(item, TIMEPOINT_ATTRIBUTE)
        if index and int(index) >= count:
            sh.RemoveItem(item)


def item_path(scene, node) -> list:
    """Names from the patient down to the node's item (for display and tests)."""
    sh = _sh(scene)
    item = sh.GetItemByDataNode(node)
    names = []
    while item and item != sh.GetSceneItemID():
        names.append(sh.GetItemName(item))
        item = sh.GetItemParent(item)
    return names[::-1]


def item_level(scene, node, depth: int) -> str:
    """Level of the ancestor ``depth`` steps above the node's item (0 = the item itself)."""
    sh = _sh(scene)
    item = sh.GetItemByDataNode(node)
    for _ in range(depth):
        item = sh.GetItemParent(item)
    return sh.GetItemLevel(item)


def cycle_item_of(scene, cycle_node):
    """The subject hierarchy item of a cycle node's cycle (0 when there is none, e.g. it was deleted)."""
    from startnet.mrml.cycle_state import cycle_key

    sh = _sh(scene)
    key = cycle_key(cycle_node)
    for patient in _children(sh, sh.GetSceneItemID()):
        item = _child_with_attribute(sh, patient, CYCLE_KEY_ATTRIBUTE, key)
        if item:
            return item
    return 0
