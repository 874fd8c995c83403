"""Segmentation at CT resolution on a real MRML scene (slicer-core), issue 15 item 1.3.

- seeded/automatic segments are made on the reference CT's grid, the segmentation's reference
  geometry is the CT, segments carry standard names and Slicer terminology, and re-running
  replaces only the same-named segments;
- a closed-surface-source segmentation gives the same masks as its labelmap source;
- a TotalSegmentator-like result is merged without deleting the user's segments.
"""

from __future__ import annotations

import inspect

import numpy as np
import pytest
import SimpleITK as sitk
import slicer

from startnet.mrml.scene import new_scene
from startnet.mrml.segmentation_export import ensure_binary_labelmap, segmentation_labelmap_on_geometry
from startnet.mrml.segmentation_logic import DOSIMETRY_STRUCTURES, SegmentationSceneLogic
from startnet.mrml.segmentations import (
    masks_to_segmentation,
    segment_names,
    segment_terminology,
    segmentation_to_masks,
)
from startnet.mrml.selftest import kidney_dice, seeded_kidney_inputs, segmentation_phantom
from startnet.mrml.tables import records_from_table
from startnet.mrml.totalsegmentator import run_totalsegmentator
from startnet.mrml.volumes import sitk_to_volume
from startnet.segmentation.terminology import parse_terminology_entry

LABELMAP = "Binary labelmap"
CLOSED_SURFACE = "Closed surface"


@pytest.fixture(scope="module")
def phantom():
    return segmentation_phantom()


def _truth(phantom, name):
    value = next(v for v, n in phantom.label_names.items() if n == name)
    return sitk.GetArrayFromImage(phantom.labels) == value


def _dice(a, b):
    return float(2.0 * np.logical_and(a, b).sum() / (a.sum() + b.sum()))


def _labelmap_spacing(node, name):
    segmentation = node.GetSegmentation()
    segment = segmentation.GetSegment(segmentation.GetSegmentIdBySegmentName(name))
    image = segment.GetRepresentation(LABELMAP)
    return tuple(round(v, 6) for v in image.GetSpacing())


def _user_lesion(phantom):
    mask = np.zeros(tuple(reversed(phantom.labels.GetSize())), bool)
    mask[40:46, 60:66, 30:36] = True
    return mask


def _serialized_geometry(volume_node):
    import vtk

    matrix = vtk.vtkMatrix4x4()
    volume_node.GetIJKToRASMatrix(matrix)
    return slicer.vtkSegmentationConverter.SerializeImageGeometry(matrix, volume_node.GetImageData())


def test_seeded_segments_are_on_the_ct_grid_named_and_coded_and_keep_user_segments(phantom):
    scene = new_scene()
    ct, spect, seeds = seeded_kidney_inputs(scene, phantom)
    zyx = np.argwhere(_truth(phantom, "tumour_1")).mean(axis=0)
    lps = phantom.labels.TransformContinuousIndexToPhysicalPoint([float(v) for v in zyx[::-1]])
    seeds.AddControlPoint(-lps[0], -lps[1], lps[2], "tumour_1")
    lesion = _user_lesion(phantom)
    stale = np.zeros_like(lesion)
    stale[10:14, 10:14, 10:14] = True
    node = masks_to_segmentation(scene, {"my_lesion": lesion, "kidney_left": stale}, phantom.labels, "Structures")
    logic = SegmentationSceneLogic(scene)

    logic.segment_from_seeds(ct, spect, seeds, node)

    # reference geometry = the reference CT (conversion parameter and node reference)
    assert node.GetSegmentation().GetConversionParameter("Reference image geometry") == _serialized_geometry(ct)
    assert node.GetNodeReferenceID(node.GetReferenceImageGeometryReferenceRole()) == ct.GetID()
    # segments at CT resolution (3.5 mm), not SPECT (7 mm)
    ct_spacing = tuple(round(v, 6) for v in phantom.labels.GetSpacing())
    for name in ("kidney_left", "kidney_right", "tumour_1"):
        assert _labelmap_spacing(node, name) == ct_spacing, name
    assert sorted(segment_names(node)) == ["kidney_left", "kidney_right", "my_lesion", "tumour_1"]
    # standard terminology, as Slicer serializes it (7 '~' fields, SNOMED CT codes)
    terms = segment_terminology(node)
    context, category, type_, modifier = parse_terminology_entry(terms["kidney_left"])
    assert context == "Segmentation category and type - DICOM master list"
    assert (category[1], type_[1], modifier[1]) == ("123037004", "64033007", "7771000")
    assert parse_terminology_entry(terms["kidney_right"])[3][1] == "24028007"
    assert parse_terminology_entry(terms["tumour_1"])[2][1] == "108369006"

    masks = segmentation_to_masks(scene, node, phantom.labels)
    np.testing.assert_array_equal(masks["my_lesion"], lesion)  # user's segment untouched
    assert not np.logical_and(masks["kidney_left"], stale).any()  # the stale kidney_left was replaced
    dice = kidney_dice(scene, node, phantom)
    print("seeded kidney Dice on the CT grid:", {k: round(v, 3) for k, v in dice.items()},
          "tumour_1:", round(_dice(masks["tumour_1"], _truth(phantom, "tumour_1")), 3))
    assert min(dice.values()) > 0.88

    # re-running replaces only its own segments
    logic.segment_from_seeds(ct, spect, seeds, node)
    assert sorted(segment_names(node)) == ["kidney_left", "kidney_right", "my_lesion", "tumour_1"]
    again = segmentation_to_masks(scene, node, phantom.labels)
    for name in masks:
        np.testing.assert_array_equal(again[name], masks[name])


def test_automatic_kidneys_are_on_the_ct_grid(phantom):
    scene = new_scene()
    ct, spect, _ = seeded_kidney_inputs(scene, phantom)
    node = scene.AddNewNodeByClass("vtkMRMLSegmentationNode", "automatic")
    SegmentationSceneLogic(scene).auto_segment_kidneys(ct, spect, node)
    ct_spacing = tuple(round(v, 6) for v in phantom.labels.GetSpacing())
    assert all(_labelmap_spacing(node, k) == ct_spacing for k in ("kidney_left", "kidney_right"))
    dice = kidney_dice(scene, node, phantom)
    print("automatic kidney Dice on the CT grid:", {k: round(v, 3) for k, v in dice.items()})
    assert min(dice.values()) > 0.85


def _closed_surface_copy(scene, labelmap_node, name):
    """A segmentation whose source is the closed surface of ``labelmap_node``'s segments (no labelmap kept)."""
    node = scene.AddNewNodeByClass("vtkMRMLSegmentationNode", name)
    node.GetSegmentation().DeepCopy(labelmap_node.GetSegmentation())
    assert node.CreateClosedSurfaceRepresentation()
    node.SetSourceRepresentationToClosedSurface()  # invalidates (drops) the labelmaps
    assert not node.GetSegmentation().ContainsRepresentation(LABELMAP)
    return node


def test_closed_surface_source_gives_the_labelmap_masks_on_the_ct_geometry(phantom, tmp_path):
    scene = new_scene()
    ct_node = sitk_to_volume(scene, phantom.ct_hu, "CT")
    names = ("kidney_left", "kidney_right", "liver", "tumour_1")
    truth = {name: _truth(phantom, name) for name in names}
    labelmap_node = masks_to_segmentation(scene, truth, phantom.labels, "labelmap source")
    surface_node = _closed_surface_copy(scene, labelmap_node, "closed surface source")

    from_labelmap = segmentation_labelmap_on_geometry(scene, labelmap_node, ct_node)
    from_surface = segmentation_labelmap_on_geometry(scene, surface_node, ct_node)
    assert from_surface.shape == tuple(reversed(phantom.ct_hu.GetSize()))
    assert from_surface.reference.GetSpacing() == phantom.ct_hu.GetSpacing()
    assert from_surface.names == list(names)
    dice = {name: _dice(from_surface.masks[name], from_labelmap.masks[name]) for name in names}
    print("closed-surface source vs labelmap source, Dice:", {k: round(v, 4) for k, v in dice.items()})
    assert min(dice.values()) > 0.97
    assert surface_node.GetSegmentation().GetSourceRepresentationName() == CLOSED_SURFACE  # user's source kept
    label = sitk.GetArrayFromImage(from_surface.labelmap())
    assert set(np.unique(label)) == {0, 1, 2, 3, 4}

    # Slicer's writer saves the source representation whatever the file name: poly data before,
    # a labelmap (.seg.nrrd) once the labelmap is made the source
    assert not _written_as_nrrd(surface_node, tmp_path / "before.seg.nrrd")
    ensure_binary_labelmap(surface_node, ct_node, make_source=True)
    assert surface_node.GetSegmentation().GetSourceRepresentationName() == LABELMAP
    assert _written_as_nrrd(surface_node, tmp_path / "after.seg.nrrd")


def _written_as_nrrd(node, path) -> bool:
    storage = slicer.vtkMRMLSegmentationStorageNode()
    storage.SetFileName(str(path))
    assert storage.WriteData(node)
    return path.exists() and path.read_bytes()[:4] == b"NRRD"


def test_seeded_segments_into_a_closed_surface_segmentation_keep_its_segments(phantom):
    """Before: masks_to_segmentation switched the source name, dropping the existing closed surfaces."""
    scene = new_scene()
    ct, spect, seeds = seeded_kidney_inputs(scene, phantom)
    liver = _truth(phantom, "liver")
    labelmap_node = masks_to_segmentation(scene, {"liver": liver}, phantom.labels, "liver")
    node = _closed_surface_copy(scene, labelmap_node, "RTSTRUCT-like")
    SegmentationSceneLogic(scene).segment_from_seeds(ct, spect, seeds, node)
    masks = segmentation_to_masks(scene, node, phantom.labels)
    assert sorted(masks) == ["kidney_left", "kidney_right", "liver"]
    print("liver kept from the closed surface, Dice:", round(_dice(masks["liver"], liver), 4))
    assert _dice(masks["liver"], liver) > 0.97


def _ts_like_result(scene, phantom, node):
    """Segments as SlicerTotalSegmentator leaves them: ID = class name, name = the terminology label."""
    labels = {"kidney_left": "left kidney", "kidney_right": "right kidney", "spleen": "spleen",
              "lung_left": "left lung"}
    segmentation = node.GetSegmentation()
    segmentation.RemoveAllSegments()  # what TotalSegmentator's readSegmentationFolder starts with
    masks = {class_name: _truth(phantom, class_name) for class_name in labels}
    temporary = masks_to_segmentation(scene, masks, phantom.labels, "ts masks")
    for class_name, label in labels.items():
        source_id = temporary.GetSegmentation().GetSegmentIdBySegmentName(class_name)
        segmentation.CopySegmentFromSegmentation(temporary.GetSegmentation(), source_id, False)
        copied = segmentation.GetSegment(source_id)
        segmentation.RemoveSegment(source_id)
        copied.SetName(label)
        segmentation.AddSegment(copied, class_name)
    scene.RemoveNode(temporary)


def test_merge_keeps_user_segments_and_writes_standard_names(phantom):
    scene = new_scene()
    ct_node = sitk_to_volume(scene, phantom.ct_hu, "CT")
    lesion = _user_lesion(phantom)
    user = masks_to_segmentation(scene, {"my_lesion": lesion, "kidney_left": lesion}, phantom.labels, "Structures")
    ts = scene.AddNewNodeByClass("vtkMRMLSegmentationNode", "ts")
    _ts_like_result(scene, phantom, ts)

    merged = SegmentationSceneLogic(scene).merge_segments(ts, user, ct_node, DOSIMETRY_STRUCTURES)
    assert merged == ["kidney_left", "kidney_right", "spleen"]
    assert sorted(segment_names(user)) == ["kidney_left", "kidney_right", "my_lesion", "spleen"]
    masks = segmentation_to_masks(scene, user, phantom.labels)
    np.testing.assert_array_equal(masks["my_lesion"], lesion)
    for name in merged:
        assert _dice(masks[name], _truth(phantom, name)) > 0.999, name
    assert parse_terminology_entry(segment_terminology(user)["spleen"])[2][1] == "78961009"


class _TotalSegmentatorLogicDouble:
    """Stands in for TotalSegmentatorLogic with the main (a40fc4d..6a82370) process signature.

    It does what the real one does to its output node (remove all segments, add class-named
    segments) so the test checks that the user's node is never given to it.
    """

    def __init__(self, scene, phantom):
        self.scene, self.phantom, self.calls = scene, phantom, []
        self.useStandardSegmentNames = True

    def setupPythonRequirements(self, upgrade=False):
        self.calls.append("setupPythonRequirements")

    def process(self, inputVolume, outputSegmentation, quality=None, cpu=False, task=None, subset=None,
                interactive=False, sequenceBrowserNode=None):
        self.calls.append(("process", outputSegmentation.GetName(), quality, task, tuple(subset)))
        _ts_like_result(self.scene, self.phantom, outputSegmentation)


def test_run_totalsegmentator_never_gives_the_user_node_to_process(phantom):
    scene = new_scene()
    ct_node = sitk_to_volume(scene, phantom.ct_hu, "CT")
    lesion = _user_lesion(phantom)
    user = masks_to_segmentation(scene, {"my_lesion": lesion}, phantom.labels, "Structures")
    ts = _TotalSegmentatorLogicDouble(scene, phantom)
    assert "quality" in inspect.signature(ts.process).parameters
    logic = SegmentationSceneLogic(scene)
    nodes_before = scene.GetNumberOfNodesByClass("vtkMRMLSegmentationNode")

    merged = run_totalsegmentator(scene, ts, ct_node, lambda tmp: logic.merge_segments(tmp, user, ct_node),
                                  DOSIMETRY_STRUCTURES)
    assert ts.calls[0] == "setupPythonRequirements"
    # task "total": with task=None TotalSegmentator's module drops quality="fast" for a subset
    assert ts.calls[1] == ("process", "TotalSegmentator (temporary)", "fast", "total", DOSIMETRY_STRUCTURES)
    assert ts.useStandardSegmentNames is False
    assert merged == ["kidney_left", "kidney_right", "spleen"]
    assert sorted(segment_names(user)) == ["kidney_left", "kidney_right", "my_lesion", "spleen"]
    assert scene.GetNumberOfNodesByClass("vtkMRMLSegmentationNode") == nodes_before  # temporary removed


def test_compare_table_on_the_ct_grid_and_on_the_dose_grid(phantom):
    scene = new_scene()
    ct, spect, seeds = seeded_kidney_inputs(scene, phantom)
    logic = SegmentationSceneLogic(scene)
    seeded = scene.AddNewNodeByClass("vtkMRMLSegmentationNode", "seeded")
    logic.segment_from_seeds(ct, spect, seeds, seeded)
    truth = masks_to_segmentation(scene, {k: _truth(phantom, k) for k in ("kidney_left", "kidney_right")},
                                  phantom.labels, "truth")
    rows = {r["name"]: r for r in records_from_table(logic.compare(seeded, truth, ct))}
    dice = kidney_dice(scene, seeded, phantom)
    for kidney in ("kidney_left", "kidney_right"):
        assert rows[kidney]["dice"] == pytest.approx(dice[kidney], abs=1e-9)
    reference = phantom.timepoints[phantom.reference_index].spect_bqml
    dose_node = sitk_to_volume(scene, sitk.Cast(reference * 1e-5, sitk.sitkFloat32), "dose")
    same = records_from_table(logic.compare(seeded, seeded, ct, dose_node=dose_node))
    assert all(r["dice"] == pytest.approx(1.0) and r["mean_dose_difference_gy"] == pytest.approx(0.0) for r in same)
