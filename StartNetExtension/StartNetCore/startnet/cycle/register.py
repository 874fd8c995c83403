"""Register step: every time point of a cycle on the reference time point's SPECT grid.

The reference is the requested time point, else the one closest to 24 h. Each time point's CT is
registered rigidly onto the reference CT (optionally refined by a B-spline) and its SPECT is
resampled activity-conserving onto the reference SPECT grid.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional, Sequence

import numpy as np
import SimpleITK as sitk

from startnet.dicomio import Cycle
from startnet.errors import InputError
from startnet.progress import Progress


@dataclass
class RegisteredCycle:
    """All time points on the reference SPECT grid."""

    cycle: Cycle
    reference_index: int
    times_h: np.ndarray
    activity_bqml: List[sitk.Image]  # per time point, on the reference grid
    ct_hu: Optional[sitk.Image]  # reference CT (its own grid)
    registrations: List[Dict[str, Any]]
    warnings: List[str] = field(default_factory=list)

    @property
    def reference_grid(self) -> sitk.Image:
        return self.activity_bqml[self.reference_index]


def choose_reference(times_h, requested: Optional[int]) -> int:
    """Index of the reference time point: the requested one, else the one closest to 24 h."""
    n = len(times_h)
    if requested is not None:
        if not 0 <= requested < n:
            raise InputError(f"--reference-timepoint {requested}: the cycle has {n} time points (0..{n - 1})")
        return int(requested)
    return int(np.argmin(np.abs(np.asarray(times_h) - 24.0)))


def registration_entry(tp_registration) -> Dict[str, Any]:
    """JSON-ready quality record of one time point's registration."""
    entry: Dict[str, Any] = {"index": tp_registration.index, "reference": tp_registration.is_reference,
                             "warnings": list(tp_registration.warnings),
                             "activity_outside_fov_fraction": round(float(
                                 tp_registration.activity.fraction_outside_fov), 5)}
    rigid = tp_registration.rigid
    if rigid is None:
        entry.update(translation_mm=[0.0, 0.0, 0.0], rotation_deg=[0.0, 0.0, 0.0])
    else:
        entry.update(translation_mm=[round(float(v), 3) for v in rigid.translation_mm],
                     rotation_deg=[round(float(v), 3) for v in rigid.rotation_deg],
                     metric_before=float(rigid.metric_before), metric_after=float(rigid.metric_after),
                     body_overlap_dice=float(rigid.body_overlap_dice), implausible=bool(rigid.implausible))
    if tp_registration.deformable is not None:
        entry["bspline_max_displacement_mm"] = float(tp_registration.deformable.max_displacement_mm)
    return entry


def register_cycle_to_reference(cycle: Cycle, reference_index: int, progress: Progress,
                                deformable: bool = False) -> RegisteredCycle:
    """Rigid CT-to-CT registration of each time point; SPECT resampled activity-conserving."""
    from startnet.registration import register_cycle, resample_activity_checked

    timepoints = cycle.timepoints
    reference = timepoints[reference_index]
    times = np.array([tp.hours_post_injection for tp in timepoints], dtype=float)
    warnings: List[str] = []
    if all(tp.ct_hu is not None for tp in timepoints):
        registered = register_cycle([tp.ct_hu for tp in timepoints], [tp.spect_bqml for tp in timepoints],
                                    reference_index, deformable=deformable,
                                    progress=lambda done, total: progress.update(done / total,
                                                                                f"registered {done}/{total}"))
        for tp_registration in registered:
            hours = timepoints[tp_registration.index].hours_post_injection
            if tp_registration.implausible:
                reason = tp_registration.rigid.implausible_reason if tp_registration.rigid else "deformable"
                warnings.append(f"time point {tp_registration.index} ({hours:.1f} h): registration implausible: "
                                f"{reason}; check it before trusting the doses")
            warnings += [f"time point {tp_registration.index}: {w}" for w in tp_registration.warnings]
        activity = [r.spect_on_reference for r in registered]
        entries = [registration_entry(r) for r in registered]
    else:
        warnings.append("a time point has no CT: SPECTs are used in scanner coordinates without registration, "
                        "which assumes the patient lay identically at every scan")
        activity, entries = [], []
        for index, tp in enumerate(timepoints):
            resampled = resample_activity_checked(tp.spect_bqml, sitk.Euler3DTransform(), reference.spect_bqml)
            activity.append(resampled.image)
            entries.append({"index": index, "reference": index == reference_index, "warnings": ["not registered"],
                            "translation_mm": [0.0, 0.0, 0.0], "rotation_deg": [0.0, 0.0, 0.0]})
    return RegisteredCycle(cycle, reference_index, times, activity, reference.ct_hu, entries, warnings)


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
