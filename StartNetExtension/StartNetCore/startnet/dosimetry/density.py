"""CT Hounsfield units to mass density, and mean density per SPECT voxel.

Default calibration (``DEFAULT_HU_DENSITY_CURVE``, piecewise linear, configurable per scanner):
    (-1000 HU, 0.0012 g/mL) air, (0, 1.000) water, (100, 1.100), (1500, 1.920) cortical bone,
    (3000, 2.800); below -1000 HU the air value, above 3000 HU the last value (no extrapolation).
    That is the usual bilinear calibration: the air-lung-soft-tissue line rho = 1 + HU/1000 up to
    100 HU (kidney at ~35 HU -> 1.035 g/mL) and a bone line of ~5.9e-4 g/mL per HU. Replace it
    with the site's phantom calibration (pass ``curve=``) when one exists.
Air and lung (Dieudonne 2013, JNM 54:236; REFERENCE.md section 3): the plain 1/rho correction
of kernel dose over-scales low-density voxels (a SPECT spill-over count in air would get a
thousand-fold dose). This module only converts HU to density; the low-density rule is applied
by the density-corrected engine (``engines.dose_vsv_density``), which never scales voxels below
a density threshold (default 0.1 g/mL: air, not lung; lung at ~0.26 g/mL is scaled).
"""

from __future__ import annotations

from typing import Sequence, Tuple

import numpy as np
import SimpleITK as sitk

from startnet.errors import GeometryError, InputError

DEFAULT_HU_DENSITY_CURVE: Tuple[Tuple[float, float], ...] = (
    (-1000.0, 0.0012), (0.0, 1.000), (100.0, 1.100), (1500.0, 1.920), (3000.0, 2.800))
_LOOKUP_MIN_VOXELS = 1 << 16  # integer CTs smaller than this: interpolating per voxel is as quick


def _check_curve(curve: Sequence[Sequence[float]]) -> Tuple[np.ndarray, np.ndarray]:
    try:
        points = np.asarray(curve, dtype=float)
    except (TypeError, ValueError) as exc:
        raise InputError(f"HU-density curve {curve!r}: expected (HU, g/mL) pairs") from exc
    if points.ndim != 2 or points.shape[1] != 2 or points.shape[0] < 2:
        raise InputError(f"HU-density curve {curve!r}: expected at least two (HU, g/mL) pairs")
    hu, rho = points[:, 0], points[:, 1]
    if not (np.all(np.isfinite(points)) and np.all(np.diff(hu) > 0) and np.all(rho > 0)):
        raise InputError(f"HU-density curve {curve!r}: HU must increase strictly and densities be > 0")
    return hu, rho


def hu_to_density_g_per_ml(ct_hu, curve: Sequence[Sequence[float]] = DEFAULT_HU_DENSITY_CURVE) -> np.ndarray:
    """Mass density (g/mL, float32) of each CT voxel by piecewise-linear interpolation of ``curve``."""
    hu_points, rho_points = _check_curve(curve)
    raw = np.asarray(ct_hu)
    if raw.dtype.kind in "iu" and raw.dtype.itemsize <= 2 and raw.size > _LOOKUP_MIN_VOXELS:
        return _integer_lookup(raw, hu_points, rho_points)
    values = np.asarray(raw, dtype=np.float32)
    if not np.all(np.isfinite(values)):
        raise InputError("CT HU array: contains NaN or infinite values")
    out = np.empty(values.shape, dtype=np.float32)
    flat_in, flat_out = values.reshape(-1), out.reshape(-1)
    step = 1 << 20  # np.interp works in float64: convert in chunks to bound the temporary memory
    for start in range(0, flat_in.size, step):
        flat_out[start:start + step] = np.interp(flat_in[start:start + step], hu_points, rho_points)
    return out


def _integer_lookup(values: np.ndarray, hu_points: np.ndarray, rho_points: np.ndarray) -> np.ndarray:
    """hu_to_density of an 8/16-bit integer CT (the usual DICOM HU volume) through a table of every value.

    Each table entry is ``np.interp`` of that HU value as float32, exactly what the general path
    computes per voxel, so the result is identical; a gather instead of a float64 interpolation
    per voxel (a clinical CT: several times faster).
    """
    bits = 8 * values.dtype.itemsize
    if values.dtype.kind == "i":  # flipping the sign bit of the unsigned view gives value - dtype minimum
        first = -(1 << (bits - 1))
        index = values.view(np.dtype(f"u{values.dtype.itemsize}")) ^ np.array(1 << (bits - 1)).astype(
            f"u{values.dtype.itemsize}")
    else:
        first, index = 0, values
    table = np.interp(np.arange(first, first + (1 << bits)).astype(np.float32), hu_points, rho_points)
    table = table.astype(np.float32)
    out = np.empty(values.shape, dtype=np.float32)
    flat_index, flat_out = index.reshape(-1), out.reshape(-1)
    step = 1 << 16  # bounds the temporary index array numpy makes per chunk (cache-sized: fastest)
    for begin in range(0, flat_index.size, step):
        np.take(table, flat_index[begin:begin + step], out=flat_out[begin:begin + step])
    return out


def density_on_grid(ct_image: sitk.Image, reference: sitk.Image,
                    curve: Sequence[Sequence[float]] = DEFAULT_HU_DENSITY_CURVE,
                    outside_density_g_per_ml: float = 0.0012) -> np.ndarray:
    """Mean mass density per voxel of ``reference`` (e.g. the SPECT/TIA grid), (z, y, x) float32.

    The CT is converted to density on its own grid (box-averaged by whole factors when it is more
    than twice as fine as the reference), then resampled (linear) onto a grid that subdivides every
    reference voxel into k_x * k_y * k_z sub-voxels no larger than those CT voxels, and averaged per
    reference voxel: the mean density of the CT inside each SPECT voxel.
    Reference voxels outside the CT get ``outside_density_g_per_ml`` (air).
    """
    if ct_image.GetDimension() != 3 or reference.GetDimension() != 3:
        raise GeometryError("density_on_grid: CT and reference must be 3-D images")
    density = sitk.GetImageFromArray(hu_to_density_g_per_ml(sitk.GetArrayViewFromImage(ct_image)))
    density.CopyInformation(ct_image)
    ref_spacing = np.array(reference.GetSpacing())
    # A CT much finer than the reference is first box-averaged on its own grid by whole factors up to
    # half the reference voxel (exact means, one pass), so the sub-voxel resampling below needs only
    # 2-3 samples per axis instead of one per CT voxel (clinical CT -> 4.8 mm SPECT: about 4x faster).
    shrink = np.maximum(1, np.floor(ref_spacing / (2.0 * np.array(ct_image.GetSpacing())) + 1e-6)).astype(int)
    if np.any(shrink > 1):
        density = sitk.BinShrink(density, [int(v) for v in shrink])
    factors = np.maximum(1, np.ceil(ref_spacing / np.array(density.GetSpacing()) - 1e-6)).astype(int)
    fine_spacing = ref_spacing / factors
    direction = np.array(reference.GetDirection()).reshape(3, 3)
    # origin of the first sub-voxel centre: shift by half a reference voxel minus half a sub-voxel
    shift = direction @ ((-0.5 * ref_spacing) + 0.5 * fine_spacing)
    fine = sitk.Image([int(n * f) for n, f in zip(reference.GetSize(), factors)], sitk.sitkFloat32)
    fine.SetSpacing(tuple(float(v) for v in fine_spacing))
    fine.SetDirection(reference.GetDirection())
    fine.SetOrigin(tuple(float(v) for v in np.array(reference.GetOrigin()) + shift))
    resampled = sitk.Resample(density, fine, sitk.Transform(), sitk.sitkLinear, float(outside_density_g_per_ml),
                              sitk.sitkFloat32)
    arr = sitk.GetArrayFromImage(resampled)
    nz, ny, nx = reference.GetSize()[2], reference.GetSize()[1], reference.GetSize()[0]
    fx, fy, fz = (int(v) for v in factors)
    return arr.reshape(nz, fz, ny, fy, nx, fx).mean(axis=(1, 3, 5), dtype=np.float64).astype(np.float32)
