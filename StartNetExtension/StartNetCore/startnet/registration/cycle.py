"""Register every time point of a cycle onto the reference time point.

Each time point's CT is registered to the reference CT (rigid, optionally refined by a
B-spline); the same transform is applied to that time point's SPECT, because SPECT and CT of one
hybrid acquisition share a frame of reference. All SPECTs end on the reference SPECT grid with
their activity conserved (:mod:`startnet.registration.resample`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, List, Optional, Sequence

import SimpleITK as sitk

from startnet.errors import InputError
from startnet.registration.deformable import BSplineRefinementResult, refine_bspline
from startnet.registration.resample import ActivityResampling, resample_activity_checked
from startnet.registration.rigid import RigidRegistrationResult, prepare_fixed, register_rigid


@dataclass
class TimepointRegistration:
    """One time point brought onto the reference.

    ``transform`` maps reference points to this time point's points (identity for the
    reference). ``spect_on_reference`` is this time point's SPECT (Bq/mL) on the reference SPECT
    grid. ``ct_on_reference`` (only when check images were requested) is this time point's CT
    resampled onto the reference CT grid, for checkerboard/difference review.
    """

    index: int
    is_reference: bool
    transform: sitk.Transform
    spect_on_reference: sitk.Image
    activity: ActivityResampling
    rigid: Optional[RigidRegistrationResult] = None
    deformable: Optional[BSplineRefinementResult] = None
    ct_on_reference: Optional[sitk.Image] = None
    warnings: List[str] = field(default_factory=list)

    @property
    def implausible(self) -> bool:
        return bool((self.rigid is not None and self.rigid.implausible)
                    or (self.deformable is not None and self.deformable.implausible))


def register_cycle(
    ct_list: Sequence[sitk.Image],
    spect_list: Sequence[sitk.Image],
    reference_index: int,
    *,
    deformable: bool = False,
    check_images: bool = False,
    max_fraction_outside_fov: float = 0.01,
    progress: Optional[Callable[[int, int], None]] = None,
    rigid_options: Optional[dict] = None,
    bspline_options: Optional[dict] = None,
) -> List[TimepointRegistration]:
    """Bring every time point's SPECT onto the reference SPECT grid.

    ``progress(done, total)`` is called after each time point. A warning is added when more than
    ``max_fraction_outside_fov`` of a time point's activity falls outside the reference field of
    view (that activity is missing from every later integral).
    """
    if len(ct_list) != len(spect_list):
        raise InputError(f"register_cycle: {len(ct_list)} CTs but {len(spect_list)} SPECTs; "
                         "expected one CT per SPECT time point")
    if not ct_list:
        raise InputError("register_cycle: no time points given")
    if not 0 <= reference_index < len(ct_list):
        raise InputError(f"register_cycle: reference index {reference_index} outside 0..{len(ct_list) - 1}")
    reference_ct = ct_list[reference_index]
    reference_spect = spect_list[reference_index]
    results: List[TimepointRegistration] = []
    options = dict(rigid_options or {})
    if len(ct_list) > 2:  # the reference's working image and body mask once for all time points
        options["prepared_fixed"] = prepare_fixed(reference_ct, **{
            k: options[k] for k in ("working_spacing_mm", "body_threshold_hu") if k in options})
    for i, (ct, spect) in enumerate(zip(ct_list, spect_list)):
        if i == reference_index:
            transform: sitk.Transform = sitk.Euler3DTransform()
            rigid = None
            refined = None
        else:
            rigid = register_rigid(reference_ct, ct, **options)
            transform = rigid.transform
            refined = None
            if deformable:
                refined = refine_bspline(reference_ct, ct, rigid.transform, **(bspline_options or {}))
                transform = refined.transform
        activity = resample_activity_checked(spect, transform, reference_spect)
        warnings = list(rigid.warnings if rigid else []) + list(refined.warnings if refined else [])
        if activity.fraction_outside_fov > max_fraction_outside_fov:
            warnings.append(f"time point {i}: {100 * activity.fraction_outside_fov:.1f} % of the SPECT "
                            "activity maps outside the reference field of view")
        ct_on_ref = None
        if check_images:
            ct_on_ref = sitk.Resample(ct, reference_ct, transform, sitk.sitkLinear, -1000.0, sitk.sitkFloat32)
        results.append(TimepointRegistration(i, i == reference_index, transform, activity.image, activity,
                                             rigid, refined, ct_on_ref, warnings))
        if progress is not None:
            progress(i + 1, len(ct_list))
    return results
