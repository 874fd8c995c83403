"""Anatomy of the digital patient: compartments, structures, shapes, CT numbers and densities.

The anatomy is defined in millimetres (LPS: +x patient left, +y posterior, +z superior) around
the body centre (0, 0, 0) at about the level of the first lumbar vertebra, and painted on a CT
grid in a fixed order (later shapes replace earlier ones, e.g. a liver tumour replaces liver
voxels, a kidney pole replaces the liver it touches), so every voxel has exactly one compartment.

A *compartment* is a region with one CT number, one density and one time-activity curve
(e.g. ``kidney_left_cortex``); a *structure* is what the reference segmentation holds
(``kidney_left`` = cortex + medulla). Densities follow the bilinear HU -> density calibration
:func:`density_from_hu` (documented in the ground truth) so CT-derived masses are consistent.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Dict, List, Optional, Tuple

import numpy as np

from startnet.phantom import vertebrae
from startnet.phantom.config import GridSpec

# Structure label values of the reference segmentation (labels.nii.gz / seg.nrrd).
STRUCTURE_LABELS: Dict[str, int] = {
    "body": 1,
    "lung_left": 2,
    "lung_right": 3,
    "spine": 4,
    "liver": 5,
    "spleen": 6,
    "kidney_left": 7,
    "kidney_right": 8,
    "bladder": 9,
    "tumour_1": 10,
    "tumour_2": 11,
    "tumour_3": 12,
    "tumour_4": 13,
    "tumour_5": 14,  # appears from cycle 2 on (LESION_EVOLUTION)
}

STRUCTURE_COLORS: Dict[str, Tuple[float, float, float]] = {
    "body": (0.69, 0.48, 0.40),
    "lung_left": (0.77, 0.87, 0.96),
    "lung_right": (0.60, 0.78, 0.94),
    "spine": (0.95, 0.93, 0.85),
    "liver": (0.87, 0.51, 0.36),
    "spleen": (0.62, 0.16, 0.32),
    "kidney_left": (0.72, 0.31, 0.20),
    "kidney_right": (0.85, 0.40, 0.27),
    "bladder": (0.85, 0.78, 0.19),
    "tumour_1": (0.20, 0.80, 0.20),
    "tumour_2": (0.10, 0.60, 0.90),
    "tumour_3": (0.95, 0.20, 0.70),
    "tumour_4": (0.55, 0.20, 0.95),
    "tumour_5": (0.95, 0.60, 0.10),
}

AIR_HU = -1000.0
TABLE_HU = 250.0


def density_from_hu(hu: float) -> float:
    """Bilinear CT calibration used for the phantom's densities (g/mL).

    rho = 1 + HU/1000 for HU <= 100 (air, lung, fat, soft tissue), and
    rho = 1.1 + 0.00058 (HU - 100) above (bone; 1500 HU -> 1.91 g/mL, Schneider-like slope).
    """
    if hu <= 100.0:
        return max(0.0012, 1.0 + hu / 1000.0)
    return 1.1 + 0.00058 * (hu - 100.0)


@dataclass(frozen=True)
class Compartment:
    """A region with uniform CT number, density and activity concentration."""

    index: int  # value in the internal compartment map (1..255; 0 = outside the patient)
    name: str
    structure: str
    hu: float

    @property
    def density_g_per_ml(self) -> float:
        return density_from_hu(self.hu)


@dataclass(frozen=True)
class Ellipsoid:
    center_mm: Tuple[float, float, float]
    semi_axes_mm: Tuple[float, float, float]
    rotation_z_deg: float = 0.0  # rotation of the shape's axes about the z axis
    rotation_y_deg: float = 0.0  # then about the y axis (tilts the long axis)


@dataclass(frozen=True)
class EllipticCylinder:
    """Infinite along z, optionally limited to z_range_mm."""

    center_xy_mm: Tuple[float, float]
    semi_axes_xy_mm: Tuple[float, float]
    z_range_mm: Optional[Tuple[float, float]] = None


_C = Compartment
COMPARTMENTS: Tuple[Compartment, ...] = (
    _C(1, "body_fat", "body", -100.0),
    _C(2, "body_soft_tissue", "body", 40.0),
    _C(3, "lung_left", "lung_left", -820.0),
    _C(4, "lung_right", "lung_right", -820.0),
    _C(5, "spine_cortical", "spine", 900.0),
    _C(6, "spine_cancellous", "spine", 400.0),
    _C(7, "liver", "liver", 55.0),
    _C(8, "spleen", "spleen", 45.0),
    _C(9, "kidney_left_cortex", "kidney_left", 32.0),
    _C(10, "kidney_left_medulla", "kidney_left", 32.0),
    _C(11, "kidney_right_cortex", "kidney_right", 32.0),
    _C(12, "kidney_right_medulla", "kidney_right", 32.0),
    _C(13, "bladder", "bladder", 10.0),
    _C(14, "tumour_1", "tumour_1", 45.0),
    _C(15, "tumour_2", "tumour_2", 42.0),
    _C(16, "tumour_3", "tumour_3", 48.0),
    _C(17, "tumour_4", "tumour_4", 40.0),
    _C(18, "tumour_5", "tumour_5", 44.0),
    # lumbar spine (:mod:`startnet.phantom.vertebrae`): discs, and L2-L4 with their own cortex and marrow
    _C(40, "spine_disc", "spine", vertebrae.DISC_HU),
    *(_C(41 + 2 * i + j, name, "spine", hu) for i, level in enumerate(vertebrae.MARROW_LEVELS)
      for j, (name, hu) in enumerate(((vertebrae.cortical_name(level), 900.0), (vertebrae.marrow_name(level), 400.0)))),
)
COMPARTMENT_BY_NAME: Dict[str, Compartment] = {c.name: c for c in COMPARTMENTS}

BODY = EllipticCylinder((0.0, 10.0), (170.0, 115.0))
FAT_LAYER_MM = 12.0
SPINE = EllipticCylinder((0.0, 70.0), (18.0, 16.0))
SPINE_CORTEX_MM = 3.0
KIDNEY_MEDULLA_SCALE = 0.68  # medulla semi-axes / kidney semi-axes (about 31 % of the volume)
TABLE_TOP_Y_MM = 140.0  # posterior body surface is at y = 125 mm
TABLE_THICKNESS_MM = 10.0
TABLE_HALF_WIDTH_MM = 220.0

# Painting order after the body: (compartment name, shape). Kidneys are painted whole as
# cortex, then their medulla inside.
_ORGANS: Tuple[Tuple[str, Ellipsoid], ...] = (
    ("lung_left", Ellipsoid((85.0, 0.0, 200.0), (60.0, 75.0, 140.0))),
    ("lung_right", Ellipsoid((-85.0, 0.0, 200.0), (62.0, 78.0, 140.0))),
    ("liver", Ellipsoid((-60.0, -10.0, 40.0), (85.0, 65.0, 70.0), rotation_z_deg=-10.0)),
    ("spleen", Ellipsoid((95.0, 35.0, 45.0), (28.0, 40.0, 45.0), rotation_z_deg=30.0)),
    ("kidney_left_cortex", Ellipsoid((75.0, 45.0, -10.0), (28.0, 22.0, 52.0), 20.0, -12.0)),
    ("kidney_right_cortex", Ellipsoid((-75.0, 45.0, -18.0), (28.0, 22.0, 52.0), -20.0, 12.0)),
    ("bladder", Ellipsoid((0.0, -35.0, -118.0), (40.0, 35.0, 25.0))),
    ("tumour_1", Ellipsoid((-85.0, -20.0, 55.0), (25.0, 25.0, 25.0))),  # liver, 5.0 cm
    ("tumour_2", Ellipsoid((-20.0, -25.0, 25.0), (10.0, 10.0, 10.0))),  # liver, 2.0 cm
    ("tumour_3", Ellipsoid((30.0, -30.0, -10.0), (15.0, 15.0, 15.0))),  # pancreas, 3.0 cm
    ("tumour_4", Ellipsoid((-30.0, 40.0, -70.0), (7.5, 7.5, 7.5))),  # lymph node, 1.5 cm
    ("tumour_5", Ellipsoid((-45.0, -5.0, 15.0), (17.0, 17.0, 17.0))),  # liver, 3.4 cm, from cycle 2
)
TUMOUR_LOCATIONS = {"tumour_1": "liver", "tumour_2": "liver", "tumour_3": "pancreas", "tumour_4": "lymph node",
                    "tumour_5": "liver"}

# Lesion evolution over a patient's cycles (``PhantomConfig.cycle_number``): the factor on each
# tumour's semi-axes in cycles 1, 2, 3 (0 = not there). tumour_1, tumour_2 and tumour_3 shrink,
# tumour_4 (the lymph node) responds completely after cycle 1, tumour_5 is a new liver lesion in
# cycle 2 that shrinks in cycle 3.
LESION_EVOLUTION: Dict[str, Tuple[float, ...]] = {
    "tumour_1": (1.0, 0.88, 0.76),
    "tumour_2": (1.0, 0.9, 0.8),
    "tumour_3": (1.0, 0.93, 0.87),
    "tumour_4": (1.0, 0.0, 0.0),
    "tumour_5": (0.0, 1.0, 0.94),
}
CYCLES = len(LESION_EVOLUTION["tumour_1"])  # as many as config.CYCLE_POSES has poses


def lesion_scale(name: str, cycle_number: int) -> float:
    """Factor on a shape's semi-axes in ``cycle_number`` (1 for organs; 0 = the lesion is not there)."""
    return LESION_EVOLUTION[name][cycle_number - 1] if name in LESION_EVOLUTION else 1.0


def _rotation(shape: Ellipsoid) -> np.ndarray:
    az, ay = np.deg2rad(shape.rotation_z_deg), np.deg2rad(shape.rotation_y_deg)
    rz = np.array([[np.cos(az), -np.sin(az), 0.0], [np.sin(az), np.cos(az), 0.0], [0.0, 0.0, 1.0]])
    ry = np.array([[np.cos(ay), 0.0, np.sin(ay)], [0.0, 1.0, 0.0], [-np.sin(ay), 0.0, np.cos(ay)]])
    return ry @ rz


def _index_range(coords: np.ndarray, low: float, high: float) -> slice:
    lo = int(np.searchsorted(coords, low, side="left"))
    hi = int(np.searchsorted(coords, high, side="right"))
    return slice(max(lo, 0), min(hi, coords.size))


def _paint_ellipsoid(target: np.ndarray, axes: Tuple[np.ndarray, ...], shape: Ellipsoid, value: int,
                     scale: float = 1.0) -> None:
    """Set ``target`` (z, y, x) to ``value`` inside the (scaled) ellipsoid, in its bounding box only."""
    x, y, z = axes
    semi = np.asarray(shape.semi_axes_mm) * scale
    reach = float(semi.max())
    cx, cy, cz = shape.center_mm
    sx, sy, sz = (_index_range(x, cx - reach, cx + reach), _index_range(y, cy - reach, cy + reach),
                  _index_range(z, cz - reach, cz + reach))
    if sx.start >= sx.stop or sy.start >= sy.stop or sz.start >= sz.stop:
        return
    dz = (z[sz] - cz)[:, None, None]
    dy = (y[sy] - cy)[None, :, None]
    dx = (x[sx] - cx)[None, None, :]
    r = _rotation(shape)  # body-frame coordinates u = R^T d
    acc = np.zeros((dz.shape[0], dy.shape[1], dx.shape[2]), dtype=np.float32)
    for axis in range(3):
        u = r[0, axis] * dx + r[1, axis] * dy + r[2, axis] * dz
        acc += (u / semi[axis]).astype(np.float32) ** 2
    block = target[sz, sy, sx]
    block[acc <= 1.0] = value


def _cylinder_mask_2d(x: np.ndarray, y: np.ndarray, cyl: EllipticCylinder, shrink_mm: float = 0.0) -> np.ndarray:
    a, b = cyl.semi_axes_xy_mm[0] - shrink_mm, cyl.semi_axes_xy_mm[1] - shrink_mm
    dx = (x - cyl.center_xy_mm[0])[None, :] / a
    dy = (y - cyl.center_xy_mm[1])[:, None] / b
    return dx * dx + dy * dy <= 1.0


def paint_compartments(grid: GridSpec, torso_half_length_mm: float, cycle_number: int = 1) -> np.ndarray:
    """Internal compartment map (uint8, z, y, x) of the patient in the reference pose.

    ``cycle_number`` sets the tumours as they are in that cycle (:data:`LESION_EVOLUTION`).

    The torso is limited to |z| <= ``torso_half_length_mm`` (inside the SPECT field of view with a
    margin for motion), so every becquerel of the patient is seen by every SPECT and the ground
    truth of the body remainder is what an image can recover.
    """
    x, y, z = grid.axis_coordinates_mm()
    comp = np.zeros(grid.shape_zyx, dtype=np.uint8)
    body = _cylinder_mask_2d(x, y, BODY)
    inner = _cylinder_mask_2d(x, y, BODY, FAT_LAYER_MM)
    slice_map = np.zeros(body.shape, dtype=np.uint8)
    slice_map[body] = COMPARTMENT_BY_NAME["body_fat"].index
    slice_map[inner] = COMPARTMENT_BY_NAME["body_soft_tissue"].index
    spine = _cylinder_mask_2d(x, y, SPINE)
    spine_inner = _cylinder_mask_2d(x, y, SPINE, SPINE_CORTEX_MM)
    slice_map[spine] = COMPARTMENT_BY_NAME["spine_cortical"].index
    slice_map[spine_inner] = COMPARTMENT_BY_NAME["spine_cancellous"].index
    comp[:] = slice_map[None, :, :]
    vertebrae.paint_lumbar_spine(comp, z, spine, spine_inner, {c.name: c.index for c in COMPARTMENTS},
                                 SPINE_CORTEX_MM)
    axes = (x, y, z)
    for name, shape in _ORGANS:
        scale = lesion_scale(name, cycle_number)
        if scale <= 0.0:
            continue
        _paint_ellipsoid(comp, axes, shape, COMPARTMENT_BY_NAME[name].index, scale)
        if name.endswith("_cortex"):
            medulla = COMPARTMENT_BY_NAME[name.replace("_cortex", "_medulla")].index
            _paint_ellipsoid(comp, axes, shape, medulla, scale=KIDNEY_MEDULLA_SCALE)
    outside = np.abs(z) > torso_half_length_mm
    comp[outside] = 0
    return comp


def structure_lut() -> np.ndarray:
    """Lookup table compartment index -> structure label (uint8, 256 entries)."""
    lut = np.zeros(256, dtype=np.uint8)
    for c in COMPARTMENTS:
        lut[c.index] = STRUCTURE_LABELS[c.structure]
    return lut


def hu_lut() -> np.ndarray:
    """Lookup table compartment index -> noise-free CT number (float32, 256 entries; 0 = air)."""
    lut = np.full(256, AIR_HU, dtype=np.float32)
    for c in COMPARTMENTS:
        lut[c.index] = c.hu
    return lut


def table_mask(grid: GridSpec) -> np.ndarray:
    """2-D (y, x) mask of the patient table cross-section in scanner coordinates (fixed)."""
    x, y, _ = grid.axis_coordinates_mm()
    in_y = (y >= TABLE_TOP_Y_MM) & (y <= TABLE_TOP_Y_MM + TABLE_THICKNESS_MM)
    in_x = np.abs(x) <= TABLE_HALF_WIDTH_MM
    return in_y[:, None] & in_x[None, :]


def compartments_of(structure: str) -> List[Compartment]:
    return [c for c in COMPARTMENTS if c.structure == structure]
