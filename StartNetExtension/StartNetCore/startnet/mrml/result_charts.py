"""The TAC and DVH charts of a run: one colour per structure, nodes reused on a re-run.

Input is :func:`startnet.cycle.chart_data.chart_data`'s dictionary (from the run in memory or the
background job's ``charts.json``). Measured activities are circles without line, the fit a line
without markers, both in the structure's colour; each DVH is a line.
"""

from __future__ import annotations

from typing import Any, Dict, Mapping, Optional

from startnet.mrml.plots import add_chart, add_series, distinct_colours
from startnet.mrml.run_nodes import RunNodes
from startnet.mrml.tables import table_from_records

TAC_CHART, DVH_CHART = "tac_chart", "dvh_chart"
CHART_ROLES = ("tac_", "dvh_")


def _table(nodes: RunNodes, role: str, name: str, columns: Mapping[str, list]):
    keys = list(columns)
    rows = [dict(zip(keys, values)) for values in zip(*(columns[k] for k in keys))]
    return table_from_records(nodes.scene, rows, name, node=nodes.get("vtkMRMLTableNode", role, name), columns=keys)


def show_result_charts(scene, data: Mapping[str, Any], nodes: Optional[RunNodes] = None,
                       colours: Optional[Mapping[str, Any]] = None) -> Dict[str, Any]:
    """TAC and DVH chart nodes (with tables and series) of ``data``; returns {"tac_chart", "dvh_chart",
    "colours"}. ``colours`` (name -> RGB) overrides the colours ``data`` holds (e.g. the segment colours
    of the user's segmentation)."""
    nodes = nodes or RunNodes(scene)
    structures = data.get("structures") or {}
    preferred = {name: (colours or {}).get(name) or entry.get("colour") for name, entry in structures.items()}
    palette = distinct_colours(list(structures), preferred)
    tac = add_chart(scene, "Time-activity curves", "Time-activity curves", "hours after injection", "MBq",
                    node=nodes.get("vtkMRMLPlotChartNode", TAC_CHART, "Time-activity curves"))
    dvh = add_chart(scene, "Cumulative DVH", "Cumulative DVH", "Gy", "volume fraction",
                    node=nodes.get("vtkMRMLPlotChartNode", DVH_CHART, "Cumulative DVH"))
    for name, entry in structures.items():
        colour = palette[name]
        if entry.get("tac"):
            table = _table(nodes, f"tac_measured_table:{name}", f"TAC {name} measured", entry["tac"])
            add_series(scene, tac, table, "t_h", "activity_mbq", f"{name} measured", line=False, marker="circle",
                       colour=colour, node=nodes.get("vtkMRMLPlotSeriesNode", f"tac_measured:{name}",
                                                     f"{name} measured"))
        if entry.get("fit"):
            fit = entry["fit"]
            table = _table(nodes, f"tac_fit_table:{name}", f"TAC {name} fit ({fit.get('model', '')})",
                           {"t_h": fit["t_h"], "activity_mbq": fit["activity_mbq"]})
            add_series(scene, tac, table, "t_h", "activity_mbq", f"{name} fit", marker="none", colour=colour,
                       node=nodes.get("vtkMRMLPlotSeriesNode", f"tac_fit:{name}", f"{name} fit"))
        if entry.get("dvh"):
            table = _table(nodes, f"dvh_table:{name}", f"DVH {name}", entry["dvh"])
            add_series(scene, dvh, table, "dose_gy", "volume_fraction", name, marker="none", colour=colour,
                       node=nodes.get("vtkMRMLPlotSeriesNode", f"dvh_series:{name}", name))
    return {TAC_CHART: tac, DVH_CHART: dvh, "colours": palette}
