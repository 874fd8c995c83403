"""TrialTracker logic on a real MRML scene (slicer-core) with a SQLite trial database."""

from __future__ import annotations

import datetime as dt
import math
import os

import pytest
import slicer

from startnet.errors import InputError, TrialRuleError
from startnet.mrml.layout import show_chart_and_table
from startnet.mrml.scene import new_scene
from startnet.mrml.tables import records_from_table
from startnet.mrml.trial_logic import (
    LIMIT_COLOUR,
    TrialSceneLogic,
    forget_scene_secrets,
    planning_numbers,
)


@pytest.fixture()
def logic_and_db(tmp_path):
    logic = TrialSceneLogic(new_scene())
    url = f"sqlite:///{tmp_path / 'trial.db'}"
    logic.initialise(url)  # the administrator's `startnet trial --db URL init`
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


SIX_CYCLES = [("2026-01-12", 7.5, 5.0), ("2026-03-23", 7.5, 5.0), ("2026-06-01", 7.5, 5.0),
              ("2026-08-10", 7.5, 5.0), ("2026-10-19", 7.5, 5.0), ("2026-12-28", 7.5, 3.0)]


def _record(logic, url, cycles, patient="SN-900"):
    for number, (date, activity, dose) in enumerate(cycles, start=1):
        logic.record_cycle(url, patient, number, date, activity, dose)


def _series(chart):
    return [chart.GetNthPlotSeriesNode(i) for i in range(chart.GetNumberOfPlotSeriesNodes())]


def test_chart_has_coloured_series_and_the_limit_line(logic_and_db):
    logic, url = logic_and_db
    _record(logic, url, SIX_CYCLES[:2])
    table, chart, status = logic.show_patient_nodes(url, "SN-900")
    series = {s.GetName(): s for s in _series(chart)}
    assert len(series) == 3  # cumulative, limit, projected next cycle
    for s in series.values():  # plot series are black unless coloured (vtkMRMLPlotSeriesNode default)
        assert tuple(s.GetColor()) != (0.0, 0.0, 0.0), s.GetName()
        assert s.GetTableNode() is not None
    assert len({tuple(s.GetColor()) for s in series.values()}) == 3
    limit = series["limit 30 Gy"]
    assert tuple(limit.GetColor()) == pytest.approx(LIMIT_COLOUR)
    assert limit.GetLineStyle() == limit.LineStyleDash
    limit_rows = records_from_table(limit.GetTableNode())
    assert {r["limit_gy"] for r in limit_rows} == {status["limit_gy"]} == {30.0}
    assert [r["cycle"] for r in limit_rows] == [0.0, 3.0]  # spans the recorded cycles and the next one
    cumulative = series["cumulative kidney dose"]
    assert cumulative.GetTableNode() is table and cumulative.GetYColumnName() == "cumulative_kidney_gy"
    projected = records_from_table(series["projected next cycle (max activity)"].GetTableNode())
    assert projected[0] == {"cycle": 2.0, "projected_cumulative_gy": pytest.approx(10.0)}
    assert projected[1]["cycle"] == 3.0 and projected[1]["projected_cumulative_gy"] <= 30.0 + 1e-9


def test_chart_and_table_are_shown_together_in_the_layout(logic_and_db):
    logic, url = logic_and_db
    _record(logic, url, SIX_CYCLES[:1])
    table, chart, _ = logic.show_patient_nodes(url, "SN-900")
    scene = logic.scene
    layout = scene.AddNode(slicer.vtkMRMLLayoutNode())
    layout.SetViewArrangement(layout.SlicerLayoutConventionalView)
    app_logic = slicer.vtkMRMLApplicationLogic()
    app_logic.SetMRMLScene(scene)
    show_chart_and_table(app_logic, chart, table)
    assert layout.GetViewArrangement() == layout.SlicerLayoutFourUpPlotTableView  # plot view + table view
    selection = app_logic.GetSelectionNode()
    assert selection.GetActivePlotChartID() == chart.GetID()
    assert selection.GetActiveTableID() == table.GetID()


def test_showing_again_replaces_nodes_also_from_a_new_logic(logic_and_db):
    logic, url = logic_and_db
    _record(logic, url, SIX_CYCLES[:2])
    logic.show_patient(url, "SN-900")
    nodes = logic.scene.GetNumberOfNodes()
    # the module was reloaded (or the scene saved and reopened): a new logic, no table node passed
    again = TrialSceneLogic(logic.scene)
    table, recommendation = again.show_patient(url, "SN-900")
    assert logic.scene.GetNumberOfNodes() == nodes
    assert logic.scene.GetNodesByClass("vtkMRMLPlotChartNode").GetNumberOfItems() == 1
    assert logic.scene.GetNodesByClass("vtkMRMLTableNode").GetNumberOfItems() == 3  # cycles, limit, projected
    again.record_cycle(url, "SN-900", 3, "2026-06-01", 7.5, 5.0)
    table, _ = again.show_patient(url, "SN-900")
    assert logic.scene.GetNumberOfNodes() == nodes
    assert table.GetNumberOfRows() == 3 and table.GetName() == "Trial cycles SN-900"
    # another patient replaces the view too (one patient at a time, not a chart per patient clicked)
    again.enroll(url, "SN-901", site="Uppsala", arm=2, enrolled="2026-01-05")
    again.record_cycle(url, "SN-901", 1, "2026-01-12", 7.4, 4.0)
    table, _ = again.show_patient(url, "SN-901")
    assert logic.scene.GetNumberOfNodes() == nodes
    assert table.GetName() == "Trial cycles SN-901" and table.GetNumberOfRows() == 1
    chart = logic.scene.GetNodesByClass("vtkMRMLPlotChartNode").GetItemAsObject(0)
    assert chart.GetName() == "Cumulative kidney dose SN-901"


def test_planning_numbers_for_the_panel(logic_and_db):
    logic, url = logic_and_db
    _record(logic, url, SIX_CYCLES)
    status = logic.status(url, "SN-900")
    nxt = status["next_cycle"]
    numbers = planning_numbers(status)
    assert numbers["P(limit exceeded)"] == (f"{100 * nxt['probability_limit_exceeded']:.1f} % at 5.00 GBq "
                                            f"(limit 30 Gy)")
    assert numbers["Max activity (95 %)"] == f"{math.floor(nxt['max_activity_gbq_95'] * 100 + 1e-6) / 100:.2f} GBq"
    assert nxt["max_activity_gbq_95"] < nxt["max_activity_gbq"]
    assert numbers["Last cycle expected"] == "yes"
    logic.record_cycle(url, "SN-900", 7, "2027-03-08", 5.0, 2.5, deviation_reason="test")
    refused = planning_numbers(logic.status(url, "SN-900"))
    assert logic.status(url, "SN-900")["next_cycle"]["allowed"] is False
    assert set(refused.values()) == {"-"}


def test_connect_never_creates_an_sqlite_database(tmp_path):
    logic = TrialSceneLogic(new_scene())
    for typed in (str(tmp_path / "trail.db"), f"sqlite:///{tmp_path / 'trail.db'}"):
        with pytest.raises(InputError, match=f"{tmp_path / 'trail.db'} does not exist.*typo"):
            logic.list_patients(typed)
        with pytest.raises(InputError, match="does not exist"):
            logic.show_patient(typed, "SN-900")
        with pytest.raises(InputError, match="does not exist"):
            logic.enroll(typed, "SN-900", site="Uppsala", arm=2, enrolled="2026-01-05")
    assert os.listdir(tmp_path) == []  # no file created (nor -wal/-shm)


def test_connect_asks_for_the_admin_upgrade_of_an_old_database(logic_and_db):
    from sqlalchemy import text

    from startnet.trial.db import make_engine

    logic, url = logic_and_db
    engine = make_engine(url)
    with engine.begin() as conn:  # an older schema revision, as a database made by a previous version
        conn.execute(text("UPDATE alembic_version SET version_num = '0001'"))
    engine.dispose()
    with pytest.raises(InputError, match=r"revision 0001.*administrator upgrades it with `startnet trial --db "
                                         r".* init`"):
        logic.list_patients(url)


def test_connect_never_creates_a_postgresql_database(postgres_server):
    logic = TrialSceneLogic(new_scene())
    with pytest.raises(InputError, match=r'database "trial_typo" does not exist\).*typo'):
        logic.list_patients(postgres_server.url("trial_typo"))
    empty = postgres_server.create_database("trial_empty")
    with pytest.raises(InputError, match=r"not a trial database yet.*administrator.*init"):
        logic.list_patients(empty)
    with postgres_server.connect("postgres") as conn:  # scram: the password comes from the server's passfile
        names = {row[0] for row in conn.execute("SELECT datname FROM pg_database")}
    assert "trial_typo" not in names
    with postgres_server.connect("trial_empty") as conn:  # opening did not create the schema either
        tables = conn.execute("SELECT count(*) FROM information_schema.tables WHERE table_schema = 'public'")
        assert tables.fetchone()[0] == 0


def test_preview_shows_the_patient_mismatch_before_anything_is_written(logic_and_db):
    logic, url = logic_and_db
    results = {"patient_id": "PACS-4711", "cycle": 1, "injected_activity_mbq": 7400.0, "kidneys_mean_gy": 4.2}
    warnings = logic.preview_cycle_from_results("SN-900", 1, 7.4, results)
    assert len(warnings) == 1 and "PACS-4711" in warnings[0] and "SN-900" in warnings[0]
    assert logic.status(url, "SN-900")["cycles"] == []  # nothing recorded by the preview
    assert "record_warnings" not in results  # the caller's result is left as it was
    assert logic.preview_cycle_from_results("PACS-4711", 1, 7.4, results) == []
    with pytest.raises(InputError, match="cycle 1 is not 2"):
        logic.preview_cycle_from_results("SN-900", 2, 7.4, results)


def test_the_database_url_of_an_older_scene_is_removed_from_the_parameter_node():
    scene = new_scene()
    node = scene.AddNewNodeByClass("vtkMRMLScriptedModuleNode", "TrialTracker")
    node.SetParameter("databaseUrl", "postgresql://trial:secret@db.example/trial")
    node.SetParameter("patientId", "SN-900")
    assert forget_scene_secrets(node) == ["databaseUrl"]
    assert "databaseUrl" not in node.GetParameterNames() and node.GetParameter("patientId") == "SN-900"
    assert forget_scene_secrets(node) == []


def test_lesion_table_shows_cumulative_dose_per_lesion(logic_and_db, capsys):
    from startnet.cli import main
    from startnet.cycle.trial_record import record_cycle_results

    logic, url = logic_and_db
    lesions = [[("L1", "tumour_1", 10.0, 60.0), ("L2", "tumour_2", 5.0, 4.0)], [("L1", "tumour_1", 9.0, 45.0)]]
    for number, (date, rows) in enumerate(zip(("2026-01-12", "2026-03-23"), lesions), start=1):
        results = {"cycle": number, "kidneys_mean_gy": 4.0, "kidneys_bed_gy": 4.5,
                   "lesions": {"segments": {s: i for i, s, _, _ in rows}, "new": [], "not_seen": [],
                               "per_lesion": [{"id": i, "segment": s, "mean_gy": d, "bed_gy": 1.2 * d, "volume_ml": v}
                                              for i, s, d, v in rows]}}
        record_cycle_results(url, "SN-900", number, dt.date.fromisoformat(date), 7.4, results)
    logic.show_patient(url, "SN-900")
    collection = logic.scene.GetNodesByClass("vtkMRMLTableNode")
    tables = [collection.GetItemAsObject(i) for i in range(collection.GetNumberOfItems())
              if collection.GetItemAsObject(i).GetName() == "Trial lesions SN-900"]
    assert len(tables) == 1
    rows = {r["lesion"]: r for r in records_from_table(tables[0])}
    assert rows["L1"]["cumulative_mean_gy"] == pytest.approx(19.0)
    assert rows["L1"]["cumulative_bed_gy"] == pytest.approx(1.2 * 19.0)
    assert rows["L2"]["status"] == "not seen" and str(rows["L2"]["not_seen_in"]) in ("2", "2.0")
    logic.show_patient(url, "SN-900")  # shown again: the table is replaced, not added
    collection = logic.scene.GetNodesByClass("vtkMRMLTableNode")
    names = [collection.GetItemAsObject(i).GetName() for i in range(collection.GetNumberOfItems())]
    assert names.count("Trial lesions SN-900") == 1
    assert main(["trial", "--db", url, "status", "--patient", "SN-900"]) == 0
    out = capsys.readouterr().out
    assert "lesion L1: seen, cycles 1,2, cumulative 19.00 Gy" in out
    assert "lesion L2: not seen, cycles 1, cumulative 5.00 Gy, not seen in 2" in out


def test_marrow_dose_and_blood_counts_over_cycles(logic_and_db):
    from startnet.mrml.trial_logic import MARROW_COLUMNS
    from startnet.trial.store import TrialStore

    logic, url = logic_and_db
    for number, (date, blood, image, labs) in enumerate([("2026-01-12", 0.4, 0.3, {"platelets": 240, "ANC": 4.0}),
                                                          ("2026-03-23", 0.5, None, {"PLT": 170, "neutrophils": 2.5})],
                                                         start=1):
        results = {"kidneys_mean_gy": 4.0, "structures": {}, "cycle": number,
                   "marrow": {"dose_gy": blood, "uncertainty_gy": 0.05,
                              **({"image_based": {"dose_gy": image, "uncertainty_gy": 0.1}} if image else {})}}
        logic.record_cycle_from_results(url, "SN-900", number, date, 7.4, results)
        store = TrialStore.open(url)  # the labs before the cycle, entered as a correction
        store.correct_cycle("SN-900", number, {"labs": labs}, "labs entered")
        store.close()
    table, chart, status = logic.show_patient_nodes(url, "SN-900")
    rows = records_from_table(table)
    assert [r["cumulative_marrow_blood_based_gy"] for r in rows] == [pytest.approx(0.4), pytest.approx(0.9)]
    assert rows[0]["marrow_image_based_gy"] == pytest.approx(0.3) and rows[1]["marrow_image_based_gy"] is None
    assert [r["platelets_1e9_l"] for r in rows] == [240.0, 170.0] and rows[1]["neutrophils_1e9_l"] == 2.5
    assert set(MARROW_COLUMNS) <= set(rows[0])
    charts = logic.scene.GetNodesByClass("vtkMRMLPlotChartNode")
    names = sorted(charts.GetItemAsObject(i).GetName() for i in range(charts.GetNumberOfItems()))
    assert names == ["Blood counts before each cycle SN-900", "Cumulative kidney dose SN-900",
                     "Cumulative marrow dose SN-900"]
    marrow = [charts.GetItemAsObject(i) for i in range(3)
              if charts.GetItemAsObject(i).GetName().startswith("Cumulative marrow")][0]
    assert sorted(s.GetYColumnName() for s in _series(marrow)) == ["cumulative_marrow_blood_based_gy",
                                                                  "cumulative_marrow_image_based_gy"]
    logic.show_patient_nodes(url, "SN-900")  # shown again: replaced, not piled up
    assert logic.scene.GetNodesByClass("vtkMRMLPlotChartNode").GetNumberOfItems() == 3
