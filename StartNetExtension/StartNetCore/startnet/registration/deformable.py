"""Optional B-spline refinement of a rigid CT-to-CT registration.

Regularisation that keeps kidneys plausible, without a bending-energy term (SimpleITK's
registration framework has none):

* a coarse control-point mesh (``mesh_size_mm``, default 60 mm, i.e. about half a kidney
  length): the deformation cannot fold or crush an organ between neighbouring control points;
* a displacement limit: a result whose deformation beyond the rigid result exceeds
  ``max_displacement_mm`` anywhere in the checked region is flagged (bounding the L-BFGS-B
  coefficients instead was tried and stalled the optimiser on realistic deformations);
* a check afterwards: the Jacobian determinant of the whole mapping inside the body (or inside
  ``check_mask`` e.g. the kidneys) must stay within ``jacobian_limits`` (default 0.7-1.3, i.e.
  no region gains or loses more than 30 % of its volume) and the maximum displacement beyond
  the rigid result is reported. Outside the limits the result is flagged ``implausible``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import List, Optional, Sequence, Tuple

import numpy as np
import SimpleITK as sitk

from startnet.errors import GeometryError
from startnet.registration.resample import jacobian_determinant
from startnet.registration.rigid import _check_image, body_mask, working_image


@dataclass
class BSplineRefinementResult:
    """Outcome of :func:`refine_bspline`. ``transform`` maps fixed->moving (rigid then B-spline)."""

    transform: sitk.CompositeTransform
    mesh_size_mm: float
    metric_before: float
    metric_after: float
    max_displacement_mm: float
    jacobian_min: float
    jacobian_max: float
    warnings: List[str] = field(default_factory=list)
    implausible: bool = False
    implausible_reason: str = ""


def refine_bspline(
    fixed_ct: sitk.Image,
    moving_ct: sitk.Image,
    initial_transform: sitk.Transform,
    *,
    mesh_size_mm: float = 60.0,
    max_displacement_mm: float = 15.0,
    iterations: int = 50,
    working_spacing_mm: float = 4.0,
    body_threshold_hu: float = -500.0,
    sampling_percentage: float = 0.05,
    max_samples: int = 20000,
    sampling_seed: int = 20240601,
    check_mask: Optional[sitk.Image] = None,
    jacobian_limits: Tuple[float, float] = (0.7, 1.3),
    shrink_factors: Sequence[int] = (1,),
    smoothing_sigmas: Sequence[float] = (0.0,),
) -> BSplineRefinementResult:
    """Refine ``initial_transform`` (fixed->moving, e.g. the rigid result) with a B-spline.

    ``check_mask`` (on the fixed CT grid, non-zero inside) restricts the Jacobian check to e.g.
    the kidneys; by default the fixed body mask is used.
    """
    _check_image(fixed_ct, "fixed CT")
    _check_image(moving_ct, "moving CT")
    if mesh_size_mm <= 0 or max_displacement_mm <= 0:
        raise GeometryError("B-spline refinement: mesh_size_mm and max_displacement_mm must be positive")
    fixed = working_image(fixed_ct, working_spacing_mm)
    moving = working_image(moving_ct, working_spacing_mm)
    fixed_body = body_mask(fixed, body_threshold_hu)
    extent = [sz * sp for sz, sp in zip(fixed.GetSize(), fixed.GetSpacing())]
    mesh = [max(1, int(round(e / mesh_size_mm))) for e in extent]
    bspline = sitk.BSplineTransformInitializer(fixed, mesh, order=3)

    reg = sitk.ImageRegistrationMethod()
    reg.SetMetricAsMattesMutualInformation(numberOfHistogramBins=50)
    reg.SetMetricSamplingStrategy(reg.RANDOM)
    mask_voxels = float(np.count_nonzero(sitk.GetArrayFromImage(fixed_body)))
    reg.SetMetricSamplingPercentagePerLevel(
        [min(sampling_percentage, max_samples * f ** 3 / max(mask_voxels, 1.0), 1.0) for f in shrink_factors],
        sampling_seed)
    reg.SetMetricFixedMask(fixed_body)
    reg.SetInterpolator(sitk.sitkLinear)
    reg.SetMetricUseFixedImageGradientFilter(False)
    reg.SetMetricUseMovingImageGradientFilter(False)
    n = len(bspline.GetParameters())
    # ``iterations`` caps the metric evaluations (each costs samples x parameters): the metric
    # is flat long before L-BFGS-B's own tolerances stop it.
    reg.SetOptimizerAsLBFGSB(gradientConvergenceTolerance=1e-5, numberOfIterations=iterations,
                             maximumNumberOfCorrections=5, maximumNumberOfFunctionEvaluations=iterations,
                             costFunctionConvergenceFactor=1e9)
    reg.SetShrinkFactorsPerLevel(list(shrink_factors))
    reg.SetSmoothingSigmasPerLevel(list(smoothing_sigmas))
    reg.SmoothingSigmasAreSpecifiedInPhysicalUnitsOff()
    reg.SetMovingInitialTransform(initial_transform)
    reg.SetInitialTransform(bspline, inPlace=True)
    metric_before = float(reg.MetricEvaluate(fixed, moving))
    reg.Execute(fixed, moving)
    metric_after = float(reg.MetricEvaluate(fixed, moving))
    if len(bspline.GetParameters()) != n:
        raise GeometryError("B-spline refinement changed its parameter count; internal inconsistency")

    composite = sitk.CompositeTransform([initial_transform, bspline])
    check = fixed_body if check_mask is None else sitk.Resample(check_mask, fixed, sitk.Transform(),
                                                                 sitk.sitkNearestNeighbor, 0)
    inside = sitk.GetArrayFromImage(check) > 0
    jac = sitk.GetArrayFromImage(jacobian_determinant(composite, fixed))
    field = sitk.GetArrayFromImage(sitk.TransformToDisplacementField(
        bspline, sitk.sitkVectorFloat64, fixed.GetSize(), fixed.GetOrigin(), fixed.GetSpacing(),
        fixed.GetDirection()))
    magnitude = np.sqrt((field ** 2).sum(axis=-1))
    values = jac[inside] if inside.any() else jac.ravel()
    jac_min, jac_max = float(values.min()), float(values.max())
    max_disp = float(magnitude[inside].max()) if inside.any() else float(magnitude.max())

    reasons: List[str] = []
    warnings: List[str] = []
    if jac_min <= 0.0:
        reasons.append(f"the deformation folds (Jacobian minimum {jac_min:.2f})")
    elif jac_min < jacobian_limits[0] or jac_max > jacobian_limits[1]:
        reasons.append(f"local volume change outside {jacobian_limits[0]:g}-{jacobian_limits[1]:g} "
                       f"(Jacobian {jac_min:.2f}-{jac_max:.2f})")
    if max_disp > max_displacement_mm:
        reasons.append(f"deformation of {max_disp:.1f} mm beyond the rigid result exceeds {max_displacement_mm:g} mm")
    if metric_after > metric_before:
        warnings.append(f"mutual information got worse ({metric_before:.4f} -> {metric_after:.4f})")
    warnings.extend(f"implausible deformable registration: {r}" for r in reasons)
    return BSplineRefinementResult(
        transform=composite, mesh_size_mm=float(mesh_size_mm), metric_before=metric_before,
        metric_after=metric_after, max_displacement_mm=max_disp, jacobian_min=jac_min,
        jacobian_max=jac_max, warnings=warnings, implausible=bool(reasons),
        implausible_reason="; ".join(reasons))
