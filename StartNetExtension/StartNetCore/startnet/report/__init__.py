"""Per-cycle report (HTML and PDF) and result exports (DICOM RT Dose, DICOM SEG).

Public API (the names below are importable from ``startnet.report``; each is loaded on first
use, so importing the package does not pull in matplotlib or highdicom):

- ``ReportInput``, ``TacPlotData``, ``ReportFiles``, ``cumulative_dvh`` (``startnet.report.model``)
- ``write_report(report_input, out_dir, *, tac_log_y=True) -> ReportFiles`` (``.render``)
- ``write_rtdose(dose_gy_image, path, *, reference, ...) -> Dataset`` (``.rtdose``)
- ``write_dicom_seg(masks, ct_datasets, path, *, colours=None, ...) -> Dataset`` (``.dicom_seg``)
"""

from __future__ import annotations

import importlib

_EXPORTS = {
    "ReportInput": "model", "TacPlotData": "model", "ReportFiles": "model", "cumulative_dvh": "model",
    "write_report": "render", "write_rtdose": "rtdose", "write_dicom_seg": "dicom_seg",
}
__all__ = sorted(_EXPORTS)


def __getattr__(name: str):
    if name in _EXPORTS:
        return getattr(importlib.import_module(f"startnet.report.{_EXPORTS[name]}"), name)
    raise AttributeError(f"module 'startnet.report' has no attribute {name!r}")
