"""True time-activity curves of the phantom: sums of exponentials per compartment.

Each compartment's activity (MBq, physical decay included) is
``A(t) = sum_i a_i exp(-k_i t)`` with every ``k_i >= lambda_phys`` (177Lu). Curves are built
from an uptake half-time and clearance components (fraction of the injected activity, effective
half-life): ``A(t) = IA * sum_j f_j (exp(-k_j t) - exp(-k_u t))``, so ``A(0) = 0`` for organs
with an uptake phase. Tumours are specified by a peak concentration per mL (fraction of IA per
mL) and get their total from their voxelised volume. The time-integrated activity is the closed
form ``sum_i a_i / k_i``.

Values are chosen for 177Lu-DOTATOC: kidney clearance T_eff 55 h (plus a 3 h wash-out of
unbound tracer), liver 70 h, spleen 65 h, tumours 80-110 h, kidney uptake ~1.1 % IA each, giving
a kidney absorbed dose of about 0.55-0.6 Gy/GBq.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Dict, Optional, Sequence, Tuple

import numpy as np

from startnet.errors import InputError
from startnet.physics.lu177 import LU177


@dataclass(frozen=True)
class Tac:
    """A(t) = sum a_i exp(-k_i t), t in hours, A in MBq."""

    amplitudes_mbq: Tuple[float, ...]
    rates_per_h: Tuple[float, ...]

    def __post_init__(self) -> None:
        if len(self.amplitudes_mbq) != len(self.rates_per_h):
            raise InputError("Tac: amplitudes_mbq and rates_per_h differ in length")
        lam = LU177.decay_constant_per_h
        for k in self.rates_per_h:
            if k < lam * (1.0 - 1e-12):
                raise InputError(f"Tac: rate {k} /h is below the 177Lu physical decay constant {lam} /h")

    def activity_mbq(self, hours: float | np.ndarray) -> float | np.ndarray:
        t = np.asarray(hours, dtype=np.float64)
        a = np.asarray(self.amplitudes_mbq)[:, None]
        k = np.asarray(self.rates_per_h)[:, None]
        values = (a * np.exp(-k * t.reshape(1, -1))).sum(axis=0).reshape(t.shape)
        return float(values) if values.ndim == 0 else values

    def tia_mbq_h(self) -> float:
        """Analytic time-integrated activity from 0 to infinity: sum a_i / k_i."""
        return float(sum(a / k for a, k in zip(self.amplitudes_mbq, self.rates_per_h)))

    def scaled(self, factor: float) -> Tac:
        return Tac(tuple(a * factor for a in self.amplitudes_mbq), self.rates_per_h)

    def to_dict(self) -> Dict[str, object]:
        return {
            "model": "A(t) = sum_i a_i exp(-k_i t), t in h since injection",
            "amplitudes_mbq": list(self.amplitudes_mbq),
            "rates_per_h": list(self.rates_per_h),
            "half_lives_h": [math.log(2.0) / k for k in self.rates_per_h],
        }


def combine(tacs: Sequence[Tac]) -> Tac:
    """Sum of curves (terms with equal rates merged)."""
    merged: Dict[float, float] = {}
    for tac in tacs:
        for a, k in zip(tac.amplitudes_mbq, tac.rates_per_h):
            merged[k] = merged.get(k, 0.0) + a
    rates = sorted(merged)
    return Tac(tuple(merged[k] for k in rates), tuple(rates))


def rate_from_effective_half_life(t_eff_h: float) -> float:
    return math.log(2.0) / t_eff_h


@dataclass(frozen=True)
class KineticSpec:
    """Uptake + clearance description of one compartment (fractions of injected activity).

    ``clearance``: (fraction of IA, effective half-life h) pairs; if ``per_ml`` the fractions
    are per mL of the compartment. ``uptake_half_time_h`` None means instantaneous uptake. A
    negative fraction is a slower uptake phase (continued uptake): the uptake term then carries
    the rest, so that A(0) = 0 still holds.
    """

    clearance: Tuple[Tuple[float, float], ...]
    uptake_half_time_h: Optional[float] = None
    per_ml: bool = False

    def tac(self, injected_activity_mbq: float, volume_ml: float) -> Tac:
        scale = injected_activity_mbq * (volume_ml if self.per_ml else 1.0)
        amplitudes = [scale * f for f, _ in self.clearance]
        rates = [rate_from_effective_half_life(t) for _, t in self.clearance]
        if self.uptake_half_time_h is not None:
            amplitudes.append(-sum(amplitudes))
            rates.append(rate_from_effective_half_life(self.uptake_half_time_h))
        return Tac(tuple(amplitudes), tuple(rates))


# Kidney cortex concentration relative to the medulla (same time course).
KIDNEY_CORTEX_TO_MEDULLA = 2.0

_KIDNEY = {"kidney_left": (0.0110, 0.0060), "kidney_right": (0.0104, 0.0057)}

KINETICS: Dict[str, KineticSpec] = {
    # blood / extracellular remainder: fast renal excretion plus a slow retained component
    "body": KineticSpec(((0.80, 1.8), (0.07, 45.0))),
    "lung_left": KineticSpec(((0.0020, 30.0),), 0.3),
    "lung_right": KineticSpec(((0.0022, 30.0),), 0.3),
    # marrow: cancellous compartments only; their curves follow the blood (phantom.vertebrae.marrow_tacs)
    "spine": KineticSpec(((0.0060, 50.0),), 2.0),
    "liver": KineticSpec(((0.0220, 70.0),), 1.0),
    "spleen": KineticSpec(((0.0100, 65.0),), 1.0),
    "bladder": KineticSpec(((0.1200, 5.0),), 2.0),  # urine, voided every few hours
    "tumour_1": KineticSpec(((1.6e-4, 100.0),), 2.0, per_ml=True),
    "tumour_2": KineticSpec(((2.2e-4, 110.0),), 2.0, per_ml=True),
    "tumour_3": KineticSpec(((1.2e-4, 90.0),), 2.0, per_ml=True),
    "tumour_4": KineticSpec(((0.8e-4, 80.0),), 2.0, per_ml=True),
    "tumour_5": KineticSpec(((1.4e-4, 95.0),), 2.0, per_ml=True),  # from cycle 2 (anatomy.LESION_EVOLUTION)
}
for _name, (_slow, _fast) in _KIDNEY.items():
    KINETICS[_name] = KineticSpec(((_slow, 55.0), (_fast, 3.0)), 0.5)

T_PHYS_H = math.log(2.0) / LU177.decay_constant_per_h

# Tumour kinetics variants (``PhantomConfig.tumour_kinetics``). "late_uptake": tumour_1 keeps
# taking up activity for days (uptake half-time 90 h, no biological clearance: the curve still
# rises at 168 h, peak at ~170 h); tumour_3 plateaus (fast uptake, a slower second uptake phase
# with half-time 90 h, clearance T_eff = T_phys / 1.3: within +/- 6 % from 24 h to 168 h).
TUMOUR_KINETICS_VARIANTS: Dict[str, Dict[str, KineticSpec]] = {
    "default": {},
    "late_uptake": {
        "tumour_1": KineticSpec(((6.0e-4, T_PHYS_H),), 90.0, per_ml=True),
        "tumour_3": KineticSpec(((8.0e-4, T_PHYS_H / 1.3), (-0.85 * 8.0e-4, 90.0)), 2.0, per_ml=True),
    },
}


def kinetics_for(tumour_kinetics: str = "default") -> Dict[str, KineticSpec]:
    """The compartments' kinetics with the tumour variant ``tumour_kinetics`` applied."""
    if tumour_kinetics not in TUMOUR_KINETICS_VARIANTS:
        raise InputError(f"tumour_kinetics {tumour_kinetics!r}: expected one of {sorted(TUMOUR_KINETICS_VARIANTS)}")
    return {**KINETICS, **TUMOUR_KINETICS_VARIANTS[tumour_kinetics]}


# Compartments that carry their structure's activity (others of the structure get none).
ACTIVE_COMPARTMENTS = {"spine": ("spine_cancellous",)}
