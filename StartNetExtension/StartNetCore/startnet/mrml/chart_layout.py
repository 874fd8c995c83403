"""A custom view layout with one plot view per chart (side by side) above a table view.

Slicer's built-in plot layouts have a single plot view ("PlotView1"), which shows one chart at a
time. Here each chart gets its own vtkMRMLPlotViewNode (singleton tag ``<prefix><n>``), told which
chart to show with ``SetPlotChartNodeID`` and kept out of ``PropagatePlotChartSelection``
(``SetDoPropagatePlotChartSelection(False)``: another module's chart does not replace ours), and a
layout description with exactly as many plot views as there are charts (no empty plot view).

Slicer API read in Slicer's sources, tags v5.8.1 and v5.10.0 (identical there unless noted):
- vtkMRMLLayoutNode (Libs/MRML/Core): ``AddLayoutDescription(id, xml)`` returns False when the id is
  registered already, ``SetLayoutDescription(id, xml)`` only changes a registered one (and re-parses
  it if it is the current arrangement), ``IsLayoutDescription(id)``; ids >= ``SlicerLayoutUserView``
  (100) are free for extensions (built-ins are < 100 in both tags). The descriptions are NOT saved with
  the scene (WriteXML writes ``currentViewArrangement`` only): after loading a scene the layout
  must be registered again (:func:`show_charts_in_layout` / :func:`register_layout`). Setting an
  unregistered arrangement falls back to the default view with a warning in v5.8.1 and gives an
  empty layout in v5.10.0 (``UpdateCurrentLayoutDescription``), so register before switching.
- vtkMRMLLayoutLogic (Libs/MRML/Logic): finds a layout's view by class and singleton tag and creates
  missing ones (``CreateMissingViews``: ``SetLayoutName(tag)``, name = tag for plot views, "default"
  properties such as ``viewlabel``); views made here follow the same rules so the layout finds them.
- vtkMRMLApplicationLogic::PropagatePlotChartSelection skips plot views whose
  ``DoPropagatePlotChartSelection`` is off; the flag is saved with the scene (vtkMRMLPlotViewNode.cxx).
"""

from __future__ import annotations

from typing import Any, List, Optional, Sequence
from xml.sax.saxutils import escape, quoteattr

PLOT_VIEW_CLASS = "vtkMRMLPlotViewNode"
TABLE_VIEW_TAG = "TableView1"  # Slicer's table view (FourUpTableView, FourUpPlotTableView use the same node)


def charts_layout_xml(plot_view_tags: Sequence[str], table_view_tag: Optional[str] = TABLE_VIEW_TAG,
                      labels: Optional[Sequence[str]] = None) -> str:
    """Layout description: the plot views side by side on top, the table view below (if any)."""
    labels = list(labels) if labels is not None else [f"P{i + 1}" for i in range(len(plot_view_tags))]
    table = (f'<view class="vtkMRMLTableViewNode" singletontag={quoteattr(table_view_tag)}>'
             '<property name="viewlabel" action="default">T</property></view>') if table_view_tag else ""
    if not plot_view_tags:
        return f'<layout type="horizontal"><item>{table}</item></layout>'
    plots = "".join(
        f'<item><view class="{PLOT_VIEW_CLASS}" singletontag={quoteattr(tag)}>'
        f'<property name="viewlabel" action="default">{escape(label)}</property></view></item>'
        for tag, label in zip(plot_view_tags, labels))
    row = f'<layout type="horizontal">{plots}</layout>'
    if not table_view_tag:
        return row
    return ('<layout type="vertical" split="true">'
            f'<item splitSize="500">{row}</item>'
            f'<item splitSize="300">{table}</item></layout>')


def register_layout(layout_node, layout_id: int, description: str) -> None:
    """Register ``description`` under ``layout_id`` (first time) or replace the registered one."""
    import slicer

    if layout_id < slicer.vtkMRMLLayoutNode.SlicerLayoutUserView:
        raise ValueError(f"layout id {layout_id}: ids below {slicer.vtkMRMLLayoutNode.SlicerLayoutUserView} "
                         "are Slicer's own layouts")
    if layout_node.IsLayoutDescription(layout_id):
        layout_node.SetLayoutDescription(layout_id, description)
    else:
        layout_node.AddLayoutDescription(layout_id, description)


def _plot_views(scene) -> List[Any]:
    views = scene.GetNodesByClass(PLOT_VIEW_CLASS)
    return [views.GetItemAsObject(i) for i in range(views.GetNumberOfItems())]


def plot_view_node(scene, tag: str, label: str = ""):
    """The plot view with singleton tag ``tag`` (made as vtkMRMLLayoutLogic would if missing)."""
    import slicer

    for view in _plot_views(scene):
        if view.GetSingletonTag() == tag:
            return view
    view = slicer.vtkMRMLPlotViewNode()
    view.SetLayoutName(tag)  # = singleton tag (vtkMRMLAbstractViewNode::SetLayoutName)
    view.SetName(tag)
    if label:
        view.SetLayoutLabel(label)
    return scene.AddNode(view)


def chart_view_tags(prefix: str, count: int) -> List[str]:
    return [f"{prefix}{i + 1}" for i in range(count)]


def show_charts_in_layout(app_logic, charts: Sequence[Any], table, layout_id: int, view_prefix: str) -> List[Any]:
    """Show each chart in its own plot view and ``table`` in the table view, in layout ``layout_id``.

    Plot views ``<view_prefix>1..n`` (n = number of charts) show the charts in order; views of that
    prefix beyond n (from an earlier, larger showing) are emptied and left out of the layout. The
    layout node (if the scene has one) gets the description and is switched to it. Returns the plot
    view nodes used.
    """
    scene = app_logic.GetMRMLScene()
    charts = [c for c in charts if c is not None]
    if not charts and table is None:
        return []  # nothing to show: the layout is left as it is
    tags = chart_view_tags(view_prefix, len(charts))
    views = []
    for i, (tag, chart) in enumerate(zip(tags, charts)):
        view = plot_view_node(scene, tag, f"P{i + 1}")
        view.SetDoPropagatePlotChartSelection(False)
        view.SetPlotChartNodeID(chart.GetID())
        views.append(view)
    for view in _plot_views(scene):
        tag = view.GetSingletonTag() or ""
        if tag.startswith(view_prefix) and tag not in tags:
            view.SetPlotChartNodeID(None)
    layout = scene.GetFirstNodeByClass("vtkMRMLLayoutNode")
    if layout is not None:
        register_layout(layout, layout_id, charts_layout_xml(tags, TABLE_VIEW_TAG if table is not None else None))
        # always: also when the id is current but was not registered (a loaded scene), the node re-parses
        # the registered description only in SetViewArrangement (a no-op when nothing changed)
        layout.SetViewArrangement(layout_id)
    selection = app_logic.GetSelectionNode()
    if selection is not None and table is not None:
        selection.SetActiveTableID(table.GetID())
        app_logic.PropagateTableSelection()
    return views

