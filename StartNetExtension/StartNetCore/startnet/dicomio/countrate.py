"""Observed count rate per detector head for the paralysable dead-time correction.

A paralysable camera head loses events according to ITS OWN total event rate (every energy it
processes, photopeak and scatter), R_obs = R e^(-R tau), inverted with Lambert W (REFERENCE.md
section 3). The reconstructed photopeak image is the wrong rate: it holds only the photopeak
window, both heads summed, after scatter correction and with the reconstruction's own scaling.
The rate of each head comes from, in this order:

1. ``override``: ``Overrides.count_rate_kcps`` (``--count-rate-kcps``), the observed
   total-spectrum rate per head in kcps: one value for every time point, or one per time point in
   chronological order.
2. ``projections``: the NM TOMO projection series (ImageType TOMO, not RECON TOMO; emission) of
   the same study whose acquisition starts within 30 min of the reconstruction's (the closest).
   Counts per head: the sum of the pixel values of every frame of that head (Detector Vector
   (0054,0020)) over all energy windows (Energy Window Vector (0054,0010)), scatter windows
   included; time per head: the per-view ActualFrameDuration (0018,1242) (the Rotation Information
   Sequence (0054,0052) item of the frame's Rotation Vector (0054,0050), else the top-level value)
   summed over the head's views of one window. Without a Detector Vector the counts and time are
   split equally between NumberOfDetectors (0054,0021) heads (with a warning).
3. ``header``: when the projections' pixel data cannot be read, their Counts Accumulated
   (0018,0070) (NM Image Module: all gamma events of all frames) split equally between
   NumberOfDetectors heads over the rotation time.

Not used: Counts Accumulated of a reconstruction (processed data; writers put the reconstructed
photopeak sum there), Count Rate (0018,1243) (the MAXIMUM rate of the acquisition, not the mean)
and vendor private tags. With none of these the correction cannot be made and
:func:`resolve_head_rates` raises an InputError saying what to pass.

The reconstruction's factor is the mean of the heads' factors R_h / R_obs,h weighted by the heads'
observed counts (the heads' share of the image).
"""

from __future__ import annotations

import datetime as _dt
import math
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any, Dict, List, Optional, Sequence, Tuple

import numpy as np
from scipy.special import lambertw

from startnet.dicomio.model import SeriesInfo
from startnet.dicomio.pixels import read_frames
from startnet.dicomio.timing import acquisition_start, make_context
from startnet.errors import DicomInputError, InputError

SAME_ACQUISITION_S = 30 * 60.0
PROJECTIONS = "projections"
HEADER = "header"
OVERRIDE = "override"


@dataclass
class HeadRates:
    """Observed total-spectrum count rate of each detector head and where it came from."""

    rates_cps: List[float]
    counts: List[float]  # observed counts per head (weights of the heads' factors)
    source: str  # "override" | "projections" | "header"
    detail: str  # file and attributes, or the option

    def to_dict(self) -> Dict[str, Any]:
        return {"count_rate_source": self.source, "count_rate_detail": self.detail,
                "count_rate_per_head_cps": [float(r) for r in self.rates_cps]}


def paralysable_factor(observed_cps: float, tau_s: float, where: str) -> float:
    """True/observed rate R/R_obs of a paralysable detector (R_obs = R e^(-R tau))."""
    x = observed_cps * tau_s
    if x <= 0:
        return 1.0
    if x > math.exp(-1):
        raise InputError(f"{where}: observed count rate {observed_cps:.4g} cps per head with dead time {tau_s:g} s "
                         "exceeds the paralysable maximum 1/(e tau); check the dead time and the count rate")
    return float(np.real(-lambertw(-x, 0))) / x


def image_factor(rates: HeadRates, tau_s: float, where: str) -> Tuple[float, List[float]]:
    """(count-weighted mean factor of the heads, factor per head)."""
    per_head = [paralysable_factor(r, tau_s, where) for r in rates.rates_cps]
    weights = np.asarray(rates.counts, dtype=np.float64)
    if not np.all(np.isfinite(weights)) or weights.sum() <= 0:
        weights = np.ones(len(per_head))
    return float(np.dot(weights, per_head) / weights.sum()), per_head


def override_rates(values_kcps: Sequence[float], index: int) -> HeadRates:
    value = float(values_kcps[0] if len(values_kcps) == 1 else values_kcps[index])
    which = "for every time point" if len(values_kcps) == 1 else f"for time point {index}"
    return HeadRates([value * 1e3], [1.0], OVERRIDE, f"--count-rate-kcps {value:g} ({which})")


def _ints(ds, keyword: str, n: int, path: str, tag: str) -> Optional[np.ndarray]:
    value = getattr(ds, keyword, None)
    if value is None or (hasattr(value, "__len__") and len(value) == 0):
        return None
    values = np.array([int(v) for v in (value if hasattr(value, "__len__") else [value])])
    if len(values) != n:
        raise DicomInputError(f"{path}: {keyword} {tag} has {len(values)} values for NumberOfFrames (0028,0008) {n}")
    return values


def _frame_durations_s(ds, n: int, path: str) -> np.ndarray:
    """Acquisition time of each projection frame (s)."""
    rotations = list(getattr(ds, "RotationInformationSequence", None) or [])
    rot_vector = _ints(ds, "RotationVector", n, path, "(0054,0050)")
    top = getattr(ds, "ActualFrameDuration", None)
    out = np.empty(n)
    for i in range(n):
        r = int(rot_vector[i]) - 1 if rot_vector is not None else 0
        value = getattr(rotations[r], "ActualFrameDuration", None) if 0 <= r < len(rotations) else None
        if value in (None, ""):
            value = top
        if value in (None, "") or not float(value) > 0:
            raise DicomInputError(f"{path}: projection frame {i + 1} has no ActualFrameDuration (0018,1242) "
                                  "(per view, in the Rotation Information Sequence (0054,0052) or top level)")
        out[i] = float(value) / 1000.0
    return out


def _heads(ds) -> int:
    n = getattr(ds, "NumberOfDetectors", None)
    return int(n) if n not in (None, "") and int(n) > 0 else 1


def _from_pixels(ds, path: str, counts: Dict[int, float], times: Dict[int, float],
                 warnings: List[str]) -> None:
    stored = read_frames(ds, path).astype(np.float64)
    n = stored.shape[0]
    slope = float(getattr(ds, "RescaleSlope", 1.0) or 1.0)
    intercept = float(getattr(ds, "RescaleIntercept", 0.0) or 0.0)
    frame_counts = stored.reshape(n, -1).sum(axis=1) * slope + intercept * stored[0].size
    durations = _frame_durations_s(ds, n, path)
    windows = _ints(ds, "EnergyWindowVector", n, path, "(0054,0010)")
    detectors = _ints(ds, "DetectorVector", n, path, "(0054,0020)")
    one_window = np.ones(n, bool) if windows is None else windows == windows.min()
    if detectors is None:
        heads = _heads(ds)
        if heads > 1:
            warnings.append(f"{path}: projections without Detector Vector (0054,0020); their counts and time are "
                            f"split equally between the NumberOfDetectors (0054,0021) {heads} heads")
        for h in range(1, heads + 1):
            counts[h] = counts.get(h, 0.0) + float(frame_counts.sum()) / heads
            times[h] = times.get(h, 0.0) + float(durations[one_window].sum()) / heads
        return
    for h in sorted(set(detectors.tolist())):
        sel = detectors == h
        counts[h] = counts.get(h, 0.0) + float(frame_counts[sel].sum())
        times[h] = times.get(h, 0.0) + float(durations[sel & one_window].sum())


def _from_header(ds, path: str, reason: str, counts: Dict[int, float], times: Dict[int, float],
                 warnings: List[str]) -> bool:
    accumulated = getattr(ds, "CountsAccumulated", None)
    rotations = list(getattr(ds, "RotationInformationSequence", None) or [])
    seconds = 0.0
    for item in rotations:
        per_view, views = getattr(item, "ActualFrameDuration", None), getattr(item, "NumberOfFramesInRotation", None)
        if per_view not in (None, "") and views not in (None, ""):
            seconds += float(per_view) / 1000.0 * int(views)
    if accumulated in (None, "") or not float(accumulated) > 0 or not seconds > 0:
        return False
    heads = _heads(ds)
    warnings.append(f"{path}: projection pixel data unusable ({reason}); count rate from Counts Accumulated "
                    f"(0018,0070) {int(accumulated)} split equally between {heads} head(s) over {seconds:g} s")
    for h in range(1, heads + 1):
        counts[h] = counts.get(h, 0.0) + float(accumulated) / heads
        times[h] = times.get(h, 0.0) + seconds
    return True


def projection_rates(info: SeriesInfo, warnings: List[str]) -> Optional[HeadRates]:
    """Per-head total-spectrum rates of one projection series (None: neither pixels nor header usable)."""
    counts: Dict[int, float] = OrderedDict()
    times: Dict[int, float] = OrderedDict()
    source = PROJECTIONS
    for ds, path in zip(info.headers, info.files):
        try:
            _from_pixels(ds, path, counts, times, warnings)
        except DicomInputError as exc:
            if not _from_header(ds, path, str(exc), counts, times, warnings):
                raise
            source = HEADER
    if not counts or any(not times[h] > 0 for h in counts):
        return None
    heads = list(counts)
    rates = [counts[h] / times[h] for h in heads]
    what = ("sum of pixel values of all energy windows per Detector Vector (0054,0020) head"
            if source == PROJECTIONS else "Counts Accumulated (0018,0070)")
    detail = (f"NM projections {info.series_uid} ({info.files[0]}): {what}; heads "
              + ", ".join(f"{h}: {counts[h]:.4g} counts / {times[h]:g} s" for h in heads))
    return HeadRates(rates, [counts[h] for h in heads], source, detail)


def matching_projections(projections: Sequence[SeriesInfo], study_uid: str, acquisition_utc: _dt.datetime,
                         zone) -> Optional[SeriesInfo]:
    """The projection series of the same study starting closest to (within 30 min of) ``acquisition_utc``."""
    best, best_s = None, SAME_ACQUISITION_S
    for info in projections:
        if info.study_uid != study_uid:
            continue
        ds = info.headers[0]
        if "TRANSMISSION" in str(getattr(ds, "ImageType", "")).upper():
            continue
        try:
            start = acquisition_start(ds, make_context(ds, info.files[0], zone))[0]
        except DicomInputError:
            continue
        gap = abs((start - acquisition_utc).total_seconds())
        if gap <= best_s:
            best, best_s = info, gap
    return best


def resolve_head_rates(index: int, spect_path: str, study_uid: str, acquisition_utc: _dt.datetime,
                       projections: Sequence[SeriesInfo], count_rate_kcps: Optional[Sequence[float]],
                       tau_s: float, zone, warnings: List[str]) -> HeadRates:
    """The per-head rates of time point ``index``: override, else projections/header, else InputError."""
    if count_rate_kcps:
        return override_rates(count_rate_kcps, index)
    info = matching_projections(projections, study_uid, acquisition_utc, zone)
    rates = projection_rates(info, warnings) if info is not None else None
    if rates is not None:
        return rates
    found = (f"NM projections {info.series_uid} have neither readable pixel data nor Counts Accumulated "
             "(0018,0070) with a rotation time" if info is not None else
             f"no NM projection series (ImageType TOMO) of study {study_uid} within 30 min of this acquisition "
             "in the input folder")
    raise InputError(f"{spect_path}: dead-time correction requested (dead time {tau_s:g} s) but the observed "
                     f"count rate per detector head is unknown: {found} (the reconstruction's own counts are "
                     "photopeak-only and not used); add the projections to the input folder or pass "
                     "--count-rate-kcps (total-spectrum rate per head, kcps, one value or one per time point)")
