"""Results shown as a physicist reads them, on a real MRML scene (slicer-core), phantom cycle in memory.

- the dose volume: colour table, window 0..max, lower threshold a few % of max applied (no wash
  over air), UCUM Gy units, ``DicomRtImport.DoseVolume``, and the Study-level subject-hierarchy
  attributes SlicerRT's Isodose/DVH read (``DoseUnitName`` exactly "GY", ``DoseUnitValue``);
- TAC and DVH series: one distinct, non-black colour per structure (left and right kidney share a
  terminology colour), measured points and fit in the same colour;
- showing a run again (in memory or from a job's output folder) adds no node; a structure that
  is gone takes its chart nodes with it.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
import slicer
from phantom_cycle import analyse_in_memory, phantom_job_inputs

from startnet.cycle.chart_data import chart_data
from startnet.cycle.outputs import prepare_output_dir, write_outputs
from startnet.mrml.cycle_scene import show_run_outputs
from startnet.mrml.dose_display import (
    DOSE_UNIT_NAME_ATTRIBUTE,
    DOSE_UNIT_VALUE_ATTRIBUTE,
    dose_colour_table,
    isodose_levels_gy,
)
from startnet.mrml.dosimetry_logic import DosimetrySceneLogic
from startnet.mrml.plots import distinct_colours
from startnet.mrml.scene import new_scene
from startnet.mrml.volumes import sitk_to_volume
from startnet.phantom import PhantomConfig, build_phantom


@pytest.fixture(scope="module")
def phantom():
    return build_phantom(PhantomConfig(preset="small", seed=5))


@pytest.fixture(scope="module")
def result(phantom, tmp_path_factory):
    return analyse_in_memory(phantom_job_inputs(phantom, tmp_path_factory.mktemp("out")))


def _series_colours(scene):
    series = scene.GetNodesByClass("vtkMRMLPlotSeriesNode")
    return {series.GetItemAsObject(i).GetName(): tuple(series.GetItemAsObject(i).GetColor())
            for i in range(series.GetNumberOfItems())}


def _sh(scene):
    return slicer.vtkMRMLSubjectHierarchyNode.GetSubjectHierarchyNode(scene)


def test_dose_display_units_and_slicerrt_attributes(result):
    scene = new_scene()
    shown = DosimetrySceneLogic(scene).show_cycle_result(result)
    dose = shown.dose_node
    assert dose.GetAttribute("DicomRtImport.DoseVolume") == "1"
    units = dose.GetVoxelValueUnits()
    assert (units.GetCodeValue(), units.GetCodingSchemeDesignator()) == ("Gy", "UCUM")
    display = dose.GetDisplayNode()
    max_gy = float(np.max(slicer.util.arrayFromVolume(dose)))
    assert display.GetColorNodeID() == dose_colour_table(scene).GetID()
    assert display.GetApplyThreshold() == 1 and not display.GetAutoThreshold()
    assert 0.02 * max_gy <= display.GetLowerThreshold() <= 0.05 * max_gy
    assert display.GetWindowLevelMin() == pytest.approx(0.0) and display.GetWindowLevelMax() == pytest.approx(max_gy)
    # air (0 Gy) is below the threshold, every kidney voxel above it
    kidney = result.structures.masks["kidney_left"]
    assert float(slicer.util.arrayFromVolume(dose)[kidney].min()) > display.GetLowerThreshold()

    sh = _sh(scene)
    study = sh.GetItemAncestorAtLevel(sh.GetItemByDataNode(dose), "Study")
    assert study
    assert sh.GetItemAttribute(study, DOSE_UNIT_NAME_ATTRIBUTE) == "GY"
    assert sh.GetItemAttribute(study, DOSE_UNIT_VALUE_ATTRIBUTE) == "1.0"
    # how SlicerRT's Isodose module reads it (qSlicerIsodoseModuleWidget: GetAttributeFromItemAncestor)
    assert sh.GetAttributeFromItemAncestor(sh.GetItemByDataNode(dose), DOSE_UNIT_NAME_ATTRIBUTE, "Study") == "GY"


def test_dose_goes_into_the_reference_ct_study(result):
    scene = new_scene()
    sh = _sh(scene)
    patient = sh.CreateSubjectItem(sh.GetSceneItemID(), "SN-005")
    study = sh.CreateStudyItem(patient, "cycle 1")
    ct = sitk_to_volume(scene, result.registered.ct_hu, "CT 24 h")
    sh.CreateItem(study, ct)
    dose = DosimetrySceneLogic(scene).show_cycle_result(result, reference_node=ct).dose_node
    assert sh.GetItemAncestorAtLevel(sh.GetItemByDataNode(dose), "Study") == study
    assert sh.GetItemAttribute(study, DOSE_UNIT_NAME_ATTRIBUTE) == "GY"

    other = new_scene()  # a study that declares other dose units keeps them: our dose gets its own study
    sh2 = _sh(other)
    study2 = sh2.CreateStudyItem(sh2.CreateSubjectItem(sh2.GetSceneItemID(), "SN-005"), "plan")
    sh2.SetItemAttribute(study2, DOSE_UNIT_NAME_ATTRIBUTE, "RELATIVE")
    ct2 = sitk_to_volume(other, result.registered.ct_hu, "CT")
    sh2.CreateItem(study2, ct2)
    dose2 = DosimetrySceneLogic(other).show_cycle_result(result, reference_node=ct2).dose_node
    own = sh2.GetItemAncestorAtLevel(sh2.GetItemByDataNode(dose2), "Study")
    assert own != study2 and sh2.GetItemAttribute(own, DOSE_UNIT_NAME_ATTRIBUTE) == "GY"
    assert sh2.GetItemAttribute(study2, DOSE_UNIT_NAME_ATTRIBUTE) == "RELATIVE"


def test_charts_one_distinct_colour_per_structure(result):
    scene = new_scene()
    shown = DosimetrySceneLogic(scene).show_cycle_result(result)
    colours = _series_colours(scene)
    names = list(result.results["structures"])
    per_structure = [colours[name] for name in names]  # DVH series are named as the structure
    assert all(c != (0.0, 0.0, 0.0) for c in per_structure)
    for i in range(len(per_structure)):
        for j in range(i):
            assert np.linalg.norm(np.subtract(per_structure[i], per_structure[j])) >= 0.3, (names[i], names[j])
    for name in names:
        if f"{name} fit" in colours:
            assert colours[f"{name} measured"] == colours[f"{name} fit"] == colours[name]
    assert shown.nodes["tac_chart"].GetNumberOfPlotSeriesNodes() == 2 * len(names)
    assert shown.nodes["dvh_chart"].GetNumberOfPlotSeriesNodes() == len(names)


def test_showing_again_adds_no_nodes(result, tmp_path):
    scene = new_scene()
    logic = DosimetrySceneLogic(scene)
    first = logic.show_cycle_result(result)
    count = scene.GetNumberOfNodes()
    again = logic.show_cycle_result(result)
    assert scene.GetNumberOfNodes() == count
    assert again.dose_node.GetID() == first.dose_node.GetID()

    # the background job's way: its output folder and charts.json
    options = phantom_options(tmp_path)
    write_outputs(result, options, prepare_output_dir(options.out_dir))
    charts = json.loads(json.dumps(chart_data(result)))
    done = {"out_dir": options.out_dir, "results": "results.json", "charts": str(tmp_path / "charts.json")}
    (tmp_path / "charts.json").write_text(json.dumps(charts))
    shown = logic.show_job_outputs(done)
    assert scene.GetNumberOfNodes() == count  # same roles: the in-memory run's nodes are refilled
    assert shown.dose_node.GetID() == first.dose_node.GetID()
    assert logic.last_results["kidneys_mean_gy"] == result.results["kidneys_mean_gy"]
    assert "kidneys (mass-weighted)" in shown.summary

    del charts["structures"]["liver"]  # a re-run without the liver drops the liver's chart nodes
    show_run_outputs(scene, options.out_dir, charts)
    assert scene.GetNumberOfNodes() == count - 6  # its three tables and three series
    assert not any("liver" in name for name in _series_colours(scene))


def phantom_options(tmp_path):
    from startnet.cycle import RunOptions

    return RunOptions(input_dir="", out_dir=str(tmp_path / "out"), method="led", write_scene=False,
                      write_report=False)


def test_isodose_levels_and_distinct_colours():
    assert isodose_levels_gy(30.0, 6) == [5.0, 10.0, 15.0, 20.0, 25.0]  # round 5 Gy steps below the maximum
    assert isodose_levels_gy(2.3, 4) == [0.5, 1.0, 1.5, 2.0]
    assert isodose_levels_gy(0.0) == []
    kidney = (185 / 255, 102 / 255, 83 / 255)  # the terminology colour both kidneys get
    chosen = distinct_colours(["kidney_left", "kidney_right", "tumour_1"],
                              {"kidney_left": kidney, "kidney_right": kidney, "tumour_1": None})
    assert chosen["kidney_left"] == kidney
    assert chosen["kidney_right"] != kidney and chosen["tumour_1"] not in (kidney, chosen["kidney_right"])
