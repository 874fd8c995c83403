"""Dose engines against closed forms.

- Uniform activity in a large water cube: in the interior, kernel convolution equals local
  energy deposition. Electrons: D = TIA * Delta_e / m exactly (REFERENCE.md: 1 MBq/mL for 1 h
  at 1 g/mL gives 0.08532 Gy). Photons: with the kernel truncated at R = 250 mm the interior
  dose must be Delta_ph * TIA / m * f(R), f(R) = fraction of the photon energy absorbed within
  R of a point source in infinite water (from the Monte Carlo profile, ~0.78); the infinite-
  medium expectation Delta_ph * TIA / m is recovered by the profile including all radii.
- A point source reproduces the kernel; density correction scales electrons by 1/rho.
"""

from __future__ import annotations

import numpy as np
import pytest

from startnet.dosimetry import kernel_build
from startnet.dosimetry.engines import (
    dose_led,
    dose_vsv,
    dose_vsv_density,
    organ_led_gy,
    structure_mass_g,
)
from startnet.dosimetry.kernel_profiles import load_profiles
from startnet.dosimetry.kernels import get_kernel
from startnet.errors import GeometryError, InputError
from startnet.physics.lu177 import LU177

SIZE = (4.8, 4.8, 4.8)
VOXEL_ML = 4.8 ** 3 / 1000.0


@pytest.fixture(scope="module")
def kernel():
    return get_kernel(SIZE)


@pytest.fixture(scope="module")
def cube(kernel):
    # 110^3 voxels = 528 mm: the 250 mm photon kernel (52 voxels) fits around the central voxels
    n = 110
    tia = np.full((n, n, n), 1.0 * VOXEL_ML, dtype=np.float32)  # 1 MBq.h per mL
    return tia, dose_vsv(tia, kernel), dose_led(tia, VOXEL_ML, 1.0)


def test_led_closed_form_reference_value():
    tia = np.full((2, 2, 2), 1.0, dtype=np.float32)  # 1 MBq.h in a 1 mL voxel
    maps = dose_led(tia, 1.0, 1.0)
    assert float(maps.electron_gy[0, 0, 0]) == pytest.approx(0.08532, rel=2e-4)
    assert np.all(maps.photon_gy == 0)
    local = dose_led(tia, 1.0, 2.0, photons="local")
    assert float(local.photon_gy[0, 0, 0]) == pytest.approx(
        LU177.photon_energy_j_per_mbq_h / 2e-3, rel=1e-5)


def test_uniform_cube_electrons_interior_equal_led(cube):
    _, vsv, led = cube
    interior = (slice(2, -2),) * 3
    ratio = vsv.electron_gy[interior] / led.electron_gy[interior]
    dev = 100.0 * (ratio - 1.0)
    assert np.max(np.abs(dev)) < 1.0, f"electron kernel vs LED in the interior: max |dev| {np.max(np.abs(dev)):.4f} %"
    assert float(led.electron_gy[55, 55, 55]) == pytest.approx(0.08532, rel=2e-4)


def test_uniform_cube_photons_interior_equal_absorbed_fraction(cube):
    _, vsv, _ = cube
    prof = load_profiles()
    f_r = kernel_build.energy_within_radius_mev(prof.photon_edges_mm, prof.photon_shell_mev, 250.0) / (
        LU177.photon_energy_per_decay_mev)
    assert 0.7 < f_r < 0.85  # 208 keV mean free path in water is 73 mm: a quarter leaves 250 mm
    expected_photon = LU177.photon_energy_j_per_mbq_h * f_r / 1e-3  # 1 MBq.h in 1 g
    centre = vsv.photon_gy[54:57, 54:57, 54:57]
    dev = 100.0 * (centre / expected_photon - 1.0)
    assert np.max(np.abs(dev)) < 1.0, f"photon kernel vs Delta_ph*TIA/m*f(R): max |dev| {np.max(np.abs(dev)):.3f} %"
    # summed: LED electrons + absorbed photons equals the kernel total in the interior
    expected_total = (LU177.electron_energy_j_per_mbq_h + LU177.photon_energy_j_per_mbq_h * f_r) / 1e-3
    dev_total = 100.0 * (vsv.total_gy[54:57, 54:57, 54:57] / expected_total - 1.0)
    assert np.max(np.abs(dev_total)) < 1.0, f"total: max |dev| {np.max(np.abs(dev_total)):.3f} %"
    # infinite medium: the profile out to 1000 mm absorbs all of Delta_ph (energy conservation)
    f_inf = prof.photon_shell_mev.sum() / LU177.photon_energy_per_decay_mev
    assert f_inf == pytest.approx(1.0, abs=2e-4)


def test_point_source_reproduces_kernel(kernel):
    n = 41
    tia = np.zeros((n, n, n), dtype=np.float32)
    tia[20, 20, 20] = 2.5
    maps = dose_vsv(tia, kernel, voxel_size_mm=SIZE)
    ke = kernel.electron_gy_per_mbq_h
    np.testing.assert_allclose(maps.electron_gy[19:22, 19:22, 19:22], 2.5 * ke, rtol=1e-5, atol=1e-9)
    c = kernel.photon_gy_per_mbq_h.shape[0] // 2
    expected = 2.5 * kernel.photon_gy_per_mbq_h[c - 20:c + 21, c - 20:c + 21, c - 20:c + 21]
    np.testing.assert_allclose(maps.photon_gy, expected, rtol=2e-4, atol=1e-7 * expected.max())


def test_density_correction_scales_electrons_as_inverse_density(kernel):
    rng = np.random.default_rng(5)
    tia = rng.random((24, 20, 18)).astype(np.float32)
    plain = dose_vsv(tia, kernel)
    rho = np.full(tia.shape, 1.05, dtype=np.float32)
    rho[:, :, :6] = 0.26  # lung: scaled
    rho[:, :, -3:] = 0.001  # air: below the 0.1 g/mL threshold, not upscaled
    corr = dose_vsv_density(tia, kernel, rho)
    np.testing.assert_allclose(corr.electron_gy[:, :, 6:-3], plain.electron_gy[:, :, 6:-3] / 1.05, rtol=1e-5)
    np.testing.assert_allclose(corr.electron_gy[:, :, :6], plain.electron_gy[:, :, :6] / 0.26, rtol=1e-5)
    np.testing.assert_allclose(corr.electron_gy[:, :, -3:], plain.electron_gy[:, :, -3:], rtol=1e-6)
    np.testing.assert_array_equal(corr.photon_gy, plain.photon_gy)
    assert corr.notes["low_density_voxels_not_upscaled"] == str(24 * 20 * 3)
    scaled = dose_vsv_density(tia, kernel, rho, scale_photons=True)
    np.testing.assert_allclose(scaled.photon_gy[:, :, 6:-3], plain.photon_gy[:, :, 6:-3] / 1.05, rtol=1e-5)


def test_led_density_and_low_density_rule():
    tia = np.ones((1, 1, 3), dtype=np.float32)
    rho = np.array([[[1.0, 0.5, 0.01]]], dtype=np.float32)
    maps = dose_led(tia, 1.0, rho)
    d = maps.electron_gy[0, 0]
    assert d[1] == pytest.approx(2.0 * d[0], rel=1e-6)
    assert d[2] == pytest.approx(d[0], rel=1e-6)  # air voxel treated as water, recorded
    assert maps.notes["low_density_voxels_not_upscaled"] == "1"


def test_led_with_photon_kernel_matches_vsv_photons(kernel):
    tia = np.zeros((15, 15, 15), dtype=np.float32)
    tia[7, 7, 7] = 1.0
    led = dose_led(tia, VOXEL_ML, 1.0, photons="kernel", kernel=kernel)
    np.testing.assert_allclose(led.photon_gy, dose_vsv(tia, kernel).photon_gy, rtol=1e-6)


def test_organ_led_closed_form():
    # 1000 MBq.h in a 150 g kidney: D = 1000 MBq.h * 0.08532 mJ/(MBq.h) / 0.150 kg = 0.5688 Gy
    d = organ_led_gy(1000.0, 150.0)
    assert d == pytest.approx(1000.0 * LU177.electron_energy_j_per_mbq_h / 0.150, rel=1e-12)
    assert d == pytest.approx(0.5688, rel=1e-3)
    with_photons = organ_led_gy(1000.0, 150.0, photon_absorbed_fraction=0.1)
    assert with_photons - d == pytest.approx(100.0 * LU177.photon_energy_j_per_mbq_h / 0.150, rel=1e-12)


def test_structure_mass_from_density():
    mask = np.zeros((4, 4, 4), bool)
    mask[1:3, 1:3, 1:3] = True
    rho = np.full((4, 4, 4), 1.05, dtype=np.float32)
    assert structure_mass_g(mask, rho, 0.1) == pytest.approx(8 * 1.05 * 0.1, rel=1e-6)


def test_bad_inputs_are_named(kernel):
    with pytest.raises(GeometryError, match="TIA map"):
        dose_vsv(np.zeros((4, 4)), kernel)
    with pytest.raises(InputError, match="NaN"):
        dose_vsv(np.full((3, 3, 3), np.nan), kernel)
    with pytest.raises(GeometryError, match="kernel voxel size"):
        dose_vsv(np.zeros((3, 3, 3)), kernel, voxel_size_mm=(4.0, 4.0, 4.0))
    with pytest.raises(GeometryError, match="density map"):
        dose_vsv_density(np.zeros((3, 3, 3)), kernel, np.ones((3, 3, 4)))
    with pytest.raises(InputError, match="density"):
        dose_vsv_density(np.zeros((3, 3, 3)), kernel, np.zeros((3, 3, 3)))
    with pytest.raises(InputError, match="photons"):
        dose_led(np.zeros((3, 3, 3)), 1.0, photons="kernel")
    with pytest.raises(InputError, match="mass_g"):
        organ_led_gy(1.0, 0.0)
