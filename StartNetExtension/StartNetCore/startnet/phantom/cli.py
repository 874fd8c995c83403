"""``startnet phantom``: write a synthetic 177Lu-DOTATOC cycle (DICOM + segmentation + truth)."""

from __future__ import annotations

import argparse
import time
from typing import Tuple

from startnet.errors import InputError
from startnet.phantom.config import PRESETS, UNITS, PhantomConfig


def _hours(text: str) -> Tuple[float, ...]:
    try:
        return tuple(float(part) for part in text.split(",") if part.strip())
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"--timepoints-h: {text!r} is not a comma-separated list of hours") from exc


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "phantom",
        help="write a digital phantom patient's SPECT/CT cycle as DICOM with its ground truth",
        description="Build the digital phantom patient (anatomy, 177Lu-DOTATOC kinetics, motion, PSF, "
                    "noise) and write CT + NM SPECT DICOM per time point, segmentation.seg.nrrd, "
                    "labels.nii.gz/labels.json and truth.json into --out.",
    )
    parser.add_argument("--out", required=True, help="output folder (new or empty)")
    parser.add_argument("--preset", choices=PRESETS, default="small", help="grid size (default: small)")
    parser.add_argument("--seed", type=int, default=0, help="random seed for noise and motion (default: 0)")
    parser.add_argument("--units", choices=UNITS, default="bqml", help="SPECT pixel units (default: bqml)")
    parser.add_argument("--timepoints-h", type=_hours, default=(4.0, 24.0, 96.0, 168.0),
                        help="comma-separated hours after injection (default: 4,24,96,168)")
    parser.add_argument("--no-noise", action="store_true", help="no Poisson/CT noise")
    parser.add_argument("--no-blur", action="store_true", help="no SPECT PSF blur")
    parser.add_argument("--no-motion", action="store_true", help="no patient motion between time points")
    parser.add_argument("--cycle", type=int, default=1, metavar="N",
                        help="treatment cycle 1-3 of the same patient: lesions shrink, one vanishes after cycle 1, "
                             "a new one appears in cycle 2; the patient lies differently (default: 1)")
    parser.set_defaults(handler=run)


def run(args) -> int:
    # imported here so that ``startnet --help`` works without the numerical stack (numba) loaded
    from startnet.phantom.export import write_phantom_dicom
    from startnet.phantom.model import build_phantom

    config = PhantomConfig(preset=args.preset, seed=args.seed, units=args.units, timepoints_h=args.timepoints_h,
                           noise=not args.no_noise, blur=not args.no_blur, motion=not args.no_motion,
                           cycle_number=args.cycle)
    if not config.timepoints_h:
        raise InputError("--timepoints-h: no time points given")
    start = time.perf_counter()
    phantom = build_phantom(config)
    files = write_phantom_dicom(phantom, args.out)
    elapsed = time.perf_counter() - start
    kidneys = [phantom.truth["structures"][k]["mean_dose_gy"] for k in ("kidney_left", "kidney_right")]
    print(f"phantom written to {files.out_dir} in {elapsed:.1f} s: {len(files.timepoints)} time points "
          f"({', '.join(f'{t.hours_post_injection:g} h' for t in files.timepoints)}), units {config.units}")
    print(f"  DICOM: {files.dicom_dir}")
    print(f"  segmentation: {files.segmentation_nrrd.name}, {files.labels_nifti.name}, {files.labels_json.name}")
    print(f"  truth: {files.truth_json.name} (true kidney mean dose left {kidneys[0]:.2f} Gy, "
          f"right {kidneys[1]:.2f} Gy)")
    return 0
