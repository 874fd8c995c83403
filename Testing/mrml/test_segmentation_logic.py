"""DosimetrySegmentation logic on a real MRML scene (slicer-core) with the phantom patient."""

from __future__ import annotations

import numpy as np
import pytest
import SimpleITK as sitk

from startnet.errors import InputError
from startnet.mrml.scene import new_scene
from startnet.mrml.segmentation_logic import SegmentationSceneLogic, seed_kind
from startnet.mrml.segmentations import segment_names, segmentation_to_masks
from startnet.mrml.tables import records_from_table
from startnet.mrml.volumes import sitk_to_volume
from startnet.phantom import PhantomConfig, build_phantom
from startnet.segmentation import resample_mask


@pytest.fixture(scope="module")
def phantom():
    return build_phantom(PhantomConfig(preset="small", seed=23, motion=False))


def _truth_mask(phantom, name, reference):
    value = next(v for v, n in phantom.label_names.items() if n == name)
    mask, _ = resample_mask(phantom.labels == value, reference)
    return mask


def _dice(a, b):
    return 2.0 * np.logical_and(a, b).sum() / (a.sum() + b.sum())


def test_automatic_kidneys_seeds_and_comparison(phantom):
    scene = new_scene()
    reference = phantom.timepoints[1].spect_bqml
    ct = sitk_to_volume(scene, phantom.timepoints[1].ct_hu, "CT")
    spect = sitk_to_volume(scene, reference, "SPECT")
    automatic = scene.AddNewNodeByClass("vtkMRMLSegmentationNode", "automatic")
    logic = SegmentationSceneLogic(scene)
    logic.auto_segment_kidneys(ct, spect, automatic)
    assert {"kidney_left", "kidney_right"} <= set(segment_names(automatic))
    masks = segmentation_to_masks(scene, automatic, reference)
    for kidney in ("kidney_left", "kidney_right"):
        assert _dice(masks[kidney], _truth_mask(phantom, kidney, reference)) >= 0.8, kidney

    # seed points (RAS) at the true kidney centroids, labelled by structure
    seeds = scene.AddNewNodeByClass("vtkMRMLMarkupsFiducialNode", "seeds")
    for kidney in ("kidney_left", "kidney_right"):
        zyx = np.argwhere(_truth_mask(phantom, kidney, reference)).mean(axis=0)
        lps = reference.TransformContinuousIndexToPhysicalPoint([float(v) for v in zyx[::-1]])
        seeds.AddControlPoint(-lps[0], -lps[1], lps[2], kidney)
    seeded = scene.AddNewNodeByClass("vtkMRMLSegmentationNode", "seeded")
    logic.segment_from_seeds(ct, spect, seeds, seeded)
    assert segment_names(seeded) == ["kidney_left", "kidney_right"]

    table = logic.compare(automatic, seeded, spect)
    rows = {r["name"]: r for r in records_from_table(table)}
    assert set(rows) == {"kidney_left", "kidney_right"}
    for row in rows.values():
        assert 0.7 <= row["dice"] <= 1.0 and row["hd95_mm"] >= 0.0

    # identical segmentations agree perfectly, with a dose map the mean dose change is zero
    dose = sitk.Cast(reference * 1e-5, sitk.sitkFloat32)
    dose_node = sitk_to_volume(scene, dose, "dose")
    same = logic.compare(seeded, seeded, spect, dose_node=dose_node)
    for row in records_from_table(same):
        assert row["dice"] == pytest.approx(1.0) and row["mean_dose_difference_gy"] == pytest.approx(0.0)


def test_seed_labels_are_checked():
    assert seed_kind("Kidney Left") == ("kidney", "kidney_left")
    assert seed_kind("tumor_2") == ("tumour", "tumour_2")
    assert seed_kind("liver") == ("organ", "liver")
    with pytest.raises(InputError, match="expected a label"):
        seed_kind("heart")
    with pytest.raises(InputError, match="kidney_left or kidney_right"):
        seed_kind("kidney")
