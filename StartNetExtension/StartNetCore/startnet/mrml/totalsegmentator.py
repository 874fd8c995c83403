"""Running SlicerTotalSegmentator for the dosimetry structures, on Slicer 5.8 and 5.10.

The extension's logic changed its API between the builds users get:

* Slicer 5.8 (ExtensionsIndex branch 5.8 -> SlicerTotalSegmentator branch ``5.8``, 2e5f9c3) and
  Slicer 5.10.0 at release (``main`` = 2e5f9c3): ``process(inputVolume, outputSegmentation,
  fast=True, cpu=False, task=None, subset=None, interactive=False, sequenceBrowserNode=None)``;
* ``main`` a1f8b4a (2026-02-11): ``fast=True, fastest=False, ...`` before ``cpu``;
* ``main`` since a40fc4d (2026-02-21, what Slicer 5.10 installs today): ``quality=None`` instead
  of ``fast`` (``fast=`` is a TypeError).

:func:`process_kwargs` reads the installed ``process`` signature and builds the keyword
arguments for it. :func:`run_totalsegmentator` follows what the TotalSegmentator widget does
(``setupPythonRequirements()`` first) but never hands the user's segmentation to ``process``:
its reader starts with ``RemoveAllSegments()`` (``readSegmentationFolder``, 2e5f9c3:1148,
main:1264). It writes into a new temporary node and merges the wanted segments.
"""

from __future__ import annotations

import inspect
from typing import Callable, Dict, List, Optional, Sequence

from startnet.errors import InputError

# Pipeline name -> TotalSegmentator class name where they differ (the CSV
# Resources/totalsegmentator_snomed_mapping.csv of SlicerTotalSegmentator 2e5f9c3 and 6a82370 lists
# vertebrae_L1..L5; ``process`` refuses a subset name that is not in it).
TOTALSEGMENTATOR_CLASSES = {"vertebra_L2": "vertebrae_L2", "vertebra_L3": "vertebrae_L3", "vertebra_L4": "vertebrae_L4"}


def totalsegmentator_subset(structures: Sequence[str]) -> List[str]:
    """TotalSegmentator class names of pipeline structure names (``vertebra_L2`` -> ``vertebrae_L2``)."""
    return [TOTALSEGMENTATOR_CLASSES.get(name, name) for name in structures]


def process_kwargs(process: Callable, subset: Sequence[str], *, fast: bool = True) -> Dict[str, object]:
    """Keyword arguments for the installed ``TotalSegmentatorLogic.process`` (only ``subset`` computed).

    ``subset`` holds pipeline names; TotalSegmentator gets its class names (:func:`totalsegmentator_subset`).
    With a subset and ``task=None`` both versions run TotalSegmentator without ``--task`` (its
    default task ``total``, whose classes include vertebrae_L1..L5 -- the extension's task list says
    "for CT this is part of the `total` task") with ``--roi_subset``, and read one
    ``<class>.nii.gz`` per subset name into a segment whose ID and name are the class name
    (``readSegmentationFolder``, 2e5f9c3:1178-1187, 6a82370:1294-1303); a class outside the field
    of view is logged "not found" and left out.
    """
    parameters = inspect.signature(process).parameters
    kwargs: Dict[str, object] = {}
    if "quality" in parameters:
        kwargs["quality"] = "fast" if fast else "normal"
    elif "fast" in parameters:
        kwargs["fast"] = bool(fast)
    else:
        raise InputError("this TotalSegmentator version's process() has neither quality= nor fast=; "
                         "update the TotalSegmentator extension")
    if "subset" not in parameters or "task" not in parameters:
        raise InputError("this TotalSegmentator version's process() has no subset=/task=; "
                         "update the TotalSegmentator extension")
    if not subset:
        raise InputError("TotalSegmentator: no structure requested")
    kwargs["task"] = None  # with a subset and no task, TotalSegmentator runs --roi_subset
    kwargs["subset"] = totalsegmentator_subset(subset)
    return kwargs


def run_totalsegmentator(scene, ts_logic, ct_node, merge: Callable[[object], List[str]], subset: Sequence[str], *,
                         fast: bool = True, log: Optional[Callable[[str], None]] = None) -> List[str]:
    """Segment ``subset`` on ``ct_node`` with ``ts_logic`` (a ``TotalSegmentatorLogic``) into a new node.

    ``merge(temporary_node)`` copies the wanted segments into the user's segmentation and returns
    their names; the temporary node is removed afterwards, also on error.
    """
    if ct_node is None:
        raise InputError("select the reference CT for TotalSegmentator")
    if log is not None:
        ts_logic.logCallback = log
    ts_logic.setupPythonRequirements()  # installs TotalSegmentator and its packages, as the TS widget does
    if hasattr(ts_logic, "useStandardSegmentNames"):
        ts_logic.useStandardSegmentNames = False  # keep the class names (kidney_left...) as segment names
    temporary = scene.AddNewNodeByClass("vtkMRMLSegmentationNode", "TotalSegmentator (temporary)")
    try:
        ts_logic.process(ct_node, temporary, **process_kwargs(ts_logic.process, subset, fast=fast))
        return merge(temporary)
    finally:
        display = temporary.GetDisplayNode()
        if display is not None:
            scene.RemoveNode(display)
        scene.RemoveNode(temporary)
