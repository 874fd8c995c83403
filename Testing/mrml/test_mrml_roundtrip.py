"""Round trips between numpy/SimpleITK and real MRML nodes (slicer-core wheel)."""

from __future__ import annotations

import zipfile

import numpy as np
import pytest
import SimpleITK as sitk

from startnet.mrml import scene as mrml_scene
from startnet.mrml.geometry import ImageGeometry, sitk_transform_to_matrix
from startnet.mrml.segmentations import masks_to_segmentation, segment_names, segmentation_to_masks
from startnet.mrml.tables import records_from_table, table_from_records
from startnet.mrml.transforms import sitk_to_transform_node, transform_node_to_sitk
from startnet.mrml.volumes import sitk_to_volume, volume_geometry, volume_to_sitk


def _rotation_direction(angle_deg: float = 20.0) -> tuple:
    a = np.deg2rad(angle_deg)
    rz = np.array([[np.cos(a), -np.sin(a), 0], [np.sin(a), np.cos(a), 0], [0, 0, 1]])
    b = np.deg2rad(-12.0)
    rx = np.array([[1, 0, 0], [0, np.cos(b), -np.sin(b)], [0, np.sin(b), np.cos(b)]])
    return tuple((rz @ rx).reshape(-1))


def _oblique_image() -> sitk.Image:
    rng = np.random.default_rng(3)
    array = rng.normal(size=(7, 9, 11)).astype(np.float32)
    image = sitk.GetImageFromArray(array)
    image.SetSpacing((1.5, 2.25, 3.0))
    image.SetOrigin((-101.0, 37.5, -12.25))
    image.SetDirection(_rotation_direction())
    return image


@pytest.fixture()
def scene():
    return mrml_scene.new_scene()


def test_volume_round_trip_keeps_geometry_and_voxels(scene):
    image = _oblique_image()
    node = sitk_to_volume(scene, image, "ct")
    back = volume_to_sitk(node)
    np.testing.assert_array_equal(sitk.GetArrayFromImage(back), sitk.GetArrayFromImage(image))
    np.testing.assert_allclose(back.GetOrigin(), image.GetOrigin(), atol=1e-9)
    np.testing.assert_allclose(back.GetSpacing(), image.GetSpacing(), atol=1e-9)
    np.testing.assert_allclose(back.GetDirection(), image.GetDirection(), atol=1e-9)


def test_volume_ras_matrix_is_lps_flipped(scene):
    image = _oblique_image()
    node = sitk_to_volume(scene, image, "ct")
    # voxel (i, j, k) = (3, 4, 5): LPS point from SimpleITK, RAS point from the MRML matrix
    lps = np.array(image.TransformIndexToPhysicalPoint((3, 4, 5)))
    import vtk

    m = vtk.vtkMatrix4x4()
    node.GetIJKToRASMatrix(m)
    ras = np.array(m.MultiplyPoint((3, 4, 5, 1))[:3])
    np.testing.assert_allclose(ras, lps * np.array([-1, -1, 1]), atol=1e-9)
    assert volume_geometry(node).size_ijk == (11, 9, 7)


def test_parent_linear_transform_is_hardened_into_geometry(scene):
    image = _oblique_image()
    node = sitk_to_volume(scene, image, "spect")
    moved = sitk.Euler3DTransform()
    moved.SetRotation(0.0, 0.0, np.deg2rad(5.0))
    moved.SetTranslation((4.0, -2.0, 1.0))
    transform_node = sitk_to_transform_node(scene, moved, "tp2_to_ref")
    node.SetAndObserveTransformNodeID(transform_node.GetID())
    hardened = volume_to_sitk(node)
    # The node's transform-from-parent is `moved`: a voxel ends up at moved^-1(original point).
    index = (2, 3, 4)
    original = np.array(image.TransformIndexToPhysicalPoint(index))
    expected = np.array(moved.GetInverse().TransformPoint(tuple(original)))
    np.testing.assert_allclose(hardened.TransformIndexToPhysicalPoint(index), expected, atol=1e-6)


def test_labelmap_volume_node(scene):
    labels = sitk.GetImageFromArray(np.arange(24, dtype=np.uint8).reshape(2, 3, 4))
    node = sitk_to_volume(scene, labels, "labels", node_class="vtkMRMLLabelMapVolumeNode")
    assert node.IsA("vtkMRMLLabelMapVolumeNode")
    np.testing.assert_array_equal(sitk.GetArrayFromImage(volume_to_sitk(node)), np.arange(24).reshape(2, 3, 4))


def test_segmentation_with_overlapping_segments_round_trips(scene):
    reference = _oblique_image()
    zz, yy, xx = np.indices(sitk.GetArrayViewFromImage(reference).shape)
    kidney = (zz >= 1) & (zz <= 5) & (yy >= 2) & (yy <= 6) & (xx >= 1) & (xx <= 4)
    cortex = kidney & ((xx == 1) | (xx == 4))
    tumour = (zz >= 2) & (zz <= 4) & (yy >= 1) & (yy <= 3) & (xx >= 7) & (xx <= 9)
    masks = {"kidney_left": kidney, "kidney_left_cortex": cortex, "tumour_1": tumour}
    node = masks_to_segmentation(scene, masks, reference, colours={"tumour_1": (1.0, 0.0, 0.0)})
    assert segment_names(node) == ["kidney_left", "kidney_left_cortex", "tumour_1"]
    segment = node.GetSegmentation().GetSegment(node.GetSegmentation().GetSegmentIdBySegmentName("tumour_1"))
    assert tuple(segment.GetColor()) == (1.0, 0.0, 0.0)
    back = segmentation_to_masks(scene, node, reference)
    assert list(back) == list(masks)
    for name, mask in masks.items():
        np.testing.assert_array_equal(back[name], mask, err_msg=name)
        assert back[name].sum() == mask.sum() > 0


def test_segmentation_onto_another_grid_resamples(scene):
    reference = sitk.Image(20, 20, 20, sitk.sitkFloat32)
    reference.SetSpacing((2.0, 2.0, 2.0))
    mask = np.zeros((20, 20, 20), bool)
    mask[4:12, 6:14, 8:16] = True
    node = masks_to_segmentation(scene, {"liver": mask}, reference)
    fine = sitk.Image(40, 40, 40, sitk.sitkFloat32)
    fine.SetSpacing((1.0, 1.0, 1.0))
    fine.SetOrigin((-0.5, -0.5, -0.5))
    resampled = segmentation_to_masks(scene, node, fine)["liver"]
    # physical volume is preserved: 8*8*8 voxels of 8 mm^3 -> 4096 mm^3 = 4096 voxels of 1 mm^3
    assert resampled.sum() == 8 * 8 * 8 * 8


def test_table_round_trip_keeps_types(scene):
    records = [
        {"structure": "kidney_left", "mean_gy": 3.25, "volume_ml": 152.0},
        {"structure": "tumour_1", "mean_gy": 21.5, "volume_ml": None},
    ]
    node = table_from_records(scene, records, "doses")
    assert node.GetTable().GetNumberOfRows() == 2
    back = records_from_table(node)
    assert back == records


def test_transform_round_trip(scene):
    euler = sitk.Euler3DTransform()
    euler.SetCenter((10.0, -20.0, 30.0))
    euler.SetRotation(np.deg2rad(1.5), np.deg2rad(-2.0), np.deg2rad(0.7))
    euler.SetTranslation((3.0, -1.5, 2.25))
    node = sitk_to_transform_node(scene, euler, "tp0_to_ref")
    back = transform_node_to_sitk(node)
    np.testing.assert_allclose(sitk_transform_to_matrix(back), sitk_transform_to_matrix(euler), atol=1e-9)
    point = (12.0, 40.0, -7.0)
    np.testing.assert_allclose(back.TransformPoint(point), euler.TransformPoint(point), atol=1e-9)


def test_geometry_from_matrix_rejects_degenerate_axes():
    with pytest.raises(ValueError, match="zero-length axis"):
        ImageGeometry.from_ijk_to_ras(np.diag([1.0, 0.0, 1.0, 1.0]), (2, 2, 2))


def test_scene_writes_mrb_with_all_nodes(scene, tmp_path):
    image = _oblique_image()
    sitk_to_volume(scene, image, "ct")
    mask = sitk.GetArrayFromImage(image) > 0
    masks_to_segmentation(scene, {"kidney_right": mask, "spleen": ~mask}, image)
    table_from_records(scene, [{"structure": "kidney_right", "mean_gy": 4.0}], "doses")
    sitk_to_transform_node(scene, sitk.Euler3DTransform(), "identity")
    path = mrml_scene.save_mrb(scene, tmp_path / "scene.mrb")
    with zipfile.ZipFile(path) as bundle:
        names = bundle.namelist()
    assert any(n.endswith(".mrml") for n in names)
    assert any(n.endswith(".nrrd") for n in names)
    assert any(n.endswith(".seg.nrrd") for n in names)
    assert any(n.endswith(".tsv") or n.endswith(".csv") for n in names)
    assert any(n.endswith(".h5") or n.endswith(".tfm") or n.endswith(".txt") for n in names)


def test_scene_writes_mrb_to_a_relative_path(scene, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "out").mkdir()
    sitk_to_volume(scene, _oblique_image(), "ct")
    path = mrml_scene.save_mrb(scene, "out/scene.mrb")
    assert path.is_absolute() and (tmp_path / "out" / "scene.mrb").stat().st_size > 0
