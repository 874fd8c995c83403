"""Piecewise TAC models: trapezoid with physical-decay tail, and the hybrid uptake + mono tail.

* ``trapezoid_fit``: piecewise linear through the points; before the first point either
  A(0) = 0 (``uptake="zero"``) or A = A(t1) (``"constant"``); after the last point physical decay
  only. TIA = sum w_i A_i, its SD from the point SDs (linear).
* ``hybrid_fit``: trapezoid from A(0) = 0 through the measured points up to the observed peak,
  then a mono-exponential weighted least-squares fit to the points from the peak on (>= 2 points;
  slowest rate >= lambda_phys as in ``fit_tac``), integrated analytically from the peak time.
  This is the structure-level twin of the voxel model code 2 (``startnet.kinetics.voxel``), used
  when the data show an uptake phase that no AICc-eligible uptake model can describe (e.g. 4 time
  points). When the points from the peak on decay no faster than physical decay (the tail's
  rate would sit on lambda_phys or below it) ``hybrid_fit`` raises :class:`SlowTailError`: the
  tail is then not extrapolated from those points (``fit_tac`` uses the trapezoid, whose tail
  after the last point is physical decay). Its SD propagates every point's SD linearly through
  the trapezoid weights and the tail fit's data sensitivity (J^T W J)^-1 J^T W, so the peak point's double use is exact.
"""

from __future__ import annotations

import math
from typing import List, Optional

import numpy as np

from startnet.errors import FitError
from startnet.kinetics.models import MODELS
from startnet.kinetics.tacfit import TacFit
from startnet.kinetics.wls import fit_constrained, validate_tac, variance_scale
from startnet.physics.lu177 import LU177, Nuclide

LN2 = math.log(2.0)


class SlowTailError(FitError):
    """The hybrid's tail points decay no faster than physical decay: use the trapezoid instead."""


def trapezoid_fit(times_h, activity_mbq, sigma_mbq=None, *, nuclide: Nuclide = LU177, uptake: str = "zero",
                  structure: str = "", candidates=None, reason: str = "trapezoid requested",
                  warnings: Optional[List[str]] = None) -> TacFit:
    """Trapezoid TIA with the explicit uptake assumption and a physical-decay tail."""
    name = structure or "TAC"
    t, y, s, _ = validate_tac(times_h, activity_mbq, sigma_mbq, name)
    warnings = list(warnings or [])
    if np.any(y < 0):
        warnings.append("negative activity values clipped to 0 in the trapezoid")
    yc = np.clip(y, 0.0, None)
    lam = nuclide.decay_constant_per_h
    if t[0] > 0:
        nodes_t = np.concatenate([[0.0], t])
        nodes_a = np.concatenate([[0.0 if uptake == "zero" else yc[0]], yc])
    else:
        nodes_t, nodes_a = t.copy(), yc.copy()
    # TIA = sum w_i A_i: trapezoid weights on the measured points plus the 1/lambda tail.
    w = np.zeros(len(t))
    dt = np.diff(t)
    w[:-1] += dt / 2.0
    w[1:] += dt / 2.0
    if t[0] > 0:
        w[0] += t[0] / 2.0 if uptake == "zero" else t[0]
    w[-1] += 1.0 / lam
    tia = float(w @ yc)
    tia_sd = float(math.sqrt(np.sum((w * s) ** 2)))
    peak = float(np.max(yc))
    t_eff = tia * LN2 / peak
    uptake_text = ("A(0) = 0, linear rise to the first point" if uptake == "zero"
                   else "activity constant at A(t1) before the first point")
    return TacFit(
        structure=name, model="trapezoid", params={"tail_rate_per_h": lam}, param_names=("tail_rate_per_h",),
        covariance=np.zeros((1, 1)), tia_mbq_h=tia, tia_sd_mbq_h=tia_sd, effective_half_life_h=t_eff,
        effective_half_life_definition="TIA * ln2 / A_peak (trapezoid)", aicc=math.nan,
        candidates=list(candidates or []), selection_reason=reason, warnings=warnings,
        times_h=t, activity_mbq=y, sigma_mbq=s, uptake_assumption=uptake_text,
        physical_decay_constant_per_h=lam, trapezoid_nodes=(nodes_t, nodes_a),
        tail_exponential=(float(yc[-1] * math.exp(lam * t[-1])), lam),
    )


def hybrid_fit(times_h, activity_mbq, sigma_mbq=None, absolute_sigma: Optional[bool] = None, *,
               nuclide: Nuclide = LU177, structure: str = "", candidates=None,
               reason: str = "hybrid requested", warnings: Optional[List[str]] = None,
               release_constraint_sigmas: float = 2.0) -> TacFit:
    """Trapezoid uptake (A(0) = 0) to the observed peak + mono-exponential tail fitted from the peak.

    ``absolute_sigma``: defaults to ``sigma_mbq is not None`` (as in ``fit_tac``).
    """
    name = structure or "TAC"
    t, y, s, absolute = validate_tac(times_h, activity_mbq, sigma_mbq, name)
    if absolute_sigma is not None:
        absolute = absolute_sigma
    warnings = list(warnings or [])
    ip = int(np.argmax(y))
    if len(t) - ip < 2:
        raise FitError(f"hybrid TAC of '{name}': needs >= 2 points from the peak on (peak at the last point)")
    lam = nuclide.decay_constant_per_h
    model = MODELS["mono"]
    tt, yy, ss = t[ip:], y[ip:], s[ip:]
    res = fit_constrained(model, tt, yy, ss, lam, absolute, release_constraint_sigmas)
    if not res["ok"]:
        raise FitError(f"hybrid TAC of '{name}': tail fit failed ({res['reason']})")
    if res["constraint_note"]:
        # the points from the peak on decay no faster than physical decay: a mono-exponential held
        # at lambda_phys would not go through them, and a slower one must not be extrapolated.
        raise SlowTailError(f"hybrid TAC of '{name}': the points from the peak at {t[ip]:g} h on decay no "
                            f"faster than physical decay ({res['constraint_note']})")
    a, k = (float(v) for v in res["p"])
    if np.any(y[: ip + 1] < 0):
        warnings.append("negative activity values clipped to 0 in the uptake trapezoid")
    yc = np.clip(y[: ip + 1], 0.0, None)
    # uptake part: trapezoid weights on points 0..ip with A(0) = 0 at t = 0
    w = np.zeros(len(t))
    w[0] += t[0] / 2.0
    dt = np.diff(t[: ip + 1])
    w[:ip] += dt / 2.0
    w[1 : ip + 1] += dt / 2.0
    tp = float(t[ip])
    e = math.exp(-k * tp)
    tail = a * e / k
    tia = float(w[: ip + 1] @ yc) + tail
    # linear data sensitivity of the tail: d tail / d y_tail = g^T (J^T J)^-1 J^T / s (k fixed if constrained)
    j = model.jacobian(res["p"], tt) / ss[:, None]
    g = np.array([e / k, -a * e * (tp / k + 1.0 / k**2)])
    free = slice(0, 2)  # the tail rate is above lambda_phys here (held tails raise SlowTailError)
    jf = j[:, free]
    sens = g[free] @ np.linalg.solve(jf.T @ jf, jf.T) / ss
    grad = w.copy()
    grad[ip:] += sens
    scale, dof = variance_scale(res["wrss"], len(tt) - (free.stop - free.start), absolute)
    tia_sd = math.sqrt(float(np.sum((grad * s) ** 2)) * scale)
    nodes_t = np.concatenate([[0.0], t[: ip + 1]]) if t[0] > 0 else t[: ip + 1].copy()
    nodes_a = np.concatenate([[0.0], yc]) if t[0] > 0 else yc.copy()
    return TacFit(
        structure=name, model="hybrid", params={"a_tail_mbq": a, "k_tail_per_h": k},
        param_names=("a_tail_mbq", "k_tail_per_h"), covariance=res["cov"], tia_mbq_h=tia, tia_sd_mbq_h=tia_sd,
        effective_half_life_h=LN2 / k, effective_half_life_definition="ln2/k of the mono-exponential tail",
        aicc=math.nan, candidates=list(candidates or []), selection_reason=reason, warnings=warnings,
        times_h=t, activity_mbq=y, sigma_mbq=s,
        uptake_assumption=f"A(0) = 0, linear through the measured points to the peak at {tp:g} h",
        physical_decay_constant_per_h=lam, trapezoid_nodes=(nodes_t, nodes_a), tail_exponential=(a, k),
        tia_dof=dof, variance_scale=scale,
    )
