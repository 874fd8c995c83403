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

Fast mode needs ``task="total"`` with the subset. With ``task=None`` every version drops the
fast request for a subset: 2e5f9c3 ``processVolume`` 1096-1097 ``if not
self.isFastModeSupportedForTask(task): fast = False`` (``None`` is not in ``self.tasks``; the same in
a1f8b4a 1165-1168 for ``fast``/``fastest``), and main 6a82370 1196-1198 ``if quality not in
supportedQualityModes: quality = supportedQualityModes[0]`` with ``getSupportedQualityModesForTask``
(625-629) returning ``['normal']`` for a task not in ``self.tasks``. TotalSegmentator then ran its
1.5 mm model without ``--fast`` (slow on a CPU) although fast was asked for.
With ``task="total"`` (``self.tasks['total']``: 2e5f9c3:415 ``'supportsFast': True,
'supportsMultiLabel': True``; 6a82370:466 ``'qualityModes': ['normal', 'fast', 'faster']``) the
command is ``--ml --task total --fast --roi_subset <classes>`` (2e5f9c3:1093-1116,
6a82370:1193-1232) and the multi-label result is read by ``readSegmentation`` (2e5f9c3:1126/1190,
6a82370:1242/1306): the file's labels become segments whose ID and name are the ``class_map['total']``
names (``vtkMRMLSegmentationStorageNode`` makes one segment per label value present and names it
after the colour table entry), so the merge by class name is unchanged. The TotalSegmentator
package (wasserth/TotalSegmentator, 25a8586 = what the 5.8 branch installs on Python 3.9, 0a1c3c3,
98d57a1 = v2.13.0 for main) runs ``task == "total"`` + ``fast`` as ``task_id = 297``,
``resample = 3.0`` (python_api.py 141-148 in 25a8586): the 3 mm model of the whole ``total`` task
(all of ``class_map['total']``, kidneys, liver, spleen, urinary_bladder, vertebrae_L1..L5 included;
README ``--fast``: "a lower resolution model (3mm instead of 1.5mm)"); ``--roi_subset`` only needs a
task starting with "total" (python_api.py 556) and keeps just the subset's labels in the multi-label
file (nnunet.py 646-648, ``img_data *= np.isin(...)``).
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
    ``task`` is always ``"total"`` (whose classes include vertebrae_L1..L5 -- the extension's task
    list says "for CT this is part of the `total` task"): with ``task=None`` every version ignores
    ``fast``/``quality`` for a subset (module docstring). The result is one segment per subset class
    found, ID and name = the class name; a class outside the field of view has no label and no segment.
    ``fast`` True -> TotalSegmentator's 3 mm ``--fast`` model, False -> its 1.5 mm model.
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
    kwargs["task"] = "total"  # task=None would drop fast/quality for a subset (module docstring)
    kwargs["subset"] = totalsegmentator_subset(subset)
    return kwargs


def run_totalsegmentator(scene, ts_logic, ct_node, merge: Callable[[object], List[str]], subset: Sequence[str], *,
                         fast: bool = True, log: Optional[Callable[[str], None]] = None) -> List[str]:
    """Segment ``subset`` on ``ct_node`` with ``ts_logic`` (a ``TotalSegmentatorLogic``) into a new node.

    ``merge(temporary_node)`` copies the wanted segments into the user's segmentation and returns
    their names (in the reader's segment order); the temporary node is removed afterwards, also on
    error. ``fast`` True (default) runs TotalSegmentator's 3 mm model, False its 1.5 mm model.
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
