"""TrialTracker logic on a real MRML scene (slicer-core) with a SQLite trial database."""

from __future__ import annotations

import math

import pytest

from startnet.errors import InputError, TrialRuleError
from startnet.mrml.scene import new_scene
from startnet.mrml.tables import records_from_table
from startnet.mrml.trial_logic import TrialSceneLogic


@pytest.fixture()
def logic_and_db(tmp_path):
    logic = TrialSceneLogic(new_scene())
    url = f"sqlite:///{tmp_path / 'trial.db'}"
    logic.enroll(url, "SN-900", site="Uppsala", arm=2, enrolled="2026-01-05")
    return logic, url


def test_next_cycle_after_28_gy_is_5_gbq(logic_and_db):
    logic, url = logic_and_db
    cycles = [("2026-01-12", 7.5, 5.0), ("2026-03-23", 7.5, 5.0), ("2026-06-01", 7.5, 5.0),
              ("2026-08-10", 7.5, 5.0), ("2026-10-19", 7.5, 5.0), ("2026-12-28", 7.5, 3.0)]
    for number, (date, activity, dose) in enumerate(cycles, start=1):
        logic.record_cycle(url, "SN-900", number, date, activity, dose)
    table, recommendation = logic.show_patient(url, "SN-900")
    rows = records_from_table(table)
    assert [r["cycle"] for r in rows] == [1.0, 2.0, 3.0, 4.0, 5.0, 6.0]
    assert rows[-1]["cumulative_kidney_gy"] == pytest.approx(28.0)
    assert "5.00 GBq" in recommendation and "remaining 2.00 Gy" in recommendation
    # both planning numbers and the last-cycle flag (issue 10), computed by startnet.trial.planning
    status = logic.status(url, "SN-900")["next_cycle"]
    assert f"{100 * status['probability_limit_exceeded']:.1f} % at 5.00 GBq" in recommendation
    assert f"at most {math.floor(status['max_activity_gbq_95'] * 100 + 1e-6) / 100:.2f} GBq keeps it <= 5 %" \
        in recommendation
    assert "Last cycle expected" in recommendation
    charts = logic.scene.GetNodesByClass("vtkMRMLPlotChartNode")
    assert charts.GetNumberOfItems() == 1
    assert charts.GetItemAsObject(0).GetNumberOfPlotSeriesNodes() == 3  # cumulative, limit, projected
    # showing the patient again replaces the plot instead of piling up nodes
    series_before = logic.scene.GetNodesByClass("vtkMRMLPlotSeriesNode").GetNumberOfItems()
    logic.show_patient(url, "SN-900", table_node=table)
    assert logic.scene.GetNodesByClass("vtkMRMLPlotChartNode").GetNumberOfItems() == 1
    assert logic.scene.GetNodesByClass("vtkMRMLPlotSeriesNode").GetNumberOfItems() == series_before


def test_patient_list_and_refusals(logic_and_db):
    logic, url = logic_and_db
    logic.record_cycle(url, "SN-900", 1, "2026-01-12", 7.4, 4.0)
    rows = logic.list_patients(url)
    assert rows == [{"patient_id": "SN-900", "site": "Uppsala", "arm": 2, "cycles": 1,
                     "cumulative_kidney_gy": 4.0, "next_allowed": True}]
    with pytest.raises(TrialRuleError, match="already recorded"):
        logic.record_cycle(url, "SN-900", 1, "2026-01-12", 7.4, 4.0)
    with pytest.raises(InputError, match="YYYY-MM-DD"):
        logic.record_cycle(url, "SN-900", 2, "12/03/2026", 7.4, 4.0)
    with pytest.raises(InputError, match="kidney dose"):
        logic.record_cycle(url, "SN-900", 2, "2026-03-23", 7.4, 0.0)


def test_record_from_a_dosimetry_result_keeps_sides_uncertainty_and_warnings(logic_and_db):
    logic, url = logic_and_db
    results = {"patient_id": "PACS-4711", "cycle": 1, "injected_activity_mbq": 7400.0, "kidneys_mean_gy": 4.2,
               "kidneys_uncertainty_pct": 12.5, "kidneys_bed_gy": 4.6,
               "structures": {"kidney_left": {"mean_gy": 4.4, "mass_g": 140.0},
                              "kidney_right": {"mean_gy": 4.0, "mass_g": 140.0}}}
    advice = logic.record_cycle_from_results(url, "SN-900", 1, "2026-01-12", 7.4, results)
    assert advice.startswith("Warning:") and "PACS-4711" in advice  # the DICOM patient ID differs
    cycle = logic.status(url, "SN-900")["cycles"][0]
    assert (cycle["kidney_gy"], cycle["kidney_left_gy"], cycle["kidney_right_gy"]) == (4.2, 4.4, 4.0)
    assert cycle["kidney_uncertainty_pct"] == 12.5 and cycle["kidney_bed_gy"] == 4.6
    with pytest.raises(InputError, match="cycle 1 is not 2"):
        logic.record_cycle_from_results(url, "SN-900", 2, "2026-03-23", 7.4, results)
