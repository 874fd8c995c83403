"""Physical data and unit conversions (177Lu decay data, energy per decay, time units)."""

from __future__ import annotations

from startnet.physics.lu177 import LU177, Nuclide

__all__ = ["LU177", "Nuclide"]
