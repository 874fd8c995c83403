"""Image geometry conversions between SimpleITK (LPS) and MRML (RAS IJK-to-RAS matrices).

Pure numpy: no ``slicer`` import, so it is usable and testable anywhere.

Conventions:
- SimpleITK images live in LPS patient coordinates: ``point = origin + direction @ (spacing * ijk)``.
- MRML volumes store an IJK-to-RAS 4x4 matrix: ``ras = M @ [i, j, k, 1]``.
- RAS = diag(-1, -1, 1) . LPS.
- numpy arrays from either side are indexed (k, j, i) = (z, y, x).
- A SimpleITK transform maps points of the FIXED (reference) space to the MOVING space (the
  resampling direction, LPS). In MRML that is a transform node's "transform FROM parent", in RAS.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence, Tuple

import numpy as np

LPS_TO_RAS = np.diag([-1.0, -1.0, 1.0])
LPS_TO_RAS_4 = np.diag([-1.0, -1.0, 1.0, 1.0])


@dataclass(frozen=True)
class ImageGeometry:
    """Geometry of a 3D image in LPS (SimpleITK convention)."""

    origin_lps_mm: Tuple[float, float, float]
    spacing_mm: Tuple[float, float, float]
    direction: Tuple[float, ...]  # 9 values, row-major, columns are the i, j, k axes
    size_ijk: Tuple[int, int, int]

    @property
    def direction_matrix(self) -> np.ndarray:
        return np.asarray(self.direction, dtype=float).reshape(3, 3)

    def ijk_to_lps_matrix(self) -> np.ndarray:
        m = np.eye(4)
        m[:3, :3] = self.direction_matrix @ np.diag(self.spacing_mm)
        m[:3, 3] = self.origin_lps_mm
        return m

    def ijk_to_ras_matrix(self) -> np.ndarray:
        return LPS_TO_RAS_4 @ self.ijk_to_lps_matrix()

    @classmethod
    def from_sitk(cls, image) -> ImageGeometry:
        return cls(
            origin_lps_mm=tuple(float(v) for v in image.GetOrigin()),
            spacing_mm=tuple(float(v) for v in image.GetSpacing()),
            direction=tuple(float(v) for v in image.GetDirection()),
            size_ijk=tuple(int(v) for v in image.GetSize()),
        )

    @classmethod
    def from_ijk_to_ras(cls, ijk_to_ras: np.ndarray, size_ijk: Sequence[int]) -> ImageGeometry:
        m_lps = LPS_TO_RAS_4 @ np.asarray(ijk_to_ras, dtype=float)
        axes = m_lps[:3, :3]
        spacing = np.linalg.norm(axes, axis=0)
        if np.any(spacing <= 0):
            raise ValueError(f"IJK-to-RAS matrix has a zero-length axis: {ijk_to_ras.tolist()}")
        direction = axes / spacing
        return cls(
            origin_lps_mm=tuple(float(v) for v in m_lps[:3, 3]),
            spacing_mm=tuple(float(v) for v in spacing),
            direction=tuple(float(v) for v in direction.reshape(-1)),
            size_ijk=tuple(int(v) for v in size_ijk),
        )

    def apply_to_sitk(self, image) -> None:
        image.SetOrigin(self.origin_lps_mm)
        image.SetSpacing(self.spacing_mm)
        image.SetDirection(self.direction)


def lps_matrix_to_ras(matrix_lps_4x4: np.ndarray) -> np.ndarray:
    """Express a 4x4 point transform given in LPS coordinates in RAS coordinates."""
    return LPS_TO_RAS_4 @ np.asarray(matrix_lps_4x4, dtype=float) @ LPS_TO_RAS_4


def ras_matrix_to_lps(matrix_ras_4x4: np.ndarray) -> np.ndarray:
    """Express a 4x4 point transform given in RAS coordinates in LPS coordinates."""
    return LPS_TO_RAS_4 @ np.asarray(matrix_ras_4x4, dtype=float) @ LPS_TO_RAS_4


def sitk_transform_to_matrix(transform) -> np.ndarray:
    """4x4 homogeneous matrix (LPS) of any linear SimpleITK transform (Euler, affine, composite...)."""
    if transform.GetDimension() != 3:
        raise ValueError(f"only 3D transforms are supported, got dimension {transform.GetDimension()}")
    if not transform.IsLinear():
        raise ValueError(f"{transform.GetName()} is not a linear transform")
    origin = np.asarray(transform.TransformPoint((0.0, 0.0, 0.0)), dtype=float)
    m = np.eye(4)
    for axis in range(3):
        unit = [0.0, 0.0, 0.0]
        unit[axis] = 1.0
        m[:3, axis] = np.asarray(transform.TransformPoint(tuple(unit)), dtype=float) - origin
    m[:3, 3] = origin
    return m


def matrix_to_sitk_affine(matrix_lps_4x4: np.ndarray):
    """SimpleITK AffineTransform (LPS) from a 4x4 homogeneous matrix."""
    import SimpleITK as sitk

    m = np.asarray(matrix_lps_4x4, dtype=float)
    if m.shape != (4, 4) or not np.allclose(m[3], [0, 0, 0, 1]):
        raise ValueError(f"expected a 4x4 homogeneous matrix, got {m.tolist()}")
    transform = sitk.AffineTransform(3)
    transform.SetMatrix(tuple(m[:3, :3].reshape(-1)))
    transform.SetTranslation(tuple(m[:3, 3]))
    return transform
