"""The phantom's segmentation.seg.nrrd read by Slicer's own segmentation storage node (slicer-core)."""

from __future__ import annotations

import numpy as np
import SimpleITK as sitk
from vtk.util.numpy_support import vtk_to_numpy

from startnet.phantom import PhantomConfig, build_phantom
from startnet.phantom.export import write_segmentation_nrrd


def test_slicer_reads_segment_names_labels_colours_and_voxels(tmp_path):
    from slicer import vtkMRMLScene, vtkMRMLSegmentationNode, vtkMRMLSegmentationStorageNode

    phantom = build_phantom(PhantomConfig(preset="small", noise=False, blur=False, motion=False,
                                          timepoints_h=(24.0,)))
    path = write_segmentation_nrrd(phantom.labels, phantom.label_names, tmp_path / "segmentation.seg.nrrd")
    scene = vtkMRMLScene()
    node = vtkMRMLSegmentationNode()
    scene.AddNode(node)
    storage = vtkMRMLSegmentationStorageNode()
    scene.AddNode(storage)
    storage.SetFileName(str(path))
    assert storage.ReadData(node) == 1
    segmentation = node.GetSegmentation()
    assert segmentation.GetNumberOfSegments() == len(phantom.label_names)
    labels = sitk.GetArrayFromImage(phantom.labels)
    for i in range(segmentation.GetNumberOfSegments()):
        segment = segmentation.GetNthSegment(i)
        value = segment.GetLabelValue()
        assert phantom.label_names[value] == segment.GetName() == segmentation.GetNthSegmentID(i)
        assert all(0.0 <= c <= 1.0 for c in segment.GetColor())
        image = segment.GetRepresentation("Binary labelmap")
        scalars = vtk_to_numpy(image.GetPointData().GetScalars())
        assert int(np.count_nonzero(scalars == value)) == int(np.count_nonzero(labels == value))
