"""Load a cycle folder: choose the SPECT reconstruction and CT of each time point and calibrate.

One acquisition may have several reconstructions (e.g. with and without attenuation
correction): reconstructions starting within 30 min of each other are one time point, and the
preferred one is quantitative (Bq/mL), then attenuation corrected (CorrectedImage ATTN), then
scatter corrected; the others are logged as alternatives. The CT of a time point is the CT
series sharing the SPECT's Frame of Reference (closest in time if several), else the CT of the
same study closest in time (with a warning), else none (with a warning).
"""

from __future__ import annotations

import datetime as _dt
import os
from dataclasses import dataclass, field
from typing import Dict, List, Optional, Tuple

import numpy as np
import SimpleITK as sitk

from startnet.dicomio.countrate import HeadRates, resolve_head_rates
from startnet.dicomio.discovery import discover
from startnet.dicomio.enhanced import load_enhanced_ct, single_multiframe
from startnet.dicomio.geometry import check_ct_covers_spect, nm_multiframe_grid, stack_slices
from startnet.dicomio.model import Cycle, Discovery, Overrides, SeriesInfo, Timepoint
from startnet.dicomio.pixels import read_frames
from startnet.dicomio.radiopharm import (
    half_life_used,
    read_radiopharm,
    resolve_activity,
    resolve_injection,
)
from startnet.dicomio.rawattr import RESCALE_INTERCEPT, RESCALE_SLOPE, raw_floats, signature
from startnet.dicomio.timing import TimeContext, acquisition_start, get_zone, make_context
from startnet.dicomio.units import frame_rescale, rwvm_bqml, to_bqml, units_mode
from startnet.errors import DicomInputError, InputError
from startnet.physics.lu177 import LU177, Nuclide

SAME_ACQUISITION_S = 30 * 60.0


@dataclass
class _Candidate:
    series: SeriesInfo
    ds: object
    path: str
    ctx: TimeContext
    acquisition_utc: _dt.datetime
    acquisition_source: str
    rank: Tuple[int, int, int]
    alternatives: List[SeriesInfo] = field(default_factory=list)


def _corrected(ds) -> List[str]:
    value = getattr(ds, "CorrectedImage", None)
    if value is None:
        return []
    return [str(v).upper() for v in (value if not isinstance(value, str) else value.split("\\"))]


def _candidate(info: SeriesInfo, zone) -> _Candidate:
    ds, path = info.headers[0], info.files[0]
    multi = [p for d, p in zip(info.headers, info.files) if int(getattr(d, "NumberOfFrames", 1) or 1) > 1]
    if multi and len(info.files) > 1:
        raise DicomInputError(f"SPECT series {info.series_uid}: {len(info.files)} files of which "
                              f"{multi[0]} is multi-frame; expected one NM multi-frame file or one file per slice")
    ctx = make_context(ds, path, zone)
    acq, source = acquisition_start(ds, ctx)
    try:
        mode, _ = units_mode(ds, path)
    except DicomInputError:
        mode = "unusable"  # only an error if no better reconstruction of this acquisition exists
    corrected = _corrected(ds)
    rank = (int(mode == "bqml"), int("ATTN" in corrected), int("SCAT" in corrected))
    return _Candidate(info, ds, path, ctx, acq, source, rank)


def _group_acquisitions(cands: List[_Candidate], log: List[str], warnings: List[str]) -> List[_Candidate]:
    cands = sorted(cands, key=lambda c: c.acquisition_utc)
    groups: List[List[_Candidate]] = []
    for c in cands:
        if groups and (c.acquisition_utc - groups[-1][0].acquisition_utc).total_seconds() <= SAME_ACQUISITION_S:
            groups[-1].append(c)
        else:
            groups.append([c])
    chosen = []
    for group in groups:
        best = max(group, key=lambda c: c.rank)
        best.alternatives = [c.series for c in group if c is not best]
        for other in group:
            if other is best:
                continue
            alt = other.series
            log.append(f"alternative reconstruction {alt.series_uid} ('{alt.description}') of the same "
                       f"acquisition not used; chose {best.series.series_uid} ('{best.series.description}')")
            overlap = _z_overlap(best, other)
            if overlap is not None and overlap < 0.5:
                warnings.append(
                    f"SPECT {alt.series_uid} ({other.path}) starts within 30 min of {best.series.series_uid} "
                    f"({best.path}) but covers another bed position ({100 * overlap:.0f} % overlap along z); "
                    "only the latter is used (multi-bed SPECT is not merged)")
        chosen.append(best)
    return chosen


def _z_range(cand: _Candidate) -> Optional[Tuple[float, float]]:
    try:
        if len(cand.series.files) > 1:
            zs = [float(ds.ImagePositionPatient[2]) for ds in cand.series.headers]
            return min(zs), max(zs)
        grid = nm_multiframe_grid(cand.ds, cand.path, [])
        n = int(getattr(cand.ds, "NumberOfFrames", 1) or 1)
        ends = [float(grid.origin[2]), float(grid.origin[2] + grid.direction[2, 2] * grid.spacing[2] * (n - 1))]
        return min(ends), max(ends)
    except (DicomInputError, AttributeError, TypeError, ValueError, IndexError):
        return None


def _z_overlap(a: _Candidate, b: _Candidate) -> Optional[float]:
    """Overlap of two reconstructions along z as a fraction of the shorter one (None: unknown)."""
    ra, rb = _z_range(a), _z_range(b)
    if ra is None or rb is None:
        return None
    shorter = max(min(ra[1] - ra[0], rb[1] - rb[0]), 1e-6)
    return max(0.0, min(ra[1], rb[1]) - max(ra[0], rb[0])) / shorter


def _ct_time(info: SeriesInfo, zone) -> Optional[_dt.datetime]:
    ds = info.headers[0]
    try:
        return acquisition_start(ds, make_context(ds, info.files[0], zone))[0]
    except DicomInputError:
        return None


def _pair_ct(cand: _Candidate, cts: List[SeriesInfo], zone, warnings: List[str]) -> Optional[SeriesInfo]:
    def distance(info: SeriesInfo) -> float:
        t = _ct_time(info, zone)
        return abs((t - cand.acquisition_utc).total_seconds()) if t is not None else float("inf")

    for_uid = cand.series.frame_of_reference_uid
    same_for = [c for c in cts if for_uid and c.frame_of_reference_uid == for_uid]
    if same_for:
        return min(same_for, key=lambda c: (distance(c), -len(c.files)))
    same_study = [c for c in cts if c.study_uid == cand.series.study_uid]
    if same_study:
        ct = min(same_study, key=distance)
        warnings.append(f"SPECT {cand.series.series_uid}: no CT shares its FrameOfReferenceUID (0020,0052); "
                        f"used CT {ct.series_uid} of the same study, closest in time")
        return ct
    warnings.append(f"SPECT {cand.series.series_uid} ({cand.path}): no CT found for this time point; "
                    "ct_hu is None (densities and CT-based segmentation unavailable)")
    return None


def _load_spect(cand: _Candidate, injection_utc, half_life, overrides: Overrides, warnings: List[str],
                head_rates: Optional[HeadRates] = None):
    info = cand.series
    label = f"SPECT series {info.series_uid}"
    if len(info.files) == 1:
        stored = read_frames(cand.ds, cand.path)
        n_slices = getattr(cand.ds, "NumberOfSlices", None)
        if n_slices not in (None, "") and int(n_slices) != stored.shape[0]:
            raise DicomInputError(f"{cand.path}: NumberOfFrames (0028,0008) {stored.shape[0]} differs from "
                                  f"NumberOfSlices (0054,0081) {n_slices} (several energy windows or gates "
                                  "in one reconstruction are not supported)")
        grid = nm_multiframe_grid(cand.ds, cand.path, warnings)
        slopes, intercepts = frame_rescale(cand.ds, stored.shape[0])
        order = _slice_vector_order(cand.ds, cand.path, stored.shape[0])
        if order is not None:
            stored, slopes, intercepts = stored[order], slopes[order], intercepts[order]
        mapping = rwvm_bqml(cand.ds, cand.path)
        rwvm = None if mapping is None else [mapping[:2]] * stored.shape[0]
    else:
        order, grid = stack_slices(info.headers, info.files, label, warnings)
        headers = [info.headers[i] for i in order]
        paths = [info.files[i] for i in order]
        mode0 = units_mode(headers[0], paths[0])[0]
        for ds, path in zip(headers[1:], paths[1:]):
            if units_mode(ds, path)[0] != mode0:
                raise DicomInputError(f"{path}: Units (0054,1001) / {label} mixes Bq/mL and counts slices")
        stored = np.concatenate([read_frames(ds, p) for ds, p in zip(headers, paths)])
        pairs = [frame_rescale(ds, 1) for ds in headers]
        slopes = np.array([p[0][0] for p in pairs])
        intercepts = np.array([p[1][0] for p in pairs])
        maps = [rwvm_bqml(ds, p) for ds, p in zip(headers, paths)]
        rwvm = None if maps[0] is None else [m[:2] for m in maps]
    voxel_ml = grid.spacing[0] * grid.spacing[1] * grid.spacing[2] / 1000.0
    bqml, conv = to_bqml(stored, slopes, intercepts, cand.ds, cand.path, voxel_ml, cand.acquisition_utc,
                         injection_utc, half_life[0], half_life[1], overrides, cand.ctx, warnings, rwvm,
                         head_rates)
    return grid.image(bqml), conv


def _slice_vector_order(ds, path: str, n: int) -> Optional[np.ndarray]:
    """Frame order from SliceVector (0054,0080) when frames are not stored slice 1..N, else None."""
    vector = getattr(ds, "SliceVector", None)
    if vector is None or len(vector) == 0:
        return None
    values = np.array([int(v) for v in vector])
    if len(values) != n or sorted(values.tolist()) != list(range(1, n + 1)):
        raise DicomInputError(f"{path}: SliceVector (0054,0080) has {len(values)} values that are not the slice "
                              f"numbers 1..{n} of the NumberOfFrames (0028,0008) {n} frames")
    if np.all(values == np.arange(1, n + 1)):
        return None
    return np.argsort(values, kind="stable")


def _rescale(ds, path: str, cache: Dict) -> Tuple[float, float]:
    key = signature(ds, (RESCALE_SLOPE, RESCALE_INTERCEPT))
    if key not in cache:
        slope = raw_floats(ds, RESCALE_SLOPE, 1, path, "RescaleSlope (0028,1053)")
        intercept = raw_floats(ds, RESCALE_INTERCEPT, 1, path, "RescaleIntercept (0028,1052)")
        cache[key] = (slope[0] if slope else 1.0, intercept[0] if intercept else 0.0)
    return cache[key]


def _load_ct(info: SeriesInfo, warnings: List[str]) -> sitk.Image:
    """HU volume: int16 when every slice's rescale is integral and fits, else float32."""
    label = f"CT series {info.series_uid}"
    multiframe = single_multiframe(info.headers, info.files)
    if multiframe is not None:
        return load_enhanced_ct(multiframe, info.files[0], label, warnings)
    several = [p for d, p in zip(info.headers, info.files) if int(getattr(d, "NumberOfFrames", 1) or 1) > 1]
    if several:
        raise DicomInputError(f"{several[0]}: {label} has {len(info.files)} files of which some are multi-frame; "
                              "expected one file per slice or one enhanced CT file")
    order, grid = stack_slices(info.headers, info.files, label, warnings)
    first = info.headers[order[0]]
    out = np.empty((len(order), int(first.Rows), int(first.Columns)), dtype=np.int16)
    layouts: Dict = {}
    rescales: Dict = {}
    for k, i in enumerate(order):
        ds, path = info.headers[i], info.files[i]
        stored = read_frames(ds, path, layouts)[0]
        slope, intercept = _rescale(ds, path, rescales)
        if out.dtype == np.int16 and slope == 1.0 and intercept == int(intercept):
            low, high = int(stored.min()) + int(intercept), int(stored.max()) + int(intercept)
            if low >= -32768 and high <= 32767:
                np.add(stored, np.int32(intercept), out=out[k], casting="unsafe")
                continue
        if out.dtype == np.int16:
            out = out.astype(np.float32)
        np.multiply(stored, slope, out=out[k], casting="unsafe")
        out[k] += intercept
    return grid.image(out)


def _check_patient(disc: Discovery) -> str:
    ids = sorted({s.patient_id for s in disc.series if s.role != "ignored"})
    if len(ids) > 1:
        examples = {pid: next(s.files[0] for s in disc.series if s.patient_id == pid and s.role != "ignored")
                    for pid in ids}
        listing = "; ".join(f"{pid!r} in {path}" for pid, path in examples.items())
        raise DicomInputError(f"{disc.input_dir}: files of several patients (PatientID (0010,0020)): {listing}")
    return ids[0] if ids else ""


def load_cycle(input_dir: str, overrides: Optional[Overrides] = None, nuclide: Nuclide = LU177,
               discovery: Optional[Discovery] = None) -> Cycle:
    """Discover and load every time point of one cycle as calibrated Bq/mL SPECT + HU CT."""
    overrides = overrides or Overrides()
    zone = get_zone(overrides.timezone)
    disc = discovery if discovery is not None else discover(input_dir)
    log = list(disc.log)
    warnings: List[str] = []
    if not disc.spect_series:
        seen = "; ".join(f"{s.modality} {s.series_uid}: {s.reason}" for s in disc.series[:5])
        raise DicomInputError(f"{disc.input_dir}: no SPECT reconstruction (NM, ImageType RECON TOMO) found "
                              f"among {len(disc.series)} series ({seen})")
    patient_id = _check_patient(disc)
    cands = _group_acquisitions([_candidate(s, zone) for s in disc.spect_series], log, warnings)
    for c in cands:
        warnings.extend(c.ctx.warnings)
        c.ctx.warnings = warnings
    _check_count_rates(overrides, len(cands), warnings)
    infos = [read_radiopharm(c.ds, c.path, c.ctx, nuclide) for c in cands]
    first_acq = cands[0].acquisition_utc
    injection_utc, injection_source = resolve_injection(infos, first_acq, overrides.injection_datetime, warnings)
    activity_mbq, activity_source = resolve_activity(infos, overrides.injected_activity_mbq, warnings)
    timepoints: List[Timepoint] = []
    for cand, info in zip(cands, infos):
        hours = (cand.acquisition_utc - injection_utc).total_seconds() / 3600.0
        if hours < 0:
            raise DicomInputError(f"{cand.path}: acquisition start {cand.acquisition_utc.isoformat()} "
                                  f"({cand.acquisition_source}) is before the injection {injection_utc.isoformat()}")
        tp_warnings: List[str] = []
        head_rates = None
        if overrides.dead_time_s and units_mode(cand.ds, cand.path)[0] == "counts":
            head_rates = resolve_head_rates(len(timepoints), cand.path, cand.series.study_uid, cand.acquisition_utc,
                                            disc.projection_series, overrides.count_rate_kcps,
                                            overrides.dead_time_s, zone, tp_warnings)
        spect, conv = _load_spect(cand, injection_utc, half_life_used([info], nuclide), overrides, tp_warnings,
                                  head_rates)
        conv["acquisition_start_source"] = cand.acquisition_source
        conv["timezone_source"] = cand.ctx.source
        ct_info = _pair_ct(cand, disc.ct_series, zone, tp_warnings)
        ct = None
        if ct_info is not None:
            ct = _load_ct(ct_info, tp_warnings)
            check_ct_covers_spect(spect, ct, cand.series.series_uid, ct_info.series_uid, tp_warnings)
        warnings.extend(tp_warnings)
        timepoints.append(Timepoint(
            hours_post_injection=hours, acquisition_datetime=cand.acquisition_utc, spect_bqml=spect,
            ct_hu=ct, spect_series_uid=cand.series.series_uid,
            ct_series_uid=ct_info.series_uid if ct_info else None,
            frame_of_reference_uid=cand.series.frame_of_reference_uid, study_uid=cand.series.study_uid,
            conversion=conv, source_files=len(cand.series.files) + (len(ct_info.files) if ct_info else 0),
            spect_file=cand.path, warnings=tp_warnings,
        ))
        log.append(f"time point {hours:.2f} h p.i.: SPECT {cand.series.series_uid} ({conv['mode']}, "
                   f"{conv['source']}), CT {ct_info.series_uid if ct_info else 'none'}")
    timepoints.sort(key=lambda tp: tp.hours_post_injection)
    return Cycle(
        timepoints=timepoints, injection_datetime=injection_utc, injected_activity_mbq=activity_mbq,
        nuclide=nuclide, patient_id=patient_id, study_uids=sorted({tp.study_uid for tp in timepoints}),
        warnings=_unique(warnings), log=log, overrides_applied=overrides.applied(),
        injection_source=injection_source, activity_source=activity_source,
        input_dir=os.fspath(disc.input_dir),
    )


def _check_count_rates(overrides: Overrides, n_timepoints: int, warnings: List[str]) -> None:
    rates = overrides.count_rate_kcps
    if rates is None:
        return
    if len(rates) not in (1, n_timepoints):
        raise InputError(f"--count-rate-kcps has {len(rates)} values but the cycle has {n_timepoints} time points: "
                         "give one value for all of them or one per time point in chronological order")
    if not overrides.dead_time_s:
        warnings.append("--count-rate-kcps given without a dead time (--dead-time-s): no dead-time correction")


def _unique(items: List[str]) -> List[str]:
    seen: Dict[str, None] = {}
    for item in items:
        seen.setdefault(item, None)
    return list(seen)
