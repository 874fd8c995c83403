"""Dosimetry module logic on MRML: run one cycle's pipeline and show it in the scene.

The same :func:`startnet.cycle.run.run_cycle` as ``startnet run``; a segmentation node, when
given, is written to a temporary .seg.nrrd in the reference time point's coordinates and used as
``--segmentation``. The result's volumes, structures, tables and TAC/DVH plots are added to the
scene. Tested headless with slicer-core.
"""

from __future__ import annotations

import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Dict, Optional

from startnet.dosimetry.methods import DEFAULT_DOSE_METHOD
from startnet.errors import InputError, OutputError
from startnet.mrml.cycle_scene import add_cycle_nodes
from startnet.mrml.plots import add_chart, add_series
from startnet.mrml.tables import table_from_records


@dataclass
class DosimetryOutputs:
    result: Any
    nodes: Dict[str, Any]
    summary: str

    @property
    def dose_node(self):
        return self.nodes["dose"]

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
    def __init__(self, scene):
        self.scene = scene
        self.last_results: Optional[Dict[str, Any]] = None
        self.last_result = None

    def run_cycle(self, input_dir: str, out_dir: str, *, segmentation_node=None, method: str = DEFAULT_DOSE_METHOD,
                  calibration_cps_per_mbq: Optional[float] = None, reference_timepoint: Optional[int] = None,
                  patient_id: Optional[str] = None, cycle: Optional[int] = None,
                  progress: Optional[Callable[[float, str], None]] = None) -> DosimetryOutputs:
        from startnet.cycle.run import RunOptions, run_cycle
        from startnet.cycle.summary import summary_text

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
        nodes = add_cycle_nodes(self.scene, result)
        nodes.update(self.add_plots(result))
        self.last_result, self.last_results = result, result.results
        return DosimetryOutputs(result, nodes, summary_text(result.results))

    def add_plots(self, result) -> Dict[str, Any]:
        """Plot charts of the TACs (measured and fitted) and the cumulative DVHs."""
        import numpy as np

        analysis, times = result.analysis, result.registered.times_h
        fit_times = np.linspace(0.0, float(max(times)) * 1.25, 100)
        tac_chart = add_chart(self.scene, "Time-activity curves", "Time-activity curves", "hours after injection",
                              "MBq")
        dvh_chart = add_chart(self.scene, "Cumulative DVH", "Cumulative DVH", "Gy", "volume fraction")
        for name, fit in analysis.fits.items():
            measured = table_from_records(self.scene, [{"t_h": float(t), "activity_mbq": float(a)}
                                                       for t, a in zip(times, analysis.activity_mbq[name])],
                                          f"TAC {name} measured")
            fitted = table_from_records(self.scene, [{"t_h": float(t), "activity_mbq": float(a)}
                                                     for t, a in zip(fit_times, fit.evaluate(fit_times))],
                                        f"TAC {name} fit ({fit.model})")
            add_series(self.scene, tac_chart, measured, "t_h", "activity_mbq", f"{name} measured", line=False,
                       marker="circle")
            add_series(self.scene, tac_chart, fitted, "t_h", "activity_mbq", f"{name} fit", marker="none")
            dose, fraction = analysis.dvhs[name]
            dvh = table_from_records(self.scene, [{"dose_gy": float(d), "volume_fraction": float(v)}
                                                  for d, v in zip(dose, fraction)], f"DVH {name}")
            add_series(self.scene, dvh_chart, dvh, "dose_gy", "volume_fraction", name, marker="none")
        return {"tac_chart": tac_chart, "dvh_chart": dvh_chart}

    def record_in_trial(self, db_url: str, patient_id: str, cycle: int) -> str:
        """Record the last run's kidney dose as this cycle; returns the next-cycle advice."""
        from startnet.cycle.trial_record import record_cycle_results
        from startnet.mrml.trial_logic import recommendation_text

        if self.last_result is None:
            raise InputError("run the dosimetry of this cycle first")
        cycle_data = self.last_result.registered.cycle
        status, warnings = record_cycle_results(db_url, patient_id, int(cycle), cycle_data.injection_datetime.date(),
                                                cycle_data.injected_activity_mbq / 1000.0, self.last_results)
        return "".join(f"Warning: {w}.\n" for w in warnings) + recommendation_text(status)
