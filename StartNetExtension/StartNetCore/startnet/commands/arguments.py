"""Argument types and help texts shared by several subcommands (no subcommand imports another)."""

from __future__ import annotations

import argparse
import datetime as _dt


def kcps_list(text: str) -> tuple:
    """'45' or '45,38.5,30' -> (45.0, ...): count rate per head in kcps, one value or one per time point."""
    try:
        values = tuple(float(v) for v in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number or comma-separated numbers (kcps)") from None
    if not all(v > 0 for v in values):
        raise argparse.ArgumentTypeError(f"{text!r}: count rates must be > 0 kcps")
    return values


COUNT_RATE_HELP = ("observed total-spectrum count rate per detector head (kcps, all energy windows), one value or "
                   "one per time point in chronological order, for the dead-time correction (default: from the "
                   "SPECT projections in INPUT_DIR)")


def aware_datetime(text: str) -> _dt.datetime:
    """An ISO 8601 date-time with a UTC offset (argparse type): a naive time would be ambiguous."""
    try:
        value = _dt.datetime.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not an ISO date-time (e.g. 2026-03-02T09:15:00+01:00)") from None
    if value.tzinfo is None:
        raise argparse.ArgumentTypeError(f"{text!r} has no UTC offset; add one, e.g. +01:00")
    return value
