"""Typed results of DICOM discovery and loading: overrides, series, time points, the cycle."""

from __future__ import annotations

import datetime as _dt
import math
from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional, Tuple

import SimpleITK as sitk

from startnet.errors import InputError
from startnet.physics.lu177 import Nuclide

DEFAULT_TIMEZONE = "Europe/Stockholm"


@dataclass
class Overrides:
    """Manual values that replace (or supply missing) header values; each one used is recorded.

    ``injection_datetime`` must be timezone-aware. ``dead_time_s`` is the paralysable dead time
    tau of the camera (None: no dead-time correction). ``count_rate_kcps`` is the observed
    total-spectrum count rate per detector head (kcps, all energy windows): one value for every
    time point or one per time point in chronological order; without it the rate comes from the
    projections in the input (see ``startnet.dicomio.countrate``). ``timezone`` is the IANA zone used for
    local DICOM DA/TM values (it follows daylight-saving time). ``acquisition_duration_s``
    replaces the acquisition duration read from the header (counts mode only).
    """

    injection_datetime: Optional[_dt.datetime] = None
    injected_activity_mbq: Optional[float] = None
    calibration_cps_per_mbq: Optional[float] = None
    dead_time_s: Optional[float] = None
    timezone: str = DEFAULT_TIMEZONE
    acquisition_duration_s: Optional[float] = None
    count_rate_kcps: Optional[Tuple[float, ...]] = None

    def __post_init__(self) -> None:
        dt = self.injection_datetime
        if dt is not None and (dt.tzinfo is None or dt.utcoffset() is None):
            raise InputError(
                f"override injection_datetime {dt.isoformat()} has no time zone; give an aware "
                "datetime, e.g. 2026-10-24T10:00:00+02:00"
            )
        for name in ("injected_activity_mbq", "calibration_cps_per_mbq", "acquisition_duration_s"):
            value = getattr(self, name)
            if value is not None and not value > 0:
                raise InputError(f"override {name} must be > 0, got {value!r}")
        if self.dead_time_s is not None and not self.dead_time_s >= 0:
            raise InputError(f"override dead_time_s must be >= 0 seconds, got {self.dead_time_s!r}")
        if self.count_rate_kcps is not None:
            rates = tuple(float(v) for v in self.count_rate_kcps)
            if not rates or not all(math.isfinite(v) and v > 0 for v in rates):
                raise InputError(f"override count_rate_kcps must be one or more values > 0 kcps, "
                                 f"got {list(self.count_rate_kcps)!r}")
            self.count_rate_kcps = rates

    def applied(self) -> Dict[str, Any]:
        """The overrides that were given, JSON-ready (for provenance)."""
        out: Dict[str, Any] = {}
        for name in ("injected_activity_mbq", "calibration_cps_per_mbq", "dead_time_s",
                     "acquisition_duration_s"):
            if getattr(self, name) is not None:
                out[name] = getattr(self, name)
        if self.count_rate_kcps is not None:
            out["count_rate_kcps"] = list(self.count_rate_kcps)
        if self.injection_datetime is not None:
            out["injection_datetime"] = self.injection_datetime.isoformat()
        out["timezone"] = self.timezone
        return out


@dataclass
class SeriesInfo:
    """One DICOM series found on disk and the role discovery gave it."""

    study_uid: str
    series_uid: str
    modality: str
    sop_class_uid: str
    role: str  # "spect" | "ct" | "ignored"
    reason: str
    files: List[str]
    description: str = ""
    frame_of_reference_uid: str = ""
    patient_id: str = ""
    headers: List[Any] = field(default_factory=list, repr=False)

    def to_dict(self) -> Dict[str, Any]:
        return {
            "study_uid": self.study_uid, "series_uid": self.series_uid, "modality": self.modality,
            "sop_class_uid": self.sop_class_uid, "role": self.role, "reason": self.reason,
            "description": self.description, "frame_of_reference_uid": self.frame_of_reference_uid,
            "n_files": len(self.files),
        }


@dataclass
class Discovery:
    """All series under a folder, grouped by study and series, with their roles and a log."""

    input_dir: str
    series: List[SeriesInfo]
    skipped_files: List[str]
    log: List[str]

    @property
    def spect_series(self) -> List[SeriesInfo]:
        return [s for s in self.series if s.role == "spect"]

    @property
    def ct_series(self) -> List[SeriesInfo]:
        return [s for s in self.series if s.role == "ct"]

    @property
    def ignored_series(self) -> List[SeriesInfo]:
        return [s for s in self.series if s.role == "ignored"]

    @property
    def projection_series(self) -> List[SeriesInfo]:
        """Ignored SPECT projection series (headers kept: their counts give the rate per head)."""
        return [s for s in self.series
                if s.role == "ignored" and s.headers and s.reason.startswith("SPECT projections")]


@dataclass
class Timepoint:
    """One calibrated SPECT/CT acquisition of the cycle.

    ``spect_bqml`` is the activity concentration AT the acquisition start (Bq/mL, float32,
    LPS). ``conversion`` records how it was obtained (see ``startnet.dicomio.units``).
    """

    hours_post_injection: float
    acquisition_datetime: _dt.datetime
    spect_bqml: sitk.Image
    ct_hu: Optional[sitk.Image]
    spect_series_uid: str
    ct_series_uid: Optional[str]
    frame_of_reference_uid: str
    study_uid: str
    conversion: Dict[str, Any]
    source_files: int
    spect_file: str = ""
    warnings: List[str] = field(default_factory=list)

    @property
    def total_activity_mbq(self) -> float:
        arr = sitk.GetArrayViewFromImage(self.spect_bqml)
        voxel_ml = 1e-3
        for s in self.spect_bqml.GetSpacing():
            voxel_ml *= s
        return float(arr.sum(dtype="float64")) * voxel_ml / 1e6

    def to_dict(self) -> Dict[str, Any]:
        def geometry(img: Optional[sitk.Image]) -> Optional[Dict[str, Any]]:
            if img is None:
                return None
            return {"size": list(img.GetSize()), "spacing_mm": list(img.GetSpacing()),
                    "origin_mm": list(img.GetOrigin()), "direction": list(img.GetDirection())}

        return {
            "hours_post_injection": self.hours_post_injection,
            "acquisition_datetime_utc": self.acquisition_datetime.isoformat(),
            "spect_series_uid": self.spect_series_uid, "ct_series_uid": self.ct_series_uid,
            "frame_of_reference_uid": self.frame_of_reference_uid, "study_uid": self.study_uid,
            "spect_file": self.spect_file, "source_files": self.source_files,
            "total_activity_in_fov_mbq": self.total_activity_mbq,
            "conversion": self.conversion, "spect_geometry": geometry(self.spect_bqml),
            "ct_geometry": geometry(self.ct_hu), "warnings": list(self.warnings),
        }


@dataclass
class Cycle:
    """All time points of one treatment cycle, in chronological order, with provenance."""

    timepoints: List[Timepoint]
    injection_datetime: _dt.datetime
    injected_activity_mbq: float
    nuclide: Nuclide
    patient_id: str
    study_uids: List[str]
    warnings: List[str]
    log: List[str]
    overrides_applied: Dict[str, Any]
    injection_source: str = ""
    activity_source: str = ""
    input_dir: str = ""

    def to_dict(self) -> Dict[str, Any]:
        return {
            "input_dir": self.input_dir,
            "patient_id": self.patient_id,
            "nuclide": self.nuclide.name,
            "injection_datetime_utc": self.injection_datetime.isoformat(),
            "injection_source": self.injection_source,
            "injected_activity_mbq": self.injected_activity_mbq,
            "activity_source": self.activity_source,
            "study_uids": list(self.study_uids),
            "timepoints": [tp.to_dict() for tp in self.timepoints],
            "overrides_applied": dict(self.overrides_applied),
            "warnings": list(self.warnings),
            "log": list(self.log),
        }
