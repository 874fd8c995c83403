"""Sum-of-exponential time-activity models used by the structure-level fit.

Every model is written as ``A(t) = sum_i a_i exp(-k_i t)`` (t in h after administration,
A in MBq), with amplitudes ``a`` and rates ``k`` that are *linear* maps of the optimiser's
parameter vector ``p``: ``a = Ma @ p`` and ``k = Mk @ p``. That keeps the Jacobian, the
time-integrated activity (TIA) ``sum a_i / k_i`` and its gradient exact and model independent.

Models (optimiser parameters; natural parameters reported to the user):

* ``mono``      ``a e^{-k t}``; p = (a, k). Instant uptake, back-extrapolated to t = 0.
* ``bi_uptake`` ``a (e^{-k1 t} - e^{-k2 t})`` with uptake rate k2 = k1 + dk > k1; A(0) = 0;
  p = (a, k1, dk).
* ``bi``        ``a1 e^{-k1 t} + a2 e^{-k2 t}`` (two clearance phases, instant uptake),
  k2 = k1 + dk; p = (a1, k1, a2, dk).
* ``tri``       ``a1 e^{-k1 t} + a2 e^{-k2 t} - (a1 + a2) e^{-k3 t}`` (two clearance phases and
  an uptake phase, A(0) = 0), k2 = k1 + dk2, k3 = k2 + dk3; p = (a1, k1, a2, dk2, dk3).

The slowest clearance rate k1 is bounded below by the caller (the physical decay constant, see
``startnet.kinetics.fit``); rate increments are non-negative and capped at ``MAX_RATE_STEP_PER_H``
so that an unidentifiable fast phase stays finite (uptake half-time >= ~4 min).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Dict, List, Optional, Tuple

import numpy as np

MAX_RATE_STEP_PER_H = 10.0
MIN_RATE_STEP_PER_H = 1e-9


@dataclass(frozen=True)
class ExpModel:
    """One sum-of-exponentials model (see module docstring)."""

    name: str
    fit_names: Tuple[str, ...]
    natural_names: Tuple[str, ...]
    amp_matrix: np.ndarray  # (terms, params): a = amp_matrix @ p
    rate_matrix: np.ndarray  # (terms, params): k = rate_matrix @ p
    natural_matrix: np.ndarray  # (natural, params): natural = natural_matrix @ p (+ natural_offset)
    description: str
    rate_offset: Optional[np.ndarray] = None  # fixed rates added: k = rate_matrix @ p + rate_offset
    natural_offset: Optional[np.ndarray] = None

    @property
    def n_params(self) -> int:
        return len(self.fit_names)

    def amplitudes(self, p: np.ndarray) -> np.ndarray:
        return self.amp_matrix @ p

    def rates(self, p: np.ndarray) -> np.ndarray:
        k = self.rate_matrix @ p
        return k if self.rate_offset is None else k + self.rate_offset

    def evaluate(self, p: np.ndarray, t_h: np.ndarray) -> np.ndarray:
        t = np.asarray(t_h, dtype=float)
        a, k = self.amplitudes(p), self.rates(p)
        return np.exp(-np.multiply.outer(t, k)) @ a

    def jacobian(self, p: np.ndarray, t_h: np.ndarray) -> np.ndarray:
        """d A(t_j) / d p, shape (len(t), n_params)."""
        t = np.asarray(t_h, dtype=float)
        a, k = self.amplitudes(p), self.rates(p)
        e = np.exp(-np.multiply.outer(t, k))  # (n, terms)
        return e @ self.amp_matrix - (e * a * t[:, None]) @ self.rate_matrix

    def tia(self, p: np.ndarray) -> float:
        a, k = self.amplitudes(p), self.rates(p)
        return float(np.sum(a / k))

    def tia_gradient(self, p: np.ndarray) -> np.ndarray:
        a, k = self.amplitudes(p), self.rates(p)
        return (1.0 / k) @ self.amp_matrix - (a / k**2) @ self.rate_matrix

    def natural(self, p: np.ndarray) -> Dict[str, float]:
        values = self.natural_matrix @ p
        if self.natural_offset is not None:
            values = values + self.natural_offset
        return dict(zip(self.natural_names, (float(v) for v in values)))

    def lower_bounds(self, min_rate_per_h: float) -> np.ndarray:
        lb = np.zeros(self.n_params)
        for i, name in enumerate(self.fit_names):
            if name == "k1":
                lb[i] = min_rate_per_h
            elif name.startswith("dk"):
                lb[i] = MIN_RATE_STEP_PER_H
        return lb

    def upper_bounds(self) -> np.ndarray:
        return np.array([MAX_RATE_STEP_PER_H if n.startswith("dk") else np.inf for n in self.fit_names])


def _m(rows: List[List[float]]) -> np.ndarray:
    return np.array(rows, dtype=float)


MODELS: Dict[str, ExpModel] = {
    "mono": ExpModel(
        "mono", ("a", "k1"), ("a_mbq", "k_per_h"),
        _m([[1, 0]]), _m([[0, 1]]), _m([[1, 0], [0, 1]]),
        "A(t) = a exp(-k t), instant uptake",
    ),
    "bi_uptake": ExpModel(
        "bi_uptake", ("a", "k1", "dk"), ("a_mbq", "k_clear_per_h", "k_uptake_per_h"),
        _m([[1, 0, 0], [-1, 0, 0]]), _m([[0, 1, 0], [0, 1, 1]]),
        _m([[1, 0, 0], [0, 1, 0], [0, 1, 1]]),
        "A(t) = a (exp(-k_clear t) - exp(-k_uptake t)), A(0) = 0",
    ),
    "bi": ExpModel(
        "bi", ("a1", "k1", "a2", "dk"), ("a_slow_mbq", "k_slow_per_h", "a_fast_mbq", "k_fast_per_h"),
        _m([[1, 0, 0, 0], [0, 0, 1, 0]]), _m([[0, 1, 0, 0], [0, 1, 0, 1]]),
        _m([[1, 0, 0, 0], [0, 1, 0, 0], [0, 0, 1, 0], [0, 1, 0, 1]]),
        "A(t) = a_slow exp(-k_slow t) + a_fast exp(-k_fast t), instant uptake",
    ),
    "tri": ExpModel(
        "tri", ("a1", "k1", "a2", "dk2", "dk3"),
        ("a_slow_mbq", "k_slow_per_h", "a_fast_mbq", "k_fast_per_h", "k_uptake_per_h"),
        _m([[1, 0, 0, 0, 0], [0, 0, 1, 0, 0], [-1, 0, -1, 0, 0]]),
        _m([[0, 1, 0, 0, 0], [0, 1, 0, 1, 0], [0, 1, 0, 1, 1]]),
        _m([[1, 0, 0, 0, 0], [0, 1, 0, 0, 0], [0, 0, 1, 0, 0], [0, 1, 0, 1, 0], [0, 1, 0, 1, 1]]),
        "A(t) = a_slow e^(-k_slow t) + a_fast e^(-k_fast t) - (a_slow + a_fast) e^(-k_uptake t), A(0) = 0",
    ),
}

EXPONENTIAL_MODELS = tuple(MODELS)

UPTAKE_PHYSICAL = "uptake_physical_clearance"


def uptake_physical_clearance(decay_constant_per_h: float) -> ExpModel:
    """``a (e^{-lambda t} - e^{-(lambda + dk) t})``: uptake, then clearance by physical decay only.

    For a curve still rising at the last scan the data cannot tell the clearance after the peak;
    this model holds it at the physical decay constant (nothing clears slower than it decays, and
    no biological clearance has been seen). p = (a, dk); A(0) = 0; k_uptake = lambda + dk.
    """
    lam = float(decay_constant_per_h)
    return ExpModel(
        UPTAKE_PHYSICAL, ("a", "dk"), ("a_mbq", "k_uptake_per_h"),
        _m([[1, 0], [-1, 0]]), _m([[0, 0], [0, 1]]), _m([[1, 0], [0, 1]]),
        "A(t) = a (exp(-lambda_phys t) - exp(-k_uptake t)), A(0) = 0, clearance by physical decay only",
        rate_offset=np.array([lam, lam]), natural_offset=np.array([0.0, lam]),
    )
