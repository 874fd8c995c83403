"""Red-marrow absorbed dose from the images: activity in a lumbar-vertebra (L2-L4) VOI.

Model (recorded in the results' ``marrow.image_based.assumptions``):

* VOI: the vertebral bodies L2, L3, L4 (``vertebra_L2..L4``, segmented from the CT or given; a
  single given ``marrow`` VOI is accepted too). Their activity per time point comes from the plain
  geometric transfer matrix over all the run's structures (``startnet.cycle.marrow_voi``), fitted
  like any structure's and integrated: Ã_VOI.
* All the VOI's activity is taken to be in its red marrow (bone matrix and yellow marrow take up
  none), so the red-marrow self-dose is D_self = Ã_VOI x E_electron / m_RM,VOI (177Lu electrons absorbed
  in the marrow, absorbed fraction 1; the photons are in the cross-dose).
* Red-marrow mass in the VOI, two models (``MarrowMassModel.model``):
  - ``"voi"`` (default): m_RM,VOI = V_VOI x rho_RM x f_marrow_space x cellularity, with rho_RM = 1.03 g/mL
    (ICRP 89 red marrow), f_marrow_space = 0.85 (marrow share of a lumbar vertebral body: trabecular
    bone volume fraction about 0.1-0.15 in adults plus a thin cortex) and cellularity = 0.70 (red
    share of the marrow in adult lumbar vertebrae, ICRP 70 / Cristy 1981 at about 40 years);
  - ``"reference"``: m_RM,VOI = s_L2-L4 x m_RM,ref x m_patient / m_ref, with s_L2-L4 = 3/5 of the lumbar
    vertebrae's share of the adult active marrow (12.3 %, ICRP 70 / Cristy 1981) = 7.38 %, m_RM,ref =
    1170 g and m_ref = 73 kg (ICRP 89 adult male); needs the three vertebrae and the patient's mass.
  NONE of these values has been checked against the publications here (REFERENCE.md section 7):
  they are marked unverified in the results and every one is a parameter; the mass model carries a
  30 % relative standard uncertainty (cellularity varies with age and sex, e.g. MRI fat fractions
  of lumbar vertebrae, Heidemeier et al.).
* Cross-dose from the rest of the body: as the blood-based method (``startnet.dosimetry.marrow``):
  photons of all the activity imaged, spread over the patient's mass (needs ``--patient-mass-kg``).
* Uncertainty (GUM, first order, independent inputs): the VOIs' TIA uncertainties from the cycle
  analysis (calibration, fit, partial volume, volume), the mass model, and for the cross-dose the
  photon absorbed fraction and the patient mass.
* Known limitation: the images start hours after the injection, so the fast blood phase before
  the first scan is only extrapolated by the fitted curve; the blood-based method sees it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any, Dict, List, Mapping, Optional, Tuple

from startnet.dosimetry.marrow import (
    BODY_REFERENCE_MASS_KG,
    PATIENT_MASS_REL_SD,
    PHOTON_ABSORBED_FRACTION,
    PHOTON_ABSORBED_FRACTION_REL_SD,
    RM_REFERENCE_MASS_G,
    dose_with_budget,
)
from startnet.errors import InputError
from startnet.physics.lu177 import LU177, Nuclide

LEVELS = ("L2", "L3", "L4")
MASS_MODELS = ("voi", "reference")
LUMBAR_SHARE_OF_RED_MARROW = 0.123  # ICRP 70 / Cristy 1981, adult (unverified)
MASS_MODEL_REL_SD = 0.30
_VERTEBRA = re.compile(r"^(?:vertebra|vertebrae|vert)?[\s_\-]*l([2-4])(?:[\s_\-]*(?:vertebra|vertebrae|body))?$")
_MARROW = ("marrow", "red_marrow", "bone_marrow", "red marrow", "bone marrow")


@dataclass(frozen=True)
class MarrowMassModel:
    """How much red marrow a VOI holds (module docstring); every value is an unverified parameter."""

    model: str = "voi"
    red_marrow_density_g_per_ml: float = 1.03  # ICRP 89 (unverified)
    marrow_space_fraction: float = 0.85  # assumption, trabecular BV/TV 0.10-0.15 (unverified)
    cellularity: float = 0.70  # ICRP 70 / Cristy 1981, lumbar vertebrae, age ~40 (unverified)
    l2_l4_share: float = LUMBAR_SHARE_OF_RED_MARROW * 3.0 / 5.0
    rel_sd: float = MASS_MODEL_REL_SD
    red_marrow_g_per_ml_override: Optional[float] = None  # --red-marrow-g-per-ml

    def __post_init__(self) -> None:
        if self.model not in MASS_MODELS:
            raise InputError(f"--marrow-mass-model {self.model!r}: expected one of {', '.join(MASS_MODELS)}")
        if self.red_marrow_g_per_ml_override is not None and not 0 < self.red_marrow_g_per_ml_override <= 1.1:
            raise InputError("--red-marrow-g-per-ml must be in (0, 1.1] g/mL, "
                             f"got {self.red_marrow_g_per_ml_override:g}")

    @property
    def red_marrow_g_per_ml(self) -> float:
        """Red-marrow mass per mL of vertebral body (``voi`` model)."""
        if self.red_marrow_g_per_ml_override is not None:
            return float(self.red_marrow_g_per_ml_override)
        return self.red_marrow_density_g_per_ml * self.marrow_space_fraction * self.cellularity

    def describe(self) -> Dict[str, Any]:
        if self.model == "reference":
            return {"model": "reference", "l2_l4_share_of_red_marrow": round(self.l2_l4_share, 5),
                    "red_marrow_reference_mass_g": RM_REFERENCE_MASS_G,
                    "body_reference_mass_kg": BODY_REFERENCE_MASS_KG,
                    "sources": "ICRP 70 / Cristy 1981 (lumbar vertebrae 12.3 % of adult active marrow, L2-L4 = 3/5 "
                               "of it), ICRP 89 (1170 g red marrow, 73 kg adult male)",
                    "verified": False, "relative_sd": self.rel_sd}
        if self.red_marrow_g_per_ml_override is not None:
            return {"model": "voi", "red_marrow_g_per_ml": self.red_marrow_g_per_ml,
                    "sources": "given (--red-marrow-g-per-ml)", "verified": False, "relative_sd": self.rel_sd}
        return {"model": "voi", "red_marrow_g_per_ml": round(self.red_marrow_g_per_ml, 4),
                "red_marrow_density_g_per_ml": self.red_marrow_density_g_per_ml,
                "marrow_space_fraction": self.marrow_space_fraction, "cellularity": self.cellularity,
                "sources": "ICRP 89 (red marrow density), ICRP 70 / Cristy 1981 (lumbar cellularity ~0.7 at 40 y), "
                           "marrow space 0.85 assumed (trabecular bone volume fraction 0.10-0.15)",
                "verified": False, "relative_sd": self.rel_sd}


def marrow_voi_names(names) -> Tuple[Dict[str, str], Optional[str]]:
    """({level: structure name} of the L2-L4 vertebrae, name of a 'marrow' VOI) among structure names.

    Matches ``vertebra_L2``, ``vertebrae_L3`` (TotalSegmentator), ``L4``, ``L2 vertebra`` (any case) and
    ``marrow`` / ``red_marrow`` / ``bone_marrow``.
    """
    levels: Dict[str, str] = {}
    marrow = None
    for name in names:
        key = str(name).strip().lower()
        match = _VERTEBRA.match(key)
        if match and f"L{match.group(1)}" not in levels:
            levels[f"L{match.group(1)}"] = name
        elif key in _MARROW and marrow is None:
            marrow = name
    return {level: levels[level] for level in LEVELS if level in levels}, marrow


@dataclass
class ImageMarrowDose:
    self_gy: float
    cross_gy: Optional[float]
    voi: Dict[str, Dict[str, float]]  # name -> tia_mbq_h, tia_sd_mbq_h, volume_ml, red_marrow_g
    red_marrow_g: float
    model: MarrowMassModel
    budget: Any = field(repr=False, default=None)
    warnings: List[str] = field(default_factory=list)
    voi_source: str = ""

    @property
    def total_gy(self) -> float:
        return self.self_gy + (self.cross_gy or 0.0)

    def to_dict(self) -> Dict[str, Any]:
        return {
            "method": "image-based (lumbar vertebrae VOI)",
            **dose_with_budget(self.self_gy, self.cross_gy, self.budget),
            "voi": {name: {k: round(v, 4) for k, v in entry.items()} for name, entry in self.voi.items()},
            "voi_source": self.voi_source,
            "red_marrow_mass_g": round(self.red_marrow_g, 2),
            "mass_model": self.model.describe(),
            "assumptions": {
                "self_dose": "all the VOI's activity is in its red marrow; D_self = TIA_VOI x E_electron / m_RM,VOI "
                             "(electron absorbed fraction 1; VOI activity by the plain geometric transfer matrix)",
                "mass_model": ("m_RM,VOI = L2-L4 share x reference red-marrow mass x patient mass / reference mass"
                               if self.model.model == "reference" else
                               "m_RM,VOI = VOI volume x red-marrow density x marrow-space fraction x cellularity"),
                "cross_dose": "as the blood-based method: photons of all the activity in the SPECT field of view "
                              f"over the patient mass, photon absorbed fraction {PHOTON_ABSORBED_FRACTION}",
                "verification": "the mass-model values are from ICRP 70/89 as cited but were not checked against "
                                "the publications: confirm them before clinical use",
                "limitation": "activity before the first scan (the fast blood phase) is extrapolated by the fit",
            },
            "warnings": list(self.warnings),
        }


def image_marrow_dose(voi: Mapping[str, Mapping[str, float]], *, model: Optional[MarrowMassModel] = None,
                      patient_mass_kg: Optional[float] = None, imaged_tia_mbq_h: Optional[float] = None,
                      voi_source: str = "", nuclide: Nuclide = LU177) -> ImageMarrowDose:
    """Red-marrow dose from VOIs' ``tia_mbq_h``, ``tia_sd_mbq_h`` and ``volume_ml`` (module docstring)."""
    from startnet.dosimetry.uncertainty import combine

    model = model or MarrowMassModel()
    if not voi:
        raise InputError("image-based marrow dose: no VOI (expected vertebra_L2, vertebra_L3, vertebra_L4 or marrow)")
    warnings: List[str] = []
    volume_ml = sum(float(v["volume_ml"]) for v in voi.values())
    tia = sum(max(0.0, float(v["tia_mbq_h"])) for v in voi.values())
    # the VOIs share the calibration and the images: their TIA uncertainties are summed linearly (correlated)
    tia_sd = sum(float(v.get("tia_sd_mbq_h") or 0.0) for v in voi.values())
    if model.model == "reference":
        if len(voi) != len(LEVELS):
            raise InputError("--marrow-mass-model reference needs the three VOIs vertebra_L2, vertebra_L3 and "
                             f"vertebra_L4; got {', '.join(voi)}")
        if not patient_mass_kg:
            raise InputError("--marrow-mass-model reference needs --patient-mass-kg KG")
        marrow_g = model.l2_l4_share * RM_REFERENCE_MASS_G * patient_mass_kg / BODY_REFERENCE_MASS_KG
        per_voi = {name: marrow_g * float(v["volume_ml"]) / volume_ml for name, v in voi.items()}
    else:
        per_voi = {name: model.red_marrow_g_per_ml * float(v["volume_ml"]) for name, v in voi.items()}
        marrow_g = sum(per_voi.values())
    if not marrow_g > 0:
        raise InputError("image-based marrow dose: the VOI has no volume")
    self_gy = tia * nuclide.electron_energy_j_per_mbq_h / (marrow_g * 1.0e-3)
    cross_gy = None
    if patient_mass_kg and imaged_tia_mbq_h is not None:
        cross_gy = max(0.0, float(imaged_tia_mbq_h)) * nuclide.photon_energy_j_per_mbq_h \
            * PHOTON_ABSORBED_FRACTION / float(patient_mass_kg)
    else:
        warnings.append("no --patient-mass-kg: the cross-dose from the remainder of the body is not included")
    total = self_gy + (cross_gy or 0.0)
    self_share = self_gy / total if total > 0 else 1.0
    inputs = [("VOI time-integrated activity", tia_sd / tia if tia > 0 else 0.0, self_share),
              ("red-marrow mass model", model.rel_sd, -self_share)]
    if cross_gy is not None:
        inputs += [("photon absorbed fraction (cross-dose)", PHOTON_ABSORBED_FRACTION_REL_SD, 1.0 - self_share),
                   ("patient mass (cross-dose)", PATIENT_MASS_REL_SD, -(1.0 - self_share))]
    budget = combine("red marrow dose (image-based)", total, "Gy", inputs)
    entries = {name: {"tia_mbq_h": float(v["tia_mbq_h"]), "tia_sd_mbq_h": float(v.get("tia_sd_mbq_h") or 0.0),
                      "volume_ml": float(v["volume_ml"]), "red_marrow_g": per_voi[name]} for name, v in voi.items()}
    return ImageMarrowDose(self_gy, cross_gy, entries, marrow_g, model, budget, warnings, voi_source)
