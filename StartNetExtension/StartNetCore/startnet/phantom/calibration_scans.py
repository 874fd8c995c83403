"""Calibration acquisitions of a digital camera: a uniform cylinder and a NEMA IEC-like sphere phantom.

``build_calibration_scan(CalibrationScanConfig) -> CalibrationScan`` renders one SPECT
reconstruction of a phantom scanned on a camera (:class:`CameraSpec`: identity, PSF FWHM,
sensitivity) with its ground truth; :mod:`startnet.phantom.calibration_dicom` writes it as NM DICOM
(with the camera's identity in the header) plus ``truth.json`` and, for spheres, ``SPHERES.json``.

Image formation (as for the patient phantom, :mod:`startnet.phantom.render`):
- concentration per voxel = the share of the voxel inside each compartment x its concentration
  (partial voxels by supersampling: the cylinder's radial share on a 2-D 7 x 7 sub-grid and its
  axial share exactly; each sphere on a 7^3 sub-grid), spheres displacing the background;
- expected counts N = sensitivity x A(t_start) x (1 - exp(-lambda T)) / lambda, blurred by an
  isotropic Gaussian PSF of the camera's FWHM, Poisson noise per voxel when ``noise``;
- ``units`` "counts": stored counts (Units CNTS); "bqml": counts / counts-per-Bq/mL (Units BQML,
  DecayCorrection START: the camera's quantification, exact when its sensitivity is right).

Truth: activity at the reference time and at the acquisition start, concentrations, sensitivity,
PSF; per sphere its exact volume (4/3 pi r^3) and its recovery coefficients on this grid:
``rc_cold`` = mean of the blurred sphere (unit concentration, cold surroundings) over the sphere's
voxel shares (sum f * (PSF * f) / sum f) and ``rc_closed_form`` (continuous sphere,
:func:`startnet.segmentation.recovery.sphere_recovery_coefficient`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Dict, List, Optional, Tuple

import numpy as np

from startnet.errors import InputError
from startnet.phantom.config import GridSpec
from startnet.physics.lu177 import LU177

KINDS = ("cylinder", "spheres")
NEMA_SPHERE_DIAMETERS_MM = (10.0, 13.0, 17.0, 22.0, 28.0, 37.0)
DEFAULT_GRID = GridSpec((128, 128, 128), (4.7952, 4.7952, 4.7952))
DEFAULT_ACQUISITION = datetime(2025, 3, 3, 10, 0, 0, tzinfo=timezone(timedelta(hours=1)))
SUBSAMPLES = 7


@dataclass(frozen=True)
class CameraSpec:
    """A SPECT/CT camera and reconstruction protocol as its DICOM headers describe it."""

    manufacturer: str = "START-NET"
    model: str = "Digital Phantom SPECT/CT"
    serial: str = "PH-0001"
    collimator: str = "MELP"
    collimator_type: str = "PARA"
    energy_windows_kev: Tuple[Tuple[str, float, float], ...] = (("Lu177_208keV", 187.53, 229.2),)
    reconstruction_method: str = "OSEM3D"
    iterations: int = 4
    subsets: int = 8
    filter_name: str = "Gauss 0"
    corrections: Tuple[str, ...] = ("ATTN", "SCAT")
    psf_fwhm_mm: float = 11.0
    sensitivity_cps_per_mbq: float = 5.5

    @property
    def reconstruction_text(self) -> str:
        """ReconstructionMethod (0054,1103) as vendors write it, e.g. ``OSEM3D 4i8s``."""
        return f"{self.reconstruction_method} {self.iterations}i{self.subsets}s"


@dataclass
class CalibrationScanConfig:
    """One calibration acquisition: phantom kind, camera, grid, timing, activity and noise."""

    kind: str = "cylinder"
    camera: CameraSpec = field(default_factory=CameraSpec)
    grid: GridSpec = DEFAULT_GRID
    units: str = "counts"
    noise: bool = True
    seed: int = 0
    acquisition_datetime: datetime = DEFAULT_ACQUISITION
    # when the activity was measured (dose calibrator); the acquisition starts this much later
    activity_to_scan_h: float = 2.0
    acquisition_time_s: float = 1800.0
    projections_per_head: int = 60
    # cylinder (Jaszczak-like, about 6.8 L)
    cylinder_radius_mm: float = 108.0
    cylinder_length_mm: float = 186.0
    cylinder_activity_mbq: float = 300.0
    # sphere phantom: spheres on a ring in a warm cylinder (NEMA IEC body phantom-like)
    sphere_diameters_mm: Tuple[float, ...] = NEMA_SPHERE_DIAMETERS_MM
    sphere_ring_radius_mm: float = 57.2
    sphere_plane_z_mm: float = 7.0
    body_radius_mm: float = 110.0
    body_length_mm: float = 180.0
    background_kbq_ml: float = 12.0
    sphere_to_background: float = 8.0
    # the phantom's position in the field of view (LPS mm)
    centre_offset_mm: Tuple[float, float, float] = (1.3, -2.1, 0.9)

    def validate(self) -> None:
        if self.kind not in KINDS:
            raise InputError(f"CalibrationScanConfig.kind: {self.kind!r} is not one of {KINDS}")
        if self.units not in ("counts", "bqml"):
            raise InputError(f"CalibrationScanConfig.units: {self.units!r} is not 'counts' or 'bqml'")
        if self.acquisition_datetime.tzinfo is None:
            raise InputError("CalibrationScanConfig.acquisition_datetime: expected an aware datetime")
        for name in ("acquisition_time_s", "cylinder_activity_mbq", "background_kbq_ml", "sphere_to_background"):
            if not getattr(self, name) > 0:
                raise InputError(f"CalibrationScanConfig.{name}: {getattr(self, name)!r}; expected > 0")
        for name in ("psf_fwhm_mm", "sensitivity_cps_per_mbq"):
            if not getattr(self.camera, name) > 0:
                raise InputError(f"CameraSpec.{name}: {getattr(self.camera, name)!r}; expected > 0")

    @property
    def activity_datetime(self) -> datetime:
        return self.acquisition_datetime - timedelta(hours=self.activity_to_scan_h)

    @property
    def view_duration_ms(self) -> int:
        return int(round(self.acquisition_time_s * 1000.0 / self.projections_per_head))

    @property
    def written_acquisition_time_s(self) -> float:
        """T as written: whole-millisecond views x views."""
        return self.view_duration_ms * self.projections_per_head / 1000.0

    def sphere_centres_mm(self) -> List[Tuple[float, float, float]]:
        cx, cy, cz = self.centre_offset_mm
        out = []
        for k in range(len(self.sphere_diameters_mm)):
            angle = math.radians(30.0 + 60.0 * k)
            out.append((cx + self.sphere_ring_radius_mm * math.cos(angle),
                        cy + self.sphere_ring_radius_mm * math.sin(angle), cz + self.sphere_plane_z_mm))
        return out


@dataclass
class CalibrationScan:
    config: CalibrationScanConfig
    stored: np.ndarray  # (z, y, x) counts (float64, expected or Poisson) on the grid
    counts_per_mbq: float  # expected counts per MBq present at the acquisition start
    truth: Dict[str, object]


def _subsample_offsets(spacing_mm: float) -> np.ndarray:
    return ((np.arange(SUBSAMPLES) + 0.5) / SUBSAMPLES - 0.5) * spacing_mm


def cylinder_fraction(grid: GridSpec, centre_mm, radius_mm: float, length_mm: float) -> np.ndarray:
    """Share (0..1) of each voxel inside an axial cylinder: radial share (2-D sub-grid) x axial overlap."""
    x, y, z = grid.axis_coordinates_mm()
    sx, sy, sz = grid.spacing_mm
    ox, oy = _subsample_offsets(sx), _subsample_offsets(sy)
    px = (x[None, :, None] + ox[None, None, :]) - centre_mm[0]  # (1, nx, s)
    py = (y[:, None, None] + oy[None, None, :]) - centre_mm[1]  # (ny, 1, s)
    inside = (px[:, :, None, :] ** 2 + py[:, :, :, None] ** 2) <= radius_mm ** 2  # (ny, nx, s, s)
    radial = inside.mean(axis=(2, 3))
    low, high = centre_mm[2] - 0.5 * length_mm, centre_mm[2] + 0.5 * length_mm
    axial = np.clip((np.minimum(z + 0.5 * sz, high) - np.maximum(z - 0.5 * sz, low)) / sz, 0.0, 1.0)
    return axial[:, None, None] * radial[None, :, :]


def sphere_fraction(grid: GridSpec, centre_mm, radius_mm: float) -> np.ndarray:
    """Share (0..1) of each voxel inside a sphere (7^3 sub-grid in the sphere's bounding box)."""
    out = np.zeros(grid.shape_zyx, dtype=np.float64)
    axes = grid.axis_coordinates_mm()
    index_ranges = []
    for a in range(3):
        coords = axes[a]
        inside = np.nonzero(np.abs(coords - centre_mm[a]) <= radius_mm + grid.spacing_mm[a])[0]
        if inside.size == 0:
            raise InputError(f"sphere at {centre_mm} mm (radius {radius_mm:g} mm) lies outside the grid")
        index_ranges.append((int(inside[0]), int(inside[-1]) + 1))
    subs = []
    for a in range(3):
        lo, hi = index_ranges[a]
        subs.append((axes[a][lo:hi, None] + _subsample_offsets(grid.spacing_mm[a])[None, :]) - centre_mm[a])
    dx, dy, dz = subs
    r2 = (dz[:, None, None, :, None, None] ** 2 + dy[None, :, None, None, :, None] ** 2
          + dx[None, None, :, None, None, :] ** 2)
    share = (r2 <= radius_mm ** 2).mean(axis=(3, 4, 5))
    (x0, x1), (y0, y1), (z0, z1) = index_ranges
    out[z0:z1, y0:y1, x0:x1] = share
    return out


def _blur(array: np.ndarray, grid: GridSpec, fwhm_mm: float) -> np.ndarray:
    from startnet.phantom.render import gaussian_psf

    return gaussian_psf(array, grid.spacing_mm, fwhm_mm)


def _decay(hours: float) -> float:
    return math.exp(-LU177.decay_constant_per_s * hours * 3600.0)


def build_calibration_scan(config: CalibrationScanConfig) -> CalibrationScan:
    """Render the scan's counts (expected, then Poisson when ``noise``) and its truth."""
    from startnet.phantom.render import counts_per_mbq
    from startnet.segmentation.recovery import sphere_recovery_coefficient

    config.validate()
    grid, camera = config.grid, config.camera
    decay = _decay(config.activity_to_scan_h)
    voxel_ml = grid.voxel_volume_ml
    truth: Dict[str, object] = {
        "kind": config.kind, "units": config.units,
        "camera": {"manufacturer": camera.manufacturer, "model": camera.model, "serial": camera.serial,
                   "collimator": camera.collimator, "reconstruction": camera.reconstruction_text},
        "psf_fwhm_mm": camera.psf_fwhm_mm, "sensitivity_cps_per_mbq": camera.sensitivity_cps_per_mbq,
        "acquisition_datetime": config.acquisition_datetime.isoformat(),
        "activity_datetime": config.activity_datetime.isoformat(),
        "acquisition_time_s": config.written_acquisition_time_s,
        "decay_activity_to_acquisition": decay,
        "grid": {"size_xyz": list(grid.size_xyz), "spacing_mm": list(grid.spacing_mm)},
    }
    centre = config.centre_offset_mm
    if config.kind == "cylinder":
        share = cylinder_fraction(grid, centre, config.cylinder_radius_mm, config.cylinder_length_mm)
        volume_ml = float(share.sum()) * voxel_ml
        concentration_bqml = config.cylinder_activity_mbq * 1e6 * decay / volume_ml
        bqml = share * concentration_bqml
        truth.update(activity_mbq=config.cylinder_activity_mbq,
                     activity_at_acquisition_mbq=config.cylinder_activity_mbq * decay,
                     cylinder={"centre_mm": list(centre), "radius_mm": config.cylinder_radius_mm,
                               "length_mm": config.cylinder_length_mm, "volume_ml": volume_ml})
    else:
        body = cylinder_fraction(grid, centre, config.body_radius_mm, config.body_length_mm)
        c_b = config.background_kbq_ml * 1e3 * decay
        c_s = c_b * config.sphere_to_background
        bqml = body * c_b
        spheres = []
        for diameter, sphere_centre in zip(config.sphere_diameters_mm, config.sphere_centres_mm()):
            radius = 0.5 * diameter
            f = sphere_fraction(grid, sphere_centre, radius)
            bqml += f * (c_s - c_b)
            blurred = _blur(f, grid, camera.psf_fwhm_mm)
            exact_ml = 4.0 / 3.0 * math.pi * radius ** 3 / 1000.0
            spheres.append({"name": f"sphere_{diameter:g}mm", "centre_mm": list(sphere_centre),
                            "diameter_mm": diameter, "volume_ml": exact_ml,
                            "rc_cold": float(np.sum(f * blurred) / np.sum(f)),
                            "rc_closed_form": sphere_recovery_coefficient(exact_ml, camera.psf_fwhm_mm)})
        truth.update(spheres=spheres,
                     sphere_concentration_kbq_ml=config.background_kbq_ml * config.sphere_to_background,
                     background_concentration_kbq_ml=config.background_kbq_ml,
                     sphere_concentration_at_acquisition_bqml=c_s, background_concentration_at_acquisition_bqml=c_b,
                     body={"centre_mm": list(centre), "radius_mm": config.body_radius_mm,
                           "length_mm": config.body_length_mm})
        truth["activity_at_acquisition_mbq"] = float(bqml.sum()) * voxel_ml * 1e-6
    per_mbq = counts_per_mbq(camera.sensitivity_cps_per_mbq, config.written_acquisition_time_s)
    expected = np.maximum(_blur(bqml * voxel_ml * 1e-6 * per_mbq, grid, camera.psf_fwhm_mm), 0.0)
    if config.noise:
        stored = np.random.default_rng(np.random.SeedSequence([int(config.seed), 1177, 11])).poisson(expected)
        stored = stored.astype(np.float64)
    else:
        stored = expected
    truth["counts_per_mbq"] = per_mbq
    truth["total_counts"] = float(stored.sum())
    return CalibrationScan(config, stored, per_mbq, truth)


def spheres_json(scan: CalibrationScan) -> Optional[Dict[str, object]]:
    """The ``SPHERES.json`` of a sphere scan (``startnet calibrate recovery`` contract), else None."""
    truth = scan.truth
    if scan.config.kind != "spheres":
        return None
    return {"spheres": [{"name": s["name"], "centre_mm": s["centre_mm"], "volume_ml": s["volume_ml"]}
                        for s in truth["spheres"]],
            "sphere_concentration_kbq_ml": truth["sphere_concentration_kbq_ml"],
            "background_concentration_kbq_ml": truth["background_concentration_kbq_ml"],
            "reference_datetime": truth["activity_datetime"]}
