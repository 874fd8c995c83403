"""``startnet calibrate``: a camera's sensitivity, PSF and recovery from its own phantom scans.

    startnet calibrate sensitivity DICOM_DIR --activity-mbq A --activity-datetime ISO --out CAL.json
    startnet calibrate recovery DICOM_DIR --spheres SPHERES.json --out CAL.json
    startnet calibrate show CAL.json [--json]
    startnet calibrate compare CAL.json CAL.json [...] [--out DIR]

The physics and the CAL.json keys are described in :mod:`startnet.calibration` and its modules.
"""

from __future__ import annotations

import argparse
import json
import shlex
import sys


def _positive(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not value > 0:
        raise argparse.ArgumentTypeError(f"{text!r} must be > 0")
    return value


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "calibrate", help="camera sensitivity, PSF and recovery from the site's own phantom scans (CAL.json)",
        description="Measure one camera's calibration from phantom acquisitions (DICOM) into CAL.json.")
    sub = parser.add_subparsers(dest="calibrate_command", metavar="STEP")
    sens = sub.add_parser("sensitivity", help="cps/MBq from a uniform source of known activity",
                          description="Sensitivity (cps/MBq) from one SPECT of a uniform source (e.g. a cylinder); "
                                      "a SPECT in Bq/mL gives the ratio recovered/true activity instead.")
    sens.add_argument("dicom_dir", metavar="DICOM_DIR")
    sens.add_argument("--activity-mbq", type=_positive, required=True, metavar="A",
                      help="activity of the source (MBq) at --activity-datetime")
    sens.add_argument("--activity-datetime", required=True, metavar="ISO",
                      help="when the activity was measured (ISO 8601; without offset: local time of --timezone)")
    sens.add_argument("--activity-rel-sd", type=float, default=0.02, metavar="X",
                      help="relative standard uncertainty of the activity (default 0.02)")
    sens.add_argument("--margin-mm", type=_positive, metavar="MM",
                      help="VOI margin around the source (default: 40 mm or 3 x the calibrated PSF if larger)")
    rec = sub.add_parser("recovery", help="recovery coefficients and PSF FWHM from a sphere phantom",
                         description="Recovery coefficient per sphere and the PSF FWHM fitted to all spheres.")
    rec.add_argument("dicom_dir", metavar="DICOM_DIR")
    rec.add_argument("--spheres", required=True, metavar="SPHERES.json", help="the spheres and concentrations")
    for p in (sens, rec):
        p.add_argument("--out", required=True, metavar="CAL.json", help="calibration file (created or filled)")
        p.add_argument("--dead-time-s", type=float, metavar="S", help="paralysable dead time (counts images)")
        p.add_argument("--timezone", default="Europe/Stockholm", help="IANA zone of local times (default "
                                                                      "Europe/Stockholm)")
    sens.set_defaults(handler=_sensitivity)
    rec.set_defaults(handler=_recovery)
    show = sub.add_parser("show", help="print a calibration file")
    show.add_argument("calibration", metavar="CAL.json")
    show.add_argument("--json", action="store_true", help="the file's JSON")
    show.set_defaults(handler=_show)
    comp = sub.add_parser("compare", help="several cameras' calibrations side by side (table, HTML, plot)")
    comp.add_argument("calibrations", nargs="+", metavar="CAL.json")
    comp.add_argument("--out", metavar="DIR", help="write calibration_comparison.html and recovery_curves.png here")
    comp.set_defaults(handler=_compare)
    parser.set_defaults(handler=lambda args: (parser.print_help(), 2)[1])


def _command_line() -> str:
    return "startnet " + " ".join(shlex.quote(a) for a in sys.argv[1:])


def _print_warnings(warnings) -> None:
    for warning in warnings:
        print(f"warning: {warning}", file=sys.stderr)


def _sensitivity(args) -> int:
    from startnet.calibration.spheres import parse_datetime
    from startnet.calibration.steps import calibrate_sensitivity
    from startnet.dicomio.timing import get_zone

    when = parse_datetime(args.activity_datetime, "--activity-datetime", get_zone(args.timezone))
    step = calibrate_sensitivity(args.dicom_dir, args.activity_mbq, when, args.out,
                                 activity_rel_sd=args.activity_rel_sd, margin_mm=args.margin_mm,
                                 dead_time_s=args.dead_time_s, timezone=args.timezone, command=_command_line())
    data, acq = step.data, step.acquisition
    _print_warnings(step.warnings)
    if data.get("sensitivity_cps_per_mbq") is not None and acq.mode == "counts":
        print(f"{args.out}: sensitivity {data['sensitivity_cps_per_mbq']:.4g} cps/MBq "
              f"(relative SD {100 * data['sensitivity_rel_sd']:.2f} %) for {_camera(acq.camera)}")
    else:
        print(f"{args.out}: Bq/mL SPECT recovers {data['vendor_quantification_ratio']:.4f} x the true activity "
              f"(relative SD {100 * data['vendor_quantification_ratio_rel_sd']:.2f} %) for {_camera(acq.camera)}")
    return 0


def _camera(camera) -> str:
    from startnet.calibration.camera import describe

    return describe(camera)


def _recovery(args) -> int:
    from startnet.calibration.camera import describe
    from startnet.calibration.spheres import read_spheres
    from startnet.calibration.steps import calibrate_recovery
    from startnet.dicomio.timing import get_zone

    phantom = read_spheres(args.spheres, get_zone(args.timezone))
    step = calibrate_recovery(args.dicom_dir, phantom, args.out, dead_time_s=args.dead_time_s,
                              timezone=args.timezone, command=_command_line(), spheres_origin=args.spheres)
    _print_warnings(step.warnings)
    values = step.values
    print(f"{args.out}: PSF FWHM {values['psf_fwhm_mm']:.2f} mm (relative SD {100 * values['psf_fwhm_rel_sd']:.1f} %) "
          f"for {describe(step.acquisition.camera)}")
    for sphere in values["spheres"]:
        print(f"  {sphere['name']}: {sphere['volume_ml']:.3g} mL  RC {sphere['rc']:.3f} +- {sphere['rc_sd']:.3f}  "
              f"(mean/true {sphere['rc_mean']:.3f}, count-conserving {sphere['rc_count_conserving']:.3f})")
    return 0


def _show(args) -> int:
    from startnet.calibration.calfile import read_calibration
    from startnet.calibration.compare import rows_of, text_table

    data = read_calibration(args.calibration)
    if args.json:
        print(json.dumps(data, indent=2))
        return 0
    camera = data["camera"]
    recon = camera.get("reconstruction") or {}
    print(f"{args.calibration}: {_camera(camera)}, collimator {camera.get('collimator') or '?'}, reconstruction "
          f"{recon.get('method') or '?'} (filter {recon.get('filter') or '?'}, corrections "
          f"{'/'.join(recon.get('corrections') or []) or 'none'})")
    print(text_table(rows_of([args.calibration])))
    if data.get("vendor_quantification_ratio") is not None:
        print(f"vendor Bq/mL quantification: recovered/true {data['vendor_quantification_ratio']:.4f}")
    return 0


def _compare(args) -> int:
    from startnet.calibration.compare import rows_of, text_table, write_comparison

    rows = rows_of(args.calibrations)
    print(text_table(rows))
    if args.out:
        files = write_comparison(rows, args.out)
        print(f"written: {files['html']}, {files['plot']}")
    return 0
