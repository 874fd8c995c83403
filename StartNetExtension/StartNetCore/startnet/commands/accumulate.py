"""Several cycles of one patient summed: ``startnet accumulate RUN_DIR [RUN_DIR ...] --out DIR``.

The command line of :func:`startnet.cycle.accumulate.accumulate_runs` (what is summed and how is described there).
"""

from __future__ import annotations

import math


def register(subparsers) -> None:
    parser = subparsers.add_parser("accumulate", help="sum several cycles' dose and BED (maps and structures)",
                                   description=__doc__.split("\n\n")[0])
    parser.add_argument("run_dirs", nargs="+", metavar="RUN_DIR",
                        help="output folders of 'startnet run', one per cycle")
    parser.add_argument("--out", required=True, metavar="DIR", help="folder for the cumulative maps and JSON")
    parser.add_argument("--reference", type=int, default=0, metavar="N", help="cycle whose grid is used (default 0)")
    parser.add_argument("--lesion-map", metavar="FILE",
                        help='JSON {"<cycle>": {"<segment>": "<lesion ID>"}} overriding the lesion matches')
    parser.set_defaults(handler=_run)


def _run(args) -> int:
    from startnet.cycle.accumulate import accumulate_runs

    cumulative = accumulate_runs(args.run_dirs, args.out, args.reference, args.lesion_map)
    kidneys = cumulative["cumulative_kidneys_mean_gy"]
    print(f"{len(cumulative['cycles'])} cycles; cumulative kidney dose "
          + (f"{kidneys:.2f} Gy" if kidneys is not None and math.isfinite(kidneys) else "not available")
          + (f", BED {cumulative['cumulative_kidneys_bed_gy']:.2f} Gy"
             if cumulative["cumulative_kidneys_bed_gy"] is not None else ""))
    for lesion in (cumulative["lesions"] or {}).get("lesions", []):
        total = lesion["cumulative_mean_gy"]
        print(f"lesion {lesion['id']}: {lesion['status']}, cycles {','.join(map(str, lesion['cycles_seen']))}, "
              + ("cumulative n/a" if total is None else f"cumulative {total:.2f} Gy"))
    for warning in cumulative["warnings"]:
        print(f"warning: {warning}")
    return 0
