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
