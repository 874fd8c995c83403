"""Count losses of a paralysable camera head, as the phantom simulates them.

Each head h sees a TRUE total-spectrum event rate (every energy it processes, scatter included)
``R_h = head_total_cps_per_mbq[h] x A``, with A the activity in the patient averaged over the
acquisition, and keeps ``R_obs,h = R_h exp(-R_h tau)`` (paralysable model, REFERENCE.md section 3;
the same model ``startnet run --dead-time-s`` inverts). Every event is lost with the same
probability whatever its energy or position, so the reconstruction of a time point keeps the
fraction ``sum_h R_obs,h / sum_h R_h`` of its counts (the heads' share of the image is their share of
the true events), and its projections hold ``R_obs,h x T`` counts per head.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import List

from startnet.errors import InputError
from startnet.physics.lu177 import LU177


@dataclass(frozen=True)
class HeadCounting:
    """True and observed total-spectrum rates of each head during one acquisition."""

    true_cps: List[float]
    observed_cps: List[float]

    @property
    def kept_fraction(self) -> float:
        """Observed/true counts of the reconstruction (1 without dead time)."""
        return sum(self.observed_cps) / sum(self.true_cps)


def mean_activity_mbq(activity_at_start_mbq: float, acquisition_s: float) -> float:
    """Activity averaged over an acquisition of ``acquisition_s`` starting at ``activity_at_start_mbq``."""
    x = LU177.decay_constant_per_s * acquisition_s
    return activity_at_start_mbq * (-math.expm1(-x) / x if x > 0 else 1.0)


def head_counting(config, activity_at_start_mbq: float, where: str) -> HeadCounting:
    """Each head's true and observed rate for an acquisition starting with ``activity_at_start_mbq`` in the patient."""
    activity = mean_activity_mbq(activity_at_start_mbq, config.acquisition_time_s)
    tau = float(config.dead_time_s)
    true = [float(r) * activity for r in config.head_total_cps_per_mbq]
    for rate in true:
        if rate * tau >= 1.0:  # beyond the paralysable maximum the observed rate no longer identifies R
            raise InputError(f"PhantomConfig: {where}: true rate {rate:.4g} cps per head x dead time {tau:g} s "
                             f"= {rate * tau:.3g} >= 1; lower dead_time_s or head_total_cps_per_mbq")
    return HeadCounting(true, [r * math.exp(-r * tau) for r in true])
