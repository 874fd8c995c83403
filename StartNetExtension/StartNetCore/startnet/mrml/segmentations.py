"""Segmentation nodes <-> per-segment boolean masks on a reference grid.

Masks are numpy bool arrays indexed (z, y, x) on the grid of a reference SimpleITK image (LPS).
Segments may overlap (e.g. a kidney and its cortex); each is converted on its own.
"""

from __future__ import annotations

from collections import OrderedDict
from typing import Dict, Mapping, Optional, Sequence, Tuple

import numpy as np
import SimpleITK as sitk
import slicer
import vtk
from vtk.util import numpy_support

from startnet.errors import GeometryError, InputError
from startnet.mrml.geometry import ImageGeometry
from startnet.mrml.volumes import _vtk_matrix, sitk_to_volume
from startnet.segmentation.container import default_colour


def _segmentations_logic(scene):
    """The scene's segmentations logic: Slicer's own in the application, else one made once per scene.

    Creating it with ``SetMRMLScene`` registers the segmentation node classes and converter
    rules; doing that twice on one scene re-registers them (and VTK warns), so it is kept.
    """
    modules = getattr(slicer, "modules", None)
    if modules is not None and hasattr(modules, "segmentations"):
        return modules.segmentations.logic()
    existing = getattr(scene, "_startnet_segmentations_logic", None)
    if existing is None:
        existing = slicer.vtkSlicerSegmentationsModuleLogic()
        existing.SetMRMLScene(scene)
        scene._startnet_segmentations_logic = existing
    return existing


def _oriented_mask(mask: np.ndarray, geometry: ImageGeometry):
    image = slicer.vtkOrientedImageData()
    z, y, x = mask.shape
    image.SetDimensions(int(x), int(y), int(z))
    flat = np.ascontiguousarray(mask.astype(np.uint8)).reshape(-1)
    scalars = numpy_support.numpy_to_vtk(flat, deep=True, array_type=vtk.VTK_UNSIGNED_CHAR)
    image.GetPointData().SetScalars(scalars)
    image.SetImageToWorldMatrix(_vtk_matrix(geometry.ijk_to_ras_matrix()))
    return image


def masks_to_segmentation(
    scene,
    masks: Mapping[str, np.ndarray],
    reference: sitk.Image,
    name: str = "Segmentation",
    *,
    colours: Optional[Mapping[str, Sequence[float]]] = None,
    node=None,
):
    """Create (or fill) a vtkMRMLSegmentationNode with one segment per mask, named as the keys."""
    geometry = ImageGeometry.from_sitk(reference)
    expected_shape = tuple(reversed(geometry.size_ijk))
    _segmentations_logic(scene)
    if node is None:
        node = scene.AddNewNodeByClass("vtkMRMLSegmentationNode", name)
        node.CreateDefaultDisplayNodes()
    segmentation = node.GetSegmentation()
    labelmap_name = slicer.vtkSegmentationConverter.GetBinaryLabelmapRepresentationName()
    if segmentation.GetSourceRepresentationName() != labelmap_name:
        if segmentation.GetNumberOfSegments() > 0:
            # Switching the source name alone would invalidate (drop) the existing segments' closed
            # surfaces / planar contours (vtkSegmentation::SetSourceRepresentationName, v5.8.1 and
            # v5.10.0): convert them to labelmaps first, on the reference grid.
            _convert_to_labelmap(segmentation, geometry)
        segmentation.SetSourceRepresentationName(labelmap_name)
    for index, (segment_name, mask) in enumerate(masks.items()):
        mask = np.asarray(mask)
        if mask.shape != expected_shape:
            raise GeometryError(
                f"mask '{segment_name}' has shape {mask.shape}; the reference grid is {expected_shape} (z, y, x)"
            )
        if segmentation.GetSegmentIdBySegmentName(segment_name):
            raise InputError(f"segmentation '{node.GetName()}' already has a segment named '{segment_name}'")
        segment = slicer.vtkSegment()
        segment.SetName(segment_name)
        colour = (colours or {}).get(segment_name) or default_colour(segment_name, index)
        segment.SetColor(*[float(c) for c in colour])
        set_terminology(segment, segment_name)
        segment.AddRepresentation(labelmap_name, _oriented_mask(mask.astype(bool), geometry))
        segmentation.AddSegment(segment, segment_name)
    return node


def _extent(geometry: ImageGeometry) -> list:
    x, y, z = (int(n) for n in geometry.size_ijk)
    return [0, x - 1, 0, y - 1, 0, z - 1]


def _convert_to_labelmap(segmentation, geometry: ImageGeometry) -> None:
    labelmap_name = slicer.vtkSegmentationConverter.GetBinaryLabelmapRepresentationName()
    segmentation.SetConversionParameter(
        slicer.vtkSegmentationConverter.GetReferenceImageGeometryParameterName(),
        slicer.vtkSegmentationConverter.SerializeImageGeometry(_vtk_matrix(geometry.ijk_to_ras_matrix()),
                                                               _extent(geometry)),
    )
    if not segmentation.CreateRepresentation(labelmap_name, True):
        raise GeometryError("the segmentation's segments could not be converted to a binary labelmap")


def set_terminology(segment, name: str) -> bool:
    """Tag a segment with the standard terminology of ``name`` (kidney_left, tumour_1...); False if none.

    ``vtkSegment.SetTag(GetTerminologyEntryTagName(), entry)`` exists in v5.8.1 and v5.10.0
    (``vtkSegment.SetTerminology`` only from 5.10).
    """
    from startnet.segmentation.terminology import terminology_entry

    entry = terminology_entry(name)
    if entry is None:
        return False
    segment.SetTag(slicer.vtkSegment.GetTerminologyEntryTagName(), entry)
    return True


def segment_terminology(segmentation_node) -> Dict[str, str]:
    """Segment name -> serialized terminology entry ("" when the segment has none)."""
    segmentation = segmentation_node.GetSegmentation()
    out = {}
    for i in range(segmentation.GetNumberOfSegments()):
        segment = segmentation.GetNthSegment(i)
        value = vtk.reference("")
        found = segment.GetTag(slicer.vtkSegment.GetTerminologyEntryTagName(), value)
        out[segment.GetName()] = str(value) if found else ""
    return out


def segment_names(segmentation_node) -> list:
    segmentation = segmentation_node.GetSegmentation()
    return [segmentation.GetNthSegment(i).GetName() for i in range(segmentation.GetNumberOfSegments())]


def segment_colours(segmentation_node) -> Dict[str, Tuple[float, float, float]]:
    segmentation = segmentation_node.GetSegmentation()
    out = {}
    for i in range(segmentation.GetNumberOfSegments()):
        segment = segmentation.GetNthSegment(i)
        out[segment.GetName()] = tuple(float(c) for c in segment.GetColor())
    return out


def segmentation_to_masks(scene, segmentation_node, reference: sitk.Image) -> OrderedDict[str, np.ndarray]:
    """Boolean mask per segment (by name, in segment order) on the grid of ``reference``.

    Segments are resampled (nearest neighbour) onto the reference grid by Slicer's own
    segmentation logic, so the result matches what Slicer shows.
    """
    _segmentations_logic(scene)
    segmentation = segmentation_node.GetSegmentation()
    if segmentation.GetNumberOfSegments() == 0:
        raise InputError(f"segmentation '{segmentation_node.GetName()}' has no segments")
    reference_node = sitk_to_volume(scene, sitk.Cast(reference * 0, sitk.sitkUInt8), "__startnet_reference__")
    label_node = scene.AddNewNodeByClass("vtkMRMLLabelMapVolumeNode", "__startnet_export__")
    colour_ids = _node_ids(scene, "vtkMRMLColorTableNode")  # the export adds "<name>_ColorTable" each time
    masks: OrderedDict[str, np.ndarray] = OrderedDict()
    try:
        for i in range(segmentation.GetNumberOfSegments()):
            segment_id = segmentation.GetNthSegmentID(i)
            ids = vtk.vtkStringArray()
            ids.InsertNextValue(segment_id)
            ok = slicer.vtkSlicerSegmentationsModuleLogic.ExportSegmentsToLabelmapNode(
                segmentation_node, ids, label_node, reference_node,
                slicer.vtkSegmentation.EXTENT_REFERENCE_GEOMETRY,
            )
            if not ok:
                raise GeometryError(
                    f"segment '{segmentation.GetSegment(segment_id).GetName()}' could not be exported "
                    "onto the reference grid"
                )
            masks[segmentation.GetSegment(segment_id).GetName()] = slicer.util.arrayFromVolume(label_node) > 0
    finally:
        for temporary in (label_node, reference_node):
            display = temporary.GetDisplayNode()
            if display is not None:
                scene.RemoveNode(display)
            scene.RemoveNode(temporary)
        for node_id in _node_ids(scene, "vtkMRMLColorTableNode") - colour_ids:
            scene.RemoveNode(scene.GetNodeByID(node_id))
    return masks


def _node_ids(scene, node_class: str) -> set:
    nodes = scene.GetNodesByClass(node_class)
    return {nodes.GetItemAsObject(i).GetID() for i in range(nodes.GetNumberOfItems())}
