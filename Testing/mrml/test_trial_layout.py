"""The Trial Tracker's layout on real MRML (slicer-core): one plot view per chart present, table below.

The layout node and the view nodes come from a vtkMRMLLayoutLogic over the scene, as in Slicer
(it registers Slicer's built-in layouts and makes the views a layout description names).
"""

from __future__ import annotations

import pytest
import slicer

from startnet.mrml.chart_layout import charts_layout_xml, register_layout, show_charts_in_layout
from startnet.mrml.layout import STARTNET_LAYOUT_IDS, TRIAL_CHARTS_LAYOUT_ID, show_chart_and_table
from startnet.mrml.scene import new_scene, read_mrb, save_mrb
from startnet.mrml.trial_layout import PLOT_VIEW_PREFIX, restore_trial_layout, show_trial_layout, trial_charts
from startnet.mrml.trial_logic import TrialSceneLogic

KIDNEY, MARROW, COUNTS = "Cumulative kidney dose", "Cumulative marrow dose", "Blood counts before each cycle"


def _with_layout(scene):
    """Layout and application logics over ``scene`` (kept on it), as the Slicer application has them."""
    layout_logic = slicer.vtkMRMLLayoutLogic()
    layout_logic.SetMRMLScene(scene)
    app_logic = getattr(scene, "_startnet_io_logics", (None,))[0] or slicer.vtkMRMLApplicationLogic()
    app_logic.SetMRMLScene(scene)
    scene._test_logics = (layout_logic, app_logic)
    return layout_logic, app_logic


@pytest.fixture()
def trial(tmp_path):
    scene = new_scene()
    layout_logic, app_logic = _with_layout(scene)
    logic = TrialSceneLogic(scene)
    url = f"sqlite:///{tmp_path / 'trial.db'}"
    logic.initialise(url)
    logic.enroll(url, "SN-900", site="Uppsala", arm=2, enrolled="2026-01-05")
    return logic, url, layout_logic, app_logic


def _record_with_marrow(logic, url, number, date, blood_gy, labs):
    from startnet.trial.store import TrialStore

    results = {"kidneys_mean_gy": 4.0, "structures": {}, "cycle": number,
               "marrow": {"dose_gy": blood_gy, "uncertainty_gy": 0.05,
                          "image_based": {"dose_gy": blood_gy * 0.8, "uncertainty_gy": 0.1}}}
    logic.record_cycle_from_results(url, "SN-900", number, date, 7.4, results)
    if labs:
        store = TrialStore.open(url)
        store.correct_cycle("SN-900", number, {"labs": labs}, "labs entered")
        store.close()


def _plot_views_in_layout(layout_logic):
    layout = layout_logic.GetLayoutNode()
    root = layout.GetLayoutRootElement()
    assert root is not None, "the layout description did not parse"
    tags = []

    def walk(element):
        if element.GetName() == "view" and element.GetAttribute("class") == "vtkMRMLPlotViewNode":
            tags.append(element.GetAttribute("singletontag"))
        for i in range(element.GetNumberOfNestedElements()):
            walk(element.GetNestedElement(i))

    walk(root)
    views = layout_logic.GetViewNodes()
    by_tag = {views.GetItemAsObject(i).GetSingletonTag(): views.GetItemAsObject(i)
              for i in range(views.GetNumberOfItems())}
    return tags, by_tag


def _shown_chart_names(layout_logic):
    tags, by_tag = _plot_views_in_layout(layout_logic)
    return [by_tag[tag].GetPlotChartNode().GetName() if by_tag[tag].GetPlotChartNode() else None for tag in tags]


def test_each_chart_has_its_own_plot_view_and_the_table_is_below(trial):
    logic, url, layout_logic, app_logic = trial
    _record_with_marrow(logic, url, 1, "2026-01-12", 0.4, {"platelets": 240, "ANC": 4.0})
    table, _, _ = logic.show_patient_nodes(url, "SN-900")
    views = show_trial_layout(app_logic)
    layout = layout_logic.GetLayoutNode()
    assert layout.GetViewArrangement() == TRIAL_CHARTS_LAYOUT_ID
    assert _shown_chart_names(layout_logic) == [f"{KIDNEY} SN-900", f"{MARROW} SN-900", f"{COUNTS} SN-900"]
    tags, by_tag = _plot_views_in_layout(layout_logic)
    assert tags == [f"{PLOT_VIEW_PREFIX}{i}" for i in (1, 2, 3)]
    assert [by_tag[t] for t in tags] == views  # the layout logic found the views made for the charts
    for view in views:  # another module's "show chart" must not replace the trial charts
        assert not view.GetDoPropagatePlotChartSelection()
    assert by_tag["TableView1"].GetTableNodeID() == table.GetID()


def test_no_empty_plot_view_and_views_follow_the_charts_present(trial):
    logic, url, layout_logic, app_logic = trial
    logic.record_cycle(url, "SN-900", 1, "2026-01-12", 7.4, 4.0)  # no marrow dose, no labs
    logic.show_patient_nodes(url, "SN-900")
    show_trial_layout(app_logic)
    assert _shown_chart_names(layout_logic) == [f"{KIDNEY} SN-900"]
    # the next cycle brings a marrow dose (no labs): its chart appears in a second view
    _record_with_marrow(logic, url, 2, "2026-03-23", 0.5, None)
    logic.show_patient_nodes(url, "SN-900")
    show_trial_layout(app_logic)
    assert _shown_chart_names(layout_logic) == [f"{KIDNEY} SN-900", f"{MARROW} SN-900"]
    # another patient without marrow data: one view again, the second view (out of the layout) emptied
    logic.enroll(url, "SN-901", site="Uppsala", arm=2, enrolled="2026-01-05")
    logic.record_cycle(url, "SN-901", 1, "2026-01-12", 7.4, 4.0)
    logic.show_patient_nodes(url, "SN-901")
    show_trial_layout(app_logic)
    assert _shown_chart_names(layout_logic) == [f"{KIDNEY} SN-901"]
    second = [v for v in _views(logic.scene) if v.GetSingletonTag() == f"{PLOT_VIEW_PREFIX}2"][0]
    assert second.GetPlotChartNodeID() is None


def _views(scene):
    views = scene.GetNodesByClass("vtkMRMLPlotViewNode")
    return [views.GetItemAsObject(i) for i in range(views.GetNumberOfItems())]


def test_layout_id_is_free_and_registered_once(trial):
    logic, url, layout_logic, app_logic = trial
    layout = layout_logic.GetLayoutNode()
    assert len(set(STARTNET_LAYOUT_IDS.values())) == len(STARTNET_LAYOUT_IDS)
    for layout_id in STARTNET_LAYOUT_IDS.values():
        assert layout_id >= slicer.vtkMRMLLayoutNode.SlicerLayoutUserView
        assert not layout.IsLayoutDescription(layout_id)  # not one of Slicer's (all registered by the logic)
    builtin = {i: layout.GetLayoutDescription(i) for i in range(slicer.vtkMRMLLayoutNode.SlicerLayoutFinalView)
               if layout.IsLayoutDescription(i)}
    logic.record_cycle(url, "SN-900", 1, "2026-01-12", 7.4, 4.0)
    logic.show_patient_nodes(url, "SN-900")
    show_trial_layout(app_logic)
    show_trial_layout(app_logic)  # shown again: the registered description is replaced, not added twice
    assert {i: layout.GetLayoutDescription(i) for i in builtin} == builtin
    assert len(_views(logic.scene)) == 1
    with pytest.raises(ValueError, match="Slicer's own layouts"):
        register_layout(layout, slicer.vtkMRMLLayoutNode.SlicerLayoutFourUpPlotView, charts_layout_xml(["x"]))


def test_other_modules_charts_leave_the_trial_views_alone(trial):
    logic, url, layout_logic, app_logic = trial
    _record_with_marrow(logic, url, 1, "2026-01-12", 0.4, {"platelets": 240})
    table, _, _ = logic.show_patient_nodes(url, "SN-900")
    show_trial_layout(app_logic)
    other = logic.scene.AddNewNodeByClass("vtkMRMLPlotChartNode", "Time-activity curves")
    show_chart_and_table(app_logic, other, table)  # what Dosimetry does with its charts
    assert layout_logic.GetLayoutNode().GetViewArrangement() == slicer.vtkMRMLLayoutNode.SlicerLayoutFourUpPlotTableView
    show_trial_layout(app_logic)
    assert _shown_chart_names(layout_logic) == [f"{KIDNEY} SN-900", f"{MARROW} SN-900", f"{COUNTS} SN-900"]


def test_scene_saved_with_the_trial_layout_shows_it_again_after_loading(trial, tmp_path):
    logic, url, layout_logic, app_logic = trial
    _record_with_marrow(logic, url, 1, "2026-01-12", 0.4, {"platelets": 240, "ANC": 4.0})
    logic.show_patient_nodes(url, "SN-900")
    show_trial_layout(app_logic)
    path = save_mrb(logic.scene, tmp_path / "trial.mrb")
    # a new session: Slicer's layouts only, the trial layout not registered (descriptions are not saved)
    scene = new_scene()
    new_layout_logic, new_app_logic = _with_layout(scene)
    assert not new_layout_logic.GetLayoutNode().IsLayoutDescription(TRIAL_CHARTS_LAYOUT_ID)
    read_mrb(path, scene)
    assert new_layout_logic.GetLayoutNode().GetViewArrangement() == TRIAL_CHARTS_LAYOUT_ID  # saved id
    assert restore_trial_layout(new_app_logic)
    assert _shown_chart_names(new_layout_logic) == [f"{KIDNEY} SN-900", f"{MARROW} SN-900", f"{COUNTS} SN-900"]
    assert len(_views(scene)) == 3  # the saved plot views, found again by their singleton tags
    assert all(not v.GetDoPropagatePlotChartSelection() for v in _views(scene))


def test_restore_leaves_another_layout_alone(trial):
    logic, url, layout_logic, app_logic = trial
    layout_logic.GetLayoutNode().SetViewArrangement(slicer.vtkMRMLLayoutNode.SlicerLayoutConventionalView)
    assert not restore_trial_layout(app_logic)
    assert layout_logic.GetLayoutNode().GetViewArrangement() == slicer.vtkMRMLLayoutNode.SlicerLayoutConventionalView


def test_every_series_is_coloured_and_every_axis_has_a_title_with_unit(trial):
    logic, url, layout_logic, app_logic = trial
    _record_with_marrow(logic, url, 1, "2026-01-12", 0.4, {"platelets": 240, "WBC": 6.0, "ANC": 4.0})
    logic.show_patient_nodes(url, "SN-900")
    charts = trial_charts(logic.scene)
    assert len(charts) == 3
    for chart in charts:
        series = [chart.GetNthPlotSeriesNode(i) for i in range(chart.GetNumberOfPlotSeriesNodes())]
        colours = [tuple(s.GetColor()) for s in series]
        assert series and (0.0, 0.0, 0.0) not in colours, chart.GetName()  # black = never coloured
        assert len(set(colours)) == len(colours), chart.GetName()
        assert chart.GetXAxisTitle() == "cycle"
        y_title = chart.GetYAxisTitle()
        assert y_title.endswith(")") and "(" in y_title and not y_title.startswith("("), (chart.GetName(), y_title)


def test_generic_layout_without_table_or_charts():
    scene = new_scene()
    layout_logic, app_logic = _with_layout(scene)
    layout_logic.GetLayoutNode().SetViewArrangement(slicer.vtkMRMLLayoutNode.SlicerLayoutConventionalView)
    assert show_charts_in_layout(app_logic, [], None, TRIAL_CHARTS_LAYOUT_ID, "X") == []
    assert layout_logic.GetLayoutNode().GetViewArrangement() == slicer.vtkMRMLLayoutNode.SlicerLayoutConventionalView
    chart = scene.AddNewNodeByClass("vtkMRMLPlotChartNode", "c")
    (view,) = show_charts_in_layout(app_logic, [chart], None, TRIAL_CHARTS_LAYOUT_ID, "X")
    assert view.GetPlotChartNodeID() == chart.GetID() and view.GetSingletonTag() == "X1"
    assert "vtkMRMLTableViewNode" not in layout_logic.GetLayoutNode().GetCurrentLayoutDescription()
