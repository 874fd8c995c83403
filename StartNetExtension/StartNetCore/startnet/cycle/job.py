"""A cycle's dosimetry as a background job: a job folder in, progress lines out, outputs written atomically.

The Slicer Dosimetry module holds the cycle in memory (time points, the user's transforms, the
segmentation); running the analysis inside Slicer would freeze it for minutes. So the module
writes a *job folder* and starts ``PythonSlicer -m startnet.cycle.job JOB_DIR`` (as
SlicerTotalSegmentator and SlicerElastix run their work in a child process), reads its lines and
can kill it at any time.

Job folder (:func:`write_job`)::

    job.json                     cycle and time-point metadata, reference index, options, structures
    tp<i>_spect.nrrd, tp<i>_ct.nrrd   each time point's SPECT (Bq/mL) and CT (HU)
    tp<i>.tfm                    transform reference -> time point (absent = identity)
    structures_<k>.nrrd          label layers (segments that overlap go to different layers)
    charts.json                  written by the job: TAC and DVH curves for the module's charts

The child rebuilds the in-memory objects (:func:`read_job`) and chains the same steps as
``startnet run``: :func:`~startnet.cycle.register.registered_from_transforms` ->
:func:`~startnet.cycle.segments.structures_from_masks` -> :func:`~startnet.cycle.run.analyse_cycle`
-> :func:`~startnet.cycle.outputs.write_outputs` (staged, then moved into OUT_DIR; a killed job
leaves only its hidden staging folder, which :func:`discard_staging` removes). With
``options.calibration_path`` (the Dosimetry module's calibration folder) the camera's CAL.json is
chosen by the time points' SPECT headers and applied first
(:func:`startnet.calibration.use.apply_to_loaded_cycle`).

stdout carries one JSON object per line (:func:`parse_line` reads them back)::

    {"progress": 0.42, "stage": "dose", "text": "absorbed dose (vsv-density)"}
    {"log": "INFO startnet.cycle.quantify: ..."}
    {"staging": "/out/.startnet-staging-abc"}
    {"done": {"out_dir": "/out", "results": "results.json", "charts": "JOB_DIR/charts.json"}}   exit code 0
    {"error": "job.json: ..."}                                    exit code 2 (input), 1 (bug)
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import json
import logging
import shutil
import signal
import sys
import traceback
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, Callable, Dict, List, Mapping, Optional, Sequence, Tuple

import numpy as np
import SimpleITK as sitk

from startnet.cycle.outputs import STAGING_PREFIX
from startnet.dicomio import Cycle, Timepoint
from startnet.errors import InputError, StartNetError

JOB_FILE = "job.json"
SCHEMA = "startnet-job/1"
RESULTS = "results.json"
CHARTS = "charts.json"  # in the job folder: the TAC and DVH curves (startnet.cycle.chart_data)
STAGES = (("register", 15.0), ("segment", 8.0), ("quantify", 8.0), ("kinetics", 10.0), ("dose", 6.0),
          ("results", 3.0), ("outputs", 20.0))
_TIMEPOINT_FIELDS = ("hours_post_injection", "spect_series_uid", "ct_series_uid", "frame_of_reference_uid",
                     "study_uid", "conversion", "source_files", "spect_file", "warnings")
_CYCLE_FIELDS = ("injected_activity_mbq", "patient_id", "study_uids", "warnings", "log", "overrides_applied",
                 "injection_source", "activity_source", "input_dir")
Colour = Tuple[float, float, float]
Emit = Callable[[Dict[str, Any]], None]


@dataclass
class JobInputs:
    """What a job needs, all in memory (what the scene holds)."""

    cycle: Cycle
    reference_index: int
    transforms: Sequence[Optional[sitk.Transform]]  # reference -> time point i (LPS); None = identity
    masks: Mapping[str, sitk.Image]  # segment name -> mask (non-zero inside), on the CT grid usually
    options: Any  # startnet.cycle.run.RunOptions (out_dir = where the outputs go)
    colours: Mapping[str, Colour] = field(default_factory=dict)
    reference_ct_files: Optional[List[str]] = None  # DICOM files of the reference CT (RT Dose, DICOM SEG)
    structures_source: str = "segmentation in memory"


# ------------------------------------------------------------------------------------------------
# writing and reading a job folder
# ------------------------------------------------------------------------------------------------
def _json_value(value):
    if isinstance(value, (np.floating, np.integer)):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, (_dt.datetime, _dt.date)):
        return value.isoformat()
    if isinstance(value, tuple):
        return list(value)
    return str(value)


def _label_layers(masks: Mapping[str, sitk.Image]) -> Tuple[List[sitk.Image], List[Dict[str, Any]]]:
    """Segments packed into as few uint16 label images as overlaps allow (lossless, order kept)."""
    layers: List[np.ndarray] = []
    geometry: Optional[sitk.Image] = None
    segments: List[Dict[str, Any]] = []
    for name, image in masks.items():
        if not isinstance(image, sitk.Image) or image.GetDimension() != 3:
            raise InputError(f"segment '{name}': expected a 3D SimpleITK mask image")
        if geometry is None:
            geometry = image
        elif (image.GetSize() != geometry.GetSize()
              or not np.allclose(image.GetOrigin(), geometry.GetOrigin(), atol=1e-4)
              or not np.allclose(image.GetSpacing(), geometry.GetSpacing(), atol=1e-6)
              or not np.allclose(image.GetDirection(), geometry.GetDirection(), atol=1e-6)):
            raise InputError(f"segment '{name}': its grid differs from the first segment's; "
                             "give all masks on one grid (the reference CT's)")
        mask = sitk.GetArrayViewFromImage(image) != 0
        free = [k for k, layer in enumerate(layers) if not (layer[mask] != 0).any()]
        if free:
            index = free[0]
        else:
            layers.append(np.zeros(mask.shape, dtype=np.uint16))
            index = len(layers) - 1
        value = int(layers[index].max()) + 1
        layers[index][mask] = value
        segments.append({"name": str(name), "layer": index, "value": value})
    images = []
    for layer in layers:
        out = sitk.GetImageFromArray(layer)
        out.CopyInformation(geometry)
        images.append(out)
    return images, segments


def write_job(job_dir, inputs: JobInputs) -> Path:
    """Write ``inputs`` into the job folder ``job_dir`` (created); returns the path of job.json."""
    folder = Path(job_dir)
    cycle = inputs.cycle
    n = len(cycle.timepoints)
    if len(inputs.transforms) != n:
        raise InputError(f"{len(inputs.transforms)} transforms given for {n} time points; "
                         "expected one per time point (None for identity)")
    if not 0 <= inputs.reference_index < n:
        raise InputError(f"reference time point {inputs.reference_index}: the cycle has {n} time points")
    if not inputs.masks:
        raise InputError("no segments: the dosimetry needs a segmentation with at least one segment")
    if not str(getattr(inputs.options, "out_dir", "") or ""):
        raise InputError("no output folder given")
    inputs.options.validate()
    folder.mkdir(parents=True, exist_ok=True)
    timepoints = []
    for index, (tp, transform) in enumerate(zip(cycle.timepoints, inputs.transforms)):
        entry = {name: getattr(tp, name) for name in _TIMEPOINT_FIELDS}
        entry["acquisition_datetime"] = tp.acquisition_datetime.isoformat()
        entry["spect"] = f"tp{index}_spect.nrrd"
        sitk.WriteImage(tp.spect_bqml, str(folder / entry["spect"]), False)
        entry["ct"] = None
        if tp.ct_hu is not None:
            entry["ct"] = f"tp{index}_ct.nrrd"
            sitk.WriteImage(tp.ct_hu, str(folder / entry["ct"]), False)
        entry["transform"] = None
        if transform is not None:
            if not isinstance(transform, sitk.Transform):
                raise InputError(f"time point {index}: transform is a {type(transform).__name__}; "
                                 "expected a SimpleITK transform or None")
            entry["transform"] = f"tp{index}.tfm"
            sitk.WriteTransform(transform, str(folder / entry["transform"]))
        timepoints.append(entry)
    layers, segments = _label_layers(inputs.masks)
    layer_files = []
    for k, image in enumerate(layers):
        layer_files.append(f"structures_{k}.nrrd")
        sitk.WriteImage(image, str(folder / layer_files[-1]), True)
    for segment in segments:
        colour = inputs.colours.get(segment["name"])
        segment["colour"] = [float(c) for c in colour] if colour is not None else None
    options = {f.name: getattr(inputs.options, f.name) for f in fields(inputs.options)}
    options["trial_db"] = None  # the module records after the user has seen the preview
    options["applied_calibration"] = None  # chosen again from calibration_path by the job (run_job)
    job = {
        "schema": SCHEMA,
        "cycle": {**{name: getattr(cycle, name) for name in _CYCLE_FIELDS},
                  "nuclide": cycle.nuclide.name, "injection_datetime": cycle.injection_datetime.isoformat()},
        "timepoints": timepoints,
        "reference_index": int(inputs.reference_index),
        "structures": {"layers": layer_files, "segments": segments, "source": inputs.structures_source},
        "options": options,
        "reference_ct_files": list(inputs.reference_ct_files) if inputs.reference_ct_files is not None else None,
    }
    path = folder / JOB_FILE
    path.write_text(json.dumps(job, indent=1, default=_json_value))
    return path


def _datetime(text, where: str) -> _dt.datetime:
    try:
        value = _dt.datetime.fromisoformat(str(text))
    except ValueError:
        raise InputError(f"{where}: {text!r} is not an ISO date-time") from None
    if value.tzinfo is None:
        raise InputError(f"{where}: {text!r} has no UTC offset")
    return value


def _image(folder: Path, name, where: str) -> sitk.Image:
    path = folder / str(name)
    if not path.is_file():
        raise InputError(f"{path}: missing (named by {where} in {JOB_FILE})")
    try:
        return sitk.ReadImage(str(path))
    except RuntimeError as exc:
        raise InputError(f"{path}: not a readable image ({str(exc).strip().splitlines()[-1]})") from None


def _nuclide(name: str):
    from startnet.physics import LU177

    known = {LU177.name: LU177}
    if name not in known:
        raise InputError(f"{JOB_FILE}: cycle.nuclide {name!r} unknown; expected one of {', '.join(known)}")
    return known[name]


def _options(raw: Mapping[str, Any]):
    from startnet.cycle.run import RunOptions

    known = {f.name for f in fields(RunOptions)}
    unknown = sorted(set(raw) - known)
    if unknown:
        raise InputError(f"{JOB_FILE}: options has unknown fields {', '.join(unknown)}")
    values = dict(raw)
    if values.get("injection_datetime"):
        values["injection_datetime"] = _datetime(values["injection_datetime"], f"{JOB_FILE} options.injection_datetime")
    if values.get("count_rate_kcps") is not None:
        values["count_rate_kcps"] = tuple(float(v) for v in values["count_rate_kcps"])
    options = RunOptions(**values)
    options.validate()
    if not options.out_dir:
        raise InputError(f"{JOB_FILE}: options.out_dir is empty; expected the output folder")
    return options


def read_job(job_dir) -> JobInputs:
    """The in-memory inputs a job folder holds; InputError naming the file that is missing or wrong."""
    folder = Path(job_dir)
    path = folder / JOB_FILE
    if not path.is_file():
        raise InputError(f"{path}: job file not found")
    try:
        job = json.loads(path.read_text())
    except ValueError as exc:
        raise InputError(f"{path}: not readable JSON ({exc})") from None
    if not isinstance(job, dict) or job.get("schema") != SCHEMA:
        raise InputError(f"{path}: schema {job.get('schema') if isinstance(job, dict) else None!r}; expected {SCHEMA}")
    try:
        raw_cycle, raw_tps = job["cycle"], job["timepoints"]
        reference_index = int(job["reference_index"])
        structures, raw_options = job["structures"], job["options"]
        timepoints, transforms = [], []
        for index, entry in enumerate(raw_tps):
            where = f"timepoints[{index}]"
            ct = _image(folder, entry["ct"], f"{where}.ct") if entry.get("ct") else None
            timepoints.append(Timepoint(
                acquisition_datetime=_datetime(entry["acquisition_datetime"], f"{path} {where}"),
                spect_bqml=_image(folder, entry["spect"], f"{where}.spect"), ct_hu=ct,
                **{name: entry[name] for name in _TIMEPOINT_FIELDS}))
            transforms.append(_transform(folder, entry.get("transform"), where))
        cycle = Cycle(timepoints=timepoints, nuclide=_nuclide(raw_cycle["nuclide"]),
                      injection_datetime=_datetime(raw_cycle["injection_datetime"], f"{path} cycle"),
                      **{name: raw_cycle[name] for name in _CYCLE_FIELDS})
        layers = [_image(folder, name, "structures.layers") for name in structures["layers"]]
        masks, colours = {}, {}
        for segment in structures["segments"]:
            layer = layers[int(segment["layer"])]
            masks[segment["name"]] = sitk.Cast(layer == int(segment["value"]), sitk.sitkUInt8)
            if segment.get("colour") is not None:
                colours[segment["name"]] = tuple(float(c) for c in segment["colour"])
        options = _options(raw_options)
    except KeyError as exc:
        raise InputError(f"{path}: missing entry {exc}") from None
    except (TypeError, ValueError, IndexError) as exc:
        raise InputError(f"{path}: malformed entry ({exc})") from None
    if not 0 <= reference_index < len(timepoints):
        raise InputError(f"{path}: reference_index {reference_index}; the job has {len(timepoints)} time points")
    if not masks:
        raise InputError(f"{path}: structures has no segments")
    return JobInputs(cycle, reference_index, transforms, masks, options, colours,
                     job.get("reference_ct_files"), str(structures.get("source") or "segmentation in memory"))


def _transform(folder: Path, name, where: str) -> Optional[sitk.Transform]:
    if not name:
        return None
    path = folder / str(name)
    if not path.is_file():
        raise InputError(f"{path}: missing (named by {where}.transform in {JOB_FILE})")
    try:
        return sitk.ReadTransform(str(path))
    except RuntimeError as exc:
        raise InputError(f"{path}: not a readable transform ({str(exc).strip().splitlines()[-1]})") from None


# ------------------------------------------------------------------------------------------------
# running a job (in the child process)
# ------------------------------------------------------------------------------------------------
def run_job(job_dir, emit: Emit) -> Dict[str, Any]:
    """Run the job in ``job_dir``; every progress step and the staging folder go to ``emit``.

    Returns the ``done`` event's content. Raises what the steps raise (the outputs are then not
    committed).
    """
    from startnet.cycle.chart_data import chart_data
    from startnet.cycle.outputs import prepare_output_dir, write_outputs
    from startnet.cycle.register import registered_from_transforms
    from startnet.cycle.run import analyse_cycle
    from startnet.cycle.segments import structures_from_masks
    from startnet.progress import Progress

    inputs = read_job(job_dir)
    options = inputs.options
    if options.calibration_path:  # the camera's CAL.json (Dosimetry module: calibration folder)
        from startnet.calibration.use import apply_to_loaded_cycle

        apply_to_loaded_cycle(options, inputs.cycle)
    staging = prepare_output_dir(options.out_dir)
    emit({"staging": str(staging)})
    try:
        current = {"stage": ""}

        def report(fraction: float, text: str) -> None:
            emit({"progress": round(float(fraction), 4), "stage": current["stage"], "text": text})

        class _Progress(Progress):
            def stage(self, name: str, message: str = "") -> None:
                current["stage"] = name
                super().stage(name, message)

        progress = _Progress(STAGES, report)
        progress.stage("register", "time points onto the reference grid with the scene's transforms")
        registered = registered_from_transforms(inputs.cycle, inputs.reference_index, inputs.transforms)
        progress.stage("segment", "structures on the reference grid")
        structures = structures_from_masks(inputs.masks, registered.reference_grid, ct_hu=registered.ct_hu,
                                           colours=inputs.colours, source=inputs.structures_source)
        result = analyse_cycle(options, registered, structures, progress,
                               reference_ct_files=inputs.reference_ct_files)
        progress.stage("outputs", "writing results, exports, scene and report")
        charts = Path(job_dir) / CHARTS
        charts.write_text(json.dumps(chart_data(result)))
        result.files = write_outputs(result, options, staging, progress)
        progress.done()
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return {"out_dir": str(Path(options.out_dir)), "results": RESULTS, "charts": str(charts)}


def discard_staging(path) -> bool:
    """Remove a killed job's staging folder (only a folder named like one); True if removed."""
    if not path:
        return False
    folder = Path(path)
    if not folder.name.startswith(STAGING_PREFIX) or not folder.is_dir():
        return False
    shutil.rmtree(folder, ignore_errors=True)
    return not folder.exists()


# ------------------------------------------------------------------------------------------------
# the lines on stdout
# ------------------------------------------------------------------------------------------------
@dataclass
class JobEvent:
    """One stdout line of a job: kind is progress, log, staging, done or error."""

    kind: str
    text: str = ""
    fraction: Optional[float] = None
    stage: str = ""
    value: Any = None


def parse_line(line: str) -> Optional[JobEvent]:
    """The event of one stdout line (None for a blank line); a line that is not ours is a log line."""
    text = line.strip()
    if not text:
        return None
    try:
        data = json.loads(text)
    except ValueError:
        data = None
    if not isinstance(data, dict):
        return JobEvent("log", text=text)
    if "progress" in data:
        try:
            fraction = min(1.0, max(0.0, float(data["progress"])))
        except (TypeError, ValueError):
            return JobEvent("log", text=text)
        return JobEvent("progress", text=str(data.get("text", "")), fraction=fraction, stage=str(data.get("stage", "")))
    if "done" in data and isinstance(data["done"], dict):
        return JobEvent("done", value=data["done"], text=str(data["done"].get("out_dir", "")))
    for kind in ("error", "log", "staging"):
        if kind in data:
            return JobEvent(kind, text=str(data[kind]))
    return JobEvent("log", text=text)


def _emitter(stream) -> Emit:
    def emit(event: Dict[str, Any]) -> None:
        stream.write(json.dumps(event, default=_json_value) + "\n")
        stream.flush()

    return emit


class _LogLines(logging.Handler):
    def __init__(self, emit: Emit):
        super().__init__(logging.INFO)
        self._emit = emit

    def emit(self, record: logging.LogRecord) -> None:
        try:
            self._emit({"log": f"{record.levelname} {record.name}: {record.getMessage()}"})
        except Exception:  # a log line must never break the run
            self.handleError(record)


def _terminate(signum, frame):  # SIGTERM: leave through the cleanup paths (staging removed)
    raise SystemExit(128 + signum)


def main(argv: Optional[Sequence[str]] = None, stdout=None) -> int:
    """``python -m startnet.cycle.job JOB_DIR``: run the job, JSON lines on stdout; the exit code."""
    argv = list(sys.argv[1:] if argv is None else argv)
    emit = _emitter(stdout or sys.stdout)
    if len(argv) != 1:
        emit({"error": "usage: python -m startnet.cycle.job JOB_DIR"})
        return 2
    handler = _LogLines(emit)
    root = logging.getLogger()
    root.addHandler(handler)
    if root.level > logging.INFO or root.level == logging.NOTSET:
        root.setLevel(logging.INFO)
    logging.captureWarnings(True)
    with contextlib.suppress(ValueError):  # ValueError: not the main thread (called from a test)
        signal.signal(signal.SIGTERM, _terminate)
    try:
        done = run_job(argv[0], emit)
    except StartNetError as exc:
        emit({"error": str(exc)})
        return exc.exit_code
    except KeyboardInterrupt:
        emit({"error": "cancelled"})
        return 130
    except Exception as exc:  # a bug: one line for the user, the traceback on stderr
        traceback.print_exc(file=sys.stderr)
        emit({"error": f"internal error: {type(exc).__name__}: {exc}"})
        return 1
    finally:
        root.removeHandler(handler)
    emit({"done": done})
    return 0


if __name__ == "__main__":
    sys.exit(main())
