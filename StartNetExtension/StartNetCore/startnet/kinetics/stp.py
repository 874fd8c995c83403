"""Single-time-point (STP) time-integrated activity.

* Haenscheid 2018 (JNM 59:75): ``TIA = A(t) * 2 t / ln 2``. For a mono-exponential with
  effective half-life T_eff its ratio to the truth is ``2x * 2^(-x)`` with ``x = t / T_eff``
  (exact at x = 1 and 2, maximum 2/(e ln 2) = 1.0615 at x = 1/ln 2). Equivalent to assuming
  T_eff = t, i.e. ``A(t') = 2 A(t) exp(-ln2 t'/t)``.
* Madsen 2018 (Med Phys 45:2318): ``TIA = A(t) e^{lambda t} / lambda`` with lambda = ln2 / T_eff
  from a population value; exact when lambda is right, least sensitive to lambda at t = 1/lambda.
"""

from __future__ import annotations

import math
from typing import Tuple

from startnet.errors import InputError

LN2 = math.log(2.0)


def _check(activity_mbq: float, time_h: float) -> None:
    if not (time_h > 0.0) or not math.isfinite(time_h):
        raise InputError(f"single-time-point TIA: expected a scan time > 0 h, got {time_h}")
    if not math.isfinite(activity_mbq):
        raise InputError(f"single-time-point TIA: activity is not finite ({activity_mbq})")


def haenscheid_tia(activity_mbq: float, time_h: float) -> float:
    """Haenscheid 2018 STP TIA in MBq.h."""
    _check(activity_mbq, time_h)
    return activity_mbq * 2.0 * time_h / LN2


def haenscheid_ratio(time_h: float, t_eff_h: float) -> float:
    """Haenscheid TIA / true TIA for a mono-exponential: 2x 2^-x with x = t/T_eff."""
    x = time_h / t_eff_h
    return 2.0 * x * 2.0 ** (-x)


def madsen_tia(activity_mbq: float, time_h: float, t_eff_h: float) -> float:
    """Madsen 2018 STP TIA in MBq.h with population effective half-life ``t_eff_h``."""
    _check(activity_mbq, time_h)
    if not (t_eff_h > 0.0):
        raise InputError(f"Madsen STP: expected a population T_eff > 0 h, got {t_eff_h}")
    lam = LN2 / t_eff_h
    return activity_mbq * math.exp(lam * time_h) / lam


def madsen_rel_sd_from_teff(time_h: float, t_eff_h: float, t_eff_rel_sd: float) -> float:
    """Relative SD of the Madsen TIA caused by a relative SD of T_eff (first order).

    d ln TIA / d lambda = t - 1/lambda and d lambda = -lambda dT/T, so
    u_rel = |lambda t - 1| * u_rel(T_eff): zero at t = 1/lambda.
    """
    lam = LN2 / t_eff_h
    return abs(lam * time_h - 1.0) * t_eff_rel_sd


def haenscheid_equivalent_mono(activity_mbq: float, time_h: float) -> Tuple[float, float]:
    """(a, k) of the mono-exponential Haenscheid implicitly assumes (T_eff = t)."""
    k = LN2 / time_h
    return 2.0 * activity_mbq, k
