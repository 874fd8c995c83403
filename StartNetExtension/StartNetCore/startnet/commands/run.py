"""``startnet run``: one cycle from a folder of DICOM files (the steps are chained by ``startnet.cycle.run``)."""

from __future__ import annotations

import argparse
import datetime as _dt

from startnet.commands.arguments import COUNT_RATE_HELP, kcps_list
from startnet.cycle.pvc import DEFAULT_PVC, PVC_METHODS
from startnet.dosimetry.methods import DEFAULT_DOSE_METHOD, DOSE_METHODS
from startnet.errors import InputError


def _aware_datetime(text: str) -> _dt.datetime:
    try:
        value = _dt.datetime.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not an ISO date-time (e.g. 2026-03-02T09:15:00+01:00)") from None
    if value.tzinfo is None:
        raise argparse.ArgumentTypeError(f"{text!r} has no UTC offset; add one, e.g. +01:00")
    return value


def register(subparsers) -> None:
    run = subparsers.add_parser("run", help="dosimetry of one cycle from a folder of DICOM files",
                                description="One 177Lu cycle: DICOM -> registered activity -> structures -> "
                                            "kinetics -> absorbed dose, BED, uncertainty -> outputs.")
    run.add_argument("input_dir", metavar="INPUT_DIR", help="folder with the cycle's SPECT/CT DICOM files")
    run.add_argument("--out", required=True, metavar="OUT_DIR", help="output folder (created if needed)")
    run.add_argument("--segmentation", metavar="FILE", help=".seg.nrrd, DICOM SEG, or labelmap (.nii/.nii.gz/.nrrd)")
    run.add_argument("--labels", metavar="LABELS.json", help="label value -> structure name (for a labelmap)")
    run.add_argument("--reference-timepoint", type=int, metavar="N",
                     help="reference time point index in chronological order (default: closest to 24 h)")
    run.add_argument("--calibration-cps-per-mbq", type=float, metavar="X",
                     help="camera calibration factor for count images (overrides the headers)")
    run.add_argument("--calibration", metavar="CAL.json|DIR",
                     help="camera calibration from 'startnet calibrate' (or a folder of them: the file of the SPECT's "
                          "camera is chosen): counts-to-activity factor, PSF and recovery curve with their "
                          "uncertainties")
    run.add_argument("--dead-time-s", type=float, metavar="S",
                     help="paralysable dead time of the camera (s) for count images (default: no dead-time correction)")
    run.add_argument("--count-rate-kcps", type=kcps_list, metavar="KCPS[,KCPS...]", help=COUNT_RATE_HELP)
    run.add_argument("--method", choices=tuple(DOSE_METHODS), default=DEFAULT_DOSE_METHOD,
                     help=f"dose engine (default {DEFAULT_DOSE_METHOD}): "
                          + "; ".join(f"{m.name}: {m.title}" for m in DOSE_METHODS.values()))
    run.add_argument("--injection-datetime", type=_aware_datetime, metavar="ISO",
                     help="override the injection date/time (with UTC offset)")
    run.add_argument("--injected-activity-mbq", type=float, metavar="X", help="override the injected activity")
    run.add_argument("--trial-db", metavar="URL", help="record the cycle in this trial database")
    run.add_argument("--patient", metavar="ID", help="trial patient ID (pseudonym)")
    run.add_argument("--cycle", type=int, metavar="N", help="cycle number")
    run.add_argument("--pvc", choices=tuple(PVC_METHODS), default=DEFAULT_PVC,
                     help="partial-volume correction: " + ", ".join(PVC_METHODS.values()))
    run.add_argument("--psf-fwhm-mm", type=float, metavar="MM",
                     help="SPECT resolution (FWHM) for the partial-volume correction (default: camera configuration)")
    run.add_argument("--quiet", action="store_true", help="no progress bar")
    run.set_defaults(handler=_run)


def _run(args) -> int:
    from startnet.cycle.run import RunOptions, run_cycle
    from startnet.cycle.summary import summary_text
    from startnet.progress import terminal_progress

    if (args.patient or args.cycle is not None) and not args.trial_db:
        raise InputError("--patient/--cycle are only used with --trial-db URL")
    options = RunOptions(
        input_dir=args.input_dir, out_dir=args.out, segmentation_path=args.segmentation, labels_path=args.labels,
        reference_timepoint=args.reference_timepoint, calibration_cps_per_mbq=args.calibration_cps_per_mbq,
        method=args.method, injection_datetime=args.injection_datetime,
        injected_activity_mbq=args.injected_activity_mbq, patient_id=args.patient, cycle=args.cycle,
        trial_db=args.trial_db, pvc=args.pvc, psf_fwhm_mm=args.psf_fwhm_mm, dead_time_s=args.dead_time_s,
        count_rate_kcps=args.count_rate_kcps, calibration_path=args.calibration,
    )
    result = run_cycle(options, None if args.quiet else terminal_progress())
    print(summary_text(result.results))
    return 0
