"""Typed inputs and outputs of the per-cycle report (what the pipeline hands to ``write_report``).

Arrays follow the package convention: numpy arrays in SimpleITK index order (z, y, x), all on the
dose grid, with ``spacing_mm`` given in SimpleITK order (x, y, z) and ``direction`` the row-major
3x3 direction cosine matrix of that grid (SimpleITK ``GetDirection()``), LPS patient coordinates.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, Mapping, Optional, Sequence, Tuple

import numpy as np

from startnet.errors import InputError

IDENTITY_DIRECTION: Tuple[float, ...] = (1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 1.0)


@dataclass
class TacPlotData:
    """Measured and fitted time-activity curve of one structure.

    ``times_h`` are hours post injection of the measurements, ``activity_mbq`` the measured
    activities (MBq), ``activity_sd_mbq`` their standard uncertainties (or None);
    ``fit_times_h``/``fit_activity_mbq`` sample the fitted model (empty arrays if there is no
    fit) and ``model`` names it (e.g. "mono-exponential").
    """

    times_h: Sequence[float]
    activity_mbq: Sequence[float]
    activity_sd_mbq: Optional[Sequence[float]]
    fit_times_h: Sequence[float]
    fit_activity_mbq: Sequence[float]
    model: str = ""


@dataclass
class ReportInput:
    """Everything the report shows.

    results:    the ``results.json`` dictionary of the run (see ``startnet.cycle.run``).
    dose_gy:    absorbed-dose map, float array (z, y, x) in Gy.
    spacing_mm: voxel spacing of the dose grid in SimpleITK order (x, y, z), mm.
    ct_hu:      CT resampled onto the dose grid (z, y, x) in HU, or None (dose shown alone).
    masks:      structure name -> bool array (z, y, x) on the dose grid (outlines on the slices;
                DVHs are computed from them when ``dvhs`` lacks a structure).
    tacs:       structure name -> TacPlotData.
    dvhs:       structure name -> (dose_gy bin edges, cumulative volume fraction), both 1-D of
                equal length, fraction falling from 1 to 0.
    direction:  row-major 3x3 direction cosines of the dose grid (orientation labels).
    """

    results: Mapping
    dose_gy: np.ndarray
    spacing_mm: Tuple[float, float, float]
    ct_hu: Optional[np.ndarray] = None
    masks: Dict[str, np.ndarray] = field(default_factory=dict)
    tacs: Dict[str, TacPlotData] = field(default_factory=dict)
    dvhs: Dict[str, Tuple[np.ndarray, np.ndarray]] = field(default_factory=dict)
    direction: Tuple[float, ...] = IDENTITY_DIRECTION

    def validate(self) -> None:
        """Raise InputError naming the field when arrays are missing, mis-shaped or non-finite."""
        if not isinstance(self.results, Mapping):
            raise InputError("report input: 'results' must be the results.json mapping, "
                             f"got {type(self.results).__name__}")
        dose = np.asarray(self.dose_gy)
        if dose.ndim != 3 or min(dose.shape) < 1:
            raise InputError(f"report input: 'dose_gy' must be a 3-D (z, y, x) array, got shape {dose.shape}")
        if not np.all(np.isfinite(dose)):
            raise InputError("report input: 'dose_gy' contains NaN or infinite values")
        if len(self.spacing_mm) != 3 or any(not (float(s) > 0) for s in self.spacing_mm):
            raise InputError(f"report input: 'spacing_mm' must be three positive values (x, y, z), "
                             f"got {tuple(self.spacing_mm)}")
        if len(self.direction) != 9:
            raise InputError(f"report input: 'direction' must have 9 values, got {len(self.direction)}")
        if self.ct_hu is not None and np.asarray(self.ct_hu).shape != dose.shape:
            raise InputError(f"report input: 'ct_hu' shape {np.asarray(self.ct_hu).shape} differs from "
                             f"'dose_gy' shape {dose.shape}; resample the CT onto the dose grid")
        for name, mask in self.masks.items():
            if np.asarray(mask).shape != dose.shape:
                raise InputError(f"report input: mask '{name}' shape {np.asarray(mask).shape} differs "
                                 f"from 'dose_gy' shape {dose.shape}")
        for name, (edges, frac) in self.dvhs.items():
            if np.ndim(edges) != 1 or np.shape(edges) != np.shape(frac):
                raise InputError(f"report input: DVH '{name}' needs two 1-D arrays of equal length, "
                                 f"got shapes {np.shape(edges)} and {np.shape(frac)}")
        for name, tac in self.tacs.items():
            if len(tac.times_h) != len(tac.activity_mbq):
                raise InputError(f"report input: TAC '{name}' has {len(tac.times_h)} times but "
                                 f"{len(tac.activity_mbq)} activities")
            if len(tac.fit_times_h) != len(tac.fit_activity_mbq):
                raise InputError(f"report input: TAC '{name}' fit has {len(tac.fit_times_h)} times but "
                                 f"{len(tac.fit_activity_mbq)} activities")


@dataclass
class ReportFiles:
    """Paths written by ``write_report``: the HTML, the PDF and each figure as PNG by name."""

    html: Path
    pdf: Path
    figures: Dict[str, Path] = field(default_factory=dict)


def cumulative_dvh(dose_gy: np.ndarray, mask: np.ndarray, n_bins: int = 200) -> Tuple[np.ndarray, np.ndarray]:
    """Cumulative DVH of ``dose_gy`` inside ``mask``: (dose levels in Gy, fraction of volume >= level).

    Levels run from 0 to the maximum dose in the mask; the fraction is exact per level (counted,
    not interpolated), so the first value is 1 and the value above the maximum is 0.
    """
    values = np.asarray(dose_gy)[np.asarray(mask, dtype=bool)]
    if values.size == 0:
        raise InputError("cumulative DVH: the mask is empty")
    top = float(values.max())
    levels = np.linspace(0.0, top if top > 0 else 1.0, n_bins + 1)
    ordered = np.sort(values)
    below = np.searchsorted(ordered, levels, side="left")
    fraction = 1.0 - below / float(values.size)
    return levels, fraction
