"""Volume nodes <-> SimpleITK images, with full geometry (origin, spacing, direction).

SimpleITK images are LPS; MRML volumes are RAS (see :mod:`startnet.mrml.geometry`).
"""

from __future__ import annotations

from typing import Optional

import numpy as np
import SimpleITK as sitk
import slicer
import vtk

from startnet.errors import GeometryError, InputError
from startnet.mrml.geometry import ImageGeometry, ras_matrix_to_lps


def _vtk_matrix(matrix: np.ndarray) -> vtk.vtkMatrix4x4:
    out = vtk.vtkMatrix4x4()
    for r in range(4):
        for c in range(4):
            out.SetElement(r, c, float(matrix[r, c]))
    return out


def _numpy_matrix(matrix: vtk.vtkMatrix4x4) -> np.ndarray:
    return np.array([[matrix.GetElement(r, c) for c in range(4)] for r in range(4)], dtype=float)


def volume_geometry(volume_node) -> ImageGeometry:
    """Geometry (LPS) of a volume node, ignoring any parent transform."""
    image_data = volume_node.GetImageData()
    if image_data is None:
        raise InputError(f"volume node '{volume_node.GetName()}' has no image data")
    ijk_to_ras = vtk.vtkMatrix4x4()
    volume_node.GetIJKToRASMatrix(ijk_to_ras)
    return ImageGeometry.from_ijk_to_ras(_numpy_matrix(ijk_to_ras), image_data.GetDimensions())


def volume_to_sitk(volume_node, *, harden_parent_transform: bool = True) -> sitk.Image:
    """SimpleITK image (LPS) of a scalar volume node.

    With ``harden_parent_transform`` a linear parent transform is applied to the geometry
    (the voxel grid moves with it, as Slicer shows it); a non-linear one is an error because it
    cannot be expressed in the image geometry without resampling.
    """
    geometry = volume_geometry(volume_node)
    array = slicer.util.arrayFromVolume(volume_node)
    if array.ndim != 3:
        raise InputError(
            f"volume node '{volume_node.GetName()}' has {array.ndim}-D voxels; expected a scalar 3D volume"
        )
    image = sitk.GetImageFromArray(np.array(array, copy=True))
    parent = volume_node.GetParentTransformNode() if harden_parent_transform else None
    if parent is not None:
        if not parent.IsTransformToWorldLinear():
            raise GeometryError(
                f"volume node '{volume_node.GetName()}' is under the non-linear transform "
                f"'{parent.GetName()}'; harden or remove it before converting"
            )
        to_world = vtk.vtkMatrix4x4()
        parent.GetMatrixTransformToWorld(to_world)
        ijk_to_world = _numpy_matrix(to_world) @ geometry.ijk_to_ras_matrix()
        geometry = ImageGeometry.from_ijk_to_ras(ijk_to_world, geometry.size_ijk)
        _check_orthonormal(geometry, volume_node.GetName())
    geometry.apply_to_sitk(image)
    return image


def _check_orthonormal(geometry: ImageGeometry, name: str) -> None:
    d = geometry.direction_matrix
    if not np.allclose(d.T @ d, np.eye(3), atol=1e-5):
        raise GeometryError(
            f"volume '{name}' under its parent transform is sheared or scaled non-uniformly; "
            "SimpleITK images need an orthonormal direction: resample it first"
        )


def sitk_to_volume(
    scene,
    image: sitk.Image,
    name: str,
    *,
    node=None,
    node_class: str = "vtkMRMLScalarVolumeNode",
):
    """Create (or update ``node``) a volume node holding ``image`` with its geometry.

    ``node_class`` may be ``vtkMRMLLabelMapVolumeNode`` for integer label images.
    """
    if image.GetDimension() != 3 or image.GetNumberOfComponentsPerPixel() != 1:
        raise InputError(f"image '{name}' must be a scalar 3D image")
    if node is None:
        node = scene.AddNewNodeByClass(node_class, name)
    slicer.util.updateVolumeFromArray(node, sitk.GetArrayViewFromImage(image))
    geometry = ImageGeometry.from_sitk(image)
    node.SetIJKToRASMatrix(_vtk_matrix(geometry.ijk_to_ras_matrix()))
    if node.GetDisplayNode() is None:
        node.CreateDefaultDisplayNodes()
    return node


def set_volume_attributes(node, attributes: dict) -> None:
    """Store string attributes on a node (e.g. units, time since injection, provenance)."""
    for key, value in attributes.items():
        node.SetAttribute(str(key), str(value))


def matrix_from_transform_node(transform_node, *, from_parent: bool = True) -> np.ndarray:
    """4x4 matrix (LPS) of a linear transform node (resampling direction when ``from_parent``)."""
    m = vtk.vtkMatrix4x4()
    if from_parent:
        transform_node.GetMatrixTransformFromParent(m)
    else:
        transform_node.GetMatrixTransformToParent(m)
    return ras_matrix_to_lps(_numpy_matrix(m))


def find_volume(scene, name: str, node_class: str = "vtkMRMLScalarVolumeNode") -> Optional[object]:
    """First node of ``node_class`` named ``name`` in ``scene`` (None when absent)."""
    nodes = scene.GetNodesByClassByName(node_class, name)
    return nodes.GetItemAsObject(0) if nodes.GetNumberOfItems() else None
