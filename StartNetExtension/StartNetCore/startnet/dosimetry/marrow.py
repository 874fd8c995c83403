"""Red-marrow absorbed dose from blood samples (EANM SOP, Hindorf et al. 2010, EJNMMI 37:1238).

Model (recorded in the results' ``marrow.assumptions``):

* Blood: the activity concentration of the samples (kBq/mL, not decay corrected) is fitted as a
  time-activity curve (``startnet.kinetics.fit_tac``: sums of exponentials, model chosen by AICc,
  instant uptake) and integrated from 0 to infinity: the blood TIAC [Ã]_blood (MBq h/mL).
* Self-dose: Ã_RM = [Ã]_blood · RMBLR · m_RM (red marrow concentration = RMBLR x blood
  concentration, densities taken as 1 g/mL), S(RM<-RM) = E_e / m_RM for the 177Lu electrons (range
  ~0.3 mm mean, absorbed in the marrow: absorbed fraction 1; the photon self-part is neglected,
  < 1 %). The red-marrow mass is the ICRP 89 reference scaled by the patient's mass
  (m_RM = m_RM,ref · m_patient / m_ref) and cancels in D_self = [Ã]_blood · RMBLR · E_e, so
  the self-dose is the patient's own.
* RMBLR (red-marrow-to-blood concentration ratio): 1.0 by default (small peptides such as
  DOTATATE/DOTATOC do not bind to marrow and cross to its extracellular fluid freely; Forrer 2009,
  Hindorf 2010); with ``"sgouros"`` 0.19/(1 - HCT) from the samples' haematocrit (Sgouros 1993, for
  antibodies). The value used is recorded.
* Cross-dose from the remainder of the body, from the images: the photons of all the activity
  imaged (time integral Ã_img of the activity in the SPECT field of view, organs included, fitted
  like the blood) taken as spread uniformly over the patient's mass:
  D_cross = Ã_img · E_gamma · phi / m_patient, with phi the absorbed fraction of 177Lu photons (113,
  208 keV) for a uniform whole-body source (``PHOTON_ABSORBED_FRACTION``, MIRD Pamphlet 5 order of
  magnitude for an adult, given a 30 % relative uncertainty; to be confirmed before clinical use).
  Photons are 19 % of 177Lu's emitted energy and the marrow lies spread through the skeleton, so the
  body-mean photon dose stands for the marrow's; activity outside the field of view is not seen.
* Uncertainty (GUM, first order, independent inputs): blood TIAC fit covariance, the sample
  activity calibration (well counter, default 5 %), RMBLR (default 20 %), the cross-dose through
  phi (30 %) and the patient mass (5 %).
"""

from __future__ import annotations

import csv
import datetime as _dt
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, List, Optional, Union

import numpy as np

from startnet.errors import InputError
from startnet.physics.lu177 import LU177, Nuclide

RM_REFERENCE_MASS_G = 1170.0  # ICRP 89 adult male red marrow
BODY_REFERENCE_MASS_KG = 73.0  # ICRP 89 adult male
PHOTON_ABSORBED_FRACTION = 0.35
PHOTON_ABSORBED_FRACTION_REL_SD = 0.30
DEFAULT_RMBLR = 1.0
RMBLR_REL_SD = 0.20
SAMPLE_CALIBRATION_REL_SD = 0.05
PATIENT_MASS_REL_SD = 0.05
REQUIRED_COLUMNS = ("datetime", "activity_concentration_kbq_ml")


@dataclass
class BloodSamples:
    path: str
    times_h: np.ndarray  # after the injection
    concentration_kbq_ml: np.ndarray
    haematocrit: Optional[np.ndarray] = None


def _parse_datetime(text: str, default_tz) -> _dt.datetime:
    value = _dt.datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    if value.tzinfo is None:
        value = value.replace(tzinfo=default_tz)
    return value


def read_blood_samples(path: Union[str, Path], injection_datetime: _dt.datetime) -> BloodSamples:
    """Samples of BLOOD.csv (``datetime, activity_concentration_kbq_ml[, haematocrit]``), times after injection.

    Times without a UTC offset are taken in the injection's time zone. Any bad row raises one
    InputError naming the file, the row number (1 = first data row) and what was expected.
    """
    path = Path(path)
    try:
        text = path.read_text()
    except OSError as exc:
        raise InputError(f"--blood-samples {path}: cannot read ({exc.strerror or exc})") from None
    rows = list(csv.DictReader(text.splitlines()))
    header = [c.strip() for c in (text.splitlines()[0].split(",") if text.strip() else [])]
    missing = [c for c in REQUIRED_COLUMNS if c not in header]
    if missing:
        raise InputError(f"--blood-samples {path}: missing column(s) {', '.join(missing)}; expected "
                         "datetime,activity_concentration_kbq_ml[,haematocrit]")
    times, values, hct = [], [], []
    for number, row in enumerate(rows, start=1):
        row = {str(k).strip(): (v or "").strip() for k, v in row.items() if k is not None}
        where = f"--blood-samples {path}: row {number}"
        try:
            when = _parse_datetime(row["datetime"], injection_datetime.tzinfo)
        except ValueError:
            raise InputError(f"{where}: datetime {row['datetime']!r} is not an ISO date-time "
                             "(e.g. 2026-03-02T13:15:00+01:00)") from None
        try:
            value = float(row["activity_concentration_kbq_ml"])
        except ValueError:
            raise InputError(f"{where}: activity_concentration_kbq_ml {row['activity_concentration_kbq_ml']!r} "
                             "is not a number") from None
        if not math.isfinite(value) or value <= 0:
            raise InputError(f"{where}: activity_concentration_kbq_ml {value:g} must be > 0 kBq/mL")
        hours = (when - injection_datetime).total_seconds() / 3600.0
        if hours <= 0:
            raise InputError(f"{where}: sample at {when.isoformat()} is not after the injection "
                             f"({injection_datetime.isoformat()})")
        if row.get("haematocrit"):
            try:
                h = float(row["haematocrit"])
            except ValueError:
                raise InputError(f"{where}: haematocrit {row['haematocrit']!r} is not a number") from None
            if not 0 < h < 1:
                raise InputError(f"{where}: haematocrit {h:g} must be a fraction between 0 and 1")
            hct.append(h)
        times.append(hours)
        values.append(value)
    if len(times) < 2:
        raise InputError(f"--blood-samples {path}: {len(times)} sample(s); at least 2 are needed to fit the blood "
                         "clearance")
    order = np.argsort(times)
    times_h = np.asarray(times)[order]
    if np.any(np.diff(times_h) <= 0):
        raise InputError(f"--blood-samples {path}: two samples have the same time")
    haematocrit = np.asarray(hct)[order] if len(hct) == len(times) else None
    return BloodSamples(str(path), times_h, np.asarray(values)[order], haematocrit)


@dataclass
class MarrowDose:
    """Red-marrow dose of one cycle (blood-based) and what it assumed."""

    self_gy: float
    cross_gy: Optional[float]
    blood_tiac_mbq_h_per_ml: float
    rmblr: float
    rmblr_source: str
    patient_mass_kg: Optional[float]
    red_marrow_mass_g: Optional[float]
    remainder_tia_mbq_h: Optional[float]
    fit_model: str
    budget: Any = field(repr=False, default=None)
    warnings: List[str] = field(default_factory=list)

    @property
    def total_gy(self) -> float:
        return self.self_gy + (self.cross_gy or 0.0)

    def to_dict(self) -> Dict[str, Any]:
        return {
            "method": "blood-based (EANM SOP, Hindorf 2010)",
            **dose_with_budget(self.self_gy, self.cross_gy, self.budget),
            "blood_tiac_mbq_h_per_ml": round(self.blood_tiac_mbq_h_per_ml, 6),
            "blood_fit_model": self.fit_model,
            "red_marrow_to_blood_ratio": self.rmblr,
            "red_marrow_to_blood_ratio_source": self.rmblr_source,
            "patient_mass_kg": self.patient_mass_kg,
            "red_marrow_mass_g": None if self.red_marrow_mass_g is None else round(self.red_marrow_mass_g, 1),
            "imaged_tia_mbq_h": None if self.remainder_tia_mbq_h is None else round(self.remainder_tia_mbq_h, 3),
            "assumptions": {
                "self_dose": "D_self = TIAC_blood x RMBLR x E_electron (red marrow concentration = RMBLR x blood "
                             "concentration, densities 1 g/mL, electron absorbed fraction 1); m_RM = ICRP 89 "
                             f"{RM_REFERENCE_MASS_G:g} g x patient mass / {BODY_REFERENCE_MASS_KG:g} kg cancels",
                "cross_dose": "photons of all the activity in the SPECT field of view, spread uniformly over "
                              f"the patient mass; photon absorbed fraction {PHOTON_ABSORBED_FRACTION} "
                              "(whole-body source, 113/208 keV); activity outside the field of view not counted",
                "blood_kinetics": "sum of exponentials fitted to the samples, instant uptake, integrated 0..inf",
            },
            "warnings": list(self.warnings),
        }


def rmblr_value(ratio: Union[float, str, None], samples: BloodSamples):
    """(RMBLR, how it was chosen): a number, the default 1.0, or 'sgouros' = 0.19/(1 - mean haematocrit)."""
    if ratio is None:
        return DEFAULT_RMBLR, "default for small peptides (DOTATATE/DOTATOC)"
    if isinstance(ratio, str) and ratio.strip().lower() == "sgouros":
        if samples.haematocrit is None:
            raise InputError(f"--marrow-blood-ratio sgouros needs a haematocrit column in {samples.path} "
                             "(a value on every row)")
        hct = float(np.mean(samples.haematocrit))
        return 0.19 / (1.0 - hct), f"Sgouros 0.19/(1 - HCT), mean haematocrit {hct:.3f}"
    value = float(ratio)
    if not value > 0:
        raise InputError(f"--marrow-blood-ratio must be > 0, got {value:g}")
    return value, "given (--marrow-blood-ratio)"


def blood_marrow_dose(samples: BloodSamples, *, ratio: Union[float, str, None] = None,
                      patient_mass_kg: Optional[float] = None, remainder_tia_mbq_h: Optional[float] = None,
                      nuclide: Nuclide = LU177) -> MarrowDose:
    """Red-marrow self-dose from the blood samples plus the cross-dose from the remainder of the body."""
    from startnet.dosimetry.uncertainty import combine
    from startnet.kinetics import fit_tac

    rmblr, source = rmblr_value(ratio, samples)
    conc_mbq_ml = samples.concentration_kbq_ml / 1000.0
    fit = fit_tac(samples.times_h, conc_mbq_ml, sigma_mbq=SAMPLE_CALIBRATION_REL_SD * conc_mbq_ml,
                  nuclide=nuclide, structure="blood")
    tiac = float(fit.tia_mbq_h)
    electron_gy_per_mbq_h_per_g = nuclide.electron_energy_j_per_mbq_h * 1000.0  # J per g -> Gy
    self_gy = tiac * rmblr * electron_gy_per_mbq_h_per_g
    warnings = list(fit.warnings)
    cross_gy = None
    marrow_mass_g = None
    if patient_mass_kg is not None:
        if not patient_mass_kg > 0:
            raise InputError(f"--patient-mass-kg must be > 0 kg, got {patient_mass_kg:g}")
        marrow_mass_g = RM_REFERENCE_MASS_G * patient_mass_kg / BODY_REFERENCE_MASS_KG
        if remainder_tia_mbq_h is not None:
            cross_gy = max(0.0, float(remainder_tia_mbq_h)) * nuclide.photon_energy_j_per_mbq_h \
                * PHOTON_ABSORBED_FRACTION / patient_mass_kg
    else:
        warnings.append("no --patient-mass-kg: the cross-dose from the remainder of the body is not included")
    total = self_gy + (cross_gy or 0.0)
    fit_rel = float(fit.tia_sd_mbq_h) / tiac if tiac > 0 else 0.0
    self_share = self_gy / total if total > 0 else 1.0
    cross_share = 1.0 - self_share
    inputs = [("blood TIAC fit", fit_rel, self_share, getattr(fit, "tia_dof", math.inf)),
              ("blood sample activity calibration", SAMPLE_CALIBRATION_REL_SD, self_share),
              ("red-marrow-to-blood ratio", RMBLR_REL_SD, self_share)]
    if cross_gy is not None:
        inputs += [("photon absorbed fraction (cross-dose)", PHOTON_ABSORBED_FRACTION_REL_SD, cross_share),
                   ("patient mass (cross-dose)", PATIENT_MASS_REL_SD, -cross_share)]
    budget = combine("red marrow dose", total, "Gy", inputs)
    return MarrowDose(self_gy, cross_gy, tiac, rmblr, source, patient_mass_kg, marrow_mass_g,
                      remainder_tia_mbq_h, fit.model, budget, warnings)


def dose_with_budget(self_gy: float, cross_gy: Optional[float], budget) -> Dict[str, Any]:
    """The results.json keys a marrow dose shares between its methods: total, self and cross dose (Gy) and
    the GUM budget of the total."""
    return {
        "dose_gy": round(self_gy + (cross_gy or 0.0), 5),
        "self_dose_gy": round(self_gy, 5),
        "cross_dose_gy": None if cross_gy is None else round(cross_gy, 5),
        "uncertainty_gy": round(budget.combined_sd, 5),
        "uncertainty_pct": round(100.0 * budget.combined_rel_sd, 2),
        "uncertainty_budget": [{"component": c.name, "input_rel_sd": round(c.input_rel_sd, 4),
                                "sensitivity": round(c.sensitivity, 4),
                                "contribution_gy": round(c.contribution_abs, 6)} for c in budget.components],
    }
