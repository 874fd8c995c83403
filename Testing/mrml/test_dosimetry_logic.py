"""Dosimetry module logic on a real MRML scene (slicer-core) with the phantom patient."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import pytest
import slicer

from startnet.errors import InputError
from startnet.mrml.dosimetry_logic import DosimetrySceneLogic
from startnet.mrml.scene import new_scene
from startnet.mrml.segmentations import segment_names
from startnet.mrml.tables import records_from_table
from startnet.mrml.trial_logic import TrialSceneLogic
from startnet.phantom import PhantomConfig, build_phantom, write_phantom_dicom


def _load_segmentation(scene, path: Path):
    node = scene.AddNewNodeByClass("vtkMRMLSegmentationNode", "Structures")
    storage = slicer.vtkMRMLSegmentationStorageNode()
    storage.SetFileName(str(path))
    assert storage.ReadData(node)
    return node


def test_run_cycle_with_a_segmentation_node_and_record_it(tmp_path):
    phantom = build_phantom(PhantomConfig(preset="small", seed=17))
    files = write_phantom_dicom(phantom, tmp_path / "phantom")
    scene = new_scene()
    segmentation = _load_segmentation(scene, files.segmentation_nrrd)
    assert {"kidney_left", "kidney_right", "liver"} <= set(segment_names(segmentation))
    logic = DosimetrySceneLogic(scene)
    with pytest.raises(InputError, match="run the dosimetry"):
        logic.record_in_trial(f"sqlite:///{tmp_path / 'trial.db'}", "SN-017", 1)
    fractions = []
    outputs = logic.run_cycle(str(files.dicom_dir), str(tmp_path / "out"), segmentation_node=segmentation,
                              reference_timepoint=phantom.reference_index, progress=lambda f, m: fractions.append(f))
    assert fractions == sorted(fractions) and fractions[-1] == pytest.approx(1.0)
    rows = {r["structure"]: r for r in records_from_table(outputs.results_table)}
    truth = json.loads(Path(files.truth_json).read_text())["structures"]
    for kidney in ("kidney_left", "kidney_right"):
        assert rows[kidney]["mean_gy"] == pytest.approx(outputs.result.results["structures"][kidney]["mean_gy"])
        assert rows[kidney]["mean_gy"] == pytest.approx(truth[kidney]["mean_dose_gy"], rel=0.25)
    assert outputs.dose_node.GetAttribute("DicomRtImport.DoseVolume") == "1"
    charts = scene.GetNodesByClass("vtkMRMLPlotChartNode")
    assert charts.GetNumberOfItems() == 2
    assert "kidneys (mass-weighted)" in outputs.summary
    assert (tmp_path / "out" / "results.json").is_file()

    trial = TrialSceneLogic(scene)
    url = f"sqlite:///{tmp_path / 'trial.db'}"
    trial.initialise(url)  # creating the database is the administrator's step; enrol does not create it
    trial.enroll(url, "SN-017", site="Karolinska", arm=2, enrolled=phantom.injection_datetime.date().isoformat())
    advice = logic.record_in_trial(url, "SN-017", 1)
    assert "Next cycle 2 allowed" in advice
    assert trial.status(url, "SN-017")["cumulative_kidney_gy"] == pytest.approx(
        outputs.result.results["kidneys_mean_gy"])
    # the record points at the run folder: the accumulation panel offers the patient's recorded cycles
    folders, missing = trial.recorded_run_folders(url, "SN-017")
    assert folders == [str(tmp_path / "out")] and missing == []
    trial.record_cycle(url, "SN-017", 2, (phantom.injection_datetime.date() + dt.timedelta(weeks=10)).isoformat(),
                       7.4, 3.9)
    folders, missing = trial.recorded_run_folders(url, "SN-017")
    assert folders == [str(tmp_path / "out")] and len(missing) == 1 and missing[0].startswith("cycle 2:")


def test_missing_input_folder_is_refused(tmp_path):
    logic = DosimetrySceneLogic(new_scene())
    with pytest.raises(InputError, match="does not exist"):
        logic.run_cycle(str(tmp_path / "nowhere"), str(tmp_path / "out"))
