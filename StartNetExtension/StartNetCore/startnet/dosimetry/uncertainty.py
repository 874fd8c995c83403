"""GUM uncertainty budgets of structure TIA and mean absorbed dose (EANM, Gear 2018).

Model (first-order GUM law of propagation, independent input quantities):

    A_voi = C / (CF * RC(V)),   TIA = A-fit integral,   D_mean = TIA * E / m,   m = rho V

so, in relative terms, with sensitivity coefficients c = d ln y / d ln x:

* calibration factor CF: c = -1 for TIA and dose (scales every time point alike, hence not
  part of the fit covariance). Default relative SD 5 % (``DEFAULT_CF_REL_SD``).
* recovery coefficient curve parameters: c = -1 times the relative SD of RC(V) from the curve's
  parameter covariance (``RecoveryCurve``).
* volume V: enters through RC(V) (c = -d ln RC / d ln V) and, for the dose, through the mass
  (c = ``dose_mass_exponent``, -1 for self-dose/LED); both are combined into *one* sensitivity
  so their correlation is exact. Default u(V): the true boundary is taken as uniformly
  distributed between the mask eroded and dilated by one voxel, u(V) = (V_dil - V_ero)/(2 sqrt 3)
  (``volume_sd_from_boundary``).
* fit covariance: u(TIA)_fit from ``TacFit.tia_sd_mbq_h`` (c = 1).

Combined: u_rel(y)^2 = sum (c_i u_rel(x_i))^2. ``UncertaintyBudget`` lists each component's
absolute and relative contribution. Linearisation is accurate for relative SDs up to ~20 %;
the Monte Carlo check in the tests shows the agreement.

Budget of the method actually used (``pvc`` argument, a ``startnet.dosimetry.pvc_terms.PvcTerms``):
the recovery-curve term only for ``rc``; a one-sided bias term for the model-based methods (plain
GTM, RC, none); the volume term's sensitivity from how that method's activity follows the
boundary (0 for total-activity methods: only the mass changes; for VOI methods the counted
activity grows with the VOI and partially cancels the mass). Per-time-point activity SDs
(counts, VOI/registration, calibration reproducibility) enter through the fit ("TAC fit:
per-time-point activities"), the calibration factor's correlated part only as its own term, and
the choice of model as "model selection (Akaike weights)". The volume term keeps the documented
assumption of a systematic boundary shift of ``BOUNDARY_SD_MM`` over the whole surface
(``startnet.cycle.analyse``): a contouring bias moves the whole outline the same way; local
random contour errors average out over a surface and are neglected.

Degrees of freedom: every component is type B (infinite) except the fit when its residuals set
the scale (``TacFit.tia_dof``); the combined budget's effective degrees of freedom follow
Welch-Satterthwaite and ``coverage_factor_k95`` the Student-t quantile (GUM G.4).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import List, Optional, Sequence, Tuple

import numpy as np
from scipy import ndimage

from startnet.errors import InputError

DEFAULT_CF_REL_SD = 0.05


@dataclass
class RecoveryCurve:
    """RC(V) = rc_max / (1 + (v50_ml / V)^n) with parameter covariance (rc_max, v50_ml, n)."""

    rc_max: float = 1.0
    v50_ml: float = 5.0
    n: float = 1.0
    covariance: np.ndarray = field(default_factory=lambda: np.zeros((3, 3)))
    source: str = "user"

    def rc(self, volume_ml: float) -> float:
        if not (volume_ml > 0):
            raise InputError(f"RecoveryCurve: volume must be > 0 mL, got {volume_ml}")
        return self.rc_max / (1.0 + (self.v50_ml / volume_ml) ** self.n)

    def param_gradient(self, volume_ml: float) -> np.ndarray:
        """d RC / d (rc_max, v50_ml, n)."""
        r = (self.v50_ml / volume_ml) ** self.n
        den = 1.0 + r
        d_rcmax = 1.0 / den
        d_v50 = -self.rc_max * self.n * r / (self.v50_ml * den**2)
        d_n = -self.rc_max * r * math.log(self.v50_ml / volume_ml) / den**2
        return np.array([d_rcmax, d_v50, d_n])

    def rel_sd_params(self, volume_ml: float) -> float:
        g = self.param_gradient(volume_ml)
        return math.sqrt(max(float(g @ np.asarray(self.covariance) @ g), 0.0)) / self.rc(volume_ml)

    def dln_rc_dln_v(self, volume_ml: float) -> float:
        """Elasticity of RC with respect to volume: n r / (1 + r), r = (v50/V)^n."""
        r = (self.v50_ml / volume_ml) ** self.n
        return self.n * r / (1.0 + r)


@dataclass
class UncertaintyComponent:
    name: str
    input_rel_sd: float
    sensitivity: float  # d ln y / d ln x
    contribution_rel: float  # |c| * u_rel(x)
    contribution_abs: float  # contribution_rel * y
    dof: float = math.inf  # degrees of freedom of the input's SD (type B: infinite)


@dataclass
class UncertaintyBudget:
    quantity: str
    value: float
    unit: str
    components: List[UncertaintyComponent]
    combined_rel_sd: float
    combined_sd: float

    @property
    def effective_dof(self) -> float:
        """Welch-Satterthwaite: u^4 / sum(u_i^4 / nu_i) (infinite when every input is type B)."""
        den = sum(c.contribution_rel ** 4 / c.dof for c in self.components if math.isfinite(c.dof) and c.dof > 0)
        return self.combined_rel_sd ** 4 / den if den > 0 else math.inf

    @property
    def coverage_factor_k95(self) -> float:
        from scipy import stats

        nu = self.effective_dof
        return float(stats.t.ppf(0.975, nu)) if math.isfinite(nu) else float(stats.norm.ppf(0.975))

    def table(self) -> str:
        lines = [f"{self.quantity}: {self.value:.4g} {self.unit} +/- {self.combined_sd:.3g} "
                 f"({100 * self.combined_rel_sd:.1f} %)"]
        for c in self.components:
            lines.append(f"  {c.name}: u_rel(input) {100 * c.input_rel_sd:.2f} %, c = {c.sensitivity:+.3f}, "
                         f"contributes {c.contribution_abs:.3g} {self.unit} ({100 * c.contribution_rel:.2f} %)")
        return "\n".join(lines)


def combine(quantity: str, value: float, unit: str, inputs: Sequence[Tuple]) -> UncertaintyBudget:
    """GUM combination of independent inputs (name, relative SD, sensitivity[, degrees of freedom])."""
    comps = []
    for item in inputs:
        name, rel_sd, sens = item[:3]
        dof = float(item[3]) if len(item) > 3 else math.inf
        if not (rel_sd >= 0) or not math.isfinite(rel_sd):
            raise InputError(f"uncertainty of {quantity}: component '{name}' has invalid relative SD {rel_sd}")
        rel = abs(sens) * rel_sd
        comps.append(UncertaintyComponent(name, rel_sd, sens, rel, rel * abs(value), dof))
    total = math.sqrt(sum(c.contribution_rel**2 for c in comps))
    return UncertaintyBudget(quantity, value, unit, comps, total, total * abs(value))


@dataclass
class StructureUncertainty:
    structure: str
    tia: UncertaintyBudget
    dose: Optional[UncertaintyBudget]


def structure_uncertainty(
    structure: str,
    *,
    tia_mbq_h: float,
    tia_fit_sd_mbq_h: float,
    volume_ml: float,
    volume_sd_ml: float,
    dose_gy: Optional[float] = None,
    cf_rel_sd: float = DEFAULT_CF_REL_SD,
    recovery: Optional[RecoveryCurve] = None,
    rc_rel_sd: Optional[float] = None,
    dose_mass_exponent: float = -1.0,
    pvc=None,
    tia_fit_dof: float = math.inf,
    model_selection_rel_sd: float = 0.0,
) -> StructureUncertainty:
    """Budgets of TIA and (if ``dose_gy`` given) mean dose of one structure.

    ``pvc`` (``PvcTerms``): the budget of the PVC method actually used (module docstring). Without
    it, the recovery-coefficient budget: RC from ``recovery`` (parameter covariance + volume
    elasticity) or a fixed relative SD ``rc_rel_sd`` (default 0: no recovery uncertainty claimed).
    """
    if not (tia_mbq_h > 0) or not (volume_ml > 0) or volume_sd_ml < 0 or tia_fit_sd_mbq_h < 0:
        raise InputError(f"structure_uncertainty('{structure}'): need TIA > 0, fit SD >= 0, volume > 0 and "
                         f"volume SD >= 0; got {tia_mbq_h}, {tia_fit_sd_mbq_h}, {volume_ml}, {volume_sd_ml}")
    u_v = volume_sd_ml / volume_ml
    if pvc is not None:
        return _method_budget(structure, tia_mbq_h, tia_fit_sd_mbq_h / tia_mbq_h, u_v, dose_gy, cf_rel_sd, pvc,
                              tia_fit_dof, model_selection_rel_sd, dose_mass_exponent)
    if recovery is not None:
        u_rc = recovery.rel_sd_params(volume_ml)
        e_rc = recovery.dln_rc_dln_v(volume_ml)
        rc_name = f"recovery coefficient curve parameters ({recovery.source})"
    else:
        u_rc, e_rc, rc_name = float(rc_rel_sd or 0.0), 0.0, "recovery coefficient (fixed relative SD)"
    fit_rel = tia_fit_sd_mbq_h / tia_mbq_h
    tia_inputs = [("calibration factor", cf_rel_sd, -1.0), (rc_name, u_rc, -1.0),
                  ("volume (via recovery coefficient)", u_v, -e_rc), ("TAC fit covariance", fit_rel, 1.0)]
    tia_budget = combine("TIA", tia_mbq_h, "MBq.h", tia_inputs)
    dose_budget = None
    if dose_gy is not None:
        dose_inputs = tia_inputs[:2] + [("volume (recovery coefficient and mass)", u_v, -e_rc + dose_mass_exponent),
                                        tia_inputs[3]]
        dose_budget = combine("mean absorbed dose", dose_gy, "Gy", dose_inputs)
    return StructureUncertainty(structure, tia_budget, dose_budget)


def _method_budget(structure, tia, fit_rel, u_v, dose_gy, cf_rel_sd, pvc, fit_dof, ms_rel, mass_exponent):
    method = f"PVC {pvc.method}"
    common = [("calibration factor (correlated over time points)", cf_rel_sd, -1.0),
              ("TAC fit: per-time-point activities (counts, VOI/registration, calibration reproducibility)",
               fit_rel, 1.0, fit_dof),
              ("model selection (Akaike weights)", ms_rel, 1.0)]
    pvc_inputs = []
    if pvc.recovery_rel_sd > 0:
        pvc_inputs.append((f"recovery coefficient curve ({pvc.recovery_source})", pvc.recovery_rel_sd, -1.0))
    if pvc.bias_underestimate > 0:
        pvc_inputs.append((f"{method}: uncorrected under-estimate ({pvc.bias_note})", pvc.bias_rel_sd, 1.0))
    if getattr(pvc, "psf_rel_sd", 0.0) > 0 and getattr(pvc, "psf_elasticity", 0.0) != 0:
        pvc_inputs.append((f"PSF FWHM (activity via {pvc.method})", pvc.psf_rel_sd, pvc.psf_elasticity))
    e = pvc.activity_volume_elasticity
    tia_inputs = common + pvc_inputs + [(f"volume (boundary; activity via {pvc.method})", u_v, e)]
    tia_budget = combine("TIA", tia, "MBq.h", tia_inputs)
    dose_budget = None
    if dose_gy is not None:
        dose_inputs = common + pvc_inputs + [(f"volume (boundary; mass and activity via {pvc.method})", u_v,
                                              e + mass_exponent)]
        dose_budget = combine("mean absorbed dose", dose_gy, "Gy", dose_inputs)
    return StructureUncertainty(structure, tia_budget, dose_budget)


def volume_sd_from_boundary(mask: np.ndarray, spacing_mm: Sequence[float], boundary_voxels: int = 1
                            ) -> Tuple[float, float]:
    """(volume_ml, u(volume)_ml): boundary uniformly uncertain by +/- ``boundary_voxels`` voxels."""
    mask = np.asarray(mask, dtype=bool)
    if mask.ndim != 3 or len(spacing_mm) != 3:
        raise InputError(f"volume_sd_from_boundary: expected a 3-D mask and 3 spacings, got {mask.shape}, {spacing_mm}")
    voxel_ml = float(np.prod(spacing_mm)) / 1000.0
    n = int(np.count_nonzero(mask))
    if n == 0:
        raise InputError("volume_sd_from_boundary: mask is empty")
    structure = ndimage.generate_binary_structure(3, 1)
    dil = ndimage.binary_dilation(mask, structure, iterations=boundary_voxels)
    ero = ndimage.binary_erosion(mask, structure, iterations=boundary_voxels)
    spread = (np.count_nonzero(dil) - np.count_nonzero(ero)) * voxel_ml
    return n * voxel_ml, spread / (2.0 * math.sqrt(3.0))
