"""The TimepointRegistration and DosimetrySegmentation self-test scenarios, run headless with slicer-core.

The module self-tests (which run only inside Slicer) call their module logic, which calls
CycleSceneLogic / SegmentationSceneLogic with these arguments; here the same scenario from
startnet.mrml.selftest runs on a real MRML scene, plus controls showing that each pass mark fails
when the behaviour is wrong.
"""

from __future__ import annotations

import pytest

from startnet.mrml import cycle_state as state
from startnet.mrml.cycle_logic import CycleSceneLogic
from startnet.mrml.scene import new_scene
from startnet.mrml.segmentation_logic import SegmentationSceneLogic
from startnet.mrml.segmentations import masks_to_segmentation, segmentation_to_masks
from startnet.mrml.selftest import (
    KIDNEY_DICE_MINIMUM,
    REGISTRATION_TOLERANCE_MM,
    kidney_dice,
    registration_errors,
    registration_phantom_cycle,
    seeded_kidney_inputs,
    segmentation_phantom,
)


def test_registration_self_test_recovers_the_known_motion(tmp_path):
    phantom, dicom_dir = registration_phantom_cycle(tmp_path)
    scene = new_scene()
    logic = CycleSceneLogic(scene)
    # TimepointRegistrationLogic.loadCycle(dir) / registerTimepoints() make exactly these calls
    logic.load_cycle(str(dicom_dir), calibration_cps_per_mbq=None, progress=None)
    before = registration_errors(scene, phantom)
    logic.register(None, deformable=False, progress=None)
    after = registration_errors(scene, phantom)
    print("registration (true shift -> error, mm):",
          [(round(b["true_shift_mm"], 2), round(a["error_mm"], 2)) for b, a in zip(before, after)])
    assert len(after) == 3
    for b, a in zip(before, after):
        assert b["error_mm"] == pytest.approx(b["true_shift_mm"])  # no transform yet: off by the true shift
        assert b["true_shift_mm"] > 2.0 * REGISTRATION_TOLERANCE_MM
        assert a["error_mm"] < REGISTRATION_TOLERANCE_MM and a["rotation_error_deg"] < 0.5

    # control: a transform moved by hand by 3 mm is reported as 3 mm off
    transform_node = state.timepoint_node(logic.cycle_node, "transform", 0)
    matrix = transform_node.GetMatrixTransformFromParent()
    matrix.SetElement(0, 3, matrix.GetElement(0, 3) + 3.0)
    transform_node.SetMatrixTransformFromParent(matrix)
    moved = registration_errors(scene, phantom)
    assert max(row["error_mm"] for row in moved) > 2.0


def test_segmentation_self_test_seeded_kidneys_reach_the_dice_mark():
    phantom = segmentation_phantom()
    scene = new_scene()
    ct, spect, seeds = seeded_kidney_inputs(scene, phantom)
    segmentation = scene.AddNewNodeByClass("vtkMRMLSegmentationNode", "Structures")
    # DosimetrySegmentationLogic.segmentFromSeeds(ct, spect, seeds, segmentation) makes this call
    SegmentationSceneLogic(scene).segment_from_seeds(ct, spect, seeds, segmentation, cortex_only=False,
                                                     tumour_threshold_percent=40.0)
    dice = kidney_dice(scene, segmentation, phantom)
    print("seeded kidney Dice:", {k: round(v, 3) for k, v in dice.items()})
    assert set(dice) == {"kidney_left", "kidney_right"}
    assert all(value > KIDNEY_DICE_MINIMUM for value in dice.values())

    # control: the same masks under swapped names fail the mark
    masks = segmentation_to_masks(scene, segmentation, phantom.labels)
    swapped = masks_to_segmentation(scene, {"kidney_left": masks["kidney_right"], "kidney_right": masks["kidney_left"]},
                                    phantom.labels, "swapped")
    assert all(value < 0.1 for value in kidney_dice(scene, swapped, phantom).values())
    empty = scene.AddNewNodeByClass("vtkMRMLSegmentationNode", "empty")
    assert kidney_dice(scene, empty, phantom) == {"kidney_left": 0.0, "kidney_right": 0.0}
