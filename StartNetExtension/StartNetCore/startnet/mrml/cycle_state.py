"""The cycle's state in the scene: one node saying which nodes form the cycle, saved with the scene.

A ``vtkMRMLScriptedModuleNode`` named "START-NET cycle" with attribute ``startnet.role`` =
``cycle`` holds
- node references, one role per time point and kind (``startnet.spect.<i>``, ``startnet.ct.<i>``,
  ``startnet.transform.<i>``, ``startnet.bspline.<i>``; ``startnet.segmentation``,
  ``startnet.quality_table``), so they follow node IDs through .mrb save/reload;
- attributes: patient ID, injection datetime (ISO, UTC), injected activity (MBq), nuclide,
  reference time point, number of time points, per-time-point hours p.i. and metadata (series
  UIDs, acquisition datetime, conversion provenance, CT DICOM files for RT Dose export) as JSON.

Node attributes and references are written to the .mrml by every vtkMRMLNode (both Slicer 5.8.1
and 5.10.0) and read back; ``scene.Clear()`` (scene close) removes the node with the rest.
"""

from __future__ import annotations

import json
from typing import Any, Dict, List, Optional

from startnet.errors import InputError

ROLE_ATTRIBUTE = "startnet.role"
CYCLE_ROLE = "cycle"
CYCLE_NODE_NAME = "START-NET cycle"
HOURS_ATTRIBUTE = "startnet.hours_post_injection"
KINDS = ("spect", "ct", "transform", "bspline")
SEGMENTATION_ROLE = "startnet.segmentation"
QUALITY_TABLE_ROLE = "startnet.quality_table"
_COUNT = "startnet.timepoint_count"
_REFERENCE = "startnet.reference_index"
_CYCLE = "startnet.cycle"
_TIMEPOINT = "startnet.timepoint.{index}"
_KEY = "startnet.cycle_key"
NO_CYCLE = ("no START-NET cycle in the scene: load the time points in the Time-point Registration module first "
            "(or load a scene saved after that)")


def _role(kind: str, index: int) -> str:
    if kind not in KINDS:
        raise ValueError(f"node kind {kind!r}: expected one of {', '.join(KINDS)}")
    return f"startnet.{kind}.{index}"


def create_cycle_node(scene, name: str = CYCLE_NODE_NAME):
    node = scene.AddNewNodeByClass("vtkMRMLScriptedModuleNode", name)
    node.SetAttribute(ROLE_ATTRIBUTE, CYCLE_ROLE)
    return node


def find_cycle_nodes(scene) -> List[Any]:
    nodes = scene.GetNodesByClass("vtkMRMLScriptedModuleNode")
    return [nodes.GetItemAsObject(i) for i in range(nodes.GetNumberOfItems())
            if nodes.GetItemAsObject(i).GetAttribute(ROLE_ATTRIBUTE) == CYCLE_ROLE]


def find_cycle_node(scene, key: Optional[str] = None):
    """The scene's cycle node (the one with ``key`` when given; else the last added), or None."""
    nodes = find_cycle_nodes(scene)
    if key is not None:
        nodes = [n for n in nodes if n.GetAttribute(_KEY) == key]
    return nodes[-1] if nodes else None


def require_cycle_node(scene, cycle_node=None):
    node = cycle_node if cycle_node is not None else find_cycle_node(scene)
    if node is None or node.GetAttribute(ROLE_ATTRIBUTE) != CYCLE_ROLE:
        raise InputError(NO_CYCLE)
    if timepoint_count(node) == 0:
        raise InputError(f"cycle node '{node.GetName()}' holds no time points; load the cycle again")
    return node


def cycle_key(node) -> str:
    return node.GetAttribute(_KEY) or ""


def timepoint_count(node) -> int:
    return int(node.GetAttribute(_COUNT) or 0)


def set_timepoint_node(cycle_node, kind: str, index: int, node) -> None:
    cycle_node.SetNodeReferenceID(_role(kind, index), node.GetID() if node is not None else None)


def timepoint_node(cycle_node, kind: str, index: int):
    return cycle_node.GetNodeReference(_role(kind, index))


def reference_index(node) -> int:
    value = node.GetAttribute(_REFERENCE)
    if value in (None, ""):
        raise InputError(f"cycle node '{node.GetName()}' has no reference time point; register the time points")
    return int(value)


def set_reference_index(node, index: int) -> None:
    if not 0 <= index < timepoint_count(node):
        raise InputError(f"reference time point {index}: the cycle has {timepoint_count(node)} time points")
    node.SetAttribute(_REFERENCE, str(int(index)))


def set_segmentation_node(cycle_node, segmentation_node) -> None:
    cycle_node.SetNodeReferenceID(SEGMENTATION_ROLE, segmentation_node.GetID() if segmentation_node else None)


def segmentation_node(cycle_node):
    return cycle_node.GetNodeReference(SEGMENTATION_ROLE)


def cycle_node_of_volume(scene, volume_node):
    """The cycle node one of whose time points holds ``volume_node`` (a CT or SPECT), or None."""
    if volume_node is None:
        return None
    for node in reversed(find_cycle_nodes(scene)):
        for index in range(timepoint_count(node)):
            if any(timepoint_node(node, kind, index) is volume_node for kind in ("ct", "spect")):
                return node
    return None


def reference_spect_node(cycle_node):
    """The reference time point's SPECT, or None before a reference is chosen."""
    value = cycle_node.GetAttribute(_REFERENCE)
    return None if value in (None, "") else timepoint_node(cycle_node, "spect", int(value))


def quality_table_node(cycle_node):
    return cycle_node.GetNodeReference(QUALITY_TABLE_ROLE)


def set_quality_table_node(cycle_node, table_node) -> None:
    cycle_node.SetNodeReferenceID(QUALITY_TABLE_ROLE, table_node.GetID() if table_node else None)


def store_metadata(cycle_node, key: str, cycle: Dict[str, Any], timepoints: List[Dict[str, Any]]) -> None:
    """Cycle-level and per-time-point metadata (JSON-ready dicts) on the cycle node."""
    old = timepoint_count(cycle_node)
    cycle_node.SetAttribute(_KEY, key)
    cycle_node.SetAttribute(_CYCLE, json.dumps(cycle))
    for name in ("patient_id", "injection_datetime", "injected_activity_mbq", "nuclide"):
        cycle_node.SetAttribute(f"startnet.{name}", str(cycle.get(name, "")))
    for index, entry in enumerate(timepoints):
        cycle_node.SetAttribute(_TIMEPOINT.format(index=index), json.dumps(entry))
    for index in range(len(timepoints), old):
        cycle_node.RemoveAttribute(_TIMEPOINT.format(index=index))
        for kind in KINDS:
            set_timepoint_node(cycle_node, kind, index, None)
    cycle_node.SetAttribute(HOURS_ATTRIBUTE, json.dumps([tp["hours_post_injection"] for tp in timepoints]))
    cycle_node.SetAttribute(_COUNT, str(len(timepoints)))


def cycle_metadata(cycle_node) -> Dict[str, Any]:
    text = cycle_node.GetAttribute(_CYCLE)
    if not text:
        raise InputError(f"cycle node '{cycle_node.GetName()}' has no cycle metadata (attribute {_CYCLE}); "
                         "load the cycle again")
    return json.loads(text)


def timepoint_metadata(cycle_node, index: int) -> Dict[str, Any]:
    text = cycle_node.GetAttribute(_TIMEPOINT.format(index=index))
    if not text:
        raise InputError(f"cycle node '{cycle_node.GetName()}' has no metadata for time point {index}; "
                         "load the cycle again")
    return json.loads(text)


def cycle_nodes(cycle_node) -> List[Any]:
    """Every node the cycle made (volumes, transforms, quality table); not the user's segmentation."""
    out = []
    for index in range(timepoint_count(cycle_node)):
        out += [n for n in (timepoint_node(cycle_node, kind, index) for kind in KINDS) if n is not None]
    table = quality_table_node(cycle_node)
    return out + ([table] if table is not None else [])


def clear_cycle(scene, cycle_node, *, remove_nodes: bool = True) -> None:
    """Remove the cycle node (and, with ``remove_nodes``, the nodes it made and their display/storage nodes)."""
    if remove_nodes:
        for node in cycle_nodes(cycle_node):
            count = node.GetNumberOfDisplayNodes() if hasattr(node, "GetNumberOfDisplayNodes") else 0
            for display in [node.GetNthDisplayNode(i) for i in range(count)]:
                if display is not None:
                    scene.RemoveNode(display)
            storage = node.GetStorageNode() if hasattr(node, "GetStorageNode") else None
            if storage is not None:
                scene.RemoveNode(storage)
            scene.RemoveNode(node)
    scene.RemoveNode(cycle_node)
