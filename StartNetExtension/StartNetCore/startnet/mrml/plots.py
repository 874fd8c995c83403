"""Plot chart and series nodes over table columns (TACs, DVHs, cumulative dose).

A series node's default colour is black (vtkMRMLPlotSeriesNode.cxx, Slicer v5.8.1 and v5.10.0)
and ``SetUniqueColor`` needs the application's random colour table (black in a bare scene), so
every series gets its colour explicitly: :func:`distinct_colours` keeps each structure's segment
colour unless it is too close to one already used (left and right kidney share a terminology
colour), then takes the next palette colour far from all used ones.
"""

from __future__ import annotations

from typing import Dict, Mapping, Optional, Sequence, Tuple

MARKERS = ("default", "none", "circle", "square")
Colour = Tuple[float, float, float]
# Tableau 10 (matplotlib's default cycle): well separated on white and for common colour blindness
PALETTE: Tuple[Colour, ...] = tuple(tuple(int(h[i:i + 2], 16) / 255.0 for i in (0, 2, 4)) for h in (
    "1f77b4", "ff7f0e", "2ca02c", "d62728", "9467bd", "8c564b", "e377c2", "7f7f7f", "bcbd22", "17becf"))
MIN_DISTANCE = 0.3  # RGB (0-1) Euclidean distance below which two chart colours read as one


def _distance(a: Sequence[float], b: Sequence[float]) -> float:
    return sum((float(x) - float(y)) ** 2 for x, y in zip(a, b)) ** 0.5


def _generated(count: int = 60):
    """Further colours: golden-ratio hues at three saturation/value levels."""
    import colorsys

    levels = ((0.85, 0.85), (0.5, 1.0), (1.0, 0.55))
    return [tuple(float(c) for c in colorsys.hsv_to_rgb((0.11 + i * 0.61803398875) % 1.0, *levels[i % 3]))
            for i in range(count)]


def distinct_colours(names: Sequence[str], preferred: Optional[Mapping[str, Optional[Sequence[float]]]] = None,
                     min_distance: float = MIN_DISTANCE) -> Dict[str, Colour]:
    """One colour per name: its preferred (segment) colour if distinct from those before, else the
    first palette colour at least ``min_distance`` from all used ones (the farthest one when none is)."""
    preferred = preferred or {}
    chosen: Dict[str, Colour] = {}
    spare = list(PALETTE) + _generated()
    for name in names:
        wish = preferred.get(name)
        candidates = ([tuple(float(c) for c in wish)] if wish is not None else []) + spare

        def nearest(colour):
            return min((_distance(colour, used) for used in chosen.values()), default=float("inf"))

        colour = next((c for c in candidates if nearest(c) >= min_distance), None)
        if colour is None:
            colour = max(candidates, key=nearest)
        chosen[name] = colour
        if colour in spare:
            spare.remove(colour)
    return chosen


def add_chart(scene, name: str, title: str, x_title: str, y_title: str, *, node=None):
    """A chart node (``node`` refilled when given: its series are detached)."""
    chart = node if node is not None else scene.AddNewNodeByClass("vtkMRMLPlotChartNode", name)
    chart.RemoveAllPlotSeriesNodeIDs()
    chart.SetTitle(title)
    chart.SetXAxisTitle(x_title)
    chart.SetYAxisTitle(y_title)
    return chart


def add_series(scene, chart, table, x_column: str, y_column: str, name: str, *, line: bool = True,
               marker: str = "default", colour: Optional[Sequence[float]] = None, node=None):
    """A scatter-type series of ``table``'s columns added to ``chart``; ``marker`` one of MARKERS."""
    series = node if node is not None else scene.AddNewNodeByClass("vtkMRMLPlotSeriesNode", name)
    series.SetAndObserveTableNodeID(table.GetID())
    series.SetXColumnName(x_column)
    series.SetYColumnName(y_column)
    series.SetPlotType(series.PlotTypeScatter)
    series.SetLineStyle(series.LineStyleSolid if line else series.LineStyleNone)
    if marker != "default":
        series.SetMarkerStyle({"none": series.MarkerStyleNone, "circle": series.MarkerStyleCircle,
                               "square": series.MarkerStyleSquare}[marker])
    if colour is not None:
        series.SetColor(*colour)
    chart.AddAndObservePlotSeriesNodeID(series.GetID())
    return series
