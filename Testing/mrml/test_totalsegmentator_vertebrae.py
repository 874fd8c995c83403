"""TotalSegmentator's lumbar vertebrae reach the user's segmentation as the marrow VOIs (slicer-core MRML).

``--marrow-voi segments`` needs ``vertebra_L2..L4`` (or TotalSegmentator's ``vertebrae_L2..L4``)
in the segmentation. The DosimetrySegmentation module asks TotalSegmentator for them (its class
names in ``subset``) and merges them under the pipeline names with their terminology; the fake
TotalSegmentator output below holds what SlicerTotalSegmentator's ``readSegmentationFolder`` leaves
in its output node for a subset run (2e5f9c3:1178-1187, 6a82370:1294-1303): one segment per subset
class found, ID = class name, name = class name (``useStandardSegmentNames`` False) or the
terminology label ("L2 vertebra", True), tag = its terminology entry.

Since fast mode needs ``task="total"`` with the subset (startnet.mrml.totalsegmentator), the run
goes through ``readSegmentation`` instead (2e5f9c3:1190-1225, 6a82370:1306-1341): the stand-ins
below write the multi-label file TotalSegmentator leaves for ``--ml --roi_subset`` (only the subset's
labels, ``class_map['total']`` values) and read it with a segmentation storage node and a colour
table of the class names, as ``readSegmentation`` does.
"""

from __future__ import annotations

import os
import tempfile

import numpy as np
import pytest
import SimpleITK as sitk
import slicer

from startnet.dosimetry.marrow_image import marrow_voi_names
from startnet.mrml.scene import new_scene
from startnet.mrml.segmentation_logic import (
    DOSIMETRY_STRUCTURES,
    SegmentationSceneLogic,
)
from startnet.mrml.segmentations import masks_to_segmentation, segment_names, segment_terminology, segmentation_to_masks
from startnet.mrml.selftest import segmentation_phantom
from startnet.mrml.totalsegmentator import process_kwargs, run_totalsegmentator
from startnet.mrml.volumes import sitk_to_volume
from startnet.segmentation.terminology import parse_terminology_entry

TOTALSEGMENTATOR_CONTEXT = "Segmentation category and type - Total Segmentator"
TOTALSEGMENTATOR_STRUCTURES = DOSIMETRY_STRUCTURES + ("vertebra_L2", "vertebra_L3", "vertebra_L4")

# SlicerTotalSegmentator Resources/totalsegmentator_snomed_mapping.csv (2e5f9c3 and 6a82370)
TS_TYPE_CODES = {"vertebrae_L2": ("14293000", "L2 vertebra"), "vertebrae_L3": ("36470004", "L3 vertebra"),
                 "vertebrae_L4": ("11994002", "L4 vertebra")}
TS_TAG = ("Segmentation category and type - Total Segmentator~SCT^123037004^Anatomical Structure~SCT^{code}^{meaning}"
          "~^^~Anatomic codes - DICOM master list~^^~^^|")


@pytest.fixture(scope="module")
def phantom():
    return segmentation_phantom()


def _label(phantom, name):
    value = next(v for v, n in phantom.label_names.items() if n == name)
    return sitk.GetArrayFromImage(phantom.labels) == value


def _vertebrae(phantom):
    """Three consecutive 8-slice slabs of the phantom's spine as L2, L3, L4 (disjoint, one above the other)."""
    spine = _label(phantom, "spine")
    slices = np.nonzero(spine.any(axis=(1, 2)))[0]
    middle = int(slices[len(slices) // 2])
    masks = {}
    for i, level in enumerate(("L2", "L3", "L4")):
        mask = np.zeros_like(spine)
        top = middle + 12 - 8 * i
        mask[top - 8:top] = spine[top - 8:top]
        masks[f"vertebrae_{level}"] = mask
    return masks


# class_map["total"] label values (wasserth/TotalSegmentator 25a8586 totalsegmentator/map_to_binary.py)
TOTAL_LABELS = {"spleen": 1, "kidney_right": 2, "kidney_left": 3, "liver": 5, "urinary_bladder": 21,
                "vertebrae_L4": 28, "vertebrae_L3": 29, "vertebrae_L2": 30}


def _found(phantom, subset):
    """The subset classes TotalSegmentator finds in the phantom (others: no label / "not found")."""
    available = dict(_vertebrae(phantom))
    available.update({name: _label(phantom, name) for name in ("kidney_left", "kidney_right", "spleen")})
    return {name: available[name] for name in subset if name in available}


def _set_terminology(segmentation, standard_names):
    """setTerminology: TotalSegmentator's terminology tag, and its label as name if standard names are used."""
    for i in range(segmentation.GetNumberOfSegments()):
        segment_id = segmentation.GetNthSegmentID(i)
        if segment_id in TS_TYPE_CODES:
            code, meaning = TS_TYPE_CODES[segment_id]
            segment = segmentation.GetSegment(segment_id)
            segment.SetTag(segment.GetTerminologyEntryTagName(), TS_TAG.format(code=code, meaning=meaning))
            if standard_names:
                segment.SetName(meaning)


def _read_like_totalsegmentator_multilabel(scene, phantom, node, subset, standard_names):
    """What readSegmentation leaves for ``--ml --task total --roi_subset subset``: the storage node reads the
    multi-label file (only the subset's labels) with a colour table named after class_map['total']."""
    labels = np.zeros(sitk.GetArrayFromImage(phantom.labels).shape, np.uint8)
    for name, mask in _found(phantom, subset).items():
        labels[mask] = TOTAL_LABELS[name]
    image = sitk.GetImageFromArray(labels)
    image.CopyInformation(phantom.labels)
    folder = tempfile.mkdtemp()
    path = os.path.join(folder, "segmentation.nii")
    sitk.WriteImage(image, path)
    colors = slicer.vtkMRMLColorTableNode()
    colors.SetTypeToUser()
    colors.SetNumberOfColors(max(TOTAL_LABELS.values()) + 1)
    for name, value in TOTAL_LABELS.items():
        colors.SetColorName(value, name)
    scene.AddNode(colors)
    node.SetLabelmapConversionColorTableNodeID(colors.GetID())
    node.AddDefaultStorageNode()
    node.GetStorageNode().SetFileName(path)
    assert node.GetStorageNode().ReadData(node)
    scene.RemoveNode(colors)
    os.remove(path)
    os.rmdir(folder)
    _set_terminology(node.GetSegmentation(), standard_names)


def _fill_like_totalsegmentator(scene, phantom, node, subset, standard_names):
    """What readSegmentationFolder leaves for ``subset``: RemoveAllSegments, then the classes it has."""
    segmentation = node.GetSegmentation()
    segmentation.RemoveAllSegments()
    masks = _found(phantom, subset)
    temporary = masks_to_segmentation(scene, masks, phantom.labels, "ts masks")
    for class_name in masks:
        source_id = temporary.GetSegmentation().GetSegmentIdBySegmentName(class_name)
        segmentation.CopySegmentFromSegmentation(temporary.GetSegmentation(), source_id, False)
        copied = segmentation.GetSegment(source_id)
        segmentation.RemoveSegment(source_id)
        name = class_name
        if class_name in TS_TYPE_CODES:
            code, meaning = TS_TYPE_CODES[class_name]
            copied.SetTag(copied.GetTerminologyEntryTagName(), TS_TAG.format(code=code, meaning=meaning))
            name = meaning if standard_names else class_name
        copied.SetName(name)
        segmentation.AddSegment(copied, class_name)
    scene.RemoveNode(temporary)


@pytest.mark.parametrize("standard_names", [False, True])
def test_merge_copies_lumbar_vertebrae_as_marrow_vois(phantom, standard_names):
    scene = new_scene()
    ct_node = sitk_to_volume(scene, phantom.ct_hu, "CT")
    user = masks_to_segmentation(scene, {"my_lesion": _label(phantom, "tumour_1")}, phantom.labels, "Structures")
    ts = scene.AddNewNodeByClass("vtkMRMLSegmentationNode", "ts")
    subset = ["kidney_left", "vertebrae_L2", "vertebrae_L3", "vertebrae_L4"]
    _fill_like_totalsegmentator(scene, phantom, ts, subset, standard_names)

    merged = SegmentationSceneLogic(scene).merge_segments(ts, user, ct_node, TOTALSEGMENTATOR_STRUCTURES)
    assert merged == ["kidney_left", "vertebra_L2", "vertebra_L3", "vertebra_L4"]
    assert sorted(segment_names(user)) == ["kidney_left", "my_lesion", "vertebra_L2", "vertebra_L3", "vertebra_L4"]
    levels, marrow = marrow_voi_names(segment_names(user))  # what --marrow-voi segments looks for
    assert levels == {"L2": "vertebra_L2", "L3": "vertebra_L3", "L4": "vertebra_L4"} and marrow is None
    masks = segmentation_to_masks(scene, user, phantom.labels)
    for level, truth in _vertebrae(phantom).items():
        name = level.replace("vertebrae_", "vertebra_")
        np.testing.assert_array_equal(masks[name], truth)
        context, category, type_, _ = parse_terminology_entry(segment_terminology(user)[name])
        assert context == TOTALSEGMENTATOR_CONTEXT and category[1] == "123037004"
        assert type_[1:] == TS_TYPE_CODES[level]


class _TotalSegmentatorLogicDouble:
    """TotalSegmentatorLogic with the 5.8-branch (2e5f9c3) process signature. Records the keyword
    arguments; fills its output node like readSegmentation (task "total", multi-label) or
    readSegmentationFolder (task None with a subset) does."""

    def __init__(self, scene, phantom):
        self.scene, self.phantom, self.calls = scene, phantom, []
        self.useStandardSegmentNames = True

    def setupPythonRequirements(self, upgrade=False):
        pass

    def _read(self, outputSegmentation, task, subset):
        if task == "total":
            _read_like_totalsegmentator_multilabel(self.scene, self.phantom, outputSegmentation, subset,
                                                   self.useStandardSegmentNames)
        else:
            _fill_like_totalsegmentator(self.scene, self.phantom, outputSegmentation, subset,
                                        self.useStandardSegmentNames)

    def process(self, inputVolume, outputSegmentation, fast=True, cpu=False, task=None, subset=None,
                interactive=False, sequenceBrowserNode=None):
        self.calls.append({"fast": fast, "task": task, "subset": list(subset)})
        self._read(outputSegmentation, task, subset)


class _TotalSegmentatorLogicDoubleMain(_TotalSegmentatorLogicDouble):
    """The same with the process signature of main since a40fc4d (6a82370:1039)."""

    def process(self, inputVolume, outputSegmentation, quality=None, cpu=False, task=None, subset=None,
                interactive=False, sequenceBrowserNode=None):
        self.calls.append({"quality": quality, "task": task, "subset": list(subset)})
        self._read(outputSegmentation, task, subset)


@pytest.mark.parametrize("double, fast", [(_TotalSegmentatorLogicDouble, {"fast": True}),
                                          (_TotalSegmentatorLogicDoubleMain, {"quality": "fast"})])
def test_totalsegmentator_is_asked_for_the_vertebrae_and_they_are_merged(phantom, double, fast):
    scene = new_scene()
    ct_node = sitk_to_volume(scene, phantom.ct_hu, "CT")
    user = scene.AddNewNodeByClass("vtkMRMLSegmentationNode", "Structures")
    ts = double(scene, phantom)
    logic = SegmentationSceneLogic(scene)
    merged = run_totalsegmentator(scene, ts, ct_node,
                                  lambda tmp: logic.merge_segments(tmp, user, ct_node, TOTALSEGMENTATOR_STRUCTURES),
                                  TOTALSEGMENTATOR_STRUCTURES)
    # task "total": the only task for which the subset run keeps fast/quality (startnet.mrml.totalsegmentator)
    assert ts.calls == [{**fast, "task": "total",
                         "subset": list(DOSIMETRY_STRUCTURES) + ["vertebrae_L2", "vertebrae_L3", "vertebrae_L4"]}]
    # in the reader's segment order (label value order for the multi-label file)
    assert sorted(merged) == ["kidney_left", "kidney_right", "spleen", "vertebra_L2", "vertebra_L3", "vertebra_L4"]
    assert marrow_voi_names(segment_names(user))[0] == {"L2": "vertebra_L2", "L3": "vertebra_L3",
                                                         "L4": "vertebra_L4"}
    masks = segmentation_to_masks(scene, user, phantom.labels)
    for level, truth in _vertebrae(phantom).items():
        np.testing.assert_array_equal(masks[level.replace("vertebrae_", "vertebra_")], truth)
    for name in ("kidney_left", "kidney_right", "spleen"):
        np.testing.assert_array_equal(masks[name], _label(phantom, name))


@pytest.mark.parametrize("standard_names", [False, True])
def test_multilabel_result_has_class_names_as_ids(phantom, standard_names):
    """readSegmentation's segments: one per label present, ID = class name (what merge_segments matches)."""
    scene = new_scene()
    node = scene.AddNewNodeByClass("vtkMRMLSegmentationNode", "ts")
    _read_like_totalsegmentator_multilabel(scene, phantom, node, ["kidney_left", "liver", "vertebrae_L3"],
                                           standard_names)
    segmentation = node.GetSegmentation()
    ids = [segmentation.GetNthSegmentID(i) for i in range(segmentation.GetNumberOfSegments())]
    assert ids == ["kidney_left", "vertebrae_L3"]  # liver: not in the stand-in's result -> no segment
    assert segmentation.GetSegment("vertebrae_L3").GetName() == ("L3 vertebra" if standard_names else "vertebrae_L3")


def test_subset_uses_totalsegmentator_class_names():
    def process(inputVolume, outputSegmentation, quality=None, cpu=False, task=None, subset=None):
        pass

    kwargs = process_kwargs(process, TOTALSEGMENTATOR_STRUCTURES)
    assert kwargs["task"] == "total"
    assert kwargs["subset"][-3:] == ["vertebrae_L2", "vertebrae_L3", "vertebrae_L4"]
