"""Builds the report's input (:class:`startnet.report.model.ReportInput`) from a cycle result."""

from __future__ import annotations

import numpy as np
import SimpleITK as sitk

from startnet.report.model import ReportInput, TacPlotData


def report_input_from_result(result) -> ReportInput:
    analysis = result.analysis
    tacs = {}
    t_end = float(max(result.registered.times_h)) * 1.25
    fit_times = np.linspace(0.0, max(t_end, 1.0), 200)
    for name, fit in analysis.fits.items():
        sd = getattr(fit, "sigma_mbq", None)
        tacs[name] = TacPlotData(
            times_h=[float(t) for t in result.registered.times_h],
            activity_mbq=[float(a) for a in analysis.activity_mbq[name]],
            activity_sd_mbq=None if sd is None else [float(s) for s in np.broadcast_to(sd, fit.times_h.shape)],
            fit_times_h=fit_times.tolist(),
            fit_activity_mbq=[float(v) for v in fit.evaluate(fit_times)],
            model=fit.model,
        )
    ct = None if analysis.ct_hu_on_grid is None else sitk.GetArrayFromImage(analysis.ct_hu_on_grid)
    grid = analysis.dose_gy
    return ReportInput(
        results=result.results,
        dose_gy=sitk.GetArrayFromImage(grid),
        spacing_mm=tuple(float(s) for s in grid.GetSpacing()),
        ct_hu=ct,
        masks=dict(result.structures.masks),
        tacs=tacs,
        dvhs=dict(analysis.dvhs),
        direction=tuple(float(d) for d in grid.GetDirection()),
    )
