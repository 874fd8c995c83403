"""Register step with transforms given: the time points on the reference grid without registering again.

For transforms a user corrected by hand in the scene (Transforms module). Registration itself is
:func:`startnet.cycle.run.register_cycle_to_reference` (rigid CT-to-CT, optional B-spline).
"""

from __future__ import annotations

from typing import Any, Dict, List, Optional, Sequence

import numpy as np
import SimpleITK as sitk

from startnet.cycle.run import RegisteredCycle
from startnet.dicomio import Cycle
from startnet.errors import InputError

SUPPLIED = "supplied"


def _rigid_parameters(transform: sitk.Transform, centre_mm) -> Optional[Dict[str, List[float]]]:
    """Displacement of ``centre_mm`` and Euler angles of a rigid transform (None when not rigid)."""
    if type(transform) is sitk.Transform and hasattr(transform, "Downcast"):
        transform = transform.Downcast()  # e.g. read from a file or converted from a scene node
    if not hasattr(transform, "GetMatrix"):
        return None
    matrix = np.asarray(transform.GetMatrix(), dtype=float).reshape(3, 3)
    if not np.allclose(matrix @ matrix.T, np.eye(3), atol=1e-6) or np.linalg.det(matrix) <= 0:
        return None
    euler = sitk.Euler3DTransform()
    euler.SetCenter(tuple(float(c) for c in centre_mm))
    euler.SetMatrix(tuple(float(v) for v in matrix.ravel()), 1e-5)
    moved = np.asarray(transform.TransformPoint(tuple(float(c) for c in centre_mm))) - np.asarray(centre_mm)
    euler.SetTranslation(tuple(float(v) for v in moved))
    params = euler.GetParameters()
    return {"translation_mm": [round(float(v), 3) for v in params[3:]],
            "rotation_deg": [round(float(np.degrees(a)), 3) for a in params[:3]]}


def registered_from_transforms(cycle: Cycle, reference_index: int,
                               transforms: Sequence[Optional[sitk.Transform]],
                               max_fraction_outside_fov: float = 0.01) -> RegisteredCycle:
    """All time points on the reference SPECT grid with transforms given, not registered again.

    ``transforms[i]`` maps reference points to time point ``i``'s points (LPS mm; the CT-to-CT
    transform reference -> time point, as :func:`startnet.registration.register_rigid` returns it
    and as a corrected transform node in the scene holds it); ``None`` means identity (the
    reference, or a time point in the reference's scanner coordinates). Each SPECT is resampled
    activity-conserving (:func:`startnet.registration.resample_activity_checked`); the quality
    entries say ``"transform": "supplied"``.
    """
    from startnet.registration import resample_activity_checked

    timepoints = cycle.timepoints
    if len(transforms) != len(timepoints):
        raise InputError(f"{len(transforms)} transforms given for {len(timepoints)} time points; "
                         "expected one per time point (None for identity)")
    if not 0 <= reference_index < len(timepoints):
        raise InputError(f"reference time point {reference_index}: the cycle has {len(timepoints)} time points "
                         f"(0..{len(timepoints) - 1})")
    reference = timepoints[reference_index]
    grid = reference.spect_bqml
    centre = grid.TransformContinuousIndexToPhysicalPoint([(s - 1) / 2.0 for s in grid.GetSize()])
    times = np.array([tp.hours_post_injection for tp in timepoints], dtype=float)
    activity, entries, warnings = [], [], []
    for index, (tp, transform) in enumerate(zip(timepoints, transforms)):
        if transform is None:
            transform = sitk.Euler3DTransform()
        if not isinstance(transform, sitk.Transform):
            raise InputError(f"time point {index}: transform is a {type(transform).__name__}; "
                             "expected a SimpleITK transform (reference -> time point) or None")
        resampled = resample_activity_checked(tp.spect_bqml, transform, grid)
        entry_warnings = [f"transform {SUPPLIED} (not registered again)"]
        if resampled.fraction_outside_fov > max_fraction_outside_fov:
            message = (f"{100 * resampled.fraction_outside_fov:.1f} % of the SPECT activity maps outside the "
                       "reference field of view")
            entry_warnings.append(message)
            warnings.append(f"time point {index}: {message}")
        entry: Dict[str, Any] = {"index": index, "reference": index == reference_index, "transform": SUPPLIED,
                                 "transform_type": transform.GetName(), "warnings": entry_warnings,
                                 "activity_outside_fov_fraction": round(float(resampled.fraction_outside_fov), 5),
                                 "translation_mm": None, "rotation_deg": None}
        entry.update(_rigid_parameters(transform, centre) or {})
        activity.append(resampled.image)
        entries.append(entry)
    return RegisteredCycle(cycle, reference_index, times, activity, reference.ct_hu, entries, warnings)
