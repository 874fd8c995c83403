"""Uncertainty terms of the partial-volume correction (PVC) method each structure actually used.

Methods (``startnet.cycle.quantify`` / ``startnet.cycle.analyse``) and what they imply:

* ``enlarged VOI minus spill-in``: counts the structure's total activity whatever its inner
  distribution; used only where the regional model explains the counts around it. No
  recovery-curve term, no bias term (residual -0.3 to -0.5 % on a cortex-hot kidney at the
  assumed PSF, ``tools/derive_pvc_fallback_bias.py``).
* ``GTM`` (plain transfer matrix) and ``rc`` (recovery coefficients of spheres): both rest on a
  model (uniform uptake, the assumed PSF). Where it is wrong they read *low*, and the estimate is
  not corrected for that, so the known under-estimate is carried as a one-sided bias: the
  error is taken as uniform between 0 and -b (b = the largest under-estimate found), entered as
  its RMS b/sqrt(3) about the uncorrected value (GUM F.2.4.5-style treatment of an uncorrected
  bias). b:
    - kidneys (cortex hotter than medulla): ``KIDNEY_FALLBACK_UNDERESTIMATE`` = 17 %, the largest
      under-estimate of plain GTM (17.0 %) and RC (16.9 %) over 4.8/7 mm voxels, true PSF
      11-15 mm with 11 assumed, cortex:medulla 2-4 (phantom geometry; the script prints the table:
      GTM -3.8 to -17.0 %, RC -3.2 to -16.9 %);
    - any structure: the uniform-sphere under-estimate from a PSF wider than assumed by
      ``PSF_EXCESS_MM`` (4 mm: 13-15 mm measured on clinical 177Lu systems vs 11 assumed),
      1 - RC(V, PSF + 4 mm) / RC(V, PSF) (closed form, ``sphere_recovery_coefficient``);
      the larger of the two applies to kidneys.
  ``rc`` also carries the recovery curve's own relative SD.
* every method: the PSF FWHM's relative SD (the camera's calibration, ``startnet calibrate``, else
  ``DEFAULT_PSF_REL_SD``: uniform within +-``PSF_EXCESS_MM`` of the 11 mm default) times the
  method's measured sensitivity d ln A / d ln FWHM (the analysis re-runs it with a 10 % wider PSF).
* ``none``: the plain VOI reads low by 1 - RC(V) (sphere at the assumed PSF): carried as above.

Volume/boundary (the dose is D = TIA E / m, m = rho V; see ``startnet.dosimetry.uncertainty``):
``activity_volume_elasticity`` = d ln A / d ln V, how the *measured* activity follows a shift of
the boundary. Total-activity methods (enlarged VOI, GTM) count the structure's activity whatever
the boundary: 0 (a shift moves only the neighbour's true activity in the shell across, which is
neglected: conservative for the dose). VOI methods (``rc``, ``none``): the counts in the VOI grow
with it by the shell-to-VOI concentration ratio measured on the image, minus the RC curve's
elasticity for ``rc``. The dose's sensitivity is that elasticity - 1, so the mass and activity
changes partially cancel where they do.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Optional

from startnet.errors import InputError

KIDNEY_FALLBACK_UNDERESTIMATE = 0.17
PSF_EXCESS_MM = 4.0
# relative SD of an assumed (uncalibrated) PSF: uniform within +-PSF_EXCESS_MM of the 11 mm default
DEFAULT_PSF_REL_SD = PSF_EXCESS_MM / (math.sqrt(3.0) * 11.0)
TOTAL_ACTIVITY_METHODS = ("enlarged VOI minus spill-in", "GTM")
MODEL_BASED_METHODS = ("GTM", "rc", "none")


@dataclass
class PvcTerms:
    """What one structure's PVC method contributes to its GUM budget."""

    method: str
    reason: str
    activity_volume_elasticity: float  # d ln A / d ln V of the measured activity
    recovery_rel_sd: float = 0.0  # RC curve's own relative SD (``rc`` only)
    recovery_source: str = ""
    bias_underestimate: float = 0.0  # b: the method may read up to this fraction low
    bias_note: str = ""
    psf_rel_sd: float = 0.0  # relative SD of the PSF FWHM used (calibrated, or DEFAULT_PSF_REL_SD)
    psf_elasticity: float = 0.0  # d ln A / d ln FWHM of the method's activity (measured by re-running it)

    @property
    def bias_rel_sd(self) -> float:
        return self.bias_underestimate / math.sqrt(3.0)


def uniform_psf_underestimate(volume_ml: float, psf_fwhm_mm: float, excess_mm: float = PSF_EXCESS_MM) -> float:
    """1 - RC(V, PSF + excess) / RC(V, PSF) for a uniform sphere (the model-based methods' PSF bias)."""
    from startnet.segmentation.recovery import sphere_recovery_coefficient

    if not (volume_ml > 0 and psf_fwhm_mm > 0 and excess_mm >= 0):
        raise InputError(f"PSF bias: need volume > 0 mL, PSF > 0 mm, excess >= 0 mm; got {volume_ml}, "
                         f"{psf_fwhm_mm}, {excess_mm}")
    return 1.0 - (sphere_recovery_coefficient(volume_ml, psf_fwhm_mm + excess_mm)
                  / sphere_recovery_coefficient(volume_ml, psf_fwhm_mm))


def pvc_terms(structure: str, method: str, reason: str, *, volume_ml: float, psf_fwhm_mm: float,
              recovery=None, counted_volume_elasticity: Optional[float] = None,
              psf_excess_mm: float = PSF_EXCESS_MM, psf_rel_sd: float = 0.0, psf_elasticity: float = 0.0) -> PvcTerms:
    """Budget terms of ``method`` for one structure (see module docstring).

    ``recovery``: the RC curve used (``rc``); ``counted_volume_elasticity``: d ln(counts in the
    VOI) / d ln V measured on the image (VOI methods; 1 assumed when not given). ``psf_rel_sd`` and
    ``psf_elasticity``: the PSF FWHM's relative SD and d ln A / d ln FWHM (term "PSF FWHM").
    """
    if method in TOTAL_ACTIVITY_METHODS:
        elasticity = 0.0
    else:
        elasticity = 1.0 if counted_volume_elasticity is None else float(counted_volume_elasticity)
    terms = PvcTerms(method, reason, elasticity, psf_rel_sd=float(psf_rel_sd), psf_elasticity=float(psf_elasticity))
    if method == "rc":
        if recovery is None:
            raise InputError(f"PVC terms of '{structure}': method rc needs its recovery curve")
        terms.activity_volume_elasticity -= recovery.dln_rc_dln_v(volume_ml)
        terms.recovery_rel_sd = float(recovery.rel_sd_params(volume_ml))
        terms.recovery_source = str(getattr(recovery, "source", ""))
    if method not in MODEL_BASED_METHODS:
        return terms
    if method == "none":
        from startnet.segmentation.recovery import sphere_recovery_coefficient

        b = 1.0 - sphere_recovery_coefficient(volume_ml, psf_fwhm_mm)
        terms.bias_note = f"no PVC: a plain VOI reads up to {100 * b:.0f} % low (sphere, PSF {psf_fwhm_mm:g} mm)"
    else:
        b = uniform_psf_underestimate(volume_ml, psf_fwhm_mm, psf_excess_mm)
        terms.bias_note = (f"{method} reads up to {100 * b:.0f} % low if the PSF is {psf_excess_mm:g} mm wider "
                           f"than the assumed {psf_fwhm_mm:g} mm")
        if structure.lower().startswith("kidney") and b < KIDNEY_FALLBACK_UNDERESTIMATE:
            b = KIDNEY_FALLBACK_UNDERESTIMATE
            terms.bias_note = (f"{method} reads a cortex-hot kidney up to {100 * b:.0f} % low "
                               "(tools/derive_pvc_fallback_bias.py)")
    terms.bias_underestimate = b
    terms.bias_note += f"; one-sided 0..{100 * b:.0f} %, RMS {100 * b / math.sqrt(3):.1f} %"
    return terms
