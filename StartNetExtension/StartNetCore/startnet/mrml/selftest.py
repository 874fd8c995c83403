"""Phantom scenarios shared by the modules' Slicer self-tests and Testing/mrml (same inputs, same pass marks).

The Slicer desktop cannot run here, so each self-test scenario is also run headless against
slicer-core by ``Testing/mrml/test_module_selftests.py`` with the same module-logic calls.
Both judge behaviour against the phantom's ground truth, read back from the scene:

- registration: every time point's transform node (the parent transform of its volumes, as the
  user sees them) must reproduce the phantom's known motion within
  :data:`REGISTRATION_TOLERANCE_MM`; before registration the same measure gives the true shift.
- segmentation: seeded kidneys must overlap the true kidneys (on the CT grid, no resampling of
  the truth) with Dice above :data:`KIDNEY_DICE_MINIMUM`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Dict, List, Tuple

import numpy as np
import SimpleITK as sitk

from startnet.errors import InputError

REGISTRATION_TOLERANCE_MM = 1.0
KIDNEY_DICE_MINIMUM = 0.85
KIDNEYS = ("kidney_left", "kidney_right")
HOURS_ATTRIBUTE = "startnet.hours_post_injection"
REGISTRATION_SEED = 7  # its motion moves points within 60 mm of the body centre by 2.3-4.5 mm
SEGMENTATION_SEED = 23


def registration_phantom_cycle(folder) -> Tuple[object, Path]:
    """The registration scenario's phantom (with motion) and the DICOM folder it was written to."""
    from startnet.phantom import PhantomConfig, build_phantom, write_phantom_dicom

    phantom = build_phantom(PhantomConfig(preset="small", seed=REGISTRATION_SEED))
    return phantom, Path(write_phantom_dicom(phantom, folder).dicom_dir)


def segmentation_phantom():
    """The segmentation scenario's phantom (its reference time point is in the labels' pose)."""
    from startnet.phantom import PhantomConfig, build_phantom

    return build_phantom(PhantomConfig(preset="small", seed=SEGMENTATION_SEED))


def _check_points_mm(image: sitk.Image) -> List[np.ndarray]:
    centre = np.array(image.TransformContinuousIndexToPhysicalPoint([(n - 1) / 2.0 for n in image.GetSize()]))
    return [centre + np.array(offset, float) for offset in
            ((0, 0, 0), (60, 0, 0), (-60, 0, 0), (0, 60, 0), (0, -60, 0), (0, 0, 60), (0, 0, -60))]


def _volumes_by_hours(scene) -> Dict[float, list]:
    by_hours: Dict[float, list] = {}
    collection = scene.GetNodesByClass("vtkMRMLScalarVolumeNode")
    for i in range(collection.GetNumberOfItems()):
        node = collection.GetItemAsObject(i)
        value = node.GetAttribute(HOURS_ATTRIBUTE)
        if value:
            by_hours.setdefault(round(float(value), 3), []).append(node)
    return by_hours


def registration_errors(scene, phantom) -> List[Dict[str, float]]:
    """Per non-reference time point: true shift and the error of the scene's transform, in mm (max over points).

    A time point's volumes are found by their hours attribute; their parent transform node (the
    identity when there is none) is read as fixed -> moving LPS, the phantom's convention.
    """
    from startnet.mrml.transforms import transform_node_to_sitk
    from startnet.registration import transform_error

    points = _check_points_mm(phantom.ct_hu)
    volumes = _volumes_by_hours(scene)
    rows = []
    for tp in phantom.timepoints:
        if tp.index == phantom.reference_index:
            continue
        nodes = volumes.get(round(tp.hours_post_injection, 3))
        if not nodes:
            raise InputError(f"no volume of the {tp.hours_post_injection:g} h time point in the scene")
        parents = {node.GetParentTransformNode().GetID(): node.GetParentTransformNode()
                   for node in nodes if node.GetParentTransformNode() is not None}
        if len(parents) > 1:
            raise InputError(f"the {tp.hours_post_injection:g} h volumes are under different transforms")
        estimated = transform_node_to_sitk(next(iter(parents.values()))) if parents else sitk.AffineTransform(3)
        error_mm, rotation_error_deg = transform_error(estimated, tp.true_transform, points)
        true_shift_mm, _ = transform_error(sitk.AffineTransform(3), tp.true_transform, points)
        rows.append({"hours": tp.hours_post_injection, "true_shift_mm": true_shift_mm, "error_mm": error_mm,
                     "rotation_error_deg": rotation_error_deg})
    return rows


def seeded_kidney_inputs(scene, phantom):
    """Reference CT and SPECT volumes and a markups node with one labelled seed inside each true kidney."""
    from startnet.mrml.volumes import sitk_to_volume

    reference = phantom.timepoints[phantom.reference_index]
    ct_node = sitk_to_volume(scene, reference.ct_hu, "Phantom CT")
    spect_node = sitk_to_volume(scene, reference.spect_bqml, "Phantom SPECT (Bq/mL)")
    seed_node = scene.AddNewNodeByClass("vtkMRMLMarkupsFiducialNode", "Kidney seeds")
    labels = sitk.GetArrayFromImage(phantom.labels)
    for kidney in KIDNEYS:
        zyx = np.argwhere(labels == _label_value(phantom, kidney)).mean(axis=0)
        lps = phantom.labels.TransformContinuousIndexToPhysicalPoint([float(v) for v in zyx[::-1]])
        seed_node.AddControlPoint(-lps[0], -lps[1], lps[2], kidney)
    return ct_node, spect_node, seed_node


def _label_value(phantom, name: str) -> int:
    return next(value for value, label in phantom.label_names.items() if label == name)


def kidney_dice(scene, segmentation_node, phantom) -> Dict[str, float]:
    """Dice of each kidney segment against the phantom's true kidney, on the CT grid (0 when the segment is absent)."""
    from startnet.mrml.segmentations import segmentation_to_masks

    if segmentation_node.GetSegmentation().GetNumberOfSegments() == 0:
        return {kidney: 0.0 for kidney in KIDNEYS}
    masks = segmentation_to_masks(scene, segmentation_node, phantom.labels)
    labels = sitk.GetArrayFromImage(phantom.labels)
    dice = {}
    for kidney in KIDNEYS:
        truth = labels == _label_value(phantom, kidney)
        mask = masks.get(kidney)
        if mask is None:
            dice[kidney] = 0.0
            continue
        dice[kidney] = float(2.0 * np.logical_and(mask, truth).sum() / (mask.sum() + truth.sum()))
    return dice
