"""HU -> density curve and mean density per SPECT voxel (closed forms)."""

from __future__ import annotations

import numpy as np
import pytest
import SimpleITK as sitk

from startnet.dosimetry.density import DEFAULT_HU_DENSITY_CURVE, density_on_grid, hu_to_density_g_per_ml
from startnet.errors import InputError


def test_default_curve_nodes_and_linear_segments():
    hu = np.array([-2000, -1000, -500, 0, 40, 100, 800, 1500, 3000, 4000], dtype=np.float32)
    rho = hu_to_density_g_per_ml(hu)
    expected = [0.0012, 0.0012, 0.5006, 1.0, 1.04, 1.1, 1.51, 1.92, 2.8, 2.8]
    np.testing.assert_allclose(rho, expected, rtol=1e-5)
    assert rho.dtype == np.float32


def test_custom_curve_and_validation():
    curve = ((-1000, 0.001), (0, 1.0), (1000, 2.0))
    assert float(hu_to_density_g_per_ml(np.array([500.0]), curve)[0]) == pytest.approx(1.5)
    for bad in (((0, 1.0),), ((0, 1.0), (0, 2.0)), ((0, 1.0), (10, -1.0)), "abc"):
        with pytest.raises(InputError, match="HU-density curve"):
            hu_to_density_g_per_ml(np.zeros(3), bad)
    with pytest.raises(InputError, match="NaN"):
        hu_to_density_g_per_ml(np.array([np.nan]), DEFAULT_HU_DENSITY_CURVE)


def _ct(array, spacing, origin=(0.0, 0.0, 0.0)):
    img = sitk.GetImageFromArray(array.astype(np.int16))
    img.SetSpacing(spacing)
    img.SetOrigin(origin)
    return img


def test_mean_density_per_spect_voxel_half_filled():
    # CT 1 mm: air for x < 19.5 mm, water beyond; SPECT 4 mm voxels straddling the boundary
    ct = np.full((40, 40, 40), -1000)
    ct[:, :, 20:] = 0
    ref = sitk.Image([10, 10, 10], sitk.sitkFloat32)
    ref.SetSpacing((4.0, 4.0, 4.0))
    ref.SetOrigin((3.5, 1.5, 1.5))  # voxel 4 spans x 17.5..21.5: half air, half water
    rho = density_on_grid(_ct(ct, (1.0, 1.0, 1.0)), ref)
    assert rho.shape == (10, 10, 10)
    assert float(rho[5, 5, 4]) == pytest.approx(0.5 * (1.0 + 0.0012), abs=2e-3)
    assert float(rho[5, 5, 6]) == pytest.approx(1.0, abs=1e-6)
    assert float(rho[5, 5, 1]) == pytest.approx(0.0012, abs=1e-6)


def test_mean_density_preserves_mass_of_a_structure():
    rng = np.random.default_rng(2)
    ct = rng.integers(-100, 300, size=(32, 32, 32))
    ref = sitk.Image([8, 8, 8], sitk.sitkFloat32)
    ref.SetSpacing((4.0, 4.0, 4.0))
    ref.SetOrigin((1.5, 1.5, 1.5))  # exactly 4x4x4 CT voxels per SPECT voxel
    rho = density_on_grid(_ct(ct, (1.0, 1.0, 1.0)), ref)
    ct_mass = float(hu_to_density_g_per_ml(ct).astype(np.float64).sum()) * 1e-3
    assert float(rho.astype(np.float64).sum()) * 64e-3 == pytest.approx(ct_mass, rel=1e-5)
