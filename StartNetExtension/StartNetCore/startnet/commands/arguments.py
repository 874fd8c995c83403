"""Argument types and help texts shared by several subcommands (no subcommand imports another)."""

from __future__ import annotations

import argparse


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
