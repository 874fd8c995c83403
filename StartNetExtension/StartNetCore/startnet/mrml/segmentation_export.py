"""A scene segmentation as masks on the reference CT geometry, whatever its source representation.

A segmentation loaded from an RTSTRUCT (SlicerRT: planar contours source) or a model has a
poly-data source representation; Slicer's segmentation writer saves the source representation
only, so such a node written "as .seg.nrrd" holds poly data (vtkMRMLSegmentationStorageNode
``WriteDataInternal``, v5.8.1 and v5.10.0). Here the segments are converted to binary labelmaps
on the reference CT geometry (``SetReferenceImageGeometryParameterFromVolumeNode`` +
``CreateBinaryLabelmapRepresentation``, both tags) before they are read.

:func:`segmentation_labelmap_on_geometry` is what the dosimetry from the scene calls.
"""

from __future__ import annotations

import slicer

from startnet.errors import GeometryError, InputError
from startnet.mrml.segmentations import segment_colours, segmentation_to_masks
from startnet.mrml.volumes import volume_to_sitk
from startnet.segmentation.container import Segmentation


def _labelmap_name() -> str:
    return slicer.vtkSegmentationConverter.GetBinaryLabelmapRepresentationName()


def set_reference_geometry(segmentation_node, reference_volume_node) -> None:
    """Make ``reference_volume_node`` (the reference CT) the segmentation's editing geometry.

    Sets the conversion parameter (``SetReferenceImageGeometryParameterFromVolumeNode``) and the
    node reference TotalSegmentator and DICOM SEG export use (``GetReferenceImageGeometryReferenceRole``);
    both exist in Slicer v5.8.1 and v5.10.0.
    """
    if reference_volume_node is None or reference_volume_node.GetImageData() is None:
        raise InputError("the reference CT has no image data; select the reference time point's CT")
    segmentation_node.SetReferenceImageGeometryParameterFromVolumeNode(reference_volume_node)
    segmentation_node.SetNodeReferenceID(segmentation_node.GetReferenceImageGeometryReferenceRole(),
                                         reference_volume_node.GetID())


def ensure_binary_labelmap(segmentation_node, reference_volume_node, *, make_source: bool = False) -> bool:
    """Binary labelmaps of every segment on the reference geometry; True if a conversion was needed.

    A segmentation whose source is already a binary labelmap is left as it is. Otherwise the
    labelmap representation is (re)made from the source at the reference volume's geometry (an
    older labelmap made at another geometry is replaced). With ``make_source`` the labelmap
    becomes the source representation (what Segment Editor does before editing; the node then
    saves as .seg.nrrd). The deprecated ``SetMasterRepresentationToBinaryLabelmap`` is not used:
    in v5.8.1 and v5.10.0 it sets the closed surface as source.
    """
    segmentation = segmentation_node.GetSegmentation()
    labelmap_name = _labelmap_name()
    if segmentation.GetSourceRepresentationName() == labelmap_name:
        return False
    set_reference_geometry(segmentation_node, reference_volume_node)
    if segmentation.GetNumberOfSegments() > 0:
        segmentation.RemoveRepresentation(labelmap_name)
        if not segmentation_node.CreateBinaryLabelmapRepresentation():
            raise GeometryError(f"segmentation '{segmentation_node.GetName()}': its "
                                f"{segmentation.GetSourceRepresentationName()} source could not be converted to a "
                                "binary labelmap")
    if make_source:
        segmentation_node.SetSourceRepresentationToBinaryLabelmap()
    return True


def segmentation_labelmap_on_geometry(scene, segmentation_node, reference_volume_node) -> Segmentation:
    """Every segment of ``segmentation_node`` as a boolean mask on ``reference_volume_node``'s grid.

    Returns a :class:`startnet.segmentation.Segmentation`: ``reference`` is the reference volume
    as a SimpleITK image (LPS, its parent transform applied), ``masks`` name -> bool (z, y, x) in
    segment order (segments may overlap), ``colors`` the segments' display colours, ``labelmap()``
    a uint16 label image at that geometry. Closed-surface / planar-contour sources are converted
    first (the node keeps its source; it gains a labelmap representation at the CT geometry).
    """
    if segmentation_node is None:
        raise InputError("no segmentation selected")
    segmentation = segmentation_node.GetSegmentation()
    if segmentation.GetNumberOfSegments() == 0:
        raise InputError(f"segmentation '{segmentation_node.GetName()}' has no segments")
    ensure_binary_labelmap(segmentation_node, reference_volume_node)
    reference = volume_to_sitk(reference_volume_node)
    masks = segmentation_to_masks(scene, segmentation_node, reference)
    colours = segment_colours(segmentation_node)
    return Segmentation(reference, masks=dict(masks), colors={name: colours[name] for name in masks},
                        source=f"scene segmentation '{segmentation_node.GetName()}'")
