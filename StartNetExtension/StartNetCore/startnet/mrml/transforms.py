"""Linear transform nodes <-> SimpleITK transforms.

A SimpleITK registration transform maps points of the fixed (reference) space to the moving
space, in LPS. MRML stores it as the node's "transform from parent", in RAS; a moving volume
placed under that node is shown aligned with the fixed one.
"""

from __future__ import annotations

import numpy as np

from startnet.errors import InputError
from startnet.mrml.geometry import lps_matrix_to_ras, matrix_to_sitk_affine, sitk_transform_to_matrix
from startnet.mrml.volumes import _vtk_matrix, matrix_from_transform_node


def sitk_to_transform_node(scene, transform, name: str, *, node=None):
    """Create (or update) a vtkMRMLLinearTransformNode from a SimpleITK linear transform."""
    matrix_lps = sitk_transform_to_matrix(transform)
    if node is None:
        node = scene.AddNewNodeByClass("vtkMRMLLinearTransformNode", name)
    node.SetMatrixTransformFromParent(_vtk_matrix(lps_matrix_to_ras(matrix_lps)))
    return node


def transform_node_to_sitk(transform_node):
    """SimpleITK AffineTransform (LPS, fixed -> moving) of a linear transform node."""
    if not transform_node.IsLinear():
        raise InputError(f"transform node '{transform_node.GetName()}' is not linear")
    return matrix_to_sitk_affine(matrix_from_transform_node(transform_node, from_parent=True))


def transform_node_matrix_lps(transform_node) -> np.ndarray:
    """4x4 LPS matrix (fixed -> moving) of a linear transform node."""
    return matrix_from_transform_node(transform_node, from_parent=True)


def displacement_grid_node(scene, transform, grid, name: str, *, node=None):
    """A vtkMRMLGridTransformNode holding ``transform`` (LPS, reference -> time point) sampled on ``grid``.

    ``grid`` is a SimpleITK image whose geometry (LPS) is the sampling grid. The displacement is
    stored as the node's transform from parent in RAS (vtkOrientedGridTransform from vtkAddon,
    present in Slicer v5.8.1 and v5.10.0; saved with the scene as an ITK displacement field).
    """
    import SimpleITK as sitk
    import slicer
    import vtk
    from vtk.util import numpy_support

    from startnet.mrml.geometry import LPS_TO_RAS, ImageGeometry

    field = sitk.TransformToDisplacementField(transform, sitk.sitkVectorFloat64, grid.GetSize(), grid.GetOrigin(),
                                              grid.GetSpacing(), grid.GetDirection())
    vectors_lps = sitk.GetArrayFromImage(field)  # (z, y, x, 3)
    vectors_ras = vectors_lps * np.array([-1.0, -1.0, 1.0])
    geometry = ImageGeometry.from_sitk(grid)
    image = vtk.vtkImageData()
    image.SetDimensions(*geometry.size_ijk)
    ras_origin = LPS_TO_RAS @ np.asarray(geometry.origin_lps_mm)
    image.SetOrigin(*ras_origin)
    image.SetSpacing(*geometry.spacing_mm)
    array = numpy_support.numpy_to_vtk(np.ascontiguousarray(vectors_ras.reshape(-1, 3)), deep=True,
                                       array_type=vtk.VTK_DOUBLE)
    array.SetNumberOfComponents(3)
    image.GetPointData().SetScalars(array)
    direction = np.eye(4)
    direction[:3, :3] = LPS_TO_RAS @ geometry.direction_matrix
    grid_transform = slicer.vtkOrientedGridTransform()
    grid_transform.SetDisplacementGridData(image)
    grid_transform.SetGridDirectionMatrix(_vtk_matrix(direction))
    grid_transform.SetInterpolationModeToCubic()
    if node is None:
        node = scene.AddNewNodeByClass("vtkMRMLGridTransformNode", name)
    node.SetAndObserveTransformFromParent(grid_transform)
    return node


def transform_from_world_to_sitk(transform_node, grid):
    """The node's full transform from world (LPS, the resampling direction) as a SimpleITK transform.

    Linear (every node up the hierarchy linear): an exact AffineTransform. Otherwise (a grid or
    B-spline node anywhere up the hierarchy, e.g. the B-spline refinement or a hand-made
    warp) the composed transform is sampled at the points of ``grid`` (a SimpleITK image,
    usually the reference SPECT grid padded by a voxel) into a DisplacementFieldTransform.
    """
    import SimpleITK as sitk
    import vtk
    from vtk.util import numpy_support

    from startnet.mrml.geometry import matrix_to_sitk_affine, ras_matrix_to_lps
    from startnet.mrml.volumes import _numpy_matrix

    if transform_node.IsTransformToWorldLinear():
        matrix = vtk.vtkMatrix4x4()
        transform_node.GetMatrixTransformFromWorld(matrix)
        return matrix_to_sitk_affine(ras_matrix_to_lps(_numpy_matrix(matrix)))
    general = vtk.vtkGeneralTransform()
    transform_node.GetTransformFromWorld(general)
    size = grid.GetSize()
    index = np.stack(np.meshgrid(*[np.arange(n, dtype=float) for n in size], indexing="ij"), axis=-1)
    index = index.transpose(2, 1, 0, 3).reshape(-1, 3)  # (z, y, x) order, x fastest
    direction = np.asarray(grid.GetDirection(), float).reshape(3, 3)
    points_lps = np.asarray(grid.GetOrigin()) + (index * np.asarray(grid.GetSpacing())) @ direction.T
    flip = np.array([-1.0, -1.0, 1.0])
    points = vtk.vtkPoints()
    points.SetData(numpy_support.numpy_to_vtk(np.ascontiguousarray(points_lps * flip), deep=True,
                                              array_type=vtk.VTK_DOUBLE))
    moved = vtk.vtkPoints()
    general.TransformPoints(points, moved)
    moved_lps = numpy_support.vtk_to_numpy(moved.GetData()).astype(float) * flip
    displacement = (moved_lps - points_lps).reshape(tuple(size[::-1]) + (3,))
    field = sitk.GetImageFromArray(displacement, isVector=True)
    field.SetOrigin(grid.GetOrigin())
    field.SetSpacing(grid.GetSpacing())
    field.SetDirection(grid.GetDirection())
    return sitk.DisplacementFieldTransform(sitk.Cast(field, sitk.sitkVectorFloat64))
