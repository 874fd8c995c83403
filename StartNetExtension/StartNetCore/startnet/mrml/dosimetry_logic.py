"""Dosimetry module logic on MRML: show a cycle's run in the scene, preview and record it in the trial.

The module runs the cycle in a background job (:mod:`startnet.cycle.job`) and shows its output
folder (:meth:`DosimetrySceneLogic.show_job_outputs`); a run held in memory is shown with
:meth:`DosimetrySceneLogic.show_cycle_result`, and :meth:`DosimetrySceneLogic.run_cycle` is
``startnet run`` in this process (tests, scripts). Showing again refills the same nodes
(:mod:`startnet.mrml.run_nodes`). Tested headless with slicer-core.
"""

from __future__ import annotations

import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional

from startnet.dosimetry.methods import DEFAULT_DOSE_METHOD
from startnet.errors import InputError, OutputError
from startnet.mrml.cycle_scene import add_cycle_nodes


@dataclass
class DosimetryOutputs:
    result: Any
    nodes: Dict[str, Any]
    summary: str

    @property
    def dose_node(self):
        return self.nodes["dose"]

    @property
    def results(self) -> Dict[str, Any]:
        return self.result.results if self.result is not None else self.nodes["results"]

    @property
    def ct_node(self):
        return self.nodes.get("ct")

    @property
    def results_table(self):
        return self.nodes["results_table"]


def write_segmentation_node(segmentation_node, path: Path) -> Path:
    """Save a segmentation node as .seg.nrrd (Slicer's own writer)."""
    import slicer

    storage = slicer.vtkMRMLSegmentationStorageNode()
    storage.SetFileName(str(path))
    if not storage.WriteData(segmentation_node):
        raise OutputError(f"could not write segmentation '{segmentation_node.GetName()}' to {path}")
    return path


class DosimetrySceneLogic:
    """The Dosimetry module's scene operations: show a run (in memory or a job's output folder),
    preview and record it in the trial."""

    def __init__(self, scene):
        self.scene = scene
        self.last_results: Optional[Dict[str, Any]] = None
        self.last_result = None
        self.last_out_dir: Optional[str] = None  # the last run's output folder: its results.json is recorded

    def run_cycle(self, input_dir: str, out_dir: str, *, segmentation_node=None, method: str = DEFAULT_DOSE_METHOD,
                  calibration_cps_per_mbq: Optional[float] = None, reference_timepoint: Optional[int] = None,
                  patient_id: Optional[str] = None, cycle: Optional[int] = None,
                  progress: Optional[Callable[[float, str], None]] = None) -> DosimetryOutputs:
        """``startnet run`` in this process from a DICOM folder (tests, scripts); results shown in the scene."""
        from startnet.cycle.run import RunOptions, run_cycle

        if not input_dir or not Path(input_dir).is_dir():
            raise InputError(f"DICOM folder {input_dir!r} does not exist")
        temporary = Path(tempfile.mkdtemp(prefix="startnet-seg-"))
        try:
            segmentation_path = None
            if segmentation_node is not None and segmentation_node.GetSegmentation().GetNumberOfSegments() > 0:
                segmentation_path = str(write_segmentation_node(segmentation_node, temporary / "structures.seg.nrrd"))
            options = RunOptions(input_dir=str(input_dir), out_dir=str(out_dir), segmentation_path=segmentation_path,
                                 reference_timepoint=reference_timepoint,
                                 calibration_cps_per_mbq=calibration_cps_per_mbq, method=method,
                                 patient_id=patient_id, cycle=cycle, write_scene=False)
            result = run_cycle(options, progress)
        finally:
            shutil.rmtree(temporary, ignore_errors=True)
        return self.show_cycle_result(result, include_inputs=True)

    def show_cycle_result(self, result, *, include_inputs: bool = False, reference_node=None) -> DosimetryOutputs:
        """A run held in memory in the scene (dose, tables, charts); a re-run refills the same nodes."""
        from startnet.cycle.chart_data import chart_data
        from startnet.cycle.summary import summary_text
        from startnet.mrml.result_charts import CHART_ROLES, show_result_charts
        from startnet.mrml.run_nodes import RunNodes

        nodes = RunNodes(self.scene)
        shown = add_cycle_nodes(self.scene, result, include_inputs=include_inputs, nodes=nodes,
                                reference_node=reference_node)
        shown.update(show_result_charts(self.scene, chart_data(result), nodes))
        nodes.remove_unused(CHART_ROLES)
        self.last_result, self.last_results = result, result.results
        written = [Path(f) for f in (result.files or {}).values() if Path(f).name == "results.json"]
        self.last_out_dir = str(written[0].parent) if written else None
        return DosimetryOutputs(result, shown, summary_text(result.results))

    def show_job_outputs(self, done: Dict[str, Any], *, reference_node=None, colours=None) -> DosimetryOutputs:
        """A finished background job (its ``done`` event: out_dir, results, charts) in the scene."""
        import json

        from startnet.cycle.summary import summary_text
        from startnet.mrml.cycle_scene import show_run_outputs

        charts = None
        charts_path = done.get("charts")
        if charts_path and Path(charts_path).is_file():
            charts = json.loads(Path(charts_path).read_text())
        shown = show_run_outputs(self.scene, done["out_dir"], charts, reference_node=reference_node, colours=colours)
        self.last_result, self.last_results = None, shown["results"]
        self.last_out_dir = str(done["out_dir"])
        return DosimetryOutputs(None, shown, summary_text(shown["results"]))

    def _cycle_record(self):
        """(injection date, injected activity in GBq) of the last run, as record_cycle_results takes them."""
        import datetime as _dt

        if self.last_results is None:
            raise InputError("run the dosimetry of this cycle first")
        if self.last_result is not None:
            cycle_data = self.last_result.registered.cycle
            return cycle_data.injection_datetime.date(), cycle_data.injected_activity_mbq / 1000.0
        try:
            date = _dt.datetime.fromisoformat(str(self.last_results["injection_datetime"])).date()
            return date, float(self.last_results["injected_activity_mbq"]) / 1000.0
        except (KeyError, TypeError, ValueError):
            raise InputError("the last run's results.json has no injection_datetime / injected_activity_mbq") from None

    def preview_trial_record(self, patient_id: str, cycle: int) -> List[str]:
        """Warnings of recording the last run as ``cycle`` of ``patient_id`` (nothing opened or written),
        with the same activity :meth:`record_in_trial` records."""
        from startnet.trial.preview import preview_cycle_results

        _, activity_gbq = self._cycle_record()
        return preview_cycle_results(self.last_results, patient_id, int(cycle), activity_gbq,
                                     "Dosimetry module (Slicer)")

    def record_in_trial(self, db_url: str, patient_id: str, cycle: int) -> str:
        """Record the last run's kidney dose as this cycle; returns the next-cycle advice."""
        from startnet.cycle.trial_record import record_cycle_results
        from startnet.mrml.trial_logic import recommendation_text

        date, activity_gbq = self._cycle_record()
        results_path = str(Path(self.last_out_dir) / "results.json") if self.last_out_dir else None
        status, warnings = record_cycle_results(db_url, patient_id, int(cycle), date, activity_gbq, self.last_results,
                                                results_path=results_path)
        return "".join(f"Warning: {w}.\n" for w in warnings) + recommendation_text(status)
