"""Blood samples of the phantom patient, consistent with its kinetics, and the marrow dose they imply.

The phantom's ``body`` compartment is the blood/extracellular remainder, uniform over the body
volume, so the blood concentration is that compartment's activity over its volume (physical decay
included, as a well counter measures it). The truth red-marrow dose (blood-based model, red-marrow-
to-blood ratio 1) is its time-integrated concentration times the 177Lu electron energy (self-dose)
plus the phantom's own photon dose in the body compartment (cross-dose, from its photon transport).
"""

from __future__ import annotations

import datetime as _dt
from pathlib import Path
from typing import Dict, Sequence

from startnet.phantom.tacs import KINETICS
from startnet.physics.lu177 import LU177

SAMPLE_HOURS = (0.5, 1.0, 2.0, 4.0, 8.0, 24.0, 48.0, 96.0, 168.0)


def blood_concentration_kbq_ml(phantom, hours: float) -> float:
    body = phantom.truth["structures"]["body"]
    tac = KINETICS["body"].tac(phantom.truth["injected_activity_mbq"], body["volume_ml"])
    return float(tac.activity_mbq(hours)) / body["volume_ml"] * 1000.0


def write_blood_samples(phantom, path: Path, hours: Sequence[float] = SAMPLE_HOURS, haematocrit: float = 0.40) -> Path:
    """BLOOD.csv: datetime (UTC offset), activity_concentration_kbq_ml, haematocrit."""
    lines = ["datetime,activity_concentration_kbq_ml,haematocrit"]
    for h in hours:
        when = phantom.injection_datetime + _dt.timedelta(hours=float(h))
        lines.append(f"{when.isoformat()},{blood_concentration_kbq_ml(phantom, h):.6g},{haematocrit}")
    path = Path(path)
    path.write_text("\n".join(lines) + "\n")
    return path


def marrow_truth(phantom) -> Dict[str, float]:
    """Truth red-marrow dose (Gy) of the blood-based model with ratio 1, and the phantom's mass (kg)."""
    body = phantom.truth["structures"]["body"]
    tac = KINETICS["body"].tac(phantom.truth["injected_activity_mbq"], body["volume_ml"])
    tiac_mbq_h_per_ml = tac.tia_mbq_h() / body["volume_ml"]
    self_gy = tiac_mbq_h_per_ml * LU177.electron_energy_j_per_mbq_h * 1000.0
    cross_gy = float(body["photon_gy"])
    mass_kg = sum(s["mass_g"] for s in phantom.truth["structures"].values()) / 1000.0
    return {"self_gy": self_gy, "cross_gy": cross_gy, "dose_gy": self_gy + cross_gy, "patient_mass_kg": mass_kg}
