"""The cycle in the scene (issue 15 items 1.1, 1.2, 1.4): load from DICOM file lists into the subject
hierarchy, register with transform nodes, dose from the scene's current transforms and segmentation,
survive .mrb save/reload, and re-run without adding nodes. Real MRML (slicer-core), phantom DICOM.
"""

from __future__ import annotations

import json
import random
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk

from startnet.cycle.run import RunOptions, run_cycle
from startnet.errors import InputError
from startnet.mrml import cycle_state as state
from startnet.mrml.cycle_hierarchy import item_level, item_path
from startnet.mrml.cycle_inputs import cycle_inputs_from_scene
from startnet.mrml.cycle_load import PET_HEAT_COLOR_NODE_ID
from startnet.mrml.cycle_logic import CycleSceneLogic
from startnet.mrml.scene import new_scene, read_mrb, save_mrb
from startnet.mrml.scene_dosimetry import dosimetry_from_scene
from startnet.mrml.segmentations import masks_to_segmentation
from startnet.mrml.selftest import registration_errors
from startnet.mrml.tables import records_from_table
from startnet.phantom import PhantomConfig, build_phantom, write_phantom_dicom

KIDNEY_MATCH_REL = 0.005


def _files(folder: Path):
    return [str(p) for p in sorted(Path(folder).rglob("*")) if p.is_file()]


def _node_counts(scene) -> Counter:
    return Counter(scene.GetNthNode(i).GetClassName() for i in range(scene.GetNumberOfNodes()))


def _options(folder, **kwargs) -> RunOptions:
    return RunOptions(input_dir="", out_dir=str(folder), write_scene=False, write_report=False, **kwargs)


@pytest.fixture(scope="module")
def phantom_data(tmp_path_factory):
    phantom = build_phantom(PhantomConfig(preset="small", seed=5))
    files = write_phantom_dicom(phantom, tmp_path_factory.mktemp("phantom"))
    return phantom, files


@pytest.fixture(scope="module")
def cli_result(phantom_data, tmp_path_factory):
    """What ``startnet run`` gives on the same folder and segmentation."""
    _, files = phantom_data
    options = RunOptions(input_dir=str(files.dicom_dir), out_dir=str(tmp_path_factory.mktemp("run")),
                         segmentation_path=str(files.segmentation_nrrd), write_scene=False, write_report=False)
    return run_cycle(options).results


@pytest.fixture(scope="module")
def scene_cycle(phantom_data):
    """A scene loaded from a shuffled file list, registered, with the phantom's segmentation."""
    phantom, files = phantom_data
    paths = _files(files.dicom_dir)
    random.Random(3).shuffle(paths)
    scene = new_scene()
    logic = CycleSceneLogic(scene)
    logic.load_cycle(paths)
    logic.register()
    labels = sitk.GetArrayFromImage(phantom.labels)
    segmentation = masks_to_segmentation(scene, {name: labels == value for value, name in phantom.label_names.items()},
                                         phantom.labels, "Structures")
    state.set_segmentation_node(logic.cycle_node, segmentation)
    return scene, logic


def test_load_from_a_shuffled_file_list_into_the_subject_hierarchy(phantom_data):
    phantom, files = phantom_data
    paths = _files(files.dicom_dir)
    random.Random(1).shuffle(paths)
    scene = new_scene()
    logic = CycleSceneLogic(scene)
    summary = logic.load_cycle(paths)
    assert "4 time points" in summary and "reference 24.0 h" in summary
    node = logic.cycle_node
    assert node.GetAttribute("startnet.role") == "cycle" and state.timepoint_count(node) == 4
    assert node.GetAttribute("startnet.patient_id") == phantom.config.patient_id
    assert float(node.GetAttribute("startnet.injected_activity_mbq")) == pytest.approx(7400.0)
    assert json.loads(node.GetAttribute("startnet.hours_post_injection")) == pytest.approx([4, 24, 96, 168], abs=1e-3)
    for index, hours in enumerate((4.0, 24.0, 96.0, 168.0)):
        spect = state.timepoint_node(node, "spect", index)
        ct = state.timepoint_node(node, "ct", index)
        assert item_path(scene, spect) == [phantom.config.patient_id, "Cycle 2025-05-12 (7400 MBq Lu-177)",
                                           f"{hours:.1f} h p.i.", f"SPECT {hours:.1f} h (Bq/mL)"]
        assert [item_level(scene, spect, depth) for depth in (1, 2, 3)] == ["Folder", "Study", "Patient"]
        assert item_path(scene, ct)[:-1] == item_path(scene, spect)[:-1]
        assert spect.GetVoxelValueUnits().GetCodeValue() == "Bq/ml"
        assert spect.GetVoxelValueUnits().GetCodingSchemeDesignator() == "UCUM"
        assert ct.GetVoxelValueUnits().GetCodeValue() == "[hnsf'U]"
        assert float(spect.GetAttribute("startnet.hours_post_injection")) == pytest.approx(hours, abs=1e-3)
        display = spect.GetDisplayNode()
        assert display.GetColorNodeID() == PET_HEAT_COLOR_NODE_ID and not display.GetAutoWindowLevel()
        assert display.GetWindowLevelMax() > 0
        assert len(state.timepoint_metadata(node, index)["ct_files"]) == phantom.config.ct_grid.size_xyz[2]
    assert logic.loaded.background_node is state.timepoint_node(node, "ct", 1)
    assert logic.loaded.foreground_node is state.timepoint_node(node, "spect", 1)
    # loading the same cycle again (here from its folder) refills the same nodes
    before = _node_counts(scene)
    logic.load_cycle(str(files.dicom_dir))
    assert _node_counts(scene) == before and state.find_cycle_nodes(scene) == [node]


def test_registration_applies_one_transform_node_to_ct_and_spect(scene_cycle, phantom_data):
    phantom, _ = phantom_data
    scene, logic = scene_cycle
    node = logic.cycle_node
    for index in range(4):
        transform = state.timepoint_node(node, "transform", index)
        assert transform is not None and transform.IsLinear()
        assert state.timepoint_node(node, "ct", index).GetParentTransformNode() is transform
        assert state.timepoint_node(node, "spect", index).GetParentTransformNode() is transform
        assert item_path(scene, transform)[2] == item_path(scene, state.timepoint_node(node, "spect", index))[2]
    errors = registration_errors(scene, phantom)
    assert len(errors) == 3 and all(row["error_mm"] < 1.0 for row in errors)
    rows = records_from_table(state.quality_table_node(node))
    assert len(rows) == 4 and sum(row["reference"] == "True" for row in rows) == 1
    before = _node_counts(scene)
    logic.register()
    assert _node_counts(scene) == before  # refilled, not added


def test_dosimetry_from_the_scene_equals_startnet_run(scene_cycle, cli_result, tmp_path):
    scene, logic = scene_cycle
    result = dosimetry_from_scene(scene, _options(tmp_path / "out"))
    scene_gy, cli_gy = result.results["kidneys_mean_gy"], cli_result["kidneys_mean_gy"]
    print(f"kidney mean dose: scene {scene_gy:.4f} Gy, startnet run {cli_gy:.4f} Gy")
    assert scene_gy == pytest.approx(cli_gy, rel=KIDNEY_MATCH_REL)
    for name in ("kidney_left", "kidney_right"):
        assert result.results["structures"][name]["mean_gy"] == pytest.approx(
            cli_result["structures"][name]["mean_gy"], rel=KIDNEY_MATCH_REL)
    assert all(entry["registration"]["transform"] == "supplied" for entry in result.results["timepoints"])
    assert (tmp_path / "out" / "results.json").is_file()


def test_the_background_job_from_the_scene_equals_the_in_process_dosimetry(scene_cycle, tmp_path):
    """What the Dosimetry module runs: the scene's inputs written as a job, run by a real child process."""
    import time

    from startnet.cycle.job import write_job
    from startnet.cycle.job_process import start_job
    from startnet.mrml.dosimetry_job import job_inputs_from_scene

    scene, _ = scene_cycle
    in_process = dosimetry_from_scene(scene, _options(tmp_path / "in_process")).results
    write_job(tmp_path / "job", job_inputs_from_scene(scene, _options(tmp_path / "job_out")))
    job = start_job(tmp_path / "job", package_folder=Path(state.__file__).parents[2])
    started, events = time.monotonic(), []
    while not job.finished:
        events += job.poll()
        assert time.monotonic() - started < 900, "job did not finish"
        time.sleep(0.1)
    events += job.poll()
    assert events[-1].kind == "done", [e.text for e in events if e.kind == "error"]
    from_job = json.loads((tmp_path / "job_out" / "results.json").read_text())
    for name in ("kidney_left", "kidney_right"):
        assert from_job["structures"][name]["mean_gy"] == pytest.approx(
            in_process["structures"][name]["mean_gy"], rel=1e-6), name
    assert from_job["kidneys_mean_gy"] == pytest.approx(in_process["kidneys_mean_gy"], rel=1e-6)


def test_segments_made_on_the_cycles_ct_are_linked_to_the_cycle(scene_cycle, phantom_data):
    """The Dosimetry module finds the reference SPECT and the segmentation in the cycle state."""
    from startnet.mrml.segmentation_logic import SegmentationSceneLogic

    scene, logic = scene_cycle
    _, files = phantom_data
    cycle_node = logic.cycle_node
    original = state.segmentation_node(cycle_node)
    reference = state.reference_index(cycle_node)
    assert state.reference_spect_node(cycle_node) is state.timepoint_node(cycle_node, "spect", reference)
    ct_node = state.timepoint_node(cycle_node, "ct", reference)
    assert state.cycle_node_of_volume(scene, ct_node) is cycle_node
    assert state.cycle_node_of_volume(scene, original) is None  # not a time point's volume
    imported = scene.AddNewNodeByClass("vtkMRMLSegmentationNode", "Imported")
    try:
        SegmentationSceneLogic(scene).import_segmentation(str(files.segmentation_nrrd), ct_node, imported)
        assert state.segmentation_node(cycle_node) is imported
    finally:
        state.set_segmentation_node(cycle_node, original)
        scene.RemoveNode(imported)


def _kidney_activity_mbq(result, index):
    activity = sitk.GetArrayViewFromImage(result.registered.activity_bqml[index])
    kidneys = np.zeros(activity.shape, bool)
    for name in ("kidney_left", "kidney_right"):
        kidneys |= np.asarray(result.structures.masks[name]) > 0
    return float(activity[kidneys].sum())


def test_a_transform_corrected_by_hand_changes_the_dose_and_restoring_it_restores_it(scene_cycle, tmp_path):
    scene, logic = scene_cycle
    node = logic.cycle_node
    baseline = dosimetry_from_scene(scene, _options(tmp_path / "a"), write=False)
    transform = state.timepoint_node(node, "transform", 2)  # 96 h
    matrix = transform.GetMatrixTransformFromParent()
    original = matrix.GetElement(0, 3)
    matrix.SetElement(0, 3, original + 5.0)  # 5 mm shift to the patient's left (RAS x), as in the Transforms module
    transform.SetMatrixTransformFromParent(matrix)
    shifted = dosimetry_from_scene(scene, _options(tmp_path / "b"), write=False)
    matrix.SetElement(0, 3, original)
    transform.SetMatrixTransformFromParent(matrix)
    restored = dosimetry_from_scene(scene, _options(tmp_path / "c"), write=False)
    before, after = _kidney_activity_mbq(baseline, 2), _kidney_activity_mbq(shifted, 2)
    gy = [r.results["kidneys_mean_gy"] for r in (baseline, shifted, restored)]
    print(f"96 h kidney activity {before:.4g} -> {after:.4g} (5 mm shift); kidney mean dose {gy} Gy")
    assert abs(after - before) > 0.01 * before
    assert abs(gy[1] - gy[0]) > 0.002 * gy[0]
    for other in (0, 1, 3):  # the other time points did not move
        assert _kidney_activity_mbq(shifted, other) == pytest.approx(_kidney_activity_mbq(baseline, other), rel=1e-9)
    assert gy[2] == pytest.approx(gy[0], rel=1e-9)
    translation = shifted.results["timepoints"][2]["registration"]["translation_mm"]
    base_translation = baseline.results["timepoints"][2]["registration"]["translation_mm"]
    assert translation[0] - base_translation[0] == pytest.approx(-5.0, abs=0.01)  # RAS +x = LPS -x


def test_save_mrb_reload_and_dose_from_the_reloaded_scene(scene_cycle, tmp_path):
    scene, _ = scene_cycle
    expected = dosimetry_from_scene(scene, _options(tmp_path / "a"), write=False).results["kidneys_mean_gy"]
    path = save_mrb(scene, tmp_path / "cycle.mrb")
    reloaded = read_mrb(path)
    node = state.find_cycle_node(reloaded)
    assert node is not None and state.timepoint_count(node) == 4 and state.segmentation_node(node) is not None
    inputs = cycle_inputs_from_scene(reloaded)
    assert inputs.reference_index == 1 and inputs.transforms[1] is None
    assert all(t is not None for i, t in enumerate(inputs.transforms) if i != 1)
    got = dosimetry_from_scene(reloaded, _options(tmp_path / "b"), write=False).results["kidneys_mean_gy"]
    print(f"kidney mean dose: scene {expected:.6f} Gy, reloaded .mrb {got:.6f} Gy")
    assert got == pytest.approx(expected, rel=1e-6)


def test_rerunning_load_register_dosimetry_adds_no_nodes(scene_cycle, phantom_data, tmp_path):
    scene, logic = scene_cycle
    _, files = phantom_data
    dosimetry_from_scene(scene, _options(tmp_path / "a"), write=False)
    before = _node_counts(scene)
    logic.load_cycle(_files(files.dicom_dir))
    logic.register()
    dosimetry_from_scene(scene, _options(tmp_path / "b"), write=False)
    assert _node_counts(scene) == before


def test_clear_errors_without_a_cycle_or_segmentation(tmp_path):
    scene = new_scene()
    with pytest.raises(InputError, match="no START-NET cycle in the scene"):
        dosimetry_from_scene(scene, _options(tmp_path))
    with pytest.raises(InputError, match="load a cycle|no START-NET cycle"):
        CycleSceneLogic(scene).register()
