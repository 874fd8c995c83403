"""Absolute standard uncertainty of a structure's activity at each time point (EANM, Gear 2018).

The TAC fit needs what each point's activity may be off by *independently of the other points*;
what shifts every point alike (the calibration factor's absolute accuracy) cannot be seen by a fit
and is a separate, fully correlated term of the GUM budget (``startnet.dosimetry.uncertainty``):
putting it here as well would count it twice. Per point, in quadrature:

* counts (Poisson): u_rel = 1 / sqrt(N), N = A x counts per MBq of that acquisition
  (CF x duration / (decay-during-acquisition x dead-time factors), from the units conversion of the
  time point). Images already in Bq/mL carry no CF: the lowest published 177Lu CF
  (3.3 cps/MBq, REFERENCE.md section 4) and the recorded duration (else 1200 s) stand in, and
  that is recorded. This is a lower bound for reconstructed images (OSEM amplifies noise), which
  the max(1, chi2_red) rule of the fit then widens when the data scatter more.
* calibration, uncorrelated part: the session-to-session reproducibility of the camera
  sensitivity (daily constancy), ``calibration_reproducibility_rel_sd`` (default 2 %, an
  assumption: replace it by the site's constancy record).
* VOI / registration: the same structure VOI is applied to every registered time point; its
  residual misregistration and the SPECT noise at the VOI edge change each point's count on its
  own: ``voi_registration_rel_sd`` (default 2 %, an assumption; the boundary's systematic part
  is the volume term of the budget, not this one).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Dict, Optional, Sequence

import numpy as np

from startnet.errors import InputError

LOWEST_PUBLISHED_CF_CPS_PER_MBQ = 3.3
DEFAULT_ACQUISITION_S = 1200.0


@dataclass(frozen=True)
class PointSdModel:
    """Relative SDs of the per-time-point, uncorrelated components (see module docstring)."""

    calibration_reproducibility_rel_sd: float = 0.02
    voi_registration_rel_sd: float = 0.02

    def describe(self) -> str:
        return (f"per time point: counts (Poisson), calibration reproducibility "
                f"{100 * self.calibration_reproducibility_rel_sd:g} %, VOI/registration "
                f"{100 * self.voi_registration_rel_sd:g} % (uncorrelated; the calibration factor's "
                "correlated part is a separate budget term)")


def counts_per_mbq(conversion: Optional[Dict[str, Any]]) -> float:
    """Detected counts per MBq of activity at the acquisition start, from a time point's units conversion."""
    conv = conversion or {}
    cf = conv.get("calibration_cps_per_mbq") or LOWEST_PUBLISHED_CF_CPS_PER_MBQ
    duration = conv.get("frame_duration_s") or DEFAULT_ACQUISITION_S
    factors = float(conv.get("decay_factor") or 1.0) * float(conv.get("dead_time_factor") or 1.0)
    return float(cf) * float(duration) / factors


def activity_sd_mbq(activity_mbq, counts_per_mbq_values: Sequence[float],
                    model: PointSdModel = PointSdModel(), structure: str = "") -> np.ndarray:
    """Absolute SD (MBq) of each time point's activity: uncorrelated components in quadrature."""
    a = np.asarray(activity_mbq, dtype=float)
    k = np.broadcast_to(np.asarray(counts_per_mbq_values, dtype=float), a.shape)
    if not (np.all(np.isfinite(k)) and np.all(k > 0)):
        raise InputError(f"activity SD of '{structure}': counts per MBq must be finite and > 0, got {k.tolist()}")
    for name in ("calibration_reproducibility_rel_sd", "voi_registration_rel_sd"):
        value = getattr(model, name)
        if not (0.0 <= value < 1.0) or not math.isfinite(value):
            raise InputError(f"PointSdModel.{name} must be a relative SD in [0, 1), got {value}")
    magnitude = np.maximum(np.abs(a), 1e-3 * max(float(np.max(np.abs(a))), 1e-12))
    counts = magnitude * k
    rel2 = 1.0 / counts + model.calibration_reproducibility_rel_sd ** 2 + model.voi_registration_rel_sd ** 2
    return magnitude * np.sqrt(rel2)
