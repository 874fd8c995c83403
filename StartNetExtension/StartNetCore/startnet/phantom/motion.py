"""Rigid patient motion between time points, deterministic from the seed.

Direction (SimpleITK convention): a time point's ``true_transform`` maps a point given in the
REFERENCE time point's physical space (LPS mm) to the same anatomical point in THIS time
point's physical space. Resampling this time point's image onto the reference grid therefore uses
it directly: ``sitk.Resample(tp_image, reference_image, true_transform)``. The reference time
point's transform is the identity.
"""

from __future__ import annotations

from typing import Dict, List

import numpy as np
import SimpleITK as sitk

ROTATION_CENTER_MM = (0.0, 0.0, 0.0)  # body centre


def motion_transforms(n_timepoints: int, reference_index: int, seed: int, max_shift_mm: float,
                      max_rotation_deg: float, enabled: bool) -> List[sitk.Euler3DTransform]:
    """One Euler3DTransform per time point (identity at the reference or when disabled).

    Shifts are uniform in [-max_shift_mm, max_shift_mm] per axis; the rotation about the long (z)
    axis is uniform in +-max_rotation_deg, about x and y in +-max_rotation_deg/2 (a patient lying
    on a table rolls more than it pitches).
    """
    rng = np.random.default_rng(np.random.SeedSequence([int(seed), 7001]))
    transforms = []
    for index in range(n_timepoints):
        shift = rng.uniform(-max_shift_mm, max_shift_mm, size=3)
        angles_deg = rng.uniform(-1.0, 1.0, size=3) * np.array([0.5, 0.5, 1.0]) * max_rotation_deg
        tx = sitk.Euler3DTransform()
        tx.SetCenter(ROTATION_CENTER_MM)
        if enabled and index != reference_index:
            tx.SetRotation(*[float(a) for a in np.deg2rad(angles_deg)])
            tx.SetTranslation([float(s) for s in shift])
        transforms.append(tx)
    return transforms


def affine_parts(transform: sitk.Euler3DTransform) -> tuple[np.ndarray, np.ndarray]:
    """(matrix M, offset b) with T(p) = M p + b."""
    matrix = np.asarray(transform.GetMatrix(), dtype=np.float64).reshape(3, 3)
    center = np.asarray(transform.GetCenter(), dtype=np.float64)
    translation = np.asarray(transform.GetTranslation(), dtype=np.float64)
    return matrix, translation + center - matrix @ center


def transform_to_dict(transform: sitk.Euler3DTransform) -> Dict[str, object]:
    matrix, offset = affine_parts(transform)
    return {
        "type": "Euler3DTransform",
        "direction": "maps a point in the reference time point's physical space (LPS mm) to the same "
                     "anatomical point in this time point's physical space (SimpleITK resampling convention)",
        "center_mm": list(transform.GetCenter()),
        "angles_rad": [transform.GetAngleX(), transform.GetAngleY(), transform.GetAngleZ()],
        "angles_deg": [float(np.rad2deg(a)) for a in (transform.GetAngleX(), transform.GetAngleY(),
                                                       transform.GetAngleZ())],
        "translation_mm": list(transform.GetTranslation()),
        "parameters": list(transform.GetParameters()),
        "matrix": matrix.tolist(),
        "offset_mm": offset.tolist(),
        "matrix_4x4": np.vstack([np.hstack([matrix, offset[:, None]]), [0, 0, 0, 1]]).tolist(),
    }
