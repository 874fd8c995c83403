"""``startnet demo``: the README's main job on built-in synthetic data.

Builds the digital phantom patient, writes its DICOM as a PACS would send it, runs the cycle
pipeline on that folder with the phantom's reference segmentation, records the cycle in a fresh
trial database (arm 2, cycle 1) and prints the kidney dose against the phantom's ground truth
and the next-cycle advice.
"""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path
from typing import TextIO

from startnet.dosimetry.methods import DEFAULT_DOSE_METHOD, DOSE_METHODS
from startnet.errors import OutputError

DEMO_PATIENT = "SN-DEMO-001"


def register(subparsers) -> None:
    demo = subparsers.add_parser("demo", help="phantom patient -> DICOM -> startnet run -> summary vs truth")
    demo.add_argument("--out", default="demo-output", metavar="DIR", help="output folder (default demo-output)")
    demo.add_argument("--preset", choices=("small", "clinical"), default="small")
    demo.add_argument("--seed", type=int, default=2026)
    demo.add_argument("--method", choices=tuple(DOSE_METHODS), default=DEFAULT_DOSE_METHOD)
    demo.add_argument("--quiet", action="store_true")
    demo.set_defaults(handler=_demo)


def _demo(args) -> int:
    return run_demo(args.out, preset=args.preset, seed=args.seed, method=args.method, quiet=args.quiet,
                    stream=sys.stdout)


def run_demo(out_dir: str, *, preset: str = "small", seed: int = 2026, method: str = DEFAULT_DOSE_METHOD,
             quiet: bool = False, stream: TextIO) -> int:
    from startnet.cycle.run import RunOptions, run_cycle
    from startnet.cycle.summary import summary_text
    from startnet.phantom import PhantomConfig, build_phantom
    from startnet.phantom.export import write_phantom_dicom
    from startnet.progress import terminal_progress
    from startnet.trial.store import TrialStore

    out = Path(out_dir)
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise OutputError(f"--out {out}: cannot create it ({exc.strerror or exc})") from None
    phantom_dir = out / "phantom"
    if phantom_dir.exists():
        shutil.rmtree(phantom_dir)
    stream.write(f"building the {preset} phantom patient (seed {seed}) and writing its DICOM to {phantom_dir}\n")
    phantom = build_phantom(PhantomConfig(preset=preset, seed=seed, patient_id=DEMO_PATIENT))
    files = write_phantom_dicom(phantom, phantom_dir)

    db_path = out / "trial.db"
    if db_path.exists():
        db_path.unlink()
    db_url = f"sqlite:///{db_path}"
    store = TrialStore.initialise(db_url)
    try:
        store.enroll(DEMO_PATIENT, "Uppsala", 2, phantom.injection_datetime.date())
    finally:
        store.close()

    options = RunOptions(input_dir=str(files.dicom_dir), out_dir=str(out / "results"),
                         segmentation_path=str(files.segmentation_nrrd), reference_timepoint=phantom.reference_index,
                         method=method, patient_id=DEMO_PATIENT, cycle=1, trial_db=db_url)
    result = run_cycle(options, None if quiet else terminal_progress())
    stream.write(summary_text(result.results) + "\n\n")
    stream.write(compare_with_truth(result.results, json.loads(Path(files.truth_json).read_text())) + "\n")
    stream.write(f"\noutputs in {out / 'results'}: " + ", ".join(sorted(Path(p).name for p in result.files.values()))
                 + "\n")
    return 0


def compare_with_truth(results, truth) -> str:
    """Measured vs phantom truth for each structure present in both (mean absorbed dose)."""
    truth_structures = truth["structures"]
    lines = ["structure          measured Gy   truth Gy   difference"]
    for name, measured in results["structures"].items():
        if name not in truth_structures:
            continue
        expected = truth_structures[name]["mean_dose_gy"]
        diff = 100.0 * (measured["mean_gy"] / expected - 1.0)
        lines.append(f"{name:<18} {measured['mean_gy']:10.3f} {expected:10.3f}   {diff:+6.1f} %")
    if results.get("kidneys_mean_gy") is not None and "kidney_left" in truth_structures:
        masses = {k: truth_structures[k]["mass_g"] for k in ("kidney_left", "kidney_right")}
        expected = sum(truth_structures[k]["mean_dose_gy"] * m for k, m in masses.items()) / sum(masses.values())
        diff = 100.0 * (results["kidneys_mean_gy"] / expected - 1.0)
        lines.append(f"{'kidneys (mass-w.)':<18} {results['kidneys_mean_gy']:10.3f} {expected:10.3f}   {diff:+6.1f} %")
    return "\n".join(lines)
