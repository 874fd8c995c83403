"""Energy balance of every kernel (REFERENCE.md section 3) and kernel geometry.

Electron part: sum S_e * m_voxel must equal Delta_e (ICRP 107, 0.147923 MeV per decay). The
kernel is normalised to it; the test also checks the pre-normalisation balance (+0.757 %: exactly
the generator's spectrum vs ICRP 107, whose allowed-shape beta mean energy is 0.84 % above
ICRP 107's) so that a generator losing or inventing energy cannot hide behind the normalisation.
Photon part: sum S_ph * m_voxel must equal the Monte Carlo photon energy absorbed inside the
kernel's sphere (photon_radius_mm).
"""

from __future__ import annotations

import numpy as np
import pytest

from startnet.dosimetry import kernels
from startnet.dosimetry.kernels import COMMITTED_SIZES_MM, get_kernel
from startnet.dosimetry.spectrum import lu177_spectrum
from startnet.errors import InputError


@pytest.fixture(autouse=True)
def _private_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("STARTNET_CACHE_DIR", str(tmp_path))


SIZES = [(s, s, s) for s in COMMITTED_SIZES_MM] + [(2.0, 2.5, 3.3), (4.0, 4.0, 6.5)]


@pytest.mark.parametrize("size", SIZES, ids=lambda s: "x".join(f"{v:g}" for v in s))
def test_energy_balance(size):
    k = get_kernel(size)
    b = k.energy_balance
    assert abs(b.electron_deviation_percent) < 1e-3, (
        f"{size}: electron sum S*m {b.electron_kernel_mev:.6f} MeV vs Delta_e {b.electron_reference_mev} "
        f"({b.electron_deviation_percent:+.4f} %)")
    # before normalisation the kernel holds exactly the energy of the generator's spectrum (the
    # transport and the voxel integration conserve energy): +0.757 %, from the allowed-shape beta
    # mean energy being 0.84 % above ICRP 107 (IC lines and Auger match ICRP by construction)
    spectrum_dev = 100.0 * (lu177_spectrum().electron_mev_per_decay / b.electron_reference_mev - 1.0)
    assert b.electron_prenormalisation_deviation_percent == pytest.approx(spectrum_dev, abs=0.01), (
        f"{size}: pre-normalisation electron balance {b.electron_prenormalisation_deviation_percent:+.3f} % "
        f"vs spectrum {spectrum_dev:+.3f} %")
    assert 0.0 < b.electron_prenormalisation_deviation_percent < 1.0
    assert abs(b.photon_deviation_percent) < 0.2, (
        f"{size}: photon sum S*m {b.photon_kernel_mev:.6f} MeV vs absorbed within {b.photon_radius_mm} mm "
        f"{b.photon_within_extent_mev:.6f} MeV ({b.photon_deviation_percent:+.3f} %)")
    # independent recomputation of the electron balance from the array itself
    mass_kg = np.prod(size) * 1e-6
    joules = float(k.electron_gy_per_mbq_h.astype(np.float64).sum()) * mass_kg
    assert joules == pytest.approx(0.147923 * 1.602176634e-13 * 3.6e9, rel=1e-5)


@pytest.mark.parametrize("size", [(4.8, 4.8, 4.8), (2.0, 2.5, 3.3)], ids=["iso", "aniso"])
def test_kernel_geometry(size):
    k = get_kernel(size)
    for arr in (k.electron_gy_per_mbq_h, k.photon_gy_per_mbq_h):
        assert arr.dtype == np.float32 and all(n % 2 == 1 for n in arr.shape)
        centre = tuple(n // 2 for n in arr.shape)
        assert arr[centre] == arr.max()
        # point symmetry of a centred kernel
        np.testing.assert_allclose(arr, arr[::-1, ::-1, ::-1], rtol=1e-5, atol=1e-12)
    # (z, y, x) order: the photon kernel extends floor(250 mm / spacing) voxels per axis
    assert k.photon_gy_per_mbq_h.shape == tuple(2 * int(250.0 // s) + 1 for s in size[::-1])
    # electrons: range 1.8 mm, so nothing beyond the first neighbour when the voxel is >= 1.8 mm
    assert k.electron_gy_per_mbq_h.shape == (3, 3, 3)
    e = k.electron_gy_per_mbq_h
    if size[0] < size[2]:
        # orientation: electrons cross into the x neighbour through the larger face (y-z)
        assert e[1, 1, 2] > e[1, 2, 1] > e[2, 1, 1]


def test_electron_self_absorption_grows_with_voxel_size():
    fractions = []
    for s in (2.21, 3.0, 4.8):
        k = get_kernel((s, s, s))
        c = tuple(n // 2 for n in k.electron_gy_per_mbq_h.shape)
        fractions.append(k.electron_gy_per_mbq_h[c] / k.electron_gy_per_mbq_h.sum())
    assert fractions[0] < fractions[1] < fractions[2] < 1.0
    assert fractions[0] > 0.8  # mean beta range (~0.3 mm) is small compared with 2.21 mm


def test_on_demand_kernel_is_cached_and_reused(tmp_path):
    size = (3.3, 3.3, 3.3)
    kernels._MEMO.clear()
    first = get_kernel(size)
    assert first.provenance["source"] == "generated on demand"
    assert list((tmp_path / "kernels").glob("lu177_3.3x3.3x3.3mm.npz"))
    kernels._MEMO.clear()
    second = get_kernel(size)
    assert second.provenance["source"].startswith("user cache")
    np.testing.assert_array_equal(first.electron_gy_per_mbq_h, second.electron_gy_per_mbq_h)
    np.testing.assert_array_equal(first.photon_gy_per_mbq_h, second.photon_gy_per_mbq_h)


def test_committed_tables_are_used():
    kernels._MEMO.clear()
    assert get_kernel((4.42, 4.42, 4.42)).provenance["source"] == "committed table lu177_4.42x4.42x4.42mm.npz"


@pytest.mark.parametrize("bad", [(0.0, 1.0, 1.0), (1.0, 2.0), ("a", 1, 1), (float("nan"), 2.0, 2.0)])
def test_bad_voxel_size_is_rejected(bad):
    with pytest.raises(InputError, match="voxel_size_mm"):
        get_kernel(bad)


def test_uniform_anisotropic_grid_electrons_equal_led():
    from startnet.dosimetry.engines import dose_led, dose_vsv

    size = (2.0, 2.5, 3.3)
    k = get_kernel(size)
    voxel_ml = np.prod(size) / 1000.0
    tia = np.full((12, 12, 12), 0.7, dtype=np.float32)
    vsv = dose_vsv(tia, k, voxel_size_mm=size)
    led = dose_led(tia, voxel_ml, 1.0)
    dev = 100.0 * (vsv.electron_gy[2:-2, 2:-2, 2:-2] / led.electron_gy[2:-2, 2:-2, 2:-2] - 1.0)
    assert np.max(np.abs(dev)) < 0.01, f"anisotropic kernel vs LED: max |dev| {np.max(np.abs(dev)):.4f} %"


@pytest.mark.slow
def test_generator_is_reproducible_and_matches_committed_profiles():
    from startnet.dosimetry import kernel_build
    from startnet.dosimetry.kernel_profiles import generate_radial_profiles, load_profiles

    a = generate_radial_profiles(electrons_per_energy=60, photons_per_line=20_000)
    b = generate_radial_profiles(electrons_per_energy=60, photons_per_line=20_000)
    np.testing.assert_array_equal(a.electron_shell_mev, b.electron_shell_mev)
    np.testing.assert_array_equal(a.photon_shell_mev, b.photon_shell_mev)
    committed = load_profiles()
    size = (4.8, 4.8, 4.8)
    quick = kernel_build.electron_kernel(a.electron_edges_mm, a.electron_shell_mev, size)
    table = kernel_build.electron_kernel(committed.electron_edges_mm, committed.electron_shell_mev, size)
    # the self-dose fraction of a short run agrees with the committed (2000 electrons per energy) table
    self_quick, self_table = quick[1, 1, 1] / quick.sum(), table[1, 1, 1] / table.sum()
    assert self_quick == pytest.approx(self_table, rel=5e-3), f"{self_quick:.5f} vs {self_table:.5f}"
    within_quick = kernel_build.energy_within_radius_mev(a.photon_edges_mm, a.photon_shell_mev, 100.0)
    within_table = kernel_build.energy_within_radius_mev(committed.photon_edges_mm, committed.photon_shell_mev, 100.0)
    assert within_quick == pytest.approx(within_table, rel=0.02)


@pytest.mark.parametrize("spacing", [2.21, 4.8])
def test_photon_kernel_is_smooth_across_near_far_junction(spacing):
    # near block (cube-to-cube shell integration, offsets <= 3) and far field (corrected point
    # values) must join smoothly: r^2 S(r) varies slowly (build-up x attenuation), no step
    k = get_kernel((spacing, spacing, spacing)).photon_gy_per_mbq_h
    c = k.shape[0] // 2
    axis = k[c, c, c + 1:c + 12].astype(np.float64)
    assert np.all(np.diff(axis) < 0), "photon kernel must decrease with distance along an axis"
    r2s = axis * (np.arange(1, 12) * spacing) ** 2
    steps = np.abs(np.diff(r2s[1:]) / r2s[1:-1])  # from offset 2 on (offset 1 is in the 1/r^2 cusp)
    assert steps.max() < 0.04, f"r^2 S jumps by {100 * steps.max():.1f} % between neighbouring voxels"
