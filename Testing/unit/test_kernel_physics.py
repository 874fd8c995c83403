"""Physics ingredients of the project's 177Lu kernels against published values.

Truths: NNDC/ENSDF mean beta energies of the three 177Lu branches (149.35, 111.69, 47.66 keV);
ICRP 107 energies per decay (REFERENCE.md section 2); NIST ESTAR collision stopping power and
CSDA range of electrons in water; NIST (Hubbell & Seltzer) mu/rho and mu_en/rho of water.
"""

from __future__ import annotations

import numpy as np
import pytest

from startnet.dosimetry import electron_transport as et
from startnet.dosimetry import photon_transport as pt
from startnet.dosimetry.kernel_profiles import load_profiles
from startnet.dosimetry.spectrum import ICRP_BETA_MEV, allowed_beta_shape, lu177_spectrum
from startnet.physics.lu177 import LU177


@pytest.mark.parametrize("endpoint_kev, mean_kev", [(498.3, 149.35), (385.3, 111.69), (176.5, 47.66)])
def test_allowed_beta_branch_mean_energy_matches_ensdf(endpoint_kev, mean_kev):
    t = np.linspace(0.0, endpoint_kev / 1000.0, 20001)[1:-1]
    shape = allowed_beta_shape(endpoint_kev / 1000.0, t)
    mean = float((t * shape).sum() / shape.sum()) * 1000.0
    assert mean == pytest.approx(mean_kev, rel=0.005), f"mean {mean:.2f} keV vs ENSDF {mean_kev} keV"


def test_spectrum_energy_per_decay_vs_icrp107():
    s = lu177_spectrum()
    beta_dev = 100.0 * (s.beta_mean_mev_per_decay / ICRP_BETA_MEV - 1.0)
    assert abs(beta_dev) < 1.0, f"beta mean per decay deviates {beta_dev:+.2f} % from ICRP 107"
    total_dev = 100.0 * (s.electron_mev_per_decay / LU177.electron_energy_per_decay_mev - 1.0)
    assert abs(total_dev) < 1.0, f"electron energy per decay deviates {total_dev:+.2f} % from ICRP 107"
    assert s.photon_mev_per_decay == pytest.approx(LU177.photon_energy_per_decay_mev, rel=1e-9)


@pytest.mark.parametrize("energy_mev, estar", [(0.01, 22.56), (0.1, 4.115), (0.5, 2.034)])
def test_bethe_stopping_power_vs_estar(energy_mev, estar):
    value = float(et.collision_stopping_power_mev_cm2_per_g(np.array([energy_mev]))[0])
    assert value == pytest.approx(estar, rel=0.01), f"{value:.4f} vs ESTAR {estar} MeV cm2/g"


@pytest.mark.parametrize("energy_mev, estar_g_cm2", [(0.1, 0.01431), (0.2, 0.04488), (0.5, 0.1766)])
def test_csda_range_vs_estar(energy_mev, estar_g_cm2):
    value = float(et.csda_range_g_per_cm2(energy_mev))
    dev = 100.0 * (value / estar_g_cm2 - 1.0)
    assert abs(dev) < 1.0, f"CSDA range at {energy_mev} MeV deviates {dev:+.2f} % from ESTAR"


def test_max_beta_range_matches_reference():
    # REFERENCE.md: max electron range in water about 1.8 mm for the 498 keV endpoint
    assert 10.0 * et.csda_range_g_per_cm2(0.4978) == pytest.approx(1.8, abs=0.05)


@pytest.mark.parametrize("energy_mev", [0.06, 0.08, 0.15, 0.2, 0.3])
def test_photon_model_coefficients_vs_nist(energy_mev):
    mu_nist, mu_en_nist = pt.NIST_WATER_MU_MUEN_CM2_PER_G[energy_mev]
    mu, mu_en = pt.model_coefficients_cm2_per_g(energy_mev)
    en_dev = 100.0 * (mu_en / mu_en_nist - 1.0)
    assert abs(en_dev) < 1.0, f"mu_en/rho at {energy_mev} MeV deviates {en_dev:+.2f} % from NIST"
    # coherent scattering is left out of the transport model: mu is low by its share (< 5 %)
    mu_dev = 100.0 * (mu / mu_nist - 1.0)
    assert -5.0 < mu_dev < 0.0, f"mu/rho at {energy_mev} MeV deviates {mu_dev:+.2f} % from NIST"


def test_photon_monte_carlo_conserves_energy_and_primary_dose():
    edges, tally, escaped = pt.photon_radial_energy(0.2, n_photons=40_000, seed=3)
    assert tally.sum() + escaped == pytest.approx(0.2, rel=1e-9)
    # near the source the dose is the primary one, E mu_en exp(-mu r) / (4 pi r^2): build-up -> 1
    mu_r, buildup = pt.buildup_factor(edges, tally, 0.2)
    near = (mu_r > 0.05) & (mu_r < 0.15)
    assert 1.0 <= np.mean(buildup[near]) <= 1.4, f"build-up near the source {np.mean(buildup[near]):.3f}"
    # and it grows with depth (scattered photons), as any energy-absorption build-up factor
    assert np.mean(buildup[(mu_r > 1.8) & (mu_r < 2.2)]) > 2.0 * np.mean(buildup[near])


def test_committed_profiles_conserve_emitted_energy():
    prof = load_profiles()
    e_dev = 100.0 * (prof.electron_shell_mev.sum() / prof.electron_emitted_mev - 1.0)
    assert abs(e_dev) < 1e-6, f"electron profile loses {e_dev:+.2e} % of the emitted energy"
    p_total = prof.photon_shell_mev.sum() + prof.photon_escaped_mev
    p_dev = 100.0 * (p_total / LU177.photon_energy_per_decay_mev - 1.0)
    assert abs(p_dev) < 1e-6, f"photon profile + escape deviates {p_dev:+.2e} % from Delta_ph"
    # range: no electron energy beyond the 498 keV CSDA range (1.77 mm)
    beyond = prof.electron_shell_mev[prof.electron_edges_mm[:-1] >= 1.8].sum()
    assert beyond == 0.0
