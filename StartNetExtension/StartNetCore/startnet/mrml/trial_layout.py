"""The Trial Tracker's layout: each chart of the shown patient in its own plot view, the cycles table below.

The Trial Tracker makes up to three charts (:mod:`startnet.mrml.trial_logic`): cumulative kidney dose
with the limit and the projected next cycle (always), cumulative red-marrow dose per method and blood
counts (only when the patient has such values). :func:`show_trial_layout` puts the charts present, in
that order, into plot views ``StartNetTrialPlot1..n`` of layout ``TRIAL_CHARTS_LAYOUT_ID``
(:func:`startnet.mrml.chart_layout.show_charts_in_layout`): no empty plot view for a missing chart.
Call it after each showing of a patient and after a scene was loaded (layout descriptions are not
saved with the scene).
"""

from __future__ import annotations

from typing import Any, List

from startnet.mrml.chart_layout import show_charts_in_layout
from startnet.mrml.layout import TRIAL_CHARTS_LAYOUT_ID
from startnet.mrml.trial_logic import CHART_ATTRIBUTE, CHART_ORDER, tagged_nodes

PLOT_VIEW_PREFIX = "StartNetTrialPlot"


def trial_charts(scene) -> List[Any]:
    """The Trial Tracker's chart nodes in the scene, kidney first, then marrow and blood counts."""
    charts = [n for n in tagged_nodes(scene, "plot") if n.IsA("vtkMRMLPlotChartNode")
              and n.GetAttribute(CHART_ATTRIBUTE) in CHART_ORDER]
    return sorted(charts, key=lambda chart: CHART_ORDER.index(chart.GetAttribute(CHART_ATTRIBUTE)))


def trial_table(scene):
    """The cycles table of the shown patient, or None."""
    tables = tagged_nodes(scene, "cycles")
    return tables[0] if tables else None


def show_trial_layout(app_logic) -> List[Any]:
    """Show the Trial Tracker's charts (one plot view each) and cycles table; returns the plot views."""
    scene = app_logic.GetMRMLScene()
    return show_charts_in_layout(app_logic, trial_charts(scene), trial_table(scene), TRIAL_CHARTS_LAYOUT_ID,
                                 PLOT_VIEW_PREFIX)


def restore_trial_layout(app_logic) -> bool:
    """After a scene was loaded: register the layout again if the scene was saved showing it (the
    layout node keeps only the layout id); True if it did."""
    scene = app_logic.GetMRMLScene()
    layout = scene.GetFirstNodeByClass("vtkMRMLLayoutNode") if scene is not None else None
    if layout is None or layout.GetViewArrangement() != TRIAL_CHARTS_LAYOUT_ID:
        return False
    show_trial_layout(app_logic)
    return True
