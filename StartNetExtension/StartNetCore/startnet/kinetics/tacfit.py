"""Result type of a structure-level time-activity fit (:class:`TacFit`)."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Dict, List, NamedTuple, Optional, Tuple

import numpy as np

from startnet.errors import FitError


class Candidate(NamedTuple):
    """One candidate model of a fit: AICc is ``nan`` when not defined (n <= p + 1).

    ``tia_mbq_h``: the candidate's own TIA (``nan`` when not fitted), for the model-selection
    uncertainty (``startnet.kinetics.model_selection``).
    """

    model: str
    aicc: float
    ok: bool
    reason: str
    tia_mbq_h: float = math.nan


@dataclass
class TacFit:
    """A fitted time-activity curve of one structure.

    Fields:
        model: ``mono``, ``bi_uptake``, ``bi``, ``tri`` (sums of exponentials, see
            ``startnet.kinetics.models``), ``trapezoid`` (piecewise linear through the data,
            uptake assumption in ``uptake_assumption``, physical-decay tail after the last
            point), ``hybrid`` (trapezoid from A(0) = 0 up to the observed peak, then a
            mono-exponential fitted to the points from the peak on: the structure-level twin of
            the voxel model code 2), ``haenscheid`` or ``madsen`` (single time point).
            Piecewise models carry ``trapezoid_nodes`` and ``tail_exponential``.
        params: natural parameters with units in the names (amplitudes MBq, rates 1/h).
        param_names: order of ``covariance`` rows/columns (same keys as ``params``).
        covariance: parameter covariance (weighted least squares, linearised), shape (P, P).
        tia_mbq_h / tia_sd_mbq_h: time-integrated activity from t = 0 to infinity (MBq.h) and
            its standard uncertainty from the covariance through the TIA gradient (fit only;
            calibration/recovery/volume are added by ``startnet.dosimetry.uncertainty``).
        effective_half_life_h: ln2 / k of the dominant clearance phase (the positive term with
            the largest a_i/k_i) for exponential models; for ``trapezoid`` TIA.ln2 / A_peak.
            ``effective_half_life_definition`` says which.
        aicc: AICc of the selected model (``nan`` when not defined).
        candidates: every model tried, as (model, aicc, ok, reason).
        selection_reason: why this model was selected (text for the report).
        warnings: anything the physicist must know (constraint released, fallback, STP ...).
        tia_dof: degrees of freedom of ``tia_sd_mbq_h``: infinite when the a-priori point SDs
            set it (reduced chi-square <= 1, or no residual degrees of freedom), n - p when the
            residual scatter scaled it (see ``startnet.kinetics.wls.variance_scale``).
        variance_scale: the factor applied to the linearised covariance (max(1, chi2_red) with
            absolute SDs, chi2_red with relative weights).
    """

    structure: str
    model: str
    params: Dict[str, float]
    param_names: Tuple[str, ...]
    covariance: np.ndarray
    tia_mbq_h: float
    tia_sd_mbq_h: float
    effective_half_life_h: float
    effective_half_life_definition: str
    aicc: float
    candidates: List[Candidate]
    selection_reason: str
    warnings: List[str]
    times_h: np.ndarray
    activity_mbq: np.ndarray
    sigma_mbq: np.ndarray
    uptake_assumption: str = ""
    physical_decay_constant_per_h: float = 0.0
    amplitudes_mbq: Optional[np.ndarray] = None
    rates_per_h: Optional[np.ndarray] = None
    trapezoid_nodes: Optional[Tuple[np.ndarray, np.ndarray]] = field(default=None, repr=False)
    tail_exponential: Optional[Tuple[float, float]] = None  # (a, k): A(t) = a e^{-k t} after the nodes
    # single time point (Haenscheid): population T_eff used for the BED G factor instead of T_eff = t
    bed_t_eff_h: Optional[float] = None
    bed_t_eff_source: str = ""

    @property
    def bed_half_life_h(self) -> float:
        """Effective half-life that describes the dose-rate shape for BED (population T_eff for STP)."""
        return self.bed_t_eff_h if self.bed_t_eff_h else self.effective_half_life_h
    tia_dof: float = math.inf
    variance_scale: float = 1.0

    @property
    def is_exponential(self) -> bool:
        return self.amplitudes_mbq is not None

    @property
    def tia_rel_sd(self) -> float:
        return self.tia_sd_mbq_h / self.tia_mbq_h if self.tia_mbq_h > 0 else float("nan")

    @property
    def coverage_factor_k95(self) -> float:
        """Two-sided 95 % coverage factor of the fit SD: Student-t with ``tia_dof`` (1.96 when infinite)."""
        from scipy import stats

        return float(stats.t.ppf(0.975, self.tia_dof)) if math.isfinite(self.tia_dof) else float(stats.norm.ppf(0.975))

    def evaluate(self, t_h) -> np.ndarray:
        """Fitted activity (MBq) at times ``t_h`` (h after administration), for plotting."""
        t = np.asarray(t_h, dtype=float)
        if self.is_exponential:
            return np.exp(-np.multiply.outer(t, self.rates_per_h)) @ self.amplitudes_mbq
        nodes_t, nodes_a = self.trapezoid_nodes
        a_tail, k_tail = self.tail_exponential
        inside = np.interp(t, nodes_t, nodes_a)
        with np.errstate(over="ignore"):
            tail = a_tail * np.exp(-k_tail * t)
        return np.where(t <= nodes_t[-1], inside, tail)

    def dose_rate_exponentials(self) -> List[Tuple[float, float]]:
        """(a_i, k_i) pairs of ``A(t) = sum a_i exp(-k_i t)`` (MBq, 1/h) for the general G factor.

        The dose rate of a structure is proportional to its activity, so these pairs describe
        the shape of the dose rate (``startnet.dosimetry.bed.g_factor`` is scale invariant).
        A trapezoid fit is not a sum of exponentials: use
        ``startnet.dosimetry.bed.g_factor_for_fit`` (numerical) instead. A single-time-point
        Haenscheid fit with ``bed_t_eff_h`` set describes its shape by that population T_eff
        (instant uptake, same TIA) rather than by Haenscheid's implicit T_eff = t.
        """
        if not self.is_exponential:
            raise FitError(
                f"TAC fit of '{self.structure}': model '{self.model}' is not a sum of exponentials; "
                "use startnet.dosimetry.bed.g_factor_for_fit for its G factor"
            )
        if self.bed_t_eff_h:
            k = math.log(2.0) / self.bed_t_eff_h
            return [(float(self.tia_mbq_h * k), float(k))]
        return [(float(a), float(k)) for a, k in zip(self.amplitudes_mbq, self.rates_per_h)]

    def summary(self) -> str:
        return (
            f"{self.structure or 'TAC'}: {self.model}, TIA {self.tia_mbq_h:.4g} +/- "
            f"{self.tia_sd_mbq_h:.2g} MBq.h, T_eff {self.effective_half_life_h:.3g} h; "
            f"{self.selection_reason}"
        )
