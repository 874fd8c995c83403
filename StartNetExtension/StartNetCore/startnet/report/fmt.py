"""Number, date and name formatting shared by the PDF and HTML reports (units always shown).

Precision rules: absorbed dose and BED in Gy with 2 decimals, percentages with 1 decimal,
activities and time-integrated activities with 3 significant figures (never in exponent form),
hours, volumes and masses with 1 decimal. Missing values render as an en dash.
"""

from __future__ import annotations

import datetime as _dt
import math
from typing import Any, Iterable, List, Mapping, Optional

from startnet.dosimetry.methods import DOSE_METHODS

MISSING = "\u2013"
METHOD_NAMES = {**{name: method.title for name, method in DOSE_METHODS.items()}, "stp": "Single time point"}


def number(value: Any) -> Optional[float]:
    """``value`` as a finite float, or None when missing or not a finite number."""
    if value is None or isinstance(value, bool):
        return None
    try:
        out = float(value)
    except (TypeError, ValueError):
        return None
    return out if math.isfinite(out) else None


def fixed(value: Any, decimals: int, unit: str = "") -> str:
    """``value`` with ``decimals`` decimals and an optional unit, or the missing marker."""
    x = number(value)
    if x is None:
        return MISSING
    text = f"{x:.{decimals}f}"
    if text.startswith("-") and float(text) == 0.0:
        text = text[1:]
    return f"{text} {unit}".rstrip() if unit else text


def gy(value: Any, unit: bool = False) -> str:
    return fixed(value, 2, "Gy" if unit else "")


def pct(value: Any, unit: bool = False) -> str:
    return fixed(value, 1, "%" if unit else "")


def sig(value: Any, figures: int = 3, unit: str = "") -> str:
    """``figures`` significant figures in positional notation (e.g. 7400, 123, 4.56, 0.0123)."""
    x = number(value)
    if x is None:
        return MISSING
    if x == 0:
        decimals = figures - 1
    else:
        decimals = max(0, figures - 1 - int(math.floor(math.log10(abs(x)))))
    return fixed(round(x, decimals), decimals, unit)


def hours(value: Any, unit: bool = False) -> str:
    return fixed(value, 1, "h" if unit else "")


def parse_datetime(text: Any) -> Optional[_dt.datetime]:
    if isinstance(text, _dt.datetime):
        return text
    if not isinstance(text, str) or not text:
        return None
    try:
        return _dt.datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None


def datetime_text(text: Any, with_zone: bool = True) -> str:
    """ISO date-time as "2026-03-02 08:15 UTC" (or "+01:00" offsets); unparseable text verbatim."""
    when = parse_datetime(text)
    if when is None:
        return str(text) if text else MISSING
    out = when.strftime("%Y-%m-%d %H:%M")
    if with_zone and when.utcoffset() is not None:
        offset = when.utcoffset()
        if offset == _dt.timedelta(0):
            out += " UTC"
        else:
            minutes = int(offset.total_seconds() // 60)
            sign = "+" if minutes >= 0 else "-"
            out += f" {sign}{abs(minutes) // 60:02d}:{abs(minutes) % 60:02d}"
    return out


def date_text(text: Any) -> str:
    when = parse_datetime(text)
    if when is None:
        return str(text) if text else MISSING
    return when.strftime("%Y-%m-%d")


def structure_label(name: str) -> str:
    """Display name of a structure key: "kidney_left" -> "Kidney left"."""
    text = str(name).replace("_", " ").strip()
    return text[:1].upper() + text[1:]


def method_label(method: Any) -> str:
    if not method:
        return MISSING
    return METHOD_NAMES.get(str(method).lower(), str(method))


def ordered_structures(names: Iterable[str]) -> List[str]:
    """Kidneys first (left, right, others), then the remaining names in their given order."""
    names = list(dict.fromkeys(names))
    kidneys = [n for n in names if "kidney" in n.lower()]
    kidneys.sort(key=lambda n: (0 if "left" in n.lower() else 1 if "right" in n.lower() else 2, n))
    return kidneys + [n for n in names if n not in kidneys]


def kidney_names(names: Iterable[str]) -> List[str]:
    return [n for n in names if "kidney" in n.lower()]


def flatten_provenance(provenance: Any, limit: int = 12) -> List[str]:
    """Up to ``limit`` "key: value" strings of the provenance's scalar entries (one level deep)."""
    out: List[str] = []
    if not isinstance(provenance, Mapping):
        return out
    for key, value in provenance.items():
        if isinstance(value, Mapping):
            for sub_key, sub_value in value.items():
                if isinstance(sub_value, (str, int, float)) and not isinstance(sub_value, bool):
                    out.append(f"{key}.{sub_key}: {sub_value}")
        elif isinstance(value, (str, int, float)) and not isinstance(value, bool):
            out.append(f"{key}: {value}")
        if len(out) >= limit:
            break
    return out[:limit]
