"""Segmentation comparison metrics against closed forms (two offset spheres), and the
recovery-coefficient curve against the analytic blurred sphere and a voxelised blurred sphere."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import SimpleITK as sitk
from scipy import ndimage as ndi

from startnet.errors import GeometryError, InputError
from startnet.segmentation import (
    RecoveryCurve,
    Segmentation,
    compare_segmentations,
    format_table,
    load_recovery_curves,
    recovery_coefficient,
    sphere_recovery_coefficient,
)
from startnet.segmentation.recovery import CURVES_PATH, DEFAULT_PSF_FWHM_MM, blurred_sphere_profile

SPACING_MM = 0.5


def _sphere(shape, centre_mm, radius_mm, spacing=SPACING_MM):
    z, y, x = np.indices(shape, dtype=float) * spacing
    return (x - centre_mm[0]) ** 2 + (y - centre_mm[1]) ** 2 + (z - centre_mm[2]) ** 2 <= radius_mm ** 2


@pytest.fixture(scope="module")
def spheres():
    radius, offset = 10.0, 4.0
    shape = (60, 60, 72)
    a = _sphere(shape, (16.0, 15.0, 15.0), radius)
    b = _sphere(shape, (16.0 + offset, 15.0, 15.0), radius)
    return a, b, radius, offset


def test_two_offset_spheres_match_closed_forms(spheres):
    a, b, radius, d = spheres
    (row,) = compare_segmentations({"lesion": a}, {"lesion": b}, (SPACING_MM,) * 3)
    # lens volume of two equal spheres: pi (4R + d)(2R - d)^2 / 12; Dice = V_lens / V_sphere
    lens = math.pi * (4 * radius + d) * (2 * radius - d) ** 2 / 12.0
    sphere = 4.0 / 3.0 * math.pi * radius ** 3
    assert row.dice == pytest.approx(lens / sphere, abs=0.01)
    assert row.jaccard == pytest.approx(lens / (2 * sphere - lens), abs=0.01)
    # surface distances of a sphere to its copy shifted by d are uniform on [0, d]:
    # P(dist > t) = 1 - t/d, so HD95 = 0.95 d and the mean surface distance = d / 2
    assert row.hd95_mm == pytest.approx(0.95 * d, abs=SPACING_MM)
    assert row.mean_surface_distance_mm == pytest.approx(d / 2.0, abs=SPACING_MM)
    assert row.volume_a_ml == pytest.approx(sphere / 1000.0, rel=0.01)
    assert row.volume_difference_ml == pytest.approx(0.0, abs=0.01)


def test_identical_and_scaled_spheres(spheres):
    a, _, radius, _ = spheres
    smaller = _sphere(a.shape, (16.0, 15.0, 15.0), radius - 2.0)
    (same,) = compare_segmentations({"x": a}, {"x": a}, (SPACING_MM,) * 3)
    assert same.dice == 1.0 and same.hd95_mm == 0.0 and same.mean_surface_distance_mm == 0.0
    (row,) = compare_segmentations({"x": a}, {"x": smaller}, (SPACING_MM,) * 3)
    # concentric spheres: every surface distance is the radius difference (2 mm)
    assert row.hd95_mm == pytest.approx(2.0, abs=SPACING_MM)
    assert row.mean_surface_distance_mm == pytest.approx(2.0, abs=SPACING_MM)
    assert row.volume_difference_percent == pytest.approx(100 * ((radius - 2) ** 3 / radius ** 3 - 1), abs=1.5)


def test_dose_change_and_names_matched_across_spellings(spheres):
    a, b, _, _ = spheres
    z, y, x = np.indices(a.shape, dtype=float)
    dose = 2.0 + 0.1 * x * SPACING_MM  # a linear dose gradient along x (Gy)
    (row,) = compare_segmentations({"kidney_left": a}, {"Left Kidney": b}, (SPACING_MM,) * 3, dose_gy=dose)
    assert row.name == "kidney_left"
    # mean dose of a sphere in a linear field = dose at its centre; B is shifted 4 mm in x
    assert row.mean_dose_a_gy == pytest.approx(2.0 + 0.1 * 16.0, abs=1e-3)
    assert row.mean_dose_difference_gy == pytest.approx(0.1 * 4.0, abs=1e-3)
    assert row.mean_dose_difference_percent == pytest.approx(100 * 0.4 / 3.6, abs=0.05)
    assert "kidney_left" in format_table([row]) and "dD Gy" in format_table([row])


def test_comparison_bad_input(spheres):
    a, b, _, _ = spheres
    with pytest.raises(InputError, match="no segment name in common"):
        compare_segmentations({"a": a}, {"b": b}, (1, 1, 1))
    with pytest.raises(InputError, match="empty"):
        compare_segmentations({"a": a}, {"a": np.zeros_like(a)}, (1, 1, 1))
    with pytest.raises(GeometryError, match="grid"):
        compare_segmentations({"a": a}, {"a": b[:-1]}, (1, 1, 1))
    with pytest.raises(InputError, match="spacing"):
        compare_segmentations({"a": a}, {"a": b})
    reference = sitk.Image([a.shape[2], a.shape[1], a.shape[0]], sitk.sitkUInt8)
    reference.SetSpacing((SPACING_MM,) * 3)
    seg = Segmentation(reference, {"a": a})
    assert compare_segmentations(seg, {"a": a})[0].dice == 1.0  # spacing from the Segmentation
    with pytest.raises(InputError, match="empty"):
        seg.add("nothing", np.zeros_like(a))
    with pytest.raises(InputError, match="has no segment"):
        seg.mask("liver")


def test_recovery_formula_matches_a_voxelised_blurred_sphere():
    fwhm, spacing, volume_ml = 11.0, 1.0, 8.0
    radius = (3 * volume_ml * 1000 / (4 * math.pi)) ** (1 / 3)
    n = 64
    centre = (n - 1) / 2 * spacing
    sphere = _sphere((n, n, n), (centre,) * 3, radius, spacing)
    # partial-volume exact truth: supersample the boundary by 4 per axis
    fine = _sphere((4 * n,) * 3, ((4 * n - 1) / 2 * spacing / 4,) * 3, radius, spacing / 4)
    fraction = fine.reshape(n, 4, n, 4, n, 4).mean(axis=(1, 3, 5))
    blurred = ndi.gaussian_filter(fraction, fwhm / 2.3548200450309493 / spacing, mode="constant")
    voxel_rc = float(blurred[sphere].mean())
    assert sphere_recovery_coefficient(volume_ml, fwhm) == pytest.approx(voxel_rc, abs=0.02)
    # profile limits: deep inside a large sphere -> 1; at the surface of a large sphere -> 1/2
    assert float(blurred_sphere_profile(np.array([0.0]), 200.0, 4.0)[0]) == pytest.approx(1.0, abs=1e-9)
    assert float(blurred_sphere_profile(np.array([200.0]), 200.0, 4.0)[0]) == pytest.approx(0.5, abs=0.01)


def test_shipped_curve_is_the_documented_derivation():
    payload = json.loads(CURVES_PATH.read_text())
    assert payload["psf_fwhm_mm"]["default"] == DEFAULT_PSF_FWHM_MM
    curve = load_recovery_curves()["default"]
    for volume, rc in zip(curve.volumes_ml, curve.recovery_coefficients):
        assert rc == pytest.approx(sphere_recovery_coefficient(volume, DEFAULT_PSF_FWHM_MM), abs=1e-4)
    assert list(curve.recovery_coefficients) == sorted(curve.recovery_coefficients)
    assert recovery_coefficient(8.0) == pytest.approx(sphere_recovery_coefficient(8.0, 11.0), abs=1e-4)
    # between tabulated volumes: log-volume interpolation stays between the neighbours
    assert curve.rc(8.0) < recovery_coefficient(11.0) < curve.rc(16.0)
    with pytest.raises(InputError, match="no recovery curve"):
        recovery_coefficient(10.0, camera="unknown camera")
    with pytest.raises(InputError, match="increasing"):
        RecoveryCurve("bad", (2.0, 1.0), (0.5, 0.6))
