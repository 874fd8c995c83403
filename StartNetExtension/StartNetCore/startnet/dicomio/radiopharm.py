"""Injection time, injected activity and nuclide from the Radiopharmaceutical Information Sequence.

Sources, in order (REFERENCE.md section 5), each recorded in the result:
- injection time: RadiopharmaceuticalStartDateTime (0018,1078); else RadiopharmaceuticalStartTime
  (0018,1072) whose date is not in the header: it is taken as the latest such clock time not
  after the cycle's first SPECT acquisition (assumes the first scan is within 24 h of
  injection; a warning says so and ``Overrides.injection_datetime`` replaces it);
- activity: RadionuclideTotalDose (0018,1074), read as Bq when >= 1e5 else as MBq (the PET module
  says Bq, the NM Isotope module MBq; a therapy activity is unambiguous either way);
- nuclide: Radionuclide Code Sequence (0054,0300) code SCT 447553000 (177Lu) or a code meaning
  naming Lu-177, and RadionuclideHalfLife (0018,1075) in s within 1 % of 159.528 h; a header
  half-life within that tolerance is used for decay corrections (vendor values differ by
  ~0.05 %), otherwise ICRP 107.
All SPECT files of a cycle must agree (injection within 60 s, activity within 0.5 %): if not,
DicomInputError names both files unless overrides replace the disagreeing values.
"""

from __future__ import annotations

import datetime as _dt
from dataclasses import dataclass
from typing import List, Optional

from startnet.dicomio.timing import TimeContext, parse_dt, parse_tm
from startnet.errors import DicomInputError
from startnet.physics.lu177 import Nuclide

SEQ = "Radiopharmaceutical Information Sequence (0054,0016)"
INJECTION_TOLERANCE_S = 60.0
ACTIVITY_TOLERANCE_REL = 0.005
HALF_LIFE_TOLERANCE_REL = 0.01


@dataclass
class Radiopharm:
    """What one SPECT file says about the injection."""

    path: str
    injection_utc: Optional[_dt.datetime]
    injection_time_only: Optional[_dt.time]
    injection_source: str
    activity_mbq: Optional[float]
    half_life_s: Optional[float]
    nuclide_text: str
    context: TimeContext
    activity_unit: str = ""


def read_radiopharm(ds, path: str, ctx: TimeContext, nuclide: Nuclide) -> Radiopharm:
    """Read and check the radiopharmaceutical information of one SPECT dataset."""
    seq = getattr(ds, "RadiopharmaceuticalInformationSequence", None)
    item = seq[0] if seq else None
    injection_utc = None
    time_only = None
    source = ""
    if item is not None:
        dt_text = str(getattr(item, "RadiopharmaceuticalStartDateTime", "") or "").strip()
        tm_text = str(getattr(item, "RadiopharmaceuticalStartTime", "") or "").strip()
        if dt_text:
            naive, explicit = parse_dt(dt_text, path, f"RadiopharmaceuticalStartDateTime (0018,1078) in {SEQ}")
            injection_utc = ctx.to_utc(naive, "RadiopharmaceuticalStartDateTime", explicit)
            source = f"RadiopharmaceuticalStartDateTime (0018,1078) in {path}"
        elif tm_text:
            time_only = parse_tm(tm_text, path, f"RadiopharmaceuticalStartTime (0018,1072) in {SEQ}")
            source = f"RadiopharmaceuticalStartTime (0018,1072) in {path}, date inferred"
    activity_mbq = None
    activity_unit = ""
    half_life_s = None
    nuclide_text = ""
    if item is not None:
        total = getattr(item, "RadionuclideTotalDose", None)
        if total not in (None, ""):
            activity_mbq, activity_unit = total_dose_mbq(float(total))
            if not activity_mbq > 0:
                raise DicomInputError(f"{path}: RadionuclideTotalDose (0018,1074) in {SEQ} is {total!r}, "
                                      "expected a positive activity in Bq")
        hl = getattr(item, "RadionuclideHalfLife", None)
        if hl not in (None, ""):
            half_life_s = float(hl)
        nuclide_text = _check_nuclide_code(item, path, nuclide)
    if half_life_s is not None:
        rel = abs(half_life_s / nuclide.half_life_s - 1.0)
        if rel > HALF_LIFE_TOLERANCE_REL:
            raise DicomInputError(
                f"{path}: RadionuclideHalfLife (0018,1075) in {SEQ} is {half_life_s:g} s "
                f"({half_life_s / 3600:.2f} h), expected {nuclide.name} ({nuclide.half_life_h:.2f} h): "
                "this is not a 177Lu study"
            )
    return Radiopharm(path, injection_utc, time_only, source, activity_mbq, half_life_s, nuclide_text, ctx,
                      activity_unit)


def total_dose_mbq(value: float):
    """(MBq, unit read) of RadionuclideTotalDose (0018,1074).

    The PET module defines it in Bq, the NM Isotope module in MBq, and vendors write either. A
    therapy activity is 0.1-100 GBq, so a value of at least 1e5 is read as Bq and a smaller one
    as MBq (unambiguous over that range); the unit assumed is recorded.
    """
    if value >= 1e5:
        return value / 1e6, "Bq"
    return value, "MBq"


def _check_nuclide_code(item, path: str, nuclide: Nuclide) -> str:
    codes = getattr(item, "RadionuclideCodeSequence", None)
    if not codes:
        return ""
    code = codes[0]
    value = str(getattr(code, "CodeValue", "") or "").strip()
    meaning = str(getattr(code, "CodeMeaning", "") or "").strip()
    norm = meaning.lower().replace("-", "").replace(" ", "").replace("^", "")
    looks_lu = "lu177" in norm or "177lu" in norm or "lutetium177" in norm
    if value == nuclide.snomed_code or looks_lu:
        return f"{value} {meaning}".strip()
    raise DicomInputError(
        f"{path}: Radionuclide Code Sequence (0054,0300) in {SEQ} is {value!r} ({meaning!r}), "
        f"expected {nuclide.name} (SCT {nuclide.snomed_code}); only 177Lu cycles are supported"
    )


def resolve_injection(infos: List[Radiopharm], first_acquisition_utc: _dt.datetime,
                      override: Optional[_dt.datetime], warnings: List[str]):
    """(injection UTC, source) from all SPECT files, checking they agree."""
    with_dt = [r for r in infos if r.injection_utc is not None]
    if override is not None:
        for r in with_dt:
            delta = abs((r.injection_utc - override).total_seconds())
            if delta > INJECTION_TOLERANCE_S:
                warnings.append(f"injection time override {override.isoformat()} differs from "
                                f"{r.path} ({r.injection_utc.isoformat()}) by {delta / 3600:.2f} h")
        return override.astimezone(_dt.timezone.utc), "override"
    for r in with_dt[1:]:
        delta = abs((r.injection_utc - with_dt[0].injection_utc).total_seconds())
        if delta > INJECTION_TOLERANCE_S:
            raise DicomInputError(
                f"injection times disagree: {with_dt[0].path} says {with_dt[0].injection_utc.isoformat()} "
                f"and {r.path} says {r.injection_utc.isoformat()} (RadiopharmaceuticalStartDateTime "
                f"(0018,1078), {delta / 3600:.2f} h apart); pass the right one as an override"
            )
    if with_dt:
        return with_dt[0].injection_utc, with_dt[0].injection_source
    time_only = [r for r in infos if r.injection_time_only is not None]
    if not time_only:
        names = ", ".join(r.path for r in infos)
        raise DicomInputError(
            f"{names}: no injection time: RadiopharmaceuticalStartDateTime (0018,1078) and "
            f"RadiopharmaceuticalStartTime (0018,1072) in {SEQ} are missing; pass --injection-datetime"
        )
    for r in time_only[1:]:
        if r.injection_time_only != time_only[0].injection_time_only:
            raise DicomInputError(
                f"injection times disagree: {time_only[0].path} says {time_only[0].injection_time_only} "
                f"and {r.path} says {r.injection_time_only} (RadiopharmaceuticalStartTime (0018,1072))"
            )
    first = time_only[0]
    ctx = first.context
    local_first = first_acquisition_utc.astimezone(ctx.fixed_offset or ctx.zone)
    candidate = _dt.datetime.combine(local_first.date(), first.injection_time_only)
    injection = ctx.to_utc(candidate, "RadiopharmaceuticalStartTime")
    if injection > first_acquisition_utc:
        injection = ctx.to_utc(candidate - _dt.timedelta(days=1), "RadiopharmaceuticalStartTime")
    warnings.append(
        f"{first.path}: only RadiopharmaceuticalStartTime (0018,1072) is present; injection date "
        f"inferred as {injection.isoformat()} assuming the first scan is within 24 h of injection "
        "(pass --injection-datetime if not)"
    )
    return injection, first.injection_source


def resolve_activity(infos: List[Radiopharm], override: Optional[float], warnings: List[str]):
    """(injected activity MBq, source) from all SPECT files, checking they agree."""
    with_a = [r for r in infos if r.activity_mbq is not None]
    if override is not None:
        for r in with_a:
            if abs(r.activity_mbq / override - 1.0) > ACTIVITY_TOLERANCE_REL:
                warnings.append(f"injected activity override {override:g} MBq differs from {r.path} "
                                f"({r.activity_mbq:g} MBq)")
        return float(override), "override"
    for r in with_a[1:]:
        if abs(r.activity_mbq / with_a[0].activity_mbq - 1.0) > ACTIVITY_TOLERANCE_REL:
            raise DicomInputError(
                f"injected activities disagree: {with_a[0].path} says {with_a[0].activity_mbq:g} MBq and "
                f"{r.path} says {r.activity_mbq:g} MBq (RadionuclideTotalDose (0018,1074)); pass the "
                "right one as an override"
            )
    if not with_a:
        names = ", ".join(r.path for r in infos)
        raise DicomInputError(f"{names}: RadionuclideTotalDose (0018,1074) in {SEQ} is missing; "
                              "pass --injected-activity-mbq")
    return with_a[0].activity_mbq, (f"RadionuclideTotalDose (0018,1074) in {with_a[0].path} "
                                    f"(read as {with_a[0].activity_unit})")


def half_life_used(infos: List[Radiopharm], nuclide: Nuclide):
    """(half-life in s, source): the header value when present (checked within 1 %), else ICRP 107."""
    for r in infos:
        if r.half_life_s is not None:
            return r.half_life_s, f"RadionuclideHalfLife (0018,1075) in {r.path}"
    return nuclide.half_life_s, f"ICRP 107 ({nuclide.name}, {nuclide.half_life_h:.3f} h)"
