"""The numbers behind a cycle's charts: measured and fitted time-activity curves and cumulative DVHs.

Plain lists (JSON-ready), so a background job can hand them to the Slicer module
(``charts.json`` in the job folder) and the module draws them without the arrays of the run:
:func:`startnet.mrml.result_charts.show_result_charts` reads exactly this dictionary.
"""

from __future__ import annotations

from typing import Any, Dict

import numpy as np

FIT_SAMPLES = 100


def chart_data(result) -> Dict[str, Any]:
    """Per structure (results order): measured TAC, fitted TAC, cumulative DVH and display colour."""
    analysis, times = result.analysis, np.asarray(result.registered.times_h, dtype=float)
    fit_times = np.linspace(0.0, float(times.max()) * 1.25, FIT_SAMPLES)
    colours = result.structures.colours or {}
    structures: Dict[str, Any] = {}
    for name in result.results["structures"]:
        entry: Dict[str, Any] = {"colour": [float(c) for c in colours[name]] if name in colours else None}
        if name in analysis.activity_mbq:
            entry["tac"] = {"t_h": [float(t) for t in times],
                            "activity_mbq": [float(a) for a in analysis.activity_mbq[name]]}
        fit = analysis.fits.get(name)
        if fit is not None:
            entry["fit"] = {"model": str(fit.model), "t_h": [float(t) for t in fit_times],
                            "activity_mbq": [float(a) for a in fit.evaluate(fit_times)]}
        if name in analysis.dvhs:
            dose, fraction = analysis.dvhs[name]
            entry["dvh"] = {"dose_gy": [float(d) for d in dose], "volume_fraction": [float(v) for v in fraction]}
        structures[name] = entry
    return {"structures": structures}
