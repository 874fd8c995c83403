"""``startnet inspect INPUT_DIR``: show the time points a cycle folder yields, or a clear error."""

from __future__ import annotations

import json

from startnet.commands.arguments import COUNT_RATE_HELP, aware_datetime, kcps_list


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "inspect", help="list the calibrated time points found in a cycle's DICOM folder",
        description="Discover SPECT/CT series in INPUT_DIR and print each time point (hours after "
                    "injection, series UIDs, units conversion, warnings). Nothing is written.",
    )
    parser.add_argument("input_dir", metavar="INPUT_DIR")
    parser.add_argument("--json", action="store_true", help="print the cycle provenance as JSON")
    parser.add_argument("--calibration-cps-per-mbq", type=float, default=None,
                        help="camera calibration factor for count images (cps/MBq)")
    parser.add_argument("--injection-datetime", type=aware_datetime, default=None,
                        help="injection time with UTC offset, replacing the header value")
    parser.add_argument("--injected-activity-mbq", type=float, default=None,
                        help="injected activity (MBq), replacing the header value")
    parser.add_argument("--dead-time-s", type=float, default=None,
                        help="paralysable dead time of the camera (s) for count images")
    parser.add_argument("--count-rate-kcps", type=kcps_list, default=None, metavar="KCPS[,KCPS...]",
                        help=COUNT_RATE_HELP)
    parser.add_argument("--acquisition-duration-s", type=float, default=None,
                        help="SPECT acquisition duration (s) the calibration refers to, replacing the header")
    parser.add_argument("--timezone", default=None,
                        help="IANA zone of local DICOM times (default Europe/Stockholm)")
    parser.set_defaults(handler=run)


def run(args) -> int:
    from startnet.dicomio.loader import load_cycle
    from startnet.dicomio.model import DEFAULT_TIMEZONE, Overrides

    overrides = Overrides(
        injection_datetime=args.injection_datetime, injected_activity_mbq=args.injected_activity_mbq,
        calibration_cps_per_mbq=args.calibration_cps_per_mbq, dead_time_s=args.dead_time_s,
        timezone=args.timezone or DEFAULT_TIMEZONE, acquisition_duration_s=args.acquisition_duration_s,
        count_rate_kcps=args.count_rate_kcps,
    )
    cycle = load_cycle(args.input_dir, overrides)
    if args.json:
        print(json.dumps(cycle.to_dict(), indent=2))
        return 0
    print(f"patient {cycle.patient_id or '(no PatientID)'}  nuclide {cycle.nuclide.name}")
    print(f"injection {cycle.injection_datetime.isoformat()}  ({cycle.injection_source})")
    print(f"activity  {cycle.injected_activity_mbq:.1f} MBq  ({cycle.activity_source})")
    for i, tp in enumerate(cycle.timepoints, 1):
        conv = tp.conversion
        print(f"[{i}] {tp.hours_post_injection:8.2f} h p.i.  acquired {tp.acquisition_datetime.isoformat()}")
        print(f"     SPECT {tp.spect_series_uid}  size {tp.spect_bqml.GetSize()}  "
              f"spacing {tuple(round(s, 3) for s in tp.spect_bqml.GetSpacing())} mm")
        print(f"     CT    {tp.ct_series_uid or 'none'}"
              + (f"  size {tp.ct_hu.GetSize()}" if tp.ct_hu is not None else ""))
        detail = f"mode {conv['mode']} ({conv['source']}), decay factor {conv['decay_factor']:.6f}"
        if conv["mode"] == "counts":
            detail += (f", CF {conv['calibration_cps_per_mbq']:g} cps/MBq, T {conv['frame_duration_s']:g} s, "
                       f"dead-time factor {conv['dead_time_factor']:.5f}")
        print(f"     units {detail}; half-life {conv['half_life_h']:.3f} h ({conv['half_life_source']})")
        print(f"     dead time {conv['dead_time_correction']}")
        print(f"     activity in SPECT field of view {tp.total_activity_mbq:.1f} MBq")
    for warning in cycle.warnings:
        print(f"warning: {warning}")
    if cycle.overrides_applied:
        print(f"overrides: {json.dumps(cycle.overrides_applied)}")
    return 0
