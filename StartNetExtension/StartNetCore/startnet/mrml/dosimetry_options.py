"""The Dosimetry panel's run options: panel values -> the job's RunOptions, checked with panel wording.

The panel's red-marrow inputs are the ``startnet run`` options ``--marrow-voi``,
``--marrow-mass-model``, ``--patient-mass-kg``, ``--blood-samples`` and ``--marrow-blood-ratio``
(:mod:`startnet.cycle.options`). Their panel defaults give exactly the command line's defaults:

* marrow VOI "auto" = no ``--marrow-voi`` (the image-based block when the segmentation holds
  ``vertebra_L2..L4`` or ``marrow``);
* mass model "voi" = no ``--marrow-mass-model`` (the voi model);
* patient mass 0 kg = not given; blood samples "" = none; marrow-to-blood ratio "" = 1.0.

:func:`panel_run_options` refuses a bad value with an InputError naming the panel field;
:func:`check_job_marrow` reads the blood samples for the loaded cycle before the job starts (a bad
CSV, or "sgouros" without a haematocrit column, is refused there rather than in the background).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Dict, Optional

from startnet.errors import InputError

MARROW_VOI_CHOICES = ("auto", "segments", "ct")  # "auto": no --marrow-voi
MARROW_MASS_MODELS = ("voi", "reference")  # "voi": the default model (no --marrow-mass-model)


@dataclass
class MarrowPanel:
    """The panel's red-marrow inputs as the widgets hold them."""

    voi_source: str = "auto"
    mass_model: str = "voi"
    patient_mass_kg: float = 0.0  # 0: not given
    blood_samples_path: str = ""  # "" or ".": none (an unset pathlib.Path field reads ".")
    marrow_blood_ratio: str = ""  # "": 1.0 (small peptides); a number > 0 or "sgouros"


def _blood_samples(text: str) -> Optional[str]:
    value = str(text or "").strip()
    if value in ("", "."):
        return None
    if not Path(value).is_file():
        raise InputError(f"Blood samples: {value} is not a file; choose the BLOOD.csv "
                         "(datetime,activity_concentration_kbq_ml[,haematocrit]) or clear the field")
    return value


def _ratio(text: str) -> Optional[str]:
    value = str(text or "").strip()
    if not value:
        return None
    if value.lower() == "sgouros":
        return "sgouros"
    try:
        number = float(value)
    except ValueError:
        number = math.nan
    if not (math.isfinite(number) and number > 0):
        raise InputError(f"Marrow-to-blood ratio {value!r}: expected a number > 0, 'sgouros' or empty (1.0)")
    return value


def marrow_option_values(panel: MarrowPanel) -> Dict[str, Any]:
    """RunOptions fields of the panel's red-marrow inputs (None = the command line's default)."""
    if panel.voi_source not in MARROW_VOI_CHOICES:
        raise InputError(f"Marrow VOI {panel.voi_source!r}: expected one of {', '.join(MARROW_VOI_CHOICES)}")
    if panel.mass_model not in MARROW_MASS_MODELS:
        raise InputError(f"Marrow mass model {panel.mass_model!r}: expected one of {', '.join(MARROW_MASS_MODELS)}")
    mass = float(panel.patient_mass_kg or 0.0)
    if not math.isfinite(mass) or mass < 0:
        raise InputError(f"Patient mass {mass:g} kg: expected > 0 kg, or 0 for not given")
    blood = _blood_samples(panel.blood_samples_path)
    ratio = _ratio(panel.marrow_blood_ratio)
    if ratio is not None and blood is None:
        raise InputError("Marrow-to-blood ratio needs the blood samples CSV (or clear the ratio)")
    if panel.mass_model == "reference" and mass == 0:
        raise InputError("Marrow mass model 'reference' needs the patient mass (kg)")
    return {"marrow_voi": None if panel.voi_source == "auto" else panel.voi_source,
            "marrow_mass_model": None if panel.mass_model == "voi" else panel.mass_model,
            "patient_mass_kg": mass or None, "blood_samples_path": blood, "marrow_blood_ratio": ratio}


def panel_run_options(output_directory, *, method: str, pvc: str, patient_id: str = "", cycle=None,
                      calibration_path=None, marrow: Optional[MarrowPanel] = None):
    """The job's RunOptions from the Dosimetry panel (validated: InputError naming the field)."""
    from startnet.cycle.run import RunOptions

    if str(output_directory or "") in ("", "."):
        raise InputError("choose an output folder")
    options = RunOptions(input_dir="", out_dir=str(output_directory), method=method, pvc=pvc,
                         patient_id=str(patient_id or "").strip() or None, cycle=cycle, write_scene=False,
                         calibration_path=str(calibration_path) if calibration_path else None,
                         **marrow_option_values(marrow or MarrowPanel()))
    options.validate()
    return options


def check_job_marrow(inputs) -> None:
    """Read the job's blood samples for its cycle now (InputError for a bad CSV, for 'sgouros' without a
    haematocrit column); nothing without blood samples. ``inputs`` are not changed."""
    from startnet.cycle.marrow import load_blood_samples
    from startnet.dosimetry.marrow import rmblr_value

    samples = load_blood_samples(inputs.options, inputs.cycle)
    if samples is not None:
        rmblr_value(inputs.options.marrow_blood_ratio, samples)
