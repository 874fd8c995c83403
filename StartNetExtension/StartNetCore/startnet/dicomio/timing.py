"""DICOM date/time values -> timezone-aware datetimes (UTC), and acquisition start times.

Time zone policy (REFERENCE.md section 4): DICOM DA/TM values are local wall-clock times.
- A DT value carrying its own ``&ZZXX`` suffix is exact.
- Otherwise local values are interpreted in the configured IANA zone (default
  ``Europe/Stockholm``, via :mod:`zoneinfo`, so the daylight-saving changes on the last Sunday of
  March and October are honoured and an injection on Saturday 10:00 CEST and a scan on Monday
  10:00 CET are 49 h apart).
- ``TimezoneOffsetFromUTC`` (0008,0201), when present, is checked against the zone at the file's
  acquisition time. If they agree the zone interpretation is used (it equals the offset at the
  acquisition and stays correct for an injection entered as wall-clock time before a DST
  change). If they disagree (a site in another zone) the file's fixed offset is used for all its
  DA/TM values and a warning says so.
- A wall-clock time that is ambiguous or does not exist in the zone (the DST change hours) is
  resolved with ``fold=0`` (the earlier offset) and a warning.
"""

from __future__ import annotations

import datetime as _dt
import re
from dataclasses import dataclass, field
from typing import List, Optional, Tuple

from startnet.errors import DicomInputError, InputError

try:
    from zoneinfo import ZoneInfo, ZoneInfoNotFoundError
except ImportError:  # pragma: no cover - Python < 3.9 is not supported by the package
    ZoneInfo = None  # type: ignore[assignment]
    ZoneInfoNotFoundError = Exception  # type: ignore[assignment,misc]

UTC = _dt.timezone.utc
_OFFSET_RE = re.compile(r"^([+-])(\d{2})(\d{2})$")


def time_zone_database_available() -> bool:
    """True when :mod:`zoneinfo` finds zone data: system zone files (``zoneinfo.TZPATH``) or the ``tzdata`` package.

    Windows has no system zone files and Slicer does not bundle ``tzdata``, so there this is False
    until ``tzdata`` is installed. The lookup bypasses zoneinfo's cache (a cached zone proves nothing).
    """
    if ZoneInfo is None:
        return False
    try:
        ZoneInfo.no_cache("UTC")
    except (ZoneInfoNotFoundError, ValueError, OSError):
        return False
    return True


def get_zone(name: str) -> _dt.tzinfo:
    """The IANA time zone ``name`` (InputError saying what to do when it is unknown or zone data is missing)."""
    if ZoneInfo is None:
        raise InputError("time zone support (zoneinfo) is unavailable in this Python")
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError, OSError) as exc:
        if not time_zone_database_available():
            import zoneinfo

            searched = ", ".join(zoneinfo.TZPATH) or "no system folders"
            raise InputError(
                f"time zone {name!r}: this Python has no time-zone database (searched {searched}; the 'tzdata' "
                "package is not installed), needed to read DICOM local times; install 'tzdata' (in Slicer: accept "
                "the install prompt of a START-NET module, or slicer.util.pip_install('tzdata') in the Python "
                "console; elsewhere: pip install tzdata)"
            ) from exc
        raise InputError(
            f"time zone {name!r} is unknown ({exc}); give an IANA name such as 'Europe/Stockholm'"
        ) from exc


def parse_offset(value: str, where: str, attribute: str) -> _dt.timezone:
    """``+0100`` -> fixed timezone."""
    match = _OFFSET_RE.match(str(value).strip())
    if not match:
        raise DicomInputError(f"{where}: {attribute} is {value!r}, expected an offset like +0100")
    sign = 1 if match.group(1) == "+" else -1
    hours, minutes = int(match.group(2)), int(match.group(3))
    if hours > 14 or minutes > 59:
        raise DicomInputError(f"{where}: {attribute} is {value!r}, not a valid UTC offset")
    return _dt.timezone(sign * _dt.timedelta(hours=hours, minutes=minutes))


def parse_da(value: str, where: str, attribute: str) -> _dt.date:
    text = str(value).strip().replace(".", "").replace("-", "")
    try:
        return _dt.date(int(text[0:4]), int(text[4:6]), int(text[6:8]))
    except (ValueError, IndexError) as exc:
        raise DicomInputError(f"{where}: {attribute} is {value!r}, expected a date YYYYMMDD") from exc


def parse_tm(value: str, where: str, attribute: str) -> _dt.time:
    text = str(value).strip().replace(":", "")
    try:
        whole, _, frac = text.partition(".")
        hh = int(whole[0:2])
        mm = int(whole[2:4]) if len(whole) >= 4 else 0
        ss = int(whole[4:6]) if len(whole) >= 6 else 0
        if len(whole) not in (2, 4, 6) or not whole.isdigit():
            raise ValueError(text)
        micro = int((frac + "000000")[:6]) if frac else 0
        return _dt.time(hh, mm, min(ss, 59), micro)
    except (ValueError, IndexError) as exc:
        raise DicomInputError(f"{where}: {attribute} is {value!r}, expected a time HHMMSS.FFFFFF") from exc


def parse_dt(value: str, where: str, attribute: str) -> Tuple[_dt.datetime, Optional[_dt.timezone]]:
    """DT ``YYYYMMDDHHMMSS.FFFFFF&ZZXX`` -> (naive datetime, explicit offset or None)."""
    text = str(value).strip()
    offset = None
    for sign in ("+", "-"):
        if sign in text[8:]:
            pos = text.rindex(sign)
            offset = parse_offset(text[pos:], where, attribute)
            text = text[:pos]
            break
    if len(text) < 8:
        raise DicomInputError(f"{where}: {attribute} is {value!r}, expected YYYYMMDDHHMMSS")
    day = parse_da(text[:8], where, attribute)
    clock = parse_tm(text[8:], where, attribute) if len(text) > 8 else _dt.time(0, 0)
    return _dt.datetime.combine(day, clock), offset


def _text(ds, keyword: str) -> str:
    value = getattr(ds, keyword, None) if ds is not None else None
    return "" if value is None else str(value).strip()


@dataclass
class TimeContext:
    """How one file's local DA/TM values become UTC (see the module docstring)."""

    where: str
    zone: _dt.tzinfo
    fixed_offset: Optional[_dt.timezone] = None
    source: str = ""
    warnings: List[str] = field(default_factory=list)

    def to_utc(self, naive: _dt.datetime, what: str,
               explicit: Optional[_dt.timezone] = None) -> _dt.datetime:
        if explicit is not None:
            return naive.replace(tzinfo=explicit).astimezone(UTC)
        if self.fixed_offset is not None:
            return naive.replace(tzinfo=self.fixed_offset).astimezone(UTC)
        first = naive.replace(tzinfo=self.zone, fold=0)
        second = naive.replace(tzinfo=self.zone, fold=1)
        if first.utcoffset() != second.utcoffset():
            self.warnings.append(
                f"{self.where}: {what} {naive.isoformat()} is ambiguous or does not exist in "
                f"{self.zone} (daylight-saving change); used UTC offset {first.utcoffset()}"
            )
        return first.astimezone(UTC)


def make_context(ds, where: str, zone: _dt.tzinfo) -> TimeContext:
    """The time context of one dataset, checking TimezoneOffsetFromUTC against ``zone``."""
    ctx = TimeContext(where=where, zone=zone, source=f"zone {zone}")
    raw = _text(ds, "TimezoneOffsetFromUTC")
    if not raw:
        ctx.source = f"zone {zone} (no TimezoneOffsetFromUTC (0008,0201))"
        return ctx
    offset = parse_offset(raw, where, "TimezoneOffsetFromUTC (0008,0201)")
    naive = _naive_acquisition(ds, where)
    if naive is None:
        ctx.fixed_offset = offset
        ctx.source = f"TimezoneOffsetFromUTC {raw}"
        return ctx
    zone_offset = naive.replace(tzinfo=zone).utcoffset()
    if zone_offset == offset.utcoffset(None):
        ctx.source = f"zone {zone} (agrees with TimezoneOffsetFromUTC {raw})"
    else:
        ctx.fixed_offset = offset
        ctx.source = f"TimezoneOffsetFromUTC {raw}"
        ctx.warnings.append(
            f"{where}: TimezoneOffsetFromUTC {raw} disagrees with zone {zone} (offset "
            f"{zone_offset}) at the acquisition time; used {raw} for all times of this file"
        )
    return ctx


def _naive_acquisition(ds, where: str) -> Optional[_dt.datetime]:
    adt = _text(ds, "AcquisitionDateTime")
    if adt:
        return parse_dt(adt, where, "AcquisitionDateTime (0008,002A)")[0]
    for date_kw, time_kw in (("AcquisitionDate", "AcquisitionTime"), ("SeriesDate", "SeriesTime"),
                             ("StudyDate", "StudyTime")):
        if _text(ds, date_kw) and _text(ds, time_kw):
            return _dt.datetime.combine(parse_da(_text(ds, date_kw), where, date_kw),
                                        parse_tm(_text(ds, time_kw), where, time_kw))
    return None


def acquisition_start(ds, ctx: TimeContext) -> Tuple[_dt.datetime, str]:
    """Acquisition start (aware, UTC) and the attributes it came from.

    Order: AcquisitionDateTime (0008,002A); AcquisitionDate + AcquisitionTime (0008,0022/0032)
    (the date falling back to SeriesDate/StudyDate); SeriesDate + SeriesTime with a warning.
    """
    where = ctx.where
    adt = _text(ds, "AcquisitionDateTime")
    if adt:
        naive, explicit = parse_dt(adt, where, "AcquisitionDateTime (0008,002A)")
        return ctx.to_utc(naive, "AcquisitionDateTime", explicit), "AcquisitionDateTime (0008,002A)"
    acq_time = _text(ds, "AcquisitionTime")
    if acq_time:
        for date_kw in ("AcquisitionDate", "SeriesDate", "StudyDate"):
            if _text(ds, date_kw):
                naive = _dt.datetime.combine(parse_da(_text(ds, date_kw), where, date_kw),
                                             parse_tm(acq_time, where, "AcquisitionTime (0008,0032)"))
                source = f"{date_kw} + AcquisitionTime (0008,0032)"
                if date_kw != "AcquisitionDate":
                    ctx.warnings.append(f"{where}: AcquisitionDate (0008,0022) missing; used {date_kw}")
                return ctx.to_utc(naive, "acquisition start"), source
    if _text(ds, "SeriesDate") and _text(ds, "SeriesTime"):
        naive = _dt.datetime.combine(parse_da(_text(ds, "SeriesDate"), where, "SeriesDate"),
                                     parse_tm(_text(ds, "SeriesTime"), where, "SeriesTime"))
        ctx.warnings.append(f"{where}: AcquisitionDate/AcquisitionTime (0008,0022/0032) missing; "
                            "used SeriesDate/SeriesTime as acquisition start")
        return ctx.to_utc(naive, "acquisition start"), "SeriesDate + SeriesTime (0008,0021/0031)"
    raise DicomInputError(
        f"{where}: no acquisition start time: AcquisitionDateTime (0008,002A), AcquisitionTime "
        "(0008,0032) and SeriesTime (0008,0031) are all missing"
    )
