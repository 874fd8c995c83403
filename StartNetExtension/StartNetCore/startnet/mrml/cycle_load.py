"""Load a cycle into the scene: each time point as a Bq/mL SPECT and a CT, in the subject hierarchy.

From a folder or a list of DICOM files (Slicer's DICOM database), through
:func:`startnet.cycle.load.load_timepoints` (the rules of ``startnet inspect``). Each volume gets
its units (``SetVoxelValueUnits``, UCUM coded entry, vtkMRMLScalarVolumeNode.h 84 in v5.8.1 and
v5.10.0) as well as attributes (hours p.i., series UID), and a display that is not blank: the
SPECT with the PET heat colour table (node ID ``vtkMRMLPETProceduralColorNodePET-Heat``,
vtkMRMLColorLogic.h v5.8.1 92 / v5.10.0 98, what DICOMScalarVolumePlugin sets for PET) and a
window from its own activity range, the CT with an abdomen window. Loading the same cycle again
(same patient and injection) refills the same nodes; the cycle node
(:mod:`startnet.mrml.cycle_state`) records them.
"""

from __future__ import annotations

import datetime as _dt
import json
from dataclasses import dataclass
from typing import Any, Callable, Dict, List, Optional, Sequence, Union

import numpy as np
import SimpleITK as sitk
import slicer

from startnet.dicomio import Cycle, Discovery, Overrides
from startnet.errors import InputError
from startnet.mrml import cycle_hierarchy as hierarchy
from startnet.mrml import cycle_state as state
from startnet.mrml.volumes import set_volume_attributes, sitk_to_volume

PET_HEAT_COLOR_NODE_ID = "vtkMRMLPETProceduralColorNodePET-Heat"  # same ID at v5.8.1 and v5.10.0
SPECT_UNITS = ("Bq/ml", "UCUM", "Becquerels/milliliter")
CT_UNITS = ("[hnsf'U]", "UCUM", "Hounsfield unit")  # as DICOMLib/DICOMPlugin.py sets for CT
CT_QUANTITY = ("112031", "DCM", "Attenuation Coefficient")
CT_WINDOW_LEVEL_HU = (400.0, 40.0)  # abdomen
Progress = Optional[Callable[[float, str], None]]


@dataclass
class LoadedCycle:
    """What loading left in the scene and what the widget shows fused (reference CT + SPECT)."""

    cycle_node: Any
    cycle: Cycle
    summary: str
    background_node: Any  # reference CT (None when the reference time point has no CT)
    foreground_node: Any  # reference SPECT


def _jsonable(value):
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, (_dt.datetime, _dt.date)):
        return value.isoformat()
    if isinstance(value, np.ndarray):
        return _jsonable(value.tolist())
    if isinstance(value, np.generic):
        return value.item()
    return value


def _coded(value: str, scheme: str, meaning: str):
    entry = slicer.vtkCodedEntry()
    entry.SetValueSchemeMeaning(value, scheme, meaning)
    return entry


def _display_spect(node, image: sitk.Image) -> None:
    display = node.GetDisplayNode()
    display.SetAndObserveColorNodeID(PET_HEAT_COLOR_NODE_ID)
    values = sitk.GetArrayViewFromImage(image)
    positive = values[values > 0]
    top = float(np.percentile(positive, 99.5)) if positive.size else 1.0
    display.SetAutoWindowLevel(0)
    display.SetWindowLevelMinMax(0.0, max(top, 1e-6))


def _display_ct(node) -> None:
    display = node.GetDisplayNode()
    display.SetAutoWindowLevel(0)
    display.SetWindowLevel(*CT_WINDOW_LEVEL_HU)


def _series_files(discovery: Discovery, series_uid: Optional[str]) -> List[str]:
    return [f for s in discovery.series if s.series_uid == series_uid for f in s.files] if series_uid else []


def _cycle_entry(cycle: Cycle) -> Dict[str, Any]:
    return _jsonable({
        "patient_id": cycle.patient_id, "injection_datetime": cycle.injection_datetime,
        "injected_activity_mbq": float(cycle.injected_activity_mbq), "nuclide": cycle.nuclide.name,
        "study_uids": cycle.study_uids, "warnings": cycle.warnings, "log": cycle.log,
        "overrides_applied": cycle.overrides_applied, "injection_source": cycle.injection_source,
        "activity_source": cycle.activity_source, "input_dir": cycle.input_dir})


def _timepoint_entry(tp, discovery: Discovery) -> Dict[str, Any]:
    return _jsonable({
        "hours_post_injection": float(tp.hours_post_injection), "acquisition_datetime": tp.acquisition_datetime,
        "spect_series_uid": tp.spect_series_uid, "ct_series_uid": tp.ct_series_uid,
        "frame_of_reference_uid": tp.frame_of_reference_uid, "study_uid": tp.study_uid,
        "conversion": tp.conversion, "source_files": tp.source_files, "spect_file": tp.spect_file,
        "warnings": tp.warnings, "ct_files": _series_files(discovery, tp.ct_series_uid)})


def cycle_key(cycle: Cycle) -> str:
    return f"{cycle.patient_id}|{cycle.injection_datetime.isoformat()}"


def load_cycle_into_scene(scene, source: Union[str, Sequence[str]], overrides: Optional[Overrides] = None, *,
                          reference_index: Optional[int] = None, progress: Progress = None) -> LoadedCycle:
    """Load every time point of the cycle in ``source`` (folder or DICOM files) into ``scene``."""
    from startnet.cycle.load import load_timepoints
    from startnet.cycle.run import choose_reference

    if progress:
        progress(0.02, "reading DICOM and converting SPECT to Bq/mL")
    cycle, discovery = load_timepoints(source, overrides)
    key = cycle_key(cycle)
    n = len(cycle.timepoints)
    cycle_node = state.find_cycle_node(scene, key)
    if cycle_node is not None and state.timepoint_count(cycle_node) != n:
        state.clear_cycle(scene, cycle_node)
        cycle_node = None
    if cycle_node is None:
        cycle_node = state.create_cycle_node(scene)
    state.store_metadata(cycle_node, key, _cycle_entry(cycle), [_timepoint_entry(tp, discovery)
                                                                for tp in cycle.timepoints])
    hours = [tp.hours_post_injection for tp in cycle.timepoints]
    if reference_index is not None or not cycle_node.GetAttribute("startnet.reference_index"):
        state.set_reference_index(cycle_node, choose_reference(hours, reference_index))

    patient = hierarchy.patient_item(scene, cycle.patient_id)
    cycle_name = (f"Cycle {cycle.injection_datetime:%Y-%m-%d} ({cycle.injected_activity_mbq:.0f} MBq "
                  f"{cycle.nuclide.name})")
    cycle_item = hierarchy.cycle_item(scene, patient, key, cycle_name)
    hierarchy.remove_stale_folders(scene, cycle_item, n)
    for index, tp in enumerate(cycle.timepoints):
        label = f"{tp.hours_post_injection:.1f} h"
        folder = hierarchy.timepoint_folder(scene, cycle_item, index, f"{label} p.i.")
        spect = sitk_to_volume(scene, tp.spect_bqml, f"SPECT {label} (Bq/mL)",
                               node=state.timepoint_node(cycle_node, "spect", index))
        spect.SetVoxelValueUnits(_coded(*SPECT_UNITS))
        set_volume_attributes(spect, {state.HOURS_ATTRIBUTE: tp.hours_post_injection, "startnet.units": "Bq/mL",
                                      "DICOM.SeriesInstanceUID": tp.spect_series_uid})
        _display_spect(spect, tp.spect_bqml)
        state.set_timepoint_node(cycle_node, "spect", index, spect)
        ct = state.timepoint_node(cycle_node, "ct", index)
        if tp.ct_hu is not None:
            ct = sitk_to_volume(scene, tp.ct_hu, f"CT {label}", node=ct)
            ct.SetVoxelValueQuantity(_coded(*CT_QUANTITY))
            ct.SetVoxelValueUnits(_coded(*CT_UNITS))
            set_volume_attributes(ct, {state.HOURS_ATTRIBUTE: tp.hours_post_injection, "startnet.units": "HU",
                                       "DICOM.SeriesInstanceUID": tp.ct_series_uid or ""})
            _display_ct(ct)
            state.set_timepoint_node(cycle_node, "ct", index, ct)
        hierarchy.place_nodes(scene, folder, [spect, ct if tp.ct_hu is not None else None])
        if progress:
            progress(0.1 + 0.9 * (index + 1) / n, f"loaded time point {index + 1}/{n} ({label} p.i.)")

    reference = state.reference_index(cycle_node)
    warnings = "".join(f"\nwarning: {w}" for w in cycle.warnings)
    summary = (f"{n} time points ({', '.join(f'{h:.1f} h' for h in hours)}) of patient {cycle.patient_id}; "
               f"injected {cycle.injected_activity_mbq:.0f} MBq at {cycle.injection_datetime:%Y-%m-%d %H:%M} UTC; "
               f"reference {hours[reference]:.1f} h" + warnings)
    return LoadedCycle(cycle_node, cycle, summary, state.timepoint_node(cycle_node, "ct", reference),
                       state.timepoint_node(cycle_node, "spect", reference))


def timepoint_layers(scene, index: int, cycle_node=None):
    """(CT, SPECT) nodes of one time point, to show as background / foreground when stepping through."""
    node = state.require_cycle_node(scene, cycle_node)
    if not 0 <= index < state.timepoint_count(node):
        raise InputError(f"time point {index}: the cycle has {state.timepoint_count(node)} time points")
    return state.timepoint_node(node, "ct", index), state.timepoint_node(node, "spect", index)


def hours_post_injection(cycle_node) -> List[float]:
    return [float(h) for h in json.loads(cycle_node.GetAttribute(state.HOURS_ATTRIBUTE) or "[]")]
