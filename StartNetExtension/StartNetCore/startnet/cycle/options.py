"""The options of one cycle's run, defined once for ``startnet run`` and ``startnet batch``.

``add_run_options(parser)`` adds every per-cycle option (not INPUT_DIR and --out, which each
command places itself); ``run_options(values, input_dir, out_dir)`` turns the parsed values (a
namespace or a dict keyed by the options' ``dest``) into :class:`~startnet.cycle.run_options.RunOptions`.
``startnet batch`` applies the same options to every manifest row unless a row sets its own
value; ``option_value(parser, dest, text)`` converts a manifest cell with the option's own type
and choices, so a row is checked exactly as the command line would check it.
"""

from __future__ import annotations

import argparse
from typing import Any, Dict, Mapping

from startnet.commands.arguments import COUNT_RATE_HELP, aware_datetime, kcps_list
from startnet.cycle.pvc import DEFAULT_PVC, PVC_METHODS
from startnet.dosimetry.methods import DEFAULT_DOSE_METHOD, DOSE_METHODS
from startnet.errors import InputError

# option dest -> RunOptions field (every option added by add_run_options except --quiet)
RUN_OPTION_FIELDS = {
    "segmentation": "segmentation_path",
    "labels": "labels_path",
    "reference_timepoint": "reference_timepoint",
    "calibration_cps_per_mbq": "calibration_cps_per_mbq",
    "calibration": "calibration_path",
    "dead_time_s": "dead_time_s",
    "count_rate_kcps": "count_rate_kcps",
    "method": "method",
    "injection_datetime": "injection_datetime",
    "injected_activity_mbq": "injected_activity_mbq",
    "trial_db": "trial_db",
    "patient_id": "patient_id",
    "cycle": "cycle",
    "pvc": "pvc",
    "psf_fwhm_mm": "psf_fwhm_mm",
    "blood_samples": "blood_samples_path",
    "marrow_blood_ratio": "marrow_blood_ratio",
    "patient_mass_kg": "patient_mass_kg",
    "lesion_map": "lesion_map_path",
    "previous_runs": "previous_runs_dir",
    "marrow_voi": "marrow_voi",
    "marrow_mass_model": "marrow_mass_model",
    "red_marrow_g_per_ml": "red_marrow_g_per_ml",
}
# options whose value is a file path (relative paths in a manifest are relative to the manifest)
PATH_OPTIONS = ("segmentation", "labels", "calibration", "blood_samples", "lesion_map", "previous_runs")


def add_run_options(parser: argparse.ArgumentParser) -> None:
    """Every option of one cycle's run (``startnet run`` and, for all rows, ``startnet batch``)."""
    parser.add_argument("--segmentation", metavar="FILE",
                        help=".seg.nrrd, DICOM SEG, DICOM RTSTRUCT (drawn on the reference CT), or labelmap "
                             "(.nii/.nii.gz/.nrrd)")
    parser.add_argument("--labels", metavar="LABELS.json", help="label value -> structure name (for a labelmap)")
    parser.add_argument("--reference-timepoint", type=int, metavar="N",
                        help="reference time point index in chronological order (default: closest to 24 h)")
    parser.add_argument("--calibration-cps-per-mbq", type=float, metavar="X",
                        help="camera calibration factor for count images (overrides the headers)")
    parser.add_argument("--calibration", metavar="CAL.json|DIR",
                        help="camera calibration from 'startnet calibrate' (or a folder of them: the file of the "
                             "SPECT's camera is chosen): counts-to-activity factor, PSF and recovery curve with their "
                             "uncertainties")
    parser.add_argument("--dead-time-s", type=float, metavar="S",
                        help="paralysable dead time of the camera (s) for count images "
                             "(default: no dead-time correction)")
    parser.add_argument("--count-rate-kcps", type=kcps_list, metavar="KCPS[,KCPS...]", help=COUNT_RATE_HELP)
    parser.add_argument("--method", choices=tuple(DOSE_METHODS), default=DEFAULT_DOSE_METHOD,
                        help=f"dose engine (default {DEFAULT_DOSE_METHOD}): "
                             + "; ".join(f"{m.name}: {m.title}" for m in DOSE_METHODS.values()))
    parser.add_argument("--injection-datetime", type=aware_datetime, metavar="ISO",
                        help="override the injection date/time (with UTC offset)")
    parser.add_argument("--injected-activity-mbq", type=float, metavar="X", help="override the injected activity")
    parser.add_argument("--trial-db", metavar="URL", help="record the cycle in this trial database")
    parser.add_argument("--patient", dest="patient_id", metavar="ID", help="trial patient ID (pseudonym)")
    parser.add_argument("--cycle", type=int, metavar="N", help="cycle number")
    parser.add_argument("--pvc", choices=tuple(PVC_METHODS), default=DEFAULT_PVC,
                        help="partial-volume correction: " + ", ".join(PVC_METHODS.values()))
    parser.add_argument("--psf-fwhm-mm", type=float, metavar="MM",
                        help="SPECT resolution (FWHM) for the partial-volume correction "
                             "(default: camera configuration)")
    parser.add_argument("--blood-samples", metavar="BLOOD.csv",
                        help="blood samples (columns datetime,activity_concentration_kbq_ml[,haematocrit]) for the "
                             "red-marrow dose (EANM blood-based method)")
    parser.add_argument("--marrow-blood-ratio", metavar="RMBLR",
                        help="red-marrow-to-blood concentration ratio (default 1.0 for small peptides), or "
                             "'sgouros' for 0.19/(1-haematocrit)")
    parser.add_argument("--patient-mass-kg", type=float, metavar="KG",
                        help="patient mass, for the marrow cross-dose from the remainder of the body")
    parser.add_argument("--lesion-map", metavar="FILE",
                        help="JSON {segment: lesion ID} overriding the matching of this cycle's tumour segments to "
                             "the patient's earlier lesions (with --trial-db)")
    parser.add_argument("--previous-runs", metavar="DIR",
                        help="with --trial-db: where the patient's earlier run folders are now, when no longer at the "
                             "paths the trial database recorded (searched recursively; each identified by its "
                             "results.json: SHA-256, or patient, cycle and SPECT series UIDs). Without it the "
                             "folders beside --out are searched")
    parser.add_argument("--marrow-voi", choices=("segments", "ct"),
                        help="image-based red-marrow dose in lumbar vertebrae L2-L4: from the segmentation's "
                             "vertebra_L2..L4 or marrow segments, or segmented from the CT (default: when the "
                             "segmentation has such segments)")
    parser.add_argument("--marrow-mass-model", choices=("voi", "reference"),
                        help="red-marrow mass in the VOI: volume x density x marrow space x cellularity (voi, "
                             "default) or the ICRP L2-L4 share of the reference marrow scaled by --patient-mass-kg")
    parser.add_argument("--red-marrow-g-per-ml", type=float, metavar="G",
                        help="red-marrow mass per mL of vertebral body for the voi model (default 0.61, unverified)")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")


def option_values(args: argparse.Namespace) -> Dict[str, Any]:
    """The run options' values of a parsed namespace, keyed by dest."""
    return {dest: getattr(args, dest, None) for dest in RUN_OPTION_FIELDS}


def run_options(values: Mapping[str, Any], input_dir: str, out_dir: str):
    """RunOptions from option values keyed by dest (missing keys take RunOptions' defaults)."""
    from startnet.cycle.run_options import RunOptions

    fields = {RUN_OPTION_FIELDS[dest]: value for dest, value in values.items()
              if dest in RUN_OPTION_FIELDS and value is not None}
    return RunOptions(input_dir=str(input_dir), out_dir=str(out_dir), **fields)


def option_action(parser: argparse.ArgumentParser, dest: str) -> argparse.Action:
    for action in parser._actions:
        if action.dest == dest:
            return action
    raise KeyError(dest)


def option_value(parser: argparse.ArgumentParser, dest: str, text: str) -> Any:
    """A text value converted and checked as the option ``dest`` of ``parser`` would (InputError if not)."""
    action = option_action(parser, dest)
    flag = action.option_strings[0] if action.option_strings else dest
    value: Any = text
    if action.type is not None:
        try:
            value = action.type(text)
        except (argparse.ArgumentTypeError, ValueError, TypeError) as exc:
            detail = str(exc) if isinstance(exc, argparse.ArgumentTypeError) else f"{text!r} is not valid"
            raise InputError(f"{flag}: {detail}") from None
    if action.choices is not None and value not in action.choices:
        raise InputError(f"{flag} {text!r}: expected one of {', '.join(map(str, action.choices))}")
    return value
