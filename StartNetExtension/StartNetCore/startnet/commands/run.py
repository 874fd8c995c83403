"""``startnet run``: one cycle from a folder of DICOM files (the steps are chained by ``startnet.cycle.run``)."""

from __future__ import annotations

from startnet.cycle.options import add_run_options, option_values, run_options
from startnet.errors import InputError


def register(subparsers) -> None:
    run = subparsers.add_parser("run", help="dosimetry of one cycle from a folder of DICOM files",
                                description="One 177Lu cycle: DICOM -> registered activity -> structures -> "
                                            "kinetics -> absorbed dose, BED, uncertainty -> outputs.")
    run.add_argument("input_dir", metavar="INPUT_DIR", help="folder with the cycle's SPECT/CT DICOM files")
    run.add_argument("--out", required=True, metavar="OUT_DIR", help="output folder (created if needed)")
    add_run_options(run)
    run.set_defaults(handler=_run)


def _run(args) -> int:
    from startnet.cycle.run import run_cycle
    from startnet.cycle.summary import summary_text
    from startnet.progress import terminal_progress

    if (args.patient_id or args.cycle is not None) and not args.trial_db:
        raise InputError("--patient/--cycle are only used with --trial-db URL")
    options = run_options(option_values(args), args.input_dir, args.out)
    result = run_cycle(options, None if args.quiet else terminal_progress())
    print(summary_text(result.results))
    return 0
