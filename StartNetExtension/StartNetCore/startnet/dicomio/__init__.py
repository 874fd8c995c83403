"""DICOM discovery and quantitative SPECT/CT ingestion: a cycle folder -> calibrated time points.

Contract used by the pipeline (all times timezone-aware, UTC in results)::

    from startnet.dicomio import Overrides, discover, load_cycle
    cycle = load_cycle(input_dir, overrides=Overrides(...), nuclide=LU177)

- ``Overrides(injection_datetime=None, injected_activity_mbq=None, calibration_cps_per_mbq=None,
  dead_time_s=None, timezone="Europe/Stockholm", acquisition_duration_s=None,
  count_rate_kcps=None)``: manual values
  replacing or supplying header values; each one given is recorded in
  ``Cycle.overrides_applied``. ``injection_datetime`` must be aware.
- ``discover(input_dir) -> Discovery``: ``series`` (``SeriesInfo``: study_uid, series_uid,
  modality, role "spect" | "ct" | "ignored", reason, files, frame_of_reference_uid, ...),
  ``skipped_files`` (non-DICOM), ``log`` (one line per skipped file and per series).
- ``load_cycle(input_dir, overrides=None, nuclide=LU177) -> Cycle`` with ``timepoints``
  (chronological ``Timepoint`` list), ``injection_datetime`` (UTC), ``injected_activity_mbq``,
  ``nuclide``, ``patient_id``, ``study_uids``, ``warnings``, ``log``, ``overrides_applied``,
  ``injection_source``, ``activity_source`` and ``to_dict()`` (JSON-ready provenance).
- ``Timepoint``: ``hours_post_injection``, ``acquisition_datetime`` (UTC),
  ``spect_bqml`` (SimpleITK float32, Bq/mL at the acquisition start, LPS geometry), ``ct_hu``
  (SimpleITK int16 HU, float32 when the rescale is not integral; None only when no CT exists,
  with a warning), ``spect_series_uid``, ``ct_series_uid``, ``frame_of_reference_uid``,
  ``study_uid``, ``conversion`` (mode "bqml" | "counts", source, calibration_cps_per_mbq,
  frame_duration_s and its source, decay_factor (multiplier applied to reach the activity at
  the acquisition start), decay_correction_header, decay_reference_utc, dead_time_s,
  dead_time_factor, dead_time_correction (what was done, in words), count_rate_source
  ("override" | "projections" | "header" | None), count_rate_detail, count_rate_per_head_cps,
  dead_time_factor_per_head, observed_count_rate_cps (count-weighted mean per head), half_life_h,
  half_life_source,
  acquisition_start_source, timezone_source), ``source_files``, ``spect_file``, ``warnings``,
  ``total_activity_mbq`` and ``to_dict()``.
- ``load_cycle(..., discovery=d)`` reuses a ``Discovery`` already made (headers parsed once).

Command line: ``startnet inspect INPUT_DIR [--json] [--calibration-cps-per-mbq X]
[--injection-datetime ISO] [--injected-activity-mbq X] [--dead-time-s T]
[--count-rate-kcps KCPS[,KCPS...]] [--acquisition-duration-s T] [--timezone ZONE]``.

Rules and their modules: discovery and roles (``discovery``), time zones and acquisition start
(``timing``), injection/activity/nuclide and their fallbacks (``radiopharm``), geometry
(``geometry``), pixel reading once per file (``pixels``), units and decay/dead-time corrections
(``units``), the count rate per detector head for the dead time (``countrate``), choice of
reconstruction and CT per time point (``loader``), header access without pydicom's per-value
conversion for speed (``rawattr``). Every bad input raises
``startnet.errors.DicomInputError`` naming the file and attribute; nothing is written to the input.
"""

from __future__ import annotations

import importlib

_EXPORTS = {
    "classify": "startnet.dicomio.discovery",
    "discover": "startnet.dicomio.discovery",
    "load_cycle": "startnet.dicomio.loader",
    "Cycle": "startnet.dicomio.model",
    "Discovery": "startnet.dicomio.model",
    "Overrides": "startnet.dicomio.model",
    "SeriesInfo": "startnet.dicomio.model",
    "Timepoint": "startnet.dicomio.model",
}

__all__ = ["Cycle", "Discovery", "Overrides", "SeriesInfo", "Timepoint", "classify", "discover", "load_cycle"]


def __getattr__(name):
    # imported on first use, so that ``startnet --help`` and other commands start quickly
    if name in _EXPORTS:
        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
