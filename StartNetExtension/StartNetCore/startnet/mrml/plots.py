"""Plot chart and series nodes over table columns (TACs, DVHs, cumulative dose)."""

from __future__ import annotations

from typing import Optional, Sequence

MARKERS = ("default", "none", "circle", "square")


def add_chart(scene, name: str, title: str, x_title: str, y_title: str):
    chart = scene.AddNewNodeByClass("vtkMRMLPlotChartNode", name)
    chart.SetTitle(title)
    chart.SetXAxisTitle(x_title)
    chart.SetYAxisTitle(y_title)
    return chart


def add_series(scene, chart, table, x_column: str, y_column: str, name: str, *, line: bool = True,
               marker: str = "default", colour: Optional[Sequence[float]] = None):
    """A scatter-type series of ``table``'s columns added to ``chart``; ``marker`` one of MARKERS."""
    series = scene.AddNewNodeByClass("vtkMRMLPlotSeriesNode", name)
    series.SetAndObserveTableNodeID(table.GetID())
    series.SetXColumnName(x_column)
    series.SetYColumnName(y_column)
    series.SetPlotType(series.PlotTypeScatter)
    if not line:
        series.SetLineStyle(series.LineStyleNone)
    if marker != "default":
        series.SetMarkerStyle({"none": series.MarkerStyleNone, "circle": series.MarkerStyleCircle,
                               "square": series.MarkerStyleSquare}[marker])
    if colour is not None:
        series.SetColor(*colour)
    chart.AddAndObservePlotSeriesNodeID(series.GetID())
    return series
