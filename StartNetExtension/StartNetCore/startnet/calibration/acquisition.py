"""One calibration SPECT read with the patient rules (``startnet.dicomio``): discovery, time zones, units.

The folder must hold one SPECT acquisition (several reconstructions of it are chosen between as for
a patient). Its values become:

- counts (Units CNTS): the loader's counts -> activity rule with the calibration factor given
  (``cf_cps_per_mbq``); with 1 cps/MBq the image is the count *rate* at the acquisition start per
  mL (decay during the acquisition and, when given, dead time corrected), which is what the
  sensitivity is made from;
- Bq/mL (vendor quantification): the activity concentration at the acquisition start.

The known activity's time (``reference_utc``) may precede the scan (decay to the acquisition start)
or follow it by up to ``MAX_REFERENCE_AFTER_SCAN_H`` (a source measured after the scan); later than
that is refused as a wrong date. The loader's injection time is set to the earlier of the two (it is
only used for Bq/mL images decay-corrected to the administration, DecayCorrection ADMIN).
"""

from __future__ import annotations

import datetime as _dt
from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional, Tuple

import SimpleITK as sitk

from startnet.calibration.camera import camera_identity
from startnet.errors import DicomInputError, InputError

MAX_REFERENCE_AFTER_SCAN_H = 24.0


@dataclass
class Acquisition:
    """A calibration SPECT: ``image`` in Bq/mL (or cps/mL at 1 cps/MBq for counts), timing, camera."""

    image: sitk.Image
    mode: str  # "counts" | "bqml"
    acquisition_utc: _dt.datetime
    series_uid: str
    spect_file: str
    camera: Dict[str, Any]
    conversion: Dict[str, Any]
    input_dir: str
    warnings: List[str] = field(default_factory=list)

    @property
    def voxel_ml(self) -> float:
        sx, sy, sz = self.image.GetSpacing()
        return sx * sy * sz / 1000.0


def _first_spect(disc) -> Tuple[Any, str]:
    if not disc.spect_series:
        seen = "; ".join(f"{s.modality} {s.series_uid}: {s.reason}" for s in disc.series[:5]) or "no DICOM files"
        raise DicomInputError(f"{disc.input_dir}: no SPECT reconstruction (NM, ImageType RECON TOMO) found ({seen})")
    series = disc.spect_series[0]
    return series.headers[0], series.files[0]


def units_of(input_dir) -> str:
    """'counts' or 'bqml' of the folder's (first) SPECT reconstruction."""
    from startnet.dicomio import discover
    from startnet.dicomio.units import units_mode

    ds, path = _first_spect(discover(input_dir))
    return units_mode(ds, path)[0]


def load_acquisition(input_dir, *, reference_utc: Optional[_dt.datetime] = None,
                     cf_cps_per_mbq: Optional[float] = None, dead_time_s: Optional[float] = None,
                     count_rate_kcps: Optional[Tuple[float, ...]] = None,
                     timezone: str = "Europe/Stockholm") -> Acquisition:
    """Read the folder's (or DICOM files') one SPECT acquisition (see module doc); counts need ``cf_cps_per_mbq``."""
    from startnet.dicomio import Overrides, discover, load_cycle
    from startnet.dicomio.timing import acquisition_start, get_zone, make_context
    from startnet.dicomio.units import units_mode

    disc = discover(input_dir)
    ds, path = _first_spect(disc)
    acquired, _ = acquisition_start(ds, make_context(ds, path, get_zone(timezone)))
    injection = acquired
    if reference_utc is not None:
        after_h = (reference_utc - acquired).total_seconds() / 3600.0
        if after_h > MAX_REFERENCE_AFTER_SCAN_H:
            raise InputError(f"activity time {reference_utc.isoformat()} is {after_h:.1f} h after the scan's start "
                             f"{acquired.isoformat()} ({path}); expected the activity measured before the scan or at "
                             f"most {MAX_REFERENCE_AFTER_SCAN_H:g} h after it (wrong date or time zone?)")
        injection = min(reference_utc, acquired)
    mode = units_mode(ds, path)[0]
    if mode == "counts" and cf_cps_per_mbq is None:
        raise InputError(f"{path}: the SPECT holds counts (Units {getattr(ds, 'Units', '') or 'absent'}) and no "
                         "calibration factor is known: run 'startnet calibrate sensitivity' into the same CAL.json "
                         "first, or use a reconstruction in Bq/mL")
    overrides = Overrides(injection_datetime=injection, injected_activity_mbq=1.0,
                          calibration_cps_per_mbq=cf_cps_per_mbq if mode == "counts" else None,
                          dead_time_s=dead_time_s, count_rate_kcps=count_rate_kcps, timezone=timezone)
    cycle = load_cycle(input_dir, overrides=overrides, discovery=disc)
    if len(cycle.timepoints) != 1:
        raise InputError(f"{disc.input_dir}: {len(cycle.timepoints)} SPECT acquisitions at different times; "
                         "expected one calibration acquisition per folder")
    tp = cycle.timepoints[0]
    chosen = next(s for s in disc.spect_series if s.series_uid == tp.spect_series_uid)
    warnings = [w for w in cycle.warnings if "no CT found" not in w and "injected activity" not in w]
    return Acquisition(tp.spect_bqml, tp.conversion["mode"], tp.acquisition_datetime, tp.spect_series_uid,
                       tp.spect_file, camera_identity(chosen.headers[0]), dict(tp.conversion), str(disc.input_dir),
                       warnings)
