"""Registration of all SPECT/CT time points of a cycle onto one reference time point.

Contract used by the pipeline (all images are SimpleITK, LPS, mm; CT in HU, SPECT in Bq/mL):

* ``register_rigid(fixed_ct, moving_ct, *, body_threshold_hu=-500, ...) -> RigidRegistrationResult``
  multi-resolution Mattes-MI rigid registration inside the fixed body mask, deterministic.
  ``result.transform`` is a ``sitk.Euler3DTransform`` mapping *fixed (reference)* physical points
  to *moving* points (SimpleITK convention). Fields: translation_mm, rotation_deg,
  rotation_angle_deg, center_mm, metric_before, metric_after, body_overlap_dice, iterations,
  stop_condition, warnings, implausible, implausible_reason.
* ``refine_bspline(fixed_ct, moving_ct, initial_transform, mesh_size_mm=60, ...)
  -> BSplineRefinementResult`` (transform, max_displacement_mm, jacobian_min/max, implausible...).
* ``resample_activity(spect_bqml, transform, reference_grid_image) -> sitk.Image`` conserving total
  activity inside the reference field of view; ``resample_activity_checked`` also returns the
  activity balance (:class:`ActivityResampling`).
* ``register_cycle(ct_list, spect_list, reference_index, ...) -> list[TimepointRegistration]``.
* ``checkerboard(fixed, moving_resampled)`` and ``difference_image(fixed, moving_resampled)``.
"""

from __future__ import annotations

from startnet.registration.cycle import TimepointRegistration, register_cycle
from startnet.registration.deformable import BSplineRefinementResult, refine_bspline
from startnet.registration.resample import (
    ActivityResampling,
    checkerboard,
    difference_image,
    jacobian_determinant,
    require_same_grid,
    resample_activity,
    resample_activity_checked,
    total_activity_bq,
    voxel_volume_ml,
)
from startnet.registration.rigid import (
    RigidRegistrationResult,
    body_mask,
    register_rigid,
    rotation_angle_deg,
    transform_error,
)

__all__ = [
    "ActivityResampling",
    "BSplineRefinementResult",
    "RigidRegistrationResult",
    "TimepointRegistration",
    "body_mask",
    "checkerboard",
    "difference_image",
    "jacobian_determinant",
    "refine_bspline",
    "register_cycle",
    "register_rigid",
    "require_same_grid",
    "resample_activity",
    "resample_activity_checked",
    "rotation_angle_deg",
    "total_activity_bq",
    "transform_error",
    "voxel_volume_ml",
]
