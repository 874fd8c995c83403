"""Show a plot chart and a table together in the view layout.

What ``vtkSlicerPlotsLogic::ShowChartInLayout`` does for a chart alone (Modules/Loadable/Plots/Logic,
Slicer 5.8.1 and 5.10.0), but with a layout that has both a plot view and a table view:
``SlicerLayoutFourUpPlotTableView`` (38 in vtkMRMLLayoutNode.h, both tags), then the chart and the
table are made active in the selection node and propagated to the views
(``vtkMRMLApplicationLogic::PropagatePlotChartSelection`` / ``PropagateTableSelection``, both tags).

Works on any vtkMRMLApplicationLogic: ``slicer.app.applicationLogic()`` in Slicer, a bare one
over a headless scene in the tests (no layout node there: the selection is still set).
"""

from __future__ import annotations

# StartNet's own layouts (vtkMRMLLayoutNode ids). Slicer's built-ins are < SlicerLayoutUserView = 100
# (vtkMRMLLayoutNode.h, v5.8.1 and v5.10.0) and Slicer's script examples use 501: ours are 177xx.
TRIAL_CHARTS_LAYOUT_ID = 17701
STARTNET_LAYOUT_IDS = {"trial_charts": TRIAL_CHARTS_LAYOUT_ID}


def show_chart_and_table(app_logic, chart, table) -> None:
    import slicer

    scene = app_logic.GetMRMLScene()
    layout = scene.GetFirstNodeByClass("vtkMRMLLayoutNode") if scene is not None else None
    wanted = slicer.vtkMRMLLayoutNode.SlicerLayoutFourUpPlotTableView
    if layout is not None and layout.GetViewArrangement() != wanted:
        layout.SetViewArrangement(wanted)
    selection = app_logic.GetSelectionNode()
    if selection is not None:
        selection.SetActiveTableID(table.GetID() if table is not None else None)
        selection.SetActivePlotChartID(chart.GetID() if chart is not None else None)
    app_logic.PropagateTableSelection()
    app_logic.PropagatePlotChartSelection()
