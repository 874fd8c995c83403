"""Per-cycle report (HTML and PDF) and result exports (DICOM RT Dose, DICOM SEG).

Public API (import from the submodules; this package imports nothing heavy itself):

- ``startnet.report.model``: ``ReportInput``, ``TacPlotData``, ``ReportFiles``, ``cumulative_dvh``
- ``startnet.report.render.write_report(report_input, out_dir, *, tac_log_y=True) -> ReportFiles``
- ``startnet.report.rtdose.write_rtdose(dose_gy_image, path, *, reference, ...) -> Dataset``
- ``startnet.report.dicom_seg.write_dicom_seg(masks, ct_datasets, path, *, colours=None, ...) -> Dataset``
"""
