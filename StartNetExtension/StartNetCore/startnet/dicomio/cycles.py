"""Several treatment cycles among one patient's DICOM files: split them by injection, list each.

A DICOM database (Slicer's) holds all of a patient's studies, often several 177Lu cycles. One
cycle is one injection. :func:`load_cycle` refuses files whose SPECTs disagree on the injection
(``resolve_injection``); here the SPECT reconstructions are grouped first, with the same header
rules as loading (acquisition start, RadiopharmaceuticalStartDateTime, RadionuclideTotalDose):

- the SPECTs are taken in order of acquisition start; a new cycle starts when a SPECT's injection
  datetime differs from the current cycle's by more than ``INJECTION_TOLERANCE_S`` (60 s, the
  tolerance load_cycle accepts within a cycle), or its injected activity by more than
  ``ACTIVITY_TOLERANCE_REL`` (0.5 %), or when it was acquired more than ``MAX_GAP_DAYS`` after
  the previous SPECT (cycles are 6-10 weeks apart, a cycle's scans span about a week). The last
  two rules also cover SPECTs that give only a RadiopharmaceuticalStartTime;
- an injection datetime given as an override means the user names one cycle: nothing is split;
- each cycle keeps its SPECT series, the CT series paired with them (same Frame of Reference,
  else the same study, as load_cycle pairs them), the SPECT projections of its studies (count
  rates for the dead time) and nothing else.

:func:`list_cycles` gives, per cycle, what a user picks from: injection, activity, time points
with hours p.i. and series UIDs, and the cycle's files, without reading any pixel data.
"""

from __future__ import annotations

import datetime as _dt
from dataclasses import dataclass, field
from typing import List, Optional, Sequence

from startnet.dicomio.discovery import discover
from startnet.dicomio.loader import _candidate, _group_acquisitions, _pair_ct
from startnet.dicomio.model import Discovery, Overrides, SeriesInfo
from startnet.dicomio.radiopharm import (
    ACTIVITY_TOLERANCE_REL,
    INJECTION_TOLERANCE_S,
    read_radiopharm,
    resolve_activity,
    resolve_injection,
)
from startnet.dicomio.timing import get_zone
from startnet.physics.lu177 import LU177, Nuclide

MAX_GAP_DAYS = 21.0


@dataclass
class TimepointListing:
    """One time point of a listed cycle (no pixels read)."""

    index: int
    hours_post_injection: float
    acquisition_datetime: _dt.datetime
    spect_series_uid: str
    spect_description: str
    ct_series_uid: Optional[str]


@dataclass
class CycleListing:
    """One injection's time points and the DICOM files that make them up."""

    patient_id: str
    injection_datetime: _dt.datetime
    injection_source: str
    injected_activity_mbq: float
    timepoints: List[TimepointListing]
    discovery: Discovery = field(repr=False)
    warnings: List[str] = field(default_factory=list)

    @property
    def files(self) -> List[str]:
        """Every file of the cycle's SPECT, CT and projection series (what loading needs)."""
        return [path for series in self.discovery.series for path in series.files]

    @property
    def label(self) -> str:
        hours = ", ".join(f"{tp.hours_post_injection:.1f}" for tp in self.timepoints)
        return (f"{self.injection_datetime:%Y-%m-%d %H:%M} UTC, {self.injected_activity_mbq:.0f} MBq, "
                f"{len(self.timepoints)} time points ({hours} h p.i.)")


@dataclass
class _Spect:
    series: SeriesInfo
    acquisition_utc: _dt.datetime
    injection_utc: Optional[_dt.datetime]
    activity_mbq: Optional[float]


def _read_spects(discovery: Discovery, overrides: Overrides, nuclide: Nuclide) -> List[_Spect]:
    zone = get_zone(overrides.timezone)
    spects = []
    for series in discovery.spect_series:
        cand = _candidate(series, zone)
        info = read_radiopharm(cand.ds, cand.path, cand.ctx, nuclide)
        spects.append(_Spect(series, cand.acquisition_utc, info.injection_utc, info.activity_mbq))
    return sorted(spects, key=lambda s: s.acquisition_utc)


def _starts_new_cycle(spect: _Spect, group: List[_Spect]) -> bool:
    previous = group[-1]
    if (spect.acquisition_utc - previous.acquisition_utc).total_seconds() > MAX_GAP_DAYS * 86400.0:
        return True
    injections = [s.injection_utc for s in group if s.injection_utc is not None]
    if spect.injection_utc is not None and injections and \
            abs((spect.injection_utc - injections[0]).total_seconds()) > INJECTION_TOLERANCE_S:
        return True
    activities = [s.activity_mbq for s in group if s.activity_mbq is not None]
    return bool(spect.activity_mbq is not None and activities
                and abs(spect.activity_mbq - activities[0]) > ACTIVITY_TOLERANCE_REL * activities[0])


def split_by_injection(discovery: Discovery, overrides: Optional[Overrides] = None,
                       nuclide: Nuclide = LU177) -> List[Discovery]:
    """One Discovery per cycle (injection), in chronological order; each is loadable with load_cycle."""
    overrides = overrides or Overrides()
    spects = _read_spects(discovery, overrides, nuclide)
    if not spects:
        return [discovery]
    groups: List[List[_Spect]] = [[spects[0]]]
    for spect in spects[1:]:
        if overrides.injection_datetime is None and _starts_new_cycle(spect, groups[-1]):
            groups.append([spect])
        else:
            groups[-1].append(spect)
    if len(groups) == 1:
        return [discovery]
    return [_sub_discovery(discovery, [s.series for s in group], number, len(groups))
            for number, group in enumerate(groups, start=1)]


def _sub_discovery(discovery: Discovery, spects: List[SeriesInfo], number: int, total: int) -> Discovery:
    frames = {s.frame_of_reference_uid for s in spects if s.frame_of_reference_uid}
    studies = {s.study_uid for s in spects}
    keep = []
    for series in discovery.series:
        if series.role == "spect":
            wanted = any(series is s for s in spects)
        elif series.role == "ct":
            wanted = series.frame_of_reference_uid in frames or series.study_uid in studies
        else:
            wanted = series.study_uid in studies
        if wanted:
            keep.append(series)
    log = list(discovery.log) + [f"cycle {number} of {total}: {len(spects)} SPECT series of "
                                 f"{len(studies)} study(ies), {sum(s.role == 'ct' for s in keep)} CT series"]
    return Discovery(input_dir=discovery.input_dir, series=keep, skipped_files=list(discovery.skipped_files),
                     log=log)


def list_cycles(files: Sequence[str], overrides: Optional[Overrides] = None,
                nuclide: Nuclide = LU177) -> List[CycleListing]:
    """The cycles among ``files`` (a folder or a list of DICOM paths) with their time points, no pixels read."""
    overrides = overrides or Overrides()
    zone = get_zone(overrides.timezone)
    discovery = discover(list(files) if isinstance(files, (list, tuple)) else files)
    listings = []
    for part in split_by_injection(discovery, overrides, nuclide):
        warnings: List[str] = []
        cands = _group_acquisitions([_candidate(s, zone) for s in part.spect_series], [], warnings)
        infos = [read_radiopharm(c.ds, c.path, c.ctx, nuclide) for c in cands]
        injection, source = resolve_injection(infos, cands[0].acquisition_utc, overrides.injection_datetime,
                                              warnings)
        activity, _ = resolve_activity(infos, overrides.injected_activity_mbq, warnings)
        timepoints = []
        for cand in cands:
            ct = _pair_ct(cand, part.ct_series, zone, warnings)
            timepoints.append(TimepointListing(
                0, (cand.acquisition_utc - injection).total_seconds() / 3600.0, cand.acquisition_utc,
                cand.series.series_uid, cand.series.description, ct.series_uid if ct else None))
        timepoints.sort(key=lambda tp: tp.hours_post_injection)
        for index, tp in enumerate(timepoints):
            tp.index = index
        patient = next((s.patient_id for s in part.spect_series if s.patient_id), "")
        listings.append(CycleListing(patient, injection, source, activity, timepoints, part, warnings))
    return listings
